"""Contract: the Nutshell sandbox answers like the real service did when third parties recorded it
(/work/shared/reference/recorded/): the same call gets the recording's envelope and, for every object, the same
key set and value types. Extra keys are allowed only where the documentation (the reference's §3, built from
Nutshell's API docs) or the official OpenAPI document has them, or where another recording of the same entity
type shows them; each allowance below names its source.

JSON-RPC: findUsers, findActivityTypes, findActivities (stub and full) recorded live in 2024, and the getContact
example of Nutshell's reference. REST: the record schemas Airbyte's connector inferred from live answers for nine
streams (`airbyte/nutshell_streams.json`).

Our client reads the recordings themselves too (it must work against the real service on day one), with and
without the fields the sandbox now sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.ids import NutshellId
from cliniko2nutshell.nutshell.models import Activity, ActivityStatus, Person, User
from cliniko2nutshell.nutshell.rpc import read_rpc_error
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox

pytestmark = pytest.mark.contract

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
RECORDED = SHARED / "reference" / "recorded"
SPEC_PATH = SHARED / "specs" / "nutshell-rest-openapi.json"
if not RECORDED.is_dir() or not SPEC_PATH.is_file():
    pytest.skip(f"the recordings or the OpenAPI document are not under {SHARED}", allow_module_level=True)


def _load(name: str) -> Any:
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


RPC_RECORDINGS = {
    "findUsers": _load("biguscj7/findUsers.json"),
    "findActivityTypes": _load("biguscj7/findActivityTypes.json"),
    "findActivitiesStub": _load("biguscj7/findActivitiesStub.json"),
    "findActivitiesNonStub": _load("biguscj7/findActivitiesNonStub.json"),
    "getContact": _load("nutshell-docs/getContact.json"),
}
STREAMS: dict[str, Any] = _load("airbyte/nutshell_streams.json")["streams"]
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))

# The documented JSON-RPC envelope (reference §1.4); the recordings each carry a subset of it.
ENVELOPE_KEYS = {"result", "id", "error", "jsonrpc"}
ATOM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$")

# --- allowances for JSON-RPC objects -----------------------------------------------------------------------------

# Reference §3: "common fields on every entity: id, entityType, rev, modifiedTime, usually createdTime,
# deletedTime (when in trash)" [Nutshell's revs/ETags and entities pages].
COMMON_EXTRAS = {"createdTime", "deletedTime"}
# Fields Nutshell documents on an entity beyond what a recording happens to show.
DOCUMENTED_EXTRAS: dict[str, set[str]] = {
    # Reference §3.1: avatarUrl, legacyId, address (keyed set), territory, mergedInto, customFields, audiences.
    "Contacts": {"avatarUrl", "legacyId", "address", "territory", "mergedInto", "customFields", "audiences"},
    # Reference §3.3 and §2.8 (Nutshell's files page): a logged activity's `logNote` holds its files.
    "Activities": {"logNote", "followUp", "followUpTo"},
}


def _keys_by_entity_type(value: Any, into: dict[str, set[str]]) -> dict[str, set[str]]:
    if isinstance(value, dict):
        if isinstance(value.get("entityType"), str):
            into.setdefault(value["entityType"], set()).update(value)
        for v in value.values():
            _keys_by_entity_type(v, into)
    elif isinstance(value, list):
        for v in value:
            _keys_by_entity_type(v, into)
    return into


# Keys any recording shows for an entity type (e.g. `emails` on a user stub in findUsers allows it on the creator
# stub of the older getContact example, whose users lack it).
SEEN: dict[str, set[str]] = {}
for _body in RPC_RECORDINGS.values():
    _keys_by_entity_type(_body["result"], SEEN)


def rpc_allowed(entity_type: str | None, key: str) -> bool:
    if entity_type is None:
        return False
    return key in COMMON_EXTRAS or key in SEEN.get(entity_type, set()) or key in DOCUMENTED_EXTRAS.get(entity_type, ())


# --- the comparison ------------------------------------------------------------------------------------------


def _type_problem(recorded: Any, ours: Any, path: str) -> str | None:
    if recorded is None:
        return None if ours is None else f"{path}: recorded null, got {type(ours).__name__} {ours!r}"
    if isinstance(recorded, str) and ATOM.match(recorded):
        # "Date fields in the API are either NULL or strings" in ATOM form (reference §1.7, Nutshell's docs).
        if ours is None or (isinstance(ours, str) and ATOM.match(ours)):
            return None
        return f"{path}: recorded an ATOM time, got {ours!r}"
    if isinstance(recorded, bool):
        return None if isinstance(ours, bool) else f"{path}: recorded a boolean, got {ours!r}"
    if isinstance(recorded, int):
        ok = isinstance(ours, int) and not isinstance(ours, bool)
        return None if ok else f"{path}: recorded an integer, got {ours!r}"
    if isinstance(recorded, float):
        ok = isinstance(ours, int | float) and not isinstance(ours, bool)
        return None if ok else f"{path}: recorded a number, got {ours!r}"
    if isinstance(recorded, str):
        return None if isinstance(ours, str) else f"{path}: recorded text, got {ours!r}"
    return f"{path}: cannot compare {recorded!r}"


def shape_problems(
    recorded: Any, ours: Any, path: str = "result", allowed: Callable[[str | None, str], bool] = rpc_allowed
) -> list[str]:
    """What differs between our answer and the recording: missing keys, extra keys that are not allowed, and
    value types, recursively. A multi-value object (`{"0": v, "label": v, "--primary": v}`) is compared value by
    value against the recorded primary; list elements against the recorded element of the same entity type."""
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [f"{path}: recorded an object, got {ours!r}"]
        if "--primary" in recorded:
            out = [] if "--primary" in ours else [f"{path}: no --primary"]
            for key, value in ours.items():
                out += shape_problems(recorded["--primary"], value, f"{path}.{key}", allowed)
            return out
        entity_type = recorded.get("entityType")
        out = [f"{path}: missing {key!r}" for key in sorted(set(recorded) - set(ours))]
        out += [f"{path}: extra {key!r}" for key in sorted(set(ours) - set(recorded)) if not allowed(entity_type, key)]
        for key in sorted(set(recorded) & set(ours)):
            out += shape_problems(recorded[key], ours[key], f"{path}.{key}", allowed)
        return out
    if isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{path}: recorded a list, got {ours!r}"]
        if recorded and not ours:
            return [f"{path}: empty, so nothing to compare with the recorded elements"]
        out = []
        for i, element in enumerate(ours):
            kind = element.get("entityType") if isinstance(element, dict) else None
            templates = [r for r in recorded if not isinstance(r, dict) or r.get("entityType") == kind] or recorded
            if templates:
                out += shape_problems(templates[0], element, f"{path}[{i}]", allowed)
        return out
    problem = _type_problem(recorded, ours, path)
    return [problem] if problem else []


def envelope_problems(recorded: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    out = [f"envelope: missing {k!r}" for k in sorted(set(recorded) - set(ours))]
    out += [f"envelope: undocumented {k!r}" for k in sorted(set(ours) - ENVELOPE_KEYS)]
    if "error" in ours and ours["error"] is not None:
        out.append(f"envelope: error {ours['error']!r} on a success")
    if ours.get("jsonrpc", "2.0") != "2.0" or ours.get("id") != recorded["id"]:
        out.append(f"envelope: jsonrpc/id {ours.get('jsonrpc')!r}/{ours.get('id')!r}")
    return out


def test_the_comparison_can_fail() -> None:
    recorded = RPC_RECORDINGS["findActivitiesNonStub"]["result"][0]
    assert shape_problems(recorded, recorded) == []
    changed = json.loads(json.dumps(recorded))
    del changed["logDescription"]
    changed["location"] = "Room 1"
    changed["participants"][0]["status"] = "3"
    changed["startTime"] = 1717000000
    changed["participants"][1]["emails"] = "test@test.com"
    assert shape_problems(recorded, changed) == [
        "result: missing 'logDescription'",
        "result: extra 'location'",
        "result.participants[0].status: recorded an integer, got '3'",
        "result.participants[1].emails: recorded a list, got 'test@test.com'",
        "result.startTime: recorded an ATOM time, got 1717000000",
    ]
    contact = RPC_RECORDINGS["getContact"]["result"]
    assert shape_problems(contact, {**contact, "email": {"0": "a@b.c"}}) == ["result.email: no --primary"]
    assert shape_problems(contact, {**contact, "owner": {"id": 1}}) == [
        "result.owner: recorded null, got dict {'id': 1}"
    ]
    assert envelope_problems({"result": [], "id": "apeye", "error": None}, {"result": [], "id": "apeye"}) == [
        "envelope: missing 'error'"
    ]


# --- JSON-RPC: the same calls against the sandbox ------------------------------------------------------------------


class Rpc:
    def __init__(self, sandbox: NutshellSandbox) -> None:
        self.url = sandbox.rpc_url
        self.http = httpx.Client(auth=(sandbox.username, sandbox.api_key), timeout=10)

    def envelope(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole answer to a call sent as the recorder sent it (id "apeye", named params)."""
        response = self.http.post(self.url, json={"jsonrpc": "2.0", "id": "apeye", "method": method, "params": params})
        assert response.status_code == 200, response.text
        return response.json()

    def __call__(self, method: str, **params: Any) -> Any:
        return self.envelope(method, **params)["result"]


@pytest.fixture
def rpc(nutshell_sandbox: NutshellSandbox) -> Iterator[Rpc]:
    client = Rpc(nutshell_sandbox)
    yield client
    client.http.close()


def _recorded_situation(rpc: Rpc) -> dict[str, Any]:
    """What the recordings show, rebuilt in the sandbox: an overdue scheduled activity with a contact and a user
    (findActivities), and a contact with labelled e-mail, phone and URLs, no owner, a closed lead and a logged
    activity (getContact)."""
    pat = rpc("newContact", contact={"name": "Pat McEnroe"})
    rpc(
        "newActivity",
        activity={
            "name": "Going Deeper (Cohort 1)",
            "description": "Going Deeper",
            "activityTypeId": 2,
            "participants": [{"entityType": "Contacts", "id": pat["id"]}, {"entityType": "Users", "id": 1}],
            "startTime": "2024-06-06T14:00:00+0000",
            "endTime": "2024-06-06T16:30:00+0000",
            "status": 0,
        },
    )
    louis = rpc(
        "newContact",
        contact={
            "name": "Louis Woodward",
            "owner": None,
            "email": ["lwoodward@example.com"],
            "phone": ["+1 599 691 5805"],
            "url": {"personal": "http://louiswoodward.example", "Twitter": "http://twitter.example/lw"},
        },
    )
    account = rpc("newAccount", account={"name": "MPS Group"})
    lead = rpc(
        "newLead",
        lead={
            "primaryAccount": {"id": account["id"]},
            "contacts": [{"id": louis["id"], "relationship": "Buyer"}],
            "value": {"currency": "USD", "amount": 836},
            "dueTime": "2016-04-04T20:58:23+0000",
        },
    )
    rpc("editLead", leadId=lead["id"], rev=lead["rev"], lead={"status": 11})
    rpc(
        "newActivity",
        activity={
            "name": "Call",
            "participants": [{"entityType": "Contacts", "id": louis["id"]}],
            "startTime": "2016-04-28T16:30:00+0000",
            "status": 1,
        },
    )
    return {"pat": pat, "louis": louis}


def test_each_json_rpc_recording_is_answered_in_its_shape(rpc: Rpc) -> None:
    made = _recorded_situation(rpc)
    calls = {
        "findUsers": ("findUsers", {}),
        "findActivityTypes": ("findActivityTypes", {}),
        "findActivitiesStub": ("findActivities", {"query": {"contactId": [made["pat"]["id"]]}}),
        "findActivitiesNonStub": (
            "findActivities",
            {"query": {"contactId": [made["pat"]["id"]]}, "stubResponses": False},
        ),
        "getContact": ("getContact", {"contactId": made["louis"]["id"]}),
    }
    compared = 0
    for name, (method, params) in calls.items():
        recording = RPC_RECORDINGS[name]
        ours = rpc.envelope(method, **params)
        problems = envelope_problems(recording, ours) + shape_problems(recording["result"], ours["result"])
        assert problems == [], name
        compared += 1 if not isinstance(ours["result"], list) else len(ours["result"])
    assert compared >= 5 + 4  # every recording, with several users and activity types among them


def test_the_sandbox_sends_error_null_and_jsonrpc_on_every_success(rpc: Rpc, nutshell_sandbox: NutshellSandbox) -> None:
    """The documentation's envelope (getContact example): `error: null` beside `result`, `id` and `jsonrpc`,
    also from endpoint discovery, which Nutshell's PHP client checks the same way."""
    assert set(rpc.envelope("getUser")) == ENVELOPE_KEYS
    discovery = httpx.post(
        nutshell_sandbox.discovery_url,
        content=json.dumps({"method": "getApiForUsername", "params": {"username": nutshell_sandbox.username}, "id": 7}),
        timeout=10,
    ).json()
    assert discovery["error"] is None and discovery["id"] == 7 and discovery["result"]["api"]


# --- REST: Airbyte's live record schemas ------------------------------------------------------------------------


def _schema(name: str) -> dict[str, Any]:
    return SPEC["components"]["schemas"][name]


def _props(schema: dict[str, Any]) -> set[str]:
    """Property names of a schema, through $ref and allOf."""
    if "$ref" in schema:
        return _props(_schema(schema["$ref"].rsplit("/", 1)[1]))
    out = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        out |= _props(part)
    return out


def _post_item(path: str, key: str) -> dict[str, Any]:
    content = SPEC["paths"][path]["post"]["requestBody"]["content"]
    schema = (content.get("application/json") or content["json"])["schema"]
    if "$ref" in schema:
        schema = _schema(schema["$ref"].rsplit("/", 1)[1])
    return schema["properties"][key]["items"] if key != "data" else schema["properties"][key]


def _link_names(schema: str, prefix: str) -> set[str]:
    return {name.removeprefix(prefix) for name in _props(_schema(schema))}


_ADDRESS = _schema("addresses")["items"]
_PHONE = _schema("phones")["items"]
# Where the official document has a key the live record schema lacks: (stream or "*", path) -> allowed keys.
# The document puts an address's parts beside `value` and the coordinates inside it; live answers (and the
# sandbox) carry the parts inside `value`, so both places allow both.
REST_DOCUMENTED: dict[tuple[str, str], set[str]] = {
    ("accounts", ""): _props(_schema("Account")) | _props(_post_item("/accounts", "accounts")),
    ("accounts", "links"): _link_names("accountLinks", "accounts."),
    ("contacts", ""): _props(_schema("FullContact")) | _props(_post_item("/contacts", "contacts")),
    ("contacts", "links"): _link_names("contactLinks", "contacts.")
    | _props(_post_item("/contacts", "contacts")["properties"]["links"]),
    # The document lists an activity's fields on ActivityResponse itself (beside `activities`) and the writable
    # ones (location among them) on activityPostInput.
    ("activities", ""): _props(_schema("FullActivity"))
    | (_props(_schema("ActivityResponse")) - {"activities"})
    | _props(_post_item("/activities", "activities")),
    ("activity_types", ""): _props(_schema("ActivityType")),
    ("users", ""): _props(_schema("User")),
    ("notes", ""): _props(_schema("Note")),
    ("tags", ""): _props(_schema("Tag")),
    ("events", ""): _props(_schema("ChangeLogEntry")),
    ("contacts_custom_fields", ""): _props(_schema("CustomField")) | _props(_schema("CustomFieldCreateInput")),
    ("*", "addresses[]"): _props(_ADDRESS),
    ("*", "addresses[].value"): _props(_ADDRESS) | _props(_ADDRESS["properties"]["value"]),
    ("*", "phones[]"): _props(_PHONE),
    ("*", "phones[].value"): _props(_PHONE["properties"]["value"]),
}


def rest_key_problems(stream: str, schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Every key the live schema has is present; every other key is documented; recursively."""
    if isinstance(value, dict) and "properties" in schema:
        live = set(schema["properties"])
        documented = REST_DOCUMENTED.get((stream, path), set()) | REST_DOCUMENTED.get(("*", path), set())
        out = [f"{stream} {path or '.'}: missing {k!r}" for k in sorted(live - set(value))]
        out += [f"{stream} {path or '.'}: undocumented {k!r}" for k in sorted(set(value) - live - documented)]
        for key in sorted(live & set(value)):
            out += rest_key_problems(stream, schema["properties"][key], value[key], f"{path}.{key}".lstrip("."))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for v in value for p in rest_key_problems(stream, schema["items"], v, f"{path}[]")]
    return []


def _populate_rest(call: Callable[..., Any]) -> None:
    """One of each record the nine streams list, with every optional part filled in."""
    account = call(
        "POST",
        "/accounts",
        json={
            "accounts": [
                {
                    "name": "Bayside Referrers",
                    "urls": [{"name": "site", "value": "https://bayside.example"}],
                    "emails": [{"value": "hello@bayside.example"}],
                    "phones": [{"value": "+61 3 9000 0000"}],
                    "addresses": [{"name": "office", "address_1": "1 Bay Rd", "city": "Hampton", "country": "AU"}],
                    "links": {"industry": "1-industries", "accountType": "3-accountTypes"},
                }
            ]
        },
    )["accounts"][0]["id"]
    call("POST", "/contacts/customfield", json={"name": "Visits", "type": "Text"})
    contact = call(
        "POST",
        "/contacts",
        json={
            "contacts": [
                {
                    "name": "Zoë Ångström",
                    "emails": [{"isPrimary": True, "name": "work", "value": "zoe@example.org"}],
                    "phones": [{"isPrimary": True, "name": "mobile", "value": "+61 412 000 111"}],
                    "urls": [{"name": "site", "value": "https://zoe.example"}],
                    "addresses": [{"isPrimary": True, "name": "home", "address_1": "2 Sea St", "city": "Hampton"}],
                    "links": {"accounts": [account], "territory": "1-territories"},
                }
            ]
        },
    )["contacts"][0]["id"]
    call(
        "POST",
        "/activities",
        json={
            "activities": [
                {
                    "name": "Consult",
                    "activityType": "1-activityTypes",
                    "startTime": 1711821600,
                    "endTime": 1711823400,
                    "isLogged": True,
                    "location": "Room 2",
                    "links": {"participants": [contact, "2-users"]},
                }
            ]
        },
    )
    call("POST", "/notes", json={"data": {"body": "Prefers mornings", "links": {"parent": contact}}})
    call("POST", "/tags", json={"tags": [{"name": "Migrated", "tagType": "2", "links": {"entities": [contact]}}]})


def test_each_rest_stream_has_the_live_key_set_and_types(nutshell_sandbox: NutshellSandbox) -> None:
    http = httpx.Client(auth=(nutshell_sandbox.username, nutshell_sandbox.api_key), timeout=10)

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = http.request(method, nutshell_sandbox.rest_url + path, **kwargs)
        assert response.is_success, f"{method} {path}: {response.text}"
        return response.json()

    try:
        _populate_rest(call)
        problems: list[str] = []
        for name, stream in STREAMS.items():
            paging = stream["paginator"] or {}
            params = {paging["page_size_param"]: paging["page_size"]} if paging else {}
            if paging.get("page_token_param"):
                params[paging["page_token_param"]] = paging["start_from_page"]
            records = call("GET", stream["url"], params=params)[stream["field_path"]]
            assert records, f"{name}: the sandbox listed nothing to compare"
            validator = Draft7Validator(stream["schema"])
            for record in records:
                problems += [
                    f"{name} {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(record)
                ]
                problems += rest_key_problems(name, stream["schema"], record)
        assert problems == []
    finally:
        http.close()


def test_rest_key_check_can_fail() -> None:
    schema = STREAMS["users"]["schema"]
    assert (
        rest_key_problems("users", schema, {"id": "1-users", "lastName": "x"})[-1] == "users .: undocumented 'lastName'"
    )
    assert "users .: missing 'permissions'" in rest_key_problems("users", schema, {"id": "1-users"})
    assert rest_key_problems("activities", STREAMS["activities"]["schema"], {"location": None, "links": {}}) == [
        p for p in rest_key_problems("activities", STREAMS["activities"]["schema"], {"links": {}})
    ]


# --- our client reads the recordings -------------------------------------------------------------------------


def _client_over(answers: dict[str, Any]) -> NutshellClient:
    """A client whose JSON-RPC calls get the recorded bodies as they were recorded (envelope and all); REST
    `GET /users` lists nobody, so `check_credentials` names the user JSON-RPC's getUser gives."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/rest/"):
            return httpx.Response(200, json={"meta": {}, "links": {}, "users": []})
        return httpx.Response(200, json=answers[json.loads(request.content)["method"]])

    return NutshellClient(
        "admin@clinic.example",
        "k" * 20,
        "http://nutshell.test/rest",
        rpc_url="http://nutshell.test/api/v1/json",
        transport=httpx.MockTransport(handler),
    )


def _one(body: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """A recorded find* answer cut down to one element, as a get* would answer (the envelope kept)."""
    return {**body, "result": body["result"][index]}


async def test_our_client_reads_every_recorded_envelope_and_entity() -> None:
    answers = {
        "getContact": RPC_RECORDINGS["getContact"],  # error null and jsonrpc
        "getActivity": _one(RPC_RECORDINGS["findActivitiesNonStub"]),  # jsonrpc, no error
        "getUser": _one(RPC_RECORDINGS["findUsers"]),  # error null, no jsonrpc
    }
    async with _client_over(answers) as client:
        person = await client.get_person(1, via="rpc")
        activity = await client.get_activity(78131, via="rpc")
        user = (await client.check_credentials()).user
    assert person.name == "Mr. Louis Woodward" and person.primary_email == "lwoodward@leapwireless.com"
    assert person.phones[0].value == "+15996915805" and person.owner is None
    assert activity.status is ActivityStatus.OVERDUE and activity.activity_type == NutshellId("activityTypes", 2)
    assert set(activity.participants) == {NutshellId("contacts", 156843), NutshellId("users", 13)}
    assert user is not None and user.emails == ("crock@mail.com",) and user.is_administrator
    for body in answers.values():
        assert read_rpc_error(httpx.Response(200, json=body, request=httpx.Request("POST", "http://x"))) is None


def _without(raw: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in keys}


def test_our_models_read_the_same_with_and_without_the_new_fields(rpc: Rpc, nutshell_sandbox: NutshellSandbox) -> None:
    made = _recorded_situation(rpc)
    full = rpc("findActivities", query={"contactId": [made["pat"]["id"]]}, stubResponses=False)[0]
    bare = {**full, "participants": [_without(p, "status") for p in full["participants"]]}
    assert Activity.from_api(full).model_dump() == Activity.from_api(bare).model_dump()

    http = httpx.Client(auth=(nutshell_sandbox.username, nutshell_sandbox.api_key), timeout=10)
    try:
        users = http.get(f"{nutshell_sandbox.rest_url}/users").json()["users"]
        contacts = http.get(f"{nutshell_sandbox.rest_url}/contacts").json()["contacts"]
    finally:
        http.close()
    for raw in users:
        bare_user = _without(raw, "permissions", "phonecallerType", "agentStatus", "links")
        assert User.from_api(raw).model_dump() == User.from_api(bare_user).model_dump()
    for raw in contacts:
        assert Person.from_api(raw).model_dump() == Person.from_api(_without(raw, "jobs")).model_dump()
        for jobs in ([], {}, [{"title": "Owner", "account": "3-accounts"}]):
            assert Person.from_api({**raw, "jobs": jobs}).model_dump() == Person.from_api(raw).model_dump()


def test_a_recorded_answer_read_twice_gives_one_model() -> None:
    """The recordings' `error: null` and its absence read alike (a guard for read_rpc_error's `not error`)."""
    with_null = httpx.Response(
        200, json={"result": 1, "id": "a", "error": None}, request=httpx.Request("POST", "http://x")
    )
    without = httpx.Response(200, json={"result": 1, "id": "a"}, request=httpx.Request("POST", "http://x"))
    assert read_rpc_error(with_null) is None and read_rpc_error(without) is None
    failing = httpx.Response(
        200,
        json={"result": None, "error": {"code": 409, "message": "rev key is out-of-date", "data": None}},
        request=httpx.Request("POST", "http://x"),
    )
    assert read_rpc_error(failing) is not None
