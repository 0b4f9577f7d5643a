"""The sandboxes' fault knobs as a client meets them over HTTP: rate-limit storms with and without the services'
own reset headers, answers cut short after the request was carried out, a key revoked half-way, and someone else
editing records while a client works. The fault scenarios (test_fault_scenarios.py) are built on these."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox
from cliniko2nutshell.sandbox.knobs import Knobs
from cliniko2nutshell.sandbox.nutshell_app import default_seed, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

UA = {"User-Agent": "knob tests (tests@example.com)", "Accept": "application/json"}


@pytest.fixture
def cliniko(small_clinic_db: Path, tmp_path: Path):
    db = tmp_path / "clinic.db"
    shutil.copyfile(small_clinic_db, db)
    sandbox = start_cliniko_sandbox(db, rate_limit=None)
    http = httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), headers=UA, timeout=10)
    try:
        yield sandbox, http
    finally:
        http.close()
        sandbox.stop()


@pytest.fixture
def nutshell():
    sandbox = start_nutshell_sandbox(default_seed())
    http = httpx.Client(base_url=sandbox.rest_url, auth=(sandbox.username, sandbox.api_key), timeout=10)
    try:
        yield sandbox, http
    finally:
        http.close()
        sandbox.stop()


def knobs(base_url: str, **values: object) -> dict:
    root = base_url.rsplit("/", 1)[0] if base_url.endswith(("/v1", "/rest")) else base_url
    answer = httpx.post(f"{root}/_sandbox/knobs", json=values, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_storms_answer_429_with_each_services_header_or_none(cliniko, nutshell) -> None:
    (cl, chttp), (ns, nhttp) = cliniko, nutshell
    # Three clear seconds between storms: the reset header is a whole epoch second (up to 1 s after the storm
    # really ends), and a loaded machine may add a second more before the request after it arrives.
    knobs(cl.base_url, storm_every=4.0, storm_length=1.0)
    limited = chttp.get("/patients")  # the first request opens the first storm
    reset = int(limited.headers["x-ratelimit-reset"])
    assert limited.status_code == 429 and time.time() < reset <= time.time() + 2  # when the storm is over
    assert "retry-after" not in limited.headers  # Cliniko documents X-RateLimit-Reset only
    time.sleep(max(0.0, reset - time.time()) + 0.05)
    assert chttp.get("/patients").status_code == 200
    deadline = time.monotonic() + 4.0  # the next storm comes within one period
    while (answer := chttp.get("/patients")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.status_code == 429
    knobs(ns.base_url, fail_next=["429", "429-bare"], retry_after=2)
    first, second = nhttp.get("/users"), nhttp.get("/users")
    assert first.status_code == second.status_code == 429
    assert first.headers["retry-after"] == "2" and "retry-after" not in second.headers
    assert nhttp.get("/users").status_code == 200
    with pytest.raises(ValueError):
        Knobs().update({"storm_fault": "teapot"})


def test_truncated_answer_follows_a_write_that_happened(nutshell) -> None:
    ns, http = nutshell
    knobs(ns.base_url, fail_next=["truncated"])
    answer = http.post("/contacts", json={"contacts": [{"name": "Cut Short"}]})
    assert answer.status_code in (200, 201)
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer.content)
    names = [c["name"] for c in httpx.get(ns.state_url, timeout=10).json()["live"]["contacts"]]
    assert names.count("Cut Short") == 1  # carried out once; only its answer was lost


def test_key_revoked_half_way_then_restored(cliniko, nutshell) -> None:
    (cl, chttp), (ns, nhttp) = cliniko, nutshell
    state = knobs(ns.base_url, revoke_after=3, requests=0)
    assert state["revoked"] is False
    assert [nhttp.get("/users").status_code for _ in range(4)] == [200, 200, 401, 401]
    assert knobs(ns.base_url)["revoked"] is True
    knobs(ns.base_url, revoked=False)
    assert nhttp.get("/users").status_code == 200
    knobs(cl.base_url, revoked=True)
    refused = chttp.get("/patients")
    assert refused.status_code == 401 and refused.text.startswith("HTTP Basic: Access denied")


def test_someone_else_edits_while_a_client_works(cliniko, nutshell) -> None:
    (cl, chttp), (ns, nhttp) = cliniko, nutshell
    knobs(cl.base_url, edit_every=2, seed=4)
    for _ in range(4):
        assert chttp.get("/patients").status_code == 200
    edited = knobs(cl.base_url)["edited"]
    assert len(edited) == 2
    patient = chttp.get(f"/patients/{edited[-1]}").json()
    assert patient["occupation"].startswith("Edited at the front desk")
    # Nutshell: only people the API user created are edited, by another user, bumping the rev
    assert knobs(ns.base_url, edit_every=3)["edited"] == []
    made = nhttp.post("/contacts", json={"contacts": [{"name": "Ours", "description": "Migrated"}]})
    pid = made.json()["contacts"][0]["id"]
    nhttp.get("/users")
    assert knobs(ns.base_url)["edited"] == []
    nhttp.get("/users")  # request 3: the edit comes first
    assert knobs(ns.base_url)["edited"] == [pid]
    after = nhttp.get(f"/contacts/{pid}").json()["contacts"][0]
    assert after["description"] == "Migrated\nFront desk: address confirmed by phone."
    events = [e for e in ns.state.events if e["kind"] == "contacts" and e["entity"] == int(pid.split("-")[0])]
    assert [e["action"] for e in events] == ["create", "update"] and events[0]["actor"] != events[1]["actor"]
