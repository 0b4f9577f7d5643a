"""Nutshell's own PHP sample client (github.com/nutshellcrm/nutshell-api-php: NutshellApi.php and the create,
retrieve and edit examples) against the sandbox, its calls sent the way it sends them:

- endpoint discovery first (`getApiForUsername`, no credentials), then `https://` + `result.api` + `/api/v1/json`
  (plain http here: the sandbox listens on loopback only);
- a body of `json_encode(['method' => ..., 'params' => ..., 'id' => <8 hex digits>])`: no `jsonrpc` member,
  slashes escaped as `\\/`, PHP's mixed arrays as objects (`['734-555-9090', 'cell' => ...]` becomes
  `{"0": ..., "cell": ...}`), posted by curl with `CURLOPT_POSTFIELDS`, hence
  `Content-Type: application/x-www-form-urlencoded`, and Basic auth;
- params named (`$api->call('getContact', ['contactId' => 132])`, `$api->newAccount([...])`) or positional
  (`$api->getLead(11)` sends `"params": [11]`);
- every answer is read with `$fullResult->error !== NULL`, so a success must carry `"error": null`.

The sample's ids (industry 1, market 1, product 4, source 2, team 1000, contact 17, lead 1600) belong to the
author's account; the same calls here use the sandbox's ids, looked up the same way.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox


def php_json_encode(value: Any) -> str:
    """PHP's json_encode defaults: `\\/` for slashes, `\\uXXXX` for non-ASCII, no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


class PhpSampleClient:
    """The sample's NutshellApi class, as its requests look on the wire."""

    def __init__(self, sandbox: NutshellSandbox, username: str, api_key: str) -> None:
        self.rng = random.Random(1)
        self.http = httpx.Client(timeout=10)
        self.sent: list[httpx.Request] = []
        discovered = self._post(sandbox.discovery_url, "getApiForUsername", {"username": username}, auth=None)
        self.endpoint = f"http://{discovered['api']}/api/v1/json"
        self.auth = "Basic " + base64.b64encode(f"{username}:{api_key}".encode()).decode()

    def _request_id(self) -> str:
        return f"{self.rng.getrandbits(32):08x}"  # substr(md5(rand()), 0, 8)

    def _post(self, url: str, method: str, params: Any, *, auth: str | None) -> Any:
        body = php_json_encode({"method": method, "params": params, "id": self._request_id()})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "*/*"}
        if auth is not None:
            headers["Authorization"] = auth
        response = self.http.post(url, content=body.encode(), headers=headers)
        self.sent.append(response.request)
        full = response.json()
        # `if ($fullResult->error !== NULL) throw new NutshellApiException(...)`
        assert "error" in full, f"{method}: no error member for the sample to read"
        assert full["error"] is None, f"{method}: {full['error']}"
        return full["result"]

    def call(self, method: str, params: Any = None) -> Any:
        """`$api->call($method, $params)` and `$api->method([...])` (named); `$api->method(11)` (positional)."""
        return self._post(self.endpoint, method, params if params is not None else [], auth=self.auth)


@pytest.fixture
def api(nutshell_sandbox: NutshellSandbox) -> Iterator[PhpSampleClient]:
    client = PhpSampleClient(nutshell_sandbox, nutshell_sandbox.username, nutshell_sandbox.api_key)
    yield client
    client.http.close()


def _first(stubs: list[dict[str, Any]], name: str) -> int:
    return next(s["id"] for s in stubs if s["name"] == name)


def test_the_php_samples_create_retrieve_and_edit_calls_succeed(api: PhpSampleClient) -> None:
    # Reference lists the sample's ids stand for.
    industry = _first(api.call("findIndustries"), "Health Care")
    market = _first(api.call("findMarkets"), "Default Market")
    product = _first(api.call("findProducts"), "Initial Consultation")
    source = _first(api.call("findSources"), "Referral")
    team = _first(api.call("findTeams"), "Front Desk")

    # examples/create.php
    new_contact = api.call(
        "newContact",
        {
            "contact": {
                "name": "Joan Smith",
                "phone": {"0": "734-555-9090", "cell": "734-555-6711"},
                "email": {"0": "jsmith@example.com", "blackberry": "jsmith@att.blackberry.com"},
            }
        },
    )
    new_contact_id = new_contact["id"]
    assert new_contact["phone"]["cell"]["number"] == "7345556711" and new_contact["email"]["blackberry"]
    new_account = api.call(
        "newAccount",
        {
            "account": {
                "name": "Arbor Medical LLC",
                "industryId": industry,
                "url": ["http://example.com", "http://suppliers.example.com"],
                "phone": ["734-234-9990"],
                "contacts": [{"id": new_contact_id, "relationship": "Purchasing Manager"}],
                "address": {
                    "office": {
                        "address_1": "220 Depot St",
                        "city": "Ann Arbor",
                        "state": "MI",
                        "postalCode": "48104",
                    }
                },
            }
        },
    )
    new_account_id = new_account["id"]
    assert new_account["industry"]["id"] == industry and new_account["industry"]["name"] == "Health Care"
    assert new_account["url"] == {
        "0": "http://example.com",
        "1": "http://suppliers.example.com",
        "--primary": "http://example.com",
    }
    assert new_account["address"]["office"]["city"] == "Ann Arbor"
    assert [(c["id"], c["relationship"]) for c in new_account["contacts"]] == [(new_contact_id, "Purchasing Manager")]
    lead = api.call(
        "newLead",
        {
            "lead": {
                "primaryAccount": {"id": new_account_id},
                "confidence": 70,
                "market": {"id": market},
                "contacts": [{"relationship": "First Contact", "id": new_contact_id}],
                "products": [
                    {
                        "relationship": "",
                        "quantity": 15,
                        "price": {"currency_shortname": "USD", "amount": 1000},
                        "id": product,
                    }
                ],
                "sources": [{"id": source}],
                "assignee": {"entityType": "Teams", "id": team},
            }
        },
    )
    assert lead["entityType"] == "Leads" and lead["confidence"] == 70 and lead["status"] == 0
    assert lead["primaryAccount"]["id"] == new_account_id and lead["market"]["id"] == market
    assert [(c["id"], c["relationship"]) for c in lead["contacts"]] == [(new_contact_id, "First Contact")]
    assert lead["products"][0]["quantity"] == 15 and lead["products"][0]["price"] == {"currency": "USD", "amount": 1000}
    assert lead["value"] == {"currency": "USD", "amount": 15000}
    assert [s["id"] for s in lead["sources"]] == [source]
    assert (lead["assignee"]["entityType"], lead["assignee"]["id"]) == ("Teams", team)

    # examples/retrieve.php
    contact = api.call("getContact", {"contactId": new_contact_id})
    assert contact["name"]["displayName"] == "Joan Smith" and [s["id"] for s in contact["leads"]] == [lead["id"]]
    assert contact["accounts"][0]["id"] == new_account_id
    found = api.call("findContacts", {"query": {"leadId": lead["id"]}})
    assert [(c["id"], c["stub"]) for c in found] == [(new_contact_id, True)]

    # examples/edit.php: add a contact to the lead, keeping the old ones (with the entityType it asks for).
    extra = api.call("newContact", {"contact": {"name": "Additional Contact"}})
    old_lead = api.call("getLead", {"leadId": lead["id"]})
    contacts = [
        {"id": c["id"], "relationship": c["relationship"], "entityType": "Contacts"} for c in old_lead["contacts"]
    ]
    contacts.append({"relationship": "additional contact", "id": extra["id"], "entityType": "Contacts"})
    edited = api.call(
        "editLead",
        {"leadId": lead["id"], "rev": old_lead["rev"], "lead": {"confidence": 75, "contacts": contacts}},
    )
    assert edited["confidence"] == 75 and edited["rev"] != old_lead["rev"]
    assert [(c["id"], c["relationship"]) for c in edited["contacts"]] == [
        (new_contact_id, "First Contact"),
        (extra["id"], "additional contact"),
    ]

    # `$api->getLead(11)` and `$api->getContact(132)`: positional params.
    assert api.call("getLead", [lead["id"]])["confidence"] == 75
    assert api.call("getContact", [extra["id"]])["leads"][0]["id"] == lead["id"]

    # Every request went out as the sample sends it.
    for request in api.sent:
        body = json.loads(request.content)
        assert set(body) == {"method", "params", "id"} and len(body["id"]) == 8
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"http:\\/\\/example.com" in next(r.content for r in api.sent if b"newAccount" in r.content)
    assert "authorization" not in api.sent[0].headers  # discovery goes without credentials
