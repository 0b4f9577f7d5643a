"""Property tests: no Cliniko record that validates against the models makes a transform crash; a record that
cannot be mapped yields a reason, not an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cliniko2nutshell.cliniko.models import (
    AppointmentType,
    Attendee,
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
    Practitioner,
    Settings,
    TreatmentNote,
)
from cliniko2nutshell.mapping.catalog import Catalog, FileInfo, PatientBundle
from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.model import (
    AppointmentStatus,
    CustomFieldAction,
    CustomFieldDecision,
    ExistingPerson,
    MigrationMap,
    Policies,
    StatusRecording,
    StatusRule,
)
from cliniko2nutshell.mapping.outputs import Context, Planned, Skipped, refs_in, to_jsonable
from cliniko2nutshell.mapping.render import html_to_text
from cliniko2nutshell.mapping.transforms import plan_companies, plan_patient

ID_POOL = ["1", "2", "3", "75335355", "836447129235883061"]
ids = st.one_of(st.sampled_from(ID_POOL), st.from_regex(r"\A[1-9][0-9]{0,18}\Z"), st.integers(1, 2**62))
texts = st.one_of(st.none(), st.just(""), st.text(max_size=30), st.sampled_from(["Zoë", "محمد", "王伟", "  x  "]))
html = st.one_of(
    texts,
    st.lists(
        st.sampled_from(
            [
                "<div>",
                "</div>",
                "<br>",
                "<ul>",
                "<li>",
                "</li>",
                "</ul>",
                "&lt;",
                "a",
                "<a href='x'>",
                "</a>",
                "<ol>",
                "</ol>",
                "<p>",
                "\u202e",
            ]
        ),
        max_size=12,
    ).map("".join),
)
stamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(lambda d: d.isoformat() + "Z"),
    st.none(),
    st.just(""),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "Z"),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1)).map(lambda d: d.isoformat()),
)
rare_stamps = st.one_of(st.none(), st.none(), st.none(), st.none(), stamps)  # archived, cancelled, merged
dates = st.one_of(st.none(), st.just(""), st.dates().map(lambda d: d.isoformat()))
money = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["50.0", "-3", "NaN", "Infinity", "9e999999", "1e-30"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.integers(-(10**6), 10**6),
)
bools = st.one_of(st.none(), st.booleans(), st.just(""))
small_ints = st.one_of(st.none(), st.integers(-5, 100), st.sampled_from([10, 20, 30, 40, 90]), st.just(""))


def link(resource: str) -> st.SearchStrategy[Any]:
    real = ids.map(lambda i: {"links": {"self": f"https://api.x/v1/{resource}/{i}"}})
    return st.one_of(real, real, real, st.none(), st.just(""))


def record(
    required: dict[str, st.SearchStrategy[Any]] | None = None, **fields: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """A raw record: `required` keys always present (still possibly null), the others sometimes."""
    return st.fixed_dictionaries({"id": ids, **(required or {})}, optional=fields)


phones = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "phone_type": st.sampled_from(["Mobile", "Home", "Work", "Fax", "Other", ""]),
            "number": texts,
            "normalized_number": texts,
        },
    ),
    max_size=3,
)
custom_field = st.fixed_dictionaries(
    {"name": texts, "token": st.sampled_from(["t1", "t2", "t3"])},
    optional={
        "type": st.sampled_from(["text", "paragraph", "checkboxes", "radiobuttons", "date", None]),
        "value": texts,
        "archived": bools,
        "options": st.lists(
            st.fixed_dictionaries({"name": texts, "token": texts}, optional={"selected": bools}), max_size=3
        ),
        "other": st.fixed_dictionaries({}, optional={"enabled": bools, "selected": bools, "value": texts}),
    },
)
custom_fields = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "sections": st.lists(
                st.fixed_dictionaries(
                    {"name": texts, "token": texts, "fields": st.lists(custom_field, max_size=3)},
                    optional={"archived": bools},
                ),
                max_size=2,
            )
        }
    ),
)

patients = record(
    first_name=texts,
    last_name=texts,
    title=texts,
    preferred_first_name=texts,
    label=texts,
    email=texts,
    date_of_birth=dates,
    created_at=stamps,
    updated_at=stamps,
    archived_at=rare_stamps,
    merged_at=rare_stamps,
    patient_phone_numbers=phones,
    address_1=texts,
    city=texts,
    state=texts,
    post_code=texts,
    country=texts,
    country_code=texts,
    notes=html,
    appointment_notes=texts,
    occupation=texts,
    accepted_email_marketing=bools,
    pronouns=st.one_of(st.none(), st.fixed_dictionaries({}, optional={"nominative": texts, "accusative": texts})),
    custom_fields=custom_fields,
    referring_doctor=link("contacts"),
    merged_with_patient=link("patients"),
)
appointments = record(
    {"starts_at": stamps, "patient": link("patients")},
    ends_at=stamps,
    cancelled_at=rare_stamps,
    archived_at=rare_stamps,
    did_not_arrive=bools,
    patient_arrived=bools,
    notes=texts,
    cancellation_reason_description=texts,
    cancellation_note=texts,
    invoice_status=small_ints,
    treatment_note_status=small_ints,
    practitioner=link("practitioners"),
    business=link("businesses"),
    appointment_type=link("appointment_types"),
)
attendees = record(
    arrived=bools,
    cancelled_at=rare_stamps,
    archived_at=rare_stamps,
    notes=texts,
    booking=link("bookings"),
    patient=link("patients"),
    invoice_status=small_ints,
)
invoices = record(
    status=small_ints,
    total_amount=money,
    issue_date=dates,
    closed_at=stamps,
    archived_at=rare_stamps,
    practitioner=link("practitioners"),
    created_at=stamps,
)
items = record(
    name=texts,
    invoice=link("invoices"),
    billable_item=link("billable_items"),
    product=link("products"),
    archived_at=rare_stamps,
)
alerts = record({"patient": link("patients"), "name": texts}, created_at=stamps, archived_at=rare_stamps)
communications = record(
    type=st.one_of(texts, st.sampled_from(["SMS", "Email", "Phone call", "Other"])),
    category=texts,
    category_code=small_ints,
    direction_description=texts,
    content=html,
    content_subject=texts,
    to=texts,
    confidential=bools,
    archived_at=rare_stamps,
    required={"patient": link("patients"), "created_at": stamps},
)
question = st.fixed_dictionaries(
    {},
    optional={
        "name": texts,
        "type": st.sampled_from(["text", "paragraph", "checkboxes", "radiobuttons", "date", "bodycharts"]),
        "answer": html,
        "answers": st.lists(st.fixed_dictionaries({"value": texts}, optional={"selected": bools}), max_size=3),
        "other": st.fixed_dictionaries({}, optional={"enabled": bools, "selected": bools, "value": texts}),
        "body_chart_ids": st.lists(ids, max_size=2),
    },
)
notes = record(
    {"patient": link("patients"), "created_at": stamps},
    draft=bools,
    finalized_at=stamps,
    archived_at=rare_stamps,
    author_name=texts,
    practitioner=link("practitioners"),
    content=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "sections": st.lists(
                    st.fixed_dictionaries(
                        {"questions": st.lists(question, max_size=3)}, optional={"name": texts, "description": texts}
                    ),
                    max_size=2,
                )
            }
        ),
    ),
)
attachments = record(
    {"patient": link("patients"), "created_at": stamps, "processing_completed": bools},
    filename=texts,
    description=texts,
    archived_at=rare_stamps,
    size=small_ints,
    content_type=texts,
)
contacts = record(
    company_name=texts,
    first_name=texts,
    last_name=texts,
    email=texts,
    phone_numbers=phones,
    type=texts,
    type_code=small_ints,
    archived_at=rare_stamps,
    country=texts,
    address_1=texts,
)
groups = record(
    starts_at=stamps,
    ends_at=stamps,
    practitioner=link("practitioners"),
    business=link("businesses"),
    appointment_type=link("appointment_types"),
)
types_ = record(name=texts, category=texts, duration_in_minutes=small_ints)
businesses = record(
    business_name=texts,
    address_1=texts,
    city=texts,
    time_zone_identifier=st.one_of(texts, st.sampled_from(["Australia/Melbourne", "Not/AZone", "UTC"])),
)
practitioners = record(first_name=texts, last_name=texts, display_name=texts, active=bools)


def parse(model: type[BaseModel], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


def parsed_list(model: type[BaseModel], raws: list[dict[str, Any]]) -> list[Any]:
    return [r for r in (parse(model, x) for x in raws) if r is not None]


policies = st.builds(
    Policies,
    existing_person=st.sampled_from(list(ExistingPerson)),
    future_appointments=st.booleans(),
    draft_treatment_notes=st.booleans(),
    confidential_memos=st.booleans(),
    archived_patients=st.booleans(),
    archived_appointments=st.booleans(),
)
SWITCHABLE = [
    "contacts",
    "businesses",
    "individual_appointments",
    "attendees",
    "communications",
    "treatment_notes",
    "patient_attachments",
    "patient_notes",
    "appointment_notes",
    "medical_alerts",
    "invoices",
]


@st.composite
def maps(draw: st.DrawFn, catalog: Catalog) -> MigrationMap:
    m = default_map(catalog)
    on = st.sampled_from([True, True, True, False])
    objects = {k: v.model_copy(update={"enabled": draw(on)}) if k in SWITCHABLE else v for k, v in m.objects.items()}
    status = {}
    for s in AppointmentStatus:
        options = [StatusRecording.LOGGED, StatusRecording.LABELLED, StatusRecording.SKIP]
        if s is AppointmentStatus.FUTURE:
            options.append(StatusRecording.SCHEDULED)
        rec = draw(st.sampled_from(options))
        status[s] = StatusRule(record=rec, label="Label" if rec is StatusRecording.LABELLED else "")
    decisions = {"t1": CustomFieldDecision(action=CustomFieldAction.MAP, target="X", confirmed=True)}
    return m.model_copy(
        update={
            "policies": draw(policies),
            "objects": objects,
            "custom_field_decisions": decisions,
            "value_maps": m.value_maps.model_copy(update={"appointment_status": status}),
        }
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PatientBundle, Context]:
    catalog = Catalog(reference_time=datetime(2026, 11, 1, tzinfo=UTC))
    catalog.settings = parse(Settings, {"patient_custom_fields_definition": draw(custom_fields)})
    for table, model, strat in (
        ("appointment_types", AppointmentType, types_),
        ("businesses", Business, businesses),
        ("practitioners", Practitioner, practitioners),
        ("group_appointments", GroupAppointment, groups),
        ("contacts", Contact, contacts),
    ):
        for rec in parsed_list(model, draw(st.lists(strat, max_size=3))):
            getattr(catalog, table)[rec.id] = rec
    patient = parse(Patient, draw(patients))
    assume(patient is not None)
    atts = parsed_list(PatientAttachment, draw(st.lists(attachments, max_size=2)))
    files = {
        a.id: FileInfo(f"files/attachments/{a.id}", draw(st.integers(0, 2**31)), "0" * 64, None)
        for a in atts
        if draw(st.booleans())
    }
    bundle = PatientBundle(
        patient=patient,
        merged=parsed_list(Patient, draw(st.lists(patients, max_size=1))),
        appointments=parsed_list(IndividualAppointment, draw(st.lists(appointments, max_size=3))),
        attendees=parsed_list(Attendee, draw(st.lists(attendees, max_size=2))),
        invoices=parsed_list(Invoice, draw(st.lists(invoices, max_size=3))),
        invoice_items=parsed_list(InvoiceItem, draw(st.lists(items, max_size=3))),
        medical_alerts=parsed_list(MedicalAlert, draw(st.lists(alerts, max_size=2))),
        communications=parsed_list(Communication, draw(st.lists(communications, max_size=2))),
        treatment_notes=parsed_list(TreatmentNote, draw(st.lists(notes, max_size=2))),
        attachments=atts,
        files=files,
    )
    ctx = Context(
        map=draw(maps(catalog)), catalog=catalog, file_size_limit=draw(st.one_of(st.none(), st.integers(0, 2**30)))
    )
    return bundle, ctx


def _check(outcomes: list[Any]) -> None:
    for o in outcomes:
        assert isinstance(o, Planned | Skipped)
        json.dumps(to_jsonable(o), ensure_ascii=False)  # everything is plain data
        if isinstance(o, Skipped):
            assert o.why.reason.strip()
            continue
        p = o.payload
        if o.entity in ("person", "company", "activity"):
            assert isinstance(p["name"], str) and p["name"].strip()
        if o.entity == "activity":
            assert isinstance(p["startTime"], int) and isinstance(p["endTime"], int)
            assert p["endTime"] >= p["startTime"]
            assert p["links"]["participants"]
        if o.entity == "note":
            assert isinstance(p["body"], str) and o.marker in p["body"]
        for ref in refs_in(p):
            assert ref.cliniko_id


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenarios())
def test_no_validated_record_makes_a_transform_crash(scenario: tuple[PatientBundle, Context]) -> None:
    bundle, ctx = scenario
    outcomes = plan_patient(bundle, ctx)
    _check(outcomes)
    _check(plan_companies(ctx))
    keys = [o.key for o in outcomes]
    assert outcomes[0].kind == "person"
    if isinstance(outcomes[0], Skipped):
        assert all(isinstance(o, Skipped) for o in outcomes)
    # Distinct source records give distinct keys (the engine's journal and id map are keyed on them).
    sources = [
        bundle.patient,
        *bundle.merged,
        *bundle.appointments,
        *bundle.attendees,
        *bundle.communications,
        *bundle.medical_alerts,
        *bundle.treatment_notes,
        *bundle.attachments,
    ]
    by_type: dict[type, list[str]] = {}
    for rec in sources:
        by_type.setdefault(Patient if isinstance(rec, Patient) else type(rec), []).append(rec.id)
    if all(len(v) == len(set(v)) for v in by_type.values()):
        assert len(keys) == len(set(keys))


@given(html)
def test_html_to_text_never_fails(fragment: str | None) -> None:
    out = html_to_text(fragment)
    assert isinstance(out, str)
    assert "<div>" not in out and "<br>" not in out
