"""Contract: every kind of response the Cliniko sandbox gives validates against Cliniko's official OpenAPI schemas.

The schemas come from shared/specs/cliniko-openapi.json (OAS23), resolved through a `referencing` registry, and
checked with openapi-schema-validator's OAS 3.0 validator, formats included. Two spec bugs are patched, each
explicitly and nowhere else:
- the e-mail `pattern`s are written in upper case only but meant case-insensitively: EMAIL_PATTERN_PATHS;
- `nullable: true` enums that do not list null (OAS 3.0.3 says null must then be in the enum, the spec's
  authors plainly meant it to be allowed): NULLABLE_ENUM_COUNT locations, found by walking the spec.
Responses the spec gives no schema for (400, 401, 404, 429) are checked against the shapes the sandbox documents
(cliniko_http.py, cliniko_gate.py).
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko2nutshell.sandbox.cliniko_app import COLLECTIONS, ClinikoSandbox, start_cliniko_sandbox

pytestmark = pytest.mark.contract

SPEC = Path(__file__).resolve().parent.parent.parent / "shared" / "specs" / "cliniko-openapi.json"
if not SPEC.is_file():
    pytest.skip(f"Cliniko's OpenAPI document is not here ({SPEC}): no contract to check", allow_module_level=True)

from openapi_schema_validator import OAS30Validator, oas30_format_checker  # noqa: E402
from referencing import Registry, Resource  # noqa: E402
from referencing.jsonschema import DRAFT4  # noqa: E402

UPPER_EMAIL = r"^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Z0-9.-]+\.[A-Z]{2,63}$"
ANY_CASE_EMAIL = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}$"
EMAIL_PATTERN_PATHS = (
    ("components", "schemas", "Patient", "properties", "email"),
    ("components", "schemas", "Patient", "properties", "invoice_email"),
    ("components", "schemas", "User", "properties", "email"),
    ("components", "requestBodies", "Patient", "content", "application/json", "schema", "properties", "email"),
    ("components", "requestBodies", "Patient", "content", "application/json", "schema", "properties", "invoice_email"),
)
NULLABLE_ENUM_COUNT = 62
UA = {"User-Agent": "cliniko2nutshell contract tests (tests@example.com)", "Accept": "application/json"}


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, str(i)))


def _at(spec: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = spec
    for key in path:
        node = node[key]
    return node


def patched_spec() -> dict[str, Any]:
    spec = copy.deepcopy(json.loads(SPEC.read_text()))
    for path in EMAIL_PATTERN_PATHS:
        node = _at(spec, path)
        assert node["pattern"] == UPPER_EMAIL, path
        node["pattern"] = ANY_CASE_EMAIL
    leftover = [p for p, node in _walk(spec) if node.get("pattern") == UPPER_EMAIL]
    assert not leftover, f"e-mail patterns not listed in EMAIL_PATTERN_PATHS: {leftover}"
    nullable_enums = [n for _, n in _walk(spec) if n.get("nullable") is True and None not in n.get("enum", [None])]
    assert len(nullable_enums) == NULLABLE_ENUM_COUNT
    for node in nullable_enums:
        node["enum"] = [*node["enum"], None]
    return spec


class Contract:
    """Validates bodies against the schema of one operation's response, and counts what it validated."""

    def __init__(self) -> None:
        self.spec = patched_spec()
        self.registry = Registry().with_resource(
            "urn:cliniko", Resource.from_contents(self.spec, default_specification=DRAFT4)
        )
        self.counts: Counter[str] = Counter()

    def schema_ref(self, path: str, method: str, status: int) -> str:
        op = self.spec["paths"][path][method]
        response = op["responses"][str(status)]
        if "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            return f"urn:cliniko#{pointer}/content/application~1json/schema"
        assert "content" in response, f"{method.upper()} {path} {status} has no schema in the spec"
        escaped = path.replace("~", "~0").replace("/", "~1")
        return f"urn:cliniko#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"

    def check(self, label: str, path: str, method: str, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{label}: {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"].startswith("application/json"), label
        body = response.json()
        validator = OAS30Validator(
            {"$ref": self.schema_ref(path, method, status)},
            registry=self.registry,
            format_checker=oas30_format_checker,
        )
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{label}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors[:10]
        )
        self.counts[label] += 1
        return body


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture(scope="module")
def served(clinic_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClinikoSandbox, Path]]:
    """One sandbox for the module, over its own copy of the clinic (the write checks change it)."""
    path = tmp_path_factory.mktemp("contract") / "clinic.db"
    with sqlite3.connect(clinic_db) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    sandbox = start_cliniko_sandbox(path, rate_limit=None)
    try:
        yield sandbox, path
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def http(served: tuple[ClinikoSandbox, Path]) -> Iterator[httpx.Client]:
    sandbox, _ = served
    with httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), headers=UA, timeout=30) as client:
        yield client


def _db(served: tuple[ClinikoSandbox, Path]) -> sqlite3.Connection:
    conn = sqlite3.connect(served[1])
    conn.row_factory = sqlite3.Row
    return conn


def _everything(resource: str) -> dict[str, list[str]]:
    """The q[] that lifts every default scope the resource has."""
    whitelist = COLLECTIONS[resource].whitelist
    return {"q[]": [f"{c}:*" for c in ("archived_at", "cancelled_at", "deleted_at") if c in whitelist]}


LISTS = sorted(COLLECTIONS)


@pytest.mark.parametrize("resource", LISTS)
def test_every_list_and_record_matches_the_spec(
    resource: str, contract: Contract, http: httpx.Client, served: tuple[ClinikoSandbox, Path]
) -> None:
    """Every record of every collection (scopes lifted), listed and fetched one by one where the spec has it."""
    # httpx replaces a URL's query string with `params` when given: the next links are followed without it.
    params: dict[str, Any] | None = {**_everything(resource), "per_page": "100"}
    url: str | None = f"/{resource}"
    ids: list[str] = []
    for _ in range(1000):
        body = contract.check(f"list {resource}", f"/{resource}", "get", http.get(url, params=params))
        ids.extend(item["id"] for item in body[resource])
        url, params = body["links"].get("next"), None
        if url is None:
            break
    with _db(served) as conn:
        sources = COLLECTIONS[resource].sources
        marks = ",".join("?" * len(sources))
        stored = conn.execute(f"SELECT COUNT(*) FROM records WHERE resource IN ({marks})", sources).fetchone()[0]
    if resource == "practitioners":
        inactive = contract.check(
            "list practitioners/inactive", "/practitioners/inactive", "get", http.get("/practitioners/inactive")
        )
        ids.extend(p["id"] for p in inactive["practitioners"])
    assert len(ids) == stored > 0, f"{resource}: served {len(ids)} of {stored}"
    by_id = f"/{resource}/{{id}}"
    if by_id in contract.spec["paths"]:
        for record_id in ids[:: max(1, len(ids) // 40)]:
            contract.check(
                f"get {resource}", by_id, "get", http.get(f"/{resource}/{record_id}", params=_everything(resource))
            )
        assert contract.counts[f"get {resource}"] > 0
    assert contract.counts[f"list {resource}"] > 0


def test_every_booking_shape(contract: Contract, http: httpx.Client, served: tuple[ClinikoSandbox, Path]) -> None:
    with _db(served) as conn:
        for source in ("individual_appointments", "group_appointments", "unavailable_blocks"):
            rows = conn.execute("SELECT id FROM records WHERE resource = ? ORDER BY seq LIMIT 5", (source,)).fetchall()
            assert rows, f"the clinic has no {source}"
            for row in rows:
                body = contract.check(
                    f"booking from {source}",
                    "/bookings/{id}",
                    "get",
                    http.get(f"/bookings/{row['id']}", params=_everything("bookings")),
                )
                assert body["links"]["self"].endswith(f"/bookings/{row['id']}")
            assert contract.counts[f"booking from {source}"] == len(rows)


def test_singletons_and_sub_resources(
    contract: Contract, http: httpx.Client, served: tuple[ClinikoSandbox, Path]
) -> None:
    contract.check("user", "/user", "get", http.get("/user"))
    settings = contract.check("settings", "/settings", "get", http.get("/settings"))
    assert settings["patient_custom_fields_definition"]["sections"]
    contract.check("public settings", "/settings/public", "get", http.get("/settings/public"))
    with _db(served) as conn:
        referred = conn.execute(
            "SELECT json_extract(fk, '$.patient_id') FROM records WHERE resource = 'referral_sources' LIMIT 3"
        ).fetchall()
    assert referred
    for (pid,) in referred:
        contract.check(
            "referral source",
            "/patients/{patient_id}/referral_source",
            "get",
            http.get(f"/patients/{pid}/referral_source"),
        )


def test_write_responses(contract: Contract, http: httpx.Client, served: tuple[ClinikoSandbox, Path]) -> None:
    created = contract.check(
        "create patient",
        "/patients",
        "post",
        http.post("/patients", json={"first_name": "Zoë", "last_name": "Contract", "email": "Zoe@Example.org"}),
        201,
    )
    pid = created["id"]
    contract.check("update patient", "/patients/{id}", "patch", http.patch(f"/patients/{pid}", json={"city": "Hobart"}))
    contract.check("invalid patient", "/patients", "post", http.post("/patients", json={"first_name": ""}), 422)
    contract.check(
        "invalid patient update",
        "/patients/{id}",
        "patch",
        http.patch(f"/patients/{pid}", json={"email": "not an e-mail"}),
        422,
    )
    assert http.post(f"/patients/{pid}/archive").status_code == 204
    contract.check("unarchive patient", "/patients/{id}/unarchive", "post", http.post(f"/patients/{pid}/unarchive"))
    with _db(served) as conn:
        refs = {
            r: conn.execute(
                f"SELECT id FROM records WHERE resource = ? AND archived_at IS NULL {extra} ORDER BY seq LIMIT 1",
                (r,),
            ).fetchone()[0]
            for r, extra in (
                ("practitioners", "AND json_extract(body, '$.active') = 1"),
                ("appointment_types", "AND json_extract(body, '$.max_attendees') = 1"),
                ("businesses", ""),
            )
        }
    appointment = contract.check(
        "create individual appointment",
        "/individual_appointments",
        "post",
        http.post(
            "/individual_appointments",
            json={
                "starts_at": "2027-01-05T01:00:00Z",
                "patient_id": pid,
                "practitioner_id": refs["practitioners"],
                "appointment_type_id": refs["appointment_types"],
                "business_id": refs["businesses"],
                "notes": "contract",
            },
        ),
        201,
    )
    aid = appointment["id"]
    contract.check(
        "update individual appointment",
        "/individual_appointments/{id}",
        "patch",
        http.patch(f"/individual_appointments/{aid}", json={"notes": "moved", "starts_at": "2027-01-06T01:00:00Z"}),
    )
    contract.check(
        "invalid individual appointment",
        "/individual_appointments",
        "post",
        http.post("/individual_appointments", json={"patient_id": pid}),
        422,
    )
    attendee = http.get("/attendees", params={"q[]": f"booking_id:={aid}"}).json()["attendees"][0]
    contract.check("attendee of a new appointment", "/attendees/{id}", "get", http.get(f"/attendees/{attendee['id']}"))
    assert http.patch(f"/individual_appointments/{aid}/cancel", json={"cancellation_reason": 30}).status_code == 204
    contract.check(
        "cancelled appointment",
        "/individual_appointments/{id}",
        "get",
        http.get(f"/individual_appointments/{aid}", params={"q[]": "cancelled_at:*"}),
    )
    contract.check(
        "cancelled booking", "/bookings/{id}", "get", http.get(f"/bookings/{aid}", params={"q[]": "cancelled_at:*"})
    )


def test_error_shapes_without_a_spec_schema(served: tuple[ClinikoSandbox, Path], http: httpx.Client) -> None:
    """The spec documents only 422; these are the sandbox's documented choices."""
    sandbox, _ = served
    bad_filter = http.get("/patients", params={"q[]": "notes:~x"})
    assert bad_filter.status_code == 400
    assert set(bad_filter.json()) == {"message", "errors"} and "q[]" in bad_filter.json()["errors"]
    too_big = http.get("/patients", params={"per_page": "101"})
    assert too_big.status_code == 400 and "per_page" in too_big.json()["errors"]
    for missing in ("/patients/1", "/payments", "/invoices/999"):
        r = http.get(missing)
        assert r.status_code == 404 and r.json() == {"message": "Not Found"}, missing
    denied = httpx.get(f"{sandbox.base_url}/patients", headers=UA, timeout=10)
    assert denied.status_code == 401 and denied.text.strip() == "HTTP Basic: Access denied."
    assert denied.headers["www-authenticate"] == 'Basic realm="Application"'


def test_the_contract_can_fail(contract: Contract, http: httpx.Client) -> None:
    """A served body with one field broken the way a careless server would break it must not validate."""
    good = http.get("/patients", params={"per_page": 1})
    body = good.json()
    broken = [
        {**body, "total_entries": str(body["total_entries"])},
        {**body, "patients": [{**body["patients"][0], "id": int(body["patients"][0]["id"])}]},
        {**body, "patients": [{**body["patients"][0], "created_at": "2024-01-01 10:00"}]},
        {**body, "patients": [{**body["patients"][0], "reminder_type": "Carrier pigeon"}]},
    ]
    for bad in broken:
        response = httpx.Response(200, json=bad, headers={"content-type": "application/json"})
        with pytest.raises(AssertionError):
            contract.check("broken", "/patients", "get", response)
    assert contract.counts["broken"] == 0
