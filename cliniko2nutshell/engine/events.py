"""Typed events of migration runs: the wizard's dashboard and the headless CLI both consume these.

Events carry ids, counts and Nutshell's error messages; never patient names, e-mails or other field values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cliniko2nutshell.events import Event


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    run_id: int
    kind: str  # sample | full | delta | retry | rollback
    map_version: int | None
    totals: dict[str, int] = field(default_factory=dict)  # planned records per object


@dataclass(frozen=True, slots=True)
class PhaseStarted(Event):
    run_id: int
    phase: str  # companies | people | activities | notes | files (rollback walks them in reverse)
    total: int


@dataclass(frozen=True, slots=True)
class ObjectProgress(Event):
    """Where one object stands in the run; `done` counts every outcome, `total` is what was planned."""

    run_id: int
    object: str
    done: int
    total: int
    created: int = 0
    updated: int = 0
    linked: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deleted: int = 0
    restored: int = 0


@dataclass(frozen=True, slots=True)
class Throughput(Event):
    run_id: int
    ops_per_second: float  # over the last few seconds
    done: int
    total: int
    eta_seconds: float | None  # None until there is a rate to extrapolate from


@dataclass(frozen=True, slots=True)
class Budgets(Event):
    """Both APIs' budgets as the clients report them (None where a client reports nothing)."""

    run_id: int
    nutshell_concurrency: int | None = None
    nutshell_in_flight: int | None = None
    nutshell_throttled: int | None = None  # 429s seen so far
    cliniko_remaining: int | None = None
    cliniko_limit: int | None = None


@dataclass(frozen=True, slots=True)
class RecordFailed(Event):
    run_id: int
    object: str
    source_id: str
    category: str  # unmappable | rejected | dependency | error
    reason: str


@dataclass(frozen=True, slots=True)
class ConflictFound(Event):
    """A record edited in Nutshell since we wrote it; `decision` is what the run did about it."""

    run_id: int
    object: str
    source_id: str
    nutshell_id: str
    decision: str  # skip | overwrite
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recovered(Event):
    """An operation whose outcome was unknown, settled by looking in Nutshell."""

    run_id: int
    object: str
    source_id: str
    found: bool  # True: the record was there and is adopted; False: nothing happened, it will be sent again


@dataclass(frozen=True, slots=True)
class RunPaused(Event):
    run_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class RunResumed(Event):
    run_id: int


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    run_id: int
    kind: str
    outcome: str  # success | partial | failure
    status: str  # finished | paused | interrupted
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
