"""The migration map: what lands where, as the user confirms it. Kept in `<project>/mapping.toml` (mapfile.py).

A map holds, per Cliniko object, the field rules (source -> target, transform, on/off), the value maps, the
practitioner decisions, the policies, the custom fields to create and the decision per Cliniko patient custom
field. Models forbid unknown keys so that a typo in a hand-edited mapping.toml is an error naming the key, not a
silently ignored setting.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PATIENT_ID_FIELD = "Cliniko Patient ID"  # the engine finds people again by it: always mapped
FORMAT = 1  # the layout of mapping.toml; bump with a migration when it changes

# Named, pure value transforms (transforms.py implements each; a test keeps the two lists equal).
TRANSFORM_NAMES = frozenset(
    {
        "text",  # stripped string, None when empty
        "date",  # a YYYY-MM-DD date (dates are naive: never shifted)
        "local_date",  # a UTC timestamp -> the clinic's local date
        "local_datetime",  # a UTC timestamp -> "YYYY-MM-DD HH:MM" in the clinic's time zone
        "currency",  # a decimal amount -> "123.45"
        "yes_no",  # a boolean -> "Yes" / "No"
        "join",  # a list -> one comma-separated string
        "service_choice",  # an item name -> its picklist choice (value_maps.service_types)
        "pronouns",  # the pronouns object -> "she/her"
    }
)

# Where a field rule may put its value. `description.<Label>` adds a labelled line to the description,
# `customFields.<Name>` sets a custom field; the others are the structured parts of the payload.
STRUCTURED_TARGETS = frozenset(
    {
        "name",
        "emails",
        "phones",
        "addresses",
        "owner",
        "accounts",
        "participants",
        "activityType",
        "startTime",
        "endTime",
        "location",
        "body",
        "parent",
    }
)
TARGET_PREFIXES = ("description.", "customFields.")

NutshellFieldType = Literal["Text", "LongText", "Date", "Currency", "Number", "Decision"]
NutshellEntity = Literal["Contacts", "Accounts"]


class MapModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FieldRule(MapModel):
    """One field: where its value comes from, how it is transformed, where it goes."""

    source: str  # a record field ("first_name"), "derived.<name>", or "custom.<token>" (patient custom field)
    target: str  # one of STRUCTURED_TARGETS, or "description.<Label>", or "customFields.<Name>"
    transform: str = "text"
    enabled: bool = True
    locked: bool = False  # the engine relies on it (e.g. Cliniko Patient ID): cannot be switched off
    note: str = ""  # shown beside the rule (e.g. why a derived value is approximate)

    @field_validator("transform")
    @classmethod
    def _known_transform(cls, value: str) -> str:
        if value not in TRANSFORM_NAMES:
            raise ValueError(f"unknown transform {value!r}; known: {', '.join(sorted(TRANSFORM_NAMES))}")
        return value

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value in STRUCTURED_TARGETS:
            return value
        for prefix in TARGET_PREFIXES:
            if value.startswith(prefix) and value[len(prefix) :].strip():
                return value
        raise ValueError(
            f"unknown target {value!r}; use one of {', '.join(sorted(STRUCTURED_TARGETS))}, "
            "'description.<Label>' or 'customFields.<Name>'"
        )

    @model_validator(mode="after")
    def _locked_stays_on(self) -> FieldRule:
        if self.locked and not self.enabled:
            raise ValueError(f"the rule {self.source} -> {self.target} is required and cannot be switched off")
        return self

    @property
    def custom_field(self) -> str | None:
        return self.target.removeprefix("customFields.") if self.target.startswith("customFields.") else None


ObjectTarget = Literal["person", "company", "activity", "note", "file", "user"]


class ObjectMap(MapModel):
    """How one Cliniko object moves. `enabled = false` moves none of its records."""

    target: ObjectTarget
    enabled: bool = True
    fields: list[FieldRule] = Field(default_factory=list)
    note: str = ""

    def rules(self) -> list[FieldRule]:
        return [r for r in self.fields if r.enabled]


class ExistingPerson(StrEnum):
    """What happens to a patient whose e-mail already belongs to a person in Nutshell."""

    LINK_AND_FILL_EMPTY = "link-and-fill-empty"  # use that person; fill only the fields it has empty
    SKIP = "skip"  # leave that person alone and do not migrate the patient
    CREATE = "create"  # create a second person anyway


class Policies(MapModel):
    """Choices that are not a field or an object switch (objects switch on and off in `objects`)."""

    existing_person: ExistingPerson = ExistingPerson.LINK_AND_FILL_EMPTY
    # Scheduled activities show in Nutshell agendas and may trigger reminders: off unless the user chooses.
    future_appointments: bool = False
    draft_treatment_notes: bool = False
    confidential_memos: bool = True
    archived_patients: bool = True  # archiving is how Cliniko hides former patients: their history moves
    archived_appointments: bool = False  # an archived appointment was deleted in Cliniko


class StatusRecording(StrEnum):
    LOGGED = "logged"  # a logged activity, named after the appointment type
    LABELLED = "labelled"  # a logged activity whose name starts with the status label
    SCHEDULED = "scheduled"  # a scheduled (not logged) activity; only for future appointments
    SKIP = "skip"  # not migrated


class AppointmentStatus(StrEnum):
    ATTENDED = "attended"  # marked arrived
    UNMARKED = "unmarked"  # in the past, neither arrived nor did-not-arrive
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    FUTURE = "future"


class StatusRule(MapModel):
    record: StatusRecording
    label: str = ""

    @model_validator(mode="after")
    def _label_when_labelled(self) -> StatusRule:
        if self.record is StatusRecording.LABELLED and not self.label.strip():
            raise ValueError("a 'labelled' status needs a label (e.g. 'Cancelled')")
        return self


def default_status_rules() -> dict[AppointmentStatus, StatusRule]:
    return {
        AppointmentStatus.ATTENDED: StatusRule(record=StatusRecording.LOGGED),
        AppointmentStatus.UNMARKED: StatusRule(record=StatusRecording.LOGGED),
        AppointmentStatus.NO_SHOW: StatusRule(record=StatusRecording.LABELLED, label="No-show"),
        AppointmentStatus.CANCELLED: StatusRule(record=StatusRecording.LABELLED, label="Cancelled"),
        AppointmentStatus.FUTURE: StatusRule(record=StatusRecording.SCHEDULED),
    }


class ValueMaps(MapModel):
    # Cliniko appointment type id -> Nutshell activity type name. Activities have no custom fields, so the
    # appointment type travels as the activity type (and the activity name).
    appointment_types: dict[str, str] = Field(default_factory=dict)
    default_activity_type: str = "Meeting"
    # Cliniko communication type (SMS, Email, Phone call, Other) -> Nutshell activity type name.
    communication_types: dict[str, str] = Field(default_factory=dict)
    # Activity type for the logged activities that carry treatment notes and attachments.
    document_activity_type: str = "Meeting"
    appointment_status: dict[AppointmentStatus, StatusRule] = Field(default_factory=default_status_rules)
    # Billable item or product name -> the choice of the Primary Service Type picklist.
    service_types: dict[str, str] = Field(default_factory=dict)
    # Business id -> the activity location text.
    locations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _future_only_scheduled(self) -> ValueMaps:
        for status, rule in self.appointment_status.items():
            if rule.record is StatusRecording.SCHEDULED and status is not AppointmentStatus.FUTURE:
                raise ValueError(f"appointment_status.{status.value}: only future appointments can be scheduled")
        return self

    def status_rule(self, status: AppointmentStatus) -> StatusRule:
        return self.appointment_status.get(status) or default_status_rules()[status]


class PractitionerDecision(StrEnum):
    MATCHED = "matched"  # owned by `user`
    FALLBACK = "fallback"  # owned by the map's fallback owner
    UNRESOLVED = "unresolved"  # blocks the run; listed for invitation


class PractitionerChoice(MapModel):
    decision: PractitionerDecision = PractitionerDecision.UNRESOLVED
    user: str | None = None  # Nutshell user id ("5-users") when matched
    method: Literal["email", "name", "manual", ""] = ""
    score: float = 0.0
    label: str = ""  # the practitioner's display name, so a person reading mapping.toml knows who it is
    # The best name match while unresolved: shown, never applied until the user accepts it.
    suggestion: str | None = None  # Nutshell user id
    suggestion_reason: str = ""

    @model_validator(mode="after")
    def _user_when_matched(self) -> PractitionerChoice:
        if self.decision is PractitionerDecision.MATCHED and not self.user:
            raise ValueError("a matched practitioner needs `user` (a Nutshell user id)")
        return self


class CustomFieldSpec(MapModel):
    """A Nutshell custom field the map writes (created on request when missing)."""

    name: str
    type: NutshellFieldType
    entity: NutshellEntity = "Contacts"
    choices: list[str] = Field(default_factory=list)
    description: str = ""  # shown wherever the field is shown

    @model_validator(mode="after")
    def _choices_only_for_decisions(self) -> CustomFieldSpec:
        if self.choices and self.type != "Decision":
            raise ValueError(f"custom field {self.name!r}: choices only apply to type Decision")
        return self


class CustomFieldAction(StrEnum):
    MAP = "map"  # into an existing or planned custom field named `target`
    CREATE = "create"  # into a new custom field `target` of type `type`
    SKIP = "skip"


class CustomFieldDecision(MapModel):
    """The decision for one Cliniko patient custom field (keyed by its token)."""

    action: CustomFieldAction
    target: str | None = None
    type: NutshellFieldType | None = None
    choices: list[str] = Field(default_factory=list)  # a new Decision field's choices (the Cliniko options)
    confirmed: bool = False  # proposals start unconfirmed; the user confirms each
    label: str = ""  # "Section / Field" of the Cliniko field, for the human reader
    confidence: float = 0.0
    reason: str = ""

    @model_validator(mode="after")
    def _target_when_mapped(self) -> CustomFieldDecision:
        if self.action is not CustomFieldAction.SKIP and not self.target:
            raise ValueError(f"action {self.action.value!r} needs a `target` custom field name")
        if self.action is CustomFieldAction.CREATE and self.type is None:
            raise ValueError("action 'create' needs the new field's `type`")
        return self


class FieldTypeFix(StrEnum):
    """What to do when Nutshell already has a custom field of the map's name, but of another type."""

    USE_EXISTING = "use-existing"  # write into Nutshell's field, as its type holds the values (Currency as Text)
    RENAME = "rename"  # create a field of the wanted type under another name (`target`)
    SKIP = "skip"  # do not write that field


class FieldTypeDecision(MapModel):
    """The decision for one custom field whose Nutshell type differs from the map's (keyed by the field name)."""

    action: FieldTypeFix
    existing_type: str  # the type the field has in Nutshell
    wanted_type: str  # the type the map wanted
    target: str | None = None  # RENAME: the new field's name
    confirmed: bool = False  # proposals start unconfirmed; applied (to custom_fields and rules) once confirmed
    reason: str = ""

    @model_validator(mode="after")
    def _target_when_renamed(self) -> FieldTypeDecision:
        if self.action is FieldTypeFix.RENAME and not (self.target or "").strip():
            raise ValueError("action 'rename' needs the new field's name in `target`")
        return self


class MigrationMap(MapModel):
    format: int = FORMAT
    version: int = 0  # 0: never saved; each saved change makes the next version (mapfile.py)
    saved_at: str = ""
    change_note: str = ""
    confirmed: bool = False
    policies: Policies = Field(default_factory=Policies)
    objects: dict[str, ObjectMap] = Field(default_factory=dict)
    value_maps: ValueMaps = Field(default_factory=ValueMaps)
    practitioners: dict[str, PractitionerChoice] = Field(default_factory=dict)
    fallback_owner: str | None = None  # Nutshell user id
    custom_fields: list[CustomFieldSpec] = Field(default_factory=list)
    custom_field_decisions: dict[str, CustomFieldDecision] = Field(default_factory=dict)
    # The currency of every amount (ISO 4217: AUD, NZD, GBP...): from the Cliniko account's country, changeable.
    currency: str | None = None
    field_type_decisions: dict[str, FieldTypeDecision] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().upper()
        if len(text) != 3 or not text.isalpha():
            raise ValueError(f"currency {value!r}: use a three-letter code such as AUD, NZD, GBP, USD or EUR")
        return text

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value > FORMAT:
            raise ValueError(f"written by a newer cliniko2nutshell (format {value}, this one knows {FORMAT})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MigrationMap:
        names = [f.name for f in self.custom_fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom_fields: {', '.join(dupes)} defined more than once")
        patients = self.objects.get("patients")
        if patients is not None and not any(
            r.enabled and r.source == "id" and r.custom_field == PATIENT_ID_FIELD for r in patients.fields
        ):
            raise ValueError(
                f"objects.patients must map `id` to customFields.{PATIENT_ID_FIELD}: the migration finds "
                "people again by it"
            )
        if self.fallback_owner is None:
            fallbacks = [k for k, c in self.practitioners.items() if c.decision is PractitionerDecision.FALLBACK]
            if fallbacks:
                raise ValueError(
                    f"practitioners {', '.join(fallbacks)} go to the fallback owner, but `fallback_owner` is not set"
                )
        return self

    def object(self, name: str) -> ObjectMap | None:
        found = self.objects.get(name)
        return found if found is not None and found.enabled else None

    def custom_field(self, name: str) -> CustomFieldSpec | None:
        return next((f for f in self.custom_fields if f.name == name), None)

    def owner_for(self, practitioner_id: str | None) -> str | None:
        """The Nutshell user id that owns records of a practitioner, or None when unresolved or unknown."""
        if practitioner_id is None:
            return self.fallback_owner
        choice = self.practitioners.get(practitioner_id)
        if choice is None or choice.decision is PractitionerDecision.UNRESOLVED:
            return None
        if choice.decision is PractitionerDecision.FALLBACK:
            return self.fallback_owner
        return choice.user
