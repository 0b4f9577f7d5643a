"""Values as a person reads them (engine/readable.py), and how the diff tells a transformation from a value the two
APIs only write differently (engine/diff.py `classify`, `records`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from cliniko2nutshell.engine.diff import DiffReport, DiffRow, Status, classify
from cliniko2nutshell.engine.diff_store import load_diff, save_diff
from cliniko2nutshell.engine.readable import Readable, Sensitivity, field_label, moment_of, money, reason, sensitivity
from cliniko2nutshell.mapping.defaults import default_map

MELBOURNE = Readable(ZoneInfo("Australia/Melbourne"), {"1-users": "Rosa Martinelli"}, {"3-activityTypes": "Meeting"})


def test_times_read_in_the_clinic_zone_whatever_their_encoding() -> None:
    # the same moment as Cliniko writes it, as Nutshell takes it, and as Nutshell's JSON-RPC answers it
    for value in ("2021-12-24T23:45:00Z", 1640389500, "1640389500", "2021-12-24T23:45:00+0000"):
        assert MELBOURNE.time(value) == "2021-12-25 10:45 AEDT", value
    assert MELBOURNE.time("2021-06-30T23:59:15Z") == "2021-07-01 09:59:15 AEST"  # seconds only when there are some
    assert MELBOURNE.show("startTime", 1640389500) == "2021-12-25 10:45 AEDT"
    assert moment_of("not a time") is None and MELBOURNE.time("soon") == "soon"
    assert MELBOURNE.show("customFields.Date of Birth", "1986-03-10") == "1986-03-10"  # a date stays a date


def test_money_reads_with_its_currency_and_ids_as_names() -> None:
    assert money("1234.5", "AUD") == "1,234.50 AUD"
    assert MELBOURNE.show("customFields.Balance Due", {"currency": "NZD", "amount": "95"}) == "95.00 NZD"
    assert money("12.00") == "12.00"
    assert MELBOURNE.show("links.owner", "1-users") == "Rosa Martinelli"
    assert MELBOURNE.show("activityType", "3-activityTypes") == "Meeting"
    names = {"28-contacts": "the patient"}
    assert MELBOURNE.show("links.participants", ["28-contacts", "1-users"], names) == "Rosa Martinelli, the patient"
    assert MELBOURNE.show("links.participants", ["29-contacts"], names) == "29-contacts"  # unknown: the id itself
    assert MELBOURNE.show("isLogged", True) == "yes"


def test_addresses_read_as_one_line_for_people_and_companies() -> None:
    person = [{"isPrimary": True, "name": "home", "address_1": "50 Glenferrie Road", "city": "Camberwell",
               "state": "Victoria", "postalCode": "3124", "country": "AU"}]  # fmt: skip
    company = [{"name": "work", "isPrimary": True, "value": {"address_1": "114 Queens Avenue", "city": "Fitzroy"}}]
    assert MELBOURNE.show("addresses", person) == "50 Glenferrie Road, Camberwell Victoria 3124, AU"
    assert MELBOURNE.show("addresses", company) == "114 Queens Avenue, Fitzroy"


def test_fields_say_what_they_hold_for_masking() -> None:
    assert sensitivity("person", "name") is Sensitivity.NAME
    assert sensitivity("appointment", "name") is Sensitivity.PLAIN
    assert sensitivity("person", "customFields.Date of Birth") is Sensitivity.BIRTH_DATE
    assert sensitivity("person", "customFields.Goals") is Sensitivity.TEXT  # a patient custom field: free text
    assert sensitivity("person", "customFields.Balance Due") is Sensitivity.PLAIN
    assert sensitivity("person", "phones") is Sensitivity.PHONE
    assert sensitivity("company", "links.accounts") is Sensitivity.NAME
    assert field_label("appointment", "name") == "Title" and field_label("person", "name") == "Name"
    assert field_label("person", "customFields.Date of Birth") == "Date of Birth"


def test_the_reason_comes_from_the_map() -> None:
    m = default_map()
    assert reason(m, "appointment", "activityType") == "value map: appointment types -> activity types"
    assert reason(m, "person", "customFields.Original Create Date").startswith("the date in the clinic's time zone")
    assert reason(m, "person", "phones").startswith("in international form")
    assert reason(m, "person", "description").startswith("Cliniko fields without a Nutshell field")


def test_a_change_of_notation_is_a_match_and_a_real_change_is_a_transformation() -> None:
    same_moment = MELBOURNE.show("startTime", "2021-12-24T23:45:00Z")
    assert classify(same_moment, 1640389500, 1640389500, MELBOURNE.show("startTime", 1640389500)) is Status.MATCH
    assert classify("0429 281 063", [{"value": "+61429281063"}], [{"value": "+61429281063"}],
                    "+61429281063") is Status.TRANSFORMED  # fmt: skip
    assert classify(None, "a", None) is Status.MISSING
    assert classify(None, "a long text", "a long") is Status.TRUNCATED
    assert classify(None, "a", "b") is Status.MISMATCH


def _row(object_: str, source_id: str, field: str, status: Status, patient: str | None = "p1",
         expected: str | None = "x") -> DiffRow:  # fmt: skip
    return DiffRow(object_, source_id, f"{source_id}-n", field, "x", expected, "x", status, "why", patient,
                   field_label(object_, field), sensitivity(object_, field).value)  # fmt: skip


def test_records_come_with_their_problems_first() -> None:
    report = DiffReport(7, [
        _row("person", "p1", "name", Status.MATCH, expected="Ann Lee"),
        _row("person", "p1", "phones", Status.TRANSFORMED),
        _row("appointment", "a1", "startTime", Status.MATCH, expected="2021-12-25 10:45 AEDT"),
        _row("appointment", "a1", "location", Status.MISMATCH),
        _row("appointment", "a2", "name", Status.MATCH),
        _row("company", "c1", "name", Status.MATCH, patient=None, expected="Richmond GP"),
    ], map_version=3)  # fmt: skip
    records = report.records()
    assert [r.key for r in records] == [("appointment", "a1"), ("company", "c1"), ("person", "p1"),
                                        ("appointment", "a2")]  # fmt: skip
    first = records[0]
    assert [f.field for f in first.fields] == ["location", "startTime"] and first.status is Status.MISMATCH
    assert first.title == "2021-12-25 10:45 AEDT"  # an activity: its time (and title, when it has one)
    assert (records[2].title, records[2].title_kind) == ("Ann Lee", "name")
    assert [f.status for f in records[2].fields] == [Status.TRANSFORMED, Status.MATCH]
    assert report.transformations() == [("person", "Phone", "why", 1)]


def test_the_diff_is_kept_in_the_project_and_read_back(project) -> None:
    rows = [_row("person", "p1", "phones", Status.MISMATCH), _row("person", "p1", "name", Status.MATCH)]
    report = DiffReport(4, rows, map_version=2)
    save_diff(project.store, report)
    again = load_diff(project.store)
    assert again is not None and again.rows == report.rows and (again.run_id, again.map_version) == (4, 2)
    assert load_diff(project.store, 5) is None
    save_diff(project.store, DiffReport(5, [_row("person", "p2", "name", Status.MATCH)]))
    assert load_diff(project.store, 4) is None  # only the last sample's diff is kept
    assert [r.source_id for r in load_diff(project.store).rows] == ["p2"]  # type: ignore[union-attr]
