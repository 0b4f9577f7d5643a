"""The unit of work of a run: one Cliniko record (or derived record) and the Nutshell write it calls for.

plan.py builds these from the store and the map; the runner executes them phase by phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cliniko2nutshell.engine.destination import Entity, FileSpec
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD, digest, marker, with_marker


class Phase(StrEnum):
    """Dependency order: each phase only refers to records of the phases before it."""

    COMPANIES = "companies"
    PEOPLE = "people"
    ACTIVITIES = "activities"
    NOTES = "notes"
    FILES = "files"


PHASES: tuple[Phase, ...] = tuple(Phase)

# Migration objects (the id map's `object`: the mapping layer's kinds, mapping/outputs.py KINDS), with the
# Nutshell entity and the phase of each.
OBJECTS: dict[str, tuple[Entity, Phase]] = {
    "company": (Entity.ACCOUNTS, Phase.COMPANIES),  # third-party contacts (insurers, referrers)
    "business_company": (Entity.ACCOUNTS, Phase.COMPANIES),  # only when the map makes businesses companies
    "person": (Entity.CONTACTS, Phase.PEOPLE),
    "appointment": (Entity.ACTIVITIES, Phase.ACTIVITIES),  # individual appointments
    "attendance": (Entity.ACTIVITIES, Phase.ACTIVITIES),  # a patient's place in a group appointment
    "communication": (Entity.ACTIVITIES, Phase.ACTIVITIES),
    "treatment_note_activity": (Entity.ACTIVITIES, Phase.ACTIVITIES),  # holds a rendered treatment note
    "attachment_activity": (Entity.ACTIVITIES, Phase.ACTIVITIES),  # holds an attachment
    "treatment_note": (Entity.NOTES, Phase.NOTES),
    "patient_note": (Entity.NOTES, Phase.NOTES),
    "appointment_note": (Entity.NOTES, Phase.NOTES),
    "medical_alert": (Entity.NOTES, Phase.NOTES),
    "treatment_note_file": (Entity.FILES, Phase.FILES),
    "attachment_file": (Entity.FILES, Phase.FILES),
}

_PERSONAL = ("person",)
# What each object hangs from: rolling an object back takes everything that depends on it along.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "person": ("company", "business_company"),
    "appointment": _PERSONAL,
    "attendance": _PERSONAL,
    "communication": _PERSONAL,
    "treatment_note_activity": _PERSONAL,
    "attachment_activity": _PERSONAL,
    "treatment_note": _PERSONAL,
    "patient_note": _PERSONAL,
    "appointment_note": _PERSONAL,
    "medical_alert": _PERSONAL,
    "treatment_note_file": ("treatment_note_activity",),
    "attachment_file": ("attachment_activity",),
}

# The five user-facing groups (progress bars, reconcile rows, rollback scopes), in dependency order.
GROUPS: dict[str, tuple[str, ...]] = {
    phase.value: tuple(o for o, (_, p) in OBJECTS.items() if p is phase) for phase in Phase
}


def entity_of(object_: str) -> Entity:
    return OBJECTS[object_][0]


def phase_of(object_: str) -> Phase:
    return OBJECTS[object_][1]


def group_of(object_: str) -> str:
    return next(g for g, objs in GROUPS.items() if object_ in objs)


def dependents(objects: set[str]) -> set[str]:
    """`objects` and everything that depends on them, transitively."""
    found = set(objects)
    while True:
        more = {o for o, deps in DEPENDS_ON.items() if o not in found and found.intersection(deps)}
        if not more:
            return found
        found |= more


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A reference to a record the run writes earlier: (object, source id), resolved through the id map."""

    object: str
    source_id: str


@dataclass(slots=True)
class Op:
    """One record to bring into Nutshell. Exactly one of payload / file / skip / unmappable / retire says what."""

    object: str
    source_id: str
    patient_id: str | None = None
    payload: dict[str, Any] | None = None  # REST create element; may hold RecordRefs
    file: FileSpec | None = None
    host: RecordRef | None = None  # files: the activity holding them
    parent: RecordRef | None = None  # notes: the record they are attached to
    email: str | None = None  # people: the e-mail the existing-person policy looks up
    skip: str | None = None  # not migrated by choice (map switch, policy): why
    unmappable: str | None = None  # cannot be migrated: why (quarantined)
    retire: str | None = None  # written before, now superseded (a merged patient's person): why it goes
    hash: str = field(default="")

    def __post_init__(self) -> None:
        if self.object not in OBJECTS:
            raise ValueError(f"unknown migration object {self.object!r}")
        if self.payload is not None:
            self.payload = marked(self.object, self.source_id, self.payload)
        if not self.hash:
            self.hash = payload_hash(self)

    @property
    def key(self) -> tuple[str, str]:
        return (self.object, self.source_id)

    @property
    def entity(self) -> Entity:
        return entity_of(self.object)

    @property
    def phase(self) -> Phase:
        return phase_of(self.object)

    @property
    def marker(self) -> str:
        """What finds the record in Nutshell: people by their Cliniko Patient ID, others by their marker line."""
        return self.source_id if self.entity is Entity.CONTACTS else marker(self.object, self.source_id)


def marked(object_: str, source_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of `payload` carrying the record's marker, so it can be found in Nutshell without our journal."""
    out = dict(payload)
    entity = entity_of(object_)
    if entity is Entity.CONTACTS:
        fields = dict(out.get("customFields") or {})
        fields.setdefault(PATIENT_ID_FIELD, source_id)
        out["customFields"] = fields
    elif entity is Entity.NOTES:
        out["body"] = with_marker(out.get("body"), marker(object_, source_id))
    elif entity in (Entity.ACCOUNTS, Entity.ACTIVITIES):
        out["description"] = with_marker(out.get("description"), marker(object_, source_id))
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, RecordRef):
        return {"$ref": [value.object, value.source_id]}
    if isinstance(value, dict):
        return {k: _hashable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hashable(v) for v in value]
    return value


def payload_hash(op: Op) -> str:
    """What the record should look like in Nutshell, before ids are resolved: equal hashes, nothing to do."""
    if op.retire is not None:
        return digest({"retire": op.retire})
    if op.file is not None:
        return digest({"file": [op.file.name, op.file.sha256, op.file.size], "host": _hashable(op.host)})
    return digest({"payload": _hashable(op.payload), "parent": _hashable(op.parent)})
