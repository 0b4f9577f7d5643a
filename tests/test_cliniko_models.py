"""The Cliniko models: tolerant of the documented variations (reference §1, §8), strict about real errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cliniko2nutshell.cliniko.models import (
    MODELS,
    Attendee,
    Booking,
    Communication,
    IndividualAppointment,
    InvoiceItem,
    Link,
    Patient,
    PatientAttachment,
    PatientForm,
    Practitioner,
    ReferralSource,
    Settings,
    Tax,
    TreatmentNote,
    TreatmentNoteTemplate,
    User,
    parse_record,
    raw_link_id,
    record_id_from_raw,
    url_last_segment,
)
from cliniko2nutshell.cliniko.resources import RESOURCES, SETTINGS_OBJECT
from cliniko2nutshell.project.store import FOREIGN_KEYS

API = "https://api.au1.cliniko.com/v1"


def link(path: str) -> dict[str, dict[str, str]]:
    return {"links": {"self": f"{API}/{path}"}}


# The patient sample of the reference (§5.1), with the GH docs' "" for empty timestamps.
PATIENT = {
    "id": "836447129235883061",
    "created_at": "2022-02-28T01:51:08Z",
    "updated_at": "2022-03-04T00:02:38Z",
    "archived_at": "",
    "deleted_at": None,
    "title": "Mr",
    "first_name": "Peter",
    "last_name": "Patientman",
    "date_of_birth": "2001-05-26",
    "email": "peter@example.com",
    "patient_phone_numbers": [{"phone_type": "Mobile", "number": "61444444444", "normalized_number": "+61444444444"}],
    "address_2": "",
    "reminder_type": "SMS & Email",
    "accepted_privacy_policy": True,
    "merged_at": None,
    "merged_with_patient": None,
    "custom_fields": {
        "sections": [
            {
                "name": "Insurance coverage",
                "token": "ef4c43ec",
                "fields": [{"name": "Policy number", "type": "text", "token": "fdb9c8a0", "value": "ABC-12345"}],
            }
        ]
    },
    "concession_type": link("concession_types/123"),
    "referring_doctor": link("contacts/77"),
    "latest_booking": link("bookings/1009"),
    "appointments": link("patients/836447129235883061/appointments"),
    "links": {"self": f"{API}/patients/836447129235883061"},
    "some_future_field": {"nested": [1, 2]},
}


def test_patient_sample_parses_with_normalised_values() -> None:
    p = Patient.model_validate(PATIENT)
    assert p.id == "836447129235883061"
    assert p.created_at == datetime(2022, 2, 28, 1, 51, 8, tzinfo=UTC)
    assert p.archived_at is None and not p.is_archived
    assert p.date_of_birth == date(2001, 5, 26)
    assert p.address_2 == ""  # an empty string field stays a string: only typed fields read "" as None
    assert p.patient_phone_numbers[0].normalized_number == "+61444444444"
    assert p.custom_fields is not None
    assert p.custom_fields.by_token()["fdb9c8a0"].value == "ABC-12345"
    assert p.link_ids() == {
        "concession_type_id": "123",
        "referring_doctor_id": "77",
        "merged_with_patient_id": None,
        "latest_booking_id": "1009",
    }
    assert not hasattr(p, "some_future_field")


@pytest.mark.parametrize("value", [836447129235883061, "836447129235883061", " 836447129235883061 "])
def test_ids_as_numbers_or_strings_are_strings(value: object) -> None:
    assert Patient.model_validate({**PATIENT, "id": value}).id == "836447129235883061"


@pytest.mark.parametrize("value", [None, "", True])
def test_a_missing_or_absurd_id_is_an_error(value: object) -> None:
    with pytest.raises(ValidationError):
        Patient.model_validate({**PATIENT, "id": value})


def test_blank_strings_read_as_null_for_typed_fields() -> None:
    appt = IndividualAppointment.model_validate(
        {
            "id": 1009,
            "starts_at": "2017-12-04T00:30:00Z",
            "cancelled_at": "",
            "cancellation_reason": "",
            "did_not_arrive": "",
            "repeat_rule": {},
            "patient_case": "",
            "patient": link("patients/773"),
            "practitioner": {"links": {"self": ""}},
        }
    )
    assert appt.cancelled_at is None and not appt.is_cancelled
    assert appt.cancellation_reason is None
    assert appt.did_not_arrive is None
    assert appt.repeat_rule is None
    assert appt.link_ids()["patient_id"] == "773"
    assert appt.link_ids()["practitioner_id"] is None
    assert appt.link_ids()["patient_case_id"] is None


def test_decimals_as_strings_or_numbers() -> None:
    as_strings = InvoiceItem.model_validate(
        {"id": "1", "unit_price": "100.0", "tax_rate": "10.0", "discount_percentage": "18.1818", "quantity": 1}
    )
    as_numbers = InvoiceItem.model_validate(
        {"id": "1", "unit_price": 100, "tax_rate": 10.0, "discount_percentage": 18.1818, "quantity": "1"}
    )
    for item in (as_strings, as_numbers):
        assert item.unit_price == Decimal("100")
        assert item.tax_rate == Decimal("10")
        assert item.discount_percentage == Decimal("18.1818")
        assert item.quantity == Decimal("1")
    assert Tax.model_validate({"id": 1, "name": "GST", "rate": "10.0", "amount": ""}).amount is None


def test_a_malformed_decimal_or_timestamp_is_an_error() -> None:
    with pytest.raises(ValidationError):
        InvoiceItem.model_validate({"id": "1", "unit_price": "ten dollars"})
    with pytest.raises(ValidationError):
        Patient.model_validate({**PATIENT, "updated_at": "yesterday"})


def test_content_as_object_or_json_string() -> None:
    content = {
        "sections": [
            {
                "name": "S1",
                "questions": [
                    {"name": "Progress", "type": "paragraph", "answer": "<div>Better</div>"},
                    {
                        "name": "Pick",
                        "type": "checkboxes",
                        "answers": [{"value": "A", "selected": True}, {"value": "B"}],
                    },
                ],
            }
        ]
    }
    as_object = TreatmentNote.model_validate({"id": "1", "title": "T", "content": content})
    as_string = TreatmentNoteTemplate.model_validate({"id": "2", "name": "T", "content": json.dumps(content)})
    for note in (as_object, as_string):
        assert note.content is not None
        questions = note.content.sections[0].questions
        assert questions[0].answer == "<div>Better</div>"
        assert [a.selected for a in questions[1].answers] == [True, None]
    assert TreatmentNote.model_validate({"id": "3", "content": None}).content is None
    with pytest.raises(ValidationError):
        TreatmentNoteTemplate.model_validate({"id": "4", "content": "{not json"})


def test_signatures_as_list_or_single_link() -> None:
    one = PatientForm.model_validate({"id": "1", "signatures": link("patient_forms/1/signatures/9")})
    many = PatientForm.model_validate(
        {"id": "1", "signatures": [link("patient_forms/1/signatures/9"), link("patient_forms/1/signatures/10")]}
    )
    none = PatientForm.model_validate({"id": "1", "signatures": None})
    assert [s.id for s in one.signatures] == ["9"]
    assert [s.id for s in many.signatures] == ["9", "10"]
    assert none.signatures == []


def test_link_id_is_the_last_path_segment() -> None:
    assert Link.model_validate(link("patients/82")).id == "82"
    assert Link.model_validate({"links": {"self": f"{API}/patients/82/?x=1"}}).id == "82"
    assert url_last_segment(None) is None
    assert raw_link_id(None) is None
    assert raw_link_id({"links": {}}) is None
    assert raw_link_id(link("appointments/70644")) == "70644"


def test_communication_from_field_and_shapes() -> None:
    memo = Communication.model_validate(
        {
            "id": 5,
            "category_code": 12,
            "type_code": "4",
            "from": "Front desk",
            "confidential": True,
            "patient": link("patients/1"),
        }
    )
    assert memo.from_ == "Front desk"
    assert memo.type_code == 4
    assert memo.link_ids()["patient_id"] == "1"


def test_attachment_content_link_is_not_a_relation() -> None:
    att = PatientAttachment.model_validate(
        {
            "id": "1",
            "processing_completed": True,
            "size": 14936,
            "content": link("patient_attachments/1/content"),
            "patient": link("patients/123"),
            "user": link("users/456"),
        }
    )
    assert att.content is not None and att.content.url.endswith("/patient_attachments/1/content")
    assert att.link_ids() == {"patient_id": "123", "user_id": "456"}


def test_referral_source_without_an_id_takes_its_self_path() -> None:
    raw = {
        "referrer_type": "Contact",
        "referrer": link("contacts/5"),
        "patient": link("patients/123"),
        "links": {"self": f"{API}/patients/123/referral_source"},
    }
    assert ReferralSource.model_validate(raw).id == "patients/123/referral_source"
    assert record_id_from_raw(raw) == "patients/123/referral_source"
    assert ReferralSource.model_validate({**raw, "id": 42}).id == "42"


def test_booking_kind_is_inferred_from_its_shape() -> None:
    individual = Booking.model_validate(
        {"id": "1", "patient": link("patients/2"), "appointment_type": link("appointment_types/3")}
    )
    group = Booking.model_validate({"id": "2", "max_attendees": 4, "patient_ids": [1, "2"]})
    block = Booking.model_validate({"id": "3", "practitioner": link("practitioners/1")})
    assert (individual.kind, group.kind, block.kind) == ("individual", "group", "unavailable")
    assert group.patient_ids == ["1", "2"]


def test_settings_expose_the_contact_email_and_custom_field_definitions() -> None:
    s = Settings.model_validate(
        {
            "account": {"id": 1, "email_from": "clinic@example.com", "time_zone": "Melbourne"},
            "patient_custom_fields_definition": {
                "sections": [
                    {"name": "Ins", "token": "s1", "fields": [{"name": "Policy", "type": "text", "token": "f1"}]}
                ]
            },
            "unknown_block": {"x": 1},
        }
    )
    assert s.account is not None and s.account.email_from == "clinic@example.com" and s.account.id == "1"
    assert s.patient_custom_fields_definition is not None
    assert s.patient_custom_fields_definition.by_token()["f1"].name == "Policy"


def test_user_role_and_practitioner_user_link() -> None:
    assert User.model_validate({"id": 1, "role": "Administrator"}).is_administrator
    assert not User.model_validate({"id": 1, "role": "receptionist"}).is_administrator
    prac = Practitioner.model_validate({"id": "5", "active": False, "user": link("users/1")})
    assert prac.link_ids() == {"user_id": "1", "default_appointment_type_id": None}


def test_every_extracted_object_has_a_model_and_store_columns() -> None:
    for spec in RESOURCES:
        assert spec.object in MODELS, spec.object
        for fk in spec.foreign:
            assert fk.column in FOREIGN_KEYS
            assert fk.link in MODELS[spec.object].model_fields, (spec.object, fk.link)
    assert SETTINGS_OBJECT in MODELS
    assert isinstance(parse_record("attendees", {"id": 1, "patient": link("patients/9")}), Attendee)
    with pytest.raises(ValueError, match="no model"):
        parse_record("payments", {"id": 1})


# -- property-based: any documented variation of a record parses to the same normalised values -------------------

ids = st.integers(min_value=1, max_value=2**63 - 1)
blank_or_null = st.sampled_from(["", None, "   "])
decimals = st.decimals(min_value=-(10**6), max_value=10**6, places=4, allow_nan=False, allow_infinity=False)


@given(
    record_id=ids,
    id_as_text=st.booleans(),
    empty=blank_or_null,
    price=decimals,
    price_form=st.sampled_from(["str", "float", "int"]),
    linked=st.one_of(st.none(), ids),
)
def test_any_documented_variation_normalises(
    record_id: int, id_as_text: bool, empty: str | None, price: Decimal, price_form: str, linked: int | None
) -> None:
    price_value: object = {"str": str(price), "float": float(price), "int": int(price)}[price_form]
    raw = {
        "id": str(record_id) if id_as_text else record_id,
        "created_at": "2020-01-02T03:04:05Z",
        "archived_at": empty,
        "deleted_at": empty,
        "unit_price": price_value,
        "invoice": link(f"invoices/{linked}") if linked is not None else empty,
        "extra_field_we_do_not_know": [empty],
    }
    item = InvoiceItem.model_validate(raw)
    assert item.id == str(record_id)
    assert item.archived_at is None and item.deleted_at is None and not item.is_archived
    expected = {"str": price, "float": Decimal(str(float(price))), "int": Decimal(int(price))}[price_form]
    assert item.unit_price == expected
    assert item.link_ids()["invoice_id"] == (str(linked) if linked is not None else None)


def test_a_phone_number_sent_as_a_number_and_pronouns_sent_as_text_still_parse() -> None:
    """Seen in the hostile corpus: a patient whose phone number came as a JSON number and whose pronouns came as
    one string was left out of the plan. Both carry the patient's data, so they are read, not refused."""
    raw = {**PATIENT, "pronouns": "she/her"}
    raw["patient_phone_numbers"] = [{"phone_type": "Mobile", "number": 61444444444, "normalized_number": None}]
    p = Patient.model_validate(raw)
    assert p.patient_phone_numbers[0].number == "61444444444"
    assert p.pronouns is not None and p.pronouns.nominative == "she/her"
    with pytest.raises(ValidationError):  # a number where text belongs is read; an object is still a data error
        Patient.model_validate({**raw, "pronouns": ["she", "her"]})
