"""Reconcile: per object, what Cliniko has to move, what our journal says we wrote, and what Nutshell holds for
this project (counted by reading Nutshell, recognising our records by their markers), plus every failed or
quarantined record with its reason.

Reading Nutshell rather than trusting the journal also finds what the journal cannot: records of ours that
were deleted in Nutshell (missing), and copies the journal does not know (duplicates, orphans).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cliniko2nutshell.engine.destination import Destination, Entity
from cliniko2nutshell.engine.journal import Journal, Quarantined
from cliniko2nutshell.engine.markers import remote_markers
from cliniko2nutshell.engine.ops import OBJECTS, PHASES, Op, phase_of
from cliniko2nutshell.engine.pool import pool
from cliniko2nutshell.engine.runner import PlanSource

# Missing, duplicated and unknown records the `reconciled` milestone keeps of each kind (the report has them all).
SAVED_ITEMS = 200
READ_WORKERS = 8  # reads in flight while reconciling files (the run's default concurrency)


@dataclass(slots=True)
class ObjectLine:
    object: str
    planned: int = 0  # Cliniko records the map moves
    skipped: int = 0  # left out by the map or a policy
    unmappable: int = 0
    journal: int = 0  # in our id map
    nutshell: int = 0  # found in Nutshell by marker (files: on our activities)
    missing: int = 0  # in our id map, not in Nutshell
    duplicates: int = 0  # more than one Nutshell record for one Cliniko record
    orphans: int = 0  # marked as ours in Nutshell, unknown to the id map
    quarantined: int = 0

    @property
    def balanced(self) -> bool:
        """What Cliniko has to move, what we wrote and what Nutshell holds agree (failures are listed apart)."""
        return self.planned == self.journal == self.nutshell and not (self.missing or self.duplicates or self.orphans)


@dataclass(slots=True)
class Reconciliation:
    lines: dict[str, ObjectLine] = field(default_factory=dict)
    quarantine: list[Quarantined] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (object, source id, nutshell id)
    duplicates: list[tuple[str, str, list[str]]] = field(default_factory=list)
    orphans: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return all(line.balanced for line in self.lines.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "balanced": self.balanced,
            "objects": {
                k: {f: getattr(v, f) for f in v.__dataclass_fields__} | {"balanced": v.balanced}
                for k, v in sorted(self.lines.items())
            },
            "quarantine": [
                {
                    "object": q.object,
                    "source_id": q.source_id,
                    "category": q.category,
                    "reason": q.reason,
                    "attempts": q.attempts,
                    "run_id": q.run_id,
                }
                for q in self.quarantine
            ],
            "missing": [list(t) for t in self.missing],
            "duplicates": [[o, s, ids] for o, s, ids in self.duplicates],
            "orphans": [list(t) for t in self.orphans],
        }


def saved(rec: Reconciliation) -> dict[str, Any]:
    """What the `reconciled` milestone keeps so the result can be shown again without reading Nutshell: the row
    of every object, how many records are missing, duplicated or unknown, and the first SAVED_ITEMS of each.
    Failures are not kept: the journal's quarantine list is always the current one."""
    data = rec.as_dict()
    del data["quarantine"]
    data["totals"] = {key: len(data[key]) for key in ("missing", "duplicates", "orphans")}
    for key in ("missing", "duplicates", "orphans"):
        data[key] = data[key][:SAVED_ITEMS]
    return data


def from_saved(data: dict[str, Any], quarantine: list[Quarantined]) -> Reconciliation:
    """The reconciliation `saved` kept, with today's quarantine list."""
    names = [f for f in ObjectLine.__dataclass_fields__ if f != "object"]
    return Reconciliation(
        lines={obj: ObjectLine(obj, **{f: int(row.get(f, 0)) for f in names}) for obj, row in data["objects"].items()},
        quarantine=list(quarantine),
        missing=[(o, s, n) for o, s, n in data.get("missing", [])],
        duplicates=[(o, s, list(ids)) for o, s, ids in data.get("duplicates", [])],
        orphans=[(o, s, n) for o, s, n in data.get("orphans", [])],
    )


async def reconcile(journal: Journal, dest: Destination, plan: PlanSource) -> Reconciliation:
    result = Reconciliation()
    lines: dict[str, ObjectLine] = {o: ObjectLine(o) for o in OBJECTS}
    skipped = journal.policy_skipped()  # left out by the existing-person policy (and what depends on them)
    for phase in PHASES:
        for op in plan.ops(phase):
            _count_planned(lines[op.object], op, op.key in skipped)
    for obj, n in journal.count_mapped().items():
        lines.setdefault(obj, ObjectLine(obj)).journal = n
    result.quarantine = journal.quarantine_list()
    for q in result.quarantine:
        lines.setdefault(q.object, ObjectLine(q.object)).quarantined += 1

    mapped_ids: dict[str, tuple[str, str]] = {}
    for m in journal.iter_mapped():
        mapped_ids[m.nutshell_id] = (m.object, m.source_id)
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entity in (Entity.ACCOUNTS, Entity.CONTACTS, Entity.ACTIVITIES, Entity.NOTES):
        async for remote in dest.scan(entity):
            ours = mapped_ids.get(remote.id)
            marks = remote_markers(entity.value, remote.fields)
            if ours is not None:
                found[ours].append(remote.id)
                continue
            for object_, source_id in marks:
                # people carry only their patient id: they count as the person record
                found[(object_ if object_ in OBJECTS else "person", source_id)].append(remote.id)
    for (object_, source_id), ids in sorted(found.items()):
        line = lines.setdefault(object_, ObjectLine(object_))
        line.nutshell += 1
        mapped = journal.mapped(object_, source_id)
        if mapped is None:
            line.orphans += 1
            result.orphans += [(object_, source_id, i) for i in ids]
        elif len(set(ids)) > 1:
            line.duplicates += 1
            result.duplicates.append((object_, source_id, sorted(set(ids))))
    # Activity lists do not carry their files: one read per activity holding ours, a few at a time.
    files_on: dict[str, set[str]] = {}
    hosts = {m.parent_id or "" for m in journal.iter_mapped() if phase_of(m.object).value == "files"}

    async def read_files(host: str) -> None:
        files_on[host] = {f.id for f in await dest.list_files(host) if f.fields.get("size")}

    await pool(hosts, read_files, READ_WORKERS)
    for m in journal.iter_mapped():
        if phase_of(m.object).value == "files":
            host = m.parent_id or ""
            if m.nutshell_id in files_on[host]:
                lines[m.object].nutshell += 1
            else:
                lines[m.object].missing += 1
                result.missing.append((m.object, m.source_id, m.nutshell_id))
        elif (m.object, m.source_id) not in found:
            lines[m.object].missing += 1
            result.missing.append((m.object, m.source_id, m.nutshell_id))
    result.lines = {k: v for k, v in lines.items() if any(_values(v))}
    return result


def _values(line: ObjectLine) -> list[int]:
    return [getattr(line, f) for f in line.__dataclass_fields__ if f != "object"]


def _count_planned(line: ObjectLine, op: Op, policy_skipped: bool = False) -> None:
    if op.retire is not None:
        return
    if op.skip is not None or policy_skipped:
        line.skipped += 1
    elif op.unmappable is not None:
        line.unmappable += 1
    else:
        line.planned += 1
