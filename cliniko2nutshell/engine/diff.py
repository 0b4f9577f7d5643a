"""The sample's field-level diff: for every record the sample wrote, read it back from Nutshell and compare,
field by field, the Cliniko value, the value the map says to write, and the value Nutshell holds.

Statuses: match (stored as expected, and as in Cliniko), transformed (stored as expected; the map changed the
Cliniko value on the way, e.g. a phone number to E.164), truncated (Nutshell kept only the start), missing
(expected, but Nutshell has nothing), mismatch (anything else). Mismatches come first.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cliniko2nutshell.engine.destination import Destination, Entity
from cliniko2nutshell.engine.fields import empty, same
from cliniko2nutshell.engine.journal import Journal, Origin
from cliniko2nutshell.engine.ops import Op, RecordRef
from cliniko2nutshell.project.store import Store


class Status(StrEnum):
    MISMATCH = "mismatch"
    MISSING = "missing"
    TRUNCATED = "truncated"
    TRANSFORMED = "transformed"
    MATCH = "match"


ORDER = {s: i for i, s in enumerate(Status)}


@dataclass(frozen=True, slots=True)
class DiffRow:
    object: str
    source_id: str
    nutshell_id: str | None
    field: str
    source: str | None  # the Cliniko value (None where the value is derived from several fields)
    expected: str | None
    stored: str | None
    status: Status
    note: str = ""


@dataclass(slots=True)
class DiffReport:
    run_id: int
    rows: list[DiffRow] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(r.status.value for r in self.rows)
        return {s.value: c.get(s.value, 0) for s in Status}

    def by_object(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for r in self.rows:
            out.setdefault(r.object, Counter())[r.status.value] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    @property
    def problems(self) -> list[DiffRow]:
        return [r for r in self.rows if r.status in (Status.MISMATCH, Status.MISSING, Status.TRUNCATED)]


# Cliniko fields behind the structured targets (for the "source" column).
_RAW_SOURCES: dict[tuple[str, str], tuple[str, ...]] = {
    ("person", "emails"): ("email",),
    ("person", "phones"): ("patient_phone_numbers",),
    ("company", "emails"): ("email",),
    ("company", "phones"): ("phone_numbers",),
    ("appointment", "startTime"): ("starts_at",),
    ("appointment", "endTime"): ("ends_at",),
    ("communication", "startTime"): ("created_at",),
    ("communication", "endTime"): ("created_at",),
}
_STORE_OBJECT = {
    "person": "patients",
    "company": "contacts",
    "business_company": "businesses",
    "appointment": "individual_appointments",
    "attendance": "attendees",
    "communication": "communications",
    "medical_alert": "medical_alerts",
    "treatment_note": "treatment_notes",
    "treatment_note_activity": "treatment_notes",
    "attachment_activity": "patient_attachments",
}
_CUSTOM_SOURCES = {
    "Cliniko Patient ID": "id",
    "Date of Birth": "date_of_birth",
}


def text(value: Any) -> str | None:
    """A value as the report shows it."""
    if empty(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "amount" in value:
        return f"{value['amount']} {value.get('currency') or ''}".strip()
    if isinstance(value, list) and all(isinstance(v, dict) and "value" in v for v in value):
        return "; ".join(text(v.get("value")) or "" for v in value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(sorted(value))
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _leaves(payload: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in payload.items():
        if key in ("customFields", "links") and isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            out.append((key, value))
    return out


def _get(fields: dict[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = fields.get(head)
    if rest and head in ("customFields", "links"):
        return (value or {}).get(rest) if isinstance(value, dict) else None
    return value


def _source(store: Store, op: Op, path: str) -> str | None:
    table = _STORE_OBJECT.get(op.object)
    raw = store.get_record(table, op.source_id) if table else None
    if raw is None:
        return None
    names: tuple[str, ...] = ()
    if path.startswith("customFields."):
        name = _CUSTOM_SOURCES.get(path.removeprefix("customFields."))
        names = (name,) if name else ()
    elif op.object == "person" and path == "name":
        return text(" ".join(x for x in (raw.get("first_name"), raw.get("last_name")) if x)) or text(raw.get("label"))
    else:
        names = _RAW_SOURCES.get((op.object, path), ())
    values = [raw.get(n) for n in names]
    if not names:
        return None
    if names == ("patient_phone_numbers",) or names == ("phone_numbers",):
        return "; ".join(p.get("number", "") for p in values[0] or [] if isinstance(p, dict)) or None
    return "; ".join(text(v) or "" for v in values) or None


def classify(source: str | None, expected: Any, stored: Any) -> Status:
    if not empty(expected) and empty(stored):
        return Status.MISSING
    if same(expected, stored):
        exp = text(expected)
        if source is None or exp is None or source.strip() == exp.strip():
            return Status.MATCH
        return Status.TRANSFORMED
    shorter = isinstance(expected, str) and isinstance(stored, str) and 0 < len(stored) < len(expected)
    if shorter and expected.startswith(stored.rstrip(".… ")):
        return Status.TRUNCATED
    return Status.MISMATCH


def _resolve(journal: Journal, value: Any) -> Any:
    if isinstance(value, RecordRef):
        m = journal.mapped(value.object, value.source_id)
        return m.nutshell_id if m else f"(not migrated: {value.object} {value.source_id})"
    if isinstance(value, dict):
        return {k: _resolve(journal, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(journal, v) for v in value]
    return value


async def diff_sample(
    run_id: int, ops: list[Op], journal: Journal, dest: Destination, store: Store, *, workers: int = 8
) -> DiffReport:
    """Compare every op of the sample with what Nutshell holds now."""
    report = DiffReport(run_id)
    rows: list[list[DiffRow]] = [[] for _ in ops]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i, op in enumerate(ops):
        if op.skip is None and op.retire is None:
            queue.put_nowait(i)

    async def work() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            rows[i] = await _diff_one(ops[i], journal, dest, store)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, workers)):
            group.create_task(work())
    report.rows = sorted((r for rs in rows for r in rs), key=lambda r: (ORDER[r.status], r.object, r.source_id))
    return report


async def _diff_one(op: Op, journal: Journal, dest: Destination, store: Store) -> list[DiffRow]:
    mapped = journal.mapped(*op.key)
    if mapped is None:
        q = journal.quarantined(*op.key)
        why = op.unmappable or (f"{q.category}: {q.reason}" if q else "not written")
        return [DiffRow(op.object, op.source_id, None, "(record)", None, "a record", None, Status.MISSING, why)]
    if op.file is not None:
        found = await dest.find_file(mapped.parent_id or "", op.file.name)
        stored = found.fields.get("size") if found else None
        if found is None:
            for e in reversed(journal.history(*op.key)):
                if e.marker and (found := await dest.find_file(mapped.parent_id or "", e.marker)):
                    stored = found.fields.get("size")
                    break
        expected = op.file.size
        status = Status.MISSING if stored is None else (Status.MATCH if stored == expected else Status.MISMATCH)
        return [DiffRow(op.object, op.source_id, mapped.nutshell_id, "file size", str(op.file.size), str(expected),
                        None if stored is None else str(stored), status, op.file.name)]  # fmt: skip
    remote = await dest.get(Entity(mapped.entity), mapped.nutshell_id)
    if remote is None:
        return [DiffRow(op.object, op.source_id, mapped.nutshell_id, "(record)", None, "a record", None,
                        Status.MISSING, "not found in Nutshell")]  # fmt: skip
    expected_payload = _resolve(journal, dict(op.payload or {}))
    if op.parent is not None:
        expected_payload["parent"] = _resolve(journal, op.parent)
    linked = mapped.origin is Origin.LINKED
    out = []
    for path, expected in _leaves(expected_payload):
        stored = _get(remote.fields, path)
        source = _source(store, op, path)
        status = classify(source, expected, stored)
        note = "linked person: its own value is kept" if linked and status is Status.MISMATCH else ""
        out.append(DiffRow(op.object, op.source_id, mapped.nutshell_id, path, source, text(expected), text(stored),
                           status, note))  # fmt: skip
    return out
