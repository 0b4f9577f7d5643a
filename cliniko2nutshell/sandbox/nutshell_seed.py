"""The Nutshell seed: what an account already holds before a migration (users, activity types, people, companies,
custom fields, and the reference lists: teams, industries, account types, territories, markets, sources,
products). The clinic generator writes one into the clinic DB (meta key `nutshell_seed`); `default_seed()` is a
small one for tests that need no clinic.

The reference lists are optional in a seed: one without them gets `DEFAULT_REFERENCE`. Unconfirmed: what a new
Nutshell instance holds in these lists (nothing public says); we choose small plausible ones for a clinic.
"""

from __future__ import annotations

import copy
from typing import Any

from cliniko2nutshell.sandbox.nutshell_values import CUSTOM_FIELD_TYPES, check_definition

# Nutshell's default activity types (reference §2.4 shows "Phone Call / Meeting" as id 1).
DEFAULT_ACTIVITY_TYPES = ["Phone Call / Meeting", "Email", "Meeting", "Demo", "Lunch"]

# Optional seed lists of names (teams are {"name", "members": [e-mails]}; products {"name", "price"}).
DEFAULT_REFERENCE: dict[str, Any] = {
    "teams": [{"name": "Front Desk", "members": []}],
    "industries": ["Health Care", "Insurance", "Professional Services", "Other"],
    "account_types": ["Customer", "Insurer", "Referrer", "Supplier"],
    "territories": ["Local", "Regional"],
    "markets": ["Default Market"],
    "sources": ["Referral", "Website", "Walk-in"],
    "products": [
        {"name": "Initial Consultation", "price": {"currency": "USD", "amount": 120}},
        {"name": "Follow-up Consultation", "price": {"currency": "USD", "amount": 90}},
    ],
}
REFERENCE_KEYS = tuple(DEFAULT_REFERENCE)

_DEFAULT: dict[str, Any] = {
    "company_domain": "harbourphysio.example",
    "api_user": {"email": "admin@harbourphysio.example", "api_key": "5f0c3a9e1b7d42c8a6e0f1d2b3c4a5e6f7081920"},
    "users": [
        {
            "first_name": "Alex",
            "last_name": "Admin",
            "emails": ["admin@harbourphysio.example"],
            "is_administrator": True,
            "is_enabled": True,
        },
        {
            "first_name": "Priya",
            "last_name": "Nair",
            "emails": ["priya.nair@harbourphysio.example"],
            "is_administrator": False,
            "is_enabled": True,
        },
        {
            "first_name": "Tom",
            "last_name": "Okafor",
            "emails": ["tom@okafor-health.example"],
            "is_administrator": False,
            "is_enabled": True,
        },
        {
            "first_name": "Former",
            "last_name": "Staff",
            "emails": ["former@harbourphysio.example"],
            "is_administrator": False,
            "is_enabled": False,
        },
    ],
    "activity_types": DEFAULT_ACTIVITY_TYPES,
    "people": [
        {"name": "Maria Lopez", "emails": ["maria.lopez@example.com"], "phones": ["+61 412 345 678"]},
        {"name": "Sam Chen", "emails": ["sam.chen@example.com", "sam@work.example"], "phones": []},
        {"name": "Jo Bloggs", "emails": [], "phones": ["(03) 9123 4567"]},
    ],
    "accounts": [{"name": "Medibank"}, {"name": "Northside GP Clinic"}],
    "custom_fields": {
        "Contacts": [
            {"name": "Cliniko Patient ID", "type": "Text"},
            {"name": "Date of Birth", "type": "Date"},
            {"name": "Total Invoiced", "type": "Text"},
        ],
        "Accounts": [],
        "Leads": [],
    },
    "custom_field_cap": None,
    **DEFAULT_REFERENCE,
    # The default team, with a member so users' `links.teams` shows one.
    "teams": [{"name": "Front Desk", "members": ["priya.nair@harbourphysio.example"]}],
}


def default_seed() -> dict[str, Any]:
    """A small seed (a fresh copy each call): 4 users (one disabled), 3 people, 2 companies, 3 custom fields, the
    default reference lists with one team (Priya Nair in it)."""
    return copy.deepcopy(_DEFAULT)


def reference_lists(seed: dict[str, Any]) -> dict[str, Any]:
    """The seed's reference lists, each defaulted when the seed has none."""
    return {key: copy.deepcopy(seed[key] if key in seed else DEFAULT_REFERENCE[key]) for key in REFERENCE_KEYS}


def validate_seed(seed: Any) -> None:
    """Raise ValueError naming the first thing wrong with a seed, so a bad clinic DB fails loudly at start."""
    if not isinstance(seed, dict):
        raise ValueError("the nutshell seed must be a JSON object")
    for key in ("company_domain", "api_user", "users", "activity_types", "people", "accounts", "custom_fields"):
        if key not in seed:
            raise ValueError(f"the nutshell seed lacks {key!r}")
    api = seed["api_user"]
    if not isinstance(api, dict) or not isinstance(api.get("email"), str) or not isinstance(api.get("api_key"), str):
        raise ValueError("nutshell seed api_user must be {'email': str, 'api_key': str}")
    if not api["api_key"]:
        raise ValueError("nutshell seed api_user.api_key is empty")
    for i, user in enumerate(seed["users"]):
        if not isinstance(user, dict) or not isinstance(user.get("emails"), list):
            raise ValueError(f"nutshell seed users[{i}] must have an 'emails' list")
        for key in ("first_name", "last_name"):
            if not isinstance(user.get(key), str):
                raise ValueError(f"nutshell seed users[{i}].{key} must be text")
    if not all(isinstance(t, str) and t for t in seed["activity_types"]):
        raise ValueError("nutshell seed activity_types must be non-empty names")
    for i, person in enumerate(seed["people"]):
        if not isinstance(person, dict) or not isinstance(person.get("name"), str):
            raise ValueError(f"nutshell seed people[{i}] must have a 'name'")
    for i, account in enumerate(seed["accounts"]):
        if not isinstance(account, dict) or not isinstance(account.get("name"), str):
            raise ValueError(f"nutshell seed accounts[{i}] must have a 'name'")
    fields = seed["custom_fields"]
    if not isinstance(fields, dict) or set(fields) - {"Contacts", "Accounts", "Leads"}:
        raise ValueError("nutshell seed custom_fields must map Contacts/Accounts/Leads to lists")
    for entity, definitions in fields.items():
        for d in definitions:
            if not isinstance(d, dict):
                raise ValueError(f"nutshell seed custom_fields.{entity} holds a non-object")
            try:
                check_definition(d.get("name"), d.get("type"), d.get("choices"), d.get("isMultiple"), entity)
            except ValueError as exc:
                raise ValueError(f"nutshell seed custom_fields.{entity}: {exc} (types: {CUSTOM_FIELD_TYPES})") from exc
    _validate_reference(seed)
    cap = seed.get("custom_field_cap")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
        raise ValueError("nutshell seed custom_field_cap must be null or a non-negative integer")


def _validate_reference(seed: dict[str, Any]) -> None:
    logins = {e.strip().lower() for u in seed["users"] for e in u["emails"]} | {seed["api_user"]["email"].lower()}
    for key in REFERENCE_KEYS:
        if key not in seed:
            continue
        values = seed[key]
        if not isinstance(values, list):
            raise ValueError(f"nutshell seed {key} must be a list")
        for i, value in enumerate(values):
            name = value.get("name") if isinstance(value, dict) else value
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"nutshell seed {key}[{i}] needs a name")
            if key == "teams":
                members = value.get("members", []) if isinstance(value, dict) else None
                if not isinstance(members, list) or any(str(m).strip().lower() not in logins for m in members):
                    raise ValueError(f"nutshell seed teams[{i}].members must be e-mails of seeded users")
            if key == "products" and isinstance(value, dict) and "price" in value:
                price = value["price"]
                if not isinstance(price, dict) or not isinstance(price.get("amount"), int | float):
                    raise ValueError(f"nutshell seed products[{i}].price must be {{'currency', 'amount'}}")
