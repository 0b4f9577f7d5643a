"""Knobs shared by both sandbox servers: latency, injected faults, and a rolling-window rate limiter.

Faults are either random (`fault_rate` over `faults`) or scripted (`fail_next`, consumed in order), so tests can
be deterministic. Everything under `/_sandbox/` is exempt: it is the sandbox's own control surface.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FAULT_KINDS = ("500", "502", "503", "drop", "slow")
CONTROL_PREFIX = "/_sandbox/"


@dataclass
class Knobs:
    latency: float = 0.0  # seconds added before every answer
    fault_rate: float = 0.0  # probability that a request gets one of `faults`
    faults: list[str] = field(default_factory=lambda: ["500"])
    slow_seconds: float = 5.0  # how long a "slow" fault stalls before answering normally
    fail_next: list[str] = field(default_factory=list)  # scripted faults for the next requests, in order
    rate_limit: int | None = None  # requests per rolling minute per credential; None: no limit
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def update(self, values: dict[str, Any]) -> None:
        with self._lock:
            for key, value in values.items():
                if key.startswith("_") or not hasattr(self, key):
                    raise ValueError(f"unknown knob {key!r}")
                if key in ("faults", "fail_next") and any(v not in FAULT_KINDS for v in value):
                    raise ValueError(f"faults must be among {FAULT_KINDS}")
                setattr(self, key, value)
            if "seed" in values:
                self._rng = random.Random(self.seed)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def draw_fault(self) -> str | None:
        """The fault for the request at hand, if any."""
        with self._lock:
            if self.fail_next:
                return self.fail_next.pop(0)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
        return None


class RollingWindowLimiter:
    """At most `limit` requests per key in any `window` seconds (a log of request times per key)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, now: float | None = None) -> tuple[bool, int, float]:
        """Record a request. Returns (allowed, remaining, reset): reset is the epoch second when a slot frees."""
        now = time.time() if now is None else now
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= limit:
                return False, 0, hits[0] + self.window
            hits.append(now)
            reset = hits[0] + self.window
            return True, limit - len(hits), reset

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


class FaultMiddleware:
    """ASGI middleware applying latency and faults before the app sees the request."""

    def __init__(self, app: Any, knobs: Knobs) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.knobs.latency:
            await asyncio.sleep(self.knobs.latency)
        fault = self.knobs.draw_fault()
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "slow":
            await asyncio.sleep(self.knobs.slow_seconds)
            await self.app(scope, receive, send)
        elif fault == "drop":
            # Promise a body and close the connection early: the client sees the connection drop mid-answer.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise ConnectionAbortedError("sandbox: injected dropped connection")
        else:
            body = b'{"error": "injected fault"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": int(fault),
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})


def knob_routes(knobs: Knobs, on_reset: Any = None) -> list[Route]:
    """GET/POST /_sandbox/knobs: read or change the knobs at run time (the tests and `sandbox` use it)."""

    async def knobs_endpoint(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                knobs.update(await request.json())
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if on_reset is not None:
                on_reset()
        return JSONResponse(knobs.public())

    return [Route("/_sandbox/knobs", knobs_endpoint, methods=["GET", "POST"])]
