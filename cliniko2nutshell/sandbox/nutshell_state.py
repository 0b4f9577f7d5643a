"""The one in-memory state behind both Nutshell protocols: entities, revs, custom fields, files, events, trash.

Records hold a protocol-neutral form of each entity; nutshell_rest_shapes and nutshell_rpc_shapes render it the way
each protocol does. All validation of content lives here, so REST and JSON-RPC accept and refuse the same things.

Ids: created entities (contacts, accounts, activities, notes, tags, files, leads) share one integer sequence, so
a client that sends a contact id where an account id belongs gets "not found" instead of silently hitting
another record. Users, activity types, custom field definitions and the reference lists (teams, industries,
account types, territories, markets, sources, products; seeded, read-only through the API) have their own small
sequences. REST spells an id `"<n>-<type>"`, JSON-RPC uses `n`.

Leads exist for JSON-RPC clients (Nutshell's own sample creates and edits one); the migration writes none. A lead
links contacts and accounts (each with a relationship), products, sources, a market and an assignee (a user or a
team); contacts and accounts show the leads that link them.

Trash: deleting sets `deleted`; the record stays and undelete restores it. Unconfirmed: what a get of a
trashed entity answers (reference §11.11); we choose the entity with its `deletedTime`, on both protocols.
A note is live only while its parent is live, and a file only while its note is: deleting a contact or an
activity hides its notes and files with it, and undeleting brings them back.

Revs: a per-record counter, rendered as a string, bumped on every edit, delete, undelete and related change
(a note added to a person, a company linked or unlinked, a file uploaded on an activity's log note).

`dump()` is the state as the tests compare it; see its docstring for what equality means.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cliniko2nutshell.sandbox.nutshell_seed import reference_lists, validate_seed
from cliniko2nutshell.sandbox.nutshell_values import (
    check_definition,
    check_multi_value,
    coerce_custom_value,
    one_primary,
)

REV_IGNORE = "REV_IGNORE"
SEED_TIME = 1735689600  # 2025-01-01T00:00:00Z: seeded records get a fixed time, so dumps are reproducible
ENTITY_KINDS = ("contacts", "accounts", "activities", "notes", "tags", "files", "leads")
# Seed key -> kind of the reference lists.
REFERENCE_KINDS = {
    "teams": "teams",
    "industries": "industries",
    "account_types": "accountTypes",
    "territories": "territories",
    "markets": "markets",
    "sources": "sources",
    "products": "products",
}
SCHEMA_KINDS = ("users", "activityTypes", "customFields", *REFERENCE_KINDS.values())
CUSTOM_FIELD_ENTITIES = {"contacts": "Contacts", "accounts": "Accounts", "leads": "Leads"}
MULTI_VALUE_FIELDS = ("emails", "phones", "urls", "addresses")
PARTICIPANT_KINDS = ("contacts", "users", "accounts")
NOTE_PARENT_KINDS = ("contacts", "accounts", "activities", "leads")
TAG_TYPES = ("leads", "contacts", "accounts")
ACTIVITY_SCHEDULED, ACTIVITY_LOGGED, ACTIVITY_CANCELLED = 0, 1, 2
LEAD_OPEN, LEAD_WON, LEAD_LOST, LEAD_CANCELLED = 0, 10, 11, 12  # reference §2.9
LEAD_STATUSES = (LEAD_OPEN, LEAD_WON, LEAD_LOST, LEAD_CANCELLED)
FIRST_LEAD_NUMBER = 1000  # Unconfirmed: where the visible lead numbers start; "Lead-1000" is the reference's example


class NutshellError(Exception):
    """An API error, protocol-neutral: REST renders it as its `errors` body, JSON-RPC as its `error` object.

    `code` is the JSON-RPC error code when it differs from the HTTP status (e.g. -32601); `headers` go on the
    HTTP answer (Retry-After, WWW-Authenticate).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = status if code is None else code
        self.headers = headers or {}

    @property
    def message(self) -> str:
        return self.detail or self.title


def invalid(detail: str, title: str = "Validation failed") -> NutshellError:
    # Unconfirmed: the status and JSON-RPC code of a validation error (reference §11.1); we choose HTTP 400 with
    # code 400 (and -32602 for malformed JSON-RPC params), the message naming the problem.
    return NutshellError(400, title, detail)


def not_found(detail: str) -> NutshellError:
    # Unconfirmed: Nutshell's answer for an unknown id; reference §5.1 suggests 404, we choose 404 on both protocols.
    return NutshellError(404, "Not Found", detail)


@dataclass
class Record:
    kind: str
    id: int
    created: int
    modified: int
    data: dict[str, Any]
    rev: int = 1
    deleted: int | None = None

    @property
    def rest_id(self) -> str:
        return f"{self.id}-{self.kind}"


@dataclass
class _Indexes:
    emails: dict[str, dict[str, set[int]]] = field(default_factory=lambda: {"contacts": {}, "accounts": {}})
    account_contacts: dict[int, dict[int, None]] = field(default_factory=dict)  # account -> contacts (ordered)
    notes_by_parent: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    activities_by_participant: dict[tuple[str, int], set[int]] = field(default_factory=dict)


_NOT_COPIED = frozenset({"lock", "clock"})  # what a snapshot leaves out: the state's own machinery


class NutshellState:
    """Everything the sandbox knows. Thread-safe: the server thread mutates, tests read `dump()` from theirs."""

    def __init__(
        self,
        seed: dict[str, Any],
        *,
        custom_field_cap: int | None = None,
        file_size_limit: int = 25 * 2**20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        validate_seed(seed)
        self.lock = threading.RLock()
        self.clock = clock
        self.company_domain: str = seed["company_domain"].strip().lower()
        self.api_email: str = seed["api_user"]["email"].strip()
        self.api_key: str = seed["api_user"]["api_key"]
        self.custom_field_cap: int | None = (
            custom_field_cap if custom_field_cap is not None else seed.get("custom_field_cap")
        )
        self.file_size_limit = file_size_limit
        self.instance_id = str(int(hashlib.sha256(self.company_domain.encode()).hexdigest()[:6], 16))
        # The company's name as Nutshell shows it: the seed's, else made from the domain ("harbourphysio1.example"
        # -> "Harbourphysio").
        self.company_name: str = seed.get("company_name") or (
            self.company_domain.split(".")[0].rstrip("0123456789").replace("-", " ").title() or self.company_domain
        )
        self.records: dict[str, dict[int, Record]] = {k: {} for k in ENTITY_KINDS + SCHEMA_KINDS}
        self.blobs: dict[int, bytes] = {}
        self.events: list[dict[str, Any]] = []
        self._next_id = 1
        self._next_lead_number = FIRST_LEAD_NUMBER
        self._schema_next = dict.fromkeys(SCHEMA_KINDS, 1)
        self._index = _Indexes()
        self._seed(seed)

    # --- seeding ------------------------------------------------------------------------------------------------

    def _seed(self, seed: dict[str, Any]) -> None:
        users = list(seed["users"])
        if not any(self.api_email.lower() == e.strip().lower() for u in users for e in u["emails"]):
            users.insert(
                0,
                {
                    "first_name": "API",
                    "last_name": "User",
                    "emails": [self.api_email],
                    "is_administrator": True,
                    "is_enabled": True,
                },
            )
        for u in users:
            self._insert_schema(
                "users",
                {
                    "first_name": u["first_name"],
                    "last_name": u["last_name"],
                    "emails": [e.strip() for e in u["emails"]],
                    "is_administrator": bool(u.get("is_administrator", False)),
                    "is_enabled": bool(u.get("is_enabled", True)),
                },
            )
        self.api_user_id = self.user_by_login(self.api_email, include_disabled=True).id  # type: ignore[union-attr]
        for name in seed["activity_types"]:
            self._insert_schema("activityTypes", {"name": name})
        for key, values in reference_lists(seed).items():
            for value in values:
                data = dict(value) if isinstance(value, dict) else {"name": value}
                data["name"] = data["name"].strip()
                if key == "teams":
                    members = [self.user_by_login(m, include_disabled=True) for m in data.get("members", [])]
                    data["members"] = [u.id for u in members if u is not None]
                if key == "products":
                    price = data.get("price") or {}
                    data["price"] = {"currency": price.get("currency") or "USD", "amount": price.get("amount", 0)}
                self._insert_schema(REFERENCE_KINDS[key], data)
        for entity, definitions in seed["custom_fields"].items():
            for d in definitions:
                clean = check_definition(d["name"], d["type"], d.get("choices"), d.get("isMultiple"), entity)
                self._insert_schema("customFields", {"entity": entity, **clean})
        actor = self.api_user_id
        for a in seed["accounts"]:
            self._insert(
                "accounts", self._clean("accounts", self._blank("accounts", actor) | {"name": a["name"]}), SEED_TIME
            )
        for p in seed["people"]:
            data = self._blank("contacts", actor) | {
                "name": p["name"],
                "emails": one_primary([{"label": "email", "value": e, "primary": False} for e in p.get("emails", [])]),
                "phones": one_primary([{"label": "phone", "value": n, "primary": False} for n in p.get("phones", [])]),
            }
            self._insert("contacts", self._clean("contacts", data), SEED_TIME)

    def _insert_schema(self, kind: str, data: dict[str, Any]) -> Record:
        rid = self._schema_next[kind]
        self._schema_next[kind] += 1
        rec = Record(kind, rid, SEED_TIME, SEED_TIME, data)
        self.records[kind][rid] = rec
        return rec

    @staticmethod
    def _blank(kind: str, actor: int) -> dict[str, Any]:
        """The content of a new record before the caller's fields are laid over it."""
        if kind in ("contacts", "accounts"):
            base: dict[str, Any] = {
                "name": "",
                "description": None,
                "emails": [],
                "phones": [],
                "urls": [],
                "addresses": [],
                "custom": {},
                "owner": actor,
                "creator": actor,
                "tags": [],
                "territory": None,
            }
            if kind == "contacts":
                base |= {"job_title": None, "accounts": []}
            else:
                base |= {"industry": None, "account_type": None}
            return base
        if kind == "leads":
            return {
                "name": "",
                "description": None,
                "status": LEAD_OPEN,
                "confidence": None,
                "market": None,
                "primary_account": None,
                "accounts": [],
                "contacts": [],
                "products": [],
                "sources": [],
                "assignee": None,
                "tags": [],
                "custom": {},
                "creator": actor,
                "due_time": None,
                "closed_time": None,
                "value": None,
            }
        if kind == "activities":
            return {
                "description": None,
                "location": None,
                "transcription": None,
                "all_day": False,
                "flagged": False,
                "participants": [],
                "leads": [],
                "status": ACTIVITY_SCHEDULED,
                "creator": actor,
                "logger": None,
                "logged_time": None,
                "log_note": None,
            }
        if kind == "notes":
            return {"creator": actor, "files": [], "is_log_note": False}
        if kind == "tags":
            return {"color": "COLOR_DEFAULT"}
        return {}

    # --- reading ------------------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.clock())

    def get(self, kind: str, rid: int) -> Record:
        """The record, trashed or not; 404 when there is none."""
        rec = self.records[kind].get(rid)
        if rec is None:
            raise not_found(f"There is no {kind} with id {rid}.")
        return rec

    def get_live(self, kind: str, rid: int) -> Record:
        """The record if it exists and is not in the trash (edits and links need that)."""
        rec = self.get(kind, rid)
        if not self.is_live(rec):
            raise not_found(f"{rec.rest_id} is deleted.")
        return rec

    def is_live(self, rec: Record) -> bool:
        if rec.deleted is not None:
            return False
        if rec.kind == "notes":
            parent = self.records[rec.data["parent"]["kind"]].get(rec.data["parent"]["id"])
            return parent is not None and self.is_live(parent)
        if rec.kind == "files":
            note = self.records["notes"].get(rec.data["note"])
            return note is not None and self.is_live(note)
        return True

    def live(self, kind: str) -> Iterator[Record]:
        """Live records of a kind in id order (dicts keep insertion order and ids only grow)."""
        return (r for r in list(self.records[kind].values()) if self.is_live(r))

    def by_email(self, kind: str, email: str) -> list[Record]:
        ids = self._index.emails[kind].get(email.strip().lower(), set())
        return [r for r in (self.records[kind][i] for i in sorted(ids)) if self.is_live(r)]

    def contacts_of_account(self, account_id: int) -> list[Record]:
        ids = self._index.account_contacts.get(account_id, {})
        return [r for r in (self.records["contacts"][i] for i in ids) if self.is_live(r)]

    def notes_of(self, kind: str, rid: int) -> list[Record]:
        return [self.records["notes"][i] for i in self._index.notes_by_parent.get((kind, rid), [])]

    def activities_of(self, kind: str, rid: int) -> list[Record]:
        ids = self._index.activities_by_participant.get((kind, rid), set())
        return [r for r in (self.records["activities"][i] for i in sorted(ids)) if self.is_live(r)]

    def leads_of(self, kind: str, rid: int) -> list[Record]:
        """Live leads linking a contact or an account. A scan: leads are few (the migration writes none)."""
        return [lead for lead in self.live("leads") if rid in self.lead_links(lead)[kind]]

    def lead_links(self, lead: Record) -> dict[str, list[int]]:
        """The live contacts and accounts a lead links (the primary account first)."""
        d = self.visible(lead)
        return {"contacts": [c["id"] for c in d["contacts"]], "accounts": [a["id"] for a in d["accounts"]]}

    def activities_of_lead(self, lead_id: int) -> list[Record]:
        return [a for a in self.live("activities") if lead_id in a.data.get("leads", ())]

    def contact_history(self, activities: list[Record]) -> tuple[int | None, int]:
        """(when the latest logged activity started, how many are logged): what `lastContactedDate` and
        `contactedCount` show. Unconfirmed: Nutshell also counts e-mails; the sandbox has only activities."""
        logged = [a.data["start"] for a in activities if a.data["status"] == ACTIVITY_LOGGED]
        return (max(logged) if logged else None), len(logged)

    def teams_of(self, user_id: int) -> list[int]:
        return [t.id for t in self.records["teams"].values() if user_id in t.data["members"]]

    def search(self, kind: str, text: str) -> list[Record]:
        """Live contacts, accounts or leads "similar to" `text` (case-insensitive substring of the name, an
        e-mail, a city; three or more digits against phone numbers; a lead's number), in id order."""
        needle = text.strip().lower()
        if not needle:
            return []
        digits = "".join(ch for ch in needle if ch.isdigit())
        found = []
        for rec in self.live(kind):
            d = rec.data
            if kind == "leads":
                hit = needle in d["name"].lower() or needle in (d["description"] or "").lower()
                hit = hit or (digits != "" and digits == str(d["number"]))
            else:
                hit = needle in d["name"].lower() or any(needle in e["value"].lower() for e in d["emails"])
                hit = hit or any(needle in (a["value"].get("city") or "").lower() for a in d["addresses"])
                hit = hit or (
                    len(digits) >= 3
                    and any(digits in "".join(ch for ch in str(p["value"]) if ch.isdigit()) for p in d["phones"])
                )
            if hit:
                found.append(rec)
        return found

    def user_by_login(self, username: str, *, include_disabled: bool = False) -> Record | None:
        wanted = username.strip().lower()
        for user in self.records["users"].values():
            if (include_disabled or user.data["is_enabled"]) and wanted in (e.lower() for e in user.data["emails"]):
                return user
        return None

    def custom_fields(self, entity: str) -> list[Record]:
        return [r for r in self.records["customFields"].values() if r.data["entity"] == entity]

    def visible(self, rec: Record) -> dict[str, Any]:
        """The record's content as the API shows it: links to trashed records are hidden (they come back on
        undelete), as are a log note's deleted files."""
        data = rec.data
        if rec.kind == "contacts":
            data = {**data, "accounts": [a for a in data["accounts"] if self._live_ref("accounts", a["id"])]}
        if rec.kind in ("contacts", "accounts"):
            data = {**data, "tags": [t for t in data["tags"] if self._live_ref("tags", t)]}
        elif rec.kind == "activities":
            data = {
                **data,
                "participants": [p for p in data["participants"] if self._live_ref(p["kind"], p["id"])],
                "leads": [i for i in data.get("leads", ()) if self._live_ref("leads", i)],
            }
        elif rec.kind == "leads":
            data = {
                **data,
                "contacts": [c for c in data["contacts"] if self._live_ref("contacts", c["id"])],
                "accounts": [a for a in data["accounts"] if self._live_ref("accounts", a["id"])],
                "tags": [t for t in data["tags"] if self._live_ref("tags", t)],
            }
        elif rec.kind == "notes" and data["files"]:
            data = {**data, "files": [f for f in data["files"] if self._live_ref("files", f)]}
        return data

    def _live_ref(self, kind: str, rid: int) -> bool:
        if kind in SCHEMA_KINDS:
            return rid in self.records[kind]
        rec = self.records[kind].get(rid)
        return rec is not None and self.is_live(rec)

    def rev_of(self, rec: Record) -> str:
        if rec.kind == "files":
            # File revs are hash-like in Nutshell (reference §2.8); derived from id and counter, stable per state.
            return hashlib.sha1(f"{rec.id}:{rec.rev}".encode()).hexdigest()
        return str(rec.rev)

    # --- writing ------------------------------------------------------------------------------------------------

    def check_rev(self, rec: Record, rev: Any) -> None:
        """JSON-RPC's optimistic concurrency: the caller's rev must be the current one, or REV_IGNORE."""
        if rev == REV_IGNORE:
            return
        if rev is None or rev == "":
            raise NutshellError(400, "Invalid params", "rev is required", code=-32602)
        if str(rev) != self.rev_of(rec):
            raise NutshellError(409, "Conflict", "rev key is out-of-date")

    def create(self, kind: str, data: dict[str, Any], actor: int) -> Record:
        with self.lock:
            clean = self._with_logger(self._clean(kind, self._blank(kind, actor) | data), actor)
            if kind == "tags" and self._tag_name_taken(clean["name"], clean["tag_type"]):
                raise invalid(f"A {clean['tag_type']} tag named {clean['name']!r} already exists.")
            if kind == "leads":
                clean["number"] = self._next_lead_number
                self._next_lead_number += 1
                clean["name"] = clean["name"] or f"Lead-{clean['number']}"
            rec = self._insert(kind, clean, self.now())
            self._related_change(rec, None)
            self._event("create", rec, actor)
            return rec

    def update(self, rec: Record, changes: dict[str, Any], actor: int, *, rev: Any = REV_IGNORE) -> Record:
        """Replace the given top-level content keys, validate the result, bump the rev. All or nothing."""
        with self.lock:
            if not self.is_live(rec):
                raise not_found(f"{rec.rest_id} is deleted.")
            self.check_rev(rec, rev)
            before = rec.data
            # Links the record already had may point into the trash (hidden, not lost): they stay valid.
            clean = self._with_logger(self._clean(rec.kind, {**rec.data, **changes}, self._refs(rec.data)), actor)
            self._unindex(rec)
            rec.data = clean
            self._index_record(rec)
            self._bump(rec)
            self._related_change(rec, before)
            self._event("update", rec, actor)
            return rec

    def delete(self, rec: Record, actor: int, *, rev: Any = REV_IGNORE) -> Record:
        with self.lock:
            if rec.deleted is not None:
                # Unconfirmed: deleting what is already in the trash; we choose 404 so a retry can tell.
                raise not_found(f"{rec.rest_id} is already deleted.")
            if not self.is_live(rec):
                raise not_found(f"{rec.rest_id} is deleted with its parent.")
            self.check_rev(rec, rev)
            rec.deleted = self.now()
            self._bump(rec)
            self._related_change(rec, None)
            self._event("delete", rec, actor)
            return rec

    def undelete(self, rec: Record, actor: int) -> Record:
        with self.lock:
            if rec.deleted is None:
                raise invalid(f"{rec.rest_id} is not deleted.", "Not deleted")
            if rec.kind == "tags" and self._tag_name_taken(rec.data["name"], rec.data["tag_type"], rec.id):
                raise invalid(f"A tag named {rec.data['name']!r} exists again; rename it first.")
            rec.deleted = None
            self._bump(rec)
            self._related_change(rec, None)
            self._event("undelete", rec, actor)
            return rec

    def require_live_refs(self, kind: str, ids: list[int]) -> None:
        """400 naming the first id that is missing or trashed (checked before a write that links to them)."""
        try:
            for rid in ids:
                self._require_live(kind, rid)
        except ValueError as exc:
            raise invalid(str(exc)) from exc

    def set_account_contacts(self, account: Record, links: list[dict[str, Any]], actor: int) -> None:
        """Make exactly these contacts linked to the account (the link and its relationship live on the contact)."""
        with self.lock:
            self.require_live_refs("contacts", [link["id"] for link in links])
            wanted = {link["id"]: link.get("relationship") or "" for link in links}
            for contact in self.contacts_of_account(account.id):
                if contact.id not in wanted:
                    kept = [a for a in contact.data["accounts"] if a["id"] != account.id]
                    self.update(contact, {"accounts": kept}, actor)
            for cid, relationship in wanted.items():
                contact = self.records["contacts"][cid]
                link = {"id": account.id, "relationship": relationship}
                if link not in contact.data["accounts"]:
                    others = [a for a in contact.data["accounts"] if a["id"] != account.id]
                    self.update(contact, {"accounts": [*others, link]}, actor)

    def create_custom_field(self, entity: str, definition: dict[str, Any]) -> Record:
        """A new custom field definition (REST only). Definitions cannot be deleted: the API offers no way."""
        with self.lock:
            try:
                clean = check_definition(
                    definition.get("name"),
                    definition.get("type"),
                    definition.get("choices"),
                    definition.get("isMultiple"),
                    entity,
                )
            except ValueError as exc:
                raise invalid(str(exc)) from exc
            if any(r.data["name"].lower() == clean["name"].lower() for r in self.custom_fields(entity)):
                raise invalid(f"A {entity} custom field named {clean['name']!r} already exists.")
            existing = len(self.records["customFields"])
            if self.custom_field_cap is not None and existing >= self.custom_field_cap:
                # Unconfirmed: how Nutshell refuses a definition over the plan's cap; we choose a 400 whose title
                # names the limit, so a client can tell it from a validation error.
                raise NutshellError(
                    400,
                    "Custom field limit reached",
                    f"This plan allows {self.custom_field_cap} custom fields and {existing} exist; "
                    f"{clean['name']!r} was not created.",
                )
            rec = self._insert_schema("customFields", {"entity": entity, **clean})
            rec.created = rec.modified = self.now()
            return rec

    def log_note(self, act: Record, actor: int) -> Record:
        """The activity's log note (where its files live), created empty on first use."""
        with self.lock:
            nid = act.data.get("log_note")
            if nid is not None:
                return self.records["notes"][nid]
            data = self._blank("notes", actor) | {
                "body": "",
                "parent": {"kind": "activities", "id": act.id},
                "is_log_note": True,
            }
            rec = self._insert("notes", self._clean("notes", data), self.now())
            act.data = {**act.data, "log_note": rec.id}
            self._bump(act)
            return rec

    def set_note_body(self, note: Record, body: Any, actor: int) -> None:
        with self.lock:
            if not isinstance(body, str):
                raise invalid("A note body must be text")
            if note.data["body"] != body:
                note.data = {**note.data, "body": body}
                self._bump(note)
                self._related_change(note, note.data)
                self._event("update", note, actor)

    def reserve_file(self, note: Record, name: str, actor: int) -> Record:
        """A file entry on an activity's log note, empty until its bytes are uploaded (JSON-RPC two-step upload)."""
        with self.lock:
            if not isinstance(name, str) or not name.strip():
                raise invalid("A file needs a name")
            rec = self._insert(
                "files",
                {"name": name.strip(), "mime": None, "size": 0, "sha256": None, "note": note.id, "uploaded": False},
                self.now(),
            )
            note.data = {**note.data, "files": [*note.data["files"], rec.id]}
            self._bump(note)
            self._event("create", rec, actor)
            return rec

    def store_upload(self, rec: Record, content: bytes, mime: str, actor: int) -> Record:
        with self.lock:
            if not self.is_live(rec):
                raise not_found(f"{rec.rest_id} is deleted.")
            self.blobs[rec.id] = content
            rec.data = {
                **rec.data,
                "mime": mime,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "uploaded": True,
            }
            self._bump(rec)
            note = self.records["notes"][rec.data["note"]]
            self._bump(note)
            parent = self.records[note.data["parent"]["kind"]][note.data["parent"]["id"]]
            self._bump(parent)
            self._event("update", rec, actor)
            return rec

    def drop_files(self, note: Record, keep: set[int], actor: int) -> None:
        """Delete the note's files not in `keep`. Unconfirmed: how a file is removed (reference §11.10); we choose
        multi-value replace semantics, so a `logNote.files` list without a file drops it."""
        with self.lock:
            for fid in note.data["files"]:
                rec = self.records["files"][fid]
                if fid not in keep and rec.deleted is None:
                    rec.deleted = self.now()
                    self._bump(rec)
                    self._event("delete", rec, actor)

    # --- internals ----------------------------------------------------------------------------------------------

    def _insert(self, kind: str, data: dict[str, Any], at: int) -> Record:
        rid = self._next_id
        self._next_id += 1
        rec = Record(kind, rid, at, at, data)
        self.records[kind][rid] = rec
        self._index_record(rec)
        if kind == "notes":
            parent = data["parent"]
            self._index.notes_by_parent.setdefault((parent["kind"], parent["id"]), []).append(rid)
        return rec

    def _with_logger(self, data: dict[str, Any], actor: int) -> dict[str, Any]:
        """A logged activity records who logged it and when, a closed lead when it closed; other records pass
        through."""
        if "closed_time" in data:
            if data["status"] == LEAD_OPEN:
                return {**data, "closed_time": None}
            return data if data["closed_time"] is not None else {**data, "closed_time": self.now()}
        if "status" not in data or "logger" not in data:
            return data
        if data["status"] != ACTIVITY_LOGGED:
            return {**data, "logger": None, "logged_time": None}
        if data["logger"] is None:
            return {**data, "logger": actor, "logged_time": self.now()}
        return data

    def _bump(self, rec: Record) -> None:
        rec.rev += 1
        rec.modified = self.now()

    def _event(self, action: str, rec: Record, actor: int) -> None:
        self.events.append(
            {
                "id": len(self.events) + 1,
                "time": self.now(),
                "action": action,
                "kind": rec.kind,
                "entity": rec.id,
                "actor": actor,
            }
        )

    def _related_change(self, rec: Record, before: dict[str, Any] | None) -> None:
        """Bump the revs of records whose rendering changes with `rec` (links, embedded notes).

        `before` is the content before an edit; None when `rec` appears or disappears as a whole (create,
        delete, undelete), in which case every record it links to is affected.
        """
        touched: set[tuple[str, int]] = set()
        if rec.kind == "contacts":
            new = {a["id"] for a in rec.data["accounts"]}
            changed = new if before is None else new ^ {a["id"] for a in before["accounts"]}
            touched |= {("accounts", a) for a in changed}
        elif rec.kind == "accounts" and before is None:
            touched |= {("contacts", c) for c in self._index.account_contacts.get(rec.id, {})}
        elif rec.kind == "leads":
            # Contacts and accounts list the leads that link them.
            for kind in ("contacts", "accounts"):
                new = {x["id"] for x in rec.data[kind]}
                changed = new if before is None else new ^ {x["id"] for x in before[kind]}
                touched |= {(kind, i) for i in changed}
        elif rec.kind == "notes":
            touched.add((rec.data["parent"]["kind"], rec.data["parent"]["id"]))
        for kind, rid in touched:
            other = self.records[kind].get(rid)
            if other is not None and other is not rec and other.deleted is None:
                self._bump(other)

    def _index_record(self, rec: Record) -> None:
        if rec.kind in ("contacts", "accounts"):
            for it in rec.data["emails"]:
                self._index.emails[rec.kind].setdefault(it["value"].lower(), set()).add(rec.id)
        if rec.kind == "contacts":
            for link in rec.data["accounts"]:
                self._index.account_contacts.setdefault(link["id"], {})[rec.id] = None
        if rec.kind == "activities":
            for p in rec.data["participants"]:
                self._index.activities_by_participant.setdefault((p["kind"], p["id"]), set()).add(rec.id)

    def _unindex(self, rec: Record) -> None:
        if rec.kind in ("contacts", "accounts"):
            for it in rec.data["emails"]:
                self._index.emails[rec.kind].get(it["value"].lower(), set()).discard(rec.id)
        if rec.kind == "contacts":
            for link in rec.data["accounts"]:
                self._index.account_contacts.get(link["id"], {}).pop(rec.id, None)
        if rec.kind == "activities":
            for p in rec.data["participants"]:
                self._index.activities_by_participant.get((p["kind"], p["id"]), set()).discard(rec.id)

    def _tag_name_taken(self, name: str, tag_type: str, except_id: int | None = None) -> bool:
        return any(
            t.id != except_id and t.data["tag_type"] == tag_type and t.data["name"].lower() == name.lower()
            for t in self.live("tags")
        )

    @staticmethod
    def _refs(data: dict[str, Any]) -> frozenset[tuple[str, int]]:
        """The (kind, id) links a record's content holds."""
        refs = {("accounts", a["id"]) for a in data.get("accounts", [])}
        refs |= {("contacts", c["id"]) for c in data.get("contacts", []) if isinstance(c, dict)}
        refs |= {("tags", t) for t in data.get("tags", [])}
        refs |= {(p["kind"], p["id"]) for p in data.get("participants", [])}
        refs |= {("leads", i) for i in data.get("leads", [])}
        return frozenset(refs)

    def _clean(self, kind: str, data: dict[str, Any], keep: frozenset[tuple[str, int]] = frozenset()) -> dict[str, Any]:
        """Validate a record's whole content; return it normalised. Raises NutshellError(400) naming the problem."""
        try:
            if kind in ("contacts", "accounts"):
                return self._clean_peep(kind, data, keep)
            if kind == "activities":
                return self._clean_activity(data, keep)
            if kind == "notes":
                return self._clean_note(data)
            if kind == "tags":
                return self._clean_tag(data)
            if kind == "leads":
                return self._clean_lead(data, keep)
        except ValueError as exc:
            raise invalid(str(exc)) from exc
        raise invalid(f"{kind} cannot be created through the API")

    def _clean_peep(self, kind: str, data: dict[str, Any], keep: frozenset[tuple[str, int]]) -> dict[str, Any]:
        out = dict(data)
        name = data.get("name")
        if name is None:
            name = ""
        if not isinstance(name, str):
            raise ValueError(f"name must be text, not {name!r}")
        out["name"] = name.strip()
        for key in ("description", "job_title"):
            if key in out and out[key] is not None and not isinstance(out[key], str):
                raise ValueError(f"{key} must be text, not {out[key]!r}")
        for fname in MULTI_VALUE_FIELDS:
            items = data.get(fname) or []
            out[fname] = one_primary(
                [
                    {**it, "value": check_multi_value(fname, it["value"]), "label": it.get("label") or fname[:-1]}
                    for it in items
                ]
            )
        if not (out["name"] or any(out[f] for f in MULTI_VALUE_FIELDS)):
            raise ValueError(f"A new {kind[:-1]} needs at least one of: name, phone, email, address, url")
        out["custom"] = self._clean_custom(CUSTOM_FIELD_ENTITIES[kind], data.get("custom") or {})
        if out.get("owner") is not None:
            owner = self.records["users"].get(out["owner"])
            if owner is None:
                raise ValueError(f"owner {out['owner']}-users does not exist")
        out["tags"] = self._clean_refs("tags", data.get("tags") or [], keep)
        for tag_id in out["tags"]:
            if self.records["tags"][tag_id].data["tag_type"] != kind:
                raise ValueError(f"{tag_id}-tags is not a {kind} tag")
        if kind == "contacts":
            out["accounts"] = self._clean_links("accounts", data.get("accounts") or [], keep)
        out["territory"] = self._reference("territories", data.get("territory"))
        if kind == "accounts":
            out["industry"] = self._reference("industries", data.get("industry"))
            out["account_type"] = self._reference("accountTypes", data.get("account_type"))
        return out

    def _clean_links(self, kind: str, links: list[dict[str, Any]], keep: frozenset[tuple[str, int]]) -> list[Any]:
        """[{id, relationship}] to live records of `kind`, each once, in the order given."""
        out: list[dict[str, Any]] = []
        for link in links:
            self._require_live(kind, link["id"], keep)
            relationship = link.get("relationship") or ""
            if not isinstance(relationship, str):
                raise ValueError(f"a relationship must be text, not {relationship!r}")
            if link["id"] not in (x["id"] for x in out):
                out.append({"id": link["id"], "relationship": relationship})
        return out

    def _reference(self, kind: str, rid: Any) -> int | None:
        """A reference-list id (None clears it); ValueError naming the list when there is no such entry."""
        if rid is None:
            return None
        if isinstance(rid, bool) or not isinstance(rid, int) or rid not in self.records[kind]:
            raise ValueError(f"{rid!r} is not one of the {kind} ({', '.join(self._names(kind))})")
        return rid

    def _names(self, kind: str) -> list[str]:
        return [f"{r.id}: {r.data['name']}" for r in self.records[kind].values()]

    def _clean_lead(self, data: dict[str, Any], keep: frozenset[tuple[str, int]]) -> dict[str, Any]:
        out = dict(data)
        for key in ("name", "description"):
            if out.get(key) is not None and not isinstance(out[key], str):
                raise ValueError(f"{key} must be text, not {out[key]!r}")
        out["name"] = (out.get("name") or "").strip()
        if out["status"] not in LEAD_STATUSES:
            raise ValueError(f"status must be one of {LEAD_STATUSES} (open, won, lost, cancelled)")
        confidence = out.get("confidence")
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, int)):
            raise ValueError(f"confidence must be a whole number from 0 to 100, not {confidence!r}")
        if confidence is not None and not 0 <= confidence <= 100:
            raise ValueError(f"confidence must be from 0 to 100, not {confidence}")
        out["market"] = self._reference("markets", out.get("market"))
        out["sources"] = list(dict.fromkeys(self._reference("sources", s) for s in out.get("sources") or []))
        out["contacts"] = self._clean_links("contacts", out.get("contacts") or [], keep)
        accounts = self._clean_links("accounts", out.get("accounts") or [], keep)
        primary = out.get("primary_account")
        if primary is not None:
            self._require_live("accounts", primary, keep)
            # The primary account is one of the lead's accounts, listed first.
            first = next((a for a in accounts if a["id"] == primary), {"id": primary, "relationship": ""})
            accounts = [first, *(a for a in accounts if a["id"] != primary)]
        out["accounts"] = accounts
        products = []
        for p in out.get("products") or []:
            self._reference("products", p["id"])
            quantity, price = p.get("quantity", 1), p.get("price")
            if isinstance(quantity, bool) or not isinstance(quantity, int | float) or quantity <= 0:
                raise ValueError(f"a product's quantity must be a positive number, not {quantity!r}")
            if price is None:
                price = self.records["products"][p["id"]].data["price"]
            products.append(
                {
                    "id": p["id"],
                    "quantity": quantity,
                    "price": _money(price, "a product's price"),
                    "relationship": p.get("relationship") or "",
                }
            )
        out["products"] = products
        if out.get("value") is not None:
            out["value"] = _money(out["value"], "value")
        assignee = out.get("assignee")
        if assignee is not None and assignee["id"] not in self.records[assignee["kind"]]:
            raise ValueError(f"assignee {assignee['id']} is not a {assignee['kind'][:-1]} id")
        out["tags"] = self._clean_refs("tags", out.get("tags") or [], keep)
        for tag_id in out["tags"]:
            if self.records["tags"][tag_id].data["tag_type"] != "leads":
                raise ValueError(f"{tag_id}-tags is not a leads tag")
        out["custom"] = self._clean_custom("Leads", out.get("custom") or {})
        if out.get("due_time") is not None and not isinstance(out["due_time"], int):
            raise ValueError("dueTime must be a time")
        return out

    def _clean_custom(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        definitions = {r.data["name"].lower(): r.data for r in self.custom_fields(entity)}
        out: dict[str, Any] = {}
        for name, value in values.items():
            definition = definitions.get(str(name).lower())
            if definition is None:
                raise ValueError(f"{name} is not a custom field")
            stored = coerce_custom_value(definition, value)
            if stored is not None:
                out[definition["name"]] = stored
        return dict(sorted(out.items()))

    def _clean_refs(self, kind: str, ids: list[int], keep: frozenset[tuple[str, int]]) -> list[int]:
        out: list[int] = []
        for rid in ids:
            self._require_live(kind, rid, keep)
            if rid not in out:
                out.append(rid)
        return out

    def _require_live(self, kind: str, rid: Any, keep: frozenset[tuple[str, int]] = frozenset()) -> Record | None:
        rec = self.records[kind].get(rid) if isinstance(rid, int) else None
        if (kind, rid) in keep:
            return rec
        if rec is None or not self.is_live(rec):
            raise ValueError(f"{rid}-{kind} does not exist")
        return rec

    def _clean_activity(self, data: dict[str, Any], keep: frozenset[tuple[str, int]]) -> dict[str, Any]:
        out = dict(data)
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise ValueError("An activity needs a name")
        out["name"] = data["name"].strip()
        if data.get("type") not in self.records["activityTypes"]:
            raise ValueError(f"activityType {data.get('type')}-activityTypes does not exist")
        for key in ("start", "end"):
            if not isinstance(data.get(key), int):
                raise ValueError(f"An activity needs a {key}Time")
        if out["end"] < out["start"]:
            raise ValueError("endTime is before startTime")
        if data.get("status") not in (ACTIVITY_SCHEDULED, ACTIVITY_LOGGED, ACTIVITY_CANCELLED):
            raise ValueError(f"Invalid activity status {data.get('status')!r}")
        participants = []
        out["leads"] = self._clean_refs("leads", data.get("leads") or [], keep)
        for p in data.get("participants") or []:
            if p["kind"] not in PARTICIPANT_KINDS:
                raise ValueError(f"{p['kind']} cannot take part in an activity")
            if p["kind"] == "users":
                if p["id"] not in self.records["users"]:
                    raise ValueError(f"{p['id']}-users does not exist")
            else:
                self._require_live(p["kind"], p["id"], keep)
            if p not in participants:
                participants.append({"kind": p["kind"], "id": p["id"]})
        out["participants"] = participants
        for key in ("all_day", "flagged"):
            out[key] = bool(data.get(key, False))
        for key in ("description", "location", "transcription"):
            if out.get(key) is not None and not isinstance(out[key], str):
                raise ValueError(f"{key} must be text")
        return out

    def _clean_note(self, data: dict[str, Any]) -> dict[str, Any]:
        body = data.get("body")
        if not isinstance(body, str):
            raise ValueError("A note needs a body")
        parent = data.get("parent") or {}
        if parent.get("kind") not in NOTE_PARENT_KINDS:
            raise ValueError("A note needs a parent contact, account, lead or activity")
        self._require_live(parent["kind"], parent.get("id"))
        if not body.strip() and not data.get("is_log_note"):
            raise ValueError("A note needs a body")
        return {"files": [], "is_log_note": False, **data}

    def _clean_tag(self, data: dict[str, Any]) -> dict[str, Any]:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("A tag needs a name")
        if data.get("tag_type") not in TAG_TYPES:
            raise ValueError(f"tagType must be one of {TAG_TYPES}")
        return {**data, "name": name.strip()}

    # --- the dump -----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the state holds, copied: `restore` puts it back, in this state or in another started from
        the same seed (tests start many sandboxes from one migrated account instead of migrating each)."""
        with self.lock:
            return copy.deepcopy({k: v for k, v in vars(self).items() if k not in _NOT_COPIED})

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            if snapshot.get("api_key") != self.api_key or snapshot.get("company_domain") != self.company_domain:
                raise ValueError("a snapshot is restored into a state of the same seed")
            vars(self).update(copy.deepcopy(snapshot))

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON-ready data, in a deterministic order.

        - `live`: every entity that exists and is not in the trash, by kind, with its content (fields, links,
          custom field values, creation time), in id order. Revs and modified times are NOT here.
        - `trash`: the same for deleted entities (and notes/files hidden with a deleted parent), with `deleted`.
        - `schema`: users, activity types, custom field definitions and the cap.
        - `bookkeeping`: revs and modified times of every entity, the number of events, the next id.

        What equality means: a migration followed by a complete rollback leaves `live` equal to the starting
        dump's `live`: same entities, same content. `trash` then holds what was created and deleted;
        `schema.custom_fields` may have grown (the API cannot delete a definition); `bookkeeping` always moves.
        Files carry their size and sha256, never their bytes.
        """
        with self.lock:
            live: dict[str, list[dict[str, Any]]] = {k: [] for k in ENTITY_KINDS}
            trash: dict[str, list[dict[str, Any]]] = {k: [] for k in ENTITY_KINDS}
            revs: dict[str, dict[str, Any]] = {}
            for kind in ENTITY_KINDS:
                for rec in sorted(self.records[kind].values(), key=lambda r: r.id):
                    body = {"id": rec.id, "created": rec.created, **self.visible(rec)}
                    if self.is_live(rec):
                        live[kind].append(body)
                    else:
                        trash[kind].append({**body, "deleted": rec.deleted})
                    revs[rec.rest_id] = {"rev": self.rev_of(rec), "modified": rec.modified}
            return {
                "live": live,
                "trash": trash,
                "schema": {
                    "users": [{"id": r.id, **r.data} for r in self.records["users"].values()],
                    "activity_types": [{"id": r.id, **r.data} for r in self.records["activityTypes"].values()],
                    **{
                        key: [{"id": r.id, **r.data} for r in self.records[kind].values()]
                        for key, kind in REFERENCE_KINDS.items()
                    },
                    "custom_fields": {
                        entity: [
                            {"id": r.id, **{k: v for k, v in r.data.items() if k != "entity"}}
                            for r in self.custom_fields(entity)
                        ]
                        for entity in ("Contacts", "Accounts", "Leads")
                    },
                    "custom_field_cap": self.custom_field_cap,
                },
                "bookkeeping": {"revs": revs, "events": len(self.events), "next_id": self._next_id},
            }


def _money(value: Any, what: str) -> dict[str, Any]:
    """{currency, amount}; Nutshell's sample sends the currency as `currency_shortname`."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be {{'currency': 'USD', 'amount': 100}}, not {value!r}")
    amount = value.get("amount")
    if isinstance(amount, str):
        try:
            amount = float(amount) if "." in amount else int(amount)
        except ValueError:
            amount = None
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError(f"{what} needs a numeric amount, not {value.get('amount')!r}")
    currency = value.get("currency", value.get("currency_shortname")) or "USD"
    if not isinstance(currency, str) or len(currency.strip()) != 3:
        raise ValueError(f"{what} needs a three-letter currency, not {currency!r}")
    return {"currency": currency.strip().upper(), "amount": amount}
