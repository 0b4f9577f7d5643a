"""The one retry policy of both HTTP clients: timeouts, capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import httpx

# Errors where the request may not have reached the server, or the server failed: worth another try.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx.TransportError)
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6  # total tries, the first included
    base: float = 0.5  # seconds before the first retry (before jitter)
    cap: float = 30.0  # no single wait is longer than this
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(30.0, connect=10.0))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): full jitter over a capped exponential."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(0, ceiling)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES
