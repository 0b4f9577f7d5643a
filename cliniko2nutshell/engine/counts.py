"""Per-object tallies of a run, and the summary every run returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cliniko2nutshell.engine.journal import Outcome, RunStatus


@dataclass(slots=True)
class Counts:
    planned: int = 0
    created: int = 0
    updated: int = 0
    linked: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    conflicts: int = 0
    deleted: int = 0
    restored: int = 0

    @property
    def done(self) -> int:
        return (
            self.created
            + self.updated
            + self.linked
            + self.unchanged
            + self.skipped
            + self.failed
            + self.conflicts
            + self.deleted
            + self.restored
        )

    @property
    def written(self) -> int:
        return self.created + self.updated + self.linked + self.deleted + self.restored

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if v} | {"done": self.done}


@dataclass(slots=True)
class RunSummary:
    """What a run did. `outcome`: success, partial (quarantined records or skipped conflicts) or failure."""

    run_id: int
    kind: str
    outcome: Outcome
    status: RunStatus
    counts: dict[str, Counts] = field(default_factory=dict)
    quarantined: int = 0  # records of this run now in quarantine
    conflicts: int = 0
    recovered: int = 0  # operations of unknown outcome settled by looking in Nutshell
    elapsed_seconds: float = 0.0
    message: str = ""
    reports: list[str] = field(default_factory=list)  # files written under reports/
    phase_seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase run
    estimate: dict[str, Any] | None = None  # what engine/estimate.py expected before the run (Estimate.as_dict)

    @property
    def writes(self) -> int:
        return sum(c.written for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "outcome": self.outcome.value,
            "status": self.status.value,
            "counts": {k: c.as_dict() for k, c in sorted(self.counts.items())},
            "quarantined": self.quarantined,
            "conflicts": self.conflicts,
            "recovered": self.recovered,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "message": self.message,
            "reports": self.reports,
            "phase_seconds": {k: round(v, 3) for k, v in self.phase_seconds.items()},
            "estimate": self.estimate,
        }
