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
    },
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


def stub(state: NutshellState, rec: Record) -> dict[str, Any]:
    return {
        "contacts": contact_stub,
        "accounts": account_stub,
        "users": user_stub,
        "activities": activity_stub,
        "activityTypes": activity_type_stub,
    }[rec.kind](state, rec)


def _peep_common(state: NutshellState, rec: Record, base: str, d: dict[str, Any]) -> dict[str, Any]:
    notes = [note(state, n, base) for n in state.notes_of(rec.kind, rec.id) if state.is_live(n)]
    return {
        "htmlUrl": f"{base}/{'person' if rec.kind == 'contacts' else 'company'}/{rec.id}-{slug(d['name'])}",
        "avatarUrl": f"{base}/avatar/{rec.kind}/{rec.id}",
        "description": d["description"],
        "creator": _user_ref(state, d["creator"]),
        "owner": _user_ref(state, d["owner"]),
        "leads": [],
        "notes": notes,
        "tags": [state.records["tags"][t].data["name"] for t in d["tags"]],
        "legacyId": None,
        "territory": None,
        "lastContactedDate": None,
        "contactedCount": 0,
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
        "industry": None,
        "accountType": None,
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


def activity_full(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = state.visible(rec)
    out = activity_stub(state, rec, base)
    del out["stub"]
    participants = [stub(state, state.records[p["kind"]][p["id"]]) for p in d["participants"]]
    return out | {
        "description": d.get("description") or "",
        "location": d.get("location"),
        "lead": None,
        "leads": [],
        "loggedBy": _user_ref(state, d.get("logger")),
        "participants": participants,
        "logDescription": None,
        "creator": _user_ref(state, d["creator"]),
    }


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
    if not isinstance(payload, dict):
        raise invalid(f"{kind[:-1]} must be an object")
    unknown = set(payload) - PEEP_KEYS[kind]
    if unknown:
        raise invalid(f"Unknown {kind[:-1]} field(s): {', '.join(sorted(unknown))}")
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
        values = payload["customFields"]
        if values == []:
            values = {}
        if not isinstance(values, dict):
            raise invalid("customFields must be an object keyed by custom field name")
        merged = dict(current.data["custom"]) if current is not None else {}
        for name, value in values.items():
            merged = {k: v for k, v in merged.items() if k.lower() != str(name).lower()} | {name: value}
        out["custom"] = merged
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
    if "note" in payload:
        notes = payload["note"] if isinstance(payload["note"], list) else [payload["note"]]
        if not all(isinstance(n, str) and n.strip() for n in notes):
            raise invalid("note must be non-empty text")
        out["_note"] = notes
    return out


def _tag_id(state: NutshellState, kind: str, name: Any) -> int:
    if not isinstance(name, str):
        raise invalid(f"tags are tag names, not {name!r}")
    for tag in state.live("tags"):
        if tag.data["tag_type"] == kind and tag.data["name"].lower() == name.strip().lower():
            return tag.id
    raise invalid(f"Tag {name!r} does not exist; create it first")


def parse_activity(payload: Any) -> dict[str, Any]:
    """An `activity` object of newActivity/editActivity -> content changes (`logNote` returned as `_log_note`)."""
    if not isinstance(payload, dict):
        raise invalid("activity must be an object")
    unknown = set(payload) - ACTIVITY_KEYS
    if unknown:
        raise invalid(f"Unknown activity field(s): {', '.join(sorted(unknown))}")
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
    if payload.get("leads"):
        raise invalid("Leads are not supported by the sandbox")
    if "logNote" in payload:
        out["_log_note"] = payload["logNote"]
    return out


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"{what} must be a list")
    return value
