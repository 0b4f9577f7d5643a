"""How the JSON-RPC API shows and reads entities: integer ids, string revs, ATOM times, multi-value objects with
`"--primary"`, names as objects on full entities and strings on stubs (reference §3).

Unconfirmed: the encoding of empty multi-value fields and `customFields`; we choose `[]`, the way a PHP server
encodes an empty array. Unknown fields in a payload are refused with their names (also our choice).
"""

from __future__ import annotations

from typing import Any

from cliniko2nutshell.sandbox.nutshell_state import (
    ACTIVITY_CANCELLED,
    ACTIVITY_LOGGED,
    ACTIVITY_SCHEDULED,
    LEAD_OPEN,
    REFERENCE_KINDS,
    NutshellState,
    Record,
    invalid,
)
from cliniko2nutshell.sandbox.nutshell_values import atom, item, parse_phone, parse_time, slug, split_name

ENTITY_TYPES = {
    "contacts": "Contacts",
    "accounts": "Accounts",
    "activities": "Activities",
    "notes": "Notes",
    "users": "Users",
    "activityTypes": "Activity_Types",
    "files": "Files",
    "leads": "Leads",
    "teams": "Teams",
    "industries": "Industries",
    # Unconfirmed: the entityType of an account type (the reference's list has none); we follow Activity_Types.
    "accountTypes": "Account_Types",
    "territories": "Territories",
    "markets": "Markets",
    "sources": "Sources",
    "products": "Products",
}
KINDS_BY_ENTITY_TYPE = {v: k for k, v in ENTITY_TYPES.items()}
RPC_MULTI = {"email": "emails", "phone": "phones", "url": "urls", "address": "addresses"}
PEEP_KEYS = {
    "contacts": {
        "name",
        "description",
        "jobTitle",
        "email",
        "phone",
        "url",
        "address",
        "customFields",
        "tags",
        "accounts",
        "owner",
        "note",
        "territoryId",
    },
    "accounts": {
        "name",
        "description",
        "email",
        "phone",
        "url",
        "address",
        "customFields",
        "tags",
        "contacts",
        "owner",
        "note",
        "industryId",
        "accountTypeId",
        "territoryId",
    },
}
# The `*Id` keys of a contact/account payload and the reference list each names (Nutshell's sample sends
# industryId; the reference lists accountTypeId and territoryId).
REFERENCE_IDS = {"industryId": "industry", "accountTypeId": "account_type", "territoryId": "territory"}
LEAD_KEYS = {
    "name",
    "description",
    "status",
    "confidence",
    "market",
    "primaryAccount",
    "accounts",
    "contacts",
    "products",
    "sources",
    "assignee",
    "tags",
    "customFields",
    "dueTime",
    "value",
    "note",
}
ACTIVITY_KEYS = {
    "name",
    "description",
    "location",
    "activityTypeId",
    "activityType",
    "startTime",
    "endTime",
    "isAllDay",
    "isFlagged",
    "status",
    "participants",
    "logNote",
    "leads",
    "transcription",
}


def _base(state: NutshellState, rec: Record) -> dict[str, Any]:
    out = {
        "id": rec.id,
        "entityType": ENTITY_TYPES[rec.kind],
        "rev": state.rev_of(rec),
        "modifiedTime": atom(rec.modified),
        "createdTime": atom(rec.created),
    }
    if rec.deleted is not None:
        out["deletedTime"] = atom(rec.deleted)
    return out


# --- multi-value fields ----------------------------------------------------------------------------------------


def multi_out(field: str, items: list[dict[str, Any]]) -> dict[str, Any] | list[Any]:
    """`{"0": v, "cell": v2, "--primary": v}`: a label becomes the key unless it is the generic one or taken."""
    if not items:
        return []
    out: dict[str, Any] = {}
    index = 0
    generic = field[:-1]
    for it in items:
        value = it["value"]
        if field == "phones":
            value = {k: v for k, v in parse_phone(value).items() if k != "countryCodeAndNumber"}
        label = it["label"]
        if label and label != generic and label not in out and not label.isdigit() and label != "--primary":
            key = label
        else:
            while str(index) in out:
                index += 1
            key = str(index)
            index += 1
        out[key] = value
        if it["primary"]:
            out["--primary"] = value
    return out


def multi_in(field: str, value: Any) -> list[dict[str, Any]]:
    """JSON-RPC multi-value input: a list, a label-keyed object (optionally with `--primary`), or one value."""
    generic = field[:-1]
    if value is None:
        return []
    if isinstance(value, dict) and not (field == "addresses" and not _keyed_addresses(value)):
        primary = value.get("--primary")
        items = [item(generic if key.isdigit() else key, v, False) for key, v in value.items() if key != "--primary"]
        for it in items:
            if primary is not None and it["value"] == primary:
                it["primary"] = True
                break
        return items
    if isinstance(value, list):
        return [item(generic, v, False) for v in value]
    return [item(generic, value, False)]


def _keyed_addresses(value: dict[str, Any]) -> bool:
    """An address map is keyed by label (`{"office": {...}}`) when its values are objects."""
    return all(isinstance(v, dict) for k, v in value.items() if k != "--primary")


# --- rendering -------------------------------------------------------------------------------------------------


def user_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    d = rec.data
    return {
        "stub": True,
        **_base(state, rec),
        "name": f"{d['first_name']} {d['last_name']}".strip(),
        "emails": list(d["emails"]),
        "isEnabled": d["is_enabled"],
        "isAdministrator": d["is_administrator"],
    }


def user_full(state: NutshellState, rec: Record) -> dict[str, Any]:
    out = user_stub(state, rec)
    del out["stub"]
    return out | {"firstName": rec.data["first_name"], "lastName": rec.data["last_name"]}


def _user_ref(state: NutshellState, uid: int | None) -> dict[str, Any] | None:
    return None if uid is None else user_stub(state, state.records["users"][uid])


def contact_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    d = rec.data
    return {
        "stub": True,
        **_base(state, rec),
        "name": d["name"],
        "jobTitle": d.get("job_title") or "",
        "description": d["description"],
    }


def account_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    d = rec.data
    regions = [f"{a['value'].get('city')}, {a['value'].get('state')}" for a in d["addresses"] if a["value"].get("city")]
    return {"stub": True, **_base(state, rec), "name": d["name"], "regions": regions, "description": d["description"]}


def activity_type_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    return {
        "stub": True,
        "id": rec.id,
        "rev": state.rev_of(rec),
        "entityType": "Activity_Types",
        "name": rec.data["name"],
    }


def reference_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    """A reference-list entry: teams and products as live recordings show them (both times), markets without
    `createdTime` (as recorded). Unconfirmed: industries, account types, territories and sources; we follow teams."""
    out = {"stub": True, **_base(state, rec), "name": rec.data["name"]}
    if rec.kind == "markets":
        del out["createdTime"]
    return out


def _ref_stub(state: NutshellState, kind: str, rid: int | None) -> dict[str, Any] | None:
    return None if rid is None else reference_stub(state, state.records[kind][rid])


def stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    render = {
        "contacts": contact_stub,
        "accounts": account_stub,
        "users": user_stub,
        "activities": activity_stub,
        "activityTypes": activity_type_stub,
        "leads": lead_stub,
        **dict.fromkeys(REFERENCE_KINDS.values(), reference_stub),
    }[rec.kind]
    return render(state, rec)


def _named(state: NutshellState, kind: str, rid: int | None) -> dict[str, Any] | None:
    """`{id, name}`: how the reference shows a peep's account type and territory (§3.2)."""
    return None if rid is None else {"id": rid, "name": state.records[kind][rid].data["name"]}


def _peep_common(state: NutshellState, rec: Record, base: str, d: dict[str, Any]) -> dict[str, Any]:
    notes = [note(state, n, base) for n in state.notes_of(rec.kind, rec.id) if state.is_live(n)]
    last_contacted, contacted = state.contact_history(state.activities_of(rec.kind, rec.id))
    return {
        "htmlUrl": f"{base}/{'person' if rec.kind == 'contacts' else 'company'}/{rec.id}-{slug(d['name'])}",
        "avatarUrl": f"{base}/avatar/{rec.kind}/{rec.id}",
        "description": d["description"],
        "creator": _user_ref(state, d["creator"]),
        "owner": _user_ref(state, d["owner"]),
        "leads": [lead_stub(state, lead) for lead in state.leads_of(rec.kind, rec.id)],
        "notes": notes,
        "tags": [state.records["tags"][t].data["name"] for t in d["tags"]],
        "legacyId": None,
        "territory": _named(state, "territories", d["territory"]),
        "lastContactedDate": atom(last_contacted),
        "contactedCount": contacted,
        **{k: multi_out(f, d[f]) for k, f in RPC_MULTI.items()},
        "customFields": dict(d["custom"]) or [],
    }


def contact_full(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = state.visible(rec)
    given, family = split_name(d["name"])
    accounts = [
        {**account_stub(state, state.records["accounts"][a["id"]]), "relationship": a["relationship"]}
        for a in d["accounts"]
    ]
    return {
        **_base(state, rec),
        "name": {"givenName": given, "familyName": family, "salutation": "", "displayName": d["name"]},
        "jobTitle": d.get("job_title") or "",
        "accounts": accounts,
        **_peep_common(state, rec, base, d),
    }


def account_full(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = state.visible(rec)
    relationships = {}
    for c in state.contacts_of_account(rec.id):
        relationships[c.id] = next((a["relationship"] for a in c.data["accounts"] if a["id"] == rec.id), "")
    contacts = [
        {**contact_stub(state, state.records["contacts"][cid]), "relationship": rel}
        for cid, rel in relationships.items()
    ]
    return {
        **_base(state, rec),
        "name": d["name"],
        "contacts": contacts,
        "industry": _ref_stub(state, "industries", d["industry"]),
        "accountType": _named(state, "accountTypes", d["account_type"]),
        "mergedInto": [],
        **_peep_common(state, rec, base, d),
    }


def _status(state: NutshellState, d: dict[str, Any]) -> int:
    # -1 (overdue) is derived, never stored: a scheduled activity whose end has passed (reference §2.4).
    if d["status"] == ACTIVITY_SCHEDULED and d["end"] < state.now():
        return -1
    return d["status"]


def activity_stub(state: NutshellState, rec: Record, base: str = "") -> dict[str, Any]:
    d = rec.data
    log_note = state.records["notes"].get(d["log_note"]) if d.get("log_note") else None
    return {
        "stub": True,
        **_base(state, rec),
        "name": d["name"],
        "startTime": atom(d["start"]),
        "endTime": atom(d["end"]),
        "isAllDay": d["all_day"],
        "isTimed": not d["all_day"],
        "isFlagged": d["flagged"],
        "activityType": activity_type_stub(state, state.records["activityTypes"][d["type"]]),
        "status": _status(state, d),
        "logNote": note(state, log_note, base) if log_note is not None else None,
    }


# Unconfirmed: what a participant's `status` means; the live recordings show 3 for both a contact and a user of
# a scheduled activity, and nothing else. We always send 3.
PARTICIPANT_STATUS = 3


def participant(state: NutshellState, rec: Record) -> dict[str, Any]:
    """A participant as a full activity embeds it (live recording): a contact's stub without `description`, a
    user's stub, each with `status`."""
    out = stub(state, rec)
    if rec.kind == "contacts":
        del out["description"]
    return out | {"status": PARTICIPANT_STATUS}


def activity_full(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """The live full activity (recording findActivitiesNonStub): the stub's fields without `stub` and `logNote`,
    plus description, lead(s), loggedBy, participants and logDescription. `logNote` (where the files are,
    reference §2.8) is added when the activity has one. Unconfirmed: whether a full activity shows its
    `location`; the recording has no such key, so we leave it out (REST shows it)."""
    d = state.visible(rec)
    out = activity_stub(state, rec, base)
    del out["stub"]
    if out["logNote"] is None:
        del out["logNote"]
    leads = [lead_stub(state, state.records["leads"][i]) for i in d["leads"]]
    return out | {
        "description": d.get("description") or "",
        # Unconfirmed: `lead` beside `leads`; we choose the first lead (null without one, as recorded).
        "lead": leads[0] if leads else None,
        "leads": leads,
        "loggedBy": _user_ref(state, d.get("logger")),
        "participants": [participant(state, state.records[p["kind"]][p["id"]]) for p in d["participants"]],
        "logDescription": None,
    }


# --- leads -------------------------------------------------------------------------------------------------------


def _lead_value(d: dict[str, Any]) -> dict[str, Any]:
    """The lead's value: the one set, else the sum of its products. Unconfirmed: how Nutshell totals products
    of mixed currencies; we take the first product's currency (USD without products)."""
    if d["value"] is not None:
        return dict(d["value"])
    total = sum(p["quantity"] * p["price"]["amount"] for p in d["products"])
    currency = d["products"][0]["price"]["currency"] if d["products"] else "USD"
    return {"currency": currency, "amount": int(total) if float(total).is_integer() else total}


def _lead_overdue(state: NutshellState, d: dict[str, Any]) -> bool:
    return d["status"] == LEAD_OPEN and d["due_time"] is not None and d["due_time"] < state.now()


def lead_stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    """A lead stub as live recordings show it (getContact's `leads`, findLeads): `closedTime` only once the lead
    is closed. Unconfirmed: `completion` and `nextStepDueTime` come from pipelines the sandbox does not keep; we
    send 0 and null."""
    d = state.visible(rec)
    links = state.lead_links(rec)
    last_contacted, _ = state.contact_history(state.activities_of_lead(rec.id))
    primary = state.records["accounts"][links["accounts"][0]] if d["primary_account"] in links["accounts"] else None
    contact = state.records["contacts"][links["contacts"][0]] if links["contacts"] else None
    out = {
        "stub": True,
        **_base(state, rec),
        "name": d["name"],
        "description": d["description"] or "",
        "status": d["status"],
        "completion": 0,
        "value": _lead_value(d),
        "primaryAccountName": primary.data["name"] if primary is not None else None,
        "primaryContactName": contact.data["name"] if contact is not None else None,
        "isOverdue": _lead_overdue(state, d),
        "lastContactedDate": atom(last_contacted),
        "dueTime": atom(d["due_time"]),
        "nextStepDueTime": None,
    }
    if d["closed_time"] is not None:
        out["closedTime"] = atom(d["closed_time"])
    return out


def lead_full(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """A full lead, after a 2024 live recording of findLeads (biguscj7/nutshell tests/findLeadsNonStub.json).
    Pipelines, competitors, channels and processes are not kept by the sandbox: null or empty. Unconfirmed:
    `urgency` (a numeric string live); we send null."""
    d = state.visible(rec)
    stub_ = lead_stub(state, rec)
    counts = {"0": 0, "1": 0, "2": 0, "-1": 0}
    for act in state.activities_of_lead(rec.id):
        counts[str(_status(state, act.data))] += 1
    accounts = [
        {**account_stub(state, state.records["accounts"][a["id"]]), "relationship": a["relationship"] or None}
        for a in d["accounts"]
    ]
    primary = accounts[0] if accounts and accounts[0]["id"] == d["primary_account"] else None
    assignee = d["assignee"]
    value = stub_["value"]
    out = {
        **_base(state, rec),
        "name": d["name"],
        "description": d["description"] or "",
        "htmlUrl": f"{base}/lead/{d['number']}",
        "htmlUrlPath": f"/lead/{d['number']}",
        "avatarUrl": f"{base}/avatar/leads/{rec.id}",
        "creator": _user_ref(state, d["creator"]),
        "primaryAccount": primary,
        "milestone": None,
        "stageset": None,
        "activitiesCount": counts,
        "status": d["status"],
        "confidence": d["confidence"],
        "completion": 0,
        "urgency": None,
        "isOverdue": stub_["isOverdue"],
        "lastContactedDate": stub_["lastContactedDate"],
        "market": _ref_stub(state, "markets", d["market"]),
        "assignee": None if assignee is None else stub(state, state.records[assignee["kind"]][assignee["id"]]),
        "sources": [_ref_stub(state, "sources", s) for s in d["sources"]],
        "competitors": [],
        "products": [
            {
                **reference_stub(state, state.records["products"][p["id"]]),
                "relationship": p["relationship"] or None,
                "price": dict(p["price"]),
                "quantity": p["quantity"],
            }
            for p in d["products"]
        ],
        "contacts": [
            {**contact_stub(state, state.records["contacts"][c["id"]]), "relationship": c["relationship"]}
            for c in d["contacts"]
        ],
        "accounts": [a for a in accounts if a is not primary],
        "tags": [state.records["tags"][t].data["name"] for t in d["tags"]],
        "mergedWith": None,
        "mergedInto": [],
        "clonedFrom": None,
        "priority": 0,
        "channels": [],
        "dueTime": stub_["dueTime"],
        "nextStepDueTime": None,
        "value": value,
        "normalizedValue": dict(value),
        "processes": [],
        "notes": [note(state, n, base) for n in state.notes_of("leads", rec.id) if state.is_live(n)],
        "estimatedValue": dict(value),
    }
    if "closedTime" in stub_:
        out["closedTime"] = stub_["closedTime"]
    if d["custom"]:
        out["customFields"] = dict(d["custom"])
    return out


def note(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """Unconfirmed: the JSON-RPC Note's fields (reference §3.6); we choose id, rev, times, note, creator,
    entity (the parent stub) and, on an activity's log note, files."""
    d = state.visible(rec)
    parent = state.records[d["parent"]["kind"]][d["parent"]["id"]]
    out = {
        **_base(state, rec),
        "note": d["body"],
        "creator": _user_ref(state, d["creator"]),
        "entity": {"stub": True, "id": parent.id, "entityType": ENTITY_TYPES[parent.kind], "rev": state.rev_of(parent)},
    }
    if d.get("is_log_note"):
        out["files"] = [file(state, state.records["files"][f], base) for f in d["files"]]
    return out


def file(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = rec.data
    return {
        "entityType": "Files",
        "id": rec.id,
        "uri": f"{base}/file/api/{rec.id}",
        "name": d["name"],
        "mime": d["mime"],
        "rev": state.rev_of(rec),
        "size": d["size"],
    }


def custom_field(state: NutshellState, rec: Record) -> dict[str, Any]:
    """Unconfirmed: findCustomFields' EntityAttribute fields beyond `name` (reference §11.7); we choose these."""
    d = rec.data
    return {
        "id": rec.id,
        "entityType": "EntityAttributes",
        "rev": state.rev_of(rec),
        "name": d["name"],
        "type": d["type"],
        "isMultiple": d["is_multiple"],
        "choices": list(d["choices"]),
    }


# --- reading input ---------------------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if isinstance(value, dict):
        display = value.get("displayName")
        if isinstance(display, str) and display.strip():
            return display
        return " ".join(str(value.get(k) or "") for k in ("givenName", "familyName")).strip()
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"name must be text or {{givenName, familyName}}, not {value!r}")
    return value


def _entity_ref(value: Any, kinds: tuple[str, ...], what: str) -> tuple[str, int]:
    if isinstance(value, dict) and isinstance(value.get("id"), int):
        kind = KINDS_BY_ENTITY_TYPE.get(value.get("entityType", ENTITY_TYPES[kinds[0]]))
        if kind in kinds:
            return kind, value["id"]
    names = "/".join(ENTITY_TYPES[k] for k in kinds)
    raise invalid(f"{what} must be {{'entityType': {names}, 'id': <int>}}, not {value!r}")


def parse_peep(state: NutshellState, kind: str, payload: Any, current: Record | None) -> dict[str, Any]:
    """A `contact` / `account` object of new*/edit* -> content changes. Multi-value fields replace the whole set
    (reference §2.2); `note` is returned as `_note`. Unconfirmed: whether `customFields` on an edit replaces or
    merges; we merge (a name set to null clears it)."""
    _check_keys(payload, PEEP_KEYS[kind], kind[:-1])
    out: dict[str, Any] = {}
    if "name" in payload:
        out["name"] = _name(payload["name"])
    if "description" in payload:
        out["description"] = payload["description"]
    if "jobTitle" in payload:
        out["job_title"] = payload["jobTitle"]
    for key, field in RPC_MULTI.items():
        if key in payload:
            out[field] = multi_in(field, payload[key])
    if "customFields" in payload:
        out["custom"] = _custom_values(payload["customFields"], current)
    if "tags" in payload:
        out["tags"] = [_tag_id(state, kind, t) for t in _list(payload["tags"], "tags")]
    if "owner" in payload:
        out["owner"] = None if payload["owner"] is None else _entity_ref(payload["owner"], ("users",), "owner")[1]
    links_key = "accounts" if kind == "contacts" else "contacts"
    if links_key in payload:
        links = []
        for element in _list(payload[links_key], links_key):
            _, rid = _entity_ref(element, (links_key,), f"each of {links_key}")
            links.append({"id": rid, "relationship": str(element.get("relationship") or "")})
        out["accounts" if kind == "contacts" else "_contacts"] = links
    for key, field in REFERENCE_IDS.items():
        if key in payload:
            out[field] = _optional_id(payload[key], key)
    _notes(payload, out)
    return out


def _notes(payload: dict[str, Any], out: dict[str, Any]) -> None:
    """`note` on new*/edit* payloads: text (or a list of texts) appended as Notes, returned as `_note`."""
    if "note" in payload:
        notes = payload["note"] if isinstance(payload["note"], list) else [payload["note"]]
        if not all(isinstance(n, str) and n.strip() for n in notes):
            raise invalid("note must be non-empty text")
        out["_note"] = notes


def _optional_id(value: Any, what: str) -> int | None:
    """An integer id (a digit string too) or null; `{"id": N}` is accepted as the same thing."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{what} must be an integer id, not {value!r}")
    return value


def _links(value: Any, kinds: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    """`[{"id": N, "relationship": "..."}]` (an `entityType` on each is accepted, as Nutshell's sample sends
    when editing a lead) -> [{id, relationship}]."""
    out = []
    for element in _list(value, what):
        _, rid = _entity_ref(element, kinds, f"each of {what}")
        relationship = element.get("relationship")
        if relationship is not None and not isinstance(relationship, str):
            raise invalid(f"a relationship in {what} must be text")
        out.append({"id": rid, "relationship": relationship or ""})
    return out


def parse_lead(state: NutshellState, payload: Any, current: Record | None) -> dict[str, Any]:
    """A `lead` object of newLead/editLead -> content changes (relations replace the whole set, as on contacts;
    `note` is returned as `_note`)."""
    _check_keys(payload, LEAD_KEYS, "lead")
    out: dict[str, Any] = {}
    for key in ("name", "description", "status", "confidence", "value"):
        if key in payload:
            out[key] = payload[key]
    if "market" in payload:
        out["market"] = _optional_id(payload["market"], "market")
    if "primaryAccount" in payload:
        out["primary_account"] = _optional_id(payload["primaryAccount"], "primaryAccount")
    if "accounts" in payload:
        out["accounts"] = _links(payload["accounts"], ("accounts",), "accounts")
    if "contacts" in payload:
        out["contacts"] = _links(payload["contacts"], ("contacts",), "contacts")
    if "sources" in payload:
        out["sources"] = [_optional_id(s, "each of sources") for s in _list(payload["sources"], "sources")]
    if "products" in payload:
        products = []
        for p in _list(payload["products"], "products"):
            if not isinstance(p, dict):
                raise invalid("each of products must be {'id': N, 'quantity': ..., 'price': {...}}")
            products.append(
                {
                    "id": _optional_id(p.get("id"), "each product's id"),
                    "quantity": p.get("quantity", 1),
                    "price": p.get("price"),
                    "relationship": p.get("relationship") or "",
                }
            )
        out["products"] = products
    if "assignee" in payload:
        value = payload["assignee"]
        if value is None:
            out["assignee"] = None
        else:
            kind, rid = _entity_ref(value, ("users", "teams"), "assignee")
            out["assignee"] = {"kind": kind, "id": rid}
    if "tags" in payload:
        out["tags"] = [_tag_id(state, "leads", t) for t in _list(payload["tags"], "tags")]
    if "customFields" in payload:
        out["custom"] = _custom_values(payload["customFields"], current)
    if "dueTime" in payload:
        try:
            out["due_time"] = None if payload["dueTime"] is None else parse_time(payload["dueTime"], "dueTime")
        except ValueError as exc:
            raise invalid(str(exc)) from exc
    _notes(payload, out)
    return out


def _custom_values(values: Any, current: Record | None) -> dict[str, Any]:
    """`customFields` of a payload merged over the record's current values (a name set to null clears it)."""
    if values == []:
        values = {}
    if not isinstance(values, dict):
        raise invalid("customFields must be an object keyed by custom field name")
    merged = dict(current.data["custom"]) if current is not None else {}
    for name, value in values.items():
        merged = {k: v for k, v in merged.items() if k.lower() != str(name).lower()} | {name: value}
    return merged


def _tag_id(state: NutshellState, kind: str, name: Any) -> int:
    if not isinstance(name, str):
        raise invalid(f"tags are tag names, not {name!r}")
    for tag in state.live("tags"):
        if tag.data["tag_type"] == kind and tag.data["name"].lower() == name.strip().lower():
            return tag.id
    raise invalid(f"Tag {name!r} does not exist; create it first")


def parse_activity(payload: Any) -> dict[str, Any]:
    """An `activity` object of newActivity/editActivity -> content changes (`logNote` returned as `_log_note`)."""
    _check_keys(payload, ACTIVITY_KEYS, "activity")
    out: dict[str, Any] = {}
    for key in ("name", "description", "location", "transcription"):
        if key in payload:
            out[key] = payload[key]
    if "activityTypeId" in payload or "activityType" in payload:
        value = payload.get("activityTypeId", payload.get("activityType"))
        out["type"] = value.get("id") if isinstance(value, dict) else value
        if isinstance(out["type"], bool) or not isinstance(out["type"], int):
            raise invalid(f"activityTypeId must be an integer id, not {value!r}")
    for src, dst in (("startTime", "start"), ("endTime", "end")):
        if src in payload:
            try:
                out[dst] = parse_time(payload[src], src)
            except ValueError as exc:
                raise invalid(str(exc)) from exc
    for src, dst in (("isAllDay", "all_day"), ("isFlagged", "flagged")):
        if src in payload:
            out[dst] = bool(payload[src])
    if "status" in payload:
        if payload["status"] not in (ACTIVITY_SCHEDULED, ACTIVITY_LOGGED, ACTIVITY_CANCELLED):
            raise invalid("status must be 0 (scheduled), 1 (logged) or 2 (cancelled)")
        out["status"] = payload["status"]
    if "participants" in payload:
        out["participants"] = []
        for p in _list(payload["participants"], "participants"):
            kind, rid = _entity_ref(p, ("contacts", "users", "accounts"), "each participant")
            out["participants"].append({"kind": kind, "id": rid})
    if "leads" in payload:
        out["leads"] = [_entity_ref(v, ("leads",), "each of leads")[1] for v in _list(payload["leads"] or [], "leads")]
    if "logNote" in payload:
        out["_log_note"] = payload["logNote"]
    return out


def _check_keys(payload: Any, allowed: set[str], what: str) -> None:
    """An entity payload must be an object of known fields; unknown ones are refused by name."""
    if not isinstance(payload, dict):
        raise invalid(f"{what} must be an object")
    unknown = set(payload) - allowed
    if unknown:
        raise invalid(f"Unknown {what} field(s): {', '.join(sorted(unknown))}")


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"{what} must be a list")
    return value
