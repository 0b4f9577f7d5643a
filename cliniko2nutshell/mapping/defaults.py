"""The default map: DESIGN.md's table made complete, field by field.

Nothing a clinic recorded is dropped silently: fields without a natural home in Nutshell become labelled lines of
the person's description, and every switch the user may want is an object toggle or a policy.
"""

from __future__ import annotations

from collections.abc import Iterable

from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.model import (
    PATIENT_ID_FIELD,
    CustomFieldSpec,
    FieldRule,
    MigrationMap,
    ObjectMap,
    PractitionerChoice,
)
from cliniko2nutshell.mapping.value_maps import default_value_maps, service_choices

NO_PAYMENTS = "Cliniko has no payments API: derived from paid invoices (status Paid, date closed)."
BALANCE_NOTE = "Total of open invoices; part-payments are invisible (Cliniko has no payments API)."


def R(source: str, target: str, transform: str = "text", **kw: object) -> FieldRule:
    return FieldRule(source=source, target=target, transform=transform, **kw)  # type: ignore[arg-type]


def default_custom_fields(choices: list[str]) -> list[CustomFieldSpec]:
    return [
        CustomFieldSpec(
            name=PATIENT_ID_FIELD,
            type="Text",
            description="Cliniko's id of the patient. The migration finds the person again by it: do not edit.",
        ),
        CustomFieldSpec(name="Date of Birth", type="Date"),
        CustomFieldSpec(name="Original Create Date", type="Date", description="When the patient was added in Cliniko."),
        CustomFieldSpec(name="Total Invoiced", type="Currency", description="Sum of the patient's Cliniko invoices."),
        CustomFieldSpec(name="Balance Due", type="Currency", description=BALANCE_NOTE),
        CustomFieldSpec(name="Last Invoice Date", type="Date"),
        CustomFieldSpec(name="Last Payment Date", type="Date", description=NO_PAYMENTS),
        CustomFieldSpec(name="Last Payment Amount", type="Currency", description=NO_PAYMENTS),
        CustomFieldSpec(
            name="Primary Service Type",
            type="Decision",
            choices=choices,
            description="The service or product most often on the patient's invoices.",
        ),
        CustomFieldSpec(name="Insurance Policy Number", type="Text"),
        CustomFieldSpec(name="Insurance Group Number", type="Text"),
    ]


def default_objects() -> dict[str, ObjectMap]:
    patients = ObjectMap(
        target="person",
        fields=[
            R("first_name", "name", locked=True, note="first and last name; the last name alone when no first"),
            R("email", "emails", note="only a valid address; an invalid one is kept in the description"),
            R("patient_phone_numbers", "phones"),
            R("address_1", "addresses", note="address lines, city, state, post code, country"),
            R("referring_doctor", "accounts", note="the referring doctor's company, cases' contacts, referrer"),
            R("practitioner", "owner", note="the practitioner the patient saw most, through the user matches"),
            R("id", f"customFields.{PATIENT_ID_FIELD}", locked=True),
            R("date_of_birth", "customFields.Date of Birth", "date"),
            R("created_at", "customFields.Original Create Date", "local_date"),
            R(
                "derived.insurance_policy_number",
                "customFields.Insurance Policy Number",
                note="from the patient custom field that holds the policy or member number",
            ),
            R("derived.insurance_group_number", "customFields.Insurance Group Number"),
            R("title", "description.Title"),
            R("preferred_first_name", "description.Preferred name"),
            R("pronouns", "description.Pronouns", "pronouns"),
            R("sex", "description.Sex"),
            R("gender_identity", "description.Gender identity"),
            R("occupation", "description.Occupation"),
            R("emergency_contact", "description.Emergency contact"),
            R("medicare", "description.Medicare number"),
            R("medicare_reference_number", "description.Medicare reference"),
            R("dva_card_number", "description.DVA card"),
            R("invoice_default_to", "description.Invoice to"),
            R("invoice_email", "description.Invoice e-mail"),
            R("invoice_extra_information", "description.Invoice details"),
            R("referral_source", "description.Referral source"),
            R("old_reference_id", "description.Previous system id"),
            R("reminder_type", "description.Reminders"),
            R("accepted_email_marketing", "description.Accepts e-mail marketing", "yes_no"),
            R("accepted_sms_marketing", "description.Accepts SMS marketing", "yes_no"),
            R("archived_at", "description.Archived in Cliniko", "local_date"),
        ],
    )
    invoices = ObjectMap(
        target="person",
        note="Invoices are not created in Nutshell: their totals become custom fields of the person.",
        fields=[
            R("derived.total_invoiced", "customFields.Total Invoiced", "currency"),
            R("derived.balance_due", "customFields.Balance Due", "currency", note=BALANCE_NOTE),
            R("derived.last_invoice_date", "customFields.Last Invoice Date", "date"),
            R("derived.last_payment_date", "customFields.Last Payment Date", "local_date", note=NO_PAYMENTS),
            R("derived.last_payment_amount", "customFields.Last Payment Amount", "currency", note=NO_PAYMENTS),
            R(
                "derived.primary_service_type",
                "customFields.Primary Service Type",
                "service_choice",
                note="the most frequent billable item or product, through the service-type value map",
            ),
        ],
    )
    contacts = ObjectMap(
        target="company",
        note="Third-party contacts (referring doctors, insurers, others) become companies linked to their patients.",
        fields=[
            R("company_name", "name", locked=True, note="the company name, else the contact's full name"),
            R("email", "emails"),
            R("phone_numbers", "phones"),
            R("address_1", "addresses"),
            R("derived.type", "description.Type"),
            R("doctor_type", "description.Doctor type"),
            R("derived.contact_person", "description.Contact person", note="when the company name is set"),
            R("occupation", "description.Occupation"),
            R("provider_number", "description.Provider number"),
            R("notes", "description.Notes"),
        ],
    )
    businesses = ObjectMap(
        target="company",
        enabled=False,
        note="Businesses become the activity location; switch on to also create a company per business.",
        fields=[
            R("business_name", "name", locked=True),
            R("address_1", "addresses"),
            R("website_address", "description.Website"),
            R("contact_information", "description.Contact information"),
        ],
    )
    practitioners = ObjectMap(
        target="user",
        note="Practitioners are matched to existing Nutshell users (never created) and own their patients' records.",
        fields=[R("user", "owner", note="exact e-mail match, else a name suggestion the user accepts")],
    )
    appointment_rules = [
        R("appointment_type", "activityType", note="value map: appointment types -> activity types"),
        R("appointment_type", "name", locked=True, note="the appointment type's name, with the status label"),
        R("starts_at", "startTime", locked=True),
        R("ends_at", "endTime", locked=True),
        R("patient", "participants", locked=True, note="the person and the practitioner's user"),
        R("business", "location", note="value map: businesses -> locations"),
        R("derived.status", "description.Status"),
        R("derived.practitioner", "description.Practitioner"),
        R("cancellation_reason_description", "description.Cancellation reason"),
        R("cancellation_note", "description.Cancellation note"),
        R("notes", "description.Appointment notes"),
        R("derived.invoice_status", "description.Invoice"),
        R("derived.treatment_note_status", "description.Treatment note"),
    ]
    individual = ObjectMap(target="activity", fields=appointment_rules)
    attendees = ObjectMap(
        target="activity",
        note="Group sessions: one activity per attendee, with that patient's own arrival and cancellation.",
        fields=[r.model_copy() for r in appointment_rules],
    )
    communications = ObjectMap(
        target="activity",
        note="E-mails, SMS, calls and memos become logged activities at their original time.",
        fields=[
            R("type", "activityType", note="value map: communication types -> activity types"),
            R("category", "name", locked=True),
            R("created_at", "startTime", locked=True),
            R("patient", "participants", locked=True),
            R("direction_description", "description.Direction"),
            R("content_subject", "description.Subject"),
            R("from_", "description.From"),
            R("to", "description.To"),
            R("derived.message", "description.Message", note="HTML e-mails as text"),
        ],
    )
    treatment_notes = ObjectMap(
        target="note",
        note="A note on the person (title, original date, author, text) and the rendered note as a file on a "
        "logged activity.",
        fields=[
            R("title", "body", locked=True),
            R("content", "body", locked=True),
            R("finalized_at", "startTime"),
            R("practitioner", "participants"),
        ],
    )
    patient_attachments = ObjectMap(
        target="file",
        note="Each attachment goes onto a logged activity of the person, dated like the upload.",
        fields=[
            R("filename", "name", locked=True),
            R("created_at", "startTime", locked=True),
            R("description", "description.Description"),
        ],
    )
    patient_notes = ObjectMap(target="note", fields=[R("notes", "body", locked=True)])
    appointment_notes = ObjectMap(target="note", fields=[R("appointment_notes", "body", locked=True)])
    medical_alerts = ObjectMap(target="note", fields=[R("name", "body", locked=True), R("created_at", "body")])
    return {
        "patients": patients,
        "invoices": invoices,
        "contacts": contacts,
        "businesses": businesses,
        "practitioners": practitioners,
        "individual_appointments": individual,
        "attendees": attendees,
        "communications": communications,
        "treatment_notes": treatment_notes,
        "patient_attachments": patient_attachments,
        "patient_notes": patient_notes,
        "appointment_notes": appointment_notes,
        "medical_alerts": medical_alerts,
    }


def default_map(
    catalog: Catalog | None = None,
    *,
    activity_types: Iterable[str] | None = None,
    practitioners: dict[str, PractitionerChoice] | None = None,
) -> MigrationMap:
    """The default map for a clinic (value maps from its catalogue when given)."""
    catalog = catalog or Catalog()
    value_maps = default_value_maps(catalog, activity_types)
    return MigrationMap(
        objects=default_objects(),
        value_maps=value_maps,
        practitioners=dict(practitioners or {}),
        custom_fields=default_custom_fields(service_choices(value_maps)),
        currency=catalog.currency,
    )
