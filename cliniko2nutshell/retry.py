"""The one retry policy of both HTTP clients: timeouts, capped exponential backoff with full jitter."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)

# Seconds to wait for an answer. 30 s suits both services; a slow link may want more. It is also how long a
# resumed run waits before looking again for a create that ended in doubt (a server may still carry it out).
TIMEOUT_ENV = "CLINIKO2NUTSHELL_TIMEOUT"
DEFAULT_TIMEOUT = 30.0


def default_timeout() -> httpx.Timeout:
    seconds = DEFAULT_TIMEOUT
    if raw := os.environ.get(TIMEOUT_ENV, "").strip():
        try:
            seconds = float(raw)
            if not 0 < seconds <= 600:
                raise ValueError
        except ValueError:
            log.warning("%s=%r is not a number of seconds from 0 to 600: using %s", TIMEOUT_ENV, raw, DEFAULT_TIMEOUT)
            seconds = DEFAULT_TIMEOUT
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


# Errors where the request may not have reached the server, or the server failed: worth another try.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx.TransportError)
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6  # total tries, the first included
    base: float = 0.5  # seconds before the first retry (before jitter)
    cap: float = 30.0  # no single wait is longer than this
    timeout: httpx.Timeout = field(default_factory=default_timeout)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based): full jitter over a capped exponential."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(0, ceiling)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES
