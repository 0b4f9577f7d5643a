"""Appointments, group-session attendances and communications to Nutshell activities.

Activities have no custom fields (limitations.py): the appointment type travels as the activity type and name, the
business as the location, and status, practitioner, cancellation and invoice state as description lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cliniko2nutshell.cliniko.models import Attendee, Communication, IndividualAppointment
from cliniko2nutshell.mapping.model import AppointmentStatus, StatusRecording
from cliniko2nutshell.mapping.outputs import (
    USER,
    Context,
    NutshellName,
    Outcome,
    Planned,
    Ref,
    Skip,
    Skipped,
    Unmappable,
    marker,
)
from cliniko2nutshell.mapping.render import html_to_text
from cliniko2nutshell.mapping.timeutil import aware, local, plus_minutes, unix
from cliniko2nutshell.mapping.value_maps import business_location
from cliniko2nutshell.mapping.values import apply_rules

INVOICE_STATUS = {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}
TREATMENT_NOTE_STATUS = {10: "Draft", 90: "Final"}
STATUS_TEXT = {
    AppointmentStatus.ATTENDED: "Attended",
    AppointmentStatus.UNMARKED: "Not marked as arrived",
    AppointmentStatus.NO_SHOW: "Did not arrive (no-show)",
    AppointmentStatus.CANCELLED: "Cancelled",
    AppointmentStatus.FUTURE: "Scheduled",
}


def appointment_status(a: IndividualAppointment, now: datetime) -> AppointmentStatus:
    if a.cancelled_at is not None:
        return AppointmentStatus.CANCELLED
    if a.starts_at is not None and aware(a.starts_at) > now:
        return AppointmentStatus.FUTURE
    if a.did_not_arrive:
        return AppointmentStatus.NO_SHOW
    if a.patient_arrived:
        return AppointmentStatus.ATTENDED
    return AppointmentStatus.UNMARKED


def attendance_status(att: Attendee, starts_at: datetime | None, now: datetime) -> AppointmentStatus:
    """Attendees carry only `arrived`: a group no-show cannot be told from an unmarked attendance."""
    if att.cancelled_at is not None:
        return AppointmentStatus.CANCELLED
    if starts_at is not None and aware(starts_at) > now:
        return AppointmentStatus.FUTURE
    return AppointmentStatus.ATTENDED if att.arrived else AppointmentStatus.UNMARKED


def _booking(
    kind: str,
    rec: IndividualAppointment | Attendee,
    patient_id: str | None,
    ctx: Context,
    *,
    object_name: str,
    status: AppointmentStatus,
    starts_at: datetime | None,
    ends_at: datetime | None,
    type_id: str | None,
    practitioner_id: str | None,
    business_id: str | None,
    group: bool,
) -> Outcome:
    m = ctx.map
    survivor = ctx.catalog.survivor(patient_id) if patient_id else None
    obj = m.object(object_name)
    if obj is None:
        return Skipped(kind, rec.id, Skip(f"{object_name} are switched off in the map"), survivor)
    if rec.is_archived and not m.policies.archived_appointments:
        return Skipped(kind, rec.id, Skip("archived (deleted) in Cliniko"), survivor)
    # Cancelled or not, nothing dated after the cutover moves unless the map asks for future appointments.
    future = starts_at is not None and aware(starts_at) > ctx.catalog.reference_time
    if future and not m.policies.future_appointments:
        return Skipped(kind, rec.id, Skip("future appointment: scheduled activities are off in the map"), survivor)
    rule = m.value_maps.status_rule(status)
    if rule.record is StatusRecording.SKIP:
        return Skipped(kind, rec.id, Skip(f"{status.value} appointments are not migrated (value map)"), survivor)
    if survivor is None:
        return Skipped(kind, rec.id, Unmappable("no patient"), None)
    if starts_at is None:
        return Skipped(kind, rec.id, Unmappable("no start time"), survivor)

    atype = ctx.catalog.appointment_types.get(type_id or "")
    type_name = (atype.name or "").strip() if atype and atype.name else "Appointment"
    name = f"{type_name} (group session)" if group else type_name
    if rule.record is StatusRecording.LABELLED:
        name = f"{rule.label}: {name}"
    inverted = None
    if ends_at is None or aware(ends_at) < aware(starts_at):
        if ends_at is not None:  # said where it is seen: the end Cliniko holds is not silently replaced
            inverted = f"Ends before it starts in Cliniko (at {local(ends_at, ctx.tz).strftime('%Y-%m-%d %H:%M')})"
        minutes = atype.duration_in_minutes if atype and atype.duration_in_minutes else 0
        ends_at = plus_minutes(starts_at, minutes)

    status_text = STATUS_TEXT[status]
    if status is AppointmentStatus.CANCELLED and rec.cancelled_at is not None:
        status_text += " on " + local(rec.cancelled_at, ctx.tz).strftime("%Y-%m-%d %H:%M")
    derived = {
        "status": status_text,
        "practitioner": ctx.catalog.practitioner_name(practitioner_id),
        "invoice_status": INVOICE_STATUS.get(rec.invoice_status or 0),
        "treatment_note_status": TREATMENT_NOTE_STATUS.get(rec.treatment_note_status or 0),
    }
    applied = apply_rules(obj.rules(), rec, derived, ctx)
    lines = [*applied.lines, *([inverted] if inverted else []), f"Migrated from Cliniko ({marker(kind, rec.id)})"]
    payload: dict[str, Any] = {"name": name, "description": "\n".join(lines)}
    if "activityType" in applied.structured:
        payload["activityType"] = NutshellName(
            "activity_type", m.value_maps.appointment_types.get(type_id or "") or m.value_maps.default_activity_type
        )
    payload["startTime"] = unix(starts_at)
    payload["endTime"] = unix(ends_at)
    payload["isLogged"] = rule.record is not StatusRecording.SCHEDULED
    if "location" in applied.structured:
        location = m.value_maps.locations.get(business_id or "") or business_location(ctx.catalog, business_id)
        if location:
            payload["location"] = location
    participants: list[Ref] = [Ref("person", survivor)]
    if practitioner_id:
        participants.append(Ref(USER, practitioner_id))
    payload["links"] = {"participants": participants}
    return Planned(kind, rec.id, payload, survivor)


def appointment(a: IndividualAppointment, ctx: Context) -> Outcome:
    return _booking(
        "appointment",
        a,
        a.patient.id if a.patient else None,
        ctx,
        object_name="individual_appointments",
        status=appointment_status(a, ctx.catalog.reference_time),
        starts_at=a.starts_at,
        ends_at=a.ends_at,
        type_id=a.appointment_type.id if a.appointment_type else None,
        practitioner_id=a.practitioner.id if a.practitioner else None,
        business_id=a.business.id if a.business else None,
        group=False,
    )


def attendance(att: Attendee, ctx: Context) -> Outcome | None:
    """A group-session attendance; None for the attendee rows of individual appointments (those move with the
    appointment itself)."""
    group = ctx.catalog.group_appointments.get(att.booking.id or "") if att.booking else None
    if group is None:
        return None
    return _booking(
        "attendance",
        att,
        att.patient.id if att.patient else None,
        ctx,
        object_name="attendees",
        status=attendance_status(att, group.starts_at, ctx.catalog.reference_time),
        starts_at=group.starts_at,
        ends_at=group.ends_at,
        type_id=group.appointment_type.id if group.appointment_type else None,
        practitioner_id=group.practitioner.id if group.practitioner else None,
        business_id=group.business.id if group.business else None,
        group=True,
    )


MEMO_CATEGORY = 12


def communication_title(c: Communication) -> str:
    subject = (c.content_subject or "").strip() or (c.category or "").strip()
    if c.category_code == MEMO_CATEGORY:
        title = "Memo" + (f": {subject}" if subject and subject.lower() != "memo" else "")
    else:
        kind = (c.type or "Communication").strip()
        direction = (c.direction_description or "").strip().lower()
        title = f"{kind} {direction}".strip() + (f": {subject}" if subject else "")
    return f"[Confidential] {title}" if c.confidential else title


def message_text(c: Communication) -> str | None:
    content = c.content or ""
    text = html_to_text(content) if "<" in content and ">" in content else content.strip()
    return text or None


def communication(c: Communication, ctx: Context) -> Outcome:
    m = ctx.map
    pid = c.patient.id if c.patient else None
    survivor = ctx.catalog.survivor(pid) if pid else None
    obj = m.object("communications")
    if obj is None:
        return Skipped("communication", c.id, Skip("communications are switched off in the map"), survivor)
    if c.is_archived:
        return Skipped("communication", c.id, Skip("archived in Cliniko"), survivor)
    if c.confidential and not m.policies.confidential_memos:
        return Skipped("communication", c.id, Skip("confidential memo: the map leaves them out"), survivor)
    if survivor is None:
        return Skipped("communication", c.id, Unmappable("no patient"), None)
    if c.created_at is None:
        return Skipped("communication", c.id, Unmappable("no timestamp"), survivor)
    applied = apply_rules(obj.rules(), c, {"message": message_text(c)}, ctx)
    lines = [*applied.lines, f"Migrated from Cliniko ({marker('communication', c.id)})"]
    payload: dict[str, Any] = {"name": communication_title(c), "description": "\n".join(lines)}
    if "activityType" in applied.structured:
        kind = "Other" if c.category_code == MEMO_CATEGORY else (c.type or "Other")
        payload["activityType"] = NutshellName(
            "activity_type", m.value_maps.communication_types.get(kind) or m.value_maps.default_activity_type
        )
    payload["startTime"] = unix(c.created_at)
    payload["endTime"] = unix(c.created_at)
    payload["isLogged"] = True
    payload["links"] = {"participants": [Ref("person", survivor)]}
    return Planned("communication", c.id, payload, survivor)
