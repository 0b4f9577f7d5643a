"""Unit tests of the Nutshell client over httpx.MockTransport, with answers shaped like Nutshell's OpenAPI
document (REST) and the reference's fixtures (JSON-RPC)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.concurrency import AdaptiveLimiter
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    CustomFieldCapError,
    NotFoundError,
    NutshellValidationError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitedError,
    ServiceError,
)
from cliniko2nutshell.nutshell.events import NutshellConcurrencyChanged, NutshellRateLimited, NutshellRetrying
from cliniko2nutshell.nutshell.ids import NutshellId
from cliniko2nutshell.nutshell.models import Activity, ActivityStatus, Company, Entity, Note, Person, User
from cliniko2nutshell.nutshell.rest import build_patch
from cliniko2nutshell.nutshell.rpc import REAL_DISCOVERY_URL, DiscoveryCache, discovery_url_for
from cliniko2nutshell.nutshell.sending import parse_retry_after
from cliniko2nutshell.nutshell.values import multi_values, parse_time
from cliniko2nutshell.retry import RetryPolicy

REST = "http://nutshell.test/rest"
RPC = "http://nutshell.test/api/v1/json"
USER = "admin@clinic.example"
KEY = "k" * 20


# --- test doubles --------------------------------------------------------------------------------------------


class FakeTime:
    """A clock whose sleeps advance it instantly, recording each wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeNutshell:
    """Routes requests to per-test handlers: REST by "METHOD /path", JSON-RPC by method name."""

    rest: dict[str, Handler | list[Handler]] = field(default_factory=dict)
    rpc: dict[str, Handler | list[Handler]] = field(default_factory=dict)
    other: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/v1/json":
            body = json.loads(request.content)
            return self._pick(self.rpc, body["method"], request)
        if path.startswith("/rest/"):
            return self._pick(self.rest, f"{request.method} {path[len('/rest') :]}", request)
        return self._pick(self.other, f"{request.method} {request.url.host}{path}", request)

    @staticmethod
    def _pick(table: dict[str, Handler | list[Handler]], key: str, request: httpx.Request) -> httpx.Response:
        entry = table.get(key)
        if entry is None:
            return httpx.Response(404, json={"errors": [{"status": "404", "title": "Not Found", "detail": key}]})
        # A list answers in turn; its last handler keeps answering.
        handler = entry if not isinstance(entry, list) else entry.pop(0) if len(entry) > 1 else entry[0]
        return handler(request)

    def sent(self, key: str) -> list[httpx.Request]:
        out = []
        for r in self.requests:
            if r.url.path == "/api/v1/json":
                if json.loads(r.content)["method"] == key:
                    out.append(r)
            elif f"{r.method} {r.url.path.removeprefix('/rest')}" == key:
                out.append(r)
        return out


def rpc_result(result: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": result, "id": json.loads(request.content)["id"], "jsonrpc": "2.0"})

    return handler


def rpc_error(status: int, code: int, message: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": code, "message": message, "data": None}, "id": "1", "jsonrpc": "2.0"}
        return httpx.Response(status, json=body)

    return handler


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def rest_error(status: int, detail: str, title: str = "Bad Request") -> Handler:
    body = {
        "meta": {"instanceId": "1"},
        "links": {},
        "contacts": [],
        "errors": [
            {
                "id": None,
                "type": "errors",
                "code": None,
                "detail": detail,
                "href": None,
                "status": str(status),
                "title": title,
                "field": None,
            }
        ],
    }
    return answer(status, body)


def raises(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def make_client(fake: FakeNutshell, time: FakeTime | None = None, **kwargs: Any) -> NutshellClient:
    time = time or FakeTime()
    limiter = kwargs.pop("limiter", None) or AdaptiveLimiter(
        4, maximum=8, increase_after=3, clock=time.clock, sleep=time.sleep
    )
    kwargs.setdefault("rpc_url", RPC)
    kwargs.setdefault("read_revs", False)
    return NutshellClient(
        USER,
        KEY,
        REST,
        transport=httpx.MockTransport(fake),
        sleep=time.sleep,
        rng=random.Random(1),
        limiter=limiter,
        policy=RetryPolicy(attempts=4, base=0.5, cap=4.0),
        **kwargs,
    )


# The REST contact of the OpenAPI document's examples (FullContact).
REST_CONTACT = {
    "id": "3-contacts",
    "name": "Andy Nutshell",
    "firstName": "Andy",
    "lastName": "Nutshell",
    "description": "CEO",
    "createdTime": 1717000000,
    "emails": [
        {"isPrimary": False, "name": "personal", "value": "andy@home.example"},
        {"isPrimary": True, "name": "work", "value": "andy@nutshell.example"},
    ],
    "phones": [
        {
            "isPrimary": True,
            "name": "mobile",
            "value": {"countryCode": "1", "number": "7341234567", "E164": "+17341234567"},
        }
    ],
    "addresses": [
        {
            "isPrimary": True,
            "name": "work",
            "address_1": "206 E Huron St",
            "city": "Ann Arbor",
            "postalCode": "48103",
            "country": "US",
            "value": {"location": {"latitude": 42.2, "longitude": -83.7}},
        }
    ],
    "customFields": {"Cliniko Patient ID": "123"},
    "links": {"owner": "5-users", "accounts": ["337-accounts"], "creator": "5-users"},
    "htmlUrl": "https://app.nutshell.com/person/3",
    "someFutureField": {"ignored": True},
}

# The JSON-RPC contact of the reference (§3.1, from the docs' getContact example).
RPC_CONTACT = {
    "id": 3,
    "entityType": "Contacts",
    "rev": "7",
    "modifiedTime": "2016-03-13T05:14:21+0000",
    "createdTime": "2016-03-01T00:00:00+00:00",
    "name": {"givenName": "Louis", "familyName": "Woodward", "salutation": "Mr", "displayName": "Mr. Louis Woodward"},
    "owner": {"stub": True, "id": 9, "entityType": "Users", "name": "Kevin Malone"},
    "accounts": [{"stub": True, "id": 337, "entityType": "Accounts", "name": "Arbor Medical"}],
    "email": {"0": "lwoodward@leap.example", "1": "louis@home.example", "--primary": "lwoodward@leap.example"},
    "phone": {
        "0": {"countryCode": "1", "number": "5996915805", "numberFormatted": "599-691-5805", "E164": "+15996915805"},
        "--primary": {"countryCode": "1", "number": "5996915805", "E164": "+15996915805"},
    },
    "url": {"personal": "http://louis.example", "Twitter": "http://t.example/l", "--primary": "http://louis.example"},
    "customFields": {"Cliniko Patient ID": "123"},
    "notes": [],
}


# --- ids and tolerant parsing --------------------------------------------------------------------------------


def test_nutshell_id_reads_every_form() -> None:
    assert NutshellId.parse("3-contacts") == NutshellId("contacts", 3)
    assert NutshellId.parse(3, "contacts").rest == "3-contacts"
    assert NutshellId.parse("3", "contacts").number == 3
    assert NutshellId.parse({"entityType": "Activity_Types", "id": 1}).rest == "1-activityTypes"
    assert NutshellId.parse("5-users").rpc_ref() == {"entityType": "Users", "id": 5}
    with pytest.raises(ValueError, match="carries no type"):
        NutshellId.parse(3)
    with pytest.raises(ValueError, match="expected a contacts id"):
        NutshellId.parse("3-accounts", "contacts")
    with pytest.raises(ValueError, match="not a Nutshell id"):
        NutshellId.parse("abc", "contacts")
    with pytest.raises(ValueError):
        NutshellId.parse(True, "contacts")


@pytest.mark.parametrize(
    "text",
    ["2016-03-13T05:14:21+0000", "2016-03-13T05:14:21+00:00", "2016-03-13T05:14:21Z", 1457846061, "1457846061"],
)
def test_timestamps_in_every_form(text: object) -> None:
    assert parse_time(text) == datetime(2016, 3, 13, 5, 14, 21, tzinfo=UTC)


def test_empty_timestamps_are_none_and_garbage_is_refused() -> None:
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_multi_values_in_every_shape() -> None:
    assert multi_values({"0": "a@x", "cell": "b@x", "--primary": "b@x"}) == [
        (None, "a@x", False),
        ("cell", "b@x", True),
    ]
    assert multi_values(["a@x", "b@x"]) == [(None, "a@x", True), (None, "b@x", False)]
    assert multi_values("a@x") == [(None, "a@x", True)]
    assert multi_values({"--primary": "a@x"}) == [(None, "a@x", True)]
    assert multi_values(None) == [] and multi_values({}) == []
    rest = [{"isPrimary": False, "name": "home", "value": "a@x"}, {"isPrimary": True, "name": "work", "value": "b@x"}]
    assert multi_values(rest) == [("home", "a@x", False), ("work", "b@x", True)]


def test_person_from_rest_and_from_rpc() -> None:
    rest = Person.from_api(REST_CONTACT)
    assert rest.id == NutshellId("contacts", 3)
    assert rest.name == "Andy Nutshell" and rest.first_name == "Andy"
    assert rest.primary_email == "andy@nutshell.example"
    assert rest.phones[0].value == "+17341234567" and rest.phones[0].label == "mobile"
    assert rest.addresses[0].city == "Ann Arbor" and rest.addresses[0].postal_code == "48103"
    assert rest.owner == NutshellId("users", 5) and rest.accounts == (NutshellId("accounts", 337),)
    assert rest.custom_fields == {"Cliniko Patient ID": "123"}
    assert rest.created_time == datetime.fromtimestamp(1717000000, UTC)
    assert rest.rev is None

    rpc = Person.from_api(RPC_CONTACT)
    assert rpc.id == NutshellId("contacts", 3) and rpc.rev == "7"
    assert rpc.name == "Mr. Louis Woodward" and (rpc.first_name, rpc.last_name) == ("Louis", "Woodward")
    assert [e.value for e in rpc.emails] == ["lwoodward@leap.example", "louis@home.example"]
    assert rpc.primary_email == "lwoodward@leap.example"
    assert rpc.phones[0].value == "+15996915805"
    assert [(u.label, u.is_primary) for u in rpc.urls] == [("personal", True), ("Twitter", False)]
    assert rpc.owner == NutshellId("users", 9) and rpc.accounts == (NutshellId("accounts", 337),)
    assert rpc.modified_time == datetime(2016, 3, 13, 5, 14, 21, tzinfo=UTC)


def test_entities_read_back_in_the_create_payloads_shape() -> None:
    assert Person.from_api(REST_CONTACT).to_payload() == {
        "name": "Andy Nutshell",
        "description": "CEO",
        "emails": [
            {"isPrimary": False, "name": "personal", "value": "andy@home.example"},
            {"isPrimary": True, "name": "work", "value": "andy@nutshell.example"},
        ],
        "phones": [{"isPrimary": True, "name": "mobile", "value": "+17341234567"}],
        "addresses": [
            {"isPrimary": True, "name": "work", "address_1": "206 E Huron St", "city": "Ann Arbor",
             "postalCode": "48103", "country": "US"}
        ],
        "customFields": {"Cliniko Patient ID": "123"},
        "links": {"owner": "5-users", "accounts": ["337-accounts"]},
    }  # fmt: skip
    rpc = Person.from_api(RPC_CONTACT).to_payload()
    assert rpc["emails"][0] == {"isPrimary": True, "name": None, "value": "lwoodward@leap.example"}
    assert rpc["links"] == {"owner": "9-users", "accounts": ["337-accounts"]}
    note = Note.from_api({"id": 8, "entityType": "Notes", "note": "Hi", "entity": {"entityType": "Contacts", "id": 3}})
    assert note.to_payload() == {"body": "Hi", "parent": "3-contacts"}
    company = Company.from_api(
        {
            "id": 4,
            "entityType": "Accounts",
            "name": "Arbor",
            "address": {"office": {"address_1": "220 Depot St", "city": "Ann Arbor"}},
        }
    )
    assert company.to_payload() == {
        "name": "Arbor",
        "addresses": [
            {"isPrimary": True, "name": "office", "value": {"address_1": "220 Depot St", "city": "Ann Arbor"}}
        ],
    }


def test_a_stub_name_is_a_string_and_patient_data_stays_out_of_repr() -> None:
    stub = Person.from_api({"stub": True, "id": 4, "entityType": "Contacts", "rev": "1", "name": "Pat McEnroe"})
    assert stub.name == "Pat McEnroe"
    assert "Pat" not in repr(stub) and "4" in repr(stub)


def test_activity_from_rpc_fixture_and_rest() -> None:
    rpc = Activity.from_api(
        {
            "id": 78131,
            "entityType": "Activities",
            "rev": "5",
            "modifiedTime": "2024-03-20T22:50:06+0000",
            "name": "BRIEF 101 Training",
            "activityType": {"stub": True, "id": 2, "rev": "7", "entityType": "Activity_Types", "name": "Quotes"},
            "startTime": "2024-06-06T14:00:00+0000",
            "endTime": "2024-06-06T16:30:00+0000",
            "status": 1,
            "participants": [
                {"stub": True, "id": 156843, "entityType": "Contacts", "name": "Pat McEnroe", "status": 3},
                {"stub": True, "id": 13, "entityType": "Users", "name": "Test person", "emails": ["t@x"]},
            ],
            "logNote": {
                "id": 9,
                "entityType": "Notes",
                "files": [
                    {"entityType": "Files", "id": 1234, "uri": "http://x/file/api/1234", "name": "a.pdf", "size": 8}
                ],
            },
        }
    )
    assert rpc.activity_type == NutshellId("activityTypes", 2)
    assert rpc.participants == (NutshellId("contacts", 156843), NutshellId("users", 13))
    assert rpc.status is ActivityStatus.LOGGED and rpc.is_logged
    assert rpc.files[0].id == NutshellId("files", 1234) and rpc.files[0].size == 8
    rest = Activity.from_api(
        {
            "id": "7-activities",
            "name": "Consult",
            "startTime": 1717000000,
            "endTime": 1717003600,
            "isLogged": True,
            "activityType": "1-activityTypes",
            "links": {"participants": ["3-contacts", "5-users"]},
        }
    )
    assert rest.status is ActivityStatus.LOGGED
    assert rest.participants == (NutshellId("contacts", 3), NutshellId("users", 5))
    assert rest.start_time == datetime.fromtimestamp(1717000000, UTC)


def test_users_and_notes_in_both_shapes() -> None:
    rpc_user = User.from_api(
        {"stub": True, "id": 131, "rev": "8", "entityType": "Users", "name": "Chris Rock", "emails": ["c@x"]}
    )
    assert rpc_user.id == NutshellId("users", 131) and rpc_user.emails == ("c@x",)
    rest_user = User.from_api(
        {"id": "5-users", "name": "Dr A", "firstName": "A", "emails": ["a@x"], "isEnabled": False}
    )
    assert not rest_user.is_enabled and rest_user.first_name == "A"
    note = Note.from_api(
        {"id": "8-notes", "body": "Hello", "createdTime": "1717000000", "links": {"parent": "3-contacts"}}
    )
    assert note.parent == NutshellId("contacts", 3) and note.body == "Hello"
    rpc_note = Note.from_api(
        {"id": 8, "entityType": "Notes", "rev": "1", "note": "Hi", "entity": {"entityType": "Contacts", "id": 3}}
    )
    assert rpc_note.parent == NutshellId("contacts", 3) and rpc_note.body == "Hi"


# --- payloads ------------------------------------------------------------------------------------------------


async def test_create_person_wraps_the_payload_and_returns_a_typed_result() -> None:
    fake = FakeNutshell(rest={"POST /contacts": answer(200, {"contacts": [REST_CONTACT]})})
    async with make_client(fake) as client:
        payload = {
            "name": "Andy Nutshell",
            "emails": [{"isPrimary": True, "name": "work", "value": "andy@nutshell.example"}],
            "customFields": {"Cliniko Patient ID": "123"},
            "links": {"owner": NutshellId("users", 5), "accounts": ["337-accounts"]},
        }
        written = await client.create_person(payload)
    sent = json.loads(fake.sent("POST /contacts")[0].content)
    assert sent == {"contacts": [{**payload, "links": {"owner": "5-users", "accounts": ["337-accounts"]}}]}
    assert written.id == NutshellId("contacts", 3)
    assert isinstance(written.entity, Person) and written.entity.custom_fields == {"Cliniko Patient ID": "123"}


async def test_create_reads_the_rev_back_over_rpc_when_asked() -> None:
    fake = FakeNutshell(
        rest={"POST /accounts": answer(201, {"accounts": [{"id": "337-accounts", "name": "Arbor"}]})},
        rpc={"getAccount": rpc_result({"id": 337, "entityType": "Accounts", "rev": "1", "name": "Arbor",
                                         "modifiedTime": "2024-01-01T00:00:00+0000"})},
    )  # fmt: skip
    async with make_client(fake, read_revs=True) as client:
        written = await client.create_company({"name": "Arbor"})
    assert written.rev == "1" and written.modified_time == datetime(2024, 1, 1, tzinfo=UTC)
    assert isinstance(written.entity, Company)
    assert json.loads(fake.sent("getAccount")[0].content)["params"] == {"accountId": 337}


async def test_bad_payloads_are_refused_before_anything_is_sent() -> None:
    fake = FakeNutshell()
    async with make_client(fake) as client:
        with pytest.raises(ValueError, match="without the 'contacts' wrapper"):
            await client.create_person({"contacts": [{"name": "x"}]})
        with pytest.raises(ValueError, match=r"payload\.links\.owner holds a object"):
            await client.create_person({"name": "x", "links": {"owner": object()}})
        with pytest.raises(ValueError, match="needs a body"):
            await client.create_note("  ", "3-contacts")
    assert fake.requests == []


def test_build_patch_follows_the_documented_paths() -> None:
    ops = build_patch(
        "contacts",
        {
            "name": "New Name",
            "customFields": {"Balance Due": "12.50", "A/B ~x": "1"},
            "links": {"owner": "6-users", "accounts": ["1-accounts"]},
            "emails": [{"isPrimary": True, "name": "work", "value": "a@x"}],
        },
    )
    assert ops == [
        {"op": "replace", "path": "/contacts/0/name", "value": "New Name"},
        {"op": "replace", "path": "/contacts/0/Balance Due", "value": "12.50"},
        {"op": "replace", "path": "/contacts/0/A~1B ~0x", "value": "1"},
        {"op": "replace", "path": "/contacts/0/links/owner", "value": "6-users"},
        {"op": "replace", "path": "/contacts/0/links/accounts", "value": ["1-accounts"]},
        {"op": "replace", "path": "/contacts/0/emails", "value": [{"isPrimary": True, "name": "work", "value": "a@x"}]},
    ]
    with pytest.raises(ValueError, match="whole list"):
        build_patch("contacts", {"emails": "a@x"})
    with pytest.raises(ValueError, match="empty"):
        build_patch("contacts", {})


async def test_update_sends_json_patch_and_checks_the_rev_first() -> None:
    fake = FakeNutshell(
        rest={
            "PATCH /contacts/3-contacts": answer(204),
            "GET /contacts/3-contacts": answer(200, {"contacts": [REST_CONTACT]}),
        },
        rpc={"getContact": rpc_result(RPC_CONTACT)},
    )
    async with make_client(fake) as client:
        with pytest.raises(ConflictError, match="changed in Nutshell since rev 6"):
            await client.update_person("3-contacts", {"name": "X"}, expected_rev="6")
        assert fake.sent("PATCH /contacts/3-contacts") == []
        written = await client.update_person("3-contacts", {"name": "X"}, expected_rev="7")
    patch = fake.sent("PATCH /contacts/3-contacts")[0]
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert json.loads(patch.content) == [{"op": "replace", "path": "/contacts/0/name", "value": "X"}]
    assert written.id == NutshellId("contacts", 3)


async def test_update_activity_puts_the_whole_activity() -> None:
    current = {
        "id": "7-activities",
        "name": "Consult",
        "description": "agenda",
        "location": "Room 1",
        "startTime": 1717000000,
        "endTime": 1717003600,
        "isLogged": True,
        "activityType": "1-activityTypes",
        "links": {"participants": ["3-contacts", "5-users"]},
    }
    fake = FakeNutshell(
        rest={"GET /activities/7-activities": answer(200, {"activities": [current]}),
              "PUT /activities/7-activities": answer(200, {"activities": [{**current, "name": "Review"}]})},
    )  # fmt: skip
    async with make_client(fake) as client:
        written = await client.update_activity("7-activities", {"name": "Review"})
    body = json.loads(fake.sent("PUT /activities/7-activities")[0].content)
    assert body == {
        "activities": [
            {
                "name": "Review",
                "description": "agenda",
                "location": "Room 1",
                "startTime": 1717000000,
                "endTime": 1717003600,
                "activityType": "1-activityTypes",
                "isLogged": True,
                "isAllDay": False,  # a PUT replaces the activity: its flags go with it, as read
                "isFlagged": False,
                "links": {"participants": ["3-contacts", "5-users"]},
            }
        ]
    }
    assert isinstance(written.entity, Activity) and written.entity.name == "Review"


async def test_delete_activity_goes_through_rpc_with_the_current_rev() -> None:
    fake = FakeNutshell(
        rpc={"getActivity": rpc_result({"id": 7, "entityType": "Activities", "rev": "4", "name": "A"}),
             "deleteActivity": rpc_result(True)},
    )  # fmt: skip
    async with make_client(fake) as client:
        await client.delete_activity("7-activities")
    assert json.loads(fake.sent("deleteActivity")[0].content)["params"] == {"activityId": 7, "rev": "4"}


async def test_delete_with_an_expected_rev_uses_the_checked_rpc_delete() -> None:
    fake = FakeNutshell(rpc={"deleteContact": rpc_error(409, 409, "rev key is out-of-date")})
    async with make_client(fake) as client:
        with pytest.raises(ConflictError, match="rev key is out-of-date"):
            await client.delete_person("3-contacts", expected_rev="2")
    assert len(fake.sent("deleteContact")) == 1  # a conflict is never retried


# --- errors ----------------------------------------------------------------------------------------------------


async def test_auth_failure_is_clear_on_both_protocols() -> None:
    fake = FakeNutshell(
        rest={"GET /users": rest_error(401, "API key not found", "Unauthorized")},
        rpc={"getContact": rpc_error(401, 401, "API key not found")},
    )
    async with make_client(fake) as client:
        with pytest.raises(AuthError, match="Nutshell refused the user e-mail / API key"):
            await client.check_credentials()
        with pytest.raises(AuthError, match="API key not found"):
            await client.get_person(3, via="rpc")
    assert len(fake.requests) == 2


async def test_check_credentials_proves_both_protocols_and_names_the_user() -> None:
    users = {"users": [{"id": "5-users", "name": "Admin", "emails": [USER]}, {"id": "6-users", "name": "Dr B"}]}
    me = {"id": 6, "entityType": "Users", "rev": "2", "name": "Dr B", "emails": ["b@clinic.example"]}
    fake = FakeNutshell(rest={"GET /users": answer(200, users)}, rpc={"getUser": rpc_result(me)})
    async with make_client(fake) as client:
        identity = await client.check_credentials()
    # The key acts as user 6 (impersonation), whatever the username says.
    assert identity.user is not None and identity.user.id == NutshellId("users", 6) and identity.users_visible == 2
    assert json.loads(fake.sent("getUser")[0].content)["params"] == {}

    fallback = FakeNutshell(
        rest={"GET /users": answer(200, users)}, rpc={"getUser": rpc_error(404, -32601, "Method not found")}
    )
    async with make_client(fallback) as client:
        identity = await client.check_credentials()
    assert identity.user is not None and identity.user.id == NutshellId("users", 5)


async def test_validation_errors_carry_nutshells_message() -> None:
    fake = FakeNutshell(
        rest={"POST /contacts": rest_error(400, "Favourite Colour is not a custom field")},
        rpc={"getContact": rpc_error(200, -32602, "contactId must be an integer")},
    )
    async with make_client(fake) as client:
        with pytest.raises(NutshellValidationError, match="Favourite Colour is not a custom field") as info:
            await client.create_person({"name": "x", "customFields": {"Favourite Colour": "red"}})
        assert info.value.status == 400 and info.value.where == "POST /rest/contacts"
        with pytest.raises(NutshellValidationError, match="contactId must be an integer"):
            await client.get_person(3, via="rpc")


async def test_unknown_rpc_method_and_html_404() -> None:
    fake = FakeNutshell(
        rpc={"getNote": rpc_error(404, -32601, "Method not found")},
        rest={"GET /notes/8-notes": lambda r: httpx.Response(404, text="<html><title>Page not found</title></html>")},
    )
    async with make_client(fake) as client:
        with pytest.raises(NotFoundError, match="Method not found"):
            await client.get_note(8, via="rpc")
        with pytest.raises(NotFoundError, match="Page not found"):
            await client.get_note(8)


# --- retries, outcome unknown ----------------------------------------------------------------------------------


async def test_reads_are_retried_on_5xx_and_connection_errors_with_capped_backoff() -> None:
    time = FakeTime()
    events: list[object] = []
    fake = FakeNutshell(
        rest={
            "GET /users": [
                answer(503),
                raises(httpx.ReadTimeout("slow")),
                raises(httpx.ConnectError("refused")),
                answer(200, {"users": [{"id": "5-users", "name": "A", "emails": [USER]}]}),
            ]
        }
    )
    async with make_client(fake, time, events=events.append) as client:
        users = await client.list_users()
    assert [u.id for u in users] == [NutshellId("users", 5)]
    assert len(fake.requests) == 4
    retries = [e for e in events if isinstance(e, NutshellRetrying)]
    assert [r.reason for r in retries] == ["HTTP 503", "ReadTimeout", "ConnectError"]
    assert all(0 <= s <= min(4.0, 0.5 * 2 ** (i)) for i, s in enumerate(time.sleeps))
    assert client.stats.retries == 3


async def test_reads_give_up_after_the_policys_attempts() -> None:
    fake = FakeNutshell(rest={"GET /users": answer(502)})
    async with make_client(fake) as client:
        with pytest.raises(ServiceError, match="after 4 tries"):
            await client.list_users()
    assert len(fake.requests) == 4


async def test_client_errors_are_not_retried() -> None:
    fake = FakeNutshell(rest={"GET /contacts/3-contacts": rest_error(404, "no such contact", "Not Found")})
    async with make_client(fake) as client:
        with pytest.raises(NotFoundError):
            await client.get_person(3)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [raises(httpx.RemoteProtocolError("Server disconnected")), raises(httpx.ReadTimeout("slow")), answer(500)],
    ids=["dropped", "read-timeout", "http-500"],
)
async def test_a_create_that_may_have_happened_is_outcome_unknown_and_not_resent(failure: Handler) -> None:
    fake = FakeNutshell(rest={"POST /contacts": failure})
    async with make_client(fake) as client:
        with pytest.raises(OutcomeUnknownError, match="may have been applied"):
            await client.create_person({"name": "Jane"})
        assert client.stats.outcome_unknown == 1
    assert len(fake.requests) == 1


async def test_a_create_that_never_left_is_retried() -> None:
    fake = FakeNutshell(
        rest={"POST /contacts": [raises(httpx.ConnectError("refused")), answer(200, {"contacts": [REST_CONTACT]})]}
    )
    async with make_client(fake) as client:
        written = await client.create_person({"name": "Jane"})
    assert written.id == NutshellId("contacts", 3) and len(fake.requests) == 2


async def test_a_guarded_write_whose_repeat_conflicts_is_outcome_unknown() -> None:
    """deleteActivity dropped after sending, then the repeat meets a new rev: the first try probably applied."""
    fake = FakeNutshell(
        rpc={
            "deleteActivity": [
                raises(httpx.RemoteProtocolError("dropped")),
                rpc_error(409, 409, "rev key is out-of-date"),
            ]
        }
    )
    async with make_client(fake) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.delete_activity(7, rev="4")
    assert isinstance(info.value.cause, ConflictError)
    assert len(fake.requests) == 2


async def test_an_idempotent_write_that_keeps_failing_ambiguously_is_outcome_unknown() -> None:
    fake = FakeNutshell(rest={"DELETE /notes/8-notes": raises(httpx.ReadError("reset"))})
    async with make_client(fake) as client:
        with pytest.raises(OutcomeUnknownError, match="after 4 tries"):
            await client.delete_note(8)
    assert len(fake.requests) == 4


# --- 429 and adaptive concurrency -------------------------------------------------------------------------------


async def test_429_honours_retry_after_and_halves_the_concurrency() -> None:
    time = FakeTime()
    events: list[object] = []
    fake = FakeNutshell(
        rest={"GET /activitytypes": [answer(429, {}, {"Retry-After": "7"}),
                                     answer(200, {"activityTypes": [{"id": "1-activityTypes", "name": "Call"}]})]}
    )  # fmt: skip
    limiter = AdaptiveLimiter(8, maximum=16, increase_after=2, clock=time.clock, sleep=time.sleep)
    async with make_client(fake, time, limiter=limiter, events=events.append) as client:
        types = await client.list_activity_types()
        assert [t.name for t in types] == ["Call"]
        assert client.concurrency_limit == 4
        assert time.sleeps == [7.0]  # exactly the Retry-After, no extra backoff
        assert client.stats.rate_limited == 1
    assert [e for e in events if isinstance(e, NutshellConcurrencyChanged)] == [
        NutshellConcurrencyChanged(4, 8, "rate limited")
    ]
    assert [e.retry_after for e in events if isinstance(e, NutshellRateLimited)] == [7.0]


async def test_429_without_retry_after_backs_off_and_creates_are_retried() -> None:
    time = FakeTime()
    fake = FakeNutshell(rest={"POST /contacts": [answer(429), answer(429), answer(200, {"contacts": [REST_CONTACT]})]})
    async with make_client(fake, time) as client:
        written = await client.create_person({"name": "Jane"})  # a 429 was refused unprocessed: safe to resend
    assert written.id.number == 3
    assert len(time.sleeps) == 2 and all(0 <= s <= 4.0 for s in time.sleeps)
    assert client.concurrency_limit == 1  # 4 -> 2 -> 1


async def test_sustained_429_gives_up_with_a_rate_limited_error() -> None:
    fake = FakeNutshell(rest={"GET /users": answer(429, {}, {"Retry-After": "1"})})
    async with make_client(fake) as client:
        client._sender.max_rate_limited = 3
        with pytest.raises(RateLimitedError, match="kept answering 429"):
            await client.list_users()
    assert len(fake.requests) == 4


async def test_a_retry_after_longer_than_we_wait_is_surfaced() -> None:
    fake = FakeNutshell(rest={"GET /users": answer(429, {}, {"Retry-After": "3600"})})
    async with make_client(fake) as client:
        with pytest.raises(RateLimitedError, match="wait 3600 s"):
            await client.list_users()


def test_retry_after_in_both_forms() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_limiter_halves_once_per_burst_and_recovers_additively() -> None:
    time = FakeTime()
    changes: list[tuple[int, int, str]] = []
    limiter = AdaptiveLimiter(8, minimum=1, maximum=9, increase_after=3, clock=time.clock, sleep=time.sleep,
                              on_change=lambda *c: changes.append(c))  # fmt: skip
    slots = [await limiter.acquire() for _ in range(8)]
    assert limiter.in_flight == 8
    # Eight requests sent together all meet the same 429 burst: one halving, not eight.
    assert limiter.record_rate_limited(slots[0]) is True
    assert not any(limiter.record_rate_limited(s) for s in slots[1:])
    assert limiter.limit == 4
    for s in slots:
        limiter.release(s)
    slot = await limiter.acquire()
    assert limiter.record_rate_limited(slot) is True and limiter.limit == 2
    limiter.release(slot)
    for _ in range(6):
        s = await limiter.acquire()
        limiter.record_success(s)
        limiter.release(s)
    assert limiter.limit == 4
    assert changes == [(4, 8, "rate limited"), (2, 4, "rate limited"), (3, 2, "recovered"), (4, 3, "recovered")]


async def test_limiter_cuts_the_limit_when_answers_slow_down_and_grows_again_once_they_recover() -> None:
    time = FakeTime()
    changes: list[tuple[int, int, str]] = []
    limiter = AdaptiveLimiter(8, maximum=8, increase_after=3, clock=time.clock, sleep=time.sleep,
                              on_change=lambda *c: changes.append(c))  # fmt: skip

    async def answers(label: str, seconds: float, n: int) -> None:
        for _ in range(n):
            s = await limiter.acquire()
            limiter.record_success(s, label, seconds)
            limiter.release(s)

    # A steady 50 ms, with uploads' own pace beside it: no pressure, nothing changes.
    await answers("POST /rest/activities", 0.05, 40)
    await answers("rpc getActivity", 0.2, 40)
    assert limiter.limit == 8 and changes == [] and limiter.pressure == pytest.approx(1.0, abs=0.05)
    # Loopback jitter (2 ms to 20 ms) is ten times the baseline, but not a queue: no pressure.
    await answers("GET /rest/users", 0.002, 20)
    await answers("GET /rest/users", 0.02, 20)
    assert limiter.limit == 8 and limiter.pressure == pytest.approx(1.0, abs=0.05)
    # Nutshell queues us: answers take 300 ms. A quarter off, once per epoch, and no growth while slow.
    await answers("POST /rest/activities", 0.05, 5)
    await answers("POST /rest/activities", 0.3, 12)
    assert changes[0] == (6, 8, "answers slowing") and limiter.limit < 8
    cut = limiter.limit
    # Back to 50 ms: the pressure eases, and the limit grows back by one after each run of successes.
    await answers("POST /rest/activities", 0.05, 60)
    assert limiter.pressure < 1.5 and limiter.limit > cut and changes[-1][2] == "recovered"


async def test_limiter_never_lets_more_than_the_limit_through() -> None:
    time = FakeTime()
    limiter = AdaptiveLimiter(2, maximum=2, clock=time.clock, sleep=time.sleep)
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with limiter.slot():
            peak = max(peak, limiter.in_flight)
            await asyncio.sleep(0)

    await asyncio.gather(*(work() for _ in range(10)))
    assert peak == 2 and limiter.in_flight == 0


async def test_a_waiter_cancelled_before_its_turn_leaves_cleanly() -> None:
    # A run stopping (a task group cancelling its workers) cancels waiters; a release in the same loop turn drops
    # the cancelled waiter from the queue before its task wakes. The cancellation must still end the task, not
    # turn into another error a worker would catch and carry on after.
    time = FakeTime()
    limiter = AdaptiveLimiter(1, maximum=1, clock=time.clock, sleep=time.sleep)
    held = await limiter.acquire()
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    limiter.release(held)  # before `waiting` runs again: its cancelled future is popped and skipped
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.in_flight == 0
    assert await limiter.acquire() is not None and limiter.in_flight == 1


async def test_a_retry_after_pause_holds_every_request() -> None:
    time = FakeTime()
    limiter = AdaptiveLimiter(4, clock=time.clock, sleep=time.sleep)
    slot = await limiter.acquire()
    limiter.record_rate_limited(slot, pause=5.0)
    limiter.release(slot)
    before = time.now
    await limiter.acquire()
    assert time.now - before == pytest.approx(5.0)


# --- endpoint discovery ----------------------------------------------------------------------------------------


def test_discovery_url_for_the_real_service_and_the_sandbox() -> None:
    assert discovery_url_for("https://app.nutshell.com/rest") == REAL_DISCOVERY_URL
    assert discovery_url_for("app.nutshell.com/rest") == REAL_DISCOVERY_URL
    assert discovery_url_for("http://127.0.0.1:8123/rest") == "http://127.0.0.1:8123/v1/json"


async def test_discovery_is_cached_per_username_and_expires() -> None:
    discoveries: list[httpx.Request] = []

    def discover(request: httpx.Request) -> httpx.Response:
        discoveries.append(request)
        body = json.loads(request.content)
        assert body["method"] == "getApiForUsername" and body["params"] == {"username": USER}
        assert "authorization" not in request.headers  # discovery is anonymous
        return httpx.Response(
            200, json={"result": {"api": "nutshell.test", "login": "x", "iphone": "x"}, "id": body["id"]}
        )

    fake = FakeNutshell(
        other={"POST nutshell.test/v1/json": discover},
        rpc={"getContact": rpc_result(RPC_CONTACT)},
    )
    cache = DiscoveryCache(ttl=3600, clock=lambda: now)
    now = 0.0
    for _ in range(2):  # two clients, one cache: one discovery
        async with make_client(fake, rpc_url=None, discovery_cache=cache) as client:
            await client.get_person(3, via="rpc")
    assert len(discoveries) == 1
    assert str(fake.sent("getContact")[0].url) == RPC
    now = 3601.0
    async with make_client(fake, rpc_url=None, discovery_cache=cache) as client:
        await client.get_person(3, via="rpc")
    assert len(discoveries) == 2


async def test_discovery_never_points_the_key_outside_nutshell() -> None:
    def discover(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"result": {"api": "evil.example", "login": "x", "iphone": "x"}, "id": "1"})

    fake = FakeNutshell(other={"POST api.nutshell.com/v1/json": discover})
    client = NutshellClient(USER, KEY, transport=httpx.MockTransport(fake), discovery_cache=DiscoveryCache())
    async with client:
        with pytest.raises(ProtocolError, match=r"outside nutshell\.com"):
            await client.get_person(3, via="rpc")
    assert len(fake.requests) == 1


async def test_a_next_link_to_another_host_is_refused() -> None:
    fake = FakeNutshell(
        rest={
            "GET /users": answer(
                200,
                {"users": [{"id": "5-users", "name": "A"}], "meta": {"next": "https://evil.example/rest/users?page=2"}},
            )
        }
    )
    async with make_client(fake) as client:
        with pytest.raises(ProtocolError, match="another host"):
            await client.list_users()
    assert len(fake.requests) == 1


async def test_lists_follow_pages_and_stop_on_a_short_page() -> None:
    page = [{"id": f"{i}-contacts", "name": f"P{i}"} for i in range(1, 101)]

    def contacts(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page[page]"])
        assert request.url.params["page[limit]"] == "100"
        items = page if number == 0 else [{"id": "101-contacts", "name": "P101"}]
        return httpx.Response(200, json={"contacts": items})

    fake = FakeNutshell(rest={"GET /contacts": contacts})
    async with make_client(fake) as client:
        people = [p async for p in client.iter_people()]
    assert len(people) == 101 and len(fake.requests) == 2


async def test_a_server_ignoring_our_paging_is_caught() -> None:
    page = [{"id": f"{i}-contacts", "name": f"P{i}"} for i in range(1, 101)]
    fake = FakeNutshell(rest={"GET /contacts": answer(200, {"contacts": page})})
    async with make_client(fake) as client:
        with pytest.raises(ProtocolError, match="repeats a page"):
            [p async for p in client.iter_people()]


# --- files -----------------------------------------------------------------------------------------------------


async def test_upload_reserves_on_the_log_note_keeping_existing_files_then_posts_multipart() -> None:
    existing = {
        "entityType": "Files",
        "id": 40,
        "name": "old.pdf",
        "size": 10,
        "uri": "http://nutshell.test/file/api/40",
    }
    activity = {"id": 7, "entityType": "Activities", "rev": "3", "name": "Consult", "status": 1,
                "logNote": {"id": 9, "entityType": "Notes", "files": [existing]}}  # fmt: skip
    reserved = {
        "entityType": "Files",
        "id": 41,
        "name": "scan.pdf",
        "size": 0,
        "uri": "http://nutshell.test/file/api/41",
    }
    edited = {**activity, "rev": "4", "logNote": {"id": 9, "files": [existing, reserved]}}
    fake = FakeNutshell(
        rpc={"getActivity": rpc_result(activity), "editActivity": rpc_result(edited)},
        other={"POST nutshell.test/file/api/41": answer(200, {**reserved, "size": 5, "mime": "application/pdf"})},
    )
    async with make_client(fake) as client:
        info = await client.upload_file(7, "scan.pdf", b"%PDF!", content_type="application/pdf")
    params = json.loads(fake.sent("editActivity")[0].content)["params"]
    assert params == {
        "activityId": 7,
        "rev": "3",
        "activity": {
            "logNote": {"files": [{"entityType": "Files", "id": 40}, {"entityType": "Files", "name": "scan.pdf"}]}
        },
    }
    upload = fake.requests[-1]
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="scan.pdf"' in upload.content and b"%PDF!" in upload.content
    assert upload.headers["authorization"].startswith("Basic ")
    assert info.id == NutshellId("files", 41) and info.size == 5


async def test_files_only_go_on_logged_activities() -> None:
    fake = FakeNutshell(
        rpc={"getActivity": rpc_result({"id": 7, "entityType": "Activities", "rev": "1", "name": "A", "status": 0})}
    )
    async with make_client(fake) as client:
        with pytest.raises(NutshellValidationError, match="logged activity"):
            await client.upload_file(7, "a.pdf", b"x")
    assert fake.sent("editActivity") == []


async def test_a_file_uri_on_another_host_gets_no_credentials() -> None:
    fake = FakeNutshell()
    async with make_client(fake) as client:
        with pytest.raises(ProtocolError, match="refusing to send"):
            await client.download_file("https://elsewhere.example/file/api/41")
    assert fake.requests == []


async def test_download_streams_to_a_private_file(tmp_path: Any) -> None:
    fake = FakeNutshell(other={"GET nutshell.test/file/api/41": lambda r: httpx.Response(200, content=b"abc" * 1000)})
    async with make_client(fake) as client:
        path = await client.download_file("http://nutshell.test/file/api/41", tmp_path / "f.bin")
    assert path.read_bytes() == b"abc" * 1000 and (path.stat().st_mode & 0o777) == 0o600


# --- custom fields ---------------------------------------------------------------------------------------------


async def test_custom_field_definitions_and_a_cap_refusal() -> None:
    fake = FakeNutshell(
        rest={
            "GET /contacts/customfields/attributes": answer(
                200, [{"id": "1-customfields", "name": "Cliniko Patient ID", "type": "Text"}]
            ),
            "POST /contacts/customfield": rest_error(
                400, "This plan allows 1 custom fields and 1 exist.", "Custom field limit reached"
            ),
        }
    )
    async with make_client(fake) as client:
        defs = await client.custom_field_definitions(Entity.CONTACTS)
        assert [(d.name, d.type) for d in defs] == [("Cliniko Patient ID", "Text")]
        with pytest.raises(CustomFieldCapError, match="allows 1 custom fields"):
            await client.create_custom_field("contacts", "Balance Due", "Currency")
    assert json.loads(fake.sent("POST /contacts/customfield")[0].content) == {"name": "Balance Due", "type": "Currency"}


async def test_events_since_follow_meta_next() -> None:
    first = {"events": [{"id": "1-events", "createdTime": 1717000001, "action": "create", "payloadType": "contacts",
                         "links": {"actor": "5-users", "payloads": ["3-contacts"]}}],
             "meta": {"next": f"{REST}/events?since_id=1-events"}}  # fmt: skip
    second = {"events": [], "meta": {}}

    def events(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=second if "since_id" in request.url.params else first)

    fake = FakeNutshell(rest={"GET /events": events})
    async with make_client(fake) as client:
        got = [e async for e in client.events_since(datetime.fromtimestamp(1717000000, UTC))]
    assert [(e.action, e.payloads) for e in got] == [("create", (NutshellId("contacts", 3),))]
    assert fake.requests[0].url.params["since_time"] == "1717000000"


async def test_calls_on_a_cold_cache_discover_once() -> None:
    discoveries = 0

    async def discover(request: httpx.Request) -> httpx.Response:
        nonlocal discoveries
        discoveries += 1
        await asyncio.sleep(0.01)  # a real discovery takes a while: the other calls arrive meanwhile
        return httpx.Response(200, json={"result": {"api": "nutshell.test", "login": "x", "iphone": "x"}, "id": "1"})

    fake = FakeNutshell(other={"POST nutshell.test/v1/json": discover}, rpc={"getContact": rpc_result(RPC_CONTACT)})  # type: ignore[dict-item]
    async with make_client(fake, rpc_url=None, discovery_cache=DiscoveryCache()) as client:
        await asyncio.gather(*(client.get_person(3, via="rpc") for _ in range(6)))
    assert discoveries == 1 and len(fake.sent("getContact")) == 6


def test_empty_rpc_custom_fields_and_multi_values_are_empty() -> None:
    # A PHP server encodes an empty map as [].
    person = Person.from_api({"id": 5, "entityType": "Contacts", "rev": "1", "name": "X", "customFields": [],
                              "email": [], "phone": [], "address": []})  # fmt: skip
    assert person.custom_fields == {} and person.emails == () and person.addresses == ()
