"""Rollback: put Nutshell back as it was before a run (or all runs), from the journal, journaled itself.

Preview first (`preview`): what will be deleted (records we created), restored (pre-images of records we
updated or linked), taken out of the trash (notes a run replaced, people a run retired), skipped because
someone edited them in Nutshell since we wrote them, and what the API cannot undo (custom-field definitions we
created; files on an activity that stays). Then `RollbackRunner.execute()`: undeletes and restores first (in
dependency order, so what they point at exists), then deletes in reverse dependency order (files go with
their activity), each write journaled before and after like any run, so a crash resumes where it stopped.
It ends with a verification: every record the journal says we created in scope is gone, or was reported.

Scopes: everything; one run (records it created, the updates it made; a person's later records go with it);
one or more objects (and everything depending on them).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cliniko2nutshell.engine import events as ev
from cliniko2nutshell.engine.counts import Counts, RunSummary
from cliniko2nutshell.engine.destination import (
    Conflict,
    Destination,
    Entity,
    Gone,
    OutcomeUnknown,
    Rejected,
    Remote,
    Unavailable,
)
from cliniko2nutshell.engine.fields import holds
from cliniko2nutshell.engine.journal import (
    Action,
    Journal,
    Mapped,
    MapWrite,
    Origin,
    Outcome,
    Run,
    RunKind,
    RunStatus,
    State,
)
from cliniko2nutshell.engine.markers import edited_fields, fingerprint
from cliniko2nutshell.engine.ops import GROUPS, PHASES, dependents, entity_of, phase_of
from cliniko2nutshell.engine.pool import pool
from cliniko2nutshell.engine.recovery import settle, settle_open
from cliniko2nutshell.engine.runner import OPS_PER_REQUEST_SLOT, KillSwitch
from cliniko2nutshell.events import Event, EventSink, ignore

log = logging.getLogger(__name__)


class ScopeKind(StrEnum):
    EVERYTHING = "everything"
    RUN = "run"
    OBJECTS = "objects"


@dataclass(frozen=True, slots=True)
class RollbackScope:
    kind: ScopeKind = ScopeKind.EVERYTHING
    run_id: int | None = None
    objects: tuple[str, ...] = ()  # object names ("person") or groups ("people", "activities", ...)

    def __post_init__(self) -> None:
        if self.kind is ScopeKind.RUN and self.run_id is None:
            raise ValueError("a run scope needs the run id")
        if self.kind is ScopeKind.OBJECTS:
            unknown = [o for o in self.objects if o not in GROUPS and o not in _ALL_OBJECTS]
            if not self.objects or unknown:
                raise ValueError(
                    f"unknown objects {unknown}; use {', '.join(GROUPS)} or an object name" if unknown
                    else "an objects scope needs at least one object"
                )  # fmt: skip

    def object_names(self) -> set[str]:
        """The objects in scope, dependents included."""
        chosen = {o for name in self.objects for o in GROUPS.get(name, (name,))}
        return dependents(chosen)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "run_id": self.run_id, "objects": list(self.objects)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RollbackScope:
        return cls(ScopeKind(data.get("kind", "everything")), data.get("run_id"), tuple(data.get("objects") or ()))

    def describe(self) -> str:
        if self.kind is ScopeKind.RUN:
            return f"run {self.run_id}"
        if self.kind is ScopeKind.OBJECTS:
            return ", ".join(self.objects)
        return "everything"


_ALL_OBJECTS = {o for objs in GROUPS.values() for o in objs}


class Step(StrEnum):
    DELETE = "delete"  # a record we created
    RESTORE = "restore"  # a record we updated or linked: its pre-image written back
    UNDELETE = "undelete"  # a record a run deleted (a replaced note, a retired person)
    WITH_ACTIVITY = "with_activity"  # a file: it goes when its activity is deleted
    KEEP = "keep"  # cannot be undone through the API


@dataclass(slots=True)
class Item:
    step: Step
    object: str
    source_id: str
    nutshell_id: str
    entity: Entity
    before: dict[str, Any] | None = None  # RESTORE: the values written back
    undoes: int | None = None  # the journal row this undoes
    restore_hash: str | None = None  # the payload hash the id map goes back to
    parent_id: str | None = None
    patient_id: str | None = None
    reason: str = ""
    edited: tuple[str, ...] = ()  # filled by the preview's look in Nutshell
    gone: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.object, self.source_id)


@dataclass(slots=True)
class Preview:
    scope: RollbackScope
    items: list[Item] = field(default_factory=list)
    checked: bool = False  # whether Nutshell was read to find edits
    custom_fields: list[str] = field(default_factory=list)  # definitions we created: remove by hand

    def by_step(self, step: Step) -> list[Item]:
        return [i for i in self.items if i.step is step and not i.edited]

    @property
    def edited_since(self) -> list[Item]:
        return [i for i in self.items if i.edited]

    @property
    def cannot_undo(self) -> list[str]:
        out = [f"custom field {c} (the API cannot delete custom-field definitions)" for c in self.custom_fields]
        out += [f"{i.object} {i.source_id}: {i.reason}" for i in self.items if i.step is Step.KEEP]
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = collections.defaultdict(lambda: collections.defaultdict(int))
        for i in self.items:
            out[i.object]["skip (edited since)" if i.edited else i.step.value] += 1
        return {k: dict(v) for k, v in out.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope.as_dict(),
            "checked_in_nutshell": self.checked,
            "counts": self.counts(),
            "edited_since": [
                {"object": i.object, "source_id": i.source_id, "nutshell_id": i.nutshell_id, "fields": list(i.edited)}
                for i in self.edited_since
            ],
            "cannot_undo": self.cannot_undo,
        }


@dataclass(slots=True)
class Verification:
    checked: int = 0
    gone: int = 0
    reported: int = 0  # left in place on purpose (edited since, cannot undo): the preview said so
    still_there: list[tuple[str, str, str]] = field(default_factory=list)  # (object, source id, nutshell id)

    @property
    def ok(self) -> bool:
        return not self.still_there


# -- planning (local, from the journal) -------------------------------------------------------------------------


def plan_items(journal: Journal, scope: RollbackScope) -> list[Item]:
    """What undoing `scope` takes, from the journal and the id map alone."""
    rows = _mapped_in_scope(journal, scope)
    deleting = {m.nutshell_id for m in rows if m.origin is Origin.CREATED}
    items: list[Item] = []
    for m in rows:
        if m.origin is Origin.LINKED:
            before, first = _link_pre_image(journal, m)
            items.append(_item(Step.RESTORE, m, before=before, undoes=first, reason="linked: its own values back"))
        elif entity_of(m.object) is Entity.FILES:
            if m.parent_id in deleting:
                items.append(_item(Step.WITH_ACTIVITY, m, reason="goes with its activity"))
            else:
                items.append(_item(Step.KEEP, m, reason="a file on an activity that stays (the API removes no file)"))
        else:
            items.append(_item(Step.DELETE, m))
    if scope.kind is ScopeKind.RUN:
        assert scope.run_id is not None
        items += _undo_updates(journal, scope.run_id, {(m.object, m.source_id) for m in rows})
    return items


def _item(step: Step, m: Mapped, **kw: Any) -> Item:
    return Item(step, m.object, m.source_id, m.nutshell_id, entity_of(m.object), parent_id=m.parent_id,
                patient_id=m.patient_id, **kw)  # fmt: skip


def _mapped_in_scope(journal: Journal, scope: RollbackScope) -> list[Mapped]:
    if scope.kind is ScopeKind.EVERYTHING:
        return list(journal.iter_mapped())
    if scope.kind is ScopeKind.OBJECTS:
        return list(journal.iter_mapped(objects=scope.object_names()))
    created = list(journal.iter_mapped(created_run_id=scope.run_id))
    # A person the run created takes the records of later runs on it along: they would be orphans.
    people = {m.source_id for m in created if m.object == "person" and m.origin is Origin.CREATED}
    keys = {(m.object, m.source_id) for m in created}
    later = [
        m for m in journal.iter_mapped(patient_ids=people) if (m.object, m.source_id) not in keys
    ] if people else []  # fmt: skip
    return created + later


def _link_pre_image(journal: Journal, m: Mapped) -> tuple[dict[str, Any], int | None]:
    """A linked person's values before we touched it: for each field, the oldest pre-image we journaled."""
    before: dict[str, Any] = {}
    first: int | None = None
    for e in journal.history(m.object, m.source_id):
        if e.state is not State.DONE or e.action not in (Action.LINK, Action.UPDATE) or e.target_id != m.nutshell_id:
            continue
        first = first if first is not None else e.seq
        for key, value in ((e.pre_image or {}).get("before") or {}).items():
            if key == "customFields" and isinstance(value, dict):
                slot = before.setdefault("customFields", {})
                for name, inner in value.items():
                    slot.setdefault(name, inner)
            else:
                before.setdefault(key, value)
    return before, first


def _undone(journal: Journal, seq: int) -> bool:
    return any((e.pre_image or {}).get("undoes") == seq for e in journal.entries_undoing(seq))


def _undo_updates(journal: Journal, run_id: int, taken: set[tuple[str, str]]) -> list[Item]:
    """The run's updates of records it did not create (restore) and its deletes (undelete)."""
    items: list[Item] = []
    seen: set[tuple[str, str]] = set()
    for e in journal.entries(run_id):
        key = (e.object, e.source_id)
        pre = e.pre_image or {}
        if e.state is not State.DONE or _undone(journal, e.seq) or pre.get("rollback") or pre.get("duplicate_of"):
            continue  # a rollback's own rows, and late copies deleted as duplicates, are never undone
        if e.action is Action.UPDATE and key not in seen and key not in taken:
            seen.add(key)
            current = journal.mapped(*key)
            previous = _previous_hash(journal, e.object, e.source_id, e.seq)
            if current is None or current.nutshell_id != e.target_id:
                continue
            item = Item(Step.RESTORE, e.object, e.source_id, e.target_id or "", Entity(e.entity),
                        before=(e.pre_image or {}).get("before") or {}, undoes=e.seq, restore_hash=previous,
                        parent_id=current.parent_id, patient_id=current.patient_id,
                        reason=f"updated by run {run_id}: its values before the run back")  # fmt: skip
            if current.run_id != run_id:
                item.step = Step.KEEP
                item.reason = f"changed again by run {current.run_id}: roll that run back first"
            items.append(item)
        elif e.action is Action.DELETE and e.target_id:
            items.append(
                Item(Step.UNDELETE, e.object, e.source_id, e.target_id, Entity(e.entity), undoes=e.seq,
                     restore_hash=e.payload_hash, parent_id=e.parent_id, patient_id=e.patient_id,
                     reason=f"deleted by run {run_id} ({(e.pre_image or {}).get('why') or 'replaced'})")
            )  # fmt: skip
    return items


def _previous_hash(journal: Journal, object_: str, source_id: str, before_seq: int) -> str | None:
    done = [
        e for e in journal.history(object_, source_id)
        if e.seq < before_seq and e.state is State.DONE and e.payload_hash
        and e.action in (Action.CREATE, Action.LINK, Action.UPDATE, Action.UPLOAD)
    ]  # fmt: skip
    return done[-1].payload_hash if done else None


# -- the preview (reads Nutshell to find what was edited since) --------------------------------------------


def planned_preview(journal: Journal, scope: RollbackScope) -> Preview:
    """What a rollback of `scope` would do, from the journal alone."""
    result = Preview(scope, plan_items(journal, scope))
    if scope.kind is ScopeKind.EVERYTHING:
        result.custom_fields = [f"{c.entity}/{c.name}" for c in journal.schema_changes()]
    return result


async def preview(journal: Journal, dest: Destination | None, scope: RollbackScope) -> Preview:
    """What a rollback of `scope` would do. With a destination, each record is looked at (`read_many`: its type's
    pages when cheaper) to find edits made in Nutshell since we wrote it (skipped unless forced) and records
    already gone."""
    result = planned_preview(journal, scope)
    if dest is None:
        return result

    looked = [i for i in result.items if i.step in (Step.DELETE, Step.RESTORE)]
    now = await read_all(dest, looked)
    for item in looked:
        remote = now.get(item.nutshell_id)
        if remote is None:
            item.gone = True
            continue
        item.edited = tuple(edits_since(journal, item, remote))
    result.checked = True
    return result


def edits_since(journal: Journal, item: Item, remote: Remote) -> list[str]:
    """The fields edited in Nutshell since we wrote the record ([] when the id map no longer points at it)."""
    mapped = journal.mapped(item.object, item.source_id)
    if mapped is None or mapped.nutshell_id != item.nutshell_id:
        return []
    return edited_fields(mapped.fingerprint, remote.fields)


async def read_all(dest: Destination, items: list[Item], **kw: Any) -> dict[str, Remote | None]:
    """`read_many` of the items' records, each type's at the same time (the limiter paces them)."""
    kinds = sorted({i.entity for i in items})
    found = await asyncio.gather(
        *(dest.read_many(e, [i.nutshell_id for i in items if i.entity is e], **kw) for e in kinds)
    )
    return {k: v for part in found for k, v in part.items()}


# -- execution ----------------------------------------------------------------------------------------------


class RollbackRunner:
    def __init__(
        self,
        journal: Journal,
        destination: Destination,
        run: Run,
        scope: RollbackScope,
        *,
        force: bool = False,  # also undo records edited in Nutshell since we wrote them
        workers: int = 8,
        sink: EventSink = ignore,
        clock: Callable[[], float] = time.monotonic,
        reports_dir: Path | None = None,  # where its report goes when it ends (CSV and HTML)
    ) -> None:
        self.journal = journal
        self.reports_dir = reports_dir
        self.preview = Preview(scope)  # what it set out to do, once it starts; edited records marked as it goes
        self.dest = destination
        self.run = run
        self.scope = scope
        self.force = force
        self.workers = workers
        self._sink = sink
        self._clock = clock
        self.counts: dict[str, Counts] = collections.defaultdict(Counts)
        self.skipped: list[Item] = []  # edited since, left in place and reported
        self.failed: list[tuple[Item, str]] = []
        self._seen: dict[str, Remote | None] = {}  # how records stood when their phase began (`_look`)
        self._stopping = False
        self._gate = asyncio.Event()
        self._gate.set()
        self._kill = KillSwitch.from_env()

    def pause(self) -> None:
        self._gate.clear()
        self.journal.set_run_status(self.run.id, RunStatus.PAUSED)
        self._emit(ev.RunPaused(self.run.id, "paused by the user"))

    def resume(self) -> None:
        self.journal.set_run_status(self.run.id, RunStatus.RUNNING)
        self._gate.set()
        self._emit(ev.RunResumed(self.run.id))

    def stop(self) -> None:
        self._stopping = True
        self._gate.set()

    async def execute(self) -> tuple[RunSummary, Verification]:
        started = self._clock()
        fatal: str | None = None
        recovered = 0
        items: list[Item] = []
        try:
            self.dest.cap_concurrency(max(1, self.workers))  # requests in flight, as a run's
            recovered = await settle_open(self.journal, self.dest, self._emit)
            self.preview = planned_preview(self.journal, self.scope)
            items = self.preview.items
            for item in items:
                self.counts[item.object].planned += 1
            self._emit(ev.RunStarted(self.run.id, RunKind.ROLLBACK.value, None,
                                     {k: c.planned for k, c in self.counts.items()}))  # fmt: skip
            await self._steps(items)
        except (Unavailable, _Stop) as exc:
            fatal = str(exc) or "stopped"
        verification = await self._verify(items) if fatal is None and not self._stopping else Verification()
        summary = self._finish(started, fatal, recovered, verification)
        return summary, verification

    async def _steps(self, items: list[Item]) -> None:
        by_phase = {p: [i for i in items if phase_of(i.object) is p] for p in PHASES}
        for step, phases in (
            (Step.UNDELETE, PHASES),
            (Step.RESTORE, PHASES),
            (Step.DELETE, tuple(reversed(PHASES))),
        ):
            for phase in phases:
                todo = [i for i in by_phase[phase] if i.step is step]
                if todo:
                    self._emit(ev.PhaseStarted(self.run.id, f"{step.value} {phase.value}", len(todo)))
                    if step is not Step.UNDELETE:
                        await self._look(todo, revs=step is Step.DELETE)
                    # Twice as many under way as in flight: one's journaling overlaps the others' round trips.
                    await pool(todo, self._one, OPS_PER_REQUEST_SLOT * max(1, self.workers))
        for item in items:
            if item.step is Step.WITH_ACTIVITY:
                await self._with_activity(item)
            elif item.step is Step.KEEP:
                self.counts[item.object].skipped += 1
        # Files went with their activities (or stay with them) without a write of their own: say where they ended.
        for obj in sorted({i.object for i in items if i.step in (Step.WITH_ACTIVITY, Step.KEEP)}):
            self._progress(obj)

    async def _look(self, todo: list[Item], *, revs: bool) -> None:
        """How the phase's records stand now, read together (`read_many`: pages when cheaper than a read each),
        with the revs their deletes are checked against: an edit made after this look fails the delete's rev
        check, and the record is read again (`_delete`). Notes carry no rev: Nutshell lets only a note's author
        edit it, for 24 hours; ours are the API user's."""
        self._seen.update(await read_all(self.dest, todo, revs=revs))

    async def _current(self, item: Item) -> Remote | None:
        """The record as the phase's look saw it (once), else as it stands now."""
        if item.nutshell_id in self._seen:
            return self._seen.pop(item.nutshell_id)
        return await self.dest.get(item.entity, item.nutshell_id)

    def _progress(self, obj: str) -> None:
        c = self.counts[obj]
        self._emit(ev.ObjectProgress(self.run.id, obj, c.done, c.planned, deleted=c.deleted, restored=c.restored,
                                     skipped=c.skipped, failed=c.failed))  # fmt: skip

    async def _one(self, item: Item) -> None:
        await self._gate.wait()
        if self._stopping:
            raise _Stop("stopped; resume to continue")
        try:
            outcome = await {Step.DELETE: self._delete, Step.RESTORE: self._restore,
                             Step.UNDELETE: self._undelete}[item.step](item)  # fmt: skip
        except (Unavailable, _Stop):
            raise
        except (Rejected, Conflict, OutcomeUnknown, Gone) as exc:
            self.failed.append((item, str(exc)))
            self._emit(ev.RecordFailed(self.run.id, item.object, item.source_id, "rollback", str(exc)))
            outcome = "failed"
        c = self.counts[item.object]
        setattr(c, outcome, getattr(c, outcome) + 1)
        self._progress(item.object)

    def _skip_edited(self, item: Item, edited: list[str]) -> str:
        item.edited = tuple(edited)
        self.skipped.append(item)
        self._emit(ev.ConflictFound(self.run.id, item.object, item.source_id, item.nutshell_id, "skip", item.edited))
        return "skipped"

    async def _delete(self, item: Item) -> str:
        remote = await self._current(item)
        if remote is not None and not self.force and (edited := edits_since(self.journal, item, remote)):
            return self._skip_edited(item, edited)
        seq = self.journal.intent(
            self.run.id, item.object, item.source_id, item.entity.value, Action.DELETE, target_id=item.nutshell_id,
            parent_id=item.parent_id, patient_id=item.patient_id,
            pre_image={"fields": remote.fields if remote else None, "rollback": True},
        )  # fmt: skip
        if remote is not None:
            try:
                await self.dest.delete(item.entity, item.nutshell_id, remote.rev)
            except Gone:
                pass
            except Conflict:
                # Changed between our read and the delete: read again and decide again.
                self.journal.settle(seq, State.VOID, "changed during the rollback")
                return await self._delete(item)
            except OutcomeUnknown as exc:
                # In doubt: look now, as a resume would (a record still there is deleted again).
                await self._settle(seq, exc)
        if self._kill is not None:
            self._kill.check(item.object, "sent")
        if self.journal.entry(seq).state is not State.DONE:
            self.journal.complete(seq, nutshell_id=item.nutshell_id, unmap=(*item.key, item.nutshell_id))
        if item.entity is Entity.ACTIVITIES:
            self._files_gone_with(item.nutshell_id)
        return "deleted"

    async def _settle(self, seq: int, exc: OutcomeUnknown) -> bool:
        """A write of this rollback ended in doubt: settle it now by looking in Nutshell (recovery.settle), rather
        than report the record failed and leave the row for the next run. True when it turned out applied."""
        self.journal.settle(seq, State.UNKNOWN, str(exc))
        return await settle(self.journal, self.dest, self.journal.entry(seq))

    def _files_gone_with(self, activity_id: str) -> None:
        for m in self.journal.mapped_children(activity_id):
            seq = self.journal.intent(self.run.id, m.object, m.source_id, m.entity, Action.DELETE,
                                      target_id=m.nutshell_id, parent_id=activity_id, patient_id=m.patient_id,
                                      pre_image={"with_activity": activity_id, "rollback": True})  # fmt: skip
            self.journal.complete(seq, nutshell_id=m.nutshell_id, unmap=(m.object, m.source_id, m.nutshell_id))
            self.counts[m.object].deleted += 1

    async def _with_activity(self, item: Item) -> None:
        """A file whose activity was to be deleted: counted when the activity went (_files_gone_with)."""
        still = self.journal.mapped(item.object, item.source_id)
        if still is not None and still.nutshell_id == item.nutshell_id:
            self.counts[item.object].skipped += 1  # its activity stayed (edited since): so does the file

    async def _restore(self, item: Item, *, again: bool = True) -> str:
        remote = await self._current(item)
        if remote is None:
            raise Gone(f"{item.nutshell_id} is no longer in Nutshell: nothing to restore")
        if not self.force and (edited := edits_since(self.journal, item, remote)):
            return self._skip_edited(item, edited)
        before = item.before or {}
        seq = self.journal.intent(
            self.run.id, item.object, item.source_id, item.entity.value, Action.RESTORE,
            target_id=item.nutshell_id, parent_id=item.parent_id, patient_id=item.patient_id,
            pre_image={"before": before, "undoes": item.undoes, "restore_hash": item.restore_hash, "rollback": True},
        )  # fmt: skip
        restored = remote
        if before and not holds(remote.fields, before):
            try:
                restored = await self.dest.update(item.entity, item.nutshell_id, before, remote.rev, current=remote)
            except OutcomeUnknown as exc:
                if await self._settle(seq, exc):
                    return "restored"
                if not again:
                    raise
                return await self._restore(item, again=False)  # it did not happen: once more
        mapped = self.journal.mapped(item.object, item.source_id)
        if item.restore_hash and mapped is not None:
            # An update undone: the record is back to an earlier write, which a later run may redo.
            self.journal.complete(
                seq, nutshell_id=restored.id, rev=restored.rev, modified=restored.modified,
                map_to=MapWrite(item.object, item.source_id, item.entity.value, restored.id, item.restore_hash,
                                mapped.origin, mapped.created_run_id, mapped.parent_id, mapped.patient_id,
                                restored.rev, restored.modified, fingerprint(restored.fields)),
            )  # fmt: skip
        else:
            self.journal.complete(seq, nutshell_id=restored.id, rev=restored.rev, unmap=(*item.key, restored.id))
        return "restored"

    async def _undelete(self, item: Item) -> str:
        seq = self.journal.intent(
            self.run.id, item.object, item.source_id, item.entity.value, Action.UNDELETE,
            target_id=item.nutshell_id, parent_id=item.parent_id, patient_id=item.patient_id,
            payload_hash=item.restore_hash, pre_image={"undoes": item.undoes, "rollback": True},
        )  # fmt: skip
        current = await self.dest.get(item.entity, item.nutshell_id)
        try:
            back = current if current is not None else await self.dest.undelete(item.entity, item.nutshell_id)
        except OutcomeUnknown as exc:
            if await self._settle(seq, exc):
                return "restored"
            raise
        origin_run = self._origin_run(item)
        self.journal.complete(
            seq, nutshell_id=back.id, rev=back.rev, modified=back.modified,
            map_to=MapWrite(item.object, item.source_id, item.entity.value, back.id, item.restore_hash or "",
                            Origin.CREATED, origin_run, item.parent_id, item.patient_id, back.rev, back.modified,
                            fingerprint(back.fields)),
        )  # fmt: skip
        return "restored"

    def _origin_run(self, item: Item) -> int:
        created = [
            e
            for e in self.journal.history(item.object, item.source_id)
            if e.nutshell_id == item.nutshell_id and e.action is Action.CREATE and e.state is State.DONE
        ]
        return created[0].run_id if created else self.run.id  # fmt: skip

    # -- verification ------------------------------------------------------------------------------------------
    def _created_in_scope(self, items: list[Item]) -> list[Item]:
        """Every record the journal says we created within the scope (files aside: they go with activities),
        plus what this rollback deleted or set out to delete (a run's records of later runs taken along)."""
        s = self.scope
        objects = s.object_names() if s.kind is ScopeKind.OBJECTS else None
        out: dict[str, Item] = {}

        def add(object_: str, source_id: str, nutshell_id: str | None, entity: str) -> None:
            if nutshell_id and entity != Entity.FILES.value:
                out.setdefault(nutshell_id, Item(Step.DELETE, object_, source_id, nutshell_id, Entity(entity)))

        for e in self.journal.created_entries():
            if objects is not None and e.object not in objects:
                continue
            if s.kind is ScopeKind.RUN and e.run_id != s.run_id:
                continue
            add(e.object, e.source_id, e.nutshell_id, e.entity)
        for e in self.journal.entries(self.run.id):
            if e.action is Action.DELETE and e.state is State.DONE and not (e.pre_image or {}).get("with_activity"):
                add(e.object, e.source_id, e.target_id, e.entity)
        for i in items:
            if i.step is Step.DELETE:
                add(i.object, i.source_id, i.nutshell_id, i.entity.value)
        return list(out.values())

    async def _verify(self, items: list[Item]) -> Verification:
        """Everything the journal says we created in scope is gone, or was left on purpose and reported."""
        v = Verification()
        reported = {i.nutshell_id for i in self.skipped} | {i.nutshell_id for i, _ in self.failed}
        reported |= {i.nutshell_id for i in items if i.step is Step.KEEP}
        targets = self._created_in_scope(items)
        v.checked = len(targets)
        # Absent from the pages is what we look for here: no read each to confirm it.
        now = await read_all(self.dest, targets, confirm_missing=False)
        present = {id_ for id_, remote in now.items() if remote is not None}
        for item in targets:
            if item.nutshell_id not in present:
                v.gone += 1
            elif item.nutshell_id in reported:
                v.reported += 1
            else:
                v.still_there.append((item.object, item.source_id, item.nutshell_id))
        return v

    def _finish(self, started: float, fatal: str | None, recovered: int, v: Verification) -> RunSummary:
        if fatal is not None:
            status, outcome = (RunStatus.PAUSED, None) if self._stopping else (RunStatus.INTERRUPTED, Outcome.FAILURE)
        else:
            status = RunStatus.FINISHED
            bad = self.failed or v.still_there
            outcome = Outcome.FAILURE if v.still_there else (
                Outcome.PARTIAL if bad or self.skipped else Outcome.SUCCESS)  # fmt: skip
        summary = RunSummary(
            run_id=self.run.id,
            kind=RunKind.ROLLBACK.value,
            outcome=outcome or Outcome.PARTIAL,
            status=status,
            counts=dict(self.counts),
            quarantined=len(self.failed),
            conflicts=len(self.skipped),
            recovered=recovered,
            elapsed_seconds=self._clock() - started,
            message=fatal or "",
        )
        if self.reports_dir is not None:  # before the run's summary is stored, so that it names the report
            from cliniko2nutshell.engine.reports import write_rollback  # reports.py reads this module's types

            paths = write_rollback(self.preview, self.reports_dir, summary, v)
            summary.reports += [str(p) for p in paths]
        data = summary.as_dict() | {
            "scope": self.scope.as_dict(),
            "verification": {"checked": v.checked, "gone": v.gone, "reported": v.reported,
                             "still_there": [list(t) for t in v.still_there]},
        }  # fmt: skip
        self.journal.finish_run(self.run.id, status, outcome, data)
        self._emit(
            ev.RunFinished(
                self.run.id,
                RunKind.ROLLBACK.value,
                summary.outcome.value,
                status.value,
                {k: c.as_dict() for k, c in self.counts.items()},
                summary.elapsed_seconds,
            )
        )
        return summary

    def _emit(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception:
            log.exception("the event sink failed; the rollback goes on")


class _Stop(Exception):
    pass
