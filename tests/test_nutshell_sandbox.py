"""The Nutshell sandbox over real HTTP: REST and JSON-RPC over one state, files, auth, knobs, the state dump."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.nutshell import nutshell_seed_from_clinic

from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.knobs import Knobs
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, default_seed, start_nutshell_sandbox
from cliniko2nutshell.sandbox.nutshell_state import NutshellState

PATCH_TYPE = {"content-type": "application/json-patch+json"}


class Api:
    """Thin helpers over httpx for one sandbox."""

    def __init__(self, sandbox: NutshellSandbox, auth: tuple[str, str] | None = None) -> None:
        self.sb = sandbox
        self.http = httpx.Client(auth=auth or (sandbox.username, sandbox.api_key), timeout=10)

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.sb.rest_url + path, **kwargs)

    def patch(self, path: str, ops: list[dict[str, Any]]) -> httpx.Response:
        return self.rest("PATCH", path, content=json.dumps(ops), headers=PATCH_TYPE)

    def rpc(self, method: str, **params: Any) -> httpx.Response:
        return self.http.post(self.sb.rpc_url, json={"jsonrpc": "2.0", "id": "t-1", "method": method, "params": params})

    def result(self, method: str, **params: Any) -> Any:
        response = self.rpc(method, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == "t-1" and body["error"] is None and body["jsonrpc"] == "2.0"
        return body["result"]

    def create_contact(self, **fields: Any) -> dict[str, Any]:
        response = self.rest("POST", "/contacts", json={"contacts": [fields]})
        assert response.status_code == 200, response.text
        return response.json()["contacts"][0]

    def dump(self) -> dict[str, Any]:
        return httpx.get(self.sb.state_url, timeout=10).json()


@pytest.fixture
def api(nutshell_sandbox: NutshellSandbox) -> Iterator[Api]:
    client = Api(nutshell_sandbox)
    yield client
    client.http.close()


def number(rest_id: str) -> int:
    return int(rest_id.split("-")[0])


def errors(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert len(body["errors"]) == 1
    return body["errors"][0]


# --- REST: contacts and accounts ---------------------------------------------------------------------------------


def test_rest_contact_create_get_patch_delete_undelete(api: Api) -> None:
    created = api.create_contact(
        name="Jane Citizen",
        emails=[{"isPrimary": True, "name": "work", "value": "Jane@Example.org"}],
        phones=[{"name": "mobile", "value": "+61 412 000 111"}],
        addresses=[{"isPrimary": True, "name": "home", "address_1": "1 Main St", "city": "Hobart", "country": "AU"}],
        customFields={"Cliniko Patient ID": "12345", "Date of Birth": "1980-02-03T00:00:00Z"},
    )
    cid = created["id"]
    assert cid.endswith("-contacts") and created["firstName"] == "Jane" and created["lastName"] == "Citizen"
    assert created["phones"][0]["value"]["E164"] == "+61412000111"
    assert created["addresses"][0]["value"]["city"] == "Hobart"

    got = api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]
    assert got == created
    values = api.rest("GET", f"/contacts/{cid}/customfields").json()["customFields"]
    assert {v["name"]: v["value"] for v in values} == {"Cliniko Patient ID": "12345", "Date of Birth": "1980-02-03"}
    assert [c["id"] for c in api.rest("GET", "/contacts", params={"email": "jane@example.org"}).json()["contacts"]] == [
        cid
    ]

    ops = [
        {"op": "replace", "path": "/contacts/0/name", "value": "Jane Q Citizen"},
        {"op": "add", "path": "/contacts/0/emails/-", "value": {"name": "home", "value": "jq@example.net"}},
        {"op": "replace", "path": "/contacts/0/Cliniko Patient ID", "value": "999"},
        {"op": "remove", "path": "/contacts/0/customFields/Date of Birth"},
    ]
    response = api.patch(f"/contacts/{cid}", ops)
    assert response.status_code == 204 and response.content == b""
    got = api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]
    assert got["name"] == "Jane Q Citizen" and got["lastName"] == "Citizen"
    assert [e["value"] for e in got["emails"]] == ["Jane@Example.org", "jq@example.net"]
    assert api.result("getContact", contactId=number(cid))["customFields"] == {"Cliniko Patient ID": "999"}

    assert api.rest("DELETE", f"/contacts/{cid}").status_code == 204
    trashed = api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]
    assert isinstance(trashed["deletedTime"], int)
    assert cid not in [c["id"] for c in api.rest("GET", "/contacts").json()["contacts"]]
    assert api.rest("DELETE", f"/contacts/{cid}").status_code == 404
    assert api.patch(f"/contacts/{cid}", ops[:1]).status_code == 404

    restored = api.rest("POST", f"/contacts/{cid}/undelete")
    assert restored.status_code == 200 and restored.json()["contacts"][0]["deletedTime"] is None
    assert cid in [c["id"] for c in api.rest("GET", "/contacts").json()["contacts"]]
    assert api.rest("POST", f"/contacts/{cid}/undelete").status_code == 400


def test_rest_create_takes_one_element_and_a_name_phone_or_email(api: Api) -> None:
    two = api.rest("POST", "/contacts", json={"contacts": [{"name": "A"}, {"name": "B"}]})
    assert two.status_code == 400
    assert errors(two)["title"] == "You may only create one contacts resource per request."
    empty = api.rest("POST", "/accounts", json={"accounts": [{"description": "no name"}]})
    assert empty.status_code == 400 and "at least one of" in errors(empty)["detail"]
    bad_email = api.rest("POST", "/contacts", json={"contacts": [{"name": "X", "emails": [{"value": "jo@@x"}]}]})
    assert bad_email.status_code == 400 and "not a valid email" in errors(bad_email)["detail"]
    unknown = api.rest("POST", "/contacts", json={"contacts": [{"name": "X", "nickname": "Y"}]})
    assert unknown.status_code == 400 and "nickname" in errors(unknown)["detail"]


def test_rest_patch_media_type_and_atomicity(api: Api) -> None:
    cid = api.create_contact(name="Atom Ic")["id"]
    ops = [{"op": "replace", "path": "/contacts/0/name", "value": "Changed"}]
    wrong = api.rest("PATCH", f"/contacts/{cid}", json=ops)
    assert wrong.status_code == 415 and "application/json-patch+json" in errors(wrong)["detail"]
    half_bad = [*ops, {"op": "replace", "path": "/contacts/0/Favourite Colour", "value": "blue"}]
    response = api.patch(f"/contacts/{cid}", half_bad)
    assert response.status_code == 400 and errors(response)["detail"] == "Favourite Colour is not a custom field"
    assert api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]["name"] == "Atom Ic"
    assert api.patch(f"/contacts/{cid}", [{"op": "move", "path": "/contacts/0/name"}]).status_code == 400
    assert api.patch(f"/contacts/{cid}", []).status_code == 400


def test_rest_accounts_and_links_to_contacts(api: Api) -> None:
    response = api.rest("POST", "/accounts", json={"accounts": [{"name": "Bupa", "urls": [{"value": "bupa.example"}]}]})
    assert response.status_code == 201
    aid = response.json()["accounts"][0]["id"]
    cid = api.create_contact(name="Linked Person", links={"accounts": [aid]})["id"]
    account = api.rest("GET", f"/accounts/{aid}").json()
    assert account["accounts"][0]["links"]["contacts"] == [cid]
    assert [c["id"] for c in account["contacts"]] == [cid] and account["creators"][0]["id"] == "1-users"

    other = api.create_contact(name="Second Person")["id"]
    assert (
        api.patch(
            f"/accounts/{aid}", [{"op": "add", "path": "/accounts/0/links/contacts/-", "value": other}]
        ).status_code
        == 204
    )
    assert api.rest("GET", f"/accounts/{aid}").json()["accounts"][0]["links"]["contacts"] == [cid, other]
    assert api.rest("GET", f"/contacts/{other}").json()["contacts"][0]["links"]["accounts"] == [aid]
    removed = api.patch(f"/contacts/{cid}", [{"op": "remove", "path": f"/contacts/0/links/accounts/{aid}"}])
    assert removed.status_code == 204
    assert api.rest("GET", f"/accounts/{aid}").json()["accounts"][0]["links"]["contacts"] == [other]

    deleted = api.rest("DELETE", f"/accounts/{aid}")
    assert deleted.status_code == 200 and deleted.json()["accounts"][0]["deletedTime"] is not None
    assert api.rest("GET", f"/contacts/{other}").json()["contacts"][0]["links"]["accounts"] == []
    assert api.rest("POST", f"/accounts/{aid}/undelete").status_code == 200
    assert api.rest("GET", f"/contacts/{other}").json()["contacts"][0]["links"]["accounts"] == [aid]
    both = api.rest("GET", f"/contacts/{cid},{other}").json()["contacts"]
    assert [c["id"] for c in both] == [cid, other]
    assert api.rest("GET", "/contacts/999999-contacts").status_code == 404
    assert api.rest("GET", f"/accounts/{cid}").status_code == 404


def test_rest_list_filters_paging_and_sort(api: Api) -> None:
    for i in range(5):
        api.create_contact(name=f"Paged {i}", emails=[{"value": f"paged{i}@example.com"}])
    page = api.rest("GET", "/contacts", params={"q": "paged", "page[limit]": 2, "page[page]": 1}).json()
    assert [c["name"] for c in page["contacts"]] == ["Paged 2", "Paged 3"]
    assert page["meta"]["total"] == 5 and page["meta"]["count"] == 2
    by_filter = api.rest("GET", "/contacts", params={"filter[email]": "PAGED4@example.com"}).json()["contacts"]
    assert [c["name"] for c in by_filter] == ["Paged 4"]
    newest = api.rest("GET", "/contacts", params={"sort": "-name", "page[limit]": 1}).json()["contacts"]
    assert newest[0]["name"] == "Sam Chen"
    negative = api.rest("GET", "/contacts", params={"page[page]": -1})
    assert negative.status_code == 400
    assert errors(negative)["title"] == "Invalid filter" and errors(negative)["detail"] == "Invalid page number: -1"
    assert api.rest("GET", "/contacts", params={"filter[shoeSize]": "9"}).status_code == 400


# --- custom fields ----------------------------------------------------------------------------------------------


def test_custom_field_definitions_and_value_validation(api: Api) -> None:
    for body in (
        {"name": "Balance Due", "type": "Currency"},
        {"name": "Visits", "type": "Number"},
        {"name": "Primary Service", "type": "Decision", "choices": ["Physio", "Massage"]},
        {"name": "Clinical Notes", "type": "LongText"},
    ):
        response = api.rest("POST", "/contacts/customfield", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["customFields"][0]["type"] == body["type"]
    names = [f["name"] for f in api.rest("GET", "/contacts/customfields/attributes").json()["customFields"]]
    assert names[-4:] == ["Balance Due", "Visits", "Primary Service", "Clinical Notes"]
    assert api.rest("GET", "/accounts/customfields/attributes").json()["customFields"] == []

    duplicate = api.rest("POST", "/contacts/customfield", json={"name": "visits", "type": "Text"})
    assert duplicate.status_code == 400 and "already exists" in errors(duplicate)["detail"]
    for bad in ({"name": "X", "type": "Float"}, {"name": "Y", "type": "Email"}, {"name": "Z", "type": "Decision"}):
        assert api.rest("POST", "/contacts/customfield", json=bad).status_code == 400

    cid = api.create_contact(
        name="Valued", customFields={"Balance Due": "12.5", "Visits": "7", "Primary Service": "physio"}
    )["id"]
    assert api.result("getContact", contactId=number(cid))["customFields"] == {
        "Balance Due": {"currency": "USD", "amount": "12.50"},
        "Primary Service": "Physio",
        "Visits": 7,
    }
    for field, value in (("Visits", "many"), ("Primary Service", "Yoga"), ("Date of Birth", "31/12/1990")):
        response = api.rest("POST", "/contacts", json={"contacts": [{"name": "Bad", "customFields": {field: value}}]})
        assert response.status_code == 400 and field in errors(response)["detail"], response.text
    unknown = api.rest("POST", "/contacts", json={"contacts": [{"name": "Bad", "customFields": {"Nope": "1"}}]})
    assert errors(unknown)["detail"] == "Nope is not a custom field"


def test_custom_field_cap_refuses_definitions_beyond_it() -> None:
    seed = default_seed()
    existing = sum(len(v) for v in seed["custom_fields"].values())
    sandbox = start_nutshell_sandbox(seed, custom_field_cap=existing + 1)
    client = Api(sandbox)
    try:
        first = client.rest("POST", "/accounts/customfield", json={"name": "Insurer Code", "type": "Text"})
        assert first.status_code == 200
        second = client.rest("POST", "/contacts/customfield", json={"name": "One Too Many", "type": "Text"})
        assert second.status_code == 400
        error = errors(second)
        assert error["title"] == "Custom field limit reached" and f"allows {existing + 1}" in error["detail"]
        names = [f["name"] for f in client.rest("GET", "/contacts/customfields/attributes").json()["customFields"]]
        assert "One Too Many" not in names
        assert client.dump()["schema"]["custom_field_cap"] == existing + 1
    finally:
        client.http.close()
        sandbox.stop()


# --- activities, notes, tags, users, events ---------------------------------------------------------------------


def test_rest_activities_create_get_put_and_read_back_over_rpc(api: Api) -> None:
    cid = api.create_contact(name="Patient Activity")["id"]
    types = api.rest("GET", "/activitytypes").json()["activityTypes"]
    assert (types[0]["id"], types[0]["name"]) == ("1-activityTypes", "Phone Call / Meeting")
    body = {
        "activities": [
            {
                "name": "Initial consult",
                "description": "Knee",
                "location": "Hobart clinic",
                "activityType": types[2]["id"],
                "startTime": 1700000000,
                "endTime": 1700003600,
                "isLogged": True,
                "note": "Went well",
                "links": {"participants": [cid, "2-users"]},
            }
        ]
    }
    response = api.rest("POST", "/activities", json=body)
    assert response.status_code == 201, response.text
    act = response.json()["activities"][0]
    assert act["isLogged"] and act["links"]["contacts"] == [cid] and act["links"]["users"] == ["2-users"]
    assert act["agenda"] == "Knee" and act["links"]["activityType"] == types[2]["id"] and act["loggedTime"]
    (log_note,) = api.rest("GET", "/notes", params={"filter[parent]": act["id"]}).json()["notes"]
    assert log_note["body"] == "Went well" and "logNote" not in act["links"]

    put = api.rest("PUT", f"/activities/{act['id']}", json={"activities": [{"name": "Renamed", "isCancelled": True}]})
    assert put.status_code == 200
    updated = put.json()["activities"][0]
    assert updated["name"] == "Renamed" and updated["isCancelled"] and not updated["isLogged"]
    assert updated["startTime"] == 1700000000

    via_rpc = api.result("getActivity", activityId=number(act["id"]))
    assert via_rpc["status"] == 2 and via_rpc["startTime"] == "2023-11-14T22:13:20+0000"
    assert {(p["entityType"], p["id"]) for p in via_rpc["participants"]} == {("Contacts", number(cid)), ("Users", 2)}
    assert isinstance(via_rpc["participants"][0]["name"], str)
    listed = api.rest("GET", "/activities", params={"filter[participant][]": cid, "filter[status][]": "cancelled"})
    assert [a["id"] for a in listed.json()["activities"]] == [act["id"]]
    assert api.rest("DELETE", f"/activities/{act['id']}").status_code == 405
    no_type = api.rest(
        "POST", "/activities", json={"activities": [{"name": "x", "startTime": 1, "activityType": "99-activityTypes"}]}
    )
    assert no_type.status_code == 400


def test_rest_notes_on_a_contact(api: Api) -> None:
    cid = api.create_contact(name="Noted")["id"]
    rev_before = api.result("getContact", contactId=number(cid))["rev"]
    response = api.rest(
        "POST", "/notes", json={"data": {"body": "Allergic to <latex>\nsee file", "links": {"parent": cid}}}
    )
    assert response.status_code == 201
    note = response.json()["notes"][0]
    assert note["parentType"] == "contacts" and note["links"]["parent"] == cid
    assert note["bodyHtml"] == "Allergic to &lt;latex&gt;<br>see file"
    assert [n["id"] for n in api.rest("GET", "/notes", params={"filter[parent]": cid}).json()["notes"]] == [note["id"]]
    full = api.result("getContact", contactId=number(cid))
    assert full["rev"] != rev_before and [n["note"] for n in full["notes"]] == ["Allergic to <latex>\nsee file"]

    deleted = api.rest("DELETE", f"/notes/{note['id']}")
    assert deleted.status_code == 200 and deleted.json()["notes"][0]["deletedTime"] is not None
    assert api.rest("GET", "/notes", params={"filter[parent]": cid}).json()["notes"] == []
    assert api.rest("POST", f"/notes/{note['id']}/undelete").status_code == 200
    assert api.rest("POST", "/notes", json={"data": {"body": "x", "links": {"parent": "1-users"}}}).status_code == 400


def test_rest_tags_users_and_unknown_paths(api: Api) -> None:
    cid = api.create_contact(name="Tagged")["id"]
    response = api.rest(
        "POST", "/tags", json={"tags": [{"name": "Migrated", "tagType": "2", "links": {"entities": [cid]}}]}
    )
    assert response.status_code == 200
    tag = response.json()["tags"][0]
    assert tag["tagType"] == "contacts" and tag["count"] == 1
    assert api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]["links"]["tags"] == [tag["id"]]
    assert api.result("getContact", contactId=number(cid))["tags"] == ["Migrated"]
    assert api.rest("POST", "/tags", json={"tags": [{"name": "migrated", "tagType": "2"}]}).status_code == 400
    assert api.rest("DELETE", f"/tags/{tag['id']}").status_code == 200
    assert api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]["links"]["tags"] == []
    assert api.rest("POST", f"/tags/{tag['id']}/undelete").status_code == 200

    users = api.rest("GET", "/users").json()
    assert users["meta"]["total"] == 4 and users["users"][3]["isEnabled"] is False
    assert api.rest("GET", "/users/2-users").json()["users"][0]["emails"] == ["priya.nair@harbourphysio.example"]
    missing = api.rest("GET", "/leads")
    assert missing.status_code == 404 and errors(missing)["status"] == "404"


def test_events_feed_change_detection(api: Api) -> None:
    first = api.rest("GET", "/events").json()
    assert first["events"] == []
    cursor = first["meta"]["next"]
    cid = api.create_contact(name="Evented")["id"]
    api.patch(f"/contacts/{cid}", [{"op": "replace", "path": "/contacts/0/description", "value": "d"}])
    api.rest("POST", "/notes", json={"data": {"body": "n", "links": {"parent": cid}}})
    api.rest("DELETE", f"/contacts/{cid}")
    page = api.http.get(cursor).json()
    assert [(e["action"], e["payloadType"]) for e in page["events"]] == [
        ("delete", "contacts"),
        ("create", "notes"),
        ("update", "contacts"),
        ("create", "contacts"),
    ]
    assert page["events"][0]["links"]["payloads"] == [cid] and page["events"][0]["links"]["actor"] == "1-users"
    assert api.http.get(page["meta"]["next"]).json()["events"] == []
    only_notes = api.rest("GET", "/events", params={"filters[payload][]": "notes"}).json()["events"]
    assert [e["payloadType"] for e in only_notes] == ["notes"]
    two = api.rest("GET", "/events", params={"limit": 2, "since_id": "0-events"}).json()
    assert [e["action"] for e in two["events"]] == ["update", "create"]
    rest = api.http.get(two["meta"]["next"]).json()["events"]
    assert [e["action"] for e in rest] == ["delete", "create"]
    newest = api.rest("GET", "/events", params={"limit": 1}).json()
    assert newest["events"][0]["action"] == "delete" and "previous" in newest["meta"]


# --- JSON-RPC ---------------------------------------------------------------------------------------------------


def test_rpc_get_edit_with_rev(api: Api) -> None:
    cid = number(api.create_contact(name="Rev Person", emails=[{"value": "rev@example.com"}])["id"])
    full = api.result("getContact", contactId=cid)
    assert full["name"]["displayName"] == "Rev Person" and full["email"] == {
        "0": "rev@example.com",
        "--primary": "rev@example.com",
    }
    old = full["rev"]
    edited = api.result(
        "editContact",
        contactId=cid,
        rev=old,
        contact={"email": {"0": "a@example.com", "work": "b@example.com", "--primary": "b@example.com"}},
    )
    assert edited["rev"] != old
    assert edited["email"] == {"0": "a@example.com", "work": "b@example.com", "--primary": "b@example.com"}

    stale = api.rpc("editContact", contactId=cid, rev=old, contact={"description": "late"})
    assert stale.status_code == 409
    assert stale.json() == {
        "error": {"code": 409, "message": "rev key is out-of-date", "data": None},
        "id": "t-1",
        "jsonrpc": "2.0",
    }
    assert api.result("getContact", contactId=cid)["description"] is None
    forced = api.result("editContact", contactId=cid, rev="REV_IGNORE", contact={"description": "forced", "note": "hi"})
    assert forced["description"] == "forced" and [n["note"] for n in forced["notes"]] == ["hi"]
    assert api.rpc("deleteContact", contactId=cid, rev=old).status_code == 409
    assert api.result("deleteContact", contactId=cid, rev=api.result("getContact", contactId=cid)["rev"]) is True
    assert "deletedTime" in api.result("getContact", contactId=cid)
    assert api.rpc("getContact", contactId=424242).status_code == 404
    assert api.rpc("editContact", contactId=cid, contact={}).status_code == 400  # rev is mandatory


def test_rpc_envelope_unknown_method_smd_and_positional_params(api: Api) -> None:
    unknown = api.rpc("getTask", taskId=1)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"code": -32601, "message": "Method not found", "data": None}
    smd = httpx.get(api.sb.rpc_url, timeout=10)
    assert smd.status_code == 200 and "editActivity" in smd.json()["services"]
    # No `jsonrpc` member, a numeric id, a form content type, positional params: all tolerated.
    raw = api.http.post(
        api.sb.rpc_url,
        content=json.dumps({"method": "getUser", "params": [2], "id": 7}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 200 and raw.json()["id"] == 7 and raw.json()["result"]["firstName"] == "Priya"
    assert raw.json()["error"] is None
    assert api.result("getUser")["emails"] == ["admin@harbourphysio.example"]
    assert api.http.post(api.sb.rpc_url, content=b"{nope").json()["error"]["code"] == -32700
    assert api.http.post(api.sb.rpc_url, json=[{"method": "getUser"}]).json()["error"]["code"] == -32600
    assert api.rpc("getContact").json()["error"]["code"] == -32602
    times = api.result("getUpdateTimes")
    assert times["Users"] == "2025-01-01T00:00:00+0000"


def test_rpc_find_search_and_custom_fields(api: Api) -> None:
    stubs = api.result("findContacts", query={}, orderBy="name", limit=2, page=1)
    assert [s["name"] for s in stubs] == ["Jo Bloggs", "Maria Lopez"] and all(s["stub"] for s in stubs)
    full = api.result("findContacts", query={}, stubResponses=False, limit=1, page=2)
    assert full[0]["name"]["displayName"] == "Maria Lopez" and "stub" not in full[0]
    found = api.result("searchByEmail", emailAddressString="SAM@work.example")
    assert [c["name"] for c in found["contacts"]] == ["Sam Chen"] and found["accounts"] == []
    fields = api.result("findCustomFields")
    assert set(fields) == {"Leads", "Contacts", "Accounts"}
    assert [(f["name"], f["type"]) for f in fields["Contacts"]][:2] == [
        ("Cliniko Patient ID", "Text"),
        ("Date of Birth", "Date"),
    ]
    users = api.result("findUsers")
    assert [u["name"] for u in users] == ["Alex Admin", "Priya Nair", "Tom Okafor", "Former Staff"]
    types = api.result("findActivityTypes")
    assert types[0]["entityType"] == "Activity_Types" and types[0]["stub"] is True
    account = api.result("getAccount", accountId=1)
    assert account["name"] == "Medibank" and account["email"] == []
    note = api.result("newNote", entity={"entityType": "Accounts", "id": 1}, note="Preferred insurer")
    assert note["entity"]["id"] == 1 and api.result("getAccount", accountId=1)["rev"] != account["rev"]
    assert api.result("deleteNote", noteId=note["id"], rev=note["rev"]) is True
    bad_tag = api.rpc("editContact", contactId=3, rev="REV_IGNORE", contact={"tags": ["Nope"]})
    assert bad_tag.status_code == 400 and "does not exist" in bad_tag.json()["error"]["message"]
    bad_field = api.rpc("editContact", contactId=3, rev="REV_IGNORE", contact={"customFields": {"Nope": 1}})
    assert bad_field.json()["error"]["message"] == "Nope is not a custom field"


def test_rpc_activities_and_file_upload_download(api: Api) -> None:
    cid = number(api.create_contact(name="File Owner")["id"])
    act = api.result(
        "newActivity",
        activity={
            "name": "Treatment note 2024-03-01",
            "activityTypeId": 1,
            "participants": [{"entityType": "Contacts", "id": cid}, {"entityType": "Users", "id": 1}],
            "startTime": "2024-03-01T09:00:00+00:00",
            "endTime": "2024-03-01T09:30:00+0000",
            "status": 1,
        },
    )
    assert act["status"] == 1 and act["loggedBy"]["id"] == 1 and "logNote" not in act
    reserved = api.result(
        "editActivity",
        activityId=act["id"],
        rev=act["rev"],
        activity={"logNote": {"files": [{"entityType": "Files", "name": "scan.pdf"}]}},
    )
    (entry,) = reserved["logNote"]["files"]
    assert entry["size"] == 0 and entry["uri"] == f"{api.sb.base_url}/file/api/{entry['id']}"
    assert reserved["rev"] != act["rev"]

    content = b"%PDF-1.4\n" + os.urandom(300_000) + b"\r\n--not-a-boundary\r\n"
    upload = api.http.post(entry["uri"], files={"file": ("scan.pdf", content, "application/pdf")})
    assert upload.status_code == 200, upload.text
    assert upload.json()["size"] == len(content) and upload.json()["mime"] == "application/pdf"
    after = api.result("getActivity", activityId=act["id"])
    assert after["logNote"]["files"][0]["size"] == len(content) and after["rev"] != reserved["rev"]

    whole = api.http.get(entry["uri"])
    assert whole.status_code == 200 and whole.content == content and whole.headers["accept-ranges"] == "bytes"
    head = api.http.get(entry["uri"], headers={"range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == content[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{len(content)}"
    tail = api.http.get(entry["uri"], headers={"range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == content[-50:]
    middle = api.http.get(entry["uri"], headers={"range": f"bytes=1000-{len(content) + 10}"})
    assert middle.content == content[1000:]
    assert api.http.get(entry["uri"], headers={"range": f"bytes={len(content)}-"}).status_code == 416
    assert httpx.get(entry["uri"], timeout=10).status_code == 401

    # Keeping the existing file and adding one: the list replaces the set, so omitting a file would drop it.
    second = api.result(
        "editActivity",
        activityId=act["id"],
        rev="REV_IGNORE",
        activity={
            "logNote": {"files": [{"entityType": "Files", "id": entry["id"]}, {"entityType": "Files", "name": "b.txt"}]}
        },
    )
    assert [f["name"] for f in second["logNote"]["files"]] == ["scan.pdf", "b.txt"]
    listed = api.result("findActivities", query={"contactId": [cid]})
    assert [a["id"] for a in listed] == [act["id"]] and listed[0]["stub"] is True
    assert api.result("deleteActivity", activityId=act["id"], rev=second["rev"]) is True
    assert api.http.get(entry["uri"]).status_code == 404
    assert api.result("findActivities", query={"contactId": cid}) == []


def test_files_only_on_logged_activities_and_size_limit() -> None:
    sandbox = start_nutshell_sandbox(default_seed(), file_size_limit=1000)
    client = Api(sandbox)
    try:
        act = client.result("newActivity", activity={"name": "Scheduled", "startTime": 1900000000})
        refused = client.rpc(
            "editActivity", activityId=act["id"], rev=act["rev"], activity={"logNote": {"files": [{"name": "x.pdf"}]}}
        )
        assert refused.status_code == 400 and "logged activity" in refused.json()["error"]["message"]
        logged = client.result(
            "editActivity",
            activityId=act["id"],
            rev=act["rev"],
            activity={"status": 1, "logNote": {"note": "done", "files": [{"name": "big.bin"}]}},
        )
        uri = logged["logNote"]["files"][0]["uri"]
        too_big = client.http.post(uri, files={"file": ("big.bin", b"x" * 2000)})
        assert too_big.status_code == 413
        assert "over the 0.0 MB limit" in too_big.json()["error"]["message"]
        assert client.result("getActivity", activityId=act["id"])["logNote"]["files"][0]["size"] == 0
        huge = client.http.post(uri, files={"file": ("big.bin", b"y" * 200_000)})
        assert huge.status_code == 413
        fits = client.http.post(uri, files={"file": ("big.bin", b"z" * 1000)})
        assert fits.status_code == 200 and fits.json()["size"] == 1000
        assert client.http.post(uri, content=b"raw", headers={"content-type": "text/plain"}).status_code == 400
    finally:
        client.http.close()
        sandbox.stop()


# --- auth, discovery, knobs -------------------------------------------------------------------------------------


def test_auth_failures_and_accepted_usernames(nutshell_sandbox: NutshellSandbox) -> None:
    sb = nutshell_sandbox
    wrong = httpx.get(f"{sb.rest_url}/users", auth=(sb.username, "wrong-key"), timeout=10)
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["detail"] == "API key not found"
    rpc = httpx.post(sb.rpc_url, json={"id": 1, "method": "getUser"}, auth=(sb.username, "wrong"), timeout=10)
    assert rpc.status_code == 401
    assert rpc.json() == {
        "error": {"code": 401, "message": "API key not found", "data": None},
        "id": 1,
        "jsonrpc": "2.0",
    }
    assert httpx.post(sb.rpc_url, json={"id": 1, "method": "getUser"}, timeout=10).status_code == 401
    for username, expected in (
        ("HarbourPhysio.example", 200),  # the company domain acts as the API user
        ("priya.nair@harbourphysio.example", 200),  # a company user
        ("former@harbourphysio.example", 401),  # a disabled user
        ("stranger@example.com", 401),
    ):
        response = httpx.get(f"{sb.rest_url}/users", auth=(username, sb.api_key), timeout=10)
        assert response.status_code == expected, username
    as_priya = httpx.post(
        sb.rpc_url,
        json={"id": 1, "method": "getUser"},
        auth=("priya.nair@harbourphysio.example", sb.api_key),
        timeout=10,
    )
    assert as_priya.json()["result"]["id"] == 2


def test_discovery_returns_the_sandbox_host(nutshell_sandbox: NutshellSandbox) -> None:
    sb = nutshell_sandbox
    response = httpx.post(
        sb.discovery_url,
        json={"method": "getApiForUsername", "params": {"username": sb.username}, "id": "d1"},
        timeout=10,
    )
    assert response.status_code == 200
    result = response.json()["result"]
    host = sb.base_url.removeprefix("http://")
    assert result == {"api": host, "login": host, "iphone": host} and response.json()["id"] == "d1"
    rpc_url = f"http://{result['api']}/api/v1/json"
    assert rpc_url == sb.rpc_url
    disabled = httpx.post(
        sb.discovery_url,
        json={"method": "getApiForUsername", "params": {"username": "former@harbourphysio.example"}, "id": 2},
        timeout=10,
    )
    assert "error" in disabled.json()


def test_rate_limit_knob_is_off_by_default_and_answers_429() -> None:
    knobs = Knobs()
    sandbox = start_nutshell_sandbox(default_seed(), knobs=knobs)
    client = Api(sandbox)
    try:
        assert all(client.rest("GET", "/users").status_code == 200 for _ in range(5))
        httpx.post(f"{sandbox.base_url}/_sandbox/knobs", json={"rate_limit": 2}, timeout=10)
        codes = [client.rest("GET", "/users").status_code for _ in range(2)]
        limited = client.rest("GET", "/users")
        assert codes == [200, 200] and limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60 and errors(limited)["status"] == "429"
        rpc = client.rpc("getUser")
        assert rpc.status_code == 429 and rpc.json()["error"]["code"] == 429
        httpx.post(f"{sandbox.base_url}/_sandbox/knobs", json={"rate_limit": None, "fail_next": ["503"]}, timeout=10)
        assert client.rest("GET", "/users").status_code == 503
        assert client.rest("GET", "/users").status_code == 200
    finally:
        client.http.close()
        sandbox.stop()


# --- the state dump ---------------------------------------------------------------------------------------------


def test_state_dump_equal_after_deleting_everything_created(api: Api) -> None:
    before = api.dump()
    assert [c["name"] for c in before["live"]["contacts"]] == ["Maria Lopez", "Sam Chen", "Jo Bloggs"]
    assert before["trash"]["contacts"] == []

    aid = api.rest("POST", "/accounts", json={"accounts": [{"name": "New Co"}]}).json()["accounts"][0]["id"]
    cid = api.create_contact(
        name="Temp", links={"accounts": [aid, "1-accounts"]}, customFields={"Cliniko Patient ID": "9"}
    )["id"]
    note = api.rest("POST", "/notes", json={"data": {"body": "temp", "links": {"parent": cid}}}).json()["notes"][0]
    act = api.result(
        "newActivity",
        activity={
            "name": "Temp",
            "startTime": 1700000000,
            "status": 1,
            "participants": [{"entityType": "Contacts", "id": number(cid)}],
            "logNote": {"files": [{"name": "a.txt"}]},
        },
    )
    uri = act["logNote"]["files"][0]["uri"]
    assert api.http.post(uri, files={"file": ("a.txt", b"hello")}).status_code == 200
    during = api.dump()
    assert during["live"]["files"][0]["sha256"] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert "hello" not in json.dumps(during)
    assert during["live"] != before["live"]

    api.result("deleteActivity", activityId=act["id"], rev="REV_IGNORE")
    api.rest("DELETE", f"/notes/{note['id']}")
    api.rest("DELETE", f"/contacts/{cid}")
    api.rest("DELETE", f"/accounts/{aid}")
    after = api.dump()
    assert after["live"] == before["live"]
    assert after["schema"] == before["schema"]
    assert {k: [e["id"] for e in v] for k, v in after["trash"].items()} == {
        "contacts": [number(cid)],
        "accounts": [number(aid)],
        "activities": [act["id"]],
        "notes": sorted([number(note["id"]), act["logNote"]["id"]]),
        "tags": [],
        "files": [act["logNote"]["files"][0]["id"]],
        "leads": [],
    }
    # The pre-existing account was linked and unlinked: its content is back, its rev moved on.
    assert after["bookkeeping"]["revs"]["1-accounts"]["rev"] != before["bookkeeping"]["revs"]["1-accounts"]["rev"]
    assert after["bookkeeping"]["events"] > before["bookkeeping"]["events"]


def test_state_dump_is_deterministic_for_a_seed() -> None:
    clock = [1_800_000_000.0]
    first = NutshellState(default_seed(), clock=lambda: clock[0]).dump()
    second = NutshellState(default_seed(), clock=lambda: clock[0]).dump()
    assert json.dumps(first) == json.dumps(second)


# --- seeds ------------------------------------------------------------------------------------------------------


def test_bad_seeds_fail_loudly() -> None:
    seed = default_seed()
    del seed["api_user"]
    with pytest.raises(ValueError, match="api_user"):
        NutshellState(seed)
    seed = default_seed()
    seed["custom_fields"]["Contacts"].append({"name": "Bad", "type": "Colour"})
    with pytest.raises(ValueError, match="Invalid custom field type"):
        NutshellState(seed)
    seed = default_seed()
    seed["api_user"] = {"email": "robot@harbourphysio.example", "api_key": "k" * 40}
    state = NutshellState(seed)
    assert state.user_by_login("robot@harbourphysio.example") is not None  # the API user is added when missing


def test_seed_from_a_clinic_db(tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    conn = cliniko_db.connect(db)
    seed = default_seed()
    conn.execute("INSERT INTO meta (key, value) VALUES ('nutshell_seed', ?)", (json.dumps(seed),))
    conn.close()
    assert nutshell_seed_from_clinic(db) == seed
    empty = tmp_path / "empty.db"
    cliniko_db.connect(empty).close()
    with pytest.raises(LookupError, match="nutshell_seed"):
        nutshell_seed_from_clinic(empty)
    with pytest.raises(FileNotFoundError):
        nutshell_seed_from_clinic(tmp_path / "missing.db")


def test_rest_patch_list_and_link_operations(api: Api) -> None:
    cid = api.create_contact(
        name="Jan Patch",
        emails=[{"value": "old@example.com"}],
        phones=[{"name": "home", "value": "+61 3 9000 0001"}, {"name": "mobile", "value": "+61 400 000 002"}],
    )["id"]
    ops = [
        {"op": "remove", "path": "/contacts/0/phones/0"},
        {
            "op": "replace",
            "path": "/contacts/0/emails",
            "value": [{"isPrimary": True, "name": "home", "value": "new@example.com"}],
        },
        {"op": "replace", "path": "/contacts/0/links/owner", "value": "3-users"},
        {"op": "replace", "path": "/contacts/0/firstName", "value": "Janet"},
        {
            "op": "add",
            "path": "/contacts/0/addresses/-",
            "value": {"name": "home", "city": "Launceston", "state": "TAS"},
        },
        {"op": "replace", "path": "/contacts/0/jobTitle", "value": "Patient"},
    ]
    assert api.patch(f"/contacts/{cid}", ops).status_code == 204
    got = api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]
    assert [p["name"] for p in got["phones"]] == ["mobile"] and got["phones"][0]["isPrimary"] is True
    assert [(e["name"], e["value"]) for e in got["emails"]] == [("home", "new@example.com")]
    assert got["links"]["owner"] == "3-users" and got["name"] == "Janet Patch" and got["jobTitle"] == "Patient"
    assert got["addresses"][0]["value"]["city"] == "Launceston"
    assert api.rest("GET", "/contacts", params={"email": "old@example.com"}).json()["contacts"] == []
    assert [c["id"] for c in api.rest("GET", "/contacts", params={"email": "new@example.com"}).json()["contacts"]] == [
        cid
    ]
    assert api.result("getContact", contactId=number(cid))["owner"]["id"] == 3
    for bad in (
        [{"op": "remove", "path": "/contacts/0/phones/5"}],
        [{"op": "replace", "path": "/accounts/0/name", "value": "x"}],
        [{"op": "replace", "path": "/contacts/0/links/owner", "value": "99-users"}],
        [{"op": "add", "path": "/contacts/0/links/accounts/-", "value": "1-contacts"}],
        [{"op": "replace", "path": "/contacts/0/emails", "value": [{"value": "no-at-sign"}]}],
    ):
        assert api.patch(f"/contacts/{cid}", bad).status_code == 400, bad
    assert api.rest("GET", f"/contacts/{cid}").json()["contacts"][0] == got


def test_rpc_accounts_relationships_and_multi_value_input(api: Api) -> None:
    account = api.result(
        "newAccount",
        account={
            "name": "Arbor Medical",
            "phone": ["734-234-9990"],
            "address": {"office": {"address_1": "220 Depot St", "city": "Ann Arbor", "state": "MI"}},
            "contacts": [{"id": 3, "relationship": "Patient"}],
        },
    )
    assert account["contacts"][0]["id"] == 3 and account["contacts"][0]["relationship"] == "Patient"
    assert list(account["address"]) == ["office", "--primary"]
    contact = api.result("getContact", contactId=3)
    assert (
        contact["accounts"][0]["regions"] == ["Ann Arbor, MI"] and contact["accounts"][0]["relationship"] == "Patient"
    )
    assert api.rpc("editAccount", accountId=account["id"], rev="0", account={"name": "x"}).status_code == 409
    edited = api.result(
        "editContact",
        contactId=3,
        rev=contact["rev"],
        contact={
            "phone": "+1 734 555 0100",
            "address": {"address_1": "1 Main St", "city": "Hobart"},
            "url": ["a.example"],
        },
    )
    assert edited["phone"]["0"]["E164"] == "+17345550100" and edited["address"]["0"]["city"] == "Hobart"
    assert (
        edited["url"] == {"0": "a.example", "--primary": "a.example"}
        and edited["email"]["0"] == "maria.lopez@example.com"
    )
    assert api.result(
        "deleteAccount", accountId=account["id"], rev=api.result("getAccount", accountId=account["id"])["rev"]
    )
    assert api.result("getContact", contactId=3)["accounts"] == []
    assert api.result("findContacts", query={"accountId": account["id"]}) == []


def test_links_into_the_trash_do_not_block_edits_and_come_back(api: Api) -> None:
    aid = api.rest("POST", "/accounts", json={"accounts": [{"name": "Soon Gone"}]}).json()["accounts"][0]["id"]
    cid = api.create_contact(name="Stays", links={"accounts": [aid]})["id"]
    act = api.result(
        "newActivity",
        activity={
            "name": "Visit",
            "startTime": 1700000000,
            "participants": [{"entityType": "Accounts", "id": number(aid)}],
        },
    )
    assert api.rest("DELETE", f"/accounts/{aid}").status_code == 200
    assert (
        api.patch(
            f"/contacts/{cid}", [{"op": "replace", "path": "/contacts/0/name", "value": "Still Here"}]
        ).status_code
        == 204
    )
    renamed = api.result("editActivity", activityId=act["id"], rev=act["rev"], activity={"name": "Visit 2"})
    assert renamed["participants"] == []
    other = api.create_contact(name="Newcomer")["id"]
    relink = api.patch(f"/contacts/{other}", [{"op": "add", "path": "/contacts/0/links/accounts/-", "value": aid}])
    assert relink.status_code == 400  # a new link to a trashed account is refused
    assert api.rest("POST", f"/accounts/{aid}/undelete").status_code == 200
    assert api.rest("GET", f"/contacts/{cid}").json()["contacts"][0]["links"]["accounts"] == [aid]
    assert [p["id"] for p in api.result("getActivity", activityId=act["id"])["participants"]] == [number(aid)]
