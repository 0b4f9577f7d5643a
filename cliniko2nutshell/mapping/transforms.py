"""Pure transforms: Cliniko records (parsed with cliniko/models.py) + the map -> Nutshell REST create payloads.

Entry points: `plan_patient(bundle, ctx)` for everything one patient becomes (person, activities, notes, files)
and `plan_companies(ctx)` for the companies. Each record yields a `Planned` payload or a `Skipped` with a `Skip`
(the map says so) or `Unmappable` (a reason); a record that validated against the models never raises.

Payload shapes are the REST create elements of Nutshell's OpenAPI document, one entity without the plural wrapper:
person = contactPostInput element, company = accountPostInput element, activity = activityPostInput element,
note = the notePostInput `data` object ({"body", "links": {"parent"}}), file = {filename, path, size, sha256,
content_type, activity} for a logged activity. `Ref(kind, cliniko_id)` stands for a record the engine creates
(resolved through its id map; kind "user" through the practitioner decisions of the map), `NutshellName` for an
existing activity type; see outputs.resolve_payload.
"""

from __future__ import annotations

from cliniko2nutshell.mapping.activities import appointment, attendance, communication
from cliniko2nutshell.mapping.catalog import PatientBundle
from cliniko2nutshell.mapping.documents import (
    attachment,
    ensure_rendered,
    medical_alert,
    patient_text_note,
    treatment_note,
)
from cliniko2nutshell.mapping.outputs import (
    KINDS,
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
    refs_in,
    resolve_payload,
)
from cliniko2nutshell.mapping.people import business_company, company, person
from cliniko2nutshell.mapping.values import TRANSFORMS

__all__ = [
    "KINDS",
    "TRANSFORMS",
    "USER",
    "Context",
    "NutshellName",
    "Outcome",
    "Planned",
    "Ref",
    "Skip",
    "Skipped",
    "Unmappable",
    "appointment",
    "attachment",
    "attendance",
    "business_company",
    "communication",
    "company",
    "ensure_rendered",
    "marker",
    "medical_alert",
    "person",
    "plan_companies",
    "plan_patient",
    "refs_in",
    "resolve_payload",
    "treatment_note",
]


def plan_patient(bundle: PatientBundle, ctx: Context) -> list[Outcome]:
    """Everything one (surviving) patient becomes, person first. Records of patients merged into it follow it."""
    head = person(bundle, ctx)
    out: list[Outcome] = [head]
    for a in bundle.appointments:
        out.append(appointment(a, ctx))
    for att in bundle.attendees:
        if (r := attendance(att, ctx)) is not None:
            out.append(r)
    for c in bundle.communications:
        out.append(communication(c, ctx))
    for p in (bundle.patient, *bundle.merged):
        for kind in ("patient_note", "appointment_note"):
            if (n := patient_text_note(kind, p, bundle.patient.id, ctx)) is not None:
                out.append(n)
    for alert in bundle.medical_alerts:
        out.append(medical_alert(alert, ctx))
    for note in bundle.treatment_notes:
        out.extend(treatment_note(note, ctx))
    for att in bundle.attachments:
        out.extend(attachment(att, bundle.files.get(att.id), ctx))
    if isinstance(head, Skipped):
        # Nothing can hang off a person that is not created.
        why = Skip(f"the patient is not migrated ({head.why.reason})")
        out = [
            head,
            *(o if isinstance(o, Skipped) else Skipped(o.kind, o.cliniko_id, why, o.patient_id) for o in out[1:]),
        ]
    return out


def plan_companies(ctx: Context) -> list[Outcome]:
    """Companies from third-party contacts (and from businesses when that object is switched on)."""
    out: list[Outcome] = [company(c, ctx) for _, c in sorted(ctx.catalog.contacts.items())]
    if ctx.map.object("businesses") is not None:
        out += [business_company(b, ctx) for _, b in sorted(ctx.catalog.businesses.items())]
    return out
