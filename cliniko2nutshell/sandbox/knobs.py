"""Knobs shared by both sandbox servers: latency, injected faults, a rolling-window rate limiter, and a tally of
the requests served (what `cliniko2nutshell bench` counts, on the server's side of the wire).

Faults are either random (`fault_rate` over `faults`), scripted (`fail_next`, consumed in order) or periodic
(`storm_every`/`storm_length`: a burst of `storm_fault` every so many requests), so tests can be deterministic.
The kinds: 500/502/503 (an error answer, nothing done), "drop" (the connection closes mid-answer, nothing done),
"slow" (stalls `slow_seconds`, then answers normally), "429" (rate limited, with the service's reset header),
"429-bare" (rate limited, no header at all), "truncated" (the request is carried out, then its answer is cut
in half: a body that is not JSON).
Beyond faults: `revoke_after` (the API key stops working after that many requests, until `revoked` is set back
to false), and `edit_every` (every so many requests, someone else edits a record: the service decides which and
lists it in `edited`). Everything under `/_sandbox/` is exempt: it is the sandbox's own control surface.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FAULT_KINDS = ("500", "502", "503", "drop", "slow", "429", "429-bare", "truncated")
CONTROL_PREFIX = "/_sandbox/"


@dataclass
class Knobs:
    # Seconds from a request's arrival to its answer, the sandbox's own work included: a remote service answers in
    # about its round trip whatever it does meanwhile, so the rig's processing time (a Python process on a busy
    # laptop) is hidden inside the latency instead of being added to it. Slower work still answers later.
    latency: float = 0.0
    fault_rate: float = 0.0  # probability that a request gets one of `faults`
    faults: list[str] = field(default_factory=lambda: ["500"])
    slow_seconds: float = 5.0  # how long a "slow" fault stalls before answering normally
    fail_next: list[str] = field(default_factory=list)  # scripted faults for the next requests, in order
    rate_limit: int | None = None  # requests per rolling minute per credential; None: no limit
    seed: int = 0
    retry_after: float = 1.0  # seconds a "429" fault asks the client to wait (in the service's own header)
    # Storms: every `storm_every` seconds (from the first request) every request gets `storm_fault` for
    # `storm_length` seconds, as when someone else spends the whole budget; a "429" says when the storm ends.
    storm_every: float = 0.0
    storm_length: float = 0.0
    storm_fault: str = "429"
    revoke_after: int | None = None  # the API key is refused from this request on (sets `revoked`)
    revoked: bool = False  # the API key is refused (401) until this is set back to false
    edit_every: int = 0  # every n-th request, someone else edits a record first (see `edited`)
    requests: int = 0  # requests seen so far (control requests aside)
    edited: list[str] = field(default_factory=list)  # ids of the records edited by `edit_every`, in order
    # Python-only hooks for tests (never settable over HTTP): called with the request's number before the
    # request is handled, and again when its answer starts (after the service acted on it).
    _on_request: Callable[[int], None] | None = field(default=None, repr=False)
    _on_answer: Callable[[int], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._origin: float | None = None  # when the first request came (storms count from it)

    def update(self, values: dict[str, Any]) -> None:
        with self._lock:
            for key, value in values.items():
                if key.startswith("_") or not hasattr(self, key):
                    raise ValueError(f"unknown knob {key!r}")
                if key in ("faults", "fail_next") and any(v not in FAULT_KINDS for v in value):
                    raise ValueError(f"faults must be among {FAULT_KINDS}")
                if key == "storm_fault" and value not in FAULT_KINDS:
                    raise ValueError(f"storm_fault must be among {FAULT_KINDS}")
                setattr(self, key, value)
            if "seed" in values:
                self._rng = random.Random(self.seed)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def count(self) -> tuple[int, bool]:
        """Count a request: its number, and whether someone else edits a record before it."""
        with self._lock:
            self.requests += 1
            n = self.requests
            if self.revoke_after is not None and n >= self.revoke_after:
                self.revoked, self.revoke_after = True, None
            return n, bool(self.edit_every) and n % self.edit_every == 0

    def draw_fault(self) -> tuple[str | None, float]:
        """The fault for the request at hand (if any), and for a "429" the seconds until it would pass."""
        with self._lock:
            now = time.monotonic()
            if self._origin is None:
                self._origin = now
            if self.fail_next:
                return self.fail_next.pop(0), self.retry_after
            if self.storm_every and self.storm_length:
                into = (now - self._origin) % self.storm_every
                if into < self.storm_length:
                    return self.storm_fault, self.storm_length - into
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults), self.retry_after
        return None, 0.0

    def pick(self, choices: list[str]) -> str:
        """A seeded choice (which record an edit touches)."""
        with self._lock:
            return self._rng.choice(choices)


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


RetryHeaders = Callable[[float], list[tuple[bytes, bytes]]]


class FaultMiddleware:
    """ASGI middleware applying latency, faults and the other knobs before the app sees the request.

    `retry_headers(seconds)` gives the service's own rate-limit headers for a "429" fault; `edit(knobs)` makes
    someone else's edit (returns the id edited, or None when there is nothing to edit)."""

    def __init__(
        self,
        app: Any,
        knobs: Knobs,
        retry_headers: RetryHeaders | None = None,
        edit: Callable[[Knobs], str | None] | None = None,
    ) -> None:
        self.app = app
        self.knobs = knobs
        self.retry_headers = retry_headers or (lambda seconds: [(b"retry-after", str(math.ceil(seconds)).encode())])
        self.edit = edit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        n, edit_now = self.knobs.count()
        if edit_now and self.edit is not None:
            edited = self.edit(self.knobs)
            if edited is not None:
                self.knobs.edited.append(edited)
        if self.knobs._on_request is not None:
            self.knobs._on_request(n)
        if self.knobs.latency:
            send = _answer_at(time.monotonic() + self.knobs.latency, send)
        fault, wait = self.knobs.draw_fault()
        if fault == "slow":
            # The request arrives whole, then the service takes its time: a client that gives up meanwhile does
            # not stop it from being carried out (as behind a real load balancer).
            receive = await _buffered(receive)
            await asyncio.sleep(self.knobs.slow_seconds)
        if fault in (None, "slow"):
            await self.app(scope, receive, self._answered(n, send))
        elif fault == "truncated":
            await self._truncated(scope, receive, self._answered(n, send))
        elif fault == "drop":
            # Promise a body and close the connection early: the client sees the connection drop mid-answer.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise ConnectionAbortedError("sandbox: injected dropped connection")
        elif fault in ("429", "429-bare"):
            extra = self.retry_headers(wait) if fault == "429" else []
            await _answer(send, 429, b'{"error": "Too Many Requests"}', extra)
        else:
            await _answer(send, int(fault), b'{"error": "injected fault"}')

    def _answered(self, n: int, send: Any) -> Any:
        if self.knobs._on_answer is None:
            return send
        hook = self.knobs._on_answer

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                hook(n)
            await send(message)

        return wrapped

    async def _truncated(self, scope: dict, receive: Any, send: Any) -> None:
        """Carry the request out, then send the first half of its answer as if it were all of it."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)] if body else b"{"
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(cut)).encode())]})
        await send({"type": "http.response.body", "body": cut})


class _Oversleep:
    """How late the event loop wakes from a sleep, on average (its timers round up to the millisecond and wake
    a little after): at 50 ms of latency that is 2-3% more than asked. Sleeping that much less answers on time."""

    late = 0.0

    @classmethod
    async def sleep_until(cls, due: float) -> None:
        wait = due - time.monotonic() - cls.late
        if wait <= 0:
            return
        await asyncio.sleep(wait)
        cls.late = max(0.0, min(0.005, cls.late + (time.monotonic() - due) * 0.1))


def _answer_at(due: float, send: Any) -> Any:
    """`send`, holding the answer back until `due` (the latency knob: time to answer, our own work included)."""

    async def when_due(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            await _Oversleep.sleep_until(due)
        await send(message)

    return when_due


async def _buffered(receive: Any) -> Any:
    """Read the request body now; the app gets it replayed later, whether the client is still there or not."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break

    async def replay() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return await receive()

    return replay


async def _answer(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


# A path segment that is an id (Cliniko "123", Nutshell "12-contacts", a blob token) is counted as {id}.
_ID_SEGMENT = re.compile(r"^(\d+(-[A-Za-z]+)?|[A-Za-z0-9_.~-]{24,})$")
LABEL_KEY = "sandbox.label"  # an app may name a request better than its path (a JSON-RPC method) in its scope


class RequestTally:
    """Requests served, by label ("GET /rest/contacts", "rpc getContact") and by answer status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_label: collections.Counter[str] = collections.Counter()
        self.by_status: collections.Counter[int] = collections.Counter()

    def add(self, label: str, status: int) -> None:
        with self._lock:
            self.by_label[label] += 1
            self.by_status[status] += 1

    def public(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self.by_label.values()),
                "throttled": self.by_status.get(429, 0),
                "by_label": dict(self.by_label),
                "by_status": {str(k): v for k, v in self.by_status.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self.by_label.clear()
            self.by_status.clear()


def path_label(method: str, path: str) -> str:
    return f"{method} " + "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


class TallyMiddleware:
    """ASGI middleware (outermost) counting every request but the control surface, with the status answered."""

    def __init__(self, app: Any, tally: RequestTally) -> None:
        self.app = app
        self.tally = tally

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        status = 0

        async def counted(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.tally.add(scope.get(LABEL_KEY) or path_label(scope["method"], scope["path"]), status)


def knob_routes(knobs: Knobs, on_reset: Any = None, tally: RequestTally | None = None) -> list[Route]:
    """GET/POST /_sandbox/knobs: read or change the knobs at run time (the tests and `sandbox` use it); GET
    /_sandbox/requests: the tally of requests served (POST resets it)."""

    async def knobs_endpoint(request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                knobs.update(await request.json())
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            if on_reset is not None:
                on_reset()
        return JSONResponse(knobs.public())

    routes = [Route("/_sandbox/knobs", knobs_endpoint, methods=["GET", "POST"])]
    if tally is not None:

        async def requests_endpoint(request: Request) -> JSONResponse:
            if request.method == "POST":
                tally.reset()
            return JSONResponse(tally.public())

        routes.append(Route("/_sandbox/requests", requests_endpoint, methods=["GET", "POST"]))
    return routes
