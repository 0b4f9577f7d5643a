"""The Cliniko sandbox over real HTTP: pagination, filters, scopes, auth, rate limit, writes, attachments, faults.

Expected answers are computed from the clinic file itself (plain SQL and Python over the stored bodies), so the
tests check the server's query logic against an independent reading of the same data.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.cliniko_db import BASE

pytestmark = pytest.mark.e2e

UA = {"User-Agent": "cliniko2nutshell tests (tests@example.com)", "Accept": "application/json"}


# --- helpers ---------------------------------------------------------------------------------------------------


def client(sandbox: ClinikoSandbox, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), headers=UA, timeout=30, **kwargs)


class Clinic:
    """An independent reading of the served file: bodies and scope columns as stored."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.row_factory = sqlite3.Row

    def rows(self, resource: str, where: str = "1", params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(
            f"SELECT * FROM records WHERE resource = ? AND ({where}) ORDER BY created_at, seq", (resource, *params)
        ).fetchall()

    def ids(self, resource: str, where: str = "1", params: tuple[Any, ...] = ()) -> list[str]:
        return [r["id"] for r in self.rows(resource, where, params)]

    def visible(self, resource: str, keep: Callable[[dict[str, Any], dict[str, Any]], bool]) -> set[str]:
        """Ids of records in the default scope (nothing archived/cancelled/deleted) that `keep(body, fk)` accepts."""
        scope = {
            "patients": ("archived_at",),
            "individual_appointments": ("archived_at", "cancelled_at", "deleted_at"),
            "group_appointments": ("archived_at", "deleted_at"),
            "attendees": ("archived_at", "cancelled_at", "deleted_at"),
            "invoices": ("archived_at", "deleted_at"),
            "treatment_notes": ("archived_at", "deleted_at"),
            "contacts": ("archived_at", "deleted_at"),
        }[resource]
        found = set()
        for r in self.rows(resource):
            if any(r[c] for c in scope):
                continue
            if keep(json.loads(r["body"]), json.loads(r["fk"])):
                found.add(r["id"])
        return found

    def close(self) -> None:
        self.conn.close()


def walk(http: httpx.Client, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[httpx.Response]]:
    """Every item of a list, following links.next from the first page."""
    items: list[dict[str, Any]] = []
    pages: list[httpx.Response] = []
    url: str | None = path
    while url:
        assert len(pages) < 1000, "links.next never ends"
        r = http.get(url, params=params if url == path else None)
        assert r.status_code == 200, r.text
        pages.append(r)
        body = r.json()
        key = next(k for k in body if k not in ("total_entries", "links"))
        items.extend(body[key])
        url = body["links"].get("next")
    return items, pages


def ids_of(http: httpx.Client, path: str, *filters: str) -> set[str]:
    items, _ = walk(http, path, {"q[]": list(filters), "per_page": 100})
    return {item["id"] for item in items}


@pytest.fixture(scope="module")
def shared(clinic_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClinikoSandbox]:
    """A read-only sandbox for the query tests, without a rate limit (the limit has its own tests)."""
    path = tmp_path_factory.mktemp("cliniko-read") / "clinic.db"
    with sqlite3.connect(clinic_db) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    sandbox = start_cliniko_sandbox(path, rate_limit=None)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def http(shared: ClinikoSandbox) -> Iterator[httpx.Client]:
    with client(shared) as c:
        yield c


@pytest.fixture(scope="module")
def clinic(clinic_db: Path) -> Iterator[Clinic]:
    c = Clinic(clinic_db)
    yield c
    c.close()


# --- pagination and sorting ------------------------------------------------------------------------------------


def test_pagination_walk_covers_every_record_exactly_once(http: httpx.Client, clinic: Clinic) -> None:
    items, pages = walk(http, "/patients", {"q[]": "archived_at:*", "per_page": 37})
    ids = [p["id"] for p in items]
    total = pages[0].json()["total_entries"]
    assert len(ids) == len(set(ids)) == total == len(clinic.ids("patients"))
    assert len(pages) == -(-total // 37)
    first, second, last = pages[0].json()["links"], pages[1].json()["links"], pages[-1].json()["links"]
    assert "previous" not in first and "next" in first
    assert second["previous"].startswith(http.base_url.scheme + "://") and "page=1" in second["previous"]
    assert "next" not in last and "previous" in last
    # Absolute links that keep the query string (the filter and the page size) of the request.
    assert "archived_at" in first["next"] and "per_page=37" in first["next"] and "page=2" in first["next"]
    assert "archived_at" in pages[1].json()["links"]["self"]


def test_page_size_defaults_limits_and_pages_past_the_end(http: httpx.Client) -> None:
    body = http.get("/patients").json()
    assert len(body["patients"]) == 50 and body["total_entries"] > 50
    assert len(http.get("/patients", params={"per_page": 100}).json()["patients"]) == 100
    for bad in ({"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": "two"}):
        r = http.get("/patients", params=bad)
        assert r.status_code == 400, bad
        assert r.json()["message"] == "Bad Request" and set(r.json()["errors"]) <= {"page", "per_page"}
    past = http.get("/patients", params={"page": 999}).json()
    assert past["patients"] == [] and past["total_entries"] == body["total_entries"] and "next" not in past["links"]


def test_default_order_is_created_at_and_sort_orders(http: httpx.Client, clinic: Clinic) -> None:
    default = [p["id"] for p in walk(http, "/patients", {"per_page": 100})[0]]
    assert default == clinic.ids("patients", "archived_at IS NULL")
    by_updated = walk(http, "/patients", {"sort": "updated_at:desc", "per_page": 100})[0]
    stamps = [p["updated_at"] for p in by_updated]
    assert stamps == sorted(stamps, reverse=True)
    newest_first = walk(http, "/patients", {"order": "desc", "per_page": 100})[0]
    assert [p["created_at"] for p in newest_first] == sorted((p["created_at"] for p in newest_first), reverse=True)
    names = [p["last_name"] for p in walk(http, "/patients", {"sort": "last_name,created_at:desc", "per_page": 100})[0]]
    assert names == sorted(names)
    assert http.get("/patients", params={"sort": "notes"}).status_code == 400
    assert http.get("/patients", params={"order": "sideways"}).status_code == 400


# --- filters ---------------------------------------------------------------------------------------------------


def test_numeric_filters(http: httpx.Client, clinic: Clinic) -> None:
    some = sorted(clinic.visible("patients", lambda b, f: True))[:3]
    assert ids_of(http, "/patients", f"id:={','.join(some)}") == set(some)
    assert ids_of(http, "/patients", f"id:={some[0]}") == {some[0]}
    assert some[0] not in ids_of(http, "/patients", f"id:!={some[0]}")
    pivot = int(some[1])
    assert ids_of(http, "/patients", f"id:>{pivot}") == clinic.visible("patients", lambda b, f: int(b["id"]) > pivot)
    assert ids_of(http, "/patients", f"id:<={pivot}") == clinic.visible("patients", lambda b, f: int(b["id"]) <= pivot)
    paid = clinic.visible("invoices", lambda b, f: b["status"] == 20)
    assert paid and ids_of(http, "/invoices", "status:=20") == paid
    assert ids_of(http, "/invoices", "status:=20,30") == clinic.visible(
        "invoices", lambda b, f: b["status"] in (20, 30)
    )


def test_relation_id_and_array_filters(http: httpx.Client, clinic: Clinic) -> None:
    row = clinic.rows("individual_appointments", "archived_at IS NULL AND cancelled_at IS NULL")[0]
    pid = json.loads(row["fk"])["patient_id"]
    expected = clinic.visible("individual_appointments", lambda b, f: f.get("patient_id") == pid)
    assert row["id"] in expected
    assert ids_of(http, "/individual_appointments", f"patient_id:={pid}") == expected
    group = clinic.rows("group_appointments", "archived_at IS NULL")[0]
    member = json.loads(group["body"])["patient_ids"][0]
    in_groups = clinic.visible("group_appointments", lambda b, f: member in b["patient_ids"])
    assert group["id"] in in_groups
    assert ids_of(http, "/group_appointments", f"patient_ids:~{member}") == in_groups
    # Bookings carry both shapes: a patient's bookings are their individual appointments and their groups.
    bookings = ids_of(http, "/bookings", f"patient_ids:~{pid}")
    assert expected <= bookings
    assert http.get("/group_appointments", params={"q[]": f"patient_ids:={member}"}).status_code == 400


def test_string_filters(http: httpx.Client, clinic: Clinic) -> None:
    body = json.loads(
        clinic.rows("patients", "archived_at IS NULL AND json_extract(body, '$.last_name') != ''")[0]["body"]
    )
    last = body["last_name"]
    assert ids_of(http, "/patients", f"last_name:={last}") == clinic.visible(
        "patients", lambda b, f: b["last_name"] == last
    )
    assert ids_of(http, "/patients", f"last_name:!={last}") == clinic.visible(
        "patients", lambda b, f: b["last_name"] is not None and b["last_name"] != last
    )
    part = last[1:3].upper()
    contains = ids_of(http, "/patients", f"last_name:~{part}")
    assert contains == clinic.visible("patients", lambda b, f: part.casefold() in (b["last_name"] or "").casefold())
    wildcard = f"{last[0]}%{last[-1]}"
    assert ids_of(http, "/patients", f"last_name:~~{wildcard}") == clinic.visible(
        "patients",
        lambda b, f: (
            bool(b["last_name"])
            and b["last_name"].casefold().startswith(last[0].casefold())
            and b["last_name"].casefold().endswith(last[-1].casefold())
        ),
    )
    with_email = clinic.visible("patients", lambda b, f: bool(b.get("email")))
    without_email = clinic.visible("patients", lambda b, f: not b.get("email"))
    assert with_email and without_email
    assert ids_of(http, "/patients", "email:?") == with_email
    assert ids_of(http, "/patients", "email:!?") == without_email


def test_date_and_datetime_filters(http: httpx.Client, clinic: Clinic) -> None:
    may = clinic.visible("patients", lambda b, f: (b.get("date_of_birth") or "")[5:7] == "05")
    assert may and ids_of(http, "/patients", "date_of_birth:=****-05-**") == may
    assert ids_of(http, "/patients", "date_of_birth:<1970-01-01") == clinic.visible(
        "patients", lambda b, f: b.get("date_of_birth") is not None and b["date_of_birth"] < "1970-01-01"
    )
    stamps = sorted(r["updated_at"] for r in clinic.rows("patients", "archived_at IS NULL"))
    middle = stamps[len(stamps) // 2]
    after = clinic.visible("patients", lambda b, f: b["updated_at"] > middle)
    at_or_after = clinic.visible("patients", lambda b, f: b["updated_at"] >= middle)
    assert ids_of(http, "/patients", f"updated_at:>{middle}") == after
    assert ids_of(http, "/patients", f"updated_at:>={middle}") == at_or_after
    # Fractions of a second: stored times are whole seconds, so >= 10.5 means > 10.
    assert ids_of(http, "/patients", f"updated_at:>={middle[:-1]}.5Z") == after
    # An offset is read as the UTC moment it names.
    shifted = middle[:-1] + "+00:00"
    assert ids_of(http, "/patients", f"updated_at:>{shifted}") == after
    window = ids_of(http, "/patients", f"updated_at:>={stamps[0]}", f"updated_at:<={middle}")
    assert window == clinic.visible("patients", lambda b, f: b["updated_at"] <= middle)


def test_boolean_filter_and_single_q(http: httpx.Client, clinic: Clinic) -> None:
    drafts = clinic.visible("treatment_notes", lambda b, f: b.get("draft") is True)
    assert drafts and ids_of(http, "/treatment_notes", "draft:=true") == drafts
    assert ids_of(http, "/treatment_notes", "draft:!=true") == clinic.visible(
        "treatment_notes", lambda b, f: b.get("draft") is False
    )
    doctor_ids = clinic.visible("contacts", lambda b, f: b["type_code"] == 1)
    items, _ = walk(http, "/contacts", {"q": "type_code:=1", "per_page": 100})
    assert {c["id"] for c in items} == doctor_ids


@pytest.mark.parametrize(
    ("path", "query", "where"),
    [
        ("/patients", "notes:~pain", "notes"),  # a field, but not a filterable one
        ("/patients", "id:~12", "'~'"),  # an operator the type does not take
        ("/patients", "id:=abc", "Filter value for id must be a number"),
        ("/invoices", "status:=paid", "Filter value for status must be a number"),  # the live wording
        ("/patients", "updated_at:>yesterday", "timestamp"),
        ("/patients", "updated_at:>2024-01-01T00:00:00", "timestamp"),  # no zone
        ("/patients", "updated_at:=2024-01-01T00:00:00Z", "'='"),
        ("/patients", "date_of_birth:>****-05-**", "wildcards"),
        ("/patients", "first_name", "form"),
        ("/treatment_notes", "draft:=yes", "true or false"),
        ("/users", "archived_at:*", "archived_at"),
    ],
)
def test_bad_filters_are_refused_with_400(http: httpx.Client, path: str, query: str, where: str) -> None:
    r = http.get(path, params={"q[]": query})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["message"] == "Bad Request" and where in body["errors"]["q[]"]


def test_get_by_id_takes_only_scope_filters(http: httpx.Client, clinic: Clinic) -> None:
    pid = clinic.ids("patients", "archived_at IS NULL")[0]
    assert http.get(f"/patients/{pid}", params={"q[]": "first_name:=x"}).status_code == 400
    assert http.get(f"/patients/{pid}", params={"q[]": "archived_at:*"}).status_code == 200


# --- archived and cancelled ------------------------------------------------------------------------------------


def test_archived_patients_are_hidden_unless_asked_for(http: httpx.Client, clinic: Clinic) -> None:
    archived = set(clinic.ids("patients", "archived_at IS NOT NULL"))
    assert archived
    listed = ids_of(http, "/patients")
    assert listed and not (listed & archived)
    everything = ids_of(http, "/patients", "archived_at:*")
    assert everything == listed | archived
    assert ids_of(http, "/patients", "archived_at:?") == archived
    earliest = min(r["archived_at"] for r in clinic.rows("patients", "archived_at IS NOT NULL"))
    assert ids_of(http, "/patients", f"archived_at:>={earliest}") == archived
    one = sorted(archived)[0]
    assert http.get(f"/patients/{one}").status_code == 404
    assert http.get(f"/patients/{one}", params={"q[]": "archived_at:*"}).json()["id"] == one


def test_cancelled_appointments_attendees_and_bookings_are_hidden_unless_asked_for(
    http: httpx.Client, clinic: Clinic
) -> None:
    for path, resource in (("/individual_appointments", "individual_appointments"), ("/attendees", "attendees")):
        cancelled = set(clinic.ids(resource, "cancelled_at IS NOT NULL AND archived_at IS NULL"))
        assert cancelled, resource
        assert not (ids_of(http, path) & cancelled)
        assert cancelled <= ids_of(http, path, "cancelled_at:*")
        one = sorted(cancelled)[0]
        assert http.get(f"{path}/{one}").status_code == 404
        assert http.get(f"{path}/{one}", params={"q[]": "cancelled_at:*"}).status_code == 200
    cancelled = set(clinic.ids("individual_appointments", "cancelled_at IS NOT NULL AND archived_at IS NULL"))
    assert not (ids_of(http, "/bookings") & cancelled)
    assert cancelled <= ids_of(http, "/bookings", "cancelled_at:*")
    archived = set(clinic.ids("individual_appointments", "archived_at IS NOT NULL"))
    assert archived and not (ids_of(http, "/individual_appointments", "cancelled_at:*") & archived)
    assert archived <= ids_of(http, "/individual_appointments", "cancelled_at:*", "archived_at:*")


def test_medical_alerts_of_archived_patients_are_still_listed(cliniko_sandbox: ClinikoSandbox, clinic: Clinic) -> None:
    alert = clinic.rows("medical_alerts", "archived_at IS NULL AND deleted_at IS NULL")[0]
    pid = json.loads(alert["fk"])["patient_id"]
    with client(cliniko_sandbox) as http:
        assert http.post(f"/patients/{pid}/archive").status_code == 204
        assert http.get(f"/patients/{pid}").status_code == 404
        assert alert["id"] in ids_of(http, "/medical_alerts", f"patient_id:={pid}")
        assert http.get(f"/medical_alerts/{alert['id']}").status_code == 200


# --- other read endpoints --------------------------------------------------------------------------------------


def test_practitioners_user_settings_and_referral_sources(http: httpx.Client, clinic: Clinic) -> None:
    active = ids_of(http, "/practitioners")
    inactive = ids_of(http, "/practitioners/inactive")
    assert active and inactive and not (active & inactive)
    assert active | inactive == set(clinic.ids("practitioners"))
    assert http.get(f"/practitioners/{sorted(inactive)[0]}").status_code == 200
    current = json.loads(
        clinic.conn.execute("SELECT body FROM singletons WHERE name = 'current_user_id'").fetchone()[0]
    )
    assert http.get("/user").json()["id"] == str(current)
    settings = http.get("/settings").json()
    assert settings["patient_custom_fields_definition"]["sections"]
    assert http.get("/settings/public").status_code == 200
    referred = {json.loads(r["fk"])["patient_id"] for r in clinic.rows("referral_sources")}
    pid = sorted(referred)[0]
    source = http.get(f"/patients/{pid}/referral_source").json()
    assert source["links"]["self"] == f"{str(http.base_url).rstrip('/')}/patients/{pid}/referral_source"
    unreferred = next(p for p in clinic.ids("patients") if p not in referred)
    assert http.get(f"/patients/{unreferred}/referral_source").status_code == 404


def test_bookings_are_the_union_with_their_own_links(http: httpx.Client, clinic: Clinic) -> None:
    items, _ = walk(http, "/bookings", {"per_page": 100, "q[]": ["archived_at:*", "cancelled_at:*", "deleted_at:*"]})
    expected = {
        *clinic.ids("individual_appointments"),
        *clinic.ids("group_appointments"),
        *clinic.ids("unavailable_blocks"),
    }
    assert {b["id"] for b in items} == expected
    for booking in items:
        assert booking["links"]["self"].endswith(f"/v1/bookings/{booking['id']}")
    group = next(b for b in items if "max_attendees" in b)
    assert group["conflicts"]["links"]["self"].endswith(f"/group_appointments/{group['id']}/conflicts")


def test_links_are_absolute_on_the_served_host_and_ids_are_strings(http: httpx.Client) -> None:
    raw = http.get("/invoices", params={"per_page": 5}).text
    assert BASE not in raw
    for invoice in json.loads(raw)["invoices"]:
        assert isinstance(invoice["id"], str)
        assert invoice["links"]["self"] == f"{str(http.base_url).rstrip('/')}/invoices/{invoice['id']}"
        assert invoice["patient"]["links"]["self"].startswith(str(http.base_url).rstrip("/") + "/patients/")


def test_no_payments_endpoint_and_unknown_routes_are_json_404(http: httpx.Client) -> None:
    for path in ("/payments", "/payments/1", "/nothing"):
        r = http.get(path)
        assert r.status_code == 404 and r.json() == {"message": "Not Found"}


def test_legacy_appointments_alias(http: httpx.Client, clinic: Clinic) -> None:
    row = clinic.rows("individual_appointments", "archived_at IS NULL AND cancelled_at IS NULL")[0]
    legacy = http.get(f"/appointments/{row['id']}").json()
    assert legacy["appointment_start"] == json.loads(row["body"])["starts_at"] and "starts_at" not in legacy
    assert legacy["links"]["self"].endswith(f"/appointments/{row['id']}")
    start = legacy["appointment_start"]
    listed = ids_of(http, "/appointments", f"appointment_start:>={start}")
    assert row["id"] in listed
    assert listed == clinic.visible("individual_appointments", lambda b, f: b["starts_at"] >= start)


# --- auth, user agent, rate limit ------------------------------------------------------------------------------


def test_auth_and_user_agent_errors(shared: ClinikoSandbox) -> None:
    url = f"{shared.base_url}/patients"
    key = shared.api_key
    base, _, shard = key.rpartition("-")
    assert shard == shared.shard != "au1"

    def get(auth: tuple[str, str] | None, headers: dict[str, str] = UA) -> httpx.Response:
        return httpx.get(url, auth=auth, headers=headers, timeout=10)

    for auth in (None, ("not-the-key", ""), (f"{base}-uk1", ""), (base, "")):
        r = get(auth)  # none, wrong key, wrong shard, no suffix (= au1, not this server's shard)
        assert r.status_code == 401, auth
        assert r.text.strip() == "HTTP Basic: Access denied."
        assert r.headers["www-authenticate"] == 'Basic realm="Application"'
        assert r.headers["content-type"].startswith("text/plain")
    assert get((key, "any password")).status_code == 200
    assert get((f"{base}-{shard.upper()}", "")).status_code == 200
    with httpx.Client(timeout=10) as bare:
        basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        request = bare.build_request("GET", url, headers={"Authorization": basic})
        del request.headers["User-Agent"]
        r = bare.send(request)
    assert r.status_code == 400 and r.text == "Requires a user agent"
    assert get((key, ""), {"User-Agent": UA["User-Agent"], "Accept": "text/html"}).status_code == 406


def test_rate_limit_answers_429_with_reset(clinic_db_copy: Path) -> None:
    with start_cliniko_sandbox(clinic_db_copy, rate_limit=5) as sandbox, client(sandbox) as http:
        assert [http.get("/user").status_code for _ in range(5)] == [200] * 5
        before = time.time()
        r = http.get("/user")
        assert r.status_code == 429
        reset = int(r.headers["x-ratelimit-reset"])
        assert before <= reset <= before + 61
        assert not {"retry-after", "x-ratelimit-limit", "x-ratelimit-remaining"} & set(r.headers)
        assert r.json() == {"message": "Too Many Requests"}
        # Refused requests do not consume budget, and the knob overrides the limit at run time.
        knobs = f"{sandbox.base_url.removesuffix('/v1')}/_sandbox/knobs"
        assert httpx.post(knobs, json={"rate_limit": 7}, timeout=10).json()["rate_limit"] == 7
        assert [http.get("/user").status_code for _ in range(8)] == [200] * 7 + [429]


def test_blob_downloads_do_not_count_against_the_rate_limit(clinic_db_copy: Path, clinic: Clinic) -> None:
    aid = _downloadable_attachment(clinic)
    with start_cliniko_sandbox(clinic_db_copy, rate_limit=3) as sandbox, client(sandbox) as http:
        location = http.get(f"/patient_attachments/{aid}/content").headers["location"]
        for _ in range(5):
            assert httpx.get(location, timeout=30).status_code == 200
        assert [http.get("/user").status_code for _ in range(3)] == [200, 200, 429]


# --- writes ----------------------------------------------------------------------------------------------------


def _references(clinic: Clinic) -> dict[str, str]:
    practitioner = clinic.ids("practitioners", "json_extract(body, '$.active') = 1")[0]
    appointment_type = clinic.rows("appointment_types", "archived_at IS NULL")[0]
    return {
        "practitioner_id": practitioner,
        "appointment_type_id": appointment_type["id"],
        "business_id": clinic.ids("businesses", "archived_at IS NULL")[0],
        "duration": str(json.loads(appointment_type["body"])["duration_in_minutes"]),
    }


def test_patient_writes(cliniko_sandbox: ClinikoSandbox) -> None:
    with client(cliniko_sandbox) as http:
        r = http.post(
            "/patients",
            json={
                "first_name": "Ngaio",
                "last_name": "Marsh-Ōtautahi",
                "email": "ngaio@example.nz",
                "patient_phone_numbers": [{"phone_type": "Mobile", "number": "+64 21 555 0101"}],
                "date_of_birth": "1985-04-23",
                "unknown_field": "ignored",
            },
        )
        assert r.status_code == 201, r.text
        created = r.json()
        pid = created["id"]
        assert isinstance(pid, str) and 8e17 <= int(pid) < 9e17
        assert r.headers["location"] == f"{cliniko_sandbox.base_url}/patients/{pid}"
        assert created["label"] == "Ngaio Marsh-Ōtautahi" and created["created_at"].endswith("Z")
        assert created["links"]["self"] == r.headers["location"]
        assert http.get(f"/patients/{pid}").json() == created
        assert pid in ids_of(http, "/patients", "last_name:~ōtau")

        time.sleep(1.1)  # updated_at has whole seconds
        r = http.patch(f"/patients/{pid}", json={"email": "new@example.nz", "city": "Ōtautahi"})
        assert r.status_code == 200 and r.json()["email"] == "new@example.nz"
        assert r.json()["updated_at"] > created["updated_at"]
        assert pid in ids_of(http, "/patients", f"updated_at:>{created['updated_at']}")
        assert http.put(f"/patients/{pid}", json={"title": "Dr"}).json()["title"] == "Dr"

        r = http.patch(f"/patients/{pid}", json={"email": "nope", "date_of_birth": "1985-02-30", "last_name": ""})
        assert r.status_code == 422
        assert r.json() == {
            "message": "Validation Failed",
            "errors": {"email": "is invalid", "date_of_birth": "is not a valid date", "last_name": "can't be blank"},
        }
        assert http.post("/patients", json={"last_name": "Only"}).json()["errors"] == {"first_name": "can't be blank"}
        assert http.post("/patients", content=b"{not json").status_code == 400
        assert http.patch("/patients/1", json={"city": "x"}).status_code == 404

        before = http.get(f"/patients/{pid}").json()["updated_at"]
        time.sleep(1.1)
        assert http.post(f"/patients/{pid}/archive").status_code == 204
        assert http.get(f"/patients/{pid}").status_code == 404
        archived = http.get(f"/patients/{pid}", params={"q[]": "archived_at:*"}).json()
        assert archived["archived_at"] and archived["updated_at"] > before  # archiving bumps updated_at (our choice)
        r = http.post(f"/patients/{pid}/unarchive")
        assert r.status_code == 200 and r.json()["archived_at"] is None
        assert http.get(f"/patients/{pid}").status_code == 200


def test_appointment_writes_keep_attendees_and_fk_in_sync(cliniko_sandbox: ClinikoSandbox, clinic: Clinic) -> None:
    refs = _references(clinic)
    with client(cliniko_sandbox) as http:
        pid = http.post("/patients", json={"first_name": "Apt", "last_name": "Tester"}).json()["id"]
        payload = {k: v for k, v in refs.items() if k != "duration"} | {
            "patient_id": pid,
            "starts_at": "2027-03-01T22:00:00Z",
        }
        r = http.post("/individual_appointments", json=payload)
        assert r.status_code == 201, r.text
        appt = r.json()
        aid = appt["id"]
        assert r.headers["location"].endswith(f"/individual_appointments/{aid}")
        expected_end = datetime(2027, 3, 1, 22, tzinfo=UTC) + timedelta(minutes=int(refs["duration"]))
        assert appt["ends_at"] == expected_end.strftime("%Y-%m-%dT%H:%M:%SZ")  # from the type's duration
        assert appt["patient_name"] == "Apt Tester" and appt["patient"]["links"]["self"].endswith(f"/patients/{pid}")
        assert ids_of(http, "/individual_appointments", f"patient_id:={pid}") == {aid}
        attendees = ids_of(http, "/attendees", f"booking_id:={aid}")
        assert len(attendees) == 1 and attendees == ids_of(http, "/attendees", f"patient_id:={pid}")
        assert aid in ids_of(http, "/bookings", f"patient_ids:~{pid}")

        r = http.patch(f"/individual_appointments/{aid}", json={"ends_at": "2027-03-01T23:59:00Z", "notes": "n"})
        assert r.status_code == 200 and r.json()["ends_at"] == "2027-03-01T23:59:00Z"
        bad = http.patch(f"/individual_appointments/{aid}", json={"ends_at": "2027-02-01T00:00:00Z"})
        assert bad.status_code == 422 and "ends_at" in bad.json()["errors"]
        missing = http.post("/individual_appointments", json={"patient_id": "1"})
        assert missing.status_code == 422
        assert set(missing.json()["errors"]) == {
            "starts_at", "practitioner_id", "appointment_type_id", "business_id", "patient_id"
        }  # fmt: skip

        assert http.patch(f"/individual_appointments/{aid}/cancel", json={}).status_code == 422
        assert http.patch(f"/individual_appointments/{aid}/cancel", json={"cancellation_reason": 11}).status_code == 422
        r = http.patch(
            f"/individual_appointments/{aid}/cancel", json={"cancellation_reason": 40, "cancellation_note": "x"}
        )
        assert r.status_code == 204
        assert http.get(f"/individual_appointments/{aid}").status_code == 404
        cancelled = http.get(f"/individual_appointments/{aid}", params={"q[]": "cancelled_at:*"}).json()
        assert cancelled["cancellation_reason_description"] == "Away" and cancelled["cancelled_at"]
        assert not ids_of(http, "/attendees", f"booking_id:={aid}")
        attendee = http.get(f"/attendees/{next(iter(attendees))}", params={"q[]": "cancelled_at:*"}).json()
        assert attendee["cancelled_at"] == cancelled["cancelled_at"] and attendee["cancellation_reason"] == 40
        assert aid not in ids_of(http, "/bookings")
        assert aid in ids_of(http, "/bookings", "cancelled_at:*")

        second = http.post("/individual_appointments", json=payload | {"ends_at": "2027-03-02T23:00:00Z"}).json()
        assert second["ends_at"] == "2027-03-02T23:00:00Z"
        assert http.post(f"/individual_appointments/{second['id']}/archive").status_code == 204
        assert http.get(f"/individual_appointments/{second['id']}").status_code == 404
        assert second["id"] in ids_of(http, "/individual_appointments", "archived_at:*")


# --- attachments -----------------------------------------------------------------------------------------------


def _downloadable_attachment(clinic: Clinic, smallest: bool = True) -> str:
    row = clinic.conn.execute(
        "SELECT r.id FROM records r JOIN blobs b ON b.attachment_id = r.id WHERE r.resource = 'patient_attachments'"
        f" AND r.archived_at IS NULL ORDER BY b.size {'ASC' if smallest else 'DESC'} LIMIT 1"
    ).fetchone()
    assert row, "the clinic has no attachment with contents"
    return row[0]


def test_attachment_redirect_and_blob_download(http: httpx.Client, shared: ClinikoSandbox, clinic: Clinic) -> None:
    aid = _downloadable_attachment(clinic, smallest=False)
    size = clinic.conn.execute("SELECT size FROM blobs WHERE attachment_id = ?", (aid,)).fetchone()[0]
    assert json.loads(clinic.rows("patient_attachments", "id = ?", (aid,))[0]["body"])["size"] == size
    r = http.get(f"/patient_attachments/{aid}/content")
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith(f"{shared.blob_base}/blobs/") and "X-Amz-Expires=300" in location
    assert not location.startswith(shared.base_url.removesuffix("/v1"))
    with httpx.stream("GET", location, timeout=60) as blob:
        assert blob.status_code == 200
        assert int(blob.headers["content-length"]) == size
        received = sum(len(chunk) for chunk in blob.iter_bytes())
    assert received == size
    refused = httpx.get(location, auth=(shared.api_key, ""), timeout=10)
    assert refused.status_code == 400 and b"Only one auth mechanism allowed" in refused.content
    tampered = location.replace("/blobs/", "/blobs/1")
    assert httpx.get(tampered, timeout=10).status_code == 403
    # The blob port answers blobs only, and the API port serves no blobs.
    assert httpx.get(f"{shared.blob_base}/v1/patients", headers=UA, timeout=10).status_code == 404
    api_root = shared.base_url.removesuffix("/v1")
    assert httpx.get(location.replace(shared.blob_base, api_root), timeout=10).status_code == 404
    assert http.get("/patient_attachments/1/content").status_code == 404


def test_blob_urls_expire(clinic_db_copy: Path, clinic: Clinic) -> None:
    aid = _downloadable_attachment(clinic)
    with start_cliniko_sandbox(clinic_db_copy, blob_ttl=0) as sandbox, client(sandbox) as http:
        location = http.get(f"/patient_attachments/{aid}/content").headers["location"]
        r = httpx.get(location, timeout=10)
        assert r.status_code == 403 and b"Request has expired" in r.content


# --- faults ----------------------------------------------------------------------------------------------------


def test_fault_knobs_inject_errors_and_drops(cliniko_sandbox: ClinikoSandbox) -> None:
    knobs = f"{cliniko_sandbox.base_url.removesuffix('/v1')}/_sandbox/knobs"
    with client(cliniko_sandbox) as http:
        cliniko_sandbox.knobs.update({"fail_next": ["500", "503"]})
        assert http.get("/user").status_code == 500
        assert http.get("/user").status_code == 503
        assert http.get("/user").status_code == 200
        assert httpx.post(knobs, json={"fail_next": ["drop"]}, timeout=10).status_code == 200
        with pytest.raises(httpx.TransportError):
            http.get("/user")
        assert http.get("/user").status_code == 200
        assert httpx.post(knobs, json={"fail_next": ["teapot"]}, timeout=10).status_code == 400


# --- the query language, without a server ----------------------------------------------------------------------


def test_query_parsing_units() -> None:
    from cliniko2nutshell.sandbox.cliniko_query import (
        LIST_FILTERS,
        QueryError,
        build_where,
        like,
        parse_filters,
        parse_sort,
        parse_timestamp,
    )

    whitelist = LIST_FILTERS["individual_appointments"]
    [f] = parse_filters(["starts_at:>=2024-05-01T00:00:00Z"], whitelist)
    assert (f.field, f.op, f.value) == ("starts_at", ">=", "2024-05-01T00:00:00Z")
    where = build_where("individual_appointments", [f])
    assert where.conditions[:3] == ("archived_at IS NULL", "cancelled_at IS NULL", "deleted_at IS NULL")
    lifted = build_where("individual_appointments", parse_filters(["cancelled_at:*", "archived_at:?"], whitelist))
    assert lifted.lifted == {"cancelled_at", "archived_at"} and "deleted_at IS NULL" in lifted.conditions
    assert "archived_at IS NOT NULL" in lifted.conditions
    assert build_where("users", []).conditions == ()  # nothing to hide on a resource without those columns
    with pytest.raises(QueryError, match="not allowed"):
        parse_filters(["patient_ids:~1"], whitelist)
    assert parse_sort(None, None, whitelist) == "created_at ASC, seq ASC"
    assert parse_sort("starts_at:desc,id", None, whitelist) == (
        "json_extract(body, '$.starts_at') DESC, CAST(id AS INTEGER) ASC, seq DESC"
    )
    assert parse_timestamp("2024-05-01T10:00:00+10:00") == datetime(2024, 5, 1, 0, tzinfo=UTC)
    assert parse_timestamp("2024-05-01") is None and parse_timestamp("2024-05-01T00:00:00") is None
    assert like("Jameson", "ja%on") and like("JAMESON", "j_meson") and not like("Jameson", "ja%x")
    assert like("50% off", "50%") and not like(None, "%")
