"""Adaptive concurrency (AIMD) for Nutshell calls: halve the limit on a 429, cut it by a quarter when answers slow
down, add one after a run of successes.

Nutshell publishes no rate limit, so the client starts at a modest limit and lets the service tell it when to
slow down. Many requests in flight can hit the same 429 burst; only the first answer from requests started
since the last decrease halves the limit again (each slot remembers the "epoch" it was granted in).

Rising latency is the earlier signal: a service that queues our requests answers slower before it refuses any.
Each kind of request (its label: "POST /rest/activities", "rpc getContact") keeps the fastest answer it has
had as its baseline; a smoothed ratio of answer time to baseline over all kinds is the pressure, where an answer
less than LATENCY_RISE_MIN seconds over its baseline counts as 1 (loopback's millisecond jitter is not a queue).
Pressure of twice the baseline takes a quarter off the limit, once per epoch, and holds the additive recovery
until the pressure eases. The baseline creeps up towards what is seen, so a service that is simply farther away
today stops counting as pressure.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

LimitListener = Callable[[int, int, str], None]  # (new limit, previous limit, reason)

LATENCY_BACKOFF = 2.0  # pressure (answer time / baseline, smoothed) that cuts the limit
LATENCY_EASED = 1.5  # below this the limit may grow again
LATENCY_RISE_MIN = 0.1  # seconds above the baseline before a slower answer counts
LATENCY_WARMUP = 10  # answers of a kind before its baseline is trusted
SMOOTHING = 0.2  # weight of each new answer in the pressure
BASELINE_CREEP = 0.002  # share of the distance to each answer the baseline moves up by


@dataclass(slots=True)
class Slot:
    """One granted request slot; `epoch` is the limiter's decrease count when it was granted."""

    epoch: int


class AdaptiveLimiter:
    def __init__(
        self,
        initial: int = 8,
        *,
        minimum: int = 1,
        maximum: int = 32,
        increase_after: int = 20,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_change: LimitListener | None = None,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        if increase_after < 1:
            raise ValueError("increase_after must be at least 1")
        self._limit = initial
        self.minimum = minimum
        self.maximum = maximum
        self.increase_after = increase_after
        self._clock = clock
        self._sleep = sleep
        self.on_change = on_change  # told of every change of the limit (the dashboard)
        self._in_flight = 0
        self._epoch = 0
        self._successes = 0
        self._paused_until = 0.0
        self._baseline: dict[str, tuple[float, int]] = {}  # label -> (fastest answer, answers seen)
        self.pressure = 1.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def limit(self) -> int:
        """The current concurrency limit (for the dashboard)."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def paused_for(self) -> float:
        """Seconds left in a Retry-After pause (0 when none)."""
        return max(0.0, self._paused_until - self._clock())

    async def acquire(self) -> Slot:
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release_one()  # the slot was handed over just as we were cancelled
                elif waiter in self._waiters:  # `_wake` drops a waiter cancelled before its turn
                    self._waiters.remove(waiter)
                raise
        slot = Slot(self._epoch)
        try:
            while (wait := self._paused_until - self._clock()) > 0:
                await self._sleep(wait)
        except BaseException:
            self._release_one()
            raise
        # A pause may have lowered the limit; the epoch that counts is the one we start sending in.
        slot.epoch = self._epoch
        return slot

    def release(self, _slot: Slot) -> None:
        self._release_one()

    def _release_one(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1  # hand the slot over directly, so no newcomer can jump the queue
                waiter.set_result(None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        granted = await self.acquire()
        try:
            yield granted
        finally:
            self.release(granted)

    def cap(self, maximum: int) -> None:
        """Never more than `maximum` in flight (the limit still halves on 429s and recovers up to it)."""
        if maximum < self.minimum:
            raise ValueError(f"the cap must be at least {self.minimum}")
        self.maximum = maximum
        if self._limit > maximum:
            self._set_limit(maximum, "capped")
        elif self._limit < maximum and self._epoch == 0:
            self._set_limit(maximum, "capped")  # nothing throttled yet: start at the cap
            self._wake()

    def record_success(self, slot: Slot, label: str | None = None, seconds: float | None = None) -> None:
        """An answer that was not a 429; with `label` and `seconds`, its time counts towards the pressure."""
        if label is not None and seconds is not None and self._slower(slot, label, seconds):
            return
        if self.pressure >= LATENCY_EASED:
            return
        self._successes += 1
        if self._successes >= self.increase_after:
            self._successes = 0
            if self._limit < self.maximum:
                self._set_limit(self._limit + 1, "recovered")
                self._wake()

    def record_rate_limited(self, slot: Slot, pause: float | None = None) -> bool:
        """A 429 for a request sent in `slot`. Pauses everyone for `pause` seconds; True if the limit halved."""
        if pause is not None and pause > 0:
            self._paused_until = max(self._paused_until, self._clock() + pause)
        self._successes = 0
        if slot.epoch != self._epoch:
            return False  # this request was sent before the last decrease: that decrease already covers it
        self._epoch += 1
        self._set_limit(max(self.minimum, self._limit // 2), "rate limited")
        return True

    def _slower(self, slot: Slot, label: str, seconds: float) -> bool:
        """Count an answer's time; True when it cut the limit."""
        base, seen = self._baseline.get(label, (seconds, 0))
        base = seconds if seconds < base else base + (seconds - base) * BASELINE_CREEP
        self._baseline[label] = (base, seen + 1)
        if seen < LATENCY_WARMUP:
            return False
        ratio = seconds / max(base, 1e-3) if seconds - base >= LATENCY_RISE_MIN else 1.0
        self.pressure += (ratio - self.pressure) * SMOOTHING
        if self.pressure < LATENCY_BACKOFF or slot.epoch != self._epoch:
            return False
        self._epoch += 1
        self._successes = 0
        self._set_limit(max(self.minimum, self._limit * 3 // 4), "answers slowing")
        return True

    def _set_limit(self, value: int, reason: str) -> None:
        previous, self._limit = self._limit, value
        if self.on_change is not None and value != previous:
            self.on_change(value, previous, reason)
