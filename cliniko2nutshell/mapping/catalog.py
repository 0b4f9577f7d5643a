"""The source side as the transforms see it: lookups built once from the store, and one patient's records.

`Catalog` holds the small reference tables (settings, practitioners, businesses, appointment types, items,
third-party contacts, group sessions) and the merge chains; `PatientBundle` holds one patient's records,
including those of patients merged into it (their history goes to the survivor).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from cliniko2nutshell.cliniko.models import (
    AppointmentType,
    Attendee,
    BillableItem,
    Business,
    Communication,
    Contact,
    CustomField,
    GroupAppointment,
    IndividualAppointment,
    Invoice,
    InvoiceItem,
    MedicalAlert,
    Patient,
    PatientAttachment,
    PatientCase,
    Practitioner,
    Product,
    ReferralSource,
    Settings,
    TreatmentNote,
    User,
)
from cliniko2nutshell.mapping.currency import currency_for_country
from cliniko2nutshell.project.store import Store

M = TypeVar("M", bound=BaseModel)

# Cliniko's account time zone is a Rails label; the common ones of its markets, to IANA.
RAILS_ZONES = {
    "Melbourne": "Australia/Melbourne",
    "Sydney": "Australia/Sydney",
    "Canberra": "Australia/Sydney",
    "Brisbane": "Australia/Brisbane",
    "Adelaide": "Australia/Adelaide",
    "Darwin": "Australia/Darwin",
    "Perth": "Australia/Perth",
    "Hobart": "Australia/Hobart",
    "Auckland": "Pacific/Auckland",
    "Wellington": "Pacific/Auckland",
    "London": "Europe/London",
    "Edinburgh": "Europe/London",
    "Dublin": "Europe/Dublin",
    "Amsterdam": "Europe/Amsterdam",
    "Berlin": "Europe/Berlin",
    "Paris": "Europe/Paris",
    "Madrid": "Europe/Madrid",
    "Rome": "Europe/Rome",
    "Stockholm": "Europe/Stockholm",
    "Eastern Time (US & Canada)": "America/New_York",
    "Central Time (US & Canada)": "America/Chicago",
    "Mountain Time (US & Canada)": "America/Denver",
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Atlantic Time (Canada)": "America/Halifax",
    "Newfoundland": "America/St_Johns",
    "Saskatchewan": "America/Regina",
    "Singapore": "Asia/Singapore",
    "Hong Kong": "Asia/Hong_Kong",
    "Pretoria": "Africa/Johannesburg",
    "UTC": "UTC",
}


def parse_or_none(model: type[M], raw: dict[str, Any]) -> M | None:
    """A record that does not validate is left out here; the pre-flight reports it (it is never dropped silently)."""
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def invalid_fields(model: type[BaseModel], raw: dict[str, Any]) -> list[str]:
    """Where a record does not validate: field paths only (the values are patient data and stay out of reasons)."""
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        return sorted({".".join(str(part) for part in err["loc"]) for err in exc.errors()})
    return []


@dataclass(frozen=True, slots=True)
class CustomFieldDef:
    """A patient custom field as defined in settings, with its section."""

    token: str
    section: str
    name: str
    type: str  # text | paragraph | checkboxes | radiobuttons | date
    archived: bool
    options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.section} / {self.name}" if self.section else self.name


@dataclass
class Catalog:
    settings: Settings | None = None
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    businesses: dict[str, Business] = field(default_factory=dict)
    appointment_types: dict[str, AppointmentType] = field(default_factory=dict)
    billable_items: dict[str, BillableItem] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    group_appointments: dict[str, GroupAppointment] = field(default_factory=dict)
    merged_into: dict[str, str] = field(default_factory=dict)  # merged patient id -> its direct survivor
    reference_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    invalid: dict[str, list[str]] = field(default_factory=dict)  # object -> ids that failed to parse

    # -- derived lookups -------------------------------------------------------------------------------------
    @property
    def custom_field_defs(self) -> dict[str, CustomFieldDef]:
        out: dict[str, CustomFieldDef] = {}
        definition = self.settings.patient_custom_fields_definition if self.settings else None
        for section in definition.sections if definition else []:
            for f in section.fields:
                if not f.token:
                    continue
                out[f.token] = CustomFieldDef(
                    token=f.token,
                    section=section.name or "",
                    name=f.name or f.token,
                    type=f.type or "text",
                    archived=bool(f.archived or section.archived),
                    options=tuple(o.name for o in f.options if o.name),
                )
        return out

    @property
    def time_zone(self) -> ZoneInfo:
        """The clinic's zone: the first business's IANA zone, else the account's Rails label mapped, else UTC."""
        candidates = [b.time_zone_identifier for b in self.businesses.values() if not b.is_archived]
        account = self.settings.account if self.settings else None
        if account and account.time_zone:
            candidates.append(RAILS_ZONES.get(account.time_zone, account.time_zone))
        for name in candidates:
            if name:
                try:
                    return ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    continue
        return ZoneInfo("UTC")

    @property
    def country_code(self) -> str | None:
        """The Cliniko account's country (settings `account.country_code`), upper case."""
        account = self.settings.account if self.settings else None
        code = account.country_code if account else None
        return code.strip().upper() if code and code.strip() else None

    @property
    def currency(self) -> str | None:
        """The currency the account's country implies (None when the country is unknown to us)."""
        return currency_for_country(self.country_code)

    def survivor(self, patient_id: str) -> str:
        """The patient that finally holds `patient_id`'s history (merge chains followed; cycles broken)."""
        seen = {patient_id}
        current = patient_id
        while (nxt := self.merged_into.get(current)) is not None and nxt not in seen:
            seen.add(nxt)
            current = nxt
        return current

    def merged_from(self) -> dict[str, list[str]]:
        """Survivor id -> the merged patients whose records it takes over."""
        out: dict[str, list[str]] = {}
        for merged in self.merged_into:
            out.setdefault(self.survivor(merged), []).append(merged)
        return out

    def practitioner_name(self, practitioner_id: str | None) -> str | None:
        p = self.practitioners.get(practitioner_id or "")
        if p is None:
            return None
        full = " ".join(x for x in (p.first_name, p.last_name) if x)
        return p.display_name or p.label or full or None

    def item_name(self, item: InvoiceItem) -> str | None:
        """The current catalogue name of an invoice line's service or product, else the name on the line."""
        if item.billable_item and (b := self.billable_items.get(item.billable_item.id or "")) and b.name:
            return b.name
        if item.product and (p := self.products.get(item.product.id or "")) and p.name:
            return p.name
        return (item.name or "").strip() or None

    # -- building -----------------------------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: Store, reference_time: datetime | None = None) -> Catalog:
        cat = cls(reference_time=reference_time or datetime.now(UTC))
        raw_settings = store.get_record("settings", "settings")
        if raw_settings is not None:
            cat.settings = parse_or_none(Settings, raw_settings)
        tables: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
            ("practitioners", Practitioner, cat.practitioners),
            ("users", User, cat.users),
            ("businesses", Business, cat.businesses),
            ("appointment_types", AppointmentType, cat.appointment_types),
            ("billable_items", BillableItem, cat.billable_items),
            ("products", Product, cat.products),
            ("contacts", Contact, cat.contacts),
            ("group_appointments", GroupAppointment, cat.group_appointments),
        ]
        for object_, model, target in tables:
            for raw in store.iter_records(object_):
                rec = parse_or_none(model, raw)
                if rec is None:
                    cat.invalid.setdefault(object_, []).append(str(raw.get("id")))
                else:
                    target[rec.id] = rec  # type: ignore[attr-defined]
        known: set[str] = set()
        for raw in store.iter_records("patients"):
            known.add(str(raw.get("id")))
            link = raw.get("merged_with_patient")
            if raw.get("merged_at") and isinstance(link, dict):
                p = parse_or_none(Patient, raw)
                if p is not None and p.merged_with_patient is not None and p.merged_with_patient.id:
                    cat.merged_into[p.id] = p.merged_with_patient.id
        # A survivor we never extracted cannot take the history: the merged patient then stands on its own.
        cat.merged_into = {m: s for m, s in cat.merged_into.items() if s in known and s != m}
        _break_merge_cycles(cat.merged_into)
        return cat


def _break_merge_cycles(merged_into: dict[str, str]) -> None:
    """Corrupt data could merge A into B and B into A; the smallest id of each cycle then survives."""
    for start in list(merged_into):
        chain: list[str] = []
        current: str | None = start
        while current is not None and current not in chain:
            chain.append(current)
            current = merged_into.get(current)
        if current is not None:  # back to a node already in the chain: a cycle
            cycle = chain[chain.index(current) :]
            merged_into.pop(min(cycle), None)


@dataclass
class FileInfo:
    """A downloaded attachment (store table attachment_files)."""

    path: str  # relative to the project folder
    size: int
    sha256: str
    content_type: str | None = None


@dataclass
class PatientBundle:
    """One patient and every record that belongs to it (merged patients' records included)."""

    patient: Patient
    merged: list[Patient] = field(default_factory=list)
    appointments: list[IndividualAppointment] = field(default_factory=list)
    attendees: list[Attendee] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    invoice_items: list[InvoiceItem] = field(default_factory=list)
    medical_alerts: list[MedicalAlert] = field(default_factory=list)
    communications: list[Communication] = field(default_factory=list)
    treatment_notes: list[TreatmentNote] = field(default_factory=list)
    attachments: list[PatientAttachment] = field(default_factory=list)
    patient_cases: list[PatientCase] = field(default_factory=list)
    referral_source: ReferralSource | None = None
    files: dict[str, FileInfo] = field(default_factory=dict)  # attachment id -> downloaded file
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (object, id) records that failed to parse

    @property
    def patient_ids(self) -> list[str]:
        return [self.patient.id, *(m.id for m in self.merged)]


_CHILDREN: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("individual_appointments", "appointments", IndividualAppointment),
    ("attendees", "attendees", Attendee),
    ("invoices", "invoices", Invoice),
    ("medical_alerts", "medical_alerts", MedicalAlert),
    ("communications", "communications", Communication),
    ("treatment_notes", "treatment_notes", TreatmentNote),
    ("patient_attachments", "attachments", PatientAttachment),
    ("patient_cases", "patient_cases", PatientCase),
)


def load_bundle(store: Store, patient: Patient, merged: list[Patient] | None = None) -> PatientBundle:
    """Read `patient`'s records (and those of the patients merged into it) from the store."""
    bundle = PatientBundle(patient=patient, merged=list(merged or []))
    for pid in bundle.patient_ids:
        for object_, attr, model in _CHILDREN:
            target = getattr(bundle, attr)
            for raw in store.iter_records(object_, where={"patient_id": pid}):
                rec = parse_or_none(model, raw)
                if rec is None:
                    bundle.invalid.append((object_, str(raw.get("id"))))
                else:
                    target.append(rec)
        if bundle.referral_source is None:
            for raw in store.iter_records("referral_sources", where={"patient_id": pid}):
                bundle.referral_source = parse_or_none(ReferralSource, raw)
                break
    for inv in bundle.invoices:
        for raw in store.iter_records("invoice_items", where={"invoice_id": inv.id}):
            item = parse_or_none(InvoiceItem, raw)
            if item is None:
                bundle.invalid.append(("invoice_items", str(raw.get("id"))))
            else:
                bundle.invoice_items.append(item)
    for att in bundle.attachments:
        row = store.attachment_file(att.id)
        if row is not None:
            bundle.files[att.id] = FileInfo(row.path, row.size, row.sha256, row.content_type)
    return bundle


def iter_bundles(store: Store, catalog: Catalog) -> Iterator[PatientBundle | tuple[str, str]]:
    """Every surviving patient's bundle, in id order; a patient record that does not parse yields its
    ("patients", id) so the caller can report it. Merged patients come inside their survivor's bundle."""
    merged_from = catalog.merged_from()
    merged_cache: dict[str, Patient] = {}
    if merged_from:
        for raw in store.iter_records("patients"):
            rid = str(raw.get("id"))
            if rid in catalog.merged_into:
                p = parse_or_none(Patient, raw)
                if p is not None:
                    merged_cache[rid] = p
    for raw in store.iter_records("patients"):
        rid = str(raw.get("id"))
        if rid in catalog.merged_into and catalog.survivor(rid) != rid:
            continue
        patient = parse_or_none(Patient, raw)
        if patient is None:
            yield ("patients", rid)
            continue
        merged = [merged_cache[m] for m in merged_from.get(patient.id, []) if m in merged_cache]
        yield load_bundle(store, patient, merged)


def patient_custom_values(patient: Patient) -> dict[str, CustomField]:
    return patient.custom_fields.by_token() if patient.custom_fields else {}
