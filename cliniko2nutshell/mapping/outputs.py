"""What the transforms produce: planned Nutshell records, references to records not created yet, and reasons.

A `Planned` record is identified by its kind and Cliniko id (`key`, e.g. "appointment:1009"); the engine's id map
and journal use the same key. Payloads are REST create elements (one entity, no plural wrapper) whose
references to other records are `Ref` objects and whose activity type is a `NutshellName`; the engine resolves both
before sending (`resolve_payload`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from cliniko2nutshell.mapping.catalog import Catalog, CustomFieldDef
from cliniko2nutshell.mapping.model import MigrationMap

Entity = Literal["person", "company", "activity", "note", "file"]


@dataclass(frozen=True, slots=True)
class KindInfo:
    entity: Entity
    object: str  # the map object (mapping.toml `objects.<name>`) the kind belongs to
    label: str


KINDS: dict[str, KindInfo] = {
    "person": KindInfo("person", "patients", "Person from a patient"),
    "company": KindInfo("company", "contacts", "Company from a third-party contact"),
    "business_company": KindInfo("company", "businesses", "Company from a business"),
    "appointment": KindInfo("activity", "individual_appointments", "Activity from an appointment"),
    "attendance": KindInfo("activity", "attendees", "Activity from a group-session attendance"),
    "communication": KindInfo("activity", "communications", "Logged activity from a communication"),
    "treatment_note": KindInfo("note", "treatment_notes", "Note from a treatment note"),
    "treatment_note_activity": KindInfo("activity", "treatment_notes", "Activity holding a rendered treatment note"),
    "treatment_note_file": KindInfo("file", "treatment_notes", "Rendered treatment note"),
    "attachment_activity": KindInfo("activity", "patient_attachments", "Activity holding an attachment"),
    "attachment_file": KindInfo("file", "patient_attachments", "Patient attachment"),
    "patient_note": KindInfo("note", "patient_notes", "Note from the patient's notes"),
    "appointment_note": KindInfo("note", "appointment_notes", "Note from the patient's appointment notes"),
    "medical_alert": KindInfo("note", "medical_alerts", "Note from a medical alert"),
}
USER = "user"  # Ref kind of a practitioner, resolved to a Nutshell user through the map's practitioner decisions


@dataclass(frozen=True, slots=True)
class Ref:
    """A record that may not exist yet: `kind` is a key of KINDS (or "user": a practitioner id)."""

    kind: str
    cliniko_id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.cliniko_id}"


@dataclass(frozen=True, slots=True)
class NutshellName:
    """A Nutshell record known by name (activity types): looked up in Nutshell, never created."""

    kind: Literal["activity_type"]
    name: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Deliberately not migrated (the map or a policy says so)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Unmappable:
    """Cannot be migrated as it is (missing data, a file too large...): reported, never dropped silently."""

    reason: str


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    cliniko_id: str
    payload: dict[str, Any]
    patient_id: str | None = None  # the (surviving) patient it belongs to

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.cliniko_id}"

    @property
    def ref(self) -> Ref:
        return Ref(self.kind, self.cliniko_id)

    @property
    def entity(self) -> Entity:
        return KINDS[self.kind].entity

    @property
    def marker(self) -> str:
        """The text that lets the engine find this record in Nutshell again (in descriptions and note bodies)."""
        return marker(self.kind, self.cliniko_id)


@dataclass(frozen=True, slots=True)
class Skipped:
    kind: str
    cliniko_id: str
    why: Skip | Unmappable
    patient_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.cliniko_id}"


Outcome = Planned | Skipped


def marker(kind: str, cliniko_id: str) -> str:
    return f"cliniko:{kind}:{cliniko_id}"


@dataclass
class Context:
    """Everything a transform reads besides the record: the map, the source catalogue, Nutshell's file limit."""

    map: MigrationMap
    catalog: Catalog
    file_size_limit: int | None = None  # bytes; None: unknown (files are not checked)
    _tz: ZoneInfo | None = field(default=None, repr=False)

    @property
    def tz(self) -> ZoneInfo:
        if self._tz is None:
            self._tz = self.catalog.time_zone
        return self._tz

    @cached_property
    def custom_field_defs(self) -> dict[str, CustomFieldDef]:
        return self.catalog.custom_field_defs

    @cached_property
    def currency(self) -> str | None:
        """The currency of amounts: the map's choice, else the one the Cliniko account's country implies."""
        return self.map.currency or self.catalog.currency


def resolve_payload(payload: Any, resolve: Callable[[Ref | NutshellName], str | None]) -> Any:
    """A copy of `payload` with every Ref / NutshellName replaced by `resolve(...)`; unresolved ones (None) are
    dropped from lists and dict values, so a missing participant never sends a placeholder."""
    if isinstance(payload, Ref | NutshellName):
        return resolve(payload)
    if isinstance(payload, dict):
        out = {}
        for k, v in payload.items():
            r = resolve_payload(v, resolve)
            if r is not None or not isinstance(v, Ref | NutshellName):
                out[k] = r
        return out
    if isinstance(payload, list):
        items = [resolve_payload(v, resolve) for v in payload]
        return [
            r for r, v in zip(items, payload, strict=True) if r is not None or not isinstance(v, Ref | NutshellName)
        ]
    return payload


def refs_in(payload: Any) -> list[Ref]:
    """Every Ref a payload depends on (the engine orders and resolves by them)."""
    if isinstance(payload, Ref):
        return [payload]
    if isinstance(payload, dict):
        return [r for v in payload.values() for r in refs_in(v)]
    if isinstance(payload, list):
        return [r for v in payload for r in refs_in(v)]
    return []


def to_jsonable(value: Any) -> Any:
    """A JSON-ready form of an outcome or payload: Ref -> {"ref": "person:773"}, NutshellName ->
    {"nutshell": "activity_type:Meeting"} (golden files, reports and debugging)."""
    if isinstance(value, Planned):
        return {
            "kind": value.kind,
            "cliniko_id": value.cliniko_id,
            "patient_id": value.patient_id,
            "payload": to_jsonable(value.payload),
        }
    if isinstance(value, Skipped):
        kind = "skip" if isinstance(value.why, Skip) else "unmappable"
        return {
            "kind": value.kind,
            "cliniko_id": value.cliniko_id,
            "patient_id": value.patient_id,
            kind: value.why.reason,
        }
    if isinstance(value, Ref):
        return {"ref": value.key}
    if isinstance(value, NutshellName):
        return {"nutshell": f"{value.kind}:{value.name}"}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def make_resolver(
    mapping: MigrationMap,
    lookup: Callable[[str], str | None],
    activity_types: dict[str, str],
) -> Callable[[Ref | NutshellName], str | None]:
    """The resolver the engine passes to `resolve_payload`: a Ref to a record we create -> `lookup(ref.key)` (the
    id map), a practitioner -> its user through the map's decisions, an activity type name -> its id in
    `activity_types` (name -> id; compared case-insensitively)."""
    folded = {name.casefold(): id_ for name, id_ in activity_types.items()}

    def resolve(ref: Ref | NutshellName) -> str | None:
        if isinstance(ref, NutshellName):
            return folded.get(ref.name.casefold())
        if ref.kind == USER:
            return mapping.owner_for(ref.cliniko_id)
        return lookup(ref.key)

    return resolve
