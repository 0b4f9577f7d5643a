"""Derived values, value transforms, value maps, rendering, and the person/activity rules on edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from mapping_golden import golden_bundle, golden_context, sample

from cliniko2nutshell.cliniko.models import (
    AppointmentType,
    Communication,
    IndividualAppointment,
    Invoice,
    InvoiceItem,
    Patient,
)
from cliniko2nutshell.mapping.activities import appointment, communication
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.derived import derive, insurance_fields, invoice_totals, last_payment, primary_service
from cliniko2nutshell.mapping.model import AppointmentStatus, StatusRecording, StatusRule
from cliniko2nutshell.mapping.names import is_valid_email
from cliniko2nutshell.mapping.outputs import Planned, Skipped, Unmappable, make_resolver, refs_in, resolve_payload
from cliniko2nutshell.mapping.people import fill_empty_fields, person
from cliniko2nutshell.mapping.render import html_to_text
from cliniko2nutshell.mapping.value_maps import activity_type_for, default_value_maps, unknown_activity_types
from cliniko2nutshell.mapping.values import TRANSFORMS, country_code

BASE = "https://api.au1.cliniko.com/v1"


def inv(id_: str, status: int, total: str, issue: str, closed: str | None = None, **kw: Any) -> Invoice:
    return Invoice.model_validate(
        {"id": id_, "status": status, "total_amount": total, "issue_date": issue, "closed_at": closed, **kw}
    )


def test_invoice_totals_and_balance() -> None:
    invoices = [
        inv("1", 10, "50.0", "2024-01-05"),
        inv("2", 20, "90.0", "2024-02-01", "2024-02-03T00:00:00Z"),
        inv("3", 10, "25.5", "2024-03-01"),
        inv("4", 20, "1000", "2024-04-01", "2024-04-02T00:00:00Z", archived_at="2024-04-03T00:00:00Z"),  # deleted
        inv("5", 30, "10", "2023-12-01"),
    ]
    total, due, last = invoice_totals(invoices)
    assert total == Decimal("175.5") and due == Decimal("75.5") and str(last) == "2024-03-01"
    paid_at, amount = last_payment(invoices)
    assert paid_at == datetime(2024, 2, 3, tzinfo=UTC) and amount == Decimal("90.0")
    assert invoice_totals([]) == (None, None, None)
    assert last_payment([inv("1", 10, "5", "2024-01-01")]) == (None, None)


def test_primary_service_is_the_most_frequent_item() -> None:
    cat = Catalog()
    invoices = [inv("1", 20, "1", "2024-01-01"), inv("2", 20, "1", "2024-06-01")]

    def item(i: str, invoice: str, name: str) -> InvoiceItem:
        return InvoiceItem.model_validate(
            {"id": i, "name": name, "invoice": {"links": {"self": f"{BASE}/invoices/{invoice}"}}}
        )

    items = [item("a", "1", "Massage"), item("b", "1", "Massage"), item("c", "2", "Physio"), item("d", "2", "Physio")]
    assert primary_service(items, invoices, cat) == "Physio"  # a tie: the most recent wins
    items.append(item("e", "1", "Massage"))
    assert primary_service(items, invoices, cat) == "Massage"
    items.append(item("f", "999", "Ghost"))  # an item of an invoice we do not have is ignored
    assert primary_service(items, invoices, cat) == "Massage"


def test_insurance_fields_are_found_by_name() -> None:
    cat = golden_context().catalog
    policy, group = insurance_fields(cat.custom_field_defs)
    assert policy == "fdb9c8a0-2984-4d96-8dc1-fbe703a8afdb"
    assert group == "0b7a1c52-6d3e-4f0e-9a55-2f1e3c4d5e6f"
    d = derive(golden_bundle(), cat)
    assert d.insurance_policy_number == "ABC-12345" and d.insurance_group_number is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("currency", Decimal("12.5"), "12.50"),
        ("currency", "NaN", None),
        ("currency", "abc", None),
        ("yes_no", False, "No"),
        ("text", "  ", None),
        ("join", ["a", None, "b"], "a, b"),
        ("local_date", datetime(2024, 1, 1, 20, 0, tzinfo=UTC), "2024-01-02"),  # Melbourne is ahead of UTC
        ("local_date", datetime(9999, 12, 31, 23, 0), "9999-12-31"),  # naive, at the edge of the calendar
    ],
)
def test_transforms(name: str, value: Any, expected: str | None) -> None:
    assert TRANSFORMS[name](value, golden_context()) == expected


def test_country_codes() -> None:
    assert country_code("Australia") == "AU"
    assert country_code("New Zealand", "nz") == "NZ"
    assert country_code("Atlantis") == "Atlantis"
    assert country_code("  ") is None


def test_value_maps() -> None:
    cat = golden_context().catalog
    vm = default_value_maps(cat, ["Phone Call / Meeting", "Email", "Meeting"])
    assert vm.default_activity_type == "Meeting"
    assert vm.communication_types["Email"] == "Email"
    assert vm.communication_types["Phone call"] == "Phone Call / Meeting"
    assert vm.service_types == {"Initial Consultation": "Initial Consultation"}
    assert activity_type_for("Consultation", ["Consultation", "Email"], "Email") == "Consultation"
    assert unknown_activity_types(vm, ["Email"]) == ["Meeting", "Phone Call / Meeting"]


def test_html_to_text_keeps_structure() -> None:
    text = html_to_text(
        "<div>Improving</div><ul><li>one</li><li>two &amp; three</li></ul><ol><li>a</li></ol>"
        "<p>Line<br>break <a href='https://x.test'>link</a></p>"
    )
    assert text == "Improving\n- one\n- two & three\n1. a\nLine\nbreak link (https://x.test)"


def test_person_without_any_name_gets_a_placeholder_and_invalid_email_is_kept_visible() -> None:
    ctx = golden_context()
    bundle = golden_bundle()
    bundle.patient = Patient.model_validate(
        sample("patient") | {"first_name": "", "last_name": "", "label": "", "email": "jo@@x"}
    )
    out = person(bundle, ctx)
    assert isinstance(out, Planned)
    assert out.payload["name"] == "Cliniko patient 836447129235883061"
    assert "emails" not in out.payload
    assert "E-mail in Cliniko (not a valid address): jo@@x" in out.payload["description"]


def test_phones_that_are_not_numbers_and_overlong_emails_stay_visible_in_the_description() -> None:
    """Found with the hostile corpus: "call after 5pm" in a phone field vanished without a word, and an address of
    300 characters (over RFC 5321's 254) was sent to Nutshell as if it were usable."""
    bundle = golden_bundle()
    phones = [{"phone_type": "Mobile", "number": "call after 5pm"}, {"phone_type": "Home", "number": "  "},
              {"phone_type": "Work", "number": "0412 345 678", "normalized_number": "+61412345678"}]  # fmt: skip
    email = "l" * 280 + "@example.com"
    bundle.patient = Patient.model_validate(sample("patient") | {"patient_phone_numbers": phones, "email": email})
    out = person(bundle, golden_context())
    assert isinstance(out, Planned)
    assert [p["value"] for p in out.payload["phones"]] == ["+61412345678"]
    assert "Phone in Cliniko (not a number): call after 5pm" in out.payload["description"]
    assert f"E-mail in Cliniko (not a valid address): {email}" in out.payload["description"]
    assert "emails" not in out.payload
    assert not is_valid_email("a" * 65 + "@example.com") and is_valid_email("a" * 64 + "@example.com")


def test_person_with_last_name_only() -> None:
    bundle = golden_bundle()
    bundle.patient = Patient.model_validate(sample("patient") | {"first_name": ""})
    out = person(bundle, golden_context())
    assert isinstance(out, Planned) and out.payload["name"] == "Patientman"


def _appointment(**kw: Any) -> IndividualAppointment:
    return IndividualAppointment.model_validate(sample("individual_appointment") | kw)


def test_appointment_statuses_follow_the_value_map() -> None:
    ctx = golden_context()
    cancelled = appointment(
        _appointment(
            cancelled_at="2017-12-01T00:00:00Z", cancellation_reason=30, cancellation_reason_description="Sick"
        ),
        ctx,
    )
    assert isinstance(cancelled, Planned)
    assert cancelled.payload["name"] == "Cancelled: Initial Consultation"
    assert "Status: Cancelled on 2017-12-01 11:00" in cancelled.payload["description"]
    assert "Cancellation reason: Sick" in cancelled.payload["description"]
    no_show = appointment(_appointment(did_not_arrive=True), ctx)
    assert isinstance(no_show, Planned) and no_show.payload["name"] == "No-show: Initial Consultation"
    attended = appointment(_appointment(patient_arrived=True), ctx)
    assert isinstance(attended, Planned) and attended.payload["isLogged"] is True

    future = _appointment(starts_at="2027-01-05T00:00:00Z", ends_at="2027-01-05T00:30:00Z")
    skipped = appointment(future, ctx)
    assert isinstance(skipped, Skipped) and "scheduled activities are off" in skipped.why.reason
    policies = ctx.map.policies.model_copy(update={"future_appointments": True})
    ctx.map = ctx.map.model_copy(update={"policies": policies})
    scheduled = appointment(future, ctx)
    assert isinstance(scheduled, Planned) and scheduled.payload["isLogged"] is False

    rules = dict(ctx.map.value_maps.appointment_status)
    rules[AppointmentStatus.NO_SHOW] = StatusRule(record=StatusRecording.SKIP)
    ctx.map = ctx.map.model_copy(
        update={"value_maps": ctx.map.value_maps.model_copy(update={"appointment_status": rules})}
    )
    assert isinstance(appointment(_appointment(did_not_arrive=True), ctx), Skipped)


def test_appointment_without_end_uses_the_type_duration_and_without_start_is_unmappable() -> None:
    ctx = golden_context()
    out = appointment(_appointment(ends_at=None), ctx)
    assert isinstance(out, Planned)
    duration = ctx.catalog.appointment_types["1"].duration_in_minutes
    assert out.payload["endTime"] - out.payload["startTime"] == duration * 60  # type: ignore[operator]
    missing = appointment(_appointment(starts_at=None), ctx)
    assert isinstance(missing, Skipped) and isinstance(missing.why, Unmappable)
    assert AppointmentType  # the model is what the catalogue holds


def test_an_appointment_ending_before_it_starts_keeps_its_start_and_says_so() -> None:
    ctx = golden_context()
    out = appointment(_appointment(starts_at="2026-01-05T01:00:00Z", ends_at="2026-01-05T00:00:00Z"), ctx)
    assert isinstance(out, Planned)
    duration = ctx.catalog.appointment_types["1"].duration_in_minutes
    assert out.payload["endTime"] - out.payload["startTime"] == duration * 60  # type: ignore[operator]
    assert "Ends before it starts in Cliniko (at 2026-01-05 " in out.payload["description"]
    plain = appointment(_appointment(ends_at=None), ctx)
    assert "Ends before" not in plain.payload["description"]  # type: ignore[union-attr]


def test_memo_and_html_email() -> None:
    ctx = golden_context()
    memo = communication(
        Communication.model_validate(
            sample("communication")
            | {
                "category": "Memo",
                "category_code": 12,
                "type": "Other",
                "content": "<div>Called <b>back</b></div>",
                "content_subject": None,
                "confidential": True,
            }
        ),
        ctx,
    )
    assert isinstance(memo, Planned)
    assert memo.payload["name"] == "[Confidential] Memo"
    assert "Message: Called back" in memo.payload["description"]
    ctx.map = ctx.map.model_copy(update={"policies": ctx.map.policies.model_copy(update={"confidential_memos": False})})
    assert isinstance(
        communication(Communication.model_validate(sample("communication") | {"confidential": True}), ctx), Skipped
    )


def test_fill_empty_keeps_what_the_existing_person_holds() -> None:
    planned = {
        "name": "Peter Patientman",
        "emails": [{"isPrimary": True, "name": "email", "value": "peter@example.com"}],
        "phones": [{"isPrimary": True, "name": "mobile", "value": "+61444444444"}],
        "description": "Occupation: Builder",
        "customFields": {"Cliniko Patient ID": "1", "Date of Birth": "2001-05-26"},
        "links": {"owner": "5-users", "accounts": ["3-accounts"]},
    }
    existing = {
        "name": "Pete P.",
        "emails": [{"isPrimary": True, "name": "work", "value": "peter@example.com"}],
        "phones": [],
        "description": "",
        "customFields": {"Date of Birth": "2001-05-26", "Cliniko Patient ID": None},
        "links": {"owner": "9-users"},
    }
    assert fill_empty_fields(existing, planned) == {
        "phones": planned["phones"],
        "description": "Occupation: Builder",
        "customFields": {"Cliniko Patient ID": "1"},
        "links": {"accounts": ["3-accounts"]},
    }
    assert fill_empty_fields(planned, planned) == {}


def test_resolver_for_the_engine() -> None:
    ctx = golden_context()
    out = appointment(_appointment(), ctx)
    assert isinstance(out, Planned)
    resolve = make_resolver(ctx.map, {"person:773": "12-contacts"}.get, {"appointment": "4-activityTypes"})
    payload = resolve_payload(out.payload, resolve)
    assert payload["activityType"] == "4-activityTypes"
    assert payload["links"]["participants"] == ["12-contacts", "5-users"]  # practitioner 1 -> its matched user
    # A person not created yet is dropped rather than sent as a placeholder; the engine orders by refs_in first.
    unresolved = resolve_payload(out.payload, make_resolver(ctx.map, lambda key: None, {}))
    assert unresolved["links"]["participants"] == ["5-users"] and "activityType" not in unresolved
    assert [r.key for r in refs_in(out.payload)] == ["person:773", "user:1"]
