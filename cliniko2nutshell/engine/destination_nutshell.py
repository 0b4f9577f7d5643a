"""The engine's Destination over the real Nutshell client: errors translated, records read back in payload shape.

Reading back in the shape we send (the REST create element) lets the engine compare the two directly: an
update sends only what differs, a conflict names the fields someone edited, the sample diff needs no
knowledge of either protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from cliniko2nutshell.engine.destination import (
    Conflict,
    DestinationBudget,
    Entity,
    ExistingPeople,
    FileSpec,
    Gone,
    OutcomeUnknown,
    Rejected,
    Remote,
    Unavailable,
)
from cliniko2nutshell.engine.fields import apply
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD
from cliniko2nutshell.nutshell.client import NutshellClient, activity_input, with_changes
from cliniko2nutshell.nutshell.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    NutshellError,
    NutshellValidationError,
    OutcomeUnknownError,
    PermissionDenied,
    RateLimitedError,
    ServiceError,
)
from cliniko2nutshell.nutshell.existing import people_by_email
from cliniko2nutshell.nutshell.many import Family, records_by_id
from cliniko2nutshell.nutshell.models import Activity, Company, FileInfo, Note, Person
from cliniko2nutshell.nutshell.sending import Safety

T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


_LISTS = ("emails", "phones", "urls", "addresses")


def _clearing(changes: dict[str, Any]) -> dict[str, Any]:
    """An empty multi-value field is written as [] (Nutshell refuses null there: "Invalid phone number");
    a restore puts back a person's empty fields this way."""
    out = {k: ([] if k in _LISTS and v is None else v) for k, v in changes.items()}
    if isinstance(out.get("links"), dict):
        out["links"] = {k: ([] if k == "accounts" and v is None else v) for k, v in out["links"].items()}
    return out


def _remote(entity: Person | Company | Activity | Note) -> Remote:
    """A record as read, in the create payload's shape (each model's `to_payload`, the one converter)."""
    fields = entity.to_payload()
    modified = getattr(entity, "modified_time", None) or getattr(entity, "created_time", None)
    return Remote(entity.id.rest, entity.rev, _iso(modified), fields)


def _sent(entity: Entity, payload: dict[str, Any]) -> dict[str, Any]:
    """A create payload as we would read it back: through the same model, so the shapes agree."""
    model = {Entity.CONTACTS: Person, Entity.ACCOUNTS: Company, Entity.ACTIVITIES: Activity}.get(entity, Note)
    return model.from_api({**payload, "id": f"1-{model.kind}"}).to_payload()


def _file_remote(f: FileInfo) -> Remote:
    return Remote(f.id.rest, f.rev, None, {"name": f.name, "size": f.size})


def _deleted(entity: Any) -> bool:
    return getattr(entity, "deleted_time", None) is not None


async def _translate(call: Awaitable[T], *, write: bool) -> T:
    """Nutshell's errors as the engine's five: what to do next is decided by the type alone."""
    try:
        return await call
    except OutcomeUnknownError as exc:
        raise OutcomeUnknown(str(exc)) from exc
    except ConflictError as exc:
        raise Conflict(str(exc)) from exc
    except NotFoundError as exc:
        raise Gone(str(exc)) from exc
    except NutshellValidationError as exc:
        raise Rejected(exc.message) from exc
    except (AuthError, PermissionDenied, RateLimitedError) as exc:
        raise Unavailable(str(exc)) from exc
    except ServiceError as exc:
        # The client retried what was safe to retry; a write that failed here may have happened.
        raise (OutcomeUnknown(str(exc)) if write else Unavailable(str(exc))) from exc
    except NutshellError as exc:
        if write:
            raise OutcomeUnknown(str(exc)) from exc
        raise


class NutshellDestination:
    """Destination over a NutshellClient (owned by the caller, who opens and closes it)."""

    def __init__(self, client: NutshellClient, *, scan_page_hint: int = 100) -> None:
        self.client = client
        self.scan_page_hint = scan_page_hint

    async def create(self, entity: Entity, payload: dict[str, Any]) -> Remote:
        c = self.client
        if entity is Entity.CONTACTS:
            written = await _translate(c.create_person(payload), write=True)
        elif entity is Entity.ACCOUNTS:
            written = await _translate(c.create_company(payload), write=True)
        elif entity is Entity.ACTIVITIES:
            written = await _translate(c.create_activity(payload), write=True)
        elif entity is Entity.NOTES:
            body, parent = payload.get("body"), payload.get("parent")
            if not isinstance(body, str) or not isinstance(parent, str):
                raise Rejected("a note needs a body and a parent")
            written = await _translate(c.create_note(body, parent), write=True)
        else:
            raise ValueError(f"{entity} records are created with upload_file")
        # One call per record: nothing is read back. The answer is what Nutshell holds; a REST create answer
        # leaves people's and companies' custom field values out, so those are what we sent. The fingerprint
        # taken from this compares with later reads in a form Nutshell's rewriting does not move (markers.py).
        if written.entity is None:
            return Remote(written.id.rest, written.rev, _iso(written.modified_time), _sent(entity, payload))
        remote = _remote(written.entity)
        if entity in (Entity.CONTACTS, Entity.ACCOUNTS) and not remote.fields.get("customFields"):
            sent = _sent(entity, payload).get("customFields")
            if sent:
                remote = Remote(remote.id, remote.rev, remote.modified, {**remote.fields, "customFields": sent})
        return remote

    async def get(self, entity: Entity, id_: str) -> Remote | None:
        # People and companies over JSON-RPC: one request carries their custom field values and rev (REST needs
        # two and has no rev). Activities and notes over REST, as their creates answer. Each kind is always read
        # the same way, so fingerprints compare like with like.
        getter: dict[Entity, Callable[[str], Awaitable[Any]]] = {
            Entity.CONTACTS: lambda i: self.client.get_person(i, via="rpc"),
            Entity.ACCOUNTS: lambda i: self.client.get_company(i, via="rpc"),
            Entity.ACTIVITIES: self.client.get_activity,
            Entity.NOTES: self.client.get_note,
        }
        try:
            found = await _translate(getter[entity](id_), write=False)
        except Gone:
            return None
        return None if _deleted(found) else _remote(found)

    async def read_many(
        self, entity: Entity, ids: Iterable[str], *, revs: bool = False, confirm_missing: bool = True
    ) -> dict[str, Remote | None]:
        family = cast(Family, entity.value)
        got = await _translate(records_by_id(self.client, family, ids, revs=revs, confirm_missing=confirm_missing),
                               write=False)  # fmt: skip
        out: dict[str, Remote | None] = {}
        for id_, record in got.found.items():
            remote = None if record is None else _remote(record)
            if remote is not None and remote.rev is None and id_ in got.revs:
                remote = replace(remote, rev=got.revs[id_])
            out[id_] = remote
        return out

    async def update(
        self, entity: Entity, id_: str, changes: dict[str, Any], rev: str | None, current: Remote | None = None
    ) -> Remote:
        c = self.client
        changes = _clearing(changes)
        if current is None:
            current = await self.get(entity, id_)
            if current is None:
                raise Gone(f"{id_} is not in Nutshell")
        if entity in (Entity.CONTACTS, Entity.ACCOUNTS):
            # Unconfirmed: REST PATCH documents no concurrency token. The caller read the record just before (its
            # conflict check), so an edit slipping in between has one round trip to do it; guarding would cost
            # a second read per update. The PATCH answers 204: what it holds now is what it held, changed.
            update = c.update_person if entity is Entity.CONTACTS else c.update_company
            await _translate(update(id_, changes, read_back=False), write=True)
            return Remote(id_, None, None, apply(current.fields, changes))
        if entity is Entity.ACTIVITIES:
            element = with_changes(activity_input(current.fields), changes)
            written = await _translate(c.put_activity(id_, element), write=True)
            if written.entity is not None:
                return _remote(written.entity)
            return Remote(id_, None, None, {**element, "files": current.fields.get("files")})
        raise ValueError(f"{entity} records cannot be updated through the API")

    async def delete(self, entity: Entity, id_: str, rev: str | None) -> None:
        c = self.client
        if entity is Entity.CONTACTS:
            await _translate(c.delete_person(id_, expected_rev=rev), write=True)
        elif entity is Entity.ACCOUNTS:
            await _translate(c.delete_company(id_, expected_rev=rev), write=True)
        elif entity is Entity.ACTIVITIES:
            await _translate(c.delete_activity(id_, rev=rev), write=True)
        elif entity is Entity.NOTES:
            await _translate(c.delete_note(id_), write=True)
        else:
            raise ValueError("files go with the activity that holds them")

    async def undelete(self, entity: Entity, id_: str) -> Remote:
        c = self.client
        restore: dict[Entity, Callable[[str], Awaitable[Any]]] = {
            Entity.CONTACTS: c.undelete_person,
            Entity.ACCOUNTS: c.undelete_company,
            Entity.NOTES: c.undelete_note,
        }
        if entity not in restore:
            raise Rejected(f"Nutshell offers no undelete for {entity.value}")
        await _translate(restore[entity](id_), write=True)
        remote = await self.get(entity, id_)
        if remote is None:
            raise Gone(f"{id_} is still not there after the undelete")
        return remote

    async def find_marked(
        self,
        entity: Entity,
        marker: str,
        *,
        parent_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> list[Remote]:
        def carries(r: Remote) -> bool:
            if entity is Entity.CONTACTS:
                return str((r.fields.get("customFields") or {}).get(PATIENT_ID_FIELD, "")).strip() == marker
            text = r.fields.get("body" if entity is Entity.NOTES else "description") or ""
            return marker in text

        c = self.client
        if entity is Entity.CONTACTS and (email or name):
            # REST searches carry no custom field values: each candidate is read whole (a few at most).
            ids: list[str] = []
            if email:
                ids += [p.id.rest for p in await _translate(c.find_people_by_email(email), write=False)]
            if name:
                ids += [p.id.rest async for p in self._each_raw(c.iter_people(q=name))]
            # Every copy that carries the marker, not just the first: a late copy of a create that timed out is
            # found beside the one in the id map only if both are returned.
            marked = [r for id_ in dict.fromkeys(ids) if (r := await self.get(entity, id_)) is not None and carries(r)]
            if marked:
                return marked
        if entity is Entity.ACTIVITIES and parent_id:
            return [r async for r in self._each(c.iter_activities(participant=parent_id)) if carries(r)]
        if entity is Entity.NOTES and parent_id:
            return [r async for r in self._each(c.iter_notes(parent=parent_id)) if carries(r)]
        # Everything, page by page (slow on a big account; recovery is rare and must not miss a record).
        return [r async for r in self.scan(entity) if carries(r)]

    async def people_by_email(self, emails: Iterable[str | None], *, total: int | None = None) -> ExistingPeople:
        found = await _translate(people_by_email(self.client, emails, total=total), write=False)
        return ExistingPeople({e: [p.id.rest for p in people] for e, people in found.found.items()}, found.total)

    async def find_people_by_email(self, email: str) -> list[Remote]:
        people = await _translate(self.client.find_people_by_email(email), write=False)
        return [_remote(p) for p in people if not _deleted(p)]

    async def upload_file(self, activity_id: str, spec: FileSpec) -> Remote:
        info = await _translate(
            self.client.upload_file(activity_id, spec.name, spec.path, content_type=spec.content_type), write=True
        )
        return _file_remote(info)

    async def list_files(self, activity_id: str) -> list[Remote]:
        try:
            files = await _translate(self.client.activity_files(activity_id), write=False)
        except Gone:
            return []
        return [_file_remote(f) for f in files]

    async def find_file(self, activity_id: str, name: str) -> Remote | None:
        try:
            files = await _translate(self.client.activity_files(activity_id), write=False)
        except Gone:
            return None
        named = [f for f in files if f.name == name]
        # A reservation whose upload never arrived has size 0: prefer a file that holds bytes.
        named.sort(key=lambda f: f.size == 0)
        return _file_remote(named[0]) if named else None

    async def scan(self, entity: Entity) -> AsyncIterator[Remote]:
        c = self.client
        if entity in (Entity.CONTACTS, Entity.ACCOUNTS):
            # JSON-RPC find with full entities: REST lists leave out custom field values (the Cliniko Patient
            # ID that marks a person as ours), and `get` reads these kinds over JSON-RPC too.
            async for remote in self._find_full(entity):
                yield remote
            return
        source: AsyncIterator[Any]
        if entity is Entity.ACTIVITIES:
            source = c.iter_activities()
        elif entity is Entity.NOTES:
            source = c.iter_notes()
        else:
            raise ValueError("files are listed on their activities")
        async for remote in self._each(source):
            yield remote

    async def _find_full(self, entity: Entity) -> AsyncIterator[Remote]:
        method, model = ("findContacts", Person) if entity is Entity.CONTACTS else ("findAccounts", Company)
        page = 1
        while True:
            params = {"query": {}, "limit": self.scan_page_hint, "page": page, "stubResponses": False}
            found = await _translate(self.client.rpc.call(method, params, safety=Safety.READ), write=False)
            items = [model.from_api(raw) for raw in found or [] if isinstance(raw, dict)]
            for item in items:
                if not _deleted(item):
                    yield _remote(item)
            if len(items) < self.scan_page_hint:
                return
            page += 1

    async def _each_raw(self, source: AsyncIterator[Any]) -> AsyncIterator[Any]:
        iterator = source.__aiter__()
        while True:
            try:
                item = await _translate(iterator.__anext__(), write=False)
            except StopAsyncIteration:
                return
            if not _deleted(item):
                yield item

    async def _each(self, source: AsyncIterator[Any]) -> AsyncIterator[Remote]:
        async for item in self._each_raw(source):
            yield _remote(item)

    def cap_concurrency(self, requests: int) -> None:
        self.client.limiter.cap(requests)

    def budget(self) -> DestinationBudget:
        limiter = self.client.limiter
        return DestinationBudget(limiter.limit, limiter.in_flight, self.client.stats.rate_limited)
