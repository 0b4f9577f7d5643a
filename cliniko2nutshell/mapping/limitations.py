"""The known limitations of the two APIs, listed once. Every screen and report shows them from here.

`places` say where each applies: an object of the map ("object:appointments"), a custom field
("field:Last Payment Date"), or a step ("preflight", "rollback", "sample").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limitation:
    id: str
    title: str
    text: str
    places: tuple[str, ...]


LIMITATIONS: tuple[Limitation, ...] = (
    Limitation(
        id="activities-no-custom-fields",
        title="Activities have no custom fields",
        text=(
            "Nutshell activities cannot carry custom fields. The appointment type becomes the activity type "
            "(value map) and the activity name; the business becomes the activity location; status, practitioner "
            "and other details go into the activity description."
        ),
        places=("object:individual_appointments", "object:attendees", "object:communications", "preflight"),
    ),
    Limitation(
        id="no-payments-api",
        title="Cliniko has no payments API",
        text=(
            "Cliniko does not export payments. Last Payment Date and Last Payment Amount are derived from paid "
            "invoices (status Paid and the date the invoice was closed); Balance Due is the total of open invoices "
            "and cannot see part-payments."
        ),
        places=(
            "object:invoices",
            "field:Balance Due",
            "field:Last Payment Date",
            "field:Last Payment Amount",
            "preflight",
        ),
    ),
    Limitation(
        id="files-only-on-activities",
        title="Files attach only to activities (and leads)",
        text=(
            "Nutshell has no files on people. Each patient attachment and each rendered treatment note goes onto a "
            "logged activity of the patient's person, dated like the original."
        ),
        places=("object:patient_attachments", "object:treatment_notes", "preflight"),
    ),
    Limitation(
        id="notes-not-backdated",
        title="Notes cannot be backdated",
        text=(
            "Nutshell dates a note when it is created. The original date (and author) is written at the top of the "
            "note text instead."
        ),
        places=(
            "object:treatment_notes",
            "object:medical_alerts",
            "object:patient_notes",
            "preflight",
        ),
    ),
    Limitation(
        id="custom-fields-not-deletable",
        title="Custom-field definitions cannot be deleted through the API",
        text=(
            "Custom fields created for the migration stay in Nutshell after a rollback; an administrator can remove "
            "them in Nutshell's settings."
        ),
        places=("map:custom_fields", "rollback", "preflight"),
    ),
)

_BY_ID = {lim.id: lim for lim in LIMITATIONS}


def limitation(limitation_id: str) -> Limitation:
    return _BY_ID[limitation_id]


def limitations_for(place: str) -> list[Limitation]:
    """The limitations to show at `place` (e.g. "object:appointments", "field:Balance Due", "rollback")."""
    return [lim for lim in LIMITATIONS if place in lim.places]
