"""The REST API under /rest, over the shared state, following Nutshell's OpenAPI document: contacts and accounts
(list, get, create, JSON-Patch, delete, undelete, custom fields), activities (list, get, create, PUT), activity
types, notes, users, tags, events, industries, account types and territories. Leads are JSON-RPC only here.
Anything else under /rest answers 404 (405 when the path exists with another method), with the documented error
body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cliniko2nutshell.sandbox import nutshell_rest_shapes as shapes
from cliniko2nutshell.sandbox.nutshell_auth import Guard, Principal
from cliniko2nutshell.sandbox.nutshell_patch import apply_patch
from cliniko2nutshell.sandbox.nutshell_state import (
    ACTIVITY_CANCELLED,
    ACTIVITY_LOGGED,
    ACTIVITY_SCHEDULED,
    NutshellError,
    NutshellState,
    Record,
    invalid,
)
from cliniko2nutshell.sandbox.nutshell_values import parse_time

PATCH_MEDIA_TYPE = "application/json-patch+json"
DEFAULT_PAGE_LIMIT = 50  # Unconfirmed: REST's default page size; we choose 50, JSON-RPC's documented default.
MAX_PAGE_LIMIT = 10000  # a public client states 10,000 is the most REST accepts (reference §5.3)
DEFAULT_EVENT_LIMIT = 20  # the page size a live `meta.next` link carried (reference §7.2 fixtures)
ACTIVITY_STATUS_NAMES = {"scheduled": ACTIVITY_SCHEDULED, "logged": ACTIVITY_LOGGED, "cancelled": ACTIVITY_CANCELLED}


@dataclass(frozen=True, slots=True)
class Ctx:
    request: Request
    principal: Principal
    base: str
    body: Any

    @property
    def actor(self) -> int:
        return self.principal.user_id

    def path(self, name: str) -> str:
        return self.request.path_params[name]


Handler = Callable[[Ctx], Response]


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


def _filters(request: Request) -> dict[str, list[str]]:
    """`filter[key]=v` and `filter[key][]=v` (deepObject, exploded) -> {key: [values]}."""
    out: dict[str, list[str]] = {}
    for key in request.query_params:
        if key.startswith("filter[") and "]" in key:
            name = key[len("filter[") : key.index("]")]
            out.setdefault(name, []).extend(request.query_params.getlist(key))
    return out


def _page_params(request: Request, limit_key: str = "page[limit]") -> tuple[int, int]:
    """(limit, 0-based page) from the query; a bad value is the live 400 "Invalid filter"."""
    raw_limit = request.query_params.get(limit_key, str(DEFAULT_PAGE_LIMIT))
    raw_page = request.query_params.get("page[page]", "0")
    try:
        limit, page = int(raw_limit), int(raw_page)
    except ValueError as exc:
        raise invalid(f"Invalid page parameters: {raw_limit!r}, {raw_page!r}", "Invalid filter") from exc
    if page < 0:
        raise invalid(f"Invalid page number: {page}", "Invalid filter")
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise invalid(f"Invalid page limit: {limit} (1 to {MAX_PAGE_LIMIT})", "Invalid filter")
    return limit, page


def _one_element(body: Any, key: str) -> dict[str, Any]:
    """The create wrapper: `{"<key>": [ {one element} ]}`; more than one is refused as the live API does."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list) or not body[key]:
        raise invalid(f'The body must be {{"{key}": [ {{...}} ]}}')
    if len(body[key]) > 1:
        raise NutshellError(400, f"You may only create one {key} resource per request.")
    element = body[key][0]
    if not isinstance(element, dict):
        raise invalid(f"Each {key} element must be an object")
    return element


def _ids(raw: str, kind: str) -> list[int]:
    return [shapes.parse_path_id(part, kind) for part in raw.split(",") if part]


class RestApi:
    def __init__(self, state: NutshellState, guard: Guard) -> None:
        self.state = state
        self.guard = guard

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _endpoint(self, handler: Handler, *, body: str | None = None) -> Callable[[Request], Any]:
        """Auth, then the body (`json`, `patch`), then the handler under the state lock; errors as REST bodies."""

        async def run(request: Request) -> Response:
            try:
                principal = self.guard.check(request.headers.get("authorization"))
                payload = None
                if body is not None:
                    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
                    if body == "patch" and media != PATCH_MEDIA_TYPE:
                        raise NutshellError(
                            415, "Unsupported Media Type", f"{PATCH_MEDIA_TYPE} is required, see http://jsonapi.org"
                        )
                    raw = await request.body()
                    try:
                        payload = json.loads(raw) if raw else None
                    except ValueError as exc:
                        raise invalid("The body is not valid JSON", "Invalid JSON") from exc
                ctx = Ctx(request, principal, str(request.base_url).rstrip("/"), payload)
                with self.state.lock:
                    return handler(ctx)
            except NutshellError as exc:
                return JSONResponse(shapes.error_body(self.state, exc), status_code=exc.status, headers=exc.headers)

        return run

    def render(self, rec: Record, base: str) -> dict[str, Any]:
        return shapes.RENDERERS[rec.kind](self.state, rec, base)

    def envelope(self, kind: str, records: list[Record], base: str, **meta: Any) -> dict[str, Any]:
        return shapes.envelope(self.state, kind, [self.render(r, base) for r in records], **meta)

    def _get_many(self, kind: str, raw: str) -> list[Record]:
        return [self.state.get(kind, rid) for rid in _ids(raw, kind)]

    # --- contacts and accounts ----------------------------------------------------------------------------------

    def list_peeps(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Response:
            state, query = self.state, ctx.request.query_params
            records = state.by_email(kind, query["email"]) if "email" in query else list(state.live(kind))
            for name, values in _filters(ctx.request).items():
                records = self._filter_peeps(kind, records, name, values)
            if query.get("q"):
                hits = {r.id for r in state.search(kind, query["q"])}
                records = [r for r in records if r.id in hits]
            records = _sorted(records, query.get("sort"))
            limit, page = _page_params(ctx.request)
            chunk = records[page * limit : (page + 1) * limit]
            return _json(self.envelope(kind, chunk, ctx.base, count=len(chunk), total=len(records)))

        return handler

    def _filter_peeps(self, kind: str, records: list[Record], name: str, values: list[str]) -> list[Record]:
        state = self.state
        if name == "email":
            wanted = {v.strip().lower() for v in values}
            return [r for r in records if wanted & {e["value"].lower() for e in r.data["emails"]}]
        if name == "name":
            return [r for r in records if any(v.lower() in r.data["name"].lower() for v in values)]
        if name == "tags":
            tags = {shapes.parse_id(v, "tags") for v in values}
            return [r for r in records if tags & set(state.visible(r)["tags"])]
        if name == "owner":
            owners = {shapes.parse_id(v, "users") for v in values}
            return [r for r in records if r.data["owner"] in owners]
        if name == "accounts" and kind == "contacts":
            accounts = {shapes.parse_id(v, "accounts") for v in values}
            return [r for r in records if accounts & {a["id"] for a in state.visible(r)["accounts"]}]
        if name == "createdTime":
            low, high = _time_range(values[0])
            return [r for r in records if low <= r.created <= high]
        raise invalid(
            f"Unknown filter {name!r}; the sandbox filters {kind} by email, name, tags, owner"
            + (", accounts" if kind == "contacts" else "")
            + ", createdTime",
            "Invalid filter",
        )

    def get_peeps(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Response:
            records = self._get_many(kind, ctx.path("ids"))
            out = self.envelope(kind, records, ctx.base)
            if kind == "accounts":
                out |= self._account_side_loads(records, ctx.base)
            return _json(out)

        return handler

    def _account_side_loads(self, records: list[Record], base: str) -> dict[str, Any]:
        """The related arrays an account GET carries (accountResponse)."""
        users = self.state.records["users"]
        creators = sorted({r.data["creator"] for r in records})
        owners = sorted({r.data["owner"] for r in records if r.data["owner"] is not None})
        contacts = {c.id: c for r in records for c in self.state.contacts_of_account(r.id)}
        return {
            "creators": [self.render(users[u], base) for u in creators],
            "owners": [self.render(users[u], base) for u in owners],
            "contacts": [self.render(c, base) for _, c in sorted(contacts.items())],
            "origins": [],
            "accountTypes": self._related(records, "accountTypes", "account_type", base),
            "industries": self._related(records, "industries", "industry", base),
        }

    def _related(self, records: list[Record], kind: str, key: str, base: str) -> list[dict[str, Any]]:
        ids = sorted({r.data[key] for r in records if r.data[key] is not None})
        return [self.render(self.state.records[kind][i], base) for i in ids]

    def create_peep(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Response:
            data = shapes.parse_peep(kind, _one_element(ctx.body, kind))
            contacts = data.pop("_contacts", None)
            if contacts is not None:
                self.state.require_live_refs("contacts", contacts)
            rec = self.state.create(kind, data, ctx.actor)
            if contacts:
                self.state.set_account_contacts(rec, [{"id": c} for c in contacts], ctx.actor)
            # The published document answers 200 for contacts and 201 for accounts.
            return _json(self.envelope(kind, [rec], ctx.base), 200 if kind == "contacts" else 201)

        return handler

    def patch_peep(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Response:
            rec = self.state.get_live(kind, shapes.parse_path_id(ctx.path("id"), kind))
            data, contacts = apply_patch(self.state, rec, ctx.body)
            if contacts is not None:
                self.state.require_live_refs("contacts", contacts)
            self.state.update(rec, data, ctx.actor)
            if contacts is not None:
                relationships = {
                    c.id: next((a["relationship"] for a in c.data["accounts"] if a["id"] == rec.id), "")
                    for c in self.state.contacts_of_account(rec.id)
                }
                links = [{"id": c, "relationship": relationships.get(c, "")} for c in contacts]
                self.state.set_account_contacts(rec, links, ctx.actor)
            return Response(status_code=204)

        return handler

    def delete_many(self, kind: str, *, status: int) -> Handler:
        def handler(ctx: Ctx) -> Response:
            records = self._get_many(kind, ctx.path("ids"))
            for rec in records:
                if not self.state.is_live(rec):
                    raise NutshellError(404, "Not Found", f"{rec.rest_id} is already deleted.")
            for rec in records:
                self.state.delete(rec, ctx.actor)
            if status == 204:
                return Response(status_code=204)
            return _json(self.envelope(kind, records, ctx.base))

        return handler

    def undelete(self, kind: str) -> Handler:
        def handler(ctx: Ctx) -> Response:
            rec = self.state.get(kind, shapes.parse_path_id(ctx.path("id"), kind))
            self.state.undelete(rec, ctx.actor)
            return _json(self.envelope(kind, [rec], ctx.base))

        return handler

    # --- custom fields ------------------------------------------------------------------------------------------

    def custom_field_attributes(self, kind: str) -> Handler:
        entity = "Contacts" if kind == "contacts" else "Accounts"

        def handler(ctx: Ctx) -> Response:
            fields = [shapes.custom_field(r) for r in self.state.custom_fields(entity)]
            # Unconfirmed: the contacts variant is documented as a bare array, the accounts one (and a live
            # client of the leads one) as {"customFields": [...]}; we answer the object for both.
            return _json(shapes.envelope(self.state, "customFields", fields))

        return handler

    def create_custom_field(self, kind: str) -> Handler:
        entity = "Contacts" if kind == "contacts" else "Accounts"

        def handler(ctx: Ctx) -> Response:
            if not isinstance(ctx.body, dict):
                raise invalid('The body must be {"name": ..., "type": ...}')
            rec = self.state.create_custom_field(entity, ctx.body)
            # Unconfirmed: the body of this 200 (the document declares none); we return the new definition.
            return _json(shapes.envelope(self.state, "customFields", [shapes.custom_field(rec)]))

        return handler

    def custom_field_values(self, kind: str) -> Handler:
        entity = "Contacts" if kind == "contacts" else "Accounts"

        def handler(ctx: Ctx) -> Response:
            rec = self.state.get(kind, shapes.parse_path_id(ctx.path("id"), kind))
            # Unconfirmed: whether fields without a value are listed; we list only those with one.
            values = rec.data["custom"]
            fields = [
                shapes.custom_field(d, values[d.data["name"]], with_value=True)
                for d in self.state.custom_fields(entity)
                if d.data["name"] in values
            ]
            return _json(shapes.envelope(self.state, "customFields", fields))

        return handler

    # --- activities ---------------------------------------------------------------------------------------------

    def list_activities(self, ctx: Ctx) -> Response:
        state, query = self.state, ctx.request.query_params
        records = list(state.live("activities"))
        filters = _filters(ctx.request)
        for name, values in filters.items():
            if name == "participant":
                wanted = {(p["kind"], p["id"]) for p in (shapes._participant(v) for v in values)}
                records = [r for r in records if wanted & {(p["kind"], p["id"]) for p in r.data["participants"]}]
            elif name == "status":
                if set(values) - set(ACTIVITY_STATUS_NAMES):
                    raise invalid(f"filter[status] takes {', '.join(ACTIVITY_STATUS_NAMES)}", "Invalid filter")
                statuses = {ACTIVITY_STATUS_NAMES[v] for v in values}
                records = [r for r in records if r.data["status"] in statuses]
            elif name == "activityType":
                types = {_activity_type_id(v) for v in values}
                records = [r for r in records if r.data["type"] in types]
            elif name in ("flagged", "isImportant"):
                flag = values[0].lower() in ("1", "true")
                records = [r for r in records if r.data["flagged"] == flag]
            elif name in ("dateMin", "dateMax"):
                bound = _time(values[0], f"filter[{name}]")
                records = [
                    r for r in records if (r.data["start"] >= bound if name == "dateMin" else r.data["start"] <= bound)
                ]
            else:
                raise invalid(f"Unknown filter {name!r} for activities", "Invalid filter")
        if query.get("q"):
            needle = query["q"].lower()
            records = [r for r in records if needle in r.data["name"].lower()]
        records.sort(key=lambda r: (r.data["start"], r.id))
        limit_key = "limit" if "limit" in query else "page[limit]"
        limit, page = _page_params(ctx.request, limit_key)
        chunk = records[page * limit : (page + 1) * limit]
        return _json(self.envelope("activities", chunk, ctx.base, count=len(chunk), total=len(records)))

    def get_activities(self, ctx: Ctx) -> Response:
        return _json(self.envelope("activities", self._get_many("activities", ctx.path("ids")), ctx.base))

    def create_activity(self, ctx: Ctx) -> Response:
        data = shapes.parse_activity(_one_element(ctx.body, "activities"), partial=False)
        note = data.pop("_note", None)
        if note is not None and not isinstance(note, str):
            raise invalid("note must be text")
        # Unconfirmed: the defaults of a new activity; we choose activity type 1 and endTime = startTime.
        data.setdefault("type", 1)
        if "start" in data:
            data.setdefault("end", data["start"])
        rec = self.state.create("activities", data, ctx.actor)
        if note:
            self.state.set_note_body(self.state.log_note(rec, ctx.actor), note, ctx.actor)
        return _json(self.envelope("activities", [rec], ctx.base), 201)

    def put_activity(self, ctx: Ctx) -> Response:
        rec = self.state.get_live("activities", shapes.parse_path_id(ctx.path("id"), "activities"))
        # Unconfirmed: whether PUT replaces or merges; we merge (omitted fields keep their values).
        data = shapes.parse_activity(_one_element(ctx.body, "activities"), partial=True)
        note = data.pop("_note", None)
        if note is not None and not isinstance(note, str):
            raise invalid("note must be text")
        self.state.update(rec, data, ctx.actor)
        if note is not None:
            self.state.set_note_body(self.state.log_note(rec, ctx.actor), note, ctx.actor)
        return _json(self.envelope("activities", [rec], ctx.base))

    def list_reference(self, kind: str) -> Handler:
        """GET /industries, /accounttypes, /territories. Unconfirmed: the document declares bare arrays; live
        answers (Airbyte's connector reads `industries` and `accountTypes`) wrap them like every other list, as
        we do for all three."""

        def handler(ctx: Ctx) -> Response:
            return _json(self.envelope(kind, list(self.state.records[kind].values()), ctx.base))

        return handler

    def get_industry(self, ctx: Ctx) -> Response:
        rid = shapes.parse_path_id(ctx.path("id"), "industries")
        rec = self.state.records["industries"].get(rid)
        if rec is None:
            raise NutshellError(404, "Not Found", f"There is no industry {ctx.path('id')}.")
        return _json(self.envelope("industries", [rec], ctx.base))

    def list_activity_types(self, ctx: Ctx) -> Response:
        records = list(self.state.records["activityTypes"].values())
        return _json(self.envelope("activityTypes", records, ctx.base))

    # --- notes --------------------------------------------------------------------------------------------------

    def list_notes(self, ctx: Ctx) -> Response:
        filters = _filters(ctx.request)
        if set(filters) - {"parent"}:
            raise invalid("The sandbox filters notes by parent only", "Invalid filter")
        if "parent" in filters:
            # Unconfirmed: GET /notes documents no filter; we accept filter[parent]=<n>-contacts|accounts|activities.
            parents = sorted({_parent(v) for v in filters["parent"]})
            found = {n.id: n for kind, rid in parents for n in self.state.notes_of(kind, rid) if self.state.is_live(n)}
            records = [found[i] for i in sorted(found)]
        else:
            records = list(self.state.live("notes"))
        limit, page = _page_params(ctx.request)
        chunk = records[page * limit : (page + 1) * limit]
        return _json(self.envelope("notes", chunk, ctx.base, count=len(chunk), total=len(records)))

    def create_note(self, ctx: Ctx) -> Response:
        data = ctx.body.get("data") if isinstance(ctx.body, dict) else None
        if not isinstance(data, dict):
            raise invalid('The body must be {"data": {"body": ..., "links": {"parent": "<n>-contacts"}}}')
        links = data.get("links") or {}
        parent = links.get("parent") if isinstance(links, dict) else None
        kind, rid = _parent(parent) if isinstance(parent, str) else (None, None)
        if kind not in ("contacts", "accounts"):
            raise invalid(f"links.parent must be a contacts or accounts id, not {parent!r}")
        body = data.get("body")
        if not isinstance(body, str) or not body.strip():
            raise invalid("A note needs a non-empty body")
        rec = self.state.create("notes", {"body": body, "parent": {"kind": kind, "id": rid}}, ctx.actor)
        return _json(self.envelope("notes", [rec], ctx.base), 201)

    def get_notes(self, ctx: Ctx) -> Response:
        return _json(self.envelope("notes", self._get_many("notes", ctx.path("ids")), ctx.base))

    # --- users, tags, events ------------------------------------------------------------------------------------

    def list_users(self, ctx: Ctx) -> Response:
        records = list(self.state.records["users"].values())
        return _json(self.envelope("users", records, ctx.base, total=len(records)))

    def get_users(self, ctx: Ctx) -> Response:
        return _json(self.envelope("users", self._get_many("users", ctx.path("ids")), ctx.base))

    def list_tags(self, ctx: Ctx) -> Response:
        records = list(self.state.live("tags"))
        query = ctx.request.query_params
        for name, values in _filters(ctx.request).items():
            if name != "tagType":
                raise invalid(f"Unknown filter {name!r} for tags", "Invalid filter")
            records = [r for r in records if r.data["tag_type"] in values]
        if query.get("q"):
            records = [r for r in records if query["q"].lower() in r.data["name"].lower()]
        return _json(self.envelope("tags", records, ctx.base))

    def create_tags(self, ctx: Ctx) -> Response:
        body = ctx.body
        if not isinstance(body, dict) or not isinstance(body.get("tags"), list) or not body["tags"]:
            raise invalid('The body must be {"tags": [{"name": ..., "tagType": "2"}]}')
        created = []
        # Unconfirmed: whether one request may create several tags (the one-per-request rule is documented for
        # contacts and accounts); we allow it.
        for element in body["tags"]:
            if not isinstance(element, dict):
                raise invalid("Each tags element must be an object")
            raw_type = str(element.get("tagType", ""))
            tag_type = shapes.TAG_TYPE_CODES.get(raw_type, raw_type)
            color = shapes.TAG_COLORS.get(str(element.get("colorType", "1")))
            if color is None:
                raise invalid("colorType must be '1' to '14'")
            entities = (element.get("links") or {}).get("entities") or []
            if entities and tag_type not in ("contacts", "accounts"):
                raise invalid("links.entities needs a contacts (2) or accounts (3) tagType")
            targets = [self.state.get_live(tag_type, shapes.parse_id(e, tag_type)) for e in entities]
            rec = self.state.create(
                "tags", {"name": element.get("name"), "tag_type": tag_type, "color": color}, ctx.actor
            )
            for target in targets:
                self.state.update(target, {"tags": [*target.data["tags"], rec.id]}, ctx.actor)
            created.append(rec)
        return _json(self.envelope("tags", created, ctx.base))

    def list_events(self, ctx: Ctx) -> Response:
        """Newest first. Unconfirmed: paging when more than `limit` events match; we answer the oldest `limit`
        after a `since_*` cursor (so polling forward with meta.next misses nothing) and the newest `limit`
        otherwise; `meta.previous` pages back with `max_id`."""
        query = ctx.request.query_params
        events = self.state.events
        since_id = _event_id(query.get("since_id"))
        max_id = _event_id(query.get("max_id"))
        since_time = _int_param(query.get("since_time"), "since_time")
        max_time = _int_param(query.get("max_time"), "max_time")
        limit = _int_param(query.get("limit"), "limit") or DEFAULT_EVENT_LIMIT
        if not 1 <= limit <= MAX_PAGE_LIMIT:
            raise invalid(f"limit must be 1 to {MAX_PAGE_LIMIT}", "Invalid filter")
        kinds = set(query.getlist("filters[payload][]"))
        entity = query.get("entity_id")
        matching = [
            e
            for e in events
            if (since_id is None or e["id"] > since_id)
            and (max_id is None or e["id"] <= max_id)
            and (since_time is None or e["time"] > since_time)
            and (max_time is None or e["time"] < max_time)
            and (not kinds or e["kind"] in kinds)
            and (entity is None or f"{e['entity']}-{e['kind']}" == entity)
        ]
        forward = since_id is not None or since_time is not None
        page = matching[:limit] if forward else matching[-limit:]
        newest = page[-1] if page else None
        base_query = {"limit": limit}
        next_query = dict(base_query)
        if newest is not None:
            next_query |= {"since_id": f"{newest['id']}-events", "since_time": newest["time"] - 1}
        elif since_id is not None or since_time is not None:
            next_query |= {k: query[k] for k in ("since_id", "since_time") if k in query}
        else:
            last = events[-1] if events else None
            next_query |= {"since_id": f"{last['id'] if last else 0}-events"}
        meta: dict[str, Any] = {"next": f"{ctx.base}/rest/events?{urlencode(next_query)}"}
        if page and page[0] is not matching[0]:
            older = base_query | {"max_id": f"{page[0]['id'] - 1}-events"}
            meta["previous"] = f"{ctx.base}/rest/events?{urlencode(older)}"
        return _json(shapes.envelope(self.state, "events", [shapes.event(e) for e in reversed(page)], **meta))

    # --- routes -------------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        e = self._endpoint
        routes: list[Route] = []
        for kind in ("contacts", "accounts"):
            p = f"/rest/{kind}"
            routes += [
                Route(p, e(self.list_peeps(kind)), methods=["GET"]),
                Route(p, e(self.create_peep(kind), body="json"), methods=["POST"]),
                Route(f"{p}/customfields/attributes", e(self.custom_field_attributes(kind)), methods=["GET"]),
                Route(f"{p}/customfield", e(self.create_custom_field(kind), body="json"), methods=["POST"]),
                Route(f"{p}/{{id}}/customfields", e(self.custom_field_values(kind)), methods=["GET"]),
                Route(f"{p}/{{id}}/undelete", e(self.undelete(kind)), methods=["POST"]),
                Route(f"{p}/{{ids}}", e(self.get_peeps(kind)), methods=["GET"]),
                Route(f"{p}/{{id}}", e(self.patch_peep(kind), body="patch"), methods=["PATCH"]),
                # The document answers 204 for a contact and 200 with the account for an account.
                Route(
                    f"{p}/{{ids}}",
                    e(self.delete_many(kind, status=204 if kind == "contacts" else 200)),
                    methods=["DELETE"],
                ),
            ]
        routes += [
            Route("/rest/activities", e(self.list_activities), methods=["GET"]),
            Route("/rest/activities", e(self.create_activity, body="json"), methods=["POST"]),
            Route("/rest/activities/{ids}", e(self.get_activities), methods=["GET"]),
            Route("/rest/activities/{id}", e(self.put_activity, body="json"), methods=["PUT"]),
            Route("/rest/activitytypes", e(self.list_activity_types), methods=["GET"]),
            Route("/rest/industries", e(self.list_reference("industries")), methods=["GET"]),
            Route("/rest/industries/{id}", e(self.get_industry), methods=["GET"]),
            Route("/rest/accounttypes", e(self.list_reference("accountTypes")), methods=["GET"]),
            Route("/rest/territories", e(self.list_reference("territories")), methods=["GET"]),
            Route("/rest/notes", e(self.list_notes), methods=["GET"]),
            Route("/rest/notes", e(self.create_note, body="json"), methods=["POST"]),
            Route("/rest/notes/{id}/undelete", e(self.undelete("notes")), methods=["POST"]),
            Route("/rest/notes/{ids}", e(self.get_notes), methods=["GET"]),
            Route("/rest/notes/{ids}", e(self.delete_many("notes", status=200)), methods=["DELETE"]),
            Route("/rest/users", e(self.list_users), methods=["GET"]),
            Route("/rest/users/{ids}", e(self.get_users), methods=["GET"]),
            Route("/rest/tags", e(self.list_tags), methods=["GET"]),
            Route("/rest/tags", e(self.create_tags, body="json"), methods=["POST"]),
            Route("/rest/tags/{id}/undelete", e(self.undelete("tags")), methods=["POST"]),
            Route("/rest/tags/{ids}", e(self.delete_many("tags", status=200)), methods=["DELETE"]),
            Route("/rest/events", e(self.list_events), methods=["GET"]),
        ]
        known = list(routes)

        async def fallback(request: Request) -> Response:
            allowed = sorted({m for r in known if r.path_regex.match(request.url.path) for m in r.methods or ()})
            if allowed:
                exc = NutshellError(405, "Method Not Allowed", f"{request.method} is not allowed here")
                headers = {"Allow": ", ".join(allowed)}
            else:
                exc = NutshellError(404, "Not Found", f"The sandbox does not serve {request.url.path}")
                headers = {}
            return JSONResponse(shapes.error_body(self.state, exc), status_code=exc.status, headers=headers)

        routes.append(Route("/rest/{rest:path}", fallback, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
        return routes


def rest_routes(state: NutshellState, guard: Guard) -> list[Route]:
    return RestApi(state, guard).routes()


# --- small parsers -----------------------------------------------------------------------------------------------


def _sorted(records: list[Record], sort: str | None) -> list[Record]:
    if not sort:
        return records  # creation (id) order
    keys: dict[str, Callable[[Record], Any]] = {
        "name": lambda r: r.data["name"].lower(),
        "createdTime": lambda r: r.created,
    }
    field = sort.lstrip("-")
    if field not in keys:
        raise invalid(f"The sandbox sorts by name or createdTime, not {sort!r}", "Invalid sort")
    return sorted(records, key=lambda r: (keys[field](r), r.id), reverse=sort.startswith("-"))


def _time(value: str, what: str) -> int:
    try:
        return parse_time(value, what)
    except ValueError as exc:
        raise invalid(str(exc), "Invalid filter") from exc


def _time_range(value: str) -> tuple[int, int]:
    """`filter[createdTime]=<from> <to>` (RFC 3339 pair, as a public client sends it)."""
    parts = value.split()
    if len(parts) != 2:
        raise invalid("filter[createdTime] takes '<from> <to>'", "Invalid filter")
    return _time(parts[0], "from"), _time(parts[1], "to")


def _int_param(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise invalid(f"{what} must be an integer", "Invalid filter") from exc


def _event_id(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    number = value.removesuffix("-events")
    if not number.isdigit():
        raise invalid(f"{value!r} is not an events id", "Invalid filter")
    return int(number)


def _activity_type_id(value: str) -> int:
    if value.isdigit():
        return int(value)
    return shapes.parse_id(value, "activityTypes")


def _parent(value: str) -> tuple[str, int]:
    number, _, kind = value.partition("-")
    if not number.isdigit() or kind not in ("contacts", "accounts", "activities"):
        raise invalid(f"{value!r} is not a contacts, accounts or activities id")
    return kind, int(number)
