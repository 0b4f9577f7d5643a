"""Builds the golden inputs from tests/data/golden (the reference's Cliniko samples): shared by the golden tests
and the property tests."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cliniko2nutshell.cliniko.models import (
    AppointmentType,
    Attendee,
    BillableItem,
    Business,
    Communication,
    Contact,
    GroupAppointment,
    IndividualAppointment,
    Invoice,
    InvoiceItem,
    MedicalAlert,
    Patient,
    PatientAttachment,
    PatientCase,
    Practitioner,
    ReferralSource,
    Settings,
    TreatmentNote,
    User,
)
from cliniko2nutshell.mapping.catalog import Catalog, FileInfo, PatientBundle
from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.model import (
    CustomFieldAction,
    CustomFieldDecision,
    MigrationMap,
    PractitionerChoice,
    PractitionerDecision,
)
from cliniko2nutshell.mapping.outputs import Context

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
REFERENCE_TIME = datetime(2026, 11, 1, tzinfo=UTC)
ACTIVITY_TYPES = ["Phone Call / Meeting", "Email", "Meeting", "Appointment"]
PATIENT_ID = "836447129235883061"
BASE = "https://api.au1.cliniko.com/v1"


def sample(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / "cliniko" / f"{name}.json").read_text(encoding="utf-8"))


def _link(path: str) -> dict[str, Any]:
    return {"links": {"self": f"{BASE}/{path}"}}


def golden_catalog() -> Catalog:
    data = json.loads((GOLDEN / "catalog.json").read_text(encoding="utf-8"))
    models = {
        "practitioners": Practitioner,
        "users": User,
        "businesses": Business,
        "appointment_types": AppointmentType,
        "billable_items": BillableItem,
        "contacts": Contact,
        "group_appointments": GroupAppointment,
    }
    cat = Catalog(reference_time=REFERENCE_TIME)
    cat.settings = Settings.model_validate(json.loads((GOLDEN / "settings.json").read_text(encoding="utf-8")))
    for object_, model in models.items():
        table = getattr(cat, object_)
        for raw in data[object_]:
            rec = model.model_validate(raw)
            table[rec.id] = rec
    return cat


def golden_map(catalog: Catalog) -> MigrationMap:
    m = default_map(catalog, activity_types=ACTIVITY_TYPES)
    practitioners = {
        "1": PractitionerChoice(decision=PractitionerDecision.MATCHED, user="5-users", method="email", score=100),
        "456": PractitionerChoice(decision=PractitionerDecision.MATCHED, user="7-users", method="name", score=93),
        "514810972972521916": PractitionerChoice(decision=PractitionerDecision.FALLBACK, method="manual"),
    }
    decisions = {
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d": CustomFieldDecision(
            action=CustomFieldAction.CREATE, target="Heard About Us", type="Text", confirmed=True
        ),
    }
    return m.model_copy(
        update={"practitioners": practitioners, "fallback_owner": "1-users", "custom_field_decisions": decisions}
    )


def golden_context() -> Context:
    catalog = golden_catalog()
    return Context(map=golden_map(catalog), catalog=catalog, file_size_limit=25 * 2**20)


def _to_patient(raw: dict[str, Any]) -> dict[str, Any]:
    """The samples point at various patients; in a bundle every record belongs to the sample patient."""
    out = copy.deepcopy(raw)
    out["patient"] = _link(f"patients/{PATIENT_ID}")
    return out


def golden_bundle() -> PatientBundle:
    paid = sample("invoice") | {
        "id": "109",
        "number": 105,
        "issue_date": "2015-05-02",
        "status": 20,
        "status_description": "Paid",
        "total_amount": "90.0",
        "closed_at": "2015-05-03T04:00:00Z",
        "links": {"self": f"{BASE}/invoices/109"},
    }
    item = sample("invoice_item") | {"invoice": _link("invoices/109")}
    patient_case = _to_patient(sample("patient_case")) | {"contact": _link("contacts/1")}
    return PatientBundle(
        patient=Patient.model_validate(sample("patient")),
        appointments=[IndividualAppointment.model_validate(_to_patient(sample("individual_appointment")))],
        attendees=[Attendee.model_validate(_to_patient(sample("attendee")))],
        invoices=[Invoice.model_validate(_to_patient(sample("invoice"))), Invoice.model_validate(_to_patient(paid))],
        invoice_items=[InvoiceItem.model_validate(item)],
        medical_alerts=[MedicalAlert.model_validate(_to_patient(sample("medical_alert")))],
        communications=[Communication.model_validate(_to_patient(sample("communication")))],
        treatment_notes=[TreatmentNote.model_validate(_to_patient(sample("treatment_note")))],
        attachments=[PatientAttachment.model_validate(_to_patient(sample("patient_attachment")))],
        patient_cases=[PatientCase.model_validate(patient_case)],
        referral_source=ReferralSource.model_validate(sample("referral_source")),
        files={"1": FileInfo("files/attachments/1", 14936, "ab" * 32, "text/plain")},
    )
