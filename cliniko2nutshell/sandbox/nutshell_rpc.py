"""The JSON-RPC API at POST /api/v1/json (and endpoint discovery at POST /v1/json), over the shared state.

Envelope (reference §1.4): named params (positional ones are mapped in signature order), `id` echoed, `jsonrpc`
optional, the body parsed as JSON whatever the Content-Type; success is `{"result", "id", "error": null,
"jsonrpc"}`; an error is `{"error": {"code", "message", "data": null}, "id", "jsonrpc"}` with an HTTP status that
tracks it (401, 404 for -32601, 409, 400 for bad input). GET answers a small SMD without auth.

Unconfirmed: whether a success carries `"error": null`. The documentation's getContact example and a 2024 live
recording (findUsers) do, another 2024 recording (findActivities) and a 2026 report do not; Nutshell's own PHP
client reads `error` on every answer. We send it, so clients written against the documentation work; our client
accepts either.

Methods: those the migration needs, the rest of contacts and accounts (new, edit, find, search), leads (new, get,
edit, delete, find: what Nutshell's own PHP sample calls), the reference lists (findTeams, findIndustries,
findAccountTypes, findTerritories, findMarkets, findSources, findProducts), searchContacts, searchAccounts,
searchLeads, searchUniversal, and instanceData (the connection test reads the company's name). Any other Nutshell
method answers -32601 here, as an unknown one does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cliniko2nutshell.sandbox import nutshell_rpc_shapes as shapes
from cliniko2nutshell.sandbox.knobs import LABEL_KEY
from cliniko2nutshell.sandbox.nutshell_auth import Guard, Principal
from cliniko2nutshell.sandbox.nutshell_state import (
    ACTIVITY_LOGGED,
    NutshellError,
    NutshellState,
    Record,
    invalid,
)

FIND_DEFAULTS = {"orderBy": None, "orderDirection": "ASC", "limit": 50, "page": 1, "stubResponses": True}
SINGULAR = {
    "contacts": "Contact",
    "accounts": "Account",
    "activities": "Activity",
    "notes": "Note",
    "users": "User",
    "leads": "Lead",
}
SEARCH_BY_EMAIL_LIMIT = 5  # "up to 5 stubs, grouped by entity type" (reference §2.2)
# Unconfirmed: the default `limit` of search* (reference §5.3); we choose 10.
SEARCH_LIMIT = 10
LIST_DEFAULTS = {"orderBy": None, "orderDirection": "ASC", "limit": 50, "page": 1}


@dataclass(frozen=True, slots=True)
class Call:
    state: NutshellState
    principal: Principal
    base: str  # http://127.0.0.1:<port>, for file URIs and htmlUrls

    @property
    def actor(self) -> int:
        return self.principal.user_id


@dataclass(frozen=True, slots=True)
class Method:
    fn: Callable[..., Any]
    params: tuple[str, ...]  # in signature order
    required: frozenset[str]
    defaults: dict[str, Any]


METHODS: dict[str, Method] = {}


def rpc(name: str, *params: str, **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a method. `params` in signature order; those without a default in `defaults` are required."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        required = frozenset(p for p in params if p not in defaults)
        METHODS[name] = Method(fn, params, required, defaults)
        return fn

    return register


def bad_params(detail: str) -> NutshellError:
    return NutshellError(400, "Invalid params", detail, code=-32602)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise bad_params(f"{what} must be an integer id, not {value!r}")
    return value


def _get(call: Call, kind: str, rid: Any, what: str) -> Record:
    rec = call.state.records[kind].get(_int(rid, what))
    if rec is None:
        raise NutshellError(404, "Not Found", f"{SINGULAR[kind]} {rid} not found")
    return rec


# --- contacts and accounts -------------------------------------------------------------------------------------


def _full(call: Call, rec: Record) -> dict[str, Any]:
    render = {
        "contacts": shapes.contact_full,
        "accounts": shapes.account_full,
        "activities": shapes.activity_full,
        "leads": shapes.lead_full,
    }
    return render[rec.kind](call.state, rec, call.base)


def _append_notes(call: Call, rec: Record, notes: list[str]) -> None:
    """`note` on a new*/edit* appends a Note (reference §2.2)."""
    for text in notes:
        call.state.create("notes", {"body": text, "parent": {"kind": rec.kind, "id": rec.id}}, call.actor)


def _write_peep(call: Call, kind: str, payload: Any, current: Record | None, rev: Any) -> Record:
    state = call.state
    changes = shapes.parse_peep(state, kind, payload, current)
    notes = changes.pop("_note", [])
    contacts = changes.pop("_contacts", None)
    if contacts is not None:
        state.require_live_refs("contacts", [c["id"] for c in contacts])
    if current is None:
        rec = state.create(kind, changes, call.actor)
    else:
        rec = state.update(current, changes, call.actor, rev=rev)
    if contacts is not None:
        state.set_account_contacts(rec, contacts, call.actor)
    _append_notes(call, rec, notes)
    return rec


@rpc("getContact", "contactId", "rev", rev=None)
def get_contact(call: Call, contactId: Any, rev: Any) -> Any:
    # Unconfirmed: the "still valid" answer to a get* with a current rev (reference §11.3); we ignore `rev`.
    return _full(call, _get(call, "contacts", contactId, "contactId"))


@rpc("newContact", "contact")
def new_contact(call: Call, contact: Any) -> Any:
    return _full(call, _write_peep(call, "contacts", contact, None, None))


@rpc("editContact", "contactId", "rev", "contact")
def edit_contact(call: Call, contactId: Any, rev: Any, contact: Any) -> Any:
    rec = _get(call, "contacts", contactId, "contactId")
    return _full(call, _write_peep(call, "contacts", contact, rec, rev))


@rpc("deleteContact", "contactId", "rev")
def delete_contact(call: Call, contactId: Any, rev: Any) -> Any:
    call.state.delete(_get(call, "contacts", contactId, "contactId"), call.actor, rev=rev)
    return True


@rpc("getAccount", "accountId", "rev", rev=None)
def get_account(call: Call, accountId: Any, rev: Any) -> Any:
    return _full(call, _get(call, "accounts", accountId, "accountId"))


@rpc("newAccount", "account")
def new_account(call: Call, account: Any) -> Any:
    return _full(call, _write_peep(call, "accounts", account, None, None))


@rpc("editAccount", "accountId", "rev", "account")
def edit_account(call: Call, accountId: Any, rev: Any, account: Any) -> Any:
    rec = _get(call, "accounts", accountId, "accountId")
    return _full(call, _write_peep(call, "accounts", account, rec, rev))


@rpc("deleteAccount", "accountId", "rev")
def delete_account(call: Call, accountId: Any, rev: Any) -> Any:
    call.state.delete(_get(call, "accounts", accountId, "accountId"), call.actor, rev=rev)
    return True


def _ids(value: Any, what: str) -> set[int]:
    return {_int(v, what) for v in (value if isinstance(value, list) else [value])}


def _page(
    records: list[Record],
    sort_keys: dict[str, Callable[[Record], Any]],
    default: str,
    orderBy: Any,
    orderDirection: Any,
    limit: Any,
    page: Any,
) -> list[Record]:
    """Sort and cut one 1-based page. Unconfirmed: the largest `limit` (reference §11.4); we impose none."""
    key = sort_keys.get(orderBy or default)
    if key is None:
        raise bad_params(f"orderBy must be one of {', '.join(sort_keys)}")
    if orderDirection not in ("ASC", "DESC"):
        raise bad_params("orderDirection must be ASC or DESC")
    limit, page = _int(limit, "limit"), _int(page, "page")
    if limit < 1 or page < 1:
        raise bad_params("limit and page start at 1")
    ordered = sorted(records, key=lambda r: (key(r), r.id), reverse=orderDirection == "DESC")
    return ordered[(page - 1) * limit : page * limit]


PEEP_SORT: dict[str, Callable[[Record], Any]] = {
    "name": lambda r: r.data["name"].lower(),
    "id": lambda r: r.id,
    "createdTime": lambda r: r.created,
    "modifiedTime": lambda r: r.modified,
}


def _query(query: Any, allowed: set[str], kind: str) -> dict[str, Any]:
    """A find*'s `query` object, refused naming the keys the sandbox filters on when it holds others."""
    query = query or {}
    if not isinstance(query, dict):
        raise bad_params("query must be an object")
    if set(query) - allowed:
        raise bad_params(f"query keys the sandbox supports for {kind}: {', '.join(sorted(allowed))}")
    return query


def _tagged(state: NutshellState, records: list[Record], value: Any) -> list[Record]:
    """Records carrying any of the tag names in `value` (one name or a list)."""
    names = {str(t).lower() for t in (value if isinstance(value, list) else [value])}
    tag_names = {t.id: t.data["name"].lower() for t in state.live("tags")}
    return [r for r in records if names & {tag_names.get(t) for t in r.data["tags"]}]


def _find_peeps(call: Call, kind: str, query: Any, params: dict[str, Any]) -> list[Any]:
    state = call.state
    stubs = params.pop("stubResponses") is not False
    allowed = {"contacts": {"accountId", "tag", "leadId"}, "accounts": {"tag", "leadId"}}[kind]
    query = _query(query, allowed, kind)
    records = list(state.live(kind))
    if "leadId" in query:
        linked = {i for lid in _ids(query["leadId"], "leadId") for i in _lead_links(state, lid)[kind]}
        records = [r for r in records if r.id in linked]
    if "accountId" in query:
        wanted = _ids(query["accountId"], "accountId")
        records = [r for r in records if wanted & {a["id"] for a in state.visible(r)["accounts"]}]
    if "tag" in query:
        records = _tagged(state, records, query["tag"])
    page = _page(records, PEEP_SORT, "name", **params)
    return [shapes.stub(state, r) if stubs else _full(call, r) for r in page]


@rpc("findContacts", "query", *FIND_DEFAULTS, query=None, **FIND_DEFAULTS)
def find_contacts(call: Call, query: Any, **params: Any) -> Any:
    return _find_peeps(call, "contacts", query, params)


@rpc("findAccounts", "query", *FIND_DEFAULTS, query=None, **FIND_DEFAULTS)
def find_accounts(call: Call, query: Any, **params: Any) -> Any:
    return _find_peeps(call, "accounts", query, params)


def _lead_links(state: NutshellState, lead_id: int) -> dict[str, list[int]]:
    """The contacts and accounts of a lead; none for an unknown or deleted one (a find matches nothing)."""
    lead = state.records["leads"].get(lead_id)
    if lead is None or not state.is_live(lead):
        return {"contacts": [], "accounts": []}
    return state.lead_links(lead)


def _search(call: Call, kind: str, string: Any, limit: Any) -> list[Any]:
    if not isinstance(string, str):
        raise bad_params("string must be text")
    limit = _int(limit, "limit")
    if limit < 1:
        raise bad_params("limit starts at 1")
    return [shapes.stub(call.state, r) for r in call.state.search(kind, string)[:limit]]


@rpc("searchContacts", "string", "limit", limit=SEARCH_LIMIT)
def search_contacts(call: Call, string: Any, limit: Any) -> Any:
    return _search(call, "contacts", string, limit)


@rpc("searchAccounts", "string", "limit", limit=SEARCH_LIMIT)
def search_accounts(call: Call, string: Any, limit: Any) -> Any:
    return _search(call, "accounts", string, limit)


@rpc("searchLeads", "string", "limit", limit=SEARCH_LIMIT)
def search_leads(call: Call, string: Any, limit: Any) -> Any:
    return _search(call, "leads", string, limit)


@rpc("searchUniversal", "string")
def search_universal(call: Call, string: Any) -> Any:
    """Contacts, accounts and leads "similar to" the string, grouped by type (reference §2.2). Unconfirmed: how
    many of each; we choose the search* default."""
    return {kind: _search(call, kind, string, SEARCH_LIMIT) for kind in ("contacts", "accounts", "leads")}


@rpc("searchByEmail", "emailAddressString")
def search_by_email(call: Call, emailAddressString: Any) -> Any:
    if not isinstance(emailAddressString, str) or not emailAddressString.strip():
        raise bad_params("emailAddressString must be an e-mail address")
    state = call.state
    return {
        kind: [shapes.stub(state, r) for r in state.by_email(kind, emailAddressString)[:SEARCH_BY_EMAIL_LIMIT]]
        for kind in ("contacts", "accounts")
    }


# --- activities ------------------------------------------------------------------------------------------------


def _log_note_plan(payload: Any) -> tuple[str | None, list[int] | None, list[str]]:
    """(new body or None, ids of files to keep or None to leave them, names of files to reserve)."""
    if payload is None:
        return None, None, []
    if isinstance(payload, str):
        return payload, None, []
    if not isinstance(payload, dict):
        raise invalid("logNote must be an object or text")
    body = payload.get("note")
    if body is not None and not isinstance(body, str):
        raise invalid("logNote.note must be text")
    files = payload.get("files")
    if files is None:
        return body, None, []
    if not isinstance(files, list):
        raise invalid("logNote.files must be a list")
    keep: list[int] = []
    new: list[str] = []
    for f in files:
        if not isinstance(f, dict) or f.get("entityType", "Files") != "Files":
            raise invalid("each of logNote.files must be {'entityType': 'Files', 'name': ...} or an existing file")
        if "id" in f:
            keep.append(_int(f["id"], "file id"))
        elif isinstance(f.get("name"), str) and f["name"].strip():
            new.append(f["name"])
        else:
            raise invalid("a new file needs a name")
    return body, keep, new


def _apply_log_note(call: Call, act: Record, plan: tuple[str | None, list[int] | None, list[str]]) -> None:
    body, keep, new = plan
    if body is None and keep is None:
        return
    state = call.state
    note = state.log_note(act, call.actor)
    if body is not None:
        state.set_note_body(note, body, call.actor)
    if keep is not None:
        state.drop_files(note, set(keep), call.actor)
        for name in new:
            state.reserve_file(note, name, call.actor)


def _check_files_allowed(
    call: Call, act_status: int, current: Record | None, keep: list[int] | None, new: list[str]
) -> None:
    if not new:
        return
    if act_status != ACTIVITY_LOGGED:
        # Files live only on logged activities (reference §2.8). Unconfirmed: what a reservation on another
        # activity does; we refuse it.
        raise invalid("Files can only be attached to a logged activity (status 1)")
    note_files = set()
    if current is not None and current.data.get("log_note"):
        note_files = set(call.state.records["notes"][current.data["log_note"]].data["files"])
    stray = [f for f in keep or [] if f not in note_files]
    if stray:
        raise invalid(f"File {stray[0]} is not on this activity")


@rpc("newActivity", "activity")
def new_activity(call: Call, activity: Any) -> Any:
    changes = shapes.parse_activity(activity)
    plan = _log_note_plan(changes.pop("_log_note", None))
    # Unconfirmed: the defaults of a new activity; we choose activity type 1 and endTime = startTime.
    changes.setdefault("type", 1)
    if "start" in changes:
        changes.setdefault("end", changes["start"])
    _check_files_allowed(call, changes.get("status", 0), None, plan[1], plan[2])
    rec = call.state.create("activities", changes, call.actor)
    _apply_log_note(call, rec, plan)
    return _full(call, rec)


@rpc("getActivity", "activityId", "rev", rev=None)
def get_activity(call: Call, activityId: Any, rev: Any) -> Any:
    return _full(call, _get(call, "activities", activityId, "activityId"))


@rpc("editActivity", "activityId", "rev", "activity")
def edit_activity(call: Call, activityId: Any, rev: Any, activity: Any) -> Any:
    state = call.state
    rec = _get(call, "activities", activityId, "activityId")
    changes = shapes.parse_activity(activity)
    plan = _log_note_plan(changes.pop("_log_note", None))
    if state.is_live(rec):
        state.check_rev(rec, rev)
        _check_files_allowed(call, changes.get("status", rec.data["status"]), rec, plan[1], plan[2])
    rec = state.update(rec, changes, call.actor, rev=rev)
    _apply_log_note(call, rec, plan)
    return _full(call, rec)


@rpc("deleteActivity", "activityId", "rev")
def delete_activity(call: Call, activityId: Any, rev: Any) -> Any:
    call.state.delete(_get(call, "activities", activityId, "activityId"), call.actor, rev=rev)
    return True


@rpc("findActivities", "query", *FIND_DEFAULTS, query=None, **FIND_DEFAULTS)
def find_activities(call: Call, query: Any, **params: Any) -> Any:
    state = call.state
    allowed = {"contactId", "accountId", "userId", "status", "activityTypeId", "isFlagged", "leadId"}
    query = _query(query, allowed, "activities")
    records: list[Record] | None = None
    if "leadId" in query:
        records = [a for lid in sorted(_ids(query["leadId"], "leadId")) for a in state.activities_of_lead(lid)]
    for key, kind in (("contactId", "contacts"), ("accountId", "accounts"), ("userId", "users")):
        if key in query:
            found = {r.id: r for rid in _ids(query[key], key) for r in state.activities_of(kind, rid)}
            records = [r for r in (records if records is not None else found.values()) if r.id in found]
    if records is None:
        records = list(state.live("activities"))
    if "status" in query:
        statuses = _ids(query["status"], "status")
        records = [r for r in records if shapes.activity_stub(state, r)["status"] in statuses]
    if "activityTypeId" in query:
        types = _ids(query["activityTypeId"], "activityTypeId")
        records = [r for r in records if r.data["type"] in types]
    if "isFlagged" in query:
        records = [r for r in records if r.data["flagged"] == bool(query["isFlagged"])]
    stubs = params.pop("stubResponses") is not False
    sort_keys = {
        "startTime": lambda r: r.data["start"],
        "name": lambda r: r.data["name"].lower(),
        "id": lambda r: r.id,
        "modifiedTime": lambda r: r.modified,
    }
    page = _page(records, sort_keys, "startTime", **params)
    return [shapes.activity_stub(state, r, call.base) if stubs else _full(call, r) for r in page]


@rpc(
    "findActivityTypes",
    "orderBy",
    "orderDirection",
    "limit",
    "page",
    orderBy=None,
    orderDirection="ASC",
    limit=50,
    page=1,
)
def find_activity_types(call: Call, **params: Any) -> Any:
    records = list(call.state.records["activityTypes"].values())
    sort_keys = {"name": lambda r: r.data["name"].lower(), "id": lambda r: r.id}
    return [shapes.activity_type_stub(call.state, r) for r in _page(records, sort_keys, "name", **params)]


# --- leads -----------------------------------------------------------------------------------------------------


def _write_lead(call: Call, payload: Any, current: Record | None, rev: Any) -> Record:
    state = call.state
    changes = shapes.parse_lead(state, payload, current)
    notes = changes.pop("_note", [])
    if current is None:
        rec = state.create("leads", changes, call.actor)
    else:
        rec = state.update(current, changes, call.actor, rev=rev)
    _append_notes(call, rec, notes)
    return rec


@rpc("newLead", "lead")
def new_lead(call: Call, lead: Any) -> Any:
    """Every field is optional (reference §2.9). Unconfirmed: a new lead's pipeline; the sandbox keeps none."""
    return _full(call, _write_lead(call, lead, None, None))


@rpc("getLead", "leadId", "rev", rev=None)
def get_lead(call: Call, leadId: Any, rev: Any) -> Any:
    return _full(call, _get(call, "leads", leadId, "leadId"))


@rpc("editLead", "leadId", "rev", "lead")
def edit_lead(call: Call, leadId: Any, rev: Any, lead: Any) -> Any:
    rec = _get(call, "leads", leadId, "leadId")
    return _full(call, _write_lead(call, lead, rec, rev))


@rpc("deleteLead", "leadId", "rev")
def delete_lead(call: Call, leadId: Any, rev: Any) -> Any:
    call.state.delete(_get(call, "leads", leadId, "leadId"), call.actor, rev=rev)
    return True


LEAD_SORT: dict[str, Callable[[Record], Any]] = {
    "id": lambda r: r.id,
    "name": lambda r: r.data["name"].lower(),
    "createdTime": lambda r: r.created,
    "modifiedTime": lambda r: r.modified,
    "dueTime": lambda r: r.data["due_time"] or 0,
}


@rpc("findLeads", "query", *FIND_DEFAULTS, query=None, **FIND_DEFAULTS)
def find_leads(call: Call, query: Any, **params: Any) -> Any:
    state = call.state
    query = _query(query, {"status", "accountId", "contactId", "tag", "number"}, "leads")
    records = list(state.live("leads"))
    if "status" in query:
        statuses = _ids(query["status"], "status")
        records = [r for r in records if r.data["status"] in statuses]
    for key, kind in (("accountId", "accounts"), ("contactId", "contacts")):
        if key in query:
            wanted = _ids(query[key], key)
            records = [r for r in records if wanted & set(state.lead_links(r)[kind])]
    if "tag" in query:
        records = _tagged(state, records, query["tag"])
    if "number" in query:
        numbers = _ids(query["number"], "number")
        records = [r for r in records if r.data["number"] in numbers]
    stubs = params.pop("stubResponses") is not False
    page = _page(records, LEAD_SORT, "id", **params)
    return [shapes.lead_stub(state, r) if stubs else _full(call, r) for r in page]


# --- reference lists -------------------------------------------------------------------------------------------


def _reference_finder(name: str, kind: str) -> None:
    """find<Things>(orderBy, orderDirection, limit, page): stubs of a seeded reference list."""

    def find(call: Call, **params: Any) -> Any:
        records = list(call.state.records[kind].values())
        sort_keys = {"name": lambda r: r.data["name"].lower(), "id": lambda r: r.id}
        return [shapes.reference_stub(call.state, r) for r in _page(records, sort_keys, "name", **params)]

    rpc(name, *LIST_DEFAULTS, **LIST_DEFAULTS)(find)


for _name, _kind in (
    ("findTeams", "teams"),
    ("findIndustries", "industries"),
    ("findAccountTypes", "accountTypes"),
    ("findTerritories", "territories"),
    ("findMarkets", "markets"),
    ("findSources", "sources"),
):
    _reference_finder(_name, _kind)


@rpc("findProducts", *FIND_DEFAULTS, **FIND_DEFAULTS)
def find_products(call: Call, **params: Any) -> Any:
    """Products: stubs, or with `stubResponses: false` their price too. Unconfirmed: a full product's fields;
    we add `price`."""
    stubs = params.pop("stubResponses") is not False
    records = list(call.state.records["products"].values())
    sort_keys = {"name": lambda r: r.data["name"].lower(), "id": lambda r: r.id}
    out = []
    for r in _page(records, sort_keys, "name", **params):
        item = shapes.reference_stub(call.state, r)
        if not stubs:
            del item["stub"]
            item["price"] = dict(r.data["price"])
        out.append(item)
    return out


# --- users, custom fields, notes, misc -------------------------------------------------------------------------


@rpc(
    "findUsers",
    "query",
    "orderBy",
    "orderDirection",
    "limit",
    "page",
    query=None,
    orderBy=None,
    orderDirection="ASC",
    limit=50,
    page=1,
)
def find_users(call: Call, query: Any, **params: Any) -> Any:
    if query not in (None, {}, []):
        raise bad_params("the sandbox supports findUsers without a query")
    sort_keys = {
        "last_name": lambda r: (r.data["last_name"].lower(), r.data["first_name"].lower()),
        "first_name": lambda r: r.data["first_name"].lower(),
        "id": lambda r: r.id,
    }
    records = list(call.state.records["users"].values())
    return [shapes.user_stub(call.state, r) for r in _page(records, sort_keys, "last_name", **params)]


@rpc("getUser", "userId", "rev", userId=None, rev=None)
def get_user(call: Call, userId: Any, rev: Any) -> Any:
    """Without `userId`: the authenticated user (reference §2.6)."""
    rid = call.actor if userId is None else userId
    return shapes.user_full(call.state, _get(call, "users", rid, "userId"))


@rpc("instanceData")
def instance_data(call: Call) -> Any:
    """The authenticated instance (reference §2.9: "info about the authenticated instance").

    Unconfirmed: the answer's shape is not documented; we choose `{id, name, domain}` (the instance id as REST's
    `meta.instanceId` gives it). The client reads `name` and tolerates its absence."""
    state = call.state
    return {"id": state.instance_id, "name": state.company_name, "domain": state.company_domain}


@rpc("findCustomFields")
def find_custom_fields(call: Call) -> Any:
    return {
        entity: [shapes.custom_field(call.state, r) for r in call.state.custom_fields(entity)]
        for entity in ("Leads", "Contacts", "Accounts")
    }


@rpc("newNote", "entity", "note")
def new_note(call: Call, entity: Any, note: Any) -> Any:
    kind, rid = shapes._entity_ref(entity, ("contacts", "accounts", "leads"), "entity")
    if not isinstance(note, str) or not note.strip():
        raise invalid("note must be non-empty text")
    rec = call.state.create("notes", {"body": note, "parent": {"kind": kind, "id": rid}}, call.actor)
    return shapes.note(call.state, rec, call.base)


@rpc("getNote", "noteId", "rev", rev=None)
def get_note(call: Call, noteId: Any, rev: Any) -> Any:
    return shapes.note(call.state, _get(call, "notes", noteId, "noteId"), call.base)


@rpc("deleteNote", "noteId", "rev")
def delete_note(call: Call, noteId: Any, rev: Any) -> Any:
    call.state.delete(_get(call, "notes", noteId, "noteId"), call.actor, rev=rev)
    return True


@rpc("getUpdateTimes")
def get_update_times(call: Call) -> Any:
    """When each bin last changed: a cheap call that proves the credentials work (reference §2.9)."""
    state = call.state
    out = {}
    for kind, bin_name in (
        ("users", "Users"),
        ("contacts", "Contacts"),
        ("accounts", "Accounts"),
        ("activities", "Activities"),
        ("activityTypes", "Activity_Types"),
        ("notes", "Notes"),
        ("leads", "Leads"),
    ):
        times = [r.modified for r in state.records[kind].values()]
        out[bin_name] = shapes.atom(max(times)) if times else None
    return out


# --- HTTP ------------------------------------------------------------------------------------------------------


def _answer(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=headers)


def success(result: Any, rid: Any) -> dict[str, Any]:
    return {"result": result, "id": rid, "error": None, "jsonrpc": "2.0"}


def error_response(exc: NutshellError, rid: Any) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": exc.message, "data": None}, "id": rid, "jsonrpc": "2.0"}
    return _answer(body, exc.status, exc.headers)


async def _envelope(request: Request) -> tuple[dict[str, Any], Any]:
    """(the request object, its id). Raises NutshellError with JSON-RPC codes for a malformed envelope."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NutshellError(400, "Parse error", "Parse error: the body is not JSON", code=-32700) from exc
    if isinstance(body, list):
        # Unconfirmed: batch requests (reference §11.2); we choose to refuse them.
        raise NutshellError(400, "Invalid Request", "Batch requests are not supported", code=-32600)
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise NutshellError(400, "Invalid Request", "Invalid Request: a JSON-RPC call needs a method", code=-32600)
    return body, body.get("id")


def _arguments(method: Method, params: Any) -> dict[str, Any]:
    if params is None:
        params = {}
    if isinstance(params, list):
        # Unconfirmed: positional params (reference §11.2); we map them in signature order.
        if len(params) > len(method.params):
            raise bad_params(f"at most {len(method.params)} params")
        params = dict(zip(method.params, params, strict=False))
    if not isinstance(params, dict):
        raise bad_params("params must be an object")
    unknown = set(params) - set(method.params)
    if unknown:
        raise bad_params(f"unknown param(s): {', '.join(sorted(unknown))}")
    missing = method.required - set(params)
    if missing:
        raise bad_params(f"missing param(s): {', '.join(sorted(missing))}")
    return {**method.defaults, **params}


def rpc_routes(state: NutshellState, guard: Guard) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return _answer(smd())
        rid = None
        try:
            body, rid = await _envelope(request)
            request.scope[LABEL_KEY] = f"rpc {body['method']}"
            principal = guard.check(request.headers.get("authorization"))
            method = METHODS.get(body["method"])
            if method is None:
                raise NutshellError(404, "Method not found", "Method not found", code=-32601)
            arguments = _arguments(method, body.get("params"))
            call = Call(state, principal, str(request.base_url).rstrip("/"))
            with state.lock:
                result = method.fn(call, **arguments)
        except NutshellError as exc:
            return error_response(exc, rid)
        return _answer(success(result, rid))

    async def discovery(request: Request) -> Response:
        rid = None
        try:
            body, rid = await _envelope(request)
            if body["method"] != "getApiForUsername":
                raise NutshellError(404, "Method not found", "Method not found", code=-32601)
            params = body.get("params")
            username = params[0] if isinstance(params, list) and params else (params or {}).get("username")
            if not isinstance(username, str) or not username.strip():
                raise bad_params("username is required")
            user = state.user_by_login(username, include_disabled=True)
            if user is not None and not user.data["is_enabled"]:
                # Disabled users get an error from discovery (reference §1.2). Unconfirmed: its code; we choose 403.
                raise NutshellError(403, "Forbidden", "This user is disabled")
        except NutshellError as exc:
            return error_response(exc, rid)
        host = request.url.netloc
        return _answer(success({"api": host, "login": host, "iphone": host}, rid))

    return [
        Route("/api/v1/json", endpoint, methods=["GET", "POST"]),
        Route("/v1/json", discovery, methods=["POST"]),
    ]


def smd() -> dict[str, Any]:
    """A small service description (Zend-style SMD 2.0) of the methods the sandbox serves."""
    return {
        "transport": "POST",
        "envelope": "JSON-RPC-2.0",
        "contentType": "application/json",
        "SMDVersion": "2.0",
        "target": "/api/v1/json",
        "services": {
            name: {
                "envelope": "JSON-RPC-2.0",
                "transport": "POST",
                "parameters": [{"name": p, "optional": p not in m.required} for p in m.params],
            }
            for name, m in sorted(METHODS.items())
        },
    }
