"""The schema check: what the map needs against what the Nutshell account holds, and creating what is missing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.models import ActivityType, CustomFieldDefinition, Entity, User
from cliniko2nutshell.nutshell.rpc import DiscoveryCache
from cliniko2nutshell.nutshell.schema_check import (
    FieldState,
    RequiredField,
    SchemaNeeds,
    UserState,
    check_schema,
    create_missing,
    evaluate,
)
from cliniko2nutshell.retry import RetryPolicy

C, A = Entity.CONTACTS, Entity.ACCOUNTS


def definition(entity: Entity, name: str, type_: str | None, choices: tuple[str, ...] = ()) -> CustomFieldDefinition:
    return CustomFieldDefinition(entity=entity, name=name, type=type_, choices=choices)


USERS = [
    User.from_api({"id": "1-users", "name": "Api", "emails": ["api@clinic.example"]}),
    User.from_api({"id": "2-users", "name": "Dr Who", "emails": ["Who@Clinic.example"]}),
    User.from_api({"id": "3-users", "name": "Gone", "emails": ["gone@clinic.example"], "isEnabled": False}),
]
TYPES = [ActivityType.from_api({"id": "1-activityTypes", "name": "Phone Call / Meeting"})]

NEEDS = SchemaNeeds(
    custom_fields=(
        RequiredField(C, "Cliniko Patient ID", "Text"),
        RequiredField(C, "Date of Birth", "Date"),
        RequiredField(C, "Balance Due", "Currency"),
        RequiredField(C, "Notes Summary", "LongText"),
        RequiredField(C, "Primary Service Type", "Decision", ("Physio", "Massage")),
        RequiredField(A, "Cliniko Contact ID", "Text"),
    ),
    activity_types=("phone call / meeting", "Initial Consultation"),
    users=("who@clinic.example", "gone@clinic.example", "nobody@clinic.example", "1-users"),
)

DEFINED = {
    C: [
        definition(C, "Cliniko Patient ID", "Text"),
        definition(C, "date of birth", "Date"),
        definition(C, "Balance Due", "Text"),
        definition(C, "Notes Summary", "Text"),
        definition(C, "Primary Service Type", "Decision", ("Physio",)),
    ],
    A: [],
}


def test_evaluate_reports_each_field_type_and_user() -> None:
    report = evaluate(NEEDS, DEFINED, TYPES, USERS, custom_field_cap=None)
    states = {c.required.name: c.state for c in report.fields}
    assert states == {
        "Cliniko Patient ID": FieldState.PRESENT,
        "Date of Birth": FieldState.NAME_CASE_DIFFERS,
        "Balance Due": FieldState.WRONG_TYPE,
        "Notes Summary": FieldState.WRONG_TYPE,
        "Primary Service Type": FieldState.PRESENT,
        "Cliniko Contact ID": FieldState.MISSING,
    }
    by_name = {c.required.name: c for c in report.fields}
    assert by_name["Date of Birth"].existing is not None and by_name["Date of Birth"].existing.name == "date of birth"
    assert not by_name["Balance Due"].compatible and by_name["Notes Summary"].compatible
    assert by_name["Primary Service Type"].missing_choices == ("Massage",)
    assert [c.required.name for c in report.missing_fields] == ["Cliniko Contact ID"]
    assert report.missing_activity_types == ("Initial Consultation",)
    assert [(u.wanted, u.state) for u in report.users] == [
        ("who@clinic.example", UserState.FOUND),
        ("gone@clinic.example", UserState.DISABLED),
        ("nobody@clinic.example", UserState.MISSING),
        ("1-users", UserState.FOUND),
    ]
    assert report.cap.allows is None and report.cap.existing == 5 and report.cap.to_create == 1
    assert not report.ready


def test_the_cap_decides_whether_the_rest_fits() -> None:
    needs = SchemaNeeds(custom_fields=(RequiredField(C, "A", "Text"), RequiredField(C, "B", "Text")))
    existing = {C: [definition(C, "X", "Text")], A: [definition(A, "Y", "Text")]}
    assert evaluate(needs, existing, [], [], custom_field_cap=4).cap.allows is True
    tight = evaluate(needs, existing, [], [], custom_field_cap=3).cap
    assert tight.allows is False and tight.remaining == 1


def test_ready_when_everything_is_there() -> None:
    needs = SchemaNeeds(
        custom_fields=(RequiredField(C, "Notes", "LongText"),), activity_types=("Phone Call / Meeting",)
    )
    report = evaluate(needs, {C: [definition(C, "Notes", "Text")]}, TYPES, USERS)
    assert report.ready  # Text holds what LongText would


# --- over HTTP (MockTransport) --------------------------------------------------------------------------------


class FakeAccount:
    """Custom field definitions of a Nutshell account, with the sandbox's wording for a cap refusal."""

    def __init__(self, cap: int | None, fail: dict[str, tuple[int, str]] | None = None) -> None:
        self.cap = cap
        self.fail = fail or {}
        self.fields: dict[str, list[dict[str, Any]]] = {"contacts": [], "accounts": []}
        self.posts: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        entity = request.url.path.split("/")[2]
        if request.method == "GET" and request.url.path.endswith("/customfields/attributes"):
            if entity == "leads":
                return httpx.Response(404, json={"errors": [{"status": "404", "title": "Not Found"}]})
            return httpx.Response(200, json=self.fields[entity])
        if request.method == "POST" and request.url.path.endswith("/customfield"):
            body = json.loads(request.content)
            self.posts.append(body)
            if body["name"] in self.fail:
                status, detail = self.fail[body["name"]]
                return httpx.Response(
                    status, json={"errors": [{"status": str(status), "title": "Bad", "detail": detail}]}
                )
            total = sum(len(v) for v in self.fields.values())
            if self.cap is not None and total >= self.cap:
                errors = [{"status": "400", "title": "Custom field limit reached",
                           "detail": f"This plan allows {self.cap} custom fields and {total} exist."}]  # fmt: skip
                return httpx.Response(400, json={"errors": errors})
            n = total + 1
            self.fields[entity].append({"id": f"{n}-customfields", "name": body["name"], "type": body["type"]})
            return httpx.Response(200)
        return httpx.Response(404)


def client_for(account: FakeAccount) -> NutshellClient:
    return NutshellClient(
        "api@clinic.example",
        "k" * 20,
        "http://nutshell.test/rest",
        transport=httpx.MockTransport(account),
        discovery_cache=DiscoveryCache(),
        policy=RetryPolicy(attempts=2, base=0.0),
    )


NEW = SchemaNeeds(
    custom_fields=(
        RequiredField(C, "Balance Due", "Currency"),
        RequiredField(C, "Date of Birth", "Date"),
        RequiredField(A, "Cliniko Contact ID", "Text"),
    )
)


async def test_create_missing_creates_and_records_each_definition() -> None:
    account = FakeAccount(cap=None)
    stamp = datetime(2025, 5, 1, tzinfo=UTC)
    async with client_for(account) as client:
        report = await check_schema(client, NEW)
        assert [c.state for c in report.fields] == [FieldState.MISSING] * 3
        result = await create_missing(client, report, clock=lambda: stamp)
        after = await check_schema(client, NEW)
    assert [(c.entity, c.name, c.type, c.created_at) for c in result.created] == [
        (C, "Balance Due", "Currency", stamp),
        (C, "Date of Birth", "Date", stamp),
        (A, "Cliniko Contact ID", "Text", stamp),
    ]
    assert all(c.id for c in result.created) and result.failures == ()
    assert after.ready


async def test_create_missing_creates_nothing_when_the_known_cap_is_too_small() -> None:
    account = FakeAccount(cap=2)
    async with client_for(account) as client:
        report = await check_schema(client, NEW, custom_field_cap=2)
        result = await create_missing(client, report)
    assert report.cap.allows is False
    assert result.created == () and all(f.cap_reached for f in result.failures) and len(result.failures) == 3
    assert account.posts == []


async def test_a_cap_refusal_from_nutshell_is_reported_as_such_and_stops() -> None:
    account = FakeAccount(cap=1)  # the plan's cap is not known to us: Nutshell tells
    async with client_for(account) as client:
        report = await check_schema(client, NEW)
        result = await create_missing(client, report)
    assert [c.name for c in result.created] == ["Balance Due"]
    assert [(f.required.name, f.cap_reached) for f in result.failures] == [
        ("Date of Birth", True),
        ("Cliniko Contact ID", True),
    ]
    assert "allows 1 custom fields" in result.failures[0].reason
    assert len(account.posts) == 2  # the third was not tried
    assert result.cap_reached


async def test_other_refusals_are_reported_with_nutshells_message_and_the_rest_continue() -> None:
    account = FakeAccount(cap=None, fail={"Date of Birth": (400, "Date of Birth is a reserved name")})
    async with client_for(account) as client:
        result = await create_missing(client, await check_schema(client, NEW), only=["Date of Birth", "Balance Due"])
    assert [c.name for c in result.created] == ["Balance Due"]
    assert [(f.required.name, f.reason, f.cap_reached) for f in result.failures] == [
        ("Date of Birth", "Date of Birth is a reserved name", False)
    ]


@pytest.mark.parametrize("entity", [C, A])
async def test_custom_field_reads_need_their_entity(entity: Entity) -> None:
    account = FakeAccount(cap=None)
    account.fields[entity.value].append({"id": "1-customfields", "name": "X", "type": "Text"})
    async with client_for(account) as client:
        defs = await client.custom_field_definitions(entity)
    assert [(d.entity, d.name) for d in defs] == [(entity, "X")]
