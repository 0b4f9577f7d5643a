"""The sample's field-level diff: for every record the sample wrote, read it back from Nutshell and compare,
field by field, the Cliniko value, the value the map says to write, and the value Nutshell holds.

Statuses: match (stored as expected, and as in Cliniko), transformed (stored as expected; the map changed the
Cliniko value on the way, e.g. a phone number to E.164, an appointment type to an activity type: the reason
says why), truncated (Nutshell kept only the start), missing (expected, but Nutshell has nothing), mismatch
(anything else). Values are shown as a person reads them (engine/readable.py): a value the two APIs only write
differently (a time as UTC text in Cliniko and Unix seconds in Nutshell) is the same value, so it is a match,
flagged `reformatted` ("same, shown differently"), not a transformation.

The report is read per record (`records()`): the records with problems first, and in each record its problems
first, then its transformations, then its matches.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cliniko2nutshell.engine.destination import Destination, Entity
from cliniko2nutshell.engine.fields import empty, same
from cliniko2nutshell.engine.journal import Journal, Origin
from cliniko2nutshell.engine.ops import OBJECTS, Op, RecordRef
from cliniko2nutshell.engine.pool import pool
from cliniko2nutshell.engine.readable import (
    SHOWN_DIFFERENTLY,
    SOURCE_OBJECTS,
    Readable,
    Sensitivity,
    field_label,
    object_label,
    reason,
    sensitivity,
)
from cliniko2nutshell.mapping.model import MigrationMap
from cliniko2nutshell.mapping.values import country_code
from cliniko2nutshell.project.store import Store

log = logging.getLogger(__name__)


class Status(StrEnum):
    MISMATCH = "mismatch"
    MISSING = "missing"
    TRUNCATED = "truncated"
    TRANSFORMED = "transformed"
    MATCH = "match"


ORDER = {s: i for i, s in enumerate(Status)}
PROBLEMS = frozenset({Status.MISMATCH, Status.MISSING, Status.TRUNCATED})
_PHASE_ORDER = {o: i for i, o in enumerate(OBJECTS)}


@dataclass(frozen=True, slots=True)
class DiffRow:
    object: str
    source_id: str
    nutshell_id: str | None
    field: str  # the payload path: "startTime", "customFields.Date of Birth", "(record)", "file size"
    source: str | None  # the Cliniko value as read (None where it is derived from several fields)
    expected: str | None  # what the map says to write, as read
    stored: str | None  # what Nutshell holds, as read
    status: Status
    note: str = ""  # why: the reason of a transformation or of a problem
    patient_id: str | None = None  # the Cliniko patient the record belongs to
    label: str = ""  # the field as a person names it ("Date of Birth", "Start")
    kind: str = Sensitivity.PLAIN.value  # what the value is, for screen-share masking (readable.Sensitivity)
    reformatted: bool = False  # a match the two APIs write differently ("same, shown differently")

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


@dataclass(frozen=True, slots=True)
class RecordDiff:
    """One record of the sample with its fields: problems first, then transformations, then matches."""

    object: str
    source_id: str
    nutshell_id: str | None
    patient_id: str | None
    title: str  # what the record is, as read: a person's name, an activity's title and time, a file's name
    title_kind: str  # readable.Sensitivity of the title
    fields: tuple[DiffRow, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.object, self.source_id)

    @property
    def label(self) -> str:
        return object_label(self.object)

    @property
    def problems(self) -> list[DiffRow]:
        return [r for r in self.fields if r.problem]

    @property
    def transformed(self) -> int:
        return sum(1 for r in self.fields if r.status is Status.TRANSFORMED)

    @property
    def status(self) -> Status:
        """The worst status of its fields."""
        return min((r.status for r in self.fields), key=ORDER.__getitem__, default=Status.MATCH)


@dataclass(frozen=True, slots=True)
class Subject:
    """A patient with every record the sample wrote for them, or a company: what the diff viewer lists (a sample
    of 500 patients writes tens of thousands of records; a person reads them patient by patient)."""

    key: str  # "patient:<Cliniko id>" or "<object>:<Cliniko id>" for a company
    label: str  # "Patient", "Company"
    title: str  # the person's or the company's name
    title_kind: str
    records: tuple[RecordDiff, ...]  # records with problems first, then the person, activities, notes, files

    @property
    def problems(self) -> int:
        return sum(len(r.problems) for r in self.records)

    @property
    def transformed(self) -> int:
        return sum(r.transformed for r in self.records)


@dataclass(slots=True)
class DiffReport:
    run_id: int
    rows: list[DiffRow] = field(default_factory=list)
    map_version: int | None = None

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
        return [r for r in self.rows if r.problem]

    def subjects(self) -> list[Subject]:
        """The records grouped by patient (companies on their own), the patients with problems first."""
        grouped: dict[str, list[RecordDiff]] = {}
        for rec in self.records():
            key = f"patient:{rec.patient_id}" if rec.patient_id else f"{rec.object}:{rec.source_id}"
            grouped.setdefault(key, []).append(rec)
        out = []
        for key, recs in grouped.items():
            recs.sort(key=lambda r: (not r.problems, _PHASE_ORDER.get(r.object, 99), _when(r), r.source_id))
            head = next((r for r in recs if r.object in ("person", "company", "business_company")), None)
            if key.startswith("patient:"):
                label = "Patient"
                title, kind = (head.title, head.title_kind) if head and head.object == "person" else (
                    f"patient {key.removeprefix('patient:')}", Sensitivity.PLAIN.value)  # fmt: skip
            else:
                label = object_label(recs[0].object)
                title, kind = recs[0].title, recs[0].title_kind
            out.append(Subject(key, label, title, kind, tuple(recs)))
        out.sort(key=lambda sub: (not sub.problems, sub.label != "Patient", sub.title.casefold(), sub.key))
        return out

    def describe(self) -> str:
        """One line: what the diff found (the `sample` command and the wizard say it the same way)."""
        records = self.records()
        bad = sum(1 for r in records if r.problems)
        c = self.counts()
        return (
            f"{len(records):,} records compared: {bad:,} with problems ({len(self.problems):,} fields), "
            f"{c['transformed']:,} fields changed by the map (each with its reason), "
            f"{self.reformatted:,} the same value in another notation"
        )

    def transformations(self) -> list[tuple[str, str, str, int]]:
        """How the map changed values, folded: (object, field, reason, fields) for every transformation."""
        c = Counter((r.object, r.label or r.field, r.note) for r in self.rows if r.status is Status.TRANSFORMED)
        return [(o, f, why, n) for (o, f, why), n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]

    @property
    def reformatted(self) -> int:
        """Matches whose value Cliniko and Nutshell only write differently."""
        return sum(1 for r in self.rows if r.reformatted)

    def records(self) -> list[RecordDiff]:
        """Per record, the records with problems first; then each patient's records together, in the order the
        run writes them (companies, the person, activities, notes, files)."""
        grouped: dict[tuple[str, str], list[DiffRow]] = {}
        for r in self.rows:
            grouped.setdefault((r.object, r.source_id), []).append(r)
        out = []
        for (object_, source_id), rows in grouped.items():
            rows.sort(key=lambda r: (ORDER[r.status], not r.reformatted, _FIELD_ORDER.get(r.field, 50), r.field))
            title, kind = _title(object_, source_id, rows)
            first = rows[0]
            nutshell_id = next((r.nutshell_id for r in rows if r.nutshell_id), None)
            out.append(RecordDiff(object_, source_id, nutshell_id, first.patient_id, title, kind, tuple(rows)))
        out.sort(key=lambda rec: (not rec.problems, rec.patient_id or "", _PHASE_ORDER.get(rec.object, 99),
                                  _when(rec), rec.source_id))  # fmt: skip
        return out


# Fields in the order a person reads a record (problems and transformations still come first).
_FIELD_ORDER = {
    "(record)": 0,
    "name": 1,
    "startTime": 2,
    "endTime": 3,
    "activityType": 4,
    "emails": 5,
    "phones": 6,
    "addresses": 7,
    "links.owner": 8,
    "links.participants": 9,
    "links.accounts": 10,
    "location": 11,
    "isLogged": 12,
    "parent": 13,
    "file size": 14,
    "body": 15,
    "description": 60,
}


def _when(rec: RecordDiff) -> str:
    start = next((r for r in rec.fields if r.field == "startTime"), None)
    return (start.expected or start.stored or "") if start else ""


def _title(object_: str, source_id: str, rows: list[DiffRow]) -> tuple[str, str]:
    by_field = {r.field: r for r in rows}

    def value(path: str) -> str | None:
        r = by_field.get(path)
        return (r.expected or r.stored) if r else None

    if "(record)" in by_field and len(rows) == 1:
        return "(not in Nutshell)", Sensitivity.PLAIN.value
    if object_ in ("person", "company", "business_company"):
        name = value("name")
        if name:
            return name, Sensitivity.NAME.value
    elif OBJECTS[object_][0] is Entity.ACTIVITIES:
        parts = [p for p in (value("startTime"), value("name")) if p]
        if parts:
            return " · ".join(parts), sensitivity(object_, "name").value
    elif OBJECTS[object_][0] is Entity.NOTES:
        body = (value("body") or "").strip().splitlines()
        if body:
            return body[0][:120], Sensitivity.TEXT.value
    elif "file size" in by_field and by_field["file size"].note:
        return by_field["file size"].note, Sensitivity.TEXT.value
    return f"{object_label(object_)} {source_id}", Sensitivity.PLAIN.value


def text(value: Any) -> str | None:
    """A value as plain text (no reading aid): used to tell an encoding change from a transformation."""
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


# -- the Cliniko side ------------------------------------------------------------------------------------------

# Cliniko fields behind a target, where one field is the whole source.
_RAW_SOURCES: dict[tuple[str, str], str] = {
    ("person", "emails"): "email",
    ("company", "emails"): "email",
    ("appointment", "startTime"): "starts_at",
    ("appointment", "endTime"): "ends_at",
    ("communication", "startTime"): "created_at",
    ("communication", "endTime"): "created_at",
    ("person", "customFields.Cliniko Patient ID"): "id",
    ("person", "customFields.Date of Birth"): "date_of_birth",
    ("person", "customFields.Original Create Date"): "created_at",
}
_PHONES = {"person": "patient_phone_numbers", "company": "phone_numbers"}
_WITH_ADDRESS = ("person", "company", "business_company")
_APPOINTMENTS = ("appointment", "attendance")


def _foreign(store: Store, object_: str, id_: str, column: str) -> str | None:
    row = store.conn.execute(
        f"SELECT {column} FROM cliniko_records WHERE object = ? AND id = ?", (object_, id_)
    ).fetchone()
    return row[0] if row else None


def _named(store: Store, object_: str, id_: str | None, key: str) -> str | None:
    raw = store.get_record(object_, id_) if id_ else None
    return (raw or {}).get(key) or None


def _source(store: Store, op: Op, path: str) -> Any:
    """The Cliniko value behind `path`, in the shape the payload gives it (so both read alike); None where the
    value is derived from several fields or records."""
    tables = SOURCE_OBJECTS.get(op.object)
    raw = store.get_record(tables[0], op.source_id) if tables else None
    if raw is None:
        return None
    if (name := _RAW_SOURCES.get((op.object, path))) is not None:
        return raw.get(name)
    if path == "name" and op.object == "person":
        return " ".join(x for x in (raw.get("first_name"), raw.get("last_name")) if x) or raw.get("label")
    if path == "name" and op.object == "company":
        full = " ".join(x for x in (raw.get("first_name"), raw.get("last_name")) if x)
        return raw.get("company_name") or full or None
    if path == "phones" and op.object in _PHONES:
        numbers = [p.get("number") for p in raw.get(_PHONES[op.object]) or [] if isinstance(p, dict)]
        return "; ".join(str(n) for n in numbers if n) or None  # a number may come as a JSON number
    if path == "addresses" and op.object in _WITH_ADDRESS:
        parts = {k: raw.get(k) for k in ("address_1", "address_2", "address_3", "city", "state")}
        parts["postalCode"] = raw.get("post_code")
        parts["country"] = country_code(raw.get("country"), raw.get("country_code"))
        return {k: v for k, v in parts.items() if v}
    if op.object in _APPOINTMENTS and path in ("activityType", "name", "location", "startTime", "endTime"):
        return _appointment_source(store, op, raw, path)
    return None


def _appointment_source(store: Store, op: Op, raw: dict[str, Any], path: str) -> Any:
    booking = raw
    if op.object == "attendance":  # a place in a group appointment: the session holds type, place and times
        group = _foreign(store, "attendees", op.source_id, "booking_id")
        booking = store.get_record("group_appointments", group) if group else None
        if booking is None:
            return None
        object_, id_ = "group_appointments", group or ""
    else:
        object_, id_ = "individual_appointments", op.source_id
    if path in ("startTime", "endTime"):
        return booking.get("starts_at" if path == "startTime" else "ends_at")
    if path == "location":
        return _named(store, "businesses", _foreign(store, object_, id_, "business_id"), "business_name")
    type_name = _named(store, "appointment_types", _foreign(store, object_, id_, "appointment_type_id"), "name")
    return type_name


# -- comparing -------------------------------------------------------------------------------------------------


def classify(source: str | None, expected: Any, stored: Any, shown: str | None = None) -> Status:
    """The status of one field. `source` and `shown` (the expected value) are as a person reads them: when
    they read the same, the map did not change the value, whatever the APIs' encodings."""
    if not empty(expected) and empty(stored):
        return Status.MISSING
    if same(expected, stored):
        exp = shown if shown is not None else text(expected)
        if source is None or exp is None or source.strip() == exp.strip():
            return Status.MATCH
        return Status.TRANSFORMED
    shorter = isinstance(expected, str) and isinstance(stored, str) and 0 < len(stored) < len(expected)
    if shorter and expected.startswith(stored.rstrip(".… ")):
        return Status.TRUNCATED
    return Status.MISMATCH


@dataclass(slots=True)
class _Context:
    journal: Journal
    dest: Destination
    store: Store
    readable: Readable
    mapping: MigrationMap | None


def _ref_name(ctx: _Context, op: Op, ref: RecordRef) -> str:
    """What a referenced record is, for the reader: the record's own patient, a company's name."""
    if ref.object == "person":
        return "the patient" if ref.source_id == op.patient_id else f"patient {ref.source_id}"
    if ref.object in ("company", "business_company"):
        table = "contacts" if ref.object == "company" else "businesses"
        raw = ctx.store.get_record(table, ref.source_id) or {}
        full = " ".join(x for x in (raw.get("first_name"), raw.get("last_name")) if x)
        return raw.get("company_name") or raw.get("business_name") or full or f"company {ref.source_id}"
    return f"{object_label(ref.object).lower()} {ref.source_id}"


def _resolve(ctx: _Context, op: Op, value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, RecordRef):
        m = ctx.journal.mapped(value.object, value.source_id)
        if m is None:
            return f"(not migrated: {value.object} {value.source_id})"
        names[m.nutshell_id] = _ref_name(ctx, op, value)
        return m.nutshell_id
    if isinstance(value, dict):
        return {k: _resolve(ctx, op, v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(ctx, op, v, names) for v in value]
    return value


async def diff_sample(
    run_id: int,
    ops: list[Op],
    journal: Journal,
    dest: Destination,
    store: Store,
    *,
    workers: int = 8,
    readable: Readable | None = None,
    mapping: MigrationMap | None = None,
) -> DiffReport:
    """Compare every op of the sample with what Nutshell holds now."""
    ctx = _Context(journal, dest, store, readable or Readable(), mapping)
    report = DiffReport(run_id, map_version=mapping.version if mapping is not None else None)
    rows: list[list[DiffRow]] = [[] for _ in ops]

    async def compare(i: int) -> None:
        try:
            rows[i] = await _diff_one(ctx, ops[i])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            # A value of a shape we did not expect in one record stops nothing: that record is shown as a
            # problem to check by hand. (The services or the store failing still stops the diff.)
            log.exception("diff of %s %s failed", ops[i].object, ops[i].source_id)
            rows[i] = [_row(ops[i], None, "(record)", None, None, None, Status.MISMATCH,
                            f"could not be compared ({type(exc).__name__}): check it in Nutshell")]  # fmt: skip

    await pool((i for i, op in enumerate(ops) if op.skip is None and op.retire is None), compare, workers)
    report.rows = sorted((r for rs in rows for r in rs), key=lambda r: (ORDER[r.status], r.object, r.source_id))
    return report


def _row(op: Op, nutshell_id: str | None, path: str, source: str | None, expected: str | None,
         stored: str | None, status: Status, note: str = "", reformatted: bool = False) -> DiffRow:  # fmt: skip
    return DiffRow(op.object, op.source_id, nutshell_id, path, source, expected, stored, status, note, op.patient_id,
                   field_label(op.object, path), sensitivity(op.object, path).value, reformatted)  # fmt: skip


async def _diff_one(ctx: _Context, op: Op) -> list[DiffRow]:
    journal, dest = ctx.journal, ctx.dest
    mapped = journal.mapped(*op.key)
    if mapped is None:
        q = journal.quarantined(*op.key)
        why = op.unmappable or (f"{q.category}: {q.reason}" if q else "not written")
        return [_row(op, None, "(record)", None, "a record", None, Status.MISSING, why)]
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
        show = ctx.readable.show
        return [_row(op, mapped.nutshell_id, "file size", show("file size", op.file.size),
                     show("file size", expected), show("file size", stored), status, op.file.name)]  # fmt: skip
    remote = await dest.get(Entity(mapped.entity), mapped.nutshell_id)
    if remote is None:
        return [_row(op, mapped.nutshell_id, "(record)", None, "a record", None, Status.MISSING,
                     "not found in Nutshell")]  # fmt: skip
    names: dict[str, str] = {}
    expected_payload = _resolve(ctx, op, dict(op.payload or {}), names)
    if op.parent is not None:
        expected_payload["parent"] = _resolve(ctx, op, op.parent, names)
    linked = mapped.origin is Origin.LINKED
    out = []
    for path, expected in _leaves(expected_payload):
        stored = _get(remote.fields, path)
        raw_source = _source(ctx.store, op, path)
        source = ctx.readable.show(path, raw_source, names)
        shown = ctx.readable.show(path, expected, names)
        status = classify(source, expected, stored, shown)
        why = reason(ctx.mapping, op.object, path)
        reformatted = False
        # A scalar written differently on each side (a time, a number as text) is the same value, shown
        # differently; structured values (addresses) compare field by field and have no notation of their own.
        scalar = isinstance(raw_source, str | int | float) and not isinstance(expected, dict | list)
        if status is Status.MATCH and scalar and (text(raw_source) or "").strip() != (text(expected) or "").strip():
            reformatted, why = True, f"{SHOWN_DIFFERENTLY}: {why}" if why else SHOWN_DIFFERENTLY
        if status in PROBLEMS:
            why = "linked person: its own value is kept" if linked and status is Status.MISMATCH else ""
        out.append(_row(op, mapped.nutshell_id, path, source, shown, ctx.readable.show(path, stored, names),
                        status, why, reformatted))  # fmt: skip
    return out
