"""The Nutshell client end to end, over real HTTP against the Nutshell sandbox (REST + JSON-RPC on loopback)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NutshellValidationError,
    OutcomeUnknownError,
    PayloadTooLargeError,
)
from cliniko2nutshell.nutshell.ids import NutshellId
from cliniko2nutshell.nutshell.models import ActivityStatus, Entity
from cliniko2nutshell.nutshell.rpc import DiscoveryCache
from cliniko2nutshell.nutshell.schema_check import (
    FieldState,
    RequiredField,
    SchemaNeeds,
    UserState,
    check_schema,
    create_missing,
)
from cliniko2nutshell.nutshell.sending import Safety
from cliniko2nutshell.retry import RetryPolicy
from cliniko2nutshell.sandbox.nutshell_app import default_seed, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

FAST = RetryPolicy(attempts=4, base=0.02, cap=0.1, timeout=httpx.Timeout(10.0))


def host_of(sandbox: Any) -> str:
    return sandbox.rest_url.removesuffix("/rest")


def state_dump(sandbox: Any) -> dict[str, Any]:
    response = httpx.get(f"{host_of(sandbox)}/_sandbox/state", timeout=10)
    response.raise_for_status()
    return response.json()


def client_for(sandbox: Any, **kwargs: Any) -> NutshellClient:
    # No rpc_url: the JSON-RPC endpoint is discovered from the REST host, as for the real service.
    kwargs.setdefault("discovery_cache", DiscoveryCache())
    kwargs.setdefault("policy", FAST)
    return NutshellClient(sandbox.username, kwargs.pop("api_key", sandbox.api_key), sandbox.rest_url, **kwargs)


@pytest.fixture
async def nutshell(nutshell_sandbox: Any) -> AsyncIterator[NutshellClient]:
    async with client_for(nutshell_sandbox) as client:
        yield client


async def test_create_read_back_through_the_other_protocol_and_delete_to_the_starting_state(
    nutshell_sandbox: Any, nutshell: NutshellClient
) -> None:
    before = state_dump(nutshell_sandbox)
    identity = await nutshell.check_credentials()
    assert identity.user is not None and nutshell_sandbox.username in identity.user.emails
    owner = identity.user.id
    other_user = next(u for u in await nutshell.list_users() if u.id != owner and u.is_enabled)
    call = (await nutshell.list_activity_types())[0]

    company_payload = {
        "name": "Bayside Referrers",
        "phones": [{"isPrimary": True, "name": "work", "value": "+61390001234"}],
        "addresses": [{"isPrimary": True, "name": "office", "value": {"address_1": "9 Bay St", "city": "Brighton"}}],
        "links": {"owner": owner.rest},
    }
    company = await nutshell.create_company(company_payload)
    payload = {
        "name": "Zoë Ångström",
        "emails": [{"isPrimary": True, "name": "home", "value": "zoe.angstrom@example.org"}],
        "phones": [{"isPrimary": True, "name": "mobile", "value": "+61412000111"}],
        "addresses": [{"isPrimary": True, "name": "home", "address_1": "1 Beach Rd", "city": "Hampton",
                       "state": "VIC", "postalCode": "3188", "country": "AU"}],
        "customFields": {"Cliniko Patient ID": "98765", "Date of Birth": "1980-02-29"},
        "links": {"owner": owner.rest, "accounts": [company.id.rest]},
    }  # fmt: skip
    person = await nutshell.create_person(payload)
    assert person.rev is not None and company.rev is not None  # read back over JSON-RPC

    # Read each back through the other protocol.
    rpc_person = await nutshell.get_person(person.id, via="rpc")
    assert rpc_person.name == "Zoë Ångström" and rpc_person.primary_email == "zoe.angstrom@example.org"
    assert rpc_person.custom_fields == {"Cliniko Patient ID": "98765", "Date of Birth": "1980-02-29"}
    assert rpc_person.owner == owner and rpc_person.accounts == (company.id,)
    assert rpc_person.phones[0].value == "+61412000111"
    assert rpc_person.addresses[0].city == "Hampton" and rpc_person.addresses[0].postal_code == "3188"
    rest_person = await nutshell.get_person(person.id)
    assert rest_person.custom_fields == rpc_person.custom_fields
    # What was sent is what either protocol reads back, in the create payload's own shape.
    assert rpc_person.to_payload() == payload
    assert rest_person.to_payload() == payload
    rpc_company = await nutshell.get_company(company.id, via="rpc")
    assert rpc_company.name == "Bayside Referrers" and rpc_company.contacts == (person.id,)
    assert rpc_company.to_payload() == company_payload == (await nutshell.get_company(company.id)).to_payload()

    start = datetime(2024, 3, 30, 18, 0, tzinfo=UTC)
    activity_payload = {
        "name": "Initial consultation",
        "description": "Knee pain",
        "location": "Hampton clinic",
        "activityType": call.id.rest,
        "startTime": int(start.timestamp()),
        "endTime": int(start.timestamp()) + 3600,
        "isLogged": True,
        "isAllDay": False,
        "isFlagged": False,
        "links": {"participants": [person.id.rest, other_user.id.rest]},
    }
    activity = await nutshell.create_activity(activity_payload)
    rpc_activity = await nutshell.get_activity(activity.id, via="rpc")
    assert rpc_activity.status is ActivityStatus.LOGGED and rpc_activity.activity_type == call.id
    assert set(rpc_activity.participants) == {person.id, other_user.id}
    # A live JSON-RPC activity carries no `location` (recorded findActivities); REST shows it.
    assert rpc_activity.start_time == start and rpc_activity.location is None
    rest_activity = await nutshell.get_activity(activity.id)
    assert set(rest_activity.participants) == set(rpc_activity.participants)
    assert rest_activity.description == "Knee pain" and rest_activity.location == "Hampton clinic"
    assert rest_activity.to_payload() == activity_payload
    assert rpc_activity.to_payload() == {k: v for k, v in activity_payload.items() if k != "location"}

    note = await nutshell.create_note("Allergic to latex.\nSecond line — ünïcode.", person.id)
    assert (await nutshell.get_note(note.id)).parent == person.id
    rpc_note = await nutshell.get_note(note.id, via="rpc")
    assert rpc_note.body == "Allergic to latex.\nSecond line — ünïcode." and rpc_note.parent == person.id
    embedded = (await nutshell.get_person(person.id, via="rpc")).raw["notes"]
    assert [(n["id"], n["note"]) for n in embedded] == [(note.id.number, "Allergic to latex.\nSecond line — ünïcode.")]

    content = random.Random(7).randbytes(300_000)
    uploaded = await nutshell.upload_file(activity.id, "scan.pdf", content, content_type="application/pdf")
    assert uploaded.size == len(content)
    [on_activity] = await nutshell.activity_files(activity.id)
    assert on_activity.id == uploaded.id and on_activity.size == len(content)
    assert await nutshell.download_file(on_activity) == content
    dump = state_dump(nutshell_sandbox)
    [stored] = [f for f in dump["live"]["files"] if f["id"] == uploaded.id.number]
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()

    # Change detection sees what we did.
    kinds = {(e.action, e.payload_type) async for e in nutshell.events_since(start.replace(year=2000))}
    assert {("create", "contacts"), ("create", "activities"), ("create", "notes")} <= kinds

    await nutshell.delete_note(note.id)
    await nutshell.delete_activity(activity.id)
    await nutshell.delete_person(person.id, expected_rev=(await nutshell.current_rev(person.id)).rev)
    await nutshell.delete_company(company.id)
    assert state_dump(nutshell_sandbox)["live"] == before["live"]
    assert nutshell.stats.outcome_unknown == 0


async def test_updates_return_a_new_rev_and_a_stale_rev_is_a_conflict(nutshell: NutshellClient) -> None:
    person = await nutshell.create_person({"name": "Rev Tester", "customFields": {"Total Invoiced": "10.00"}})
    updated = await nutshell.update_person(
        person.id, {"customFields": {"Total Invoiced": "25.00"}}, expected_rev=person.rev
    )
    assert updated.rev is not None and updated.rev != person.rev
    assert (await nutshell.get_person(person.id, via="rpc")).custom_fields["Total Invoiced"] == "25.00"
    with pytest.raises(ConflictError):
        await nutshell.update_person(person.id, {"name": "Lost Update"}, expected_rev=person.rev)
    with pytest.raises(ConflictError, match="rev key is out-of-date"):  # Nutshell's own check (JSON-RPC delete)
        await nutshell.delete_person(person.id, expected_rev=person.rev)
    assert (await nutshell.get_person(person.id)).name == "Rev Tester"

    call = (await nutshell.list_activity_types())[0]
    activity = await nutshell.create_activity(
        {"name": "Follow-up", "activityType": call.id, "startTime": 1711821600, "endTime": 1711825200,
         "isLogged": False, "links": {"participants": [person.id]}}
    )  # fmt: skip
    moved = await nutshell.update_activity(activity.id, {"location": "Room 2"}, expected_rev=activity.rev)
    assert moved.rev != activity.rev
    after = await nutshell.get_activity(activity.id)
    assert after.location == "Room 2" and after.name == "Follow-up" and after.participants == (person.id,)
    assert (await nutshell.get_activity(activity.id, via="rpc")).rev == moved.rev
    with pytest.raises(ConflictError, match="rev key is out-of-date"):
        await nutshell.delete_activity(activity.id, rev=activity.rev)
    await nutshell.delete_activity(activity.id, rev=moved.rev)


async def test_a_wrong_key_gives_a_clear_auth_error(nutshell_sandbox: Any) -> None:
    async with client_for(nutshell_sandbox, api_key="not-the-key-at-all") as client:
        with pytest.raises(AuthError, match="Nutshell refused the user e-mail / API key"):
            await client.check_credentials()
        with pytest.raises(AuthError, match="API key not found"):
            await client.get_person(1, via="rpc")


async def test_an_unknown_custom_field_gives_nutshells_message(nutshell: NutshellClient) -> None:
    with pytest.raises(NutshellValidationError, match=r"Favourite Colour.* is not a custom field"):
        await nutshell.create_person({"name": "Nobody", "customFields": {"Favourite Colour": "teal"}})
    assert [p async for p in nutshell.iter_people(q="Nobody")] == []
    # The same refusal over JSON-RPC carries the same message.
    person = await nutshell.create_person({"name": "Somebody"})
    edit = {"contactId": person.id.number, "rev": person.rev, "contact": {"customFields": {"Favourite Colour": "x"}}}
    with pytest.raises(NutshellValidationError, match=r"Favourite Colour.* is not a custom field") as info:
        await nutshell.rpc.call("editContact", edit, safety=Safety.GUARDED)
    assert info.value.where == "rpc editContact" and info.value.status == 400


async def test_a_create_dropped_in_flight_is_outcome_unknown_and_can_be_looked_up(
    nutshell_sandbox: Any, nutshell: NutshellClient
) -> None:
    nutshell_sandbox.knobs.update({"fail_next": ["drop"]})
    payload = {"name": "Dropped Once", "emails": [{"isPrimary": True, "name": "home", "value": "dropped@example.org"}]}
    with pytest.raises(OutcomeUnknownError):
        await nutshell.create_person(payload)
    # The engine looks before re-sending: here the drop happened before Nutshell saw the request.
    assert await nutshell.find_people_by_email("dropped@example.org") == []
    created = await nutshell.create_person(payload)
    assert [p.id for p in await nutshell.find_people_by_email("dropped@example.org")] == [created.id]


async def test_transient_failures_on_reads_are_retried(nutshell_sandbox: Any, nutshell: NutshellClient) -> None:
    nutshell_sandbox.knobs.update({"fail_next": ["503", "500", "drop"]})
    users = await nutshell.list_users()
    assert users and nutshell.stats.retries == 3


async def test_schema_check_and_creating_missing_fields(nutshell_sandbox: Any, nutshell: NutshellClient) -> None:
    needs = SchemaNeeds(
        custom_fields=(
            RequiredField(Entity.CONTACTS, "Cliniko Patient ID", "Text"),
            RequiredField(Entity.CONTACTS, "Date of Birth", "Date"),
            RequiredField(Entity.CONTACTS, "Total Invoiced", "Currency"),
            RequiredField(Entity.CONTACTS, "Balance Due", "Currency"),
            RequiredField(Entity.ACCOUNTS, "Cliniko Contact ID", "Text"),
        ),
        activity_types=("Phone Call / Meeting", "Initial Consultation"),
        users=(nutshell_sandbox.username, "nobody@example.org"),
    )
    report = await check_schema(nutshell, needs)
    assert [c.state for c in report.fields] == [
        FieldState.PRESENT,
        FieldState.PRESENT,
        FieldState.WRONG_TYPE,  # the seed defines it as Text
        FieldState.MISSING,
        FieldState.MISSING,
    ]
    assert report.missing_activity_types == ("Initial Consultation",)
    assert [u.state for u in report.users] == [UserState.FOUND, UserState.MISSING]

    result = await create_missing(nutshell, report)
    assert [(c.entity, c.name, c.type) for c in result.created] == [
        (Entity.CONTACTS, "Balance Due", "Currency"),
        (Entity.ACCOUNTS, "Cliniko Contact ID", "Text"),
    ]
    again = await check_schema(nutshell, needs)
    assert again.missing_fields == ()
    person = await nutshell.create_person({"name": "Valued", "customFields": {"Balance Due": "12.5"}})
    value = (await nutshell.get_person(person.id, via="rpc")).custom_fields["Balance Due"]
    assert value == {"currency": "USD", "amount": "12.50"}


async def test_a_cap_refusal_is_reported_as_such(nutshell_sandbox: Any, nutshell: NutshellClient) -> None:
    nutshell_sandbox.state.custom_field_cap = 4  # the seed holds 3: room for one more
    needs = SchemaNeeds(
        custom_fields=(
            RequiredField(Entity.CONTACTS, "Balance Due", "Currency"),
            RequiredField(Entity.CONTACTS, "Last Invoice Date", "Date"),
        )
    )
    report = await check_schema(nutshell, needs)  # we do not tell the cap: Nutshell will
    result = await create_missing(nutshell, report)
    assert [c.name for c in result.created] == ["Balance Due"]
    assert [(f.required.name, f.cap_reached) for f in result.failures] == [("Last Invoice Date", True)]
    assert "allows 4 custom fields" in result.failures[0].reason
    known = await check_schema(nutshell, needs, custom_field_cap=4)
    assert known.cap.allows is False and known.cap.remaining == 0


async def test_ids_are_one_type_across_protocols(nutshell: NutshellClient) -> None:
    company = await nutshell.create_company({"name": "Id Check Pty Ltd"})
    assert company.id.kind == "accounts" and company.id == NutshellId.parse(company.id.rest)
    assert (await nutshell.get_company(company.id.number, via="rpc")).id == company.id
    assert (await nutshell.get_company(company.id.rest)).id == company.id


async def test_lists_page_through_everything_and_narrow_by_parent(nutshell_sandbox: Any) -> None:
    async with client_for(nutshell_sandbox, read_revs=False) as nutshell:
        seeded = [p.id async for p in nutshell.iter_people()]
        person = await nutshell.create_person({"name": "Busy Patient"})
        other = await nutshell.create_person({"name": "Quiet Patient"})
        for i in range(104):
            await nutshell.create_activity(
                {"name": f"Visit {i}", "startTime": 1700000000 + i * 3600, "endTime": 1700001800 + i * 3600,
                 "isLogged": True, "links": {"participants": [person.id]}}
            )  # fmt: skip
        await nutshell.create_activity(
            {"name": "Other", "startTime": 1700000000, "endTime": 1700001800, "links": {"participants": [other.id]}}
        )
        for i in range(3):
            await nutshell.create_note(f"note {i}", person.id)
        await nutshell.create_note("elsewhere", other.id)

        assert len([a async for a in nutshell.iter_activities()]) == 105
        mine = [a async for a in nutshell.iter_activities(participant=person.id)]
        assert len(mine) == 104 and len({a.id for a in mine}) == 104
        assert [n.body async for n in nutshell.iter_notes(parent=person.id)] == ["note 0", "note 1", "note 2"]
        assert [p.id async for p in nutshell.iter_people()] == [*seeded, person.id, other.id]


async def test_trash_and_undelete(nutshell: NutshellClient) -> None:
    person = await nutshell.create_person({"name": "Back Again"})
    note = await nutshell.create_note("kept", person.id)
    await nutshell.delete_person(person.id)
    assert (await nutshell.current_rev(person.id)).deleted
    assert (await nutshell.get_person(person.id)).deleted_time is not None
    restored = await nutshell.undelete_person(person.id)
    assert restored.deleted_time is None and restored.name == "Back Again"
    assert [n.id async for n in nutshell.iter_notes(parent=person.id)] == [note.id]


async def test_a_file_over_the_size_limit_is_refused_clearly() -> None:
    sandbox = start_nutshell_sandbox(default_seed(), file_size_limit=1000)
    try:
        async with client_for(sandbox) as nutshell:
            person = await nutshell.create_person({"name": "Big Scan"})
            activity = await nutshell.create_activity(
                {"name": "Imaging", "startTime": 1700000000, "isLogged": True, "links": {"participants": [person.id]}}
            )
            with pytest.raises(PayloadTooLargeError, match=r"File too large: .* limit"):
                await nutshell.upload_file(activity.id, "scan.dcm", b"x" * 5000)
            # The refused file's reservation is taken back: no empty file stays on the patient's activity.
            assert await nutshell.activity_files(activity.id) == []
            # A file that fits goes up as the one file of that name.
            uploaded = await nutshell.upload_file(activity.id, "scan.dcm", b"y" * 900)
            assert [(f.id, f.size) for f in await nutshell.activity_files(activity.id)] == [(uploaded.id, 900)]
    finally:
        sandbox.stop()
