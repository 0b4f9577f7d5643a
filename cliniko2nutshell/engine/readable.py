"""Values as a person reads them, for the sample diff (its CSV and HTML report, `sample`, the wizard's viewer).

Times in the clinic's time zone ("2021-12-25 10:45 AEDT"), money with its currency ("1,234.50 AUD"), dates as
dates, yes or no, addresses as one line, and ids as what they stand for (a user's name, an activity type's name,
"the patient"), never the APIs' encodings (Unix seconds, ISO-8601 UTC, "3-activityTypes"). Pure: no I/O.

Each field also says what kind of value it holds (`Sensitivity`), so a screen in screen-share mode knows what to
mask: the names match the wizard's masking kinds (tui/mask.py), plus `plain` for what is not patient data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from cliniko2nutshell.engine.fields import empty
from cliniko2nutshell.mapping.model import MigrationMap
from cliniko2nutshell.mapping.timeutil import local


class Sensitivity(StrEnum):
    """What a value is, for screen-share masking (the wizard's mask kinds, and `plain`: shown as it is)."""

    NAME = "name"  # a patient's or a third party's name
    EMAIL = "email"
    PHONE = "phone"
    BIRTH_DATE = "birth_date"
    ADDRESS = "address"
    TEXT = "text"  # free text written about or by the patient
    PLAIN = "plain"  # ids, times, amounts, types, staff names


# Payload paths as a person names them; custom fields are named by their own name.
_LABELS = {
    "name": "Name",
    "emails": "E-mail",
    "phones": "Phone",
    "addresses": "Address",
    "description": "Description",
    "links.owner": "Owner",
    "links.accounts": "Companies",
    "links.participants": "Participants",
    "activityType": "Activity type",
    "startTime": "Start",
    "endTime": "End",
    "isLogged": "Logged",
    "location": "Location",
    "body": "Text",
    "parent": "Attached to",
    "file size": "File",
    "(record)": "The record",
}
_ACTIVITIES = ("appointment", "attendance", "communication", "treatment_note_activity", "attachment_activity")

OBJECT_LABELS = {
    "company": "Company",
    "business_company": "Business",
    "person": "Person",
    "appointment": "Appointment",
    "attendance": "Group attendance",
    "communication": "Communication",
    "treatment_note_activity": "Treatment note activity",
    "attachment_activity": "Attachment activity",
    "treatment_note": "Treatment note",
    "patient_note": "Patient note",
    "appointment_note": "Appointment note",
    "medical_alert": "Medical alert",
    "treatment_note_file": "Treatment note file",
    "attachment_file": "Attachment file",
}

# Custom fields the migration fills from Cliniko's own data (ids, dates it derives, amounts, the service type):
# not free text. Any other custom field carries what the patient or the clinic wrote (masked as text).
_PLAIN_CUSTOM_FIELDS = frozenset(
    {
        "Cliniko Patient ID",
        "Original Create Date",
        "Total Invoiced",
        "Balance Due",
        "Last Invoice Date",
        "Last Payment Date",
        "Last Payment Amount",
        "Primary Service Type",
    }
)


def object_label(object_: str) -> str:
    return OBJECT_LABELS.get(object_, object_.replace("_", " ").capitalize())


def field_label(object_: str, path: str) -> str:
    if path.startswith("customFields."):
        return path.removeprefix("customFields.")
    if path == "name" and object_ in _ACTIVITIES:
        return "Title"
    return _LABELS.get(path, path)


def sensitivity(object_: str, path: str) -> Sensitivity:
    """What the value of `path` on an `object_` record is, for masking."""
    if path == "name":
        if object_ in ("person", "company", "business_company"):
            return Sensitivity.NAME
        # an attachment's activity is named after the file (which the patient or the clinic named)
        return Sensitivity.TEXT if object_ == "attachment_activity" else Sensitivity.PLAIN
    if path.startswith("customFields."):
        name = path.removeprefix("customFields.")
        if name == "Date of Birth":
            return Sensitivity.BIRTH_DATE
        return Sensitivity.PLAIN if name in _PLAIN_CUSTOM_FIELDS else Sensitivity.TEXT
    return {
        "emails": Sensitivity.EMAIL,
        "phones": Sensitivity.PHONE,
        "addresses": Sensitivity.ADDRESS,
        "description": Sensitivity.TEXT,
        "body": Sensitivity.TEXT,
        "links.accounts": Sensitivity.NAME,
    }.get(path, Sensitivity.PLAIN)


_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_ADDRESS_ORDER = ("address_1", "address_2", "address_3", "city", "state", "postalCode", "country")


@dataclass(frozen=True, slots=True)
class Readable:
    """How one project shows values: its time zone, and the names behind Nutshell's ids."""

    tz: tzinfo = UTC
    users: Mapping[str, str] = field(default_factory=dict)  # Nutshell user id -> name
    activity_types: Mapping[str, str] = field(default_factory=dict)  # Nutshell activity type id -> name

    def time(self, value: Any) -> str | None:
        """A moment (Unix seconds, or ISO-8601 text) in the clinic's zone: '2021-12-25 10:45 AEDT'."""
        moment = moment_of(value)
        if moment is None:
            return None if empty(value) else str(value)
        shown = local(moment, self.tz)
        return shown.strftime("%Y-%m-%d %H:%M:%S %Z" if shown.second else "%Y-%m-%d %H:%M %Z")

    def show(self, path: str, value: Any, names: Mapping[str, str] | None = None) -> str | None:
        """`value` of the payload field `path` as a person reads it. `names`: what the Nutshell ids of this
        record's references stand for ("the patient", a company's name)."""
        if empty(value):
            return None
        names = names or {}
        if path in ("startTime", "endTime"):
            return self.time(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, dict) and "amount" in value:
            return money(value.get("amount"), value.get("currency"))
        if path == "addresses" or (isinstance(value, dict) and set(value) & {"address_1", "city", "postalCode"}):
            items = value if isinstance(value, list) else [value]
            return "; ".join(filter(None, (address(v) for v in items if isinstance(v, dict)))) or None
        if isinstance(value, list) and all(isinstance(v, dict) and "value" in v for v in value):
            return "; ".join(str(v.get("value") or "") for v in value)
        if path == "activityType":
            return self._name(str(value), names)
        if path.startswith("links.") or path == "parent":
            ids = value if isinstance(value, list) else [value]
            return ", ".join(sorted(self._name(str(i), names) for i in ids))
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ", ".join(sorted(v.strip() for v in value))
        if isinstance(value, str):
            return self.time(value) if _ISO_TIME.fullmatch(value.strip()) else value
        if isinstance(value, int | float):
            return f"{value:,}" if path == "file size" else str(value)
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)

    def _name(self, id_: str, names: Mapping[str, str]) -> str:
        return names.get(id_) or self.users.get(id_) or self.activity_types.get(id_) or id_


def moment_of(value: Any) -> datetime | None:
    """A moment from Unix seconds (a number or its text) or ISO-8601 text ('Z', '+0000' or '+00:00'), aware."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\s*\d{9,11}\s*", value)):
        try:
            return datetime.fromtimestamp(int(float(value)), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and _ISO_TIME.fullmatch(value.strip()):
        text = value.strip().replace("Z", "+00:00")
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return None


def money(amount: Any, currency: Any = None) -> str | None:
    """'1,234.50 AUD', as the map writes amounts into text (the amount alone when the currency is unknown)."""
    if empty(amount):
        return None
    try:
        number = Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        return f"{amount} {currency or ''}".strip()
    if not number.is_finite():
        return str(amount)
    shown = f"{number:,.2f}"
    return f"{shown} {currency}" if currency else shown


def address(parts: Mapping[str, Any]) -> str | None:
    """One line: street lines, then city, state and post code, then the country."""
    if isinstance(parts.get("value"), dict):  # a company's address nests its fields under `value`
        parts = parts["value"]
    get = {k: str(v).strip() for k, v in parts.items() if isinstance(v, str | int) and str(v).strip()}
    street = [get[k] for k in ("address_1", "address_2", "address_3") if k in get]
    place = " ".join(get[k] for k in ("city", "state", "postalCode") if k in get)
    line = ", ".join([*street, *([place] if place else []), *([get["country"]] if "country" in get else [])])
    return line or None


# -- why a value changed on its way (the map's own words first) ------------------------------------------------

# The Cliniko objects whose records and rules make each migration object (the first holds the record itself).
SOURCE_OBJECTS: dict[str, tuple[str, ...]] = {
    "person": ("patients", "invoices"),
    "company": ("contacts",),
    "business_company": ("businesses",),
    "appointment": ("individual_appointments",),
    "attendance": ("attendees",),
    "communication": ("communications",),
    "treatment_note": ("treatment_notes",),
    "treatment_note_activity": ("treatment_notes",),
    "treatment_note_file": ("treatment_notes",),
    "attachment_activity": ("patient_attachments",),
    "attachment_file": ("patient_attachments",),
    "patient_note": ("patient_notes",),
    "appointment_note": ("appointment_notes",),
    "medical_alert": ("medical_alerts",),
}
TRANSFORM_REASONS = {
    "date": "a calendar date, never shifted between time zones",
    "local_date": "the date in the clinic's time zone of the moment Cliniko recorded (in UTC)",
    "local_datetime": "the time in the clinic's time zone",
    "currency": "the amount with the clinic's currency",
    "yes_no": "Yes or No",
    "join": "the list as one comma-separated text",
    "service_choice": "value map: services and products to the picklist's choices",
    "pronouns": "the pronouns as one text (she/her)",
}
_STRUCTURED_REASONS = {
    "phones": "in international form (E.164, with the country code), as Nutshell keeps phone numbers",
    "emails": "valid addresses only; an invalid one is kept in the description",
    "startTime": "the same moment: Cliniko writes UTC text, Nutshell takes Unix seconds",
    "endTime": "the same moment: Cliniko writes UTC text, Nutshell takes Unix seconds",
    "addresses": "address lines, city, state, post code and the country's code",
    "description": "Cliniko fields without a Nutshell field, as labelled lines",
}
SHOWN_DIFFERENTLY = "same value, shown differently"


def reason(mapping: MigrationMap | None, object_: str, path: str) -> str:
    """Why `path` of an `object_` record holds what it holds: the map rule's note, else what its transform
    does, else what the structured field always does."""
    target = path.removeprefix("links.")
    labels: list[str] = []
    for obj in SOURCE_OBJECTS.get(object_, ()) if mapping is not None else ():
        om = mapping.objects.get(obj) if mapping is not None else None
        for rule in om.rules() if om is not None else []:
            if path == "description" and rule.target.startswith("description."):
                labels.append(rule.target.removeprefix("description."))
            elif rule.target == target:
                if rule.note:
                    return rule.note
                if rule.transform in TRANSFORM_REASONS:
                    return TRANSFORM_REASONS[rule.transform]
    if labels:
        shown = ", ".join(dict.fromkeys(labels[:6])) + (", …" if len(labels) > 6 else "")
        return f"Cliniko fields without a Nutshell field, as labelled lines ({shown})"
    return _STRUCTURED_REASONS.get(path, "")
