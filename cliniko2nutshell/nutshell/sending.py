"""Sending one request to Nutshell: timeouts, retries, 429 handling and the "outcome unknown" rule.

Both transports (REST and JSON-RPC) send through one `Sender`, so both share the retry policy
(cliniko2nutshell/retry.py) and one adaptive concurrency limiter.

Which failures are retried depends on what a repeat could do (`Safety`):
- READ: repeat freely.
- IDEMPOTENT: a write whose repeat lands in the same state (JSON-Patch replace, PUT, DELETE, a file upload to
  the same file id). Repeat on transient failures.
- GUARDED: a write checked by a `rev` (JSON-RPC edit*/delete*): a repeat cannot apply twice, it fails with
  409 instead. Repeat on transient failures.
- UNSAFE: a create. Repeated only when the request certainly never reached Nutshell (no connection) or was
  refused unprocessed (429). Any other failure raises OutcomeUnknownError so the engine looks before re-sending.
For writes, a 409 or 404 on a repeat that follows an ambiguous failure means the first try may have applied:
that too is OutcomeUnknownError, not a conflict.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import httpx

from cliniko2nutshell.events import EventSink, ignore
from cliniko2nutshell.nutshell.concurrency import AdaptiveLimiter
from cliniko2nutshell.nutshell.errors import (
    ConflictError,
    NotFoundError,
    NutshellError,
    OutcomeUnknownError,
    RateLimitedError,
    ServiceError,
)
from cliniko2nutshell.nutshell.events import NutshellRateLimited, NutshellRetrying
from cliniko2nutshell.retry import TRANSIENT_ERRORS, RetryPolicy, is_retryable_status

log = logging.getLogger(__name__)

# Failures where no byte of the request reached Nutshell: repeating is safe even for a create.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class Safety(Enum):
    READ = "read"
    IDEMPOTENT = "idempotent"
    GUARDED = "guarded"
    UNSAFE = "unsafe"


T = TypeVar("T")
ErrorReader = Callable[[httpx.Response], NutshellError | None]


@dataclass
class SendStats:
    """Counters for the dashboard and the run summary."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    outcome_unknown: int = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Sender:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        policy: RetryPolicy,
        limiter: AdaptiveLimiter,
        events: EventSink = ignore,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        max_rate_limited: int = 12,
        max_retry_after: float = 300.0,
    ) -> None:
        self.http = http
        self.policy = policy
        self.limiter = limiter
        self.events = events
        self.sleep = sleep
        self.rng = rng
        # 429s have their own budget: under a sustained limit we slow down rather than give up early.
        self.max_rate_limited = max_rate_limited
        # Unconfirmed: Nutshell documents no Retry-After; a longer wait than this is surfaced as
        # RateLimitedError (with the figure) rather than silently stalling a run for hours.
        self.max_retry_after = max_retry_after
        self.stats = SendStats()

    async def send(
        self,
        build: Callable[[], httpx.Request],
        *,
        safety: Safety,
        where: str,
        read_error: ErrorReader,
        auth: httpx.Auth | None = None,
        consume: Callable[[httpx.Response], Awaitable[T]] | None = None,
        parse: Callable[[httpx.Response], T] | None = None,
    ) -> tuple[httpx.Response, T | None]:
        """Send until an answer that is not worth repeating. Returns the response (body read) and what
        `consume` made of it (consume runs inside the retry loop, so a body dropped midway is retried too), or
        what `parse` read from a successful body. A body `parse` cannot read (ValueError: cut short, garbled by
        a proxy) is a failed try like a dropped connection: repeated where that is safe, and for a create it
        is OutcomeUnknownError, since Nutshell answered 2xx and so probably did it."""
        attempt = 0
        rate_limited = 0
        ambiguous = False  # an earlier try of this write may have been applied
        write = safety is not Safety.READ
        while True:
            attempt += 1
            request = build()
            failure: BaseException | None = None
            response: httpx.Response | None = None
            consumed: T | None = None
            retry_after: float | None = None
            pause = 0.0
            async with self.limiter.slot() as slot:
                self.stats.requests += 1
                sent_at = time.monotonic()
                try:
                    # Credentials travel per request, never on the shared client: nothing leaks to another host.
                    response = await self.http.send(request, auth=auth, stream=True)
                    try:
                        if consume is not None and 200 <= response.status_code < 300:
                            consumed = await consume(response)
                        else:
                            await response.aread()
                    finally:
                        await response.aclose()
                except TRANSIENT_ERRORS as exc:
                    failure = exc
                    response = None
                else:
                    if response.status_code == 429:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        if retry_after is None:
                            pause = self.policy.delay(rate_limited + 1, self.rng)
                        else:
                            pause = min(retry_after, self.max_retry_after)
                        self.limiter.record_rate_limited(slot, pause)
                    elif response.status_code < 500:
                        # Uploads take as long as their bytes: only small JSON answers measure the service's pace.
                        sized = request.headers.get("content-type", "").startswith(("multipart/", "application/oct"))
                        seconds = None if sized else time.monotonic() - sent_at
                        self.limiter.record_success(slot, _kind_of(where), seconds)

            if failure is not None:
                reason = type(failure).__name__
                not_sent = isinstance(failure, NOT_SENT_ERRORS)
                if safety is Safety.UNSAFE and not not_sent:
                    self._unknown(where, reason)
                    raise OutcomeUnknownError(
                        f"the connection failed ({reason}) after the request was sent; it may have been applied",
                        cause=failure,
                        where=where,
                    ) from failure
                ambiguous = ambiguous or (write and not not_sent)
                if attempt >= self.policy.attempts:
                    raise self._exhausted(where, reason, ambiguous, failure)
                await self._retry(where, attempt, reason)
                continue

            assert response is not None
            status = response.status_code
            if status == 429:
                rate_limited += 1
                attempt -= 1  # a refusal is not a failed try: it has its own budget
                self.stats.rate_limited += 1
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise RateLimitedError(
                        f"Nutshell asks to wait {retry_after:.0f} s before the next request",
                        status=429,
                        where=where,
                    )
                if rate_limited > self.max_rate_limited:
                    raise RateLimitedError(
                        f"Nutshell kept answering 429 (rate limited) after {rate_limited} tries",
                        status=429,
                        where=where,
                    )
                self.events(NutshellRateLimited(where, pause, retry_after, self.limiter.limit))
                log.info("nutshell rate limited: %s, waiting %.1fs", where, pause)
                # The limiter holds every request (this one's retry included) until the pause is over.
                continue

            if is_retryable_status(status):
                reason = f"HTTP {status}"
                if safety is Safety.UNSAFE:
                    # Unconfirmed whether a 5xx on a create can follow a committed write; we assume it can.
                    self._unknown(where, reason)
                    raise OutcomeUnknownError(
                        f"Nutshell failed ({reason}) on a write that may have been applied",
                        status=status,
                        where=where,
                    )
                ambiguous = ambiguous or write
                if attempt >= self.policy.attempts:
                    raise self._exhausted(where, reason, ambiguous, None, status)
                await self._retry(where, attempt, reason)
                continue

            error = read_error(response)
            if error is None and parse is None:
                return response, consumed
            if error is None:
                assert parse is not None
                try:
                    return response, parse(response)
                except ValueError as exc:
                    reason = f"an unreadable answer (HTTP {status})"
                    if safety is Safety.UNSAFE:
                        self._unknown(where, reason)
                        raise OutcomeUnknownError(
                            f"Nutshell answered HTTP {status} to a write, but the answer could not be read; "
                            "it was probably applied",
                            cause=exc,
                            status=status,
                            where=where,
                        ) from exc
                    ambiguous = ambiguous or write
                    if attempt >= self.policy.attempts:
                        raise self._exhausted(where, reason, ambiguous, exc, status) from exc
                    await self._retry(where, attempt, reason)
                    continue
            if ambiguous and write and isinstance(error, ConflictError | NotFoundError):
                self._unknown(where, f"HTTP {status} after an ambiguous failure")
                raise OutcomeUnknownError(
                    f"an earlier try may have been applied: the repeat got {error.message!r}",
                    cause=error,
                    status=status,
                    where=where,
                ) from error
            raise error

    async def _retry(self, where: str, attempt: int, reason: str) -> None:
        delay = self.policy.delay(attempt, self.rng)
        self.stats.retries += 1
        self.events(NutshellRetrying(where, attempt, delay, reason))
        log.info("nutshell retry %d after %s: %s, waiting %.1fs", attempt, reason, where, delay)
        await self.sleep(delay)

    def _unknown(self, where: str, reason: str) -> None:
        self.stats.outcome_unknown += 1
        log.warning("nutshell outcome unknown: %s (%s)", where, reason)

    def _exhausted(
        self, where: str, reason: str, ambiguous: bool, cause: BaseException | None, status: int | None = None
    ) -> NutshellError:
        if ambiguous:
            self._unknown(where, reason)
            return OutcomeUnknownError(
                f"gave up after {self.policy.attempts} tries ({reason}); an earlier try may have been applied",
                cause=cause,
                status=status,
                where=where,
            )
        error = ServiceError(
            f"Nutshell did not answer usefully after {self.policy.attempts} tries ({reason})",
            status=status,
            where=where,
        )
        error.__cause__ = cause  # what failed (a timeout, a refused connection), for callers that explain it
        return error


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON body, or None for an empty one. Raises ValueError when it is not JSON."""
    if not response.content:
        return None
    return response.json()


_ID = re.compile(r"/\d[^/?\s]*")


def _kind_of(where: str) -> str:
    """A request's kind for its latency baseline: its label without ids ("GET /rest/contacts/{id}")."""
    return _ID.sub("/{id}", where)
