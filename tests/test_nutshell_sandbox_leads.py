"""The Nutshell sandbox's leads, reference lists and search methods over real HTTP (JSON-RPC, and REST where the
API has them), with the errors a bad call gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, default_seed, start_nutshell_sandbox


class Api:
    def __init__(self, sandbox: NutshellSandbox) -> None:
        self.sb = sandbox
        self.http = httpx.Client(auth=(sandbox.username, sandbox.api_key), timeout=10)

    def rpc(self, method: str, **params: Any) -> httpx.Response:
        return self.http.post(self.sb.rpc_url, json={"id": "1", "method": method, "params": params})

    def __call__(self, method: str, **params: Any) -> Any:
        response = self.rpc(method, **params)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def error(self, method: str, **params: Any) -> tuple[int, str]:
        response = self.rpc(method, **params)
        assert response.status_code >= 400, response.text
        return response.status_code, response.json()["error"]["message"]

    def rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.sb.rest_url + path, **kwargs)


@pytest.fixture
def api(nutshell_sandbox: NutshellSandbox) -> Iterator[Api]:
    client = Api(nutshell_sandbox)
    yield client
    client.http.close()


def _ids(stubs: list[dict[str, Any]]) -> list[int]:
    return [s["id"] for s in stubs]


def test_reference_lists_are_readable_on_both_protocols(api: Api) -> None:
    industries = api("findIndustries")
    assert [i["name"] for i in industries] == ["Health Care", "Insurance", "Other", "Professional Services"]
    assert {tuple(sorted(i)) for i in industries} == {
        ("createdTime", "entityType", "id", "modifiedTime", "name", "rev", "stub")
    }
    assert api("findIndustries", orderBy="id", limit=2, page=2)[0]["name"] == "Professional Services"
    assert [t["name"] for t in api("findAccountTypes")] == ["Customer", "Insurer", "Referrer", "Supplier"]
    assert [t["entityType"] for t in api("findTerritories")] == ["Territories", "Territories"]
    assert [m["name"] for m in api("findMarkets")] == ["Default Market"] and "createdTime" not in api("findMarkets")[0]
    assert [s["name"] for s in api("findSources")] == ["Referral", "Walk-in", "Website"]
    full = api("findProducts", stubResponses=False)
    assert full[0]["name"] == "Follow-up Consultation" and full[0]["price"] == {"currency": "USD", "amount": 90}
    assert "stub" not in full[0] and api("findProducts")[0]["stub"] is True
    assert [t["name"] for t in api("findTeams")] == ["Front Desk"]

    rest = api.rest("GET", "/industries").json()
    assert [i["id"] for i in rest["industries"]] == ["1-industries", "2-industries", "3-industries", "4-industries"]
    assert api.rest("GET", "/industries/2-industries").json()["industries"][0]["name"] == "Insurance"
    assert api.rest("GET", "/industries/9-industries").status_code == 404
    assert api.rest("GET", "/accounttypes").json()["accountTypes"][1]["name"] == "Insurer"
    assert api.rest("GET", "/territories").json()["territories"][0]["href"].endswith("/rest/territories/1-territories")
    users = {u["name"]: u for u in api.rest("GET", "/users").json()["users"]}
    assert users["Priya Nair"]["links"]["teams"] == ["1-teams"] and users["Alex Admin"]["links"]["teams"] == []
    assert users["Alex Admin"]["permissions"]["canAccessSetup"] and not users["Priya Nair"]["permissions"]["canExport"]


def test_accounts_take_industry_account_type_and_territory(api: Api) -> None:
    account = api("newAccount", account={"name": "Medicover", "industryId": 2, "accountTypeId": 2, "territoryId": 1})
    assert account["industry"]["name"] == "Insurance" and account["industry"]["entityType"] == "Industries"
    assert account["accountType"] == {"id": 2, "name": "Insurer"} and account["territory"] == {"id": 1, "name": "Local"}
    rest = api.rest("GET", f"/accounts/{account['id']}-accounts").json()
    links = rest["accounts"][0]["links"]
    assert (links["industry"], links["accountType"], links["territory"]) == (
        "2-industries",
        "2-accountTypes",
        "1-territories",
    )
    assert [i["name"] for i in rest["industries"]] == ["Insurance"] and rest["accountTypes"][0][
        "id"
    ] == "2-accountTypes"
    cleared = api("editAccount", accountId=account["id"], rev=account["rev"], account={"industryId": None})
    assert cleared["industry"] is None and cleared["accountType"]["id"] == 2
    patched = api.rest(
        "PATCH",
        f"/accounts/{account['id']}-accounts",
        content=b'[{"op": "replace", "path": "/accounts/0/links/territory", "value": "2-territories"}]',
        headers={"content-type": "application/json-patch+json"},
    )
    assert patched.status_code == 204
    assert api("getAccount", accountId=account["id"])["territory"]["name"] == "Regional"
    contact = api("newContact", contact={"name": "Ter Ritory", "territoryId": 2})
    assert contact["territory"] == {"id": 2, "name": "Regional"}

    status, message = api.error("newAccount", account={"name": "X", "industryId": 99})
    assert status == 400 and "99 is not one of the industries" in message and "1: Health Care" in message
    status, message = api.error("newAccount", account={"name": "X", "industryId": "Health"})
    assert status == 400 and "industryId must be an integer id" in message
    refused = api.rest("POST", "/contacts", json={"contacts": [{"name": "Y", "links": {"industry": "1-industries"}}]})
    assert refused.status_code == 400 and "links.industry" in refused.json()["errors"][0]["detail"]


def test_a_lead_links_contacts_and_accounts_and_they_show_it(api: Api) -> None:
    jo = api("newContact", contact={"name": "Jo Lead"})
    sam = api("newContact", contact={"name": "Sam Lead"})
    acme = api("newAccount", account={"name": "Acme"})
    other = api("newAccount", account={"name": "Other Co"})
    lead = api(
        "newLead",
        lead={
            "description": "Physio package",
            "primaryAccount": {"id": acme["id"]},
            "accounts": [{"id": other["id"], "relationship": "Payer"}],
            "contacts": [{"id": jo["id"], "relationship": "Patient"}],
            "products": [{"id": 1, "quantity": 2}],
            "assignee": {"entityType": "Users", "id": 2},
            "dueTime": "2020-01-01T00:00:00+00:00",
            "customFields": {},
            "note": "Called about the package",
        },
    )
    assert lead["name"] == "Lead-1000" and lead["description"] == "Physio package" and lead["isOverdue"] is True
    assert lead["value"] == {"currency": "USD", "amount": 240}  # two at the product's own price
    assert lead["primaryAccount"]["id"] == acme["id"] and _ids(lead["accounts"]) == [other["id"]]
    assert lead["accounts"][0]["relationship"] == "Payer" and lead["assignee"]["name"] == "Priya Nair"
    assert [n["note"] for n in lead["notes"]] == ["Called about the package"]
    assert _ids(api("getContact", contactId=jo["id"])["leads"]) == [lead["id"]]
    assert _ids(api("getAccount", accountId=other["id"])["leads"]) == [lead["id"]]
    assert api("getContact", contactId=sam["id"])["leads"] == []
    assert _ids(api("findAccounts", query={"leadId": lead["id"]})) == sorted([acme["id"], other["id"]])

    visit = api(
        "newActivity",
        activity={
            "name": "Visit",
            "leads": [{"id": lead["id"]}],
            "participants": [{"entityType": "Contacts", "id": jo["id"]}],
            "startTime": "2024-02-01T10:00:00+0000",
            "status": 1,
        },
    )
    assert visit["lead"]["id"] == lead["id"] and _ids(visit["leads"]) == [lead["id"]]
    got = api("getLead", leadId=lead["id"])
    assert got["activitiesCount"] == {"0": 0, "1": 1, "2": 0, "-1": 0}
    assert got["lastContactedDate"] == "2024-02-01T10:00:00+0000"
    assert _ids(api("findActivities", query={"leadId": lead["id"]})) == [visit["id"]]
    assert api("getContact", contactId=jo["id"])["contactedCount"] == 1

    won = api("editLead", leadId=lead["id"], rev=got["rev"], lead={"status": 10, "contacts": [{"id": sam["id"]}]})
    assert won["status"] == 10 and won["closedTime"] and won["isOverdue"] is False
    assert api("getContact", contactId=jo["id"])["leads"] == []
    assert _ids(api("findLeads", query={"contactId": sam["id"]})) == [lead["id"]]
    assert api("findLeads", query={"status": 0}) == [] and _ids(api("findLeads", query={"number": 1000})) == [
        lead["id"]
    ]
    assert "closedTime" in api("findLeads")[0] and "stub" not in api("findLeads", stubResponses=False)[0]
    reopened = api("editLead", leadId=lead["id"], rev=won["rev"], lead={"status": 0})
    assert "closedTime" not in reopened

    assert api.rpc("editLead", leadId=lead["id"], rev=won["rev"], lead={"confidence": 5}).status_code == 409
    assert api("deleteLead", leadId=lead["id"], rev=reopened["rev"]) is True
    assert api("getContact", contactId=sam["id"])["leads"] == [] and api("findLeads") == []
    assert api("getLead", leadId=lead["id"])["deletedTime"]
    assert api.rpc("getLead", leadId=jo["id"]).status_code == 404  # a contact's id is no lead's


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ({"confidence": 150}, "confidence must be from 0 to 100"),
        ({"confidence": "high"}, "confidence must be a whole number"),
        ({"market": {"id": 42}}, "42 is not one of the markets"),
        ({"products": [{"id": 9}]}, "9 is not one of the products"),
        ({"products": [{"id": 1, "quantity": 0}]}, "quantity must be a positive number"),
        ({"products": [{"id": 1, "price": {"currency": "dollars", "amount": 5}}]}, "three-letter currency"),
        ({"sources": [{"id": 77}]}, "77 is not one of the sources"),
        ({"assignee": {"entityType": "Teams", "id": 1000}}, "assignee 1000 is not a team id"),
        ({"contacts": [{"id": 424242}]}, "424242-contacts does not exist"),
        ({"status": 3}, "status must be one of"),
        ({"tags": ["Nope"]}, "Tag 'Nope' does not exist"),
        ({"file": [{"name": "x.pdf"}]}, "Unknown lead field(s): file"),
        ({"customFields": {"Nope": 1}}, "Nope is not a custom field"),
    ],
)
def test_a_bad_lead_is_refused_naming_the_problem(api: Api, lead: dict[str, Any], expected: str) -> None:
    status, message = api.error("newLead", lead=lead)
    assert status == 400 and expected in message


def test_search_methods_find_by_name_email_phone_and_group_by_type(api: Api) -> None:
    api("newAccount", account={"name": "Chen Family Trust"})
    api("newLead", lead={"description": "Chen referral"})
    assert [c["name"] for c in api("searchContacts", string="chen")] == ["Sam Chen"]
    assert [c["name"] for c in api("searchContacts", string="sam@work")] == ["Sam Chen"]
    assert [c["name"] for c in api("searchContacts", string="9123 4567")] == ["Jo Bloggs"]
    assert api("searchContacts", string="lo", limit=1) == api("searchContacts", string="lo")[:1]
    assert [a["name"] for a in api("searchAccounts", string="CHEN")] == ["Chen Family Trust"]
    assert [lead["description"] for lead in api("searchLeads", string="referral")] == ["Chen referral"]
    universal = api("searchUniversal", string="chen")
    assert {k: [s["entityType"] for s in v] for k, v in universal.items()} == {
        "contacts": ["Contacts"],
        "accounts": ["Accounts"],
        "leads": ["Leads"],
    }
    assert api("searchContacts", string="   ") == []
    assert api.error("searchContacts", string=5) == (400, "string must be text")
    assert api.error("searchAccounts", string="x", limit=0) == (400, "limit starts at 1")
    # Positional, as the PHP client sends `$api->searchContacts('chen', 5)`.
    positional = api.http.post(api.sb.rpc_url, json={"id": 2, "method": "searchContacts", "params": ["chen", 5]})
    assert [c["name"] for c in positional.json()["result"]] == ["Sam Chen"]


def test_a_seed_without_reference_lists_gets_the_defaults_and_a_bad_one_is_refused() -> None:
    seed = default_seed()
    for key in ("teams", "industries", "account_types", "territories", "markets", "sources", "products"):
        del seed[key]
    sandbox = start_nutshell_sandbox(seed)
    try:
        assert [t["name"] for t in sandbox.state.dump()["schema"]["teams"]] == ["Front Desk"]
        assert len(sandbox.state.dump()["schema"]["industries"]) == 4
    finally:
        sandbox.stop()
    for key, value, expected in (
        ("teams", [{"name": "T", "members": ["nobody@example.com"]}], "members must be e-mails of seeded users"),
        ("industries", [""], "industries[0] needs a name"),
        ("products", [{"name": "P", "price": 5}], "price must be {'currency', 'amount'}"),
        ("markets", "Default", "markets must be a list"),
    ):
        with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("{", r"\{").replace("}", r"\}")):
            start_nutshell_sandbox(default_seed() | {key: value})
