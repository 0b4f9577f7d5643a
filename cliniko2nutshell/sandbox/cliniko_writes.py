"""The writes the delta tests need: patients and individual appointments (create, update, cancel, archive).

Each function runs inside one write transaction, validates like Rails would (the first problem per field, as
`{"field": "message"}`), raises `Invalid` for a 422 or `Missing` for a 404, and keeps `fk` and the scope
columns in sync with the body. Every write bumps `updated_at`: unconfirmed for archive and cancel in the
reference (§10); we choose "bumps", so an `updated_at` watermark sees them.
Unknown fields in a request body are ignored, as Rails' strong parameters do.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from cliniko2nutshell.sandbox.cliniko_db import BASE
from cliniko2nutshell.sandbox.cliniko_query import parse_timestamp
from cliniko2nutshell.sandbox.cliniko_records import RecordStore, Row

# The spec's e-mail pattern, meant case-insensitively (its upper-case-only form is a spec bug).
EMAIL = re.compile(r"^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Z0-9.-]+\.[A-Z]{2,63}$", re.IGNORECASE)
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ID = re.compile(r"^[0-9]{1,19}$")

PATIENT_TEXT = {  # field -> max length (None: unbounded)
    "title": 255, "first_name": 255, "last_name": 255, "preferred_first_name": 255, "address_1": 255,
    "address_2": 255, "address_3": 255, "city": 255, "state": None, "post_code": None, "country": None,
    "sex": None, "gender_identity": None, "occupation": 255, "emergency_contact": 255, "notes": None,
    "appointment_notes": None, "medicare": 255, "medicare_reference_number": 255, "dva_card_number": None,
    "invoice_default_to": None, "invoice_extra_information": None, "referral_source": 255,
    "old_reference_id": 255, "time_zone": None, "email": 255, "invoice_email": None,
}  # fmt: skip
PATIENT_BOOLS = ("accepted_privacy_policy", "accepted_email_marketing", "receives_confirmation_emails")
PATIENT_LINKS = {"concession_type_id": ("concession_type", "concession_types"),
                 "referring_doctor_id": ("referring_doctor", "contacts")}  # fmt: skip
PHONE_TYPES = ("Fax", "Home", "Mobile", "Other", "Work")
REMINDER_TYPES = ("None", "SMS", "Email", "SMS & Email")
PRONOUN_KEYS = ("accusative", "nominative", "predicative_possessive", "pronominal_possessive", "reflexive")

APPOINTMENT_LINKS = {
    "patient_id": ("patient", "patients"),
    "practitioner_id": ("practitioner", "practitioners"),
    "appointment_type_id": ("appointment_type", "appointment_types"),
    "business_id": ("business", "businesses"),
    "patient_case_id": ("patient_case", "patient_cases"),
}
APPOINTMENT_REQUIRED = ("starts_at", "patient_id", "practitioner_id", "appointment_type_id", "business_id")
CANCELLATION_REASONS = {10: "Feeling Better", 20: "Condition Worse", 30: "Sick", 31: "COVID-19 related",
                        40: "Away", 50: "Other", 60: "Work"}  # fmt: skip
REPEAT_TYPES = ("Daily", "Monthly", "Weekly")


class Invalid(Exception):
    """A 422: `errors` maps request fields to what is wrong with them."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


class Missing(Exception):
    """A 404: the record does not exist, or is hidden by the default scope."""


def link(plural: str, record_id: str, tail: str = "") -> dict[str, Any]:
    return {"links": {"self": f"{BASE}/{plural}/{record_id}{tail}"}}


def _load(conn: sqlite3.Connection, resource: str, record_id: str, *, hidden: tuple[str, ...]) -> dict[str, Any]:
    row = conn.execute("SELECT body FROM records WHERE resource = ? AND id = ?", (resource, record_id)).fetchone()
    if row is None:
        raise Missing(record_id)
    body: dict[str, Any] = json.loads(row[0])
    if any(body.get(column) for column in hidden):
        raise Missing(record_id)
    return body


def _fk(conn: sqlite3.Connection, resource: str, record_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT fk FROM records WHERE resource = ? AND id = ?", (resource, record_id)).fetchone()
    return json.loads(row[0]) if row else {}


def _id(errors: dict[str, str], field: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not ID.match(text):
        errors.setdefault(field, "is invalid")
        return None
    return str(int(text))


def _existing(conn: sqlite3.Connection, errors: dict[str, str], field: str, plural: str, value: Any) -> str | None:
    record_id = _id(errors, field, value)
    if (
        record_id is not None
        and not conn.execute("SELECT 1 FROM records WHERE resource = ? AND id = ?", (plural, record_id)).fetchone()
    ):
        errors.setdefault(field, "must exist")
        return None
    return record_id


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Invalid({"base": "the request body must be a JSON object"})
    return payload


# --- patients --------------------------------------------------------------------------------------------------


def _patient_fields(conn: sqlite3.Connection, payload: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The validated changes of a patient write, as body fields (plus `*_id` keys for links)."""
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for field, max_len in PATIENT_TEXT.items():
        if field not in payload:
            continue
        value = payload[field]
        if value is not None and not isinstance(value, str):
            errors[field] = "must be a string"
        elif max_len is not None and value is not None and len(value) > max_len:
            errors[field] = f"is too long (maximum is {max_len} characters)"
        elif field in ("email", "invoice_email") and value and not EMAIL.match(value.strip()):
            errors[field] = "is invalid"
        else:
            changes[field] = value.strip() if field in ("email", "invoice_email") and value else value
    for field in ("first_name", "last_name"):
        if (creating or field in payload) and not (isinstance(payload.get(field), str) and payload[field].strip()):
            errors.setdefault(field, "can't be blank")
    for field in (*PATIENT_BOOLS, "unsubscribe_sms_marketing"):
        if field in payload:
            if payload[field] is not None and not isinstance(payload[field], bool):
                errors[field] = "must be true or false"
            elif field == "unsubscribe_sms_marketing":
                if payload[field]:
                    changes["accepted_sms_marketing"] = False
            else:
                changes[field] = payload[field]
    if "reminder_type" in payload:
        if payload["reminder_type"] is not None and payload["reminder_type"] not in REMINDER_TYPES:
            errors["reminder_type"] = "is not included in the list"
        else:
            changes["reminder_type"] = payload["reminder_type"]
    if "date_of_birth" in payload:
        value = payload["date_of_birth"]
        if value in (None, ""):
            changes["date_of_birth"] = None
        elif not (isinstance(value, str) and DATE.match(value) and _valid_date(value)):
            errors["date_of_birth"] = "is not a valid date"
        else:
            changes["date_of_birth"] = value
    if "patient_phone_numbers" in payload:
        phones = _phones(payload["patient_phone_numbers"])
        if phones is None:
            errors["patient_phone_numbers"] = "must be a list of {phone_type, number}"
        else:
            changes["patient_phone_numbers"] = phones
    if "pronouns" in payload:
        value = payload["pronouns"]
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(value.get(k), str) for k in PRONOUN_KEYS)
        ):
            errors["pronouns"] = f"must be null or have {', '.join(PRONOUN_KEYS)}"
        else:
            changes["pronouns"] = {k: value[k] for k in PRONOUN_KEYS} if value else None
    if "custom_fields" in payload:
        value = payload["custom_fields"]
        if value is not None and not (isinstance(value, dict) and isinstance(value.get("sections"), list)):
            errors["custom_fields"] = "must be null or an object with sections"
        else:
            changes["custom_fields"] = value
    for field, (_rel, plural) in PATIENT_LINKS.items():
        if field in payload:
            changes[field] = _existing(conn, errors, field, plural, payload[field])
    if errors:
        raise Invalid(errors)
    return changes


def _valid_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _phones(value: Any) -> list[dict[str, str]] | None:
    if not isinstance(value, list):
        return None
    phones = []
    for item in value:
        if not (
            isinstance(item, dict) and item.get("phone_type") in PHONE_TYPES and isinstance(item.get("number"), str)
        ):
            return None
        digits = re.sub(r"\D", "", item["number"])
        phones.append({"phone_type": item["phone_type"], "number": item["number"], "normalized_number": digits})
    return phones


def _apply_patient(body: dict[str, Any], fk: dict[str, Any], changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        if field in PATIENT_LINKS:
            rel, plural = PATIENT_LINKS[field]
            if value is None:
                body.pop(rel, None)
                fk.pop(field, None)
            else:
                body[rel] = link(plural, value)
                fk[field] = value
        else:
            body[field] = value
    body["label"] = " ".join(p for p in (body.get("first_name"), body.get("last_name")) if p) or None


def create_patient(store: RecordStore, conn: sqlite3.Connection, payload: Any) -> dict[str, Any]:
    changes = _patient_fields(conn, _object(payload), creating=True)
    now = store.clock.stamp()
    pid = store.new_id(conn, "patients")
    body: dict[str, Any] = {"id": pid, "created_at": now, "updated_at": now, "archived_at": None, "deleted_at": None}
    body.update({field: None for field in PATIENT_TEXT})
    body.update({field: None for field in PATIENT_BOOLS})
    body.update(
        accepted_sms_marketing=None, reminder_type=None, date_of_birth=None, gender=None, pronouns=None,
        patient_phone_numbers=[], custom_fields=None, merged_at=None, label=None,
    )  # fmt: skip
    for tail in ("appointments", "attendees", "invoices", "medical_alerts", "patient_attachments"):
        body[tail] = link("patients", pid, f"/{tail}")
    body["links"] = {"self": f"{BASE}/patients/{pid}"}
    fk: dict[str, Any] = {}
    _apply_patient(body, fk, changes)
    store.insert(conn, "patients", body, fk)
    return body


def update_patient(store: RecordStore, conn: sqlite3.Connection, pid: str, payload: Any) -> dict[str, Any]:
    body = _load(conn, "patients", pid, hidden=("archived_at",))
    changes = _patient_fields(conn, _object(payload), creating=False)
    fk = _fk(conn, "patients", pid)
    _apply_patient(body, fk, changes)
    body["updated_at"] = store.clock.stamp()
    store.replace(conn, "patients", body, fk)
    return body


def archive_patient(store: RecordStore, conn: sqlite3.Connection, pid: str) -> None:
    body = _load(conn, "patients", pid, hidden=("archived_at",))
    body["archived_at"] = body["updated_at"] = store.clock.stamp()
    store.replace(conn, "patients", body, _fk(conn, "patients", pid))


def unarchive_patient(store: RecordStore, conn: sqlite3.Connection, pid: str) -> dict[str, Any]:
    body = _load(conn, "patients", pid, hidden=())
    body["archived_at"] = None
    body["updated_at"] = store.clock.stamp()
    store.replace(conn, "patients", body, _fk(conn, "patients", pid))
    return body


# --- individual appointments ------------------------------------------------------------------------------------

APPOINTMENT_HIDDEN = ("archived_at", "cancelled_at", "deleted_at")


def _appointment_fields(
    conn: sqlite3.Connection, payload: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    if current is None:
        for field in APPOINTMENT_REQUIRED:
            if payload.get(field) in (None, ""):
                errors[field] = "can't be blank"
    for field in ("starts_at", "ends_at"):
        if payload.get(field) not in (None, ""):
            moment = parse_timestamp(str(payload[field])) if isinstance(payload[field], str) else None
            if moment is None:
                errors[field] = "is not a valid UTC timestamp"
            else:
                changes[field] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif field in payload and current is not None:
            errors[field] = "can't be blank"
    for field, (_rel, plural) in APPOINTMENT_LINKS.items():
        if field in payload and field not in errors:
            if payload[field] is None and field == "patient_case_id":
                changes[field] = None
            elif payload[field] is not None:
                changes[field] = _existing(conn, errors, field, plural, payload[field])
    if "notes" in payload:
        if payload["notes"] is not None and not isinstance(payload["notes"], str):
            errors["notes"] = "must be a string"
        else:
            changes["notes"] = payload["notes"]
    # Unconfirmed: the API's request body does not list these, but Cliniko's UI sets them; we accept them so
    # tests can mark arrivals and no-shows through the API.
    for field in ("did_not_arrive", "patient_arrived"):
        if field in payload:
            if not isinstance(payload[field], bool):
                errors[field] = "must be true or false"
            else:
                changes[field] = payload[field]
    if "repeat_rule" in payload:
        rule = _repeat_rule(payload["repeat_rule"])
        if rule is False:
            errors["repeat_rule"] = "is invalid"
        else:
            changes["repeat_rule"] = rule
    if errors:
        raise Invalid(errors)
    return changes


def _repeat_rule(value: Any) -> dict[str, Any] | bool | None:
    """The rule as stored (no repeats are generated from it), None, or False when invalid."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return False
    repeat_type = value.get("repeat_type")
    repeats = value.get("number_of_repeats")
    interval = value.get("repeating_interval")
    if repeat_type is not None and repeat_type not in REPEAT_TYPES:
        return False
    if repeats is not None and not (isinstance(repeats, int) and 0 < repeats <= 51):
        return False
    if interval is not None and not (isinstance(interval, int) and 0 < interval <= 100):
        return False
    return {"repeat_type": repeat_type, "number_of_repeats": repeats, "repeating_interval": interval}


def _duration_minutes(conn: sqlite3.Connection, type_id: str) -> int:
    row = conn.execute(
        "SELECT json_extract(body, '$.duration_in_minutes') FROM records WHERE resource = 'appointment_types'"
        " AND id = ?",
        (type_id,),
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _patient_label(conn: sqlite3.Connection, pid: str) -> str | None:
    row = conn.execute(
        "SELECT json_extract(body, '$.label') FROM records WHERE resource = 'patients' AND id = ?", (pid,)
    ).fetchone()
    return row[0] if row else None


def _apply_appointment(
    conn: sqlite3.Connection, body: dict[str, Any], fk: dict[str, Any], changes: dict[str, Any]
) -> None:
    explicit_end = changes.pop("ends_at", None)
    for field, value in changes.items():
        if field in APPOINTMENT_LINKS:
            rel, plural = APPOINTMENT_LINKS[field]
            if value is None:
                body.pop(rel, None)
                fk.pop(field, None)
            else:
                body[rel] = link(plural, value)
                fk[field] = value
        else:
            body[field] = value
    if "patient_id" in changes:
        body["patient_name"] = _patient_label(conn, fk["patient_id"])
    if explicit_end is not None:
        body["ends_at"] = explicit_end
    elif "starts_at" in changes or "appointment_type_id" in changes:
        # ends_at defaults from the type's duration (OAS23), on a move or a change of type too (our choice).
        start = datetime.fromisoformat(body["starts_at"].replace("Z", "+00:00"))
        minutes = _duration_minutes(conn, fk["appointment_type_id"])
        body["ends_at"] = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if body["ends_at"] < body["starts_at"]:
        raise Invalid({"ends_at": "must be after starts_at"})


def create_individual_appointment(store: RecordStore, conn: sqlite3.Connection, payload: Any) -> dict[str, Any]:
    changes = _appointment_fields(conn, _object(payload), None)
    now = store.clock.stamp()
    aid = store.new_id(conn, "individual_appointments")
    body: dict[str, Any] = {
        "id": aid, "created_at": now, "updated_at": now, "starts_at": None, "ends_at": None, "patient_name": None,
        "notes": None, "did_not_arrive": False, "patient_arrived": False, "cancelled_at": None,
        "cancellation_reason": None, "cancellation_reason_description": None, "cancellation_note": None,
        "invoice_status": None, "treatment_note_status": None, "email_reminder_sent": False,
        "sms_reminder_sent": False, "online_booking_policy_accepted": None, "booking_ip_address": None,
        "has_patient_appointment_notes": False, "telehealth_url": None, "repeat_rule": None, "repeats": None,
        "archived_at": None, "deleted_at": None,
        "attendees": link("individual_appointments", aid, "/attendees"),
        "conflicts": link("individual_appointments", aid, "/conflicts"),
        "links": {"self": f"{BASE}/individual_appointments/{aid}"},
    }  # fmt: skip
    fk: dict[str, Any] = {}
    _apply_appointment(conn, body, fk, changes)
    store.insert(conn, "individual_appointments", body, fk)
    _create_attendee(store, conn, body, fk)
    return body


def _create_attendee(store: RecordStore, conn: sqlite3.Connection, appt: dict[str, Any], appt_fk: dict[str, Any]):
    tid = store.new_id(conn, "attendees")
    now = appt["created_at"]
    body: dict[str, Any] = {
        "id": tid, "created_at": now, "updated_at": now, "arrived": appt.get("patient_arrived"), "notes": None,
        "cancelled_at": None, "cancellation_reason": None, "cancellation_reason_description": None,
        "cancellation_note": None, "cancellation_url": None, "invoice_status": None, "treatment_note_status": None,
        "email_reminder_sent": False, "sms_reminder_sent": False, "booking_ip_address": None,
        "online_booking_policy_accepted": None, "telehealth_url": None, "archived_at": None, "deleted_at": None,
        "booking": link("bookings", appt["id"]),
        "invoices": link("attendees", tid, "/invoices"),
        "patient_forms": link("attendees", tid, "/patient_forms"),
        "links": {"self": f"{BASE}/attendees/{tid}"},
    }  # fmt: skip
    fk = {"booking_id": appt["id"], "appointment_id": appt["id"]}
    _sync_attendee(body, fk, appt, appt_fk)
    store.insert(conn, "attendees", body, fk)


def _sync_attendee(body: dict[str, Any], fk: dict[str, Any], appt: dict[str, Any], appt_fk: dict[str, Any]) -> None:
    """An individual appointment's attendee mirrors its patient, case, arrival, cancellation and archive."""
    for field, rel, plural in (
        ("patient_id", "patient", "patients"),
        ("patient_case_id", "patient_case", "patient_cases"),
    ):
        if appt_fk.get(field):
            body[rel] = link(plural, appt_fk[field])
            fk[field] = appt_fk[field]
        else:
            body.pop(rel, None)
            fk.pop(field, None)
    body["arrived"] = appt.get("patient_arrived")
    for field in ("cancelled_at", "cancellation_reason", "cancellation_reason_description", "cancellation_note"):
        body[field] = appt.get(field)
    body["archived_at"] = appt.get("archived_at")
    body["updated_at"] = appt["updated_at"]


def _save_appointment(store: RecordStore, conn: sqlite3.Connection, body: dict[str, Any], fk: dict[str, Any]):
    store.replace(conn, "individual_appointments", body, fk)
    attendees: list[Row] = store.rows_where_fk(conn, "attendees", "booking_id", body["id"])
    for row in attendees:
        att, att_fk = json.loads(row.body), json.loads(row.fk)
        _sync_attendee(att, att_fk, body, fk)
        store.replace(conn, "attendees", att, att_fk)


def update_individual_appointment(
    store: RecordStore, conn: sqlite3.Connection, aid: str, payload: Any
) -> dict[str, Any]:
    body = _load(conn, "individual_appointments", aid, hidden=APPOINTMENT_HIDDEN)
    changes = _appointment_fields(conn, _object(payload), body)
    fk = _fk(conn, "individual_appointments", aid)
    _apply_appointment(conn, body, fk, changes)
    body["updated_at"] = store.clock.stamp()
    _save_appointment(store, conn, body, fk)
    return body


def cancel_individual_appointment(store: RecordStore, conn: sqlite3.Connection, aid: str, payload: Any) -> None:
    body = _load(conn, "individual_appointments", aid, hidden=APPOINTMENT_HIDDEN)
    data = _object(payload)
    reason = data.get("cancellation_reason")
    if reason is None:
        raise Invalid({"cancellation_reason": "can't be blank"})
    if (
        isinstance(reason, bool)
        or not isinstance(reason, int | str)
        or str(reason).strip() not in {str(k) for k in CANCELLATION_REASONS}
    ):
        raise Invalid({"cancellation_reason": "is not included in the list"})
    note = data.get("cancellation_note")
    if note is not None and not isinstance(note, str):
        raise Invalid({"cancellation_note": "must be a string"})
    code = int(str(reason).strip())
    now = store.clock.stamp()
    body.update(
        cancelled_at=now, updated_at=now, cancellation_reason=code,
        cancellation_reason_description=CANCELLATION_REASONS[code], cancellation_note=note,
    )  # fmt: skip
    _save_appointment(store, conn, body, _fk(conn, "individual_appointments", aid))


def archive_individual_appointment(store: RecordStore, conn: sqlite3.Connection, aid: str) -> None:
    # Unconfirmed: whether archiving an appointment archives its attendee. We choose yes (it is the same visit).
    body = _load(conn, "individual_appointments", aid, hidden=("archived_at", "deleted_at"))
    body["archived_at"] = body["updated_at"] = store.clock.stamp()
    _save_appointment(store, conn, body, _fk(conn, "individual_appointments", aid))
