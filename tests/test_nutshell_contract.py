"""Contract: every kind of REST response the Nutshell sandbox gives (lists, gets, creates, updates, deletes, errors)
validates against Nutshell's own OpenAPI document (/work/shared/specs/nutshell-rest-openapi.json).

A scenario drives the sandbox over real HTTP through a client that records every exchange; each response is then
matched to its operation in the document and validated with openapi-schema-validator. The document has bugs; each
one we work around is a named `Quirk` below (and `test_quirks_are_still_in_the_spec` fails once one is fixed, so
the workaround can go). Validation is otherwise strict: no blanket "nullable" or "any type".
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO.parent / "shared" / "specs"
SPEC_PATH = SPECS / "nutshell-rest-openapi.json"
if not SPEC_PATH.is_file():
    pytest.skip(f"Nutshell's OpenAPI document is not at {SPEC_PATH} (the shared specs folder)", allow_module_level=True)

RAW_SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
PATCH_TYPE = {"content-type": "application/json-patch+json"}


@dataclass(frozen=True)
class Quirk:
    name: str
    why: str
    pointer: tuple[Any, ...]  # where in the document; () for quirks that are not a schema patch
    replacement: dict[str, Any] | None = None  # the schema put there (None: handled in the matching code)


def _schema(*path: Any) -> tuple[Any, ...]:
    return ("components", "schemas", *path)


QUIRKS = [
    Quirk(
        "servers-url-without-scheme",
        "servers[0].url is 'app.nutshell.com/rest' (no scheme); requests go to the sandbox's rest_url instead.",
        ("servers", 0, "url"),
    ),
    Quirk(
        "request-media-type-json",
        "POST /accounts and POST /tags declare the media type 'json'; their request schemas are read from it.",
        ("paths", "/accounts", "post", "requestBody", "content", "json"),
    ),
    Quirk(
        "single-entity-schema-on-wrapped-answers",
        "POST /accounts, POST /accounts/{id}/undelete and the notes operations declare one bare entity, but live "
        "answers (and public clients) wrap entities as {'<type>': [...]}; each element is validated instead.",
        ("paths", "/notes", "post", "responses", "201", "content", "application/json", "schema", "$ref"),
    ),
    Quirk(
        "contacts-custom-fields-as-bare-array",
        "GET /contacts/customfields/attributes and /contacts/{id}/customfields declare bare arrays while the "
        "accounts twins (and a live client of the leads one) use {'customFields': [...]}; the sandbox answers the "
        "object everywhere, validated with the accounts twin's schema.",
        (
            "paths",
            "/contacts/customfields/attributes",
            "get",
            "responses",
            "200",
            "content",
            "application/json",
            "schema",
            "type",
        ),
    ),
    Quirk(
        "custom-field-create-answer-undeclared",
        "POST /{contacts,accounts}/customfield declare a 200 without a body; the sandbox returns the new "
        "definition, validated as a CustomField.",
        ("paths", "/contacts/customfield", "post", "responses", "200"),
    ),
    Quirk(
        "note-times-declared-string",
        "Note.createdTime/deletedTime are declared strings; live answers carry Unix integers (deletedTime null).",
        _schema("Note", "allOf", 1, "properties", "createdTime"),
        {"type": "integer"},
    ),
    Quirk(
        "note-deleted-time-declared-string",
        "See note-times-declared-string.",
        _schema("Note", "allOf", 1, "properties", "deletedTime"),
        {"type": "integer", "nullable": True},
    ),
    Quirk(
        "custom-field-value-declared-string",
        "FullCustomField.value is declared a string though its description says values take many types "
        "(Currency is an object, Number a number, a multiple Decision a list).",
        _schema("FullCustomField", "allOf", 1, "properties", "value"),
        {},
    ),
]
QUIRKS.append(
    Quirk(
        "reference-lists-as-bare-arrays",
        "GET /industries, /accounttypes and /territories declare bare arrays; live answers (Airbyte's connector "
        "reads `industries` and `accountTypes`) wrap them as every other list does; each element is validated.",
        ("paths", "/industries", "get", "responses", "200", "content", "application/json", "schema", "type"),
    )
)
QUIRKS.append(
    Quirk(
        "custom-field-input-declared-string",
        "CustomFieldInput (values on create) is declared a string; Currency values are objects "
        "({'currency', 'amount'}), numbers and multiple-choice lists are sent as such (reference §2.7).",
        _schema("CustomFieldInput"),
        {},
    )
)
QUIRKS.append(
    Quirk(
        "address-location-without-geocoding",
        "Every live address value carries `location` (Airbyte's schema); the sandbox does not geocode and sends null, "
        "which the document does not mark nullable.",
        _schema("addresses", "items", "properties", "value", "properties", "location"),
    )
)
# Fields the live API sends as null (seen in captured live answers) but the document does not mark nullable.
for _name, _pointer in (
    ("peep-description-null", ("Peep", "properties", "description")),
    ("peep-deleted-time-null", ("Peep", "properties", "deletedTime")),
    ("account-revenue-null", ("Account", "allOf", 3, "properties", "revenue")),
    ("account-employee-count-null", ("Account", "allOf", 3, "properties", "employeeCount")),
    ("phone-extension-null", ("phones", "items", "properties", "value", "properties", "extension")),
    ("tag-deleted-time-null", ("Tag", "properties", "deletedTime")),
    ("event-count-null", ("ChangeLogEntry", "properties", "count")),
):
    QUIRKS.append(Quirk(_name, "live answers send null; the document does not say nullable", _schema(*_pointer)))

WRAPPED = {  # (template, method) -> the key whose elements are validated (quirk single-entity-schema-on-wrapped)
    ("/accounts", "post"): "accounts",
    ("/accounts/{id}/undelete", "post"): "accounts",
    ("/notes", "get"): "notes",
    ("/notes", "post"): "notes",
    ("/notes/{id}", "get"): "notes",
    ("/notes/{id}", "delete"): "notes",
    ("/notes/{id}/undelete", "post"): "notes",
    ("/industries/{id}", "get"): "industries",
}
BARE_ARRAYS = {"/industries": "industries", "/accounttypes": "accountTypes", "/territories": "territories"}
TWINS = {  # quirk contacts-custom-fields-as-bare-array: validate with the accounts twin
    "/contacts/customfields/attributes": "/accounts/customfields/attributes",
    "/contacts/{id}/customfields": "/accounts/{id}/customfields",
}
# The documented error body (reference §7.1); the OpenAPI document declares no error schema at all.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["status", "title", "detail"],
                "properties": {
                    "status": {"type": "string", "pattern": "^[45][0-9][0-9]$"},
                    "title": {"type": "string"},
                    "detail": {"type": "string", "nullable": True},
                    "type": {"type": "string", "enum": ["errors"]},
                },
            },
        }
    },
}
# Every operation the sandbox serves; each must have validated answers.
SERVED = [
    ("/contacts", "get"),
    ("/contacts", "post"),
    ("/contacts/{id}", "get"),
    ("/contacts/{id}", "patch"),
    ("/contacts/{id}", "delete"),
    ("/contacts/{id}/undelete", "post"),
    ("/contacts/{id}/customfields", "get"),
    ("/contacts/customfields/attributes", "get"),
    ("/contacts/customfield", "post"),
    ("/accounts", "get"),
    ("/accounts", "post"),
    ("/accounts/{id}", "get"),
    ("/accounts/{id}", "patch"),
    ("/accounts/{id}", "delete"),
    ("/accounts/{id}/undelete", "post"),
    ("/accounts/{id}/customfields", "get"),
    ("/accounts/customfields/attributes", "get"),
    ("/accounts/customfield", "post"),
    ("/activities", "get"),
    ("/activities", "post"),
    ("/activities/{id}", "get"),
    ("/activities/{id}", "put"),
    ("/activitytypes", "get"),
    ("/notes", "get"),
    ("/notes", "post"),
    ("/notes/{id}", "get"),
    ("/notes/{id}", "delete"),
    ("/notes/{id}/undelete", "post"),
    ("/users", "get"),
    ("/users/{id}", "get"),
    ("/tags", "get"),
    ("/tags", "post"),
    ("/tags/{id}", "delete"),
    ("/tags/{id}/undelete", "post"),
    ("/events", "get"),
    ("/industries", "get"),
    ("/industries/{id}", "get"),
    ("/accounttypes", "get"),
    ("/territories", "get"),
]


def _at(document: Any, pointer: tuple[Any, ...]) -> Any:
    for key in pointer:
        document = document[key]
    return document


def patched_spec() -> dict[str, Any]:
    spec = copy.deepcopy(RAW_SPEC)
    for quirk in QUIRKS:
        if quirk.pointer[:2] != ("components", "schemas"):
            continue
        parent = _at(spec, quirk.pointer[:-1])
        key = quirk.pointer[-1]
        parent[key] = quirk.replacement if quirk.replacement is not None else {**parent[key], "nullable": True}
    return spec


SPEC = patched_spec()
TEMPLATES = sorted(SPEC["paths"], key=lambda t: (t.count("{"), t))  # literal paths win over templated ones


def template_of(path: str, method: str) -> str | None:
    for template in TEMPLATES:
        if method in SPEC["paths"][template] and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            return template
    return None


def validator(schema: dict[str, Any]) -> OAS30Validator:
    # The schema sits at the root beside `components`, so the document's "#/components/..." refs resolve.
    return OAS30Validator({**SPEC, **schema})


def problems(schema: dict[str, Any], instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema).iter_errors(instance)]


@dataclass
class Exchange:
    method: str
    path: str  # without the /rest prefix
    status: int
    body: bytes
    request_body: bytes


class Recorder:
    def __init__(self, sandbox: NutshellSandbox) -> None:
        self.sandbox = sandbox
        self.exchanges: list[Exchange] = []
        self.http = httpx.Client(
            auth=(sandbox.username, sandbox.api_key), timeout=10, event_hooks={"response": [self._record]}
        )

    def _record(self, response: httpx.Response) -> None:
        response.read()
        path = response.request.url.path
        if path.startswith("/rest"):
            request_body = response.request.content if response.request.method in ("POST", "PUT", "PATCH") else b""
            self.exchanges.append(
                Exchange(
                    response.request.method.lower(), path[5:], response.status_code, response.content, request_body
                )
            )

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.sandbox.rest_url + path, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self(method, path, **kwargs)
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None


def exercise(call: Recorder) -> None:
    """One of each kind of answer on every operation the sandbox serves, plus the error kinds."""
    phone = {"isPrimary": True, "name": "mobile", "value": {"number": "+61 412 000 111"}}
    for body in (
        {"name": "Balance Due", "type": "Currency"},
        {"name": "Visits", "type": "Number"},
        {"name": "Service", "type": "Decision", "choices": ["Physio", "Massage"], "isMultiple": True},
    ):
        call.ok("POST", "/contacts/customfield", json=body)
    call.ok("POST", "/accounts/customfield", json={"name": "Insurer Code", "type": "Text"})
    account = call.ok(
        "POST",
        "/accounts",
        json={
            "accounts": [
                {
                    "name": "Insurer",
                    "phones": [{"value": "1300 000"}],
                    "customFields": {"Insurer Code": "X1"},
                    "links": {
                        "accountType": "2-accountTypes",
                        "industry": "2-industries",
                        "territory": "1-territories",
                    },
                }
            ]
        },
    )
    aid = account["accounts"][0]["id"]
    contact = {
        "name": "Contract Person",
        "description": "from the contract test",
        "emails": [{"isPrimary": True, "name": "work", "value": "contract@example.com"}],
        "phones": [phone],
        "addresses": [{"isPrimary": True, "name": "home", "address_1": "1 Main St", "city": "Hobart", "country": "AU"}],
        "urls": [{"isPrimary": True, "name": "site", "value": "https://example.com"}],
        "customFields": {"Cliniko Patient ID": "42", "Balance Due": "10", "Visits": 3, "Service": ["Physio"]},
        "links": {"accounts": [aid], "owner": "2-users"},
    }
    cid = call.ok("POST", "/contacts", json={"contacts": [contact]})["contacts"][0]["id"]
    call.ok("GET", "/contacts", params={"q": "contract", "page[limit]": 5})
    call.ok("GET", "/contacts", params={"email": "contract@example.com"})
    call.ok("GET", f"/contacts/{cid},3-contacts")
    call.ok("GET", f"/contacts/{cid}/customfields")
    call.ok("GET", "/contacts/customfields/attributes")
    call.ok(
        "PATCH",
        f"/contacts/{cid}",
        content=json.dumps([{"op": "replace", "path": "/contacts/0/description", "value": "patched"}]),
        headers=PATCH_TYPE,
    )
    call.ok("GET", "/accounts", params={"sort": "name"})
    call.ok("GET", f"/accounts/{aid}")
    call.ok("GET", f"/accounts/{aid}/customfields")
    call.ok("GET", "/accounts/customfields/attributes")
    call.ok(
        "PATCH",
        f"/accounts/{aid}",
        content=json.dumps([{"op": "replace", "path": "/accounts/0/name", "value": "Insurer Pty"}]),
        headers=PATCH_TYPE,
    )
    activity = {
        "name": "Consult",
        "description": "agenda",
        "note": "logged note",
        "location": "Clinic",
        "activityType": "2-activityTypes",
        "startTime": 1700000000,
        "endTime": 1700001800,
        "isLogged": True,
        "isFlagged": False,
        "isAllDay": False,
        "links": {"participants": [cid, "1-users"]},
    }
    act = call.ok("POST", "/activities", json={"activities": [activity]})["activities"][0]["id"]
    call.ok("PUT", f"/activities/{act}", json={"activities": [{"name": "Consult (edited)"}]})
    call.ok("GET", f"/activities/{act}")
    call.ok("GET", "/activities", params={"filter[participant][]": cid, "limit": 10})
    call.ok("GET", "/activitytypes")
    call.ok("GET", "/industries")
    call.ok("GET", "/industries/2-industries")
    call.ok("GET", "/accounttypes")
    call.ok("GET", "/territories")
    note = call.ok("POST", "/notes", json={"data": {"body": "a note", "links": {"parent": cid}}})["notes"][0]["id"]
    call.ok("GET", "/notes", params={"filter[parent]": cid})
    call.ok("GET", f"/notes/{note}")
    call.ok("DELETE", f"/notes/{note}")
    call.ok("POST", f"/notes/{note}/undelete")
    call.ok("GET", "/users")
    call.ok("GET", "/users/1-users")
    tag = call.ok(
        "POST",
        "/tags",
        json={"tags": [{"name": "Migrated", "tagType": "2", "colorType": "5", "links": {"entities": [cid]}}]},
    )["tags"][0]["id"]
    call.ok("GET", "/tags", params={"filter[tagType]": "contacts"})
    call.ok("DELETE", f"/tags/{tag}")
    call.ok("POST", f"/tags/{tag}/undelete")
    call.ok("GET", "/events", params={"limit": 3})
    call.ok("DELETE", f"/contacts/{cid}")
    call.ok("POST", f"/contacts/{cid}/undelete")
    call.ok("DELETE", f"/accounts/{aid}")
    call.ok("POST", f"/accounts/{aid}/undelete")
    # Errors: validation, bulk create, unknown custom field, media type, not found, method, paging, auth.
    call("POST", "/contacts", json={"contacts": [{"name": "A"}, {"name": "B"}]})
    call("POST", "/contacts", json={"contacts": [{"name": "A", "customFields": {"Nope": "1"}}]})
    call("PATCH", f"/contacts/{cid}", json=[{"op": "replace", "path": "/contacts/0/name", "value": "x"}])
    call("GET", "/contacts/999999-contacts")
    call("DELETE", f"/activities/{act}")
    call("GET", "/contacts", params={"page[page]": -1})
    call("POST", "/contacts/customfield", json={"name": "Bad", "type": "Colour"})
    call("GET", "/leads")
    call.http.get(f"{call.sandbox.rest_url}/users", auth=("nobody@example.com", "wrong"))


@pytest.fixture
def recorded(nutshell_sandbox: NutshellSandbox) -> Iterator[list[Exchange]]:
    recorder = Recorder(nutshell_sandbox)
    exercise(recorder)
    yield recorder.exchanges
    recorder.http.close()


def _request_schema(template: str, method: str) -> dict[str, Any] | None:
    body = SPEC["paths"][template][method].get("requestBody")
    if body is None:
        return None
    content = body["content"]
    # Quirk request-media-type-json: POST /accounts and /tags declare "json".
    media = content.get("application/json") or content.get("json")
    return media["schema"] if media else None


def check(exchange: Exchange) -> tuple[str, list[str]]:
    """(the operation label, what is wrong with this exchange)."""
    if exchange.status >= 400:
        return f"error {exchange.status}", problems(ERROR_SCHEMA, json.loads(exchange.body))
    template = template_of(exchange.path, exchange.method)
    if template is None:
        return f"{exchange.method} {exchange.path}", ["no operation in the document"]
    label = f"{exchange.method.upper()} {template}"
    operation = SPEC["paths"][template][exchange.method]
    found: list[str] = []
    request_schema = _request_schema(template, exchange.method)
    if request_schema is not None and exchange.request_body and exchange.method != "patch":
        found += [f"request {p}" for p in problems(request_schema, json.loads(exchange.request_body))]
    declared = operation["responses"].get(str(exchange.status))
    if declared is None:
        return label, [*found, f"status {exchange.status} is not declared ({sorted(operation['responses'])})"]
    if exchange.status == 204:
        return label, found + ([] if exchange.body == b"" else ["a 204 with a body"])
    body = json.loads(exchange.body)
    if template in TWINS:
        template = TWINS[template]
        declared = SPEC["paths"][template][exchange.method]["responses"]["200"]
    if "content" not in declared:  # quirk custom-field-create-answer-undeclared
        elements = body["customFields"]
        return label, found + [p for e in elements for p in problems({"$ref": "#/components/schemas/CustomField"}, e)]
    schema = declared["content"]["application/json"]["schema"]
    if template in BARE_ARRAYS:  # quirk reference-lists-as-bare-arrays
        elements = body.get(BARE_ARRAYS[template])
        if not elements:
            return label, [*found, f"no {BARE_ARRAYS[template]!r} elements"]
        return label, found + [p for element in elements for p in problems(schema["items"], element)]
    key = WRAPPED.get((template, exchange.method))
    if key is not None:
        if not body.get(key):
            return label, [*found, f"no {key!r} elements"]
        return label, found + [p for element in body[key] for p in problems(schema, element)]
    return label, found + problems(schema, body)


def test_every_rest_answer_validates_against_the_openapi_document(recorded: list[Exchange]) -> None:
    failures = []
    counts: Counter[str] = Counter()
    for exchange in recorded:
        label, found = check(exchange)
        counts[label] += 1
        failures += [f"{exchange.method.upper()} {exchange.path} -> {exchange.status}: {p}" for p in found]
    assert failures == []
    for template, method in SERVED:
        assert counts[f"{method.upper()} {template}"] > 0, f"nothing validated for {method.upper()} {template}"
    for status in (400, 401, 404, 405, 415):
        assert counts[f"error {status}"] > 0, f"no {status} answer validated"
    assert sum(counts.values()) == len(recorded) >= len(SERVED) + 9


def test_the_validation_can_fail() -> None:
    schema = SPEC["paths"]["/contacts"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert problems(schema, {"contacts": [{"id": "3-contacts", "createdTime": 1}]}) == []
    assert problems(schema, {"contacts": [{"id": 3}]}) != []
    assert problems(schema, {"contacts": [{"id": "3-contacts", "createdTime": "yesterday"}]}) != []
    assert problems(schema, {"contacts": [{"id": "3-contacts", "emails": [{"isPrimary": "yes"}]}]}) != []
    assert check(Exchange("get", "/contacts", 200, b'{"contacts": [{"name": 5}]}', b""))[1] != []
    assert check(Exchange("delete", "/contacts/3-contacts", 204, b"{}", b""))[1] == ["a 204 with a body"]
    assert check(Exchange("get", "/contacts", 404, b'{"errors": [{"status": "404"}]}', b""))[1] != []


def test_quirks_are_still_in_the_spec() -> None:
    """Each workaround names a real defect; when Nutshell fixes one, this fails and the workaround can go."""
    assert RAW_SPEC["servers"][0]["url"] == "app.nutshell.com/rest"
    assert "json" in RAW_SPEC["paths"]["/tags"]["post"]["requestBody"]["content"]
    assert "json" in RAW_SPEC["paths"]["/accounts"]["post"]["requestBody"]["content"]
    assert _at(RAW_SPEC, QUIRKS[2].pointer) == "#/components/schemas/Note"
    assert _at(RAW_SPEC, QUIRKS[3].pointer) == "array"
    assert "content" not in _at(RAW_SPEC, QUIRKS[4].pointer)
    for template in BARE_ARRAYS:
        assert (
            RAW_SPEC["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["type"]
            == "array"
        )
    for quirk in QUIRKS[5:]:
        if quirk.pointer[:2] != ("components", "schemas"):
            continue  # checked above
        schema = _at(RAW_SPEC, quirk.pointer)
        assert not schema.get("nullable"), quirk.name
        assert schema.get("type") in ("string", "integer", "object"), quirk.name
    names = [q.name for q in QUIRKS]
    assert len(names) == len(set(names))
