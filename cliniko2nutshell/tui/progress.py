"""Progress boards: what a long job has done so far, built from the engine's and the extraction's typed events.

A job's thread applies events as they come (hundreds a second in a large run); the screens read a copy a few
times a second (`snapshot()`), so a busy run never floods the UI with messages. Pure: no Textual.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from cliniko2nutshell.cliniko import events as cx
from cliniko2nutshell.engine import events as ev
from cliniko2nutshell.events import Event

PAGE_SIZE = 100  # Cliniko's per_page maximum, which the client always asks for


@dataclass
class ObjectRow:
    name: str
    done: int = 0
    total: int | None = None
    pages: int = 0
    status: str = "waiting"  # waiting | reading | done | unavailable


@dataclass
class ExtractView:
    """A frozen copy of an extraction's progress."""

    incremental: bool = False
    objects: dict[str, ObjectRow] = field(default_factory=dict)
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    budget_remaining: int | None = None
    budget_limit: int | None = None
    attachments: tuple[int, int, int, int] = (0, 0, 0, 0)  # done, total, downloaded, bytes
    elapsed: float = 0.0
    finished: bool = False
    summary: cx.ExtractSummary | None = None

    @property
    def remaining_requests(self) -> int | None:
        """Pages still to read (where totals are known) plus attachments still to fetch."""
        pages = 0
        for row in self.objects.values():
            if row.status == "done" or row.status == "unavailable":
                continue
            if row.total is None:
                return None
            pages += math.ceil(max(row.total - row.done, 0) / PAGE_SIZE)
        done, total, _, _ = self.attachments
        return pages + max(total - done, 0)

    @property
    def eta_seconds(self) -> float | None:
        remaining = self.remaining_requests
        if remaining is None or self.finished:
            return None
        per_second = self.requests / self.elapsed if self.elapsed > 5 and self.requests else None
        if self.budget_limit:
            allowed = self.budget_limit / 60
            per_second = min(per_second, allowed) if per_second else allowed
        return remaining / per_second if per_second else None


class ExtractBoard:
    def __init__(self, incremental: bool = False, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._view = ExtractView(incremental=incremental)

    def __call__(self, event: Event) -> None:
        with self._lock:
            v = self._view
            v.elapsed = self._clock() - self._started
            match event:
                case cx.ExtractStarted(objects=objects):
                    for name in objects:
                        v.objects.setdefault(name, ObjectRow(name))
                case cx.ObjectStarted(object=name):
                    v.objects.setdefault(name, ObjectRow(name)).status = "reading"
                case cx.ObjectProgress():
                    row = v.objects.setdefault(event.object, ObjectRow(event.object))
                    row.done, row.total, row.status = event.done, event.total, "reading"
                    row.pages += 1
                    v.requests = event.requests
                    v.budget_remaining, v.budget_limit = event.budget_remaining, event.budget_limit
                case cx.ObjectFinished():
                    row = v.objects.setdefault(event.object, ObjectRow(event.object))
                    row.status, row.pages = "done", max(row.pages, event.pages)
                    row.total = max(row.done, row.total or 0)
                case cx.ObjectUnavailable():
                    v.objects.setdefault(event.object, ObjectRow(event.object)).status = "unavailable"
                case cx.AttachmentProgress():
                    v.attachments = (event.done, event.total, event.downloaded, event.bytes)
                case cx.RateLimited():
                    v.rate_limited += 1
                case cx.RequestRetried():
                    v.retries += 1
                case cx.ExtractSummary():
                    v.finished, v.summary = True, event
                    v.requests, v.rate_limited, v.retries = event.requests, event.rate_limited, event.retries

    def snapshot(self) -> ExtractView:
        with self._lock:
            v = self._view
            if not v.finished:
                v.elapsed = self._clock() - self._started
            return replace(v, objects={k: replace(r) for k, r in v.objects.items()})


@dataclass
class Failure:
    object: str
    source_id: str
    category: str
    reason: str


@dataclass
class RunView:
    """A frozen copy of a migration run's progress (sample, full, retry, delta or rollback)."""

    run_id: int | None = None
    kind: str = ""
    phase: str = ""
    objects: dict[str, ev.ObjectProgress] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    throughput: list[float] = field(default_factory=list)  # ops/s, one point per Throughput event kept
    ops_per_second: float = 0.0
    done: int = 0
    total: int = 0
    eta_seconds: float | None = None
    budgets: ev.Budgets | None = None
    failures: list[Failure] = field(default_factory=list)  # the most recent, newest last
    failed_total: int = 0
    conflicts: list[ev.ConflictFound] = field(default_factory=list)
    recovered: int = 0
    paused: str | None = None  # the reason, while paused
    finished: ev.RunFinished | None = None
    elapsed: float = 0.0


MAX_FAILURES_KEPT = 500
THROUGHPUT_POINTS = 120


class RunBoard:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._view = RunView()
        self._failures: deque[Failure] = deque(maxlen=MAX_FAILURES_KEPT)
        self._throughput: deque[float] = deque(maxlen=THROUGHPUT_POINTS)

    def __call__(self, event: Event) -> None:
        with self._lock:
            v = self._view
            match event:
                case ev.RunStarted():
                    # A sample or delta may run a rollback or an extraction first: the board follows the last run.
                    v.run_id, v.kind, v.totals = event.run_id, event.kind, dict(event.totals)
                    v.objects, v.finished, v.paused = {}, None, None
                    v.total = sum(event.totals.values())
                case ev.PhaseStarted():
                    v.phase = event.phase
                case ev.ObjectProgress():
                    v.objects[event.object] = event
                case ev.Throughput():
                    v.ops_per_second, v.done, v.total, v.eta_seconds = (
                        event.ops_per_second,
                        event.done,
                        event.total,
                        event.eta_seconds,
                    )
                    self._throughput.append(event.ops_per_second)
                case ev.Budgets():
                    v.budgets = event
                case ev.RecordFailed():
                    self._failures.append(Failure(event.object, event.source_id, event.category, event.reason))
                    v.failed_total += 1
                case ev.ConflictFound():
                    v.conflicts.append(event)
                case ev.Recovered():
                    v.recovered += 1
                case ev.RunPaused():
                    v.paused = event.reason
                case ev.RunResumed():
                    v.paused = None
                case ev.RunFinished():
                    v.finished, v.paused = event, None

    def snapshot(self) -> RunView:
        with self._lock:
            v = self._view
            if v.finished is None:
                v.elapsed = self._clock() - self._started
            return replace(
                v,
                objects=dict(v.objects),
                totals=dict(v.totals),
                throughput=list(self._throughput),
                failures=list(self._failures),
                conflicts=list(v.conflicts),
            )
