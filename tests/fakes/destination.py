"""An in-memory Nutshell behind the engine's Destination Protocol, for the engine's unit tests.

It keeps what matters to the engine: REST ids, revs bumped on every change, a trash, files on activities,
the Cliniko Patient ID and marker searches, and scripted faults (a write that happens but whose answer is
lost, a write refused, Nutshell unreachable) so the journal and recovery paths can be exercised.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

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
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD


@dataclass
class Fault:
    """A scripted failure of the next matching call. `after`: the write happens, then the answer is lost."""

    op: str  # create | update | delete | upload | get | find
    entity: Entity | None = None
    kind: str = "unknown"  # unknown | rejected | unavailable | conflict | late (create: answer lost, done later)
    after: bool = True
    times: int = 1
    delay: float = 0.2  # late: seconds until the create is carried out, after the caller gave up on it


@dataclass
class Record:
    id: str
    entity: Entity
    fields: dict[str, Any]
    rev: int = 1
    deleted: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)


class FakeNutshell:
    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, str]] = []
        self._next = 100
        self.max_file_size = 10 * 2**20

    # -- test helpers ---------------------------------------------------------------------------------------
    def seed(self, entity: Entity, fields: dict[str, Any]) -> str:
        """A record that existed before the migration (e.g. a person whose e-mail matches a patient)."""
        return self._new(entity, fields).id

    def live(self, entity: Entity | None = None) -> list[Record]:
        return [r for r in self.records.values() if not r.deleted and (entity is None or r.entity == entity)]

    def edit(self, id_: str, **fields: Any) -> None:
        """Someone edits the record in Nutshell's UI."""
        rec = self.records[id_]
        rec.fields.update(fields)
        rec.rev += 1

    def writes(self) -> int:
        return sum(1 for op, _ in self.calls if op in ("create", "update", "delete", "upload", "undelete"))

    def state(self) -> dict[str, Any]:
        """A comparable dump of what is live: fields and files per record (ids included)."""
        return {
            r.id: {"fields": r.fields, "files": [(f["name"], f["size"]) for f in r.files]}
            for r in sorted(self.live(), key=lambda r: r.id)
        }

    # -- internals ----------------------------------------------------------------------------------------
    def _new(self, entity: Entity, fields: dict[str, Any]) -> Record:
        self._next += 1
        rec = Record(f"{self._next}-{entity.value}", entity, copy.deepcopy(fields))
        self.records[rec.id] = rec
        return rec

    def _remote(self, rec: Record) -> Remote:
        fields = copy.deepcopy(rec.fields)
        if rec.entity is Entity.ACTIVITIES:
            fields["files"] = [{"id": f["id"], "name": f["name"], "size": f["size"]} for f in rec.files]
        return Remote(rec.id, str(rec.rev), None, fields)

    def _fault(self, op: str, entity: Entity | None, when_after: bool) -> None:
        for fault in self.faults:
            if fault.op == op and fault.entity in (None, entity) and fault.after == when_after and fault.times > 0:
                fault.times -= 1
                if fault.kind == "unknown":
                    raise OutcomeUnknown(f"connection dropped during {op}")
                if fault.kind == "rejected":
                    raise Rejected(f"{op} refused by Nutshell")
                if fault.kind == "unavailable":
                    raise Unavailable("Nutshell unreachable")
                if fault.kind == "conflict":
                    raise Conflict("rev key is out-of-date")

    def _live(self, id_: str) -> Record:
        rec = self.records.get(id_)
        if rec is None or rec.deleted:
            raise Gone(f"{id_} not found")
        return rec

    # -- the Protocol --------------------------------------------------------------------------------------
    async def create(self, entity: Entity, payload: dict[str, Any]) -> Remote:
        await asyncio.sleep(0)  # a real call yields to the loop: the dashboard's ticker runs meanwhile
        self.calls.append(("create", entity.value))
        late = next((f for f in self.faults if f.op == "create" and f.kind == "late" and f.times > 0
                     and f.entity in (None, entity)), None)  # fmt: skip
        if late is not None:
            # A request that outlives the caller's timeout: carried out after the caller has given up on it.
            late.times -= 1
            asyncio.get_running_loop().call_later(late.delay, self._new, entity, copy.deepcopy(payload))
            raise OutcomeUnknown(f"timed out during create ({late.delay} s until it lands)")
        self._fault("create", entity, False)
        if any(isinstance(v, str) and v == "REJECT ME" for v in payload.values()):
            raise Rejected("Invalid value")
        rec = self._new(entity, payload)
        self._fault("create", entity, True)
        return self._remote(rec)

    async def get(self, entity: Entity, id_: str) -> Remote | None:
        await asyncio.sleep(0)
        self.calls.append(("get", entity.value))
        self._fault("get", entity, False)
        rec = self.records.get(id_)
        return None if rec is None or rec.deleted else self._remote(rec)

    async def read_many(
        self, entity: Entity, ids: Iterable[str], *, revs: bool = False, confirm_missing: bool = True
    ) -> dict[str, Remote | None]:
        return {id_: await self.get(entity, id_) for id_ in ids}  # the fake's reads cost nothing: one each

    async def update(
        self, entity: Entity, id_: str, changes: dict[str, Any], rev: str | None, current: Remote | None = None
    ) -> Remote:
        self.calls.append(("update", entity.value))
        self._fault("update", entity, False)
        rec = self._live(id_)
        if rev is not None and rev != str(rec.rev):
            raise Conflict("rev key is out-of-date")
        for key, value in changes.items():
            if key == "customFields":
                merged = dict(rec.fields.get("customFields") or {})
                merged.update(value)
                rec.fields["customFields"] = {k: v for k, v in merged.items() if v not in (None, "")}
            elif value in (None, "", []):
                rec.fields.pop(key, None)
            else:
                rec.fields[key] = copy.deepcopy(value)
        rec.rev += 1
        self._fault("update", entity, True)
        return self._remote(rec)

    async def delete(self, entity: Entity, id_: str, rev: str | None) -> None:
        self.calls.append(("delete", entity.value))
        self._fault("delete", entity, False)
        rec = self._live(id_)
        rec.deleted = True
        rec.rev += 1
        self._fault("delete", entity, True)

    async def undelete(self, entity: Entity, id_: str) -> Remote:
        self.calls.append(("undelete", entity.value))
        rec = self.records.get(id_)
        if rec is None:
            raise Gone(id_)
        rec.deleted = False
        rec.rev += 1
        return self._remote(rec)

    async def find_marked(
        self,
        entity: Entity,
        marker: str,
        *,
        parent_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> list[Remote]:
        self.calls.append(("find", entity.value))
        self._fault("find", entity, False)
        out = []
        for rec in self.live(entity):
            if entity is Entity.CONTACTS:
                hit = (rec.fields.get("customFields") or {}).get(PATIENT_ID_FIELD) == marker
            else:
                text = rec.fields.get("body" if entity is Entity.NOTES else "description") or ""
                hit = marker in text
            if hit:
                out.append(self._remote(rec))
        return out

    async def find_people_by_email(self, email: str) -> list[Remote]:
        self.calls.append(("find", "email"))
        return [
            self._remote(r)
            for r in self.live(Entity.CONTACTS)
            if any((e.get("value") or "").lower() == email.lower() for e in r.fields.get("emails") or [])
        ]

    async def people_by_email(self, emails: Iterable[str | None], *, total: int | None = None) -> ExistingPeople:
        """One look at the account's people (the real adapter picks look-ups or pages, whichever is fewer)."""
        self.calls.append(("find", "people"))
        wanted = {(e or "").strip().casefold() for e in emails} - {""}
        found: dict[str, list[str]] = {}
        for rec in self.live(Entity.CONTACTS):
            for e in rec.fields.get("emails") or []:
                value = (e.get("value") or "").strip().casefold()
                if value in wanted and rec.id not in found.get(value, []):
                    found.setdefault(value, []).append(rec.id)
        return ExistingPeople(found, len(self.live(Entity.CONTACTS)))

    async def upload_file(self, activity_id: str, spec: FileSpec) -> Remote:
        self.calls.append(("upload", "files"))
        self._fault("upload", Entity.FILES, False)
        host = self._live(activity_id)
        if spec.size > self.max_file_size:
            raise Rejected(f"file is larger than the {self.max_file_size} byte limit")
        self._next += 1
        file = {"id": f"{self._next}-files", "name": spec.name, "size": spec.size, "sha256": spec.sha256}
        host.files.append(file)
        host.rev += 1
        self._fault("upload", Entity.FILES, True)
        return Remote(file["id"], "1", None, {"name": spec.name, "size": spec.size})

    async def find_file(self, activity_id: str, name: str) -> Remote | None:
        rec = self.records.get(activity_id)
        if rec is None or rec.deleted:
            return None
        for f in rec.files:
            if f["name"] == name:
                return Remote(f["id"], "1", None, {"name": f["name"], "size": f["size"]})
        return None

    async def list_files(self, activity_id: str) -> list[Remote]:
        rec = self.records.get(activity_id)
        if rec is None or rec.deleted:
            return []
        return [Remote(f["id"], "1", None, {"name": f["name"], "size": f["size"]}) for f in rec.files]

    async def scan(self, entity: Entity) -> AsyncIterator[Remote]:
        for rec in self.live(entity):
            yield self._remote(rec)

    def cap_concurrency(self, requests: int) -> None:
        self.concurrency_cap = requests

    def budget(self) -> DestinationBudget:
        return DestinationBudget(concurrency=4, in_flight=0, throttled=0)
