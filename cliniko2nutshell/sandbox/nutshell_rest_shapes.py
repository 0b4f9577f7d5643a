"""How the REST API shows and reads entities: `"<n>-<type>"` ids, Unix times, `links` objects, the JSON:API-ish
envelope, the documented error body. Shapes follow Nutshell's OpenAPI document and live responses captured by
public clients (reference §7); where the two differ, the live shape wins and the contract tests name the spec quirk.
"""

from __future__ import annotations

import html
from typing import Any

from cliniko2nutshell.sandbox.nutshell_state import (
    ACTIVITY_CANCELLED,
    ACTIVITY_LOGGED,
    MULTI_VALUE_FIELDS,
    NutshellError,
    NutshellState,
    Record,
    invalid,
)
from cliniko2nutshell.sandbox.nutshell_values import initials, item, parse_phone, slug, split_name

HTML_PATHS = {"contacts": "person", "accounts": "company", "activities": "activity", "notes": "note"}
TAG_TYPE_CODES = {"1": "leads", "2": "contacts", "3": "accounts"}
TAG_COLORS = {
    "1": "COLOR_DEFAULT",
    "2": "COLOR_GREY",
    "3": "COLOR_RED",
    "4": "COLOR_LIGHT_RED",
    "5": "COLOR_ORANGE",
    "6": "COLOR_LIGHT_ORANGE",
    "7": "COLOR_YELLOW",
    "8": "COLOR_LIGHT_YELLOW",
    "9": "COLOR_BLUE",
    "10": "COLOR_LIGHT_BLUE",
    "11": "COLOR_GREEN",
    "12": "COLOR_LIGHT_GREEN",
    "13": "COLOR_PURPLE",
    "14": "COLOR_LIGHT_PURPLE",
}
# Unconfirmed: whether unknown attributes are ignored or refused; we refuse them by name, so a payload that
# strays from the document is caught here rather than silently dropped.
PEEP_KEYS = {
    "contacts": {"name", "description", "jobTitle", "phones", "emails", "urls", "addresses", "customFields", "links"},
    "accounts": {"name", "description", "phones", "emails", "urls", "addresses", "customFields", "links"},
}
# Unconfirmed: whether REST accepts `isCancelled` on write (it is only documented on read); we choose to accept it,
# since cancelled appointments have no other REST spelling.
ACTIVITY_KEYS = {
    "name",
    "description",
    "note",
    "location",
    "activityType",
    "startTime",
    "endTime",
    "transcription",
    "isFlagged",
    "isLogged",
    "isAllDay",
    "isCancelled",
    "links",
}


# --- envelope and errors ---------------------------------------------------------------------------------------


def envelope(state: NutshellState, key: str, items: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"meta": {"instanceId": state.instance_id, **meta}, "links": {}, key: items}


def error_body(state: NutshellState, exc: NutshellError) -> dict[str, Any]:
    """The documented REST error body (reference §7.1)."""
    return {
        "meta": {"instanceId": state.instance_id},
        "links": {},
        "errors": [
            {
                "id": None,
                "type": "errors",
                "code": None,
                "detail": exc.detail,
                "href": None,
                "status": str(exc.status),
                "title": exc.title,
                "field": None,
            }
        ],
    }


# --- ids -------------------------------------------------------------------------------------------------------


def parse_id(value: Any, kind: str) -> int:
    """`"3-contacts"` -> 3; anything else is a 400 naming what was expected."""
    if isinstance(value, str):
        number, _, suffix = value.strip().partition("-")
        if number.isdigit() and suffix == kind:
            return int(number)
    raise invalid(f"{value!r} is not a {kind} id (expected '<n>-{kind}')")


def parse_path_id(value: str, kind: str) -> int:
    """An id in a URL path: a malformed one is simply not found."""
    number, _, suffix = value.partition("-")
    if number.isdigit() and suffix == kind:
        return int(number)
    raise NutshellError(404, "Not Found", f"{value!r} is not a {kind} id.")


def ref(kind: str, rid: int | None) -> str | None:
    return None if rid is None else f"{rid}-{kind}"


# --- rendering -------------------------------------------------------------------------------------------------


def _common(rec: Record, base: str, name: str) -> dict[str, Any]:
    path = (
        f"/{HTML_PATHS[rec.kind]}/{rec.id}-{slug(name)}"
        if rec.kind in ("contacts", "accounts")
        else (f"/{HTML_PATHS[rec.kind]}/{rec.id}")
    )
    return {"href": f"{base}/rest/{rec.kind}/{rec.rest_id}", "htmlUrl": base + path, "htmlUrlPath": path}


def _multi(field: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for it in items:
        value: Any = it["value"]
        if field == "phones":
            value = parse_phone(value)
        elif field == "addresses":
            # Live answers carry the fields inside `value` beside geocoding (`location`, `locationAccuracy`,
            # `timezone`), which the sandbox does not do: null.
            value = {**value, "location": None, "locationAccuracy": None, "timezone": None}
        entry = {"isPrimary": it["primary"], "name": it["label"], "value": value}
        if field == "phones":
            entry["isOptedOut"] = False
        out.append(entry)
    return out


def peep(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """A contact or an account."""
    d = state.visible(rec)
    out: dict[str, Any] = {
        "id": rec.rest_id,
        "type": rec.kind,
        "name": d["name"],
        "description": d["description"],
        "createdTime": rec.created,
        "deletedTime": rec.deleted,
        **{f: _multi(f, d[f]) for f in MULTI_VALUE_FIELDS},
    }
    links: dict[str, Any] = {
        "creator": ref("users", d["creator"]),
        "owner": ref("users", d["owner"]),
        "territory": ref("territories", d["territory"]),
        "tags": [ref("tags", t) for t in d["tags"]],
        "files": [],
        "relatedFiles": [],
        "followup": None,
        "recurringTask": None,
    }
    if rec.kind == "contacts":
        given, family = split_name(d["name"])
        out |= {"jobTitle": d["job_title"], "firstName": given, "lastName": family}
        links |= {"accounts": [ref("accounts", a["id"]) for a in d["accounts"]], "emAudiences": []}
        # Unconfirmed: the elements of `jobs`; every live answer Airbyte sampled had it empty ([] or {}), so its
        # element shape is unknown. We send it empty.
        out["jobs"] = []
    else:
        out |= {"revenue": None, "employeeCount": None}
        links |= {
            "contacts": [c.rest_id for c in state.contacts_of_account(rec.id)],
            "accountType": ref("accountTypes", d["account_type"]),
            "industry": ref("industries", d["industry"]),
        }
    return (
        out
        | _common(rec, base, d["name"])
        | {
            "avatarUrl": f"{base}/avatar/{rec.kind}/{rec.id}",
            "initials": initials(d["name"]),
            "links": links,
        }
    )


def activity(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = state.visible(rec)
    status = d["status"]
    now = state.now()
    by_kind: dict[str, list[str]] = {"contacts": [], "accounts": [], "users": []}
    for p in d["participants"]:
        by_kind[p["kind"]].append(f"{p['id']}-{p['kind']}")
    return {
        "id": rec.rest_id,
        "type": "activities",
        "name": d["name"],
        "agenda": d.get("description") or "",
        "location": d.get("location"),
        "createdTime": rec.created,
        "modifiedTime": rec.modified,
        "startTime": d["start"],
        "endTime": d["end"],
        "deletedTime": rec.deleted,
        "isAllDay": d["all_day"],
        "isEditable": True,
        "isCancelled": status == ACTIVITY_CANCELLED,
        "isFlagged": d["flagged"],
        "isLogged": status == ACTIVITY_LOGGED,
        "isOverdue": status not in (ACTIVITY_LOGGED, ACTIVITY_CANCELLED) and d["end"] < now,
        "loggedTime": d.get("logged_time"),
        "isMediaLogged": False,
        "transcription": d.get("transcription"),
        **_common(rec, base, d["name"]),
        "links": {
            "comments": [],
            "accounts": by_kind["accounts"],
            "activityType": ref("activityTypes", d["type"]),
            "contacts": by_kind["contacts"],
            "creator": ref("users", d["creator"]),
            "leads": [],
            "logger": ref("users", d.get("logger")),
            "users": by_kind["users"],
        },
    }


def note(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    d = state.visible(rec)
    body = d["body"]
    return {
        "id": rec.rest_id,
        "type": "notes",
        "createdTime": rec.created,
        "deletedTime": rec.deleted,
        "body": body,
        "bodyHtml": html.escape(body).replace("\n", "<br>"),
        "bodyMarkup": body,
        # Notes can be edited for 24 hours by their author (reference §2.5).
        "isEditable": state.now() - rec.created < 86400,
        "parentType": d["parent"]["kind"],
        **_common(rec, base, ""),
        "links": {
            "comments": [],
            "parent": f"{d['parent']['id']}-{d['parent']['kind']}",
        },
    }


def tag(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    kind = rec.data["tag_type"]
    count = sum(1 for r in state.live(kind) if rec.id in r.data["tags"]) if kind != "leads" else 0
    return {
        "id": rec.rest_id,
        "type": "tags",
        "name": rec.data["name"],
        "href": f"{base}/rest/tags/{rec.rest_id}",
        "modifiedTime": rec.modified,
        "deletedTime": rec.deleted,
        "tagType": kind,
        "count": count,
        "colorType": rec.data["color"],
    }


# The `permissions` flags of a user: those of the official document plus `canUseOrTryInbox`, seen live.
# Unconfirmed: which flags a non-administrator holds; we choose CRM work without setup, billing or bulk powers.
ADMIN_ONLY_PERMISSIONS = (
    "canAccessSetup",
    "canAccessBilling",
    "canBulkEdit",
    "canExport",
    "canImport",
    "canMergeEntities",
    "canDeleteEntities",
    "canAssignEntities",
    "canManageEmailTemplates",
    "canAccessFullCampaigns",
)
EVERY_USER_PERMISSIONS = (
    "canAccessCrm",
    "canAccessMarketing",
    "canViewSharedEmails",
    "canUsePeopleIQ",
    "canUseInbox",
    "canUseOrTryInbox",
)


def permissions(is_administrator: bool) -> dict[str, bool]:
    return {
        **dict.fromkeys(EVERY_USER_PERMISSIONS, True),
        **dict.fromkeys(ADMIN_ONLY_PERMISSIONS, is_administrator),
    }


def user(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """A user as the live REST API shows one (Airbyte's inferred schema; the official User schema). No
    `lastName`: neither source has it (JSON-RPC's full user does)."""
    d = rec.data
    name = f"{d['first_name']} {d['last_name']}".strip()
    return {
        "id": rec.rest_id,
        "type": "users",
        "name": name,
        "firstName": d["first_name"],
        "modifiedTime": rec.modified,
        "isEnabled": d["is_enabled"],
        "hasSetPassword": True,
        "isAdministrator": d["is_administrator"],
        "isViewingRestricted": False,
        "isHiddenFromFilters": False,
        "canAccessEmailMarketing": False,
        "permissions": permissions(d["is_administrator"]),
        # Unconfirmed: the values of `phonecallerType` and `agentStatus` (strings or null live); a clinic
        # account has no calling or agent set up, so we choose null for both.
        "phonecallerType": None,
        "agentStatus": None,
        "emails": list(d["emails"]),
        "avatarUrl": f"{base}/avatar/users/{rec.id}",
        "initials": initials(name),
        "links": {"teams": [ref("teams", t) for t in state.teams_of(rec.id)]},
    }


def activity_type(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    return {
        "id": rec.rest_id,
        "type": "activityTypes",
        "name": rec.data["name"],
        "modifiedTime": rec.modified,
        "isBenchmarkable": False,
    }


def reference_entry(state: NutshellState, rec: Record, base: str) -> dict[str, Any]:
    """An industry, account type or territory: `{id, type, name, modifiedTime}` as live answers show the first
    two (Airbyte's connector: streams industries and account_types), territories with the `href` the document
    gives them."""
    out = {"id": rec.rest_id, "type": rec.kind, "name": rec.data["name"], "modifiedTime": rec.modified}
    if rec.kind == "territories":
        out["href"] = f"{base}/rest/territories/{rec.rest_id}"
    return out


def custom_field(rec: Record, value: Any = None, *, with_value: bool = False) -> dict[str, Any]:
    """A definition. Unconfirmed: the definition's keys beyond `id`; we follow a public client reading `name`,
    `title`, `type` (the field's data type), `isMultiple` and `choices`."""
    d = rec.data
    out = {
        "id": rec.rest_id,  # Unconfirmed: the id's type suffix; we choose "<n>-customFields"
        "name": d["name"],
        "title": d["name"],
        "type": d["type"],
        "isMultiple": d["is_multiple"],
        "choices": list(d["choices"]),
    }
    if with_value:
        out["value"] = value
    return out


def event(ev: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{ev['id']}-events",
        "type": "events",
        "createdTime": ev["time"],
        "actorType": "users",
        "payloadType": ev["kind"],
        "action": ev["action"],
        "changes": [],
        "count": None,
        "links": {"comments": [], "actor": f"{ev['actor']}-users", "payloads": [f"{ev['entity']}-{ev['kind']}"]},
    }


RENDERERS = {
    "contacts": peep,
    "accounts": peep,
    "activities": activity,
    "notes": note,
    "tags": tag,
    "users": user,
    "activityTypes": activity_type,
    "industries": reference_entry,
    "accountTypes": reference_entry,
    "territories": reference_entry,
}


# --- reading input ---------------------------------------------------------------------------------------------


def _items(field: str, value: Any) -> list[dict[str, Any]]:
    """REST multi-value input: a list of `{isPrimary, name, value}` (or bare values) -> stored items."""
    if not isinstance(value, list):
        raise invalid(f"{field} must be a list")
    out = []
    for element in value:
        if isinstance(element, dict):
            if field == "addresses":
                raw: Any = {k: v for k, v in element.items() if k not in ("isPrimary", "name")}
            else:
                raw = element.get("value")
            out.append(item(element.get("name") or field[:-1], raw, bool(element.get("isPrimary"))))
        else:
            out.append(item(field[:-1], element, False))
    return out


def multi_items(field: str, value: Any) -> list[dict[str, Any]]:
    return _items(field, value)


def parse_peep(kind: str, element: Any) -> dict[str, Any]:
    """A create element (`contactPostInput` / the accounts one) -> the state's content for a new contact/account."""
    if not isinstance(element, dict):
        raise invalid(f"Each {kind} element must be an object")
    unknown = set(element) - PEEP_KEYS[kind]
    if unknown:
        raise invalid(f"Unknown {kind} attribute(s): {', '.join(sorted(unknown))}")
    data: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in element:
            data[key] = element[key]
    if "jobTitle" in element:
        data["job_title"] = element["jobTitle"]
    for field in MULTI_VALUE_FIELDS:
        if field in element:
            data[field] = _items(field, element[field])
    if "customFields" in element:
        if not isinstance(element["customFields"], dict):
            raise invalid("customFields must be an object keyed by custom field name")
        data["custom"] = dict(element["customFields"])
    data |= parse_peep_links(kind, element.get("links") or {})
    return data


# Single-valued links to a reference list: link name -> (id type, content key, the kinds that have it).
REFERENCE_LINKS = {
    "territory": ("territories", "territory", ("contacts", "accounts")),
    "accountType": ("accountTypes", "account_type", ("accounts",)),
    "industry": ("industries", "industry", ("accounts",)),
}


def reference_link(kind: str, rel: str, value: Any) -> tuple[str, int | None] | None:
    """(content key, id or None) for a reference link of this kind; None when `rel` is not one."""
    found = REFERENCE_LINKS.get(rel)
    if found is None or kind not in found[2]:
        return None
    return found[1], None if value is None else parse_id(value, found[0])


def parse_peep_links(kind: str, links: Any) -> dict[str, Any]:
    if not isinstance(links, dict):
        raise invalid("links must be an object")
    out: dict[str, Any] = {}
    for key, value in links.items():
        if (single := reference_link(kind, key, value)) is not None:
            out[single[0]] = single[1]
        elif key == "owner":
            out["owner"] = None if value is None else parse_id(value, "users")
        elif key == "tags":
            out["tags"] = [parse_id(v, "tags") for v in _list(value, "links.tags")]
        elif key == "accounts" and kind == "contacts":
            out["accounts"] = [{"id": parse_id(v, "accounts"), "relationship": ""} for v in _list(value, key)]
        elif key == "contacts" and kind == "accounts":
            out["_contacts"] = [parse_id(v, "contacts") for v in _list(value, key)]
        elif key in ("emAudiences", "origin") and value in (None, []):
            continue
        else:
            raise invalid(f"links.{key} is not supported by the sandbox for {kind}")
    return out


def parse_activity(element: Any, *, partial: bool) -> dict[str, Any]:
    """An `activityPostInput` element -> activity content (only the given keys when `partial`)."""
    if not isinstance(element, dict):
        raise invalid("Each activities element must be an object")
    unknown = set(element) - ACTIVITY_KEYS
    if unknown:
        raise invalid(f"Unknown activities attribute(s): {', '.join(sorted(unknown))}")
    data: dict[str, Any] = {}
    for src, dst in (
        ("name", "name"),
        ("description", "description"),
        ("location", "location"),
        ("transcription", "transcription"),
    ):
        if src in element:
            data[dst] = element[src]
    if "activityType" in element:
        data["type"] = parse_id(element["activityType"], "activityTypes")
    for src, dst in (("startTime", "start"), ("endTime", "end")):
        if src in element:
            value = element[src]
            if isinstance(value, bool) or not isinstance(value, int):
                raise invalid(f"{src} must be a Unix timestamp (integer seconds)")
            data[dst] = value
    for src, dst in (("isFlagged", "flagged"), ("isAllDay", "all_day")):
        if src in element:
            data[dst] = bool(element[src])
    if element.get("isCancelled"):
        data["status"] = ACTIVITY_CANCELLED
    elif "isLogged" in element:
        data["status"] = ACTIVITY_LOGGED if element["isLogged"] else 0
    elif not partial:
        data["status"] = 0
    links = element.get("links") or {}
    if not isinstance(links, dict) or set(links) - {"participants"}:
        raise invalid("activities links may only hold participants")
    if "participants" in links:
        data["participants"] = [_participant(v) for v in _list(links["participants"], "links.participants")]
    if "note" in element:
        data["_note"] = element["note"]
    return data


def _participant(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        number, _, kind = value.partition("-")
        if number.isdigit() and kind in ("contacts", "users", "accounts"):
            return {"kind": kind, "id": int(number)}
    raise invalid(f"{value!r} is not a participant id (expected '<n>-contacts', '<n>-users' or '<n>-accounts')")


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"{what} must be a list")
    return value
