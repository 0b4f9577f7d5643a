"""The client-side limiter: at most `limit` requests in any rolling `window` seconds, as Cliniko counts them.

Cliniko (and the sandbox) count requests per key in a rolling 60 s window and answer 429 past the limit. To use the
whole budget without ever tripping that, we keep a sliding log like the server's, with one twist: a request is
logged at the moment its response arrived, not when it was sent. The server stamped it somewhere between the two,
so "response time + window" is never earlier than the moment the server frees that slot, whatever the latency or
its jitter. Requests still in flight hold a slot that does not expire. No extra safety margin is needed (the
benchmark in tests/benchmarks/bench_extract.py measures 429s to prove it), and the cost is one round trip per
slot per minute, well under 1 % of the budget.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol


class Clock(Protocol):
    """Time for the limiter: injectable so tests can simulate minutes in milliseconds."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RollingWindowLimiter:
    """`async with limiter.slot(): send()` waits until one more request keeps the rolling window within `limit`."""

    def __init__(self, limit: int = 200, window: float = 60.0, clock: Clock | None = None) -> None:
        if limit < 1:
            raise ValueError("the rate limit must be at least 1 request per window")
        self.limit = limit
        self.window = window
        self.clock: Clock = clock or SystemClock()
        self._done: list[float] = []  # heap of completion times (monotonic) still inside the window
        self._in_flight = 0
        self._blocked_until = 0.0  # monotonic; set after a 429
        self._turn = asyncio.Lock()  # one waiter at a time: first come, first served
        self._released = asyncio.Event()

    # -- state -----------------------------------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        # The server evicts a hit once `hit <= now - window`; a slot is free from `done + window` on.
        while self._done and self._done[0] + self.window <= now:
            heapq.heappop(self._done)

    @property
    def used(self) -> int:
        """Slots taken in the current window (in flight included)."""
        self._expire(self.clock.monotonic())
        return len(self._done) + self._in_flight

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    # -- use -------------------------------------------------------------------------------------------------
    async def acquire(self) -> None:
        async with self._turn:
            while True:
                now = self.clock.monotonic()
                if now < self._blocked_until:
                    await self.clock.sleep(self._blocked_until - now)
                    continue
                self._expire(now)
                if len(self._done) + self._in_flight < self.limit:
                    self._in_flight += 1
                    return
                if self._done:
                    await self.clock.sleep(max(0.0, self._done[0] + self.window - now))
                else:
                    # Every slot is in flight: only a completion can change anything, and it adds to the log.
                    self._released.clear()
                    await self._released.wait()

    def release(self) -> None:
        """The response (or the failure) of an acquired request has arrived."""
        self._in_flight -= 1
        heapq.heappush(self._done, self.clock.monotonic())
        self._released.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def block_until_wall(self, epoch_seconds: float) -> float:
        """After a 429: nobody sends before `epoch_seconds` (wall clock). Returns the wait in seconds from now."""
        wait = max(0.0, epoch_seconds - self.clock.wall())
        self._blocked_until = max(self._blocked_until, self.clock.monotonic() + wait)
        return wait
