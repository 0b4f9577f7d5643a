"""pydantic models of every Cliniko resource the extraction reads.

STATUS (note to the lead): ready for use by mapping/ and engine/. Field names follow the official OAS23 schemas
(/work/shared/specs/cliniko-openapi.json); collection links (``patient.invoices`` ...) are not modelled.

How to parse a stored record: the store keeps each record's raw JSON exactly as Cliniko sent it, so

    raw = project.store.get_record("patients", "836447129235883061")
    patient = Patient.model_validate(raw)
    patient.concession_type.id        # "123", or AttributeError-free None checks: patient.link_ids()
    patient.link_ids()                # {"concession_type_id": "123", "referring_doctor_id": None, ...}

``MODELS`` maps each extracted object name (the store's ``object`` column) to its model.

Tolerance (reference §1 and §8): ids arrive as numbers or strings and are always ``str``; ``""`` reads as None for
timestamps, dates, decimals, numbers, booleans and links; decimals come as strings or numbers and are ``Decimal``;
``content`` may be an object or a JSON-encoded string; ``signatures`` may be one link or a list; unknown fields are
ignored (the raw dict in the store keeps them). Timestamps are timezone-aware UTC datetimes; dates stay naive
``date`` objects (never shift a date of birth).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# -- scalar normalisers --------------------------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() == "" else value


def _to_id(value: Any) -> Any:
    # bool is an int subclass: an id of True is a data error, not the id "True".
    if isinstance(value, bool):
        raise ValueError("an id cannot be a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        # Only small legacy ids survive a float; 64-bit ones would already be corrupted upstream.
        return str(int(value))
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("an id cannot be empty")
    return value


def _to_optional_id(value: Any) -> Any:
    return None if _blank_to_none(value) is None else _to_id(value)


def _to_id_list(value: Any) -> Any:
    value = _blank_to_none(value)
    if value is None:
        return []
    return value


def _number_to_text(value: Any) -> Any:
    """A number where the API documents text (a phone number sent as 61444444444) is read as its digits."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _text_to_pronouns(value: Any) -> Any:
    """Pronouns written as one string ("she/her") instead of the documented object: kept as the nominative."""
    value = _blank_to_none(value)
    return {"nominative": value.strip()} if isinstance(value, str) else value


def _json_object(value: Any) -> Any:
    """Template writes send ``content`` as a JSON string; reads return an object. Accept both."""
    value = _blank_to_none(value)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON object: {exc}") from exc
    return value


Id = Annotated[str, BeforeValidator(_to_id)]
OptionalId = Annotated[str | None, BeforeValidator(_to_optional_id)]
IdList = Annotated[list[Annotated[str, BeforeValidator(_to_id)]], BeforeValidator(_to_id_list)]
Timestamp = Annotated[datetime | None, BeforeValidator(_blank_to_none)]
DateValue = Annotated[date | None, BeforeValidator(_blank_to_none)]
Money = Annotated[Decimal | None, BeforeValidator(_blank_to_none)]
OptionalInt = Annotated[int | None, BeforeValidator(_blank_to_none)]
OptionalBool = Annotated[bool | None, BeforeValidator(_blank_to_none)]
OptionalStr = str | None
NumberText = Annotated[str | None, BeforeValidator(_number_to_text)]


# -- links ---------------------------------------------------------------------------------------------------


def url_last_segment(url: str | None) -> str | None:
    """The id a to-one link points at: the last path segment of its URL (query and trailing slash ignored)."""
    if not url:
        return None
    # Plain string work rather than urlsplit: this runs for every link of every record (tens of thousands).
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if path.count("/") < 3 and "://" in path:
        return None  # a bare host has no path segment
    segment = path.rsplit("/", 1)[-1]
    return segment or None


def raw_link_url(value: Any) -> str | None:
    """The ``links.self`` URL of a raw hypermedia object ``{"links": {"self": URL}}``, or None."""
    if not isinstance(value, dict):
        return None
    links = value.get("links")
    if not isinstance(links, dict):
        return None
    url = links.get("self")
    return url if isinstance(url, str) and url.strip() else None


def raw_link_id(value: Any) -> str | None:
    """The id of a raw to-one link object (None when the link is null, empty or malformed)."""
    return url_last_segment(raw_link_url(value))


class Link(BaseModel):
    """A to-one relation, ``{"links": {"self": "https://api.au1.cliniko.com/v1/patients/82"}}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str

    @model_validator(mode="before")
    @classmethod
    def _from_hypermedia(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"url": value}
        if isinstance(value, dict) and "url" not in value:
            url = raw_link_url(value)
            if url is None:
                raise ValueError("a link needs links.self")
            return {"url": url}
        return value

    @property
    def id(self) -> str | None:
        return url_last_segment(self.url)


def _to_link(value: Any) -> Any:
    """Null, ``""`` and ``{"links": {"self": ""}}`` all mean 'no relation'."""
    value = _blank_to_none(value)
    if isinstance(value, dict) and raw_link_url(value) is None:
        return None
    return value


def _to_link_list(value: Any) -> Any:
    """``signatures`` is a list of links in the GitHub docs and a single link in OAS23."""
    value = _blank_to_none(value)
    if value is None:
        return []
    if isinstance(value, dict):
        return [value] if raw_link_url(value) is not None else []
    return [v for v in value if _to_link(v) is not None]


OptionalLink = Annotated[Link | None, BeforeValidator(_to_link)]
LinkList = Annotated[list[Link], BeforeValidator(_to_link_list)]


class SelfLinks(BaseModel):
    model_config = ConfigDict(extra="ignore")
    self: OptionalStr = None


# -- base ----------------------------------------------------------------------------------------------------


class ClinikoModel(BaseModel):
    """Lenient base of every nested shape: unknown fields are dropped (the store keeps the raw dict)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Resource(ClinikoModel):
    """A top-level record: id, timestamps and its own ``links.self``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Names of the to-one link fields of the class, computed once per subclass.
    _link_fields: ClassVar[tuple[str, ...]] = ()

    id: Id
    created_at: Timestamp = None
    updated_at: Timestamp = None
    links: SelfLinks | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._link_fields = tuple(
            name for name, info in cls.model_fields.items() if info.annotation in (Link | None, Link)
        )

    def link_ids(self) -> dict[str, str | None]:
        """``<rel>_id`` for every to-one link of the record: ``{"patient_id": "82", "business_id": None, ...}``."""
        out: dict[str, str | None] = {}
        for name in self._link_fields:
            link = getattr(self, name)
            out[f"{name}_id"] = link.id if link is not None else None
        return out


class Archivable(Resource):
    archived_at: Timestamp = None
    # The pre-archive soft delete; still present on many schemas.
    deleted_at: Timestamp = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None or self.deleted_at is not None


class PhoneNumber(ClinikoModel):
    phone_type: OptionalStr = None
    number: NumberText = None
    normalized_number: NumberText = None


class RepeatRule(ClinikoModel):
    repeat_type: OptionalStr = None
    number_of_repeats: OptionalInt = None
    repeating_interval: OptionalInt = None


def _empty_dict_to_none(value: Any) -> Any:
    value = _blank_to_none(value)
    return None if value == {} else value


OptionalRepeatRule = Annotated[RepeatRule | None, BeforeValidator(_empty_dict_to_none)]


# -- custom fields (patients) and their definitions (settings) ------------------------------------------------


class CustomFieldOption(ClinikoModel):
    name: OptionalStr = None
    token: OptionalStr = None
    archived: OptionalBool = None
    selected: OptionalBool = None


class CustomFieldOther(ClinikoModel):
    enabled: OptionalBool = None
    archived: OptionalBool = None
    selected: OptionalBool = None
    value: OptionalStr = None


class CustomField(ClinikoModel):
    name: OptionalStr = None
    type: OptionalStr = None  # text | paragraph | checkboxes | radiobuttons | date
    token: OptionalStr = None
    archived: OptionalBool = None
    value: OptionalStr = None
    options: list[CustomFieldOption] = Field(default_factory=list)
    other: CustomFieldOther | None = None


class CustomFieldSection(ClinikoModel):
    name: OptionalStr = None
    token: OptionalStr = None
    archived: OptionalBool = None
    fields: list[CustomField] = Field(default_factory=list)


class CustomFields(ClinikoModel):
    """A patient's ``custom_fields`` and the settings' ``patient_custom_fields_definition`` share this shape."""

    sections: list[CustomFieldSection] = Field(default_factory=list)

    def by_token(self) -> dict[str, CustomField]:
        return {f.token: f for s in self.sections for f in s.fields if f.token}


OptionalCustomFields = Annotated[CustomFields | None, BeforeValidator(_json_object)]


# -- structured notes (treatment notes and templates, patient forms) ------------------------------------------


class NoteAnswer(ClinikoModel):
    value: OptionalStr = None
    selected: OptionalBool = None  # unselected options omit the key


class NoteOther(ClinikoModel):
    enabled: OptionalBool = None
    selected: OptionalBool = None
    value: OptionalStr = None


class NoteQuestion(ClinikoModel):
    name: OptionalStr = None
    type: OptionalStr = None  # text | paragraph | checkboxes | radiobuttons | date | bodycharts | signature
    required: OptionalBool = None
    answer: OptionalStr = None  # paragraph answers are HTML
    answers: list[NoteAnswer] = Field(default_factory=list)
    other: NoteOther | None = None
    body_chart_ids: IdList = Field(default_factory=list)
    signature_id: OptionalId = None


class NoteSection(ClinikoModel):
    name: OptionalStr = None
    description: OptionalStr = None
    questions: list[NoteQuestion] = Field(default_factory=list)


class NoteContent(ClinikoModel):
    sections: list[NoteSection] = Field(default_factory=list)


OptionalNoteContent = Annotated[NoteContent | None, BeforeValidator(_json_object)]


# -- people -----------------------------------------------------------------------------------------------------


class Pronouns(ClinikoModel):
    accusative: OptionalStr = None
    nominative: OptionalStr = None
    predicative_possessive: OptionalStr = None
    pronominal_possessive: OptionalStr = None
    reflexive: OptionalStr = None


class Patient(Archivable):
    title: OptionalStr = None
    first_name: OptionalStr = None
    last_name: OptionalStr = None
    preferred_first_name: OptionalStr = None
    label: OptionalStr = None
    date_of_birth: DateValue = None
    email: OptionalStr = None
    patient_phone_numbers: Annotated[list[PhoneNumber], BeforeValidator(_to_id_list)] = Field(default_factory=list)
    address_1: OptionalStr = None
    address_2: OptionalStr = None
    address_3: OptionalStr = None
    city: OptionalStr = None
    state: OptionalStr = None
    post_code: OptionalStr = None
    country: OptionalStr = None
    country_code: OptionalStr = None
    sex: OptionalStr = None
    gender_identity: OptionalStr = None
    gender: OptionalStr = None
    pronouns: Annotated[Pronouns | None, BeforeValidator(_text_to_pronouns)] = None
    occupation: OptionalStr = None
    emergency_contact: OptionalStr = None
    notes: OptionalStr = None
    appointment_notes: OptionalStr = None
    medicare: OptionalStr = None
    medicare_reference_number: OptionalStr = None
    dva_card_number: OptionalStr = None
    invoice_default_to: OptionalStr = None
    invoice_email: OptionalStr = None
    invoice_extra_information: OptionalStr = None
    referral_source: OptionalStr = None
    old_reference_id: OptionalStr = None
    reminder_type: OptionalStr = None
    receives_confirmation_emails: OptionalBool = None
    accepted_privacy_policy: OptionalBool = None
    accepted_email_marketing: OptionalBool = None
    accepted_sms_marketing: OptionalBool = None
    time_zone: OptionalStr = None
    custom_fields: OptionalCustomFields = None
    merged_at: Timestamp = None
    concession_type: OptionalLink = None
    referring_doctor: OptionalLink = None
    merged_with_patient: OptionalLink = None
    latest_booking: OptionalLink = None


class Practitioner(Resource):
    """Practitioners are never archived: inactive ones come from /practitioners/inactive (``active`` False)."""

    title: OptionalStr = None
    first_name: OptionalStr = None
    last_name: OptionalStr = None
    display_name: OptionalStr = None
    label: OptionalStr = None
    designation: OptionalStr = None
    description: OptionalStr = None
    show_in_online_bookings: OptionalBool = None
    active: OptionalBool = None
    user: OptionalLink = None
    default_appointment_type: OptionalLink = None


class User(Resource):
    title: OptionalStr = None
    first_name: OptionalStr = None
    last_name: OptionalStr = None
    email: OptionalStr = None
    phone_numbers: Annotated[list[PhoneNumber], BeforeValidator(_to_id_list)] = Field(default_factory=list)
    role: OptionalStr = None  # administrator | bookkeeper | power receptionist | practitioner | receptionist | ...
    active: OptionalBool = None
    user_active: OptionalBool = None
    time_zone: OptionalStr = None  # a Rails label such as "Melbourne"
    time_zone_identifier: OptionalStr = None  # IANA
    new_ui_enabled: OptionalBool = None
    privacy_policy_accepted: Money = None

    @property
    def is_administrator(self) -> bool:
        return (self.role or "").strip().lower() == "administrator"


class Contact(Archivable):
    """Third parties: referring doctors, insurers (``3rd Party Payer``), others."""

    title: OptionalStr = None
    first_name: OptionalStr = None
    last_name: OptionalStr = None
    preferred_name: OptionalStr = None
    company_name: OptionalStr = None
    occupation: OptionalStr = None
    email: OptionalStr = None
    phone_numbers: Annotated[list[PhoneNumber], BeforeValidator(_to_id_list)] = Field(default_factory=list)
    address_1: OptionalStr = None
    address_2: OptionalStr = None
    address_3: OptionalStr = None
    city: OptionalStr = None
    state: OptionalStr = None
    post_code: OptionalStr = None
    country: OptionalStr = None
    country_code: OptionalStr = None
    notes: OptionalStr = None
    provider_number: OptionalStr = None
    doctor_type: OptionalStr = None
    type: OptionalStr = None  # Standard | Doctor | 3rd Party Payer
    type_code: OptionalInt = None


# -- places and catalogue ------------------------------------------------------------------------------------


class Business(Archivable):
    business_name: OptionalStr = None
    display_name: OptionalStr = None
    label: OptionalStr = None
    address_1: OptionalStr = None
    address_2: OptionalStr = None
    city: OptionalStr = None
    state: OptionalStr = None
    post_code: OptionalStr = None
    country: OptionalStr = None
    country_code: OptionalStr = None
    contact_information: OptionalStr = None
    email_reply_to: OptionalStr = None
    website_address: OptionalStr = None
    business_registration_name: OptionalStr = None
    business_registration_value: OptionalStr = None
    additional_information: OptionalStr = None
    additional_invoice_information: OptionalStr = None
    show_in_online_bookings: OptionalBool = None
    appointment_reminders_enabled: OptionalBool = None
    appointment_type_ids: IdList = Field(default_factory=list)
    time_zone: OptionalStr = None  # Rails label
    time_zone_identifier: OptionalStr = None  # IANA


class AppointmentType(Archivable):
    name: OptionalStr = None
    description: OptionalStr = None
    category: OptionalStr = None
    color: OptionalStr = None
    duration_in_minutes: OptionalInt = None
    max_attendees: OptionalInt = None
    show_in_online_bookings: OptionalBool = None
    telehealth_enabled: OptionalBool = None
    online_payments_enabled: OptionalBool = None
    online_payments_mode: OptionalStr = None
    deposit_price: Money = None
    add_deposit_to_account_credit: OptionalBool = None
    online_bookings_lead_time_hours: OptionalInt = None
    appointment_confirmation_template_ids: IdList = Field(default_factory=list)
    appointment_reminder_template_ids: IdList = Field(default_factory=list)
    billable_item: OptionalLink = None
    product: OptionalLink = None
    treatment_note_template: OptionalLink = None


class Tax(Resource):
    name: OptionalStr = None
    rate: Money = None
    amount: Money = None  # deprecated in favour of rate


class BillableItem(Archivable):
    item_code: OptionalStr = None
    item_type: OptionalStr = None  # Product | Service | Other
    name: OptionalStr = None
    price: Money = None
    tax: OptionalLink = None


class Product(Archivable):
    name: OptionalStr = None
    item_code: OptionalStr = None
    serial_number: OptionalStr = None
    notes: OptionalStr = None
    cost_price: Money = None
    price_ex_tax: Money = None
    price_including_tax: Money = None
    stock_level: OptionalInt = None
    product_supplier_name: OptionalStr = None
    product_supplier: OptionalLink = None
    tax: OptionalLink = None


class ConcessionType(Resource):
    name: OptionalStr = None


class ReferralSource(Resource):
    """Its ``links.self`` is ``/patients/{id}/referral_source``; older payloads carry no ``id`` at all."""

    referrer_type: OptionalStr = None  # Patient | Contact | None
    subcategory: OptionalStr = None
    notes: OptionalStr = None
    patient: OptionalLink = None
    referral_source_type: OptionalLink = None
    referrer: OptionalLink = None

    @model_validator(mode="before")
    @classmethod
    def _id_from_links(cls, value: Any) -> Any:
        if isinstance(value, dict) and _blank_to_none(value.get("id")) is None:
            derived = record_id_from_raw(value)
            if derived is not None:
                value = {**value, "id": derived}
        return value


# -- appointments ---------------------------------------------------------------------------------------------


class IndividualAppointment(Archivable):
    starts_at: Timestamp = None
    ends_at: Timestamp = None
    patient_name: OptionalStr = None
    notes: OptionalStr = None
    did_not_arrive: OptionalBool = None
    patient_arrived: OptionalBool = None
    cancelled_at: Timestamp = None
    cancellation_reason: OptionalInt = None
    cancellation_reason_description: OptionalStr = None
    cancellation_note: OptionalStr = None
    invoice_status: OptionalInt = None  # 10 Open, 20 Paid, 30 Closed, 40 Open credit
    treatment_note_status: OptionalInt = None  # 10 Draft, 90 Final
    email_reminder_sent: OptionalBool = None
    sms_reminder_sent: OptionalBool = None
    online_booking_policy_accepted: OptionalBool = None
    booking_ip_address: OptionalStr = None
    has_patient_appointment_notes: OptionalBool = None
    telehealth_url: OptionalStr = None
    repeat_rule: OptionalRepeatRule = None
    repeated_from: OptionalLink = None
    appointment_type: OptionalLink = None
    business: OptionalLink = None
    practitioner: OptionalLink = None
    patient: OptionalLink = None
    patient_case: OptionalLink = None

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


class GroupAppointment(Archivable):
    """No ``cancelled_at``: a group session is cancelled per attendee."""

    starts_at: Timestamp = None
    ends_at: Timestamp = None
    max_attendees: OptionalInt = None
    notes: OptionalStr = None
    patient_ids: IdList = Field(default_factory=list)
    telehealth_url: OptionalStr = None
    repeat_rule: OptionalRepeatRule = None
    repeated_from: OptionalLink = None
    appointment_type: OptionalLink = None
    business: OptionalLink = None
    practitioner: OptionalLink = None


class Attendee(Archivable):
    """One patient at one booking (individual or group): arrival, cancellation and invoice state per patient."""

    arrived: OptionalBool = None
    notes: OptionalStr = None
    cancelled_at: Timestamp = None
    cancellation_reason: OptionalInt = None
    cancellation_reason_description: OptionalStr = None
    cancellation_note: OptionalStr = None
    cancellation_url: OptionalStr = None
    invoice_status: OptionalInt = None
    treatment_note_status: OptionalInt = None
    email_reminder_sent: OptionalBool = None
    sms_reminder_sent: OptionalBool = None
    online_booking_policy_accepted: OptionalBool = None
    booking_ip_address: OptionalStr = None
    telehealth_url: OptionalStr = None
    booking: OptionalLink = None
    patient: OptionalLink = None
    patient_case: OptionalLink = None

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None


class Booking(Archivable):
    """/bookings mixes individual appointments, group appointments and unavailable blocks, with no type field."""

    starts_at: Timestamp = None
    ends_at: Timestamp = None
    notes: OptionalStr = None
    # individual-appointment shape
    patient_name: OptionalStr = None
    did_not_arrive: OptionalBool = None
    patient_arrived: OptionalBool = None
    cancelled_at: Timestamp = None
    cancellation_reason: OptionalInt = None
    cancellation_reason_description: OptionalStr = None
    cancellation_note: OptionalStr = None
    invoice_status: OptionalInt = None
    treatment_note_status: OptionalInt = None
    patient: OptionalLink = None
    patient_case: OptionalLink = None
    # group shape
    max_attendees: OptionalInt = None
    patient_ids: IdList = Field(default_factory=list)
    # every shape
    repeat_rule: OptionalRepeatRule = None
    repeated_from: OptionalLink = None
    appointment_type: OptionalLink = None
    business: OptionalLink = None
    practitioner: OptionalLink = None

    @property
    def kind(self) -> str:
        """'individual', 'group' or 'unavailable' (inferred from the fields present: there is no type field)."""
        if self.patient is not None or self.patient_name is not None:
            return "individual"
        if self.max_attendees is not None or self.patient_ids:
            return "group"
        return "unavailable" if self.appointment_type is None else "individual"


class UnavailableBlock(Archivable):
    starts_at: Timestamp = None
    ends_at: Timestamp = None
    notes: OptionalStr = None
    repeat_rule: OptionalRepeatRule = None
    repeated_from: OptionalLink = None
    business: OptionalLink = None
    practitioner: OptionalLink = None


class PatientCase(Archivable):
    name: OptionalStr = None
    notes: OptionalStr = None
    closed: OptionalBool = None
    issue_date: DateValue = None
    expiry_date: DateValue = None
    max_sessions: OptionalInt = None
    max_invoiceable_amount: Money = None
    include_cancelled_attendees: OptionalBool = None
    include_dna_attendees: OptionalBool = None
    referral: OptionalBool = None
    referral_type: OptionalStr = None
    attendee_ids: IdList = Field(default_factory=list)
    patient: OptionalLink = None
    contact: OptionalLink = None


# -- billing --------------------------------------------------------------------------------------------------


class Invoice(Archivable):
    """No payments endpoint exists: paid state comes from ``status`` (20 Paid) and ``closed_at``."""

    number: OptionalInt = None
    issue_date: DateValue = None
    status: OptionalInt = None  # 10 Open, 20 Paid, 30 Closed, 40 Open credit
    status_description: OptionalStr = None
    total_amount: Money = None
    net_amount: Money = None
    tax_amount: Money = None
    discounted_amount: Money = None
    invoice_to: OptionalStr = None
    patient_extra_information: OptionalStr = None
    notes: OptionalStr = None
    online_payment_url: OptionalStr = None
    closed_at: Timestamp = None
    # Points into the legacy /appointments family; the id is the booking / individual appointment id.
    appointment: OptionalLink = None
    business: OptionalLink = None
    practitioner: OptionalLink = None
    patient: OptionalLink = None


class InvoiceItem(Archivable):
    name: OptionalStr = None
    code: OptionalStr = None
    quantity: Money = None
    unit_price: Money = None
    net_price: Money = None
    discount_percentage: Money = None
    discounted_amount: Money = None
    is_monetary_discount: OptionalBool = None
    tax_name: OptionalStr = None
    tax_rate: Money = None
    tax_amount: Money = None  # deprecated in favour of tax_rate
    total_including_tax: Money = None
    concession_type_name: OptionalStr = None
    invoice: OptionalLink = None
    billable_item: OptionalLink = None
    product: OptionalLink = None


# -- clinical -------------------------------------------------------------------------------------------------


class MedicalAlert(Archivable):
    name: OptionalStr = None  # the alert text
    patient: OptionalLink = None


class Communication(Resource):
    """E-mails, SMS, calls and memos (the API's anyOf of three shapes, merged)."""

    archived_at: Timestamp = None
    category: OptionalStr = None
    category_code: OptionalInt = None
    type: OptionalStr = None  # SMS | Email | Phone call | Other
    type_code: OptionalInt = None  # 1 SMS, 2 Email, 3 Phone call, 4 Other
    direction_code: OptionalInt = None  # 1 Sent, 2 Received
    direction_description: OptionalStr = None
    content: OptionalStr = None
    content_subject: OptionalStr = None
    from_: OptionalStr = Field(default=None, alias="from")
    to: OptionalStr = None
    confidential: OptionalBool = None
    patient: OptionalLink = None
    attendee: OptionalLink = None
    booking: OptionalLink = None
    invoice: OptionalLink = None
    letter: OptionalLink = None
    payment: OptionalLink = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class PatientAttachment(Resource):
    """Uploaded files and UI-generated full patient exports share this shape."""

    archived_at: Timestamp = None
    filename: OptionalStr = None  # null until processing completes
    content_type: OptionalStr = None
    size: OptionalInt = None
    description: OptionalStr = None
    processing_completed: OptionalBool = None
    processed_at: Timestamp = None
    pinned_at: Timestamp = None
    content: OptionalLink = None  # /patient_attachments/{id}/content, answers 303 to the blob
    patient: OptionalLink = None
    user: OptionalLink = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def link_ids(self) -> dict[str, str | None]:
        ids = super().link_ids()
        ids.pop("content_id", None)  # the content link is a download URL, not a relation
        return ids


class PrintSettings(ClinikoModel):
    include_patient_address: OptionalBool = None
    include_patient_dob: OptionalBool = None
    include_patient_medicare: OptionalBool = None
    include_patient_occupation: OptionalBool = None
    include_patient_reference_number: OptionalBool = None
    title: OptionalStr = None


class TreatmentNote(Archivable):
    title: OptionalStr = None
    content: OptionalNoteContent = None
    draft: OptionalBool = None
    finalized_at: Timestamp = None
    pinned_at: Timestamp = None
    author_name: OptionalStr = None
    patient: OptionalLink = None
    practitioner: OptionalLink = None
    treatment_note_template: OptionalLink = None
    booking: OptionalLink = None
    attendee: OptionalLink = None


class TreatmentNoteTemplate(Archivable):
    name: OptionalStr = None
    content: OptionalNoteContent = None
    print_settings: Annotated[PrintSettings | None, BeforeValidator(_blank_to_none)] = None


class PatientForm(Archivable):
    name: OptionalStr = None
    url: OptionalStr = None
    completed_at: Timestamp = None
    restricted_to_practitioner: OptionalBool = None
    email_to_patient_on_completion: OptionalBool = None
    content: OptionalNoteContent = None
    signatures: LinkList = Field(default_factory=list)
    patient: OptionalLink = None
    attendee: OptionalLink = None
    booking: OptionalLink = None


# -- settings -------------------------------------------------------------------------------------------------


class Account(ClinikoModel):
    id: OptionalId = None
    name: OptionalStr = None
    country: OptionalStr = None
    country_code: OptionalStr = None
    currency_symbol: OptionalStr = None
    subdomain: OptionalStr = None
    time_zone: OptionalStr = None  # Rails label, e.g. "Melbourne"
    time_zone_support: OptionalBool = None
    has_time_travelers: OptionalBool = None
    email_from: OptionalStr = None  # the contact e-mail for our User-Agent
    first_name: OptionalStr = None
    last_name: OptionalStr = None


class Settings(ClinikoModel):
    """GET /settings (admin) or /settings/public. Stored as object "settings", id "settings"."""

    account: Annotated[Account | None, BeforeValidator(_blank_to_none)] = None
    terminology: dict[str, Any] | None = None
    calendar: dict[str, Any] | None = None
    online_bookings: dict[str, Any] | None = None
    online_payments: dict[str, Any] | None = None
    reminders: dict[str, Any] | None = None
    sms: dict[str, Any] | None = None
    email: dict[str, Any] | None = None
    patient_privacy: dict[str, Any] | None = None
    wait_list: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    documents_and_printing: dict[str, Any] | None = None
    patient_custom_fields_definition: OptionalCustomFields = None


# -- lists ----------------------------------------------------------------------------------------------------


class PageLinks(ClinikoModel):
    self: OptionalStr = None
    next: OptionalStr = None
    previous: OptionalStr = None


def record_id_from_raw(raw: dict[str, Any]) -> str | None:
    """A record's id: its ``id``, else (records without one, e.g. old referral sources) the path of links.self."""
    value = raw.get("id")
    if value is not None and not isinstance(value, bool) and str(value).strip():
        return _to_id(value)
    url = raw_link_url(raw)
    if url is None:
        return None
    path = urlsplit(url).path.strip("/")
    # Drop the API prefix so the id is host- and version-independent: "patients/123/referral_source".
    return path.split("/", 1)[1] if path.startswith("v1/") else path


# Each extracted object name (the store's `object` column) and the model that parses its raw records.
MODELS: dict[str, type[ClinikoModel]] = {
    "patients": Patient,
    "practitioners": Practitioner,
    "users": User,
    "businesses": Business,
    "appointment_types": AppointmentType,
    "individual_appointments": IndividualAppointment,
    "group_appointments": GroupAppointment,
    "attendees": Attendee,
    "bookings": Booking,
    "unavailable_blocks": UnavailableBlock,
    "invoices": Invoice,
    "invoice_items": InvoiceItem,
    "billable_items": BillableItem,
    "products": Product,
    "taxes": Tax,
    "contacts": Contact,
    "concession_types": ConcessionType,
    "referral_sources": ReferralSource,
    "medical_alerts": MedicalAlert,
    "communications": Communication,
    "patient_attachments": PatientAttachment,
    "treatment_notes": TreatmentNote,
    "treatment_note_templates": TreatmentNoteTemplate,
    "patient_cases": PatientCase,
    "patient_forms": PatientForm,
    "settings": Settings,
}


def parse_record(object_: str, raw: dict[str, Any]) -> ClinikoModel:
    """Parse a stored raw record of `object_` (a key of MODELS) into its model."""
    try:
        model = MODELS[object_]
    except KeyError:
        raise ValueError(f"no model for Cliniko object {object_!r}") from None
    return model.model_validate(raw)
