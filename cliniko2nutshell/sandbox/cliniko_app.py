"""The Cliniko sandbox: a Starlette app serving a clinic file (cliniko_db.py schema) the way Cliniko's API v1 does.

Faithful to shared/reference/cliniko-api.md and Cliniko's OpenAPI document (OAS23). Reads: the collections in
`COLLECTIONS` (list + GET by id), `/practitioners/inactive`, `/user`, `/settings`, `/settings/public`,
`/patients/{id}/referral_source`, `/patient_attachments/{id}/content` (303 to the blob port), the derived
`/bookings`, and the legacy `/appointments` alias. Writes: patients and individual appointments (cliniko_writes.py).
No payments endpoint, as in the real API. Auth, User-Agent and the rate limit: cliniko_gate.py. Query syntax:
cliniko_query.py. Error bodies: cliniko_http.py.

Start it with `start_cliniko_sandbox(db_path)`: one app on two loopback ports, the API (`base_url`, .../v1) and a
blob port standing in for S3 (`blob_base`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox import cliniko_writes as writes
from cliniko2nutshell.sandbox.cliniko_blobs import BAD_TOKEN, DEFAULT_TTL, ONE_AUTH_ONLY, BlobSigner
from cliniko2nutshell.sandbox.cliniko_db import BASE
from cliniko2nutshell.sandbox.cliniko_gate import ClinikoGate, staff_key
from cliniko2nutshell.sandbox.cliniko_http import (
    absolute,
    api_base,
    envelope,
    error,
    json_text,
    json_value,
    not_found,
    page_links,
    validation_failed,
)
from cliniko2nutshell.sandbox.cliniko_query import (
    LIST_FILTERS,
    QueryError,
    Where,
    build_where,
    id_filters,
    parse_filters,
    parse_page,
    parse_sort,
)
from cliniko2nutshell.sandbox.cliniko_records import RecordStore, Row
from cliniko2nutshell.sandbox.knobs import (
    FaultMiddleware,
    Knobs,
    RequestTally,
    RollingWindowLimiter,
    TallyMiddleware,
    knob_routes,
)
from cliniko2nutshell.sandbox.server import ServerThread

DEFAULT_RATE_LIMIT = 200  # requests per rolling minute per key (reference §3)


@dataclass(frozen=True, slots=True)
class Collection:
    """A list endpoint: its URL name (also the envelope key), the stored resources it shows, its filters."""

    plural: str
    sources: tuple[str, ...]
    filters: str  # the LIST_FILTERS entry
    conditions: tuple[str, ...] = ()  # always-on SQL conditions (active/inactive practitioners)

    @property
    def whitelist(self) -> dict[str, str]:
        return LIST_FILTERS[self.filters]


def _plain(name: str) -> Collection:
    return Collection(name, (name,), name)


BOOKING_SOURCES = ("individual_appointments", "group_appointments", "unavailable_blocks")
ACTIVE = "COALESCE(json_extract(body, '$.active'), 1) = 1"  # a practitioner without the flag counts as active
INACTIVE = "COALESCE(json_extract(body, '$.active'), 1) = 0"

COLLECTIONS: dict[str, Collection] = {
    c.plural: c
    for c in (
        *(_plain(name) for name in LIST_FILTERS if name not in ("practitioners", "bookings")),
        Collection("practitioners", ("practitioners",), "practitioners", (ACTIVE,)),
        Collection("bookings", BOOKING_SOURCES, "bookings"),
    )
}
INACTIVE_PRACTITIONERS = Collection("practitioners", ("practitioners",), "practitioners", (INACTIVE,))

# The deprecated /appointments (reference §7): individual appointments under their 2018 field names.
LEGACY_FIELDS = {"starts_at": "appointment_start", "ends_at": "appointment_end", "cancelled_at": "cancellation_time"}
LEGACY_FILTERS = {"id": "int64", "created_at": "date-time", "updated_at": "date-time", "appointment_start": "date-time",
                  "appointment_end": "date-time", "appointment_type_id": "int64", "business_id": "int64",
                  "patient_id": "int64", "practitioner_id": "int64"}  # fmt: skip


@dataclass
class ClinikoSandbox:
    base_url: str  # http://127.0.0.1:<api port>/v1
    api_key: str
    blob_base: str  # http://127.0.0.1:<blob port>
    knobs: Knobs
    server: ServerThread
    shard: str = "au1"
    app: Starlette | None = field(default=None, repr=False)
    # Keys of the clinic's other users, by role (the first user of each role): to try a non-administrator's key.
    staff_keys: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.server.stop()
        if self.app is not None:
            self.app.state.store.close()

    def __enter__(self) -> ClinikoSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cliniko_sandbox(
    db_path: Path,
    *,
    knobs: Knobs | None = None,
    rate_limit: int | None = DEFAULT_RATE_LIMIT,
    blob_ttl: float = DEFAULT_TTL,
    api_port: int = 0,
    blob_port: int = 0,
) -> ClinikoSandbox:
    """Serve `db_path` on 127.0.0.1 (ports 0: any free ones) in a background thread until `.stop()`."""
    knobs = knobs if knobs is not None else Knobs()
    app = create_app(db_path, knobs=knobs, rate_limit=rate_limit, blob_ttl=blob_ttl)
    server = ServerThread(app, ports=(api_port, blob_port))
    app.state.blob_port = server.sockets[1].getsockname()[1]
    app.state.blob_base = server.urls[1]
    server.start()
    store: RecordStore = app.state.store
    return ClinikoSandbox(
        base_url=f"{server.urls[0]}/v1",
        api_key=store.meta["api_key"],
        blob_base=server.urls[1],
        knobs=knobs,
        server=server,
        shard=store.meta.get("shard", "au1"),
        app=app,
        staff_keys={role: staff_key(store.meta["api_key"], uid) for role, uid in app.state.staff.items()},
    )


def create_app(
    db_path: Path,
    *,
    knobs: Knobs | None = None,
    rate_limit: int | None = DEFAULT_RATE_LIMIT,
    blob_ttl: float = DEFAULT_TTL,
) -> Starlette:
    """The app. `rate_limit` (None or 0: unlimited) applies unless `knobs.rate_limit` is set."""
    knobs = knobs if knobs is not None else Knobs()
    store = RecordStore(db_path)
    if "api_key" not in store.meta:
        raise ValueError(f"{db_path} has no meta.api_key: not a generated Cliniko clinic")
    limiter = RollingWindowLimiter(60.0)
    signer = BlobSigner(ttl=blob_ttl)
    staff = _staff(store)
    api = _Api(store, signer)

    def limit() -> int | None:
        chosen = knobs.rate_limit if knobs.rate_limit is not None else rate_limit
        return chosen if chosen else None

    tally = RequestTally()
    app = Starlette(
        routes=[*knob_routes(knobs, on_reset=limiter.reset, tally=tally), *api.routes()],
        middleware=[
            Middleware(TallyMiddleware, tally=tally),
            Middleware(
                FaultMiddleware, knobs=knobs, retry_headers=_reset_header, edit=lambda k: _front_desk_edit(store, k)
            ),
            Middleware(
                ClinikoGate,
                api_key=store.meta["api_key"],
                shard=store.meta.get("shard", "au1"),
                limiter=limiter,
                limit=limit,
                blob_port=lambda: getattr(app.state, "blob_port", None),
                staff=staff,
                revoked=lambda: knobs.revoked,
            ),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.store = store
    app.state.limiter = limiter
    app.state.signer = signer
    app.state.staff = staff
    return app


def _staff(store: RecordStore) -> dict[str, str]:
    """Role -> user id of the first active user of each role other than the key's own (the administrator)."""
    raw = store.singleton("current_user_id")
    own = str(json.loads(raw)) if raw else None
    found: dict[str, str] = {}
    for uid, body in store.conn().execute("SELECT id, body FROM records WHERE resource = 'users' ORDER BY seq"):
        user = json.loads(body)
        if uid != own and user.get("active") and isinstance(user.get("role"), str):
            found.setdefault(user["role"], uid)
    return found


def _reset_header(seconds: float) -> list[tuple[bytes, bytes]]:
    """A "429" fault as Cliniko answers it: X-RateLimit-Reset, the epoch second when requests are allowed again."""
    return [(b"x-ratelimit-reset", str(math.ceil(time.time() + seconds)).encode())]


def _front_desk_edit(store: RecordStore, knobs: Knobs) -> str | None:
    """Someone at the clinic edits a patient while we read (the `edit_every` knob): a new occupation and a new
    updated_at, so an extraction already past that patient holds an older copy. Returns the patient's id."""
    rows = store.conn().execute(
        "SELECT id FROM records WHERE resource = 'patients' AND archived_at IS NULL AND deleted_at IS NULL ORDER BY seq"
    )
    ids = [r[0] for r in rows]
    if not ids:
        return None
    pid = knobs.pick(ids)
    change = {"occupation": f"Edited at the front desk ({len(knobs.edited) + 1})"}
    store.write(lambda conn: writes.update_patient(store, conn, pid, change))
    return pid


async def _http_error(_request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error(status, {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error"))


Handler = Callable[[Request], Awaitable[Response]]


class _Api:
    """The endpoints. Database work runs in worker threads (sqlite3 blocks); each thread has its connection."""

    def __init__(self, store: RecordStore, signer: BlobSigner) -> None:
        self.store = store
        self.signer = signer

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/v1/practitioners/inactive", self._lister(INACTIVE_PRACTITIONERS)),
            Route("/v1/user", self._threaded(self.current_user)),
            Route("/v1/settings", self._threaded(self.settings)),
            Route("/v1/settings/public", self._threaded(lambda r: self.singleton(r, "public_settings"))),
            Route("/v1/patients/{id}/referral_source", self._threaded(self.referral_source)),
            Route("/v1/patient_attachments/{id}/content", self._threaded(self.attachment_content)),
            Route("/v1/appointments", self._threaded(self.legacy_list)),
            Route("/v1/appointments/{id}", self._threaded(self.legacy_one)),
            Route("/blobs/{token}", self.blob),
            *self._write_routes(),
        ]
        for collection in COLLECTIONS.values():
            routes.append(Route(f"/v1/{collection.plural}", self._lister(collection)))
            routes.append(Route(f"/v1/{collection.plural}/{{id}}", self._getter(collection)))
        return routes

    def _write_routes(self) -> list[BaseRoute]:
        w = self._writer
        return [
            Route("/v1/patients", w(writes.create_patient, created="patients"), methods=["POST"]),
            Route("/v1/patients/{id}", w(writes.update_patient), methods=["PATCH", "PUT"]),
            Route("/v1/patients/{id}", w(writes.archive_patient, body=False, status=204), methods=["DELETE"]),
            Route("/v1/patients/{id}/archive", w(writes.archive_patient, body=False, status=204), methods=["POST"]),
            Route("/v1/patients/{id}/unarchive", w(writes.unarchive_patient, body=False), methods=["POST"]),
            Route(
                "/v1/individual_appointments",
                w(writes.create_individual_appointment, created="individual_appointments"),
                methods=["POST"],
            ),
            Route(
                "/v1/individual_appointments/{id}", w(writes.update_individual_appointment), methods=["PATCH", "PUT"]
            ),
            Route(
                "/v1/individual_appointments/{id}",
                w(writes.archive_individual_appointment, body=False, status=204),
                methods=["DELETE"],
            ),
            Route(
                "/v1/individual_appointments/{id}/cancel",
                w(writes.cancel_individual_appointment, status=204),
                methods=["PATCH"],
            ),
            Route(
                "/v1/individual_appointments/{id}/archive",
                w(writes.archive_individual_appointment, body=False, status=204),
                methods=["POST"],
            ),
        ]

    # --- plumbing ----------------------------------------------------------------------------------------------

    @staticmethod
    def _threaded(fn: Callable[[Request], Response]) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await run_in_threadpool(fn, request)
            except QueryError as exc:
                return error(400, "Bad Request", {exc.param: exc.reason})

        return endpoint

    def _lister(self, collection: Collection) -> Handler:
        return self._threaded(lambda request: self.list(request, collection))

    def _getter(self, collection: Collection) -> Handler:
        return self._threaded(lambda request: self.one(request, collection))

    def _writer(
        self, fn: Callable[..., Any], *, body: bool = True, status: int = 200, created: str | None = None
    ) -> Handler:
        async def endpoint(request: Request) -> Response:
            args: list[Any] = []
            if "id" in request.path_params:
                args.append(request.path_params["id"])
            if body:
                raw = await request.body()
                try:
                    args.append(json.loads(raw) if raw.strip() else {})
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return error(400, "Bad Request", {"body": "is not valid JSON"})
            try:
                result = await run_in_threadpool(self.store.write, lambda conn: fn(self.store, conn, *args))
            except writes.Invalid as exc:
                return validation_failed(exc.errors)
            except writes.Missing:
                return not_found()
            if status == 204:
                return Response(status_code=204)
            text = absolute(json.dumps(result, ensure_ascii=False, separators=(",", ":")), api_base(request))
            if created:
                location = f"{api_base(request)}/{created}/{result['id']}"
                return json_text(text, 201, {"Location": location})
            return json_text(text, status)

        return endpoint

    @staticmethod
    def _filters(request: Request, whitelist: dict[str, str]) -> list[Any]:
        raw = [*request.query_params.getlist("q[]"), *request.query_params.getlist("q")]
        return parse_filters(raw, whitelist)

    @staticmethod
    def _with(where: Where, conditions: tuple[str, ...]) -> Where:
        return Where((*where.conditions, *conditions), where.params, where.lifted)

    @staticmethod
    def _render(row: Row, base: str, collection: Collection) -> str:
        body = row.body
        if collection.plural == "bookings":
            # A booking is its appointment or block under /bookings/{id}; its other links stay where they are.
            body = body.replace(f'"{BASE}/{row.resource}/{row.id}"', f'"{BASE}/bookings/{row.id}"')
        return absolute(body, base)

    # --- reads -------------------------------------------------------------------------------------------------

    def list(self, request: Request, collection: Collection) -> Response:
        page, per_page = parse_page(request.query_params.get("page"), request.query_params.get("per_page"))
        order_by = parse_sort(request.query_params.get("sort"), request.query_params.get("order"), collection.whitelist)
        where = build_where(collection.filters, self._filters(request, collection.whitelist))
        where = self._with(where, collection.conditions)
        total, rows = self.store.page(collection.sources, where, order_by, per_page, (page - 1) * per_page)
        base = api_base(request)
        bodies = [self._render(row, base, collection) for row in rows]
        links = page_links(request, page, per_page, total)
        return json_text(envelope(collection.plural, bodies, total, links))

    def one(self, request: Request, collection: Collection) -> Response:
        where = build_where(collection.filters, self._filters(request, id_filters(collection.filters)))
        # GET by id serves inactive practitioners too: the always-on conditions are list views only.
        row = self.store.one(collection.sources, request.path_params["id"], where)
        if row is None:
            return not_found()
        return json_text(self._render(row, api_base(request), collection))

    def _key_user(self, request: Request) -> Row | None:
        """The user the request's key belongs to (the gate names it; the clinic's own key is the administrator)."""
        uid = getattr(request.state, "cliniko_user_id", None)
        if uid is None:
            raw = self.store.singleton("current_user_id")
            uid = str(json.loads(raw)) if raw else None
        return self.store.any("users", uid) if uid else None

    def current_user(self, request: Request) -> Response:
        row = self._key_user(request)
        if row is None:
            return not_found()
        return json_text(absolute(row.body, api_base(request)))

    def settings(self, request: Request) -> Response:
        """GET /settings is for "roles that can view settings" (reference §5.19; §4: a 403 otherwise).
        Unconfirmed: which roles those are; we choose administrators only. /settings/public answers every role."""
        row = self._key_user(request)
        if row is None or json.loads(row.body).get("role") != "administrator":
            return error(403, "Forbidden")
        return self.singleton(request, "settings")

    def singleton(self, request: Request, name: str) -> Response:
        body = self.store.singleton(name)
        if body is None:
            return not_found()
        return json_text(absolute(body, api_base(request)))

    def referral_source(self, request: Request) -> Response:
        pid = request.path_params["id"]
        if self.store.any("patients", pid) is None:
            return not_found()
        rows = self.store.rows_where_fk(self.store.conn(), "referral_sources", "patient_id", pid)
        if not rows:
            return not_found()  # a patient without a referral source (reference §5.18)
        return json_text(absolute(rows[0].body, api_base(request)))

    def attachment_content(self, request: Request) -> Response:
        aid = request.path_params["id"]
        where = build_where("patient_attachments", self._filters(request, id_filters("patient_attachments")))
        if self.store.one(("patient_attachments",), aid, where) is None or self.store.blob(aid) is None:
            return not_found()
        blob_base = getattr(request.app.state, "blob_base", None) or f"{request.url.scheme}://{request.url.netloc}"
        return RedirectResponse(self.signer.url(blob_base, aid), status_code=303)

    async def blob(self, request: Request) -> Response:
        xml = "application/xml"
        if "authorization" in request.headers:
            return Response(ONE_AUTH_ONLY, status_code=400, media_type=xml)
        aid, problem = self.signer.check(request.path_params["token"])
        if aid is None:
            return Response(problem or BAD_TOKEN, status_code=403, media_type=xml)
        row = await run_in_threadpool(self.store.blob, aid)
        if row is None:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type=xml)
        size, content_type, seed = int(row["size"]), str(row["content_type"]), int(row["seed"])
        return StreamingResponse(
            cliniko_db.blob_chunks(seed, size, content_type),
            media_type=content_type,
            headers={"Content-Length": str(size)},
        )

    # --- the deprecated /appointments alias ------------------------------------------------------------------------

    def legacy_list(self, request: Request) -> Response:
        filters = self._filters(request, LEGACY_FILTERS)
        renamed = [type(f)(_legacy_field(f.field), f.kind, f.op, f.value) for f in filters]
        page, per_page = parse_page(request.query_params.get("page"), request.query_params.get("per_page"))
        sort = ",".join(_legacy_field(part) for part in (request.query_params.get("sort") or "").split(",") if part)
        order_by = parse_sort(sort, request.query_params.get("order"), LIST_FILTERS["individual_appointments"])
        where = build_where("individual_appointments", renamed)
        total, rows = self.store.page(("individual_appointments",), where, order_by, per_page, (page - 1) * per_page)
        base = api_base(request)
        bodies = [json.dumps(_legacy_body(row, base), ensure_ascii=False, separators=(",", ":")) for row in rows]
        return json_text(envelope("appointments", bodies, total, page_links(request, page, per_page, total)))

    def legacy_one(self, request: Request) -> Response:
        if request.query_params.getlist("q[]") or request.query_params.getlist("q"):
            raise QueryError("q[]", "this endpoint takes no filters")
        where = build_where("individual_appointments", [])
        row = self.store.one(("individual_appointments",), request.path_params["id"], where)
        if row is None:
            return not_found()
        return json_value(_legacy_body(row, api_base(request)))


def _legacy_field(name: str) -> str:
    """A legacy filter or sort name as the individual-appointment field it stands for."""
    reverse = {v: k for k, v in LEGACY_FIELDS.items()}
    head, sep, tail = name.partition(":")
    return reverse.get(head, head) + sep + tail


def _legacy_body(row: Row, base: str) -> dict[str, Any]:
    body = json.loads(absolute(row.body, base))
    for new, old in LEGACY_FIELDS.items():
        if new in body:
            body[old] = body.pop(new)
    if "repeated_from" in body:
        body["appointment_repeated_from"] = body.pop("repeated_from")
    body["repeats"] = {"links": {"self": f"{base}/appointments?q=repeated_from_appointment_id:={row.id}"}}
    body["invoices"] = {"links": {"self": f"{base}/appointments/{row.id}/invoices"}}
    body["links"] = {"self": f"{base}/appointments/{row.id}"}
    return body
