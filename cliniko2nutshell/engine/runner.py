"""Runs: execute a plan against Nutshell, phase by phase, each write journaled before and after its call.

The runner is a plain object whose `execute()` coroutine the caller runs as an asyncio task: a screen that
closes does not cancel it. `pause()`, `resume()` and `stop()` may be called from anywhere on the loop.

Per record (an Op): already in the id map with the same payload hash -> nothing to do; not in the map -> create
(people: first the existing-person policy); in the map with another hash -> update, unless someone edited the
record in Nutshell since we wrote it (a conflict: skip, overwrite or ask). Failures quarantine the record with
their reason and the run goes on; only losing Nutshell altogether stops a run (resumable).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import re
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cliniko2nutshell.connections import known_people_total, remember_people_total
from cliniko2nutshell.engine import events as ev
from cliniko2nutshell.engine.counts import Counts, RunSummary
from cliniko2nutshell.engine.destination import (
    Conflict,
    Destination,
    Entity,
    ExistingPeople,
    FileSpec,
    Gone,
    OutcomeUnknown,
    Rejected,
    Remote,
    Unavailable,
)
from cliniko2nutshell.engine.fields import before_of, changes_needed, field_names, fill_empty, restrict
from cliniko2nutshell.engine.journal import (
    Action,
    Journal,
    Mapped,
    MapWrite,
    Origin,
    Outcome,
    Run,
    RunStatus,
    State,
)
from cliniko2nutshell.engine.markers import edited_fields, field_value, fingerprint
from cliniko2nutshell.engine.ops import PHASES, Op, Phase, RecordRef, entity_of, phase_of
from cliniko2nutshell.engine.recovery import delete_replaced, settle, settle_open
from cliniko2nutshell.events import Event, EventSink, ignore
from cliniko2nutshell.mapping.names import normalize_email
from cliniko2nutshell.project.store import seconds_since

log = logging.getLogger(__name__)

KILL_ENV = "CLINIKO2NUTSHELL_TEST_KILL"  # "<object>:<n>[:intent|sent|done]": SIGKILL self (kill-and-resume tests)
OPS_PER_REQUEST_SLOT = 2  # ops under way per request slot (see RunSettings.workers)
MAX_CONSECUTIVE_ERRORS = 25  # unexpected errors in a row: something systematic, stop instead of quarantining all
# Tries of a create or upload whose outcome stays unknown. Each try after the first follows a look in Nutshell
# that found nothing, so it cannot make a second copy; at 5% dropped connections, two drops in a row on one
# record happen in every few thousand writes, four in a row in a few million.
CREATE_ATTEMPTS = 4


class ConflictPolicy(StrEnum):
    SKIP = "skip"  # leave the Nutshell edit alone (default), report it
    OVERWRITE = "overwrite"
    ASK = "ask"  # the caller's callback decides, record by record


class ExistingPersonPolicy(StrEnum):
    LINK_AND_FILL_EMPTY = "link-and-fill-empty"
    SKIP = "skip"
    CREATE = "create"


@dataclass(frozen=True, slots=True)
class ConflictInfo:
    object: str
    source_id: str
    nutshell_id: str
    fields: tuple[str, ...]  # edited in Nutshell since our write
    deleted: bool = False  # deleted in Nutshell since our write
    # For the person who decides (the wizard's conflict dialog): each edited field as Nutshell holds it now, and
    # as this run would write it (None: the run would not write that field / removes the record).
    theirs: dict[str, Any] = field(default_factory=dict)
    ours: dict[str, Any] = field(default_factory=dict)


AskConflict = Callable[[ConflictInfo], Awaitable[ConflictPolicy] | ConflictPolicy]


class PlanSource(Protocol):
    """What a run executes: planned counts per object, then the ops of each phase in order."""

    def totals(self) -> dict[str, int]: ...

    def ops(self, phase: Phase) -> Iterator[Op]: ...

    def prepare_file(self, op: Op) -> None:
        """Called just before a file op is uploaded: make its local file ready."""

    def person_emails(self) -> set[str]:
        """The e-mails of the people this plan may create (a superset will do): the existing-person policy
        looks them all up in Nutshell at once, at the start of the people phase."""


@dataclass(slots=True)
class RunSettings:
    existing_person: ExistingPersonPolicy = ExistingPersonPolicy.LINK_AND_FILL_EMPTY
    conflicts: ConflictPolicy = ConflictPolicy.SKIP
    ask: AskConflict | None = None
    only: set[tuple[str, str]] | None = None  # retry: just these records
    retry_quarantined: bool = False  # False: records quarantined earlier wait for `retry`
    # Requests to Nutshell in flight at most (the destination's concurrency cap; its adaptive limit throttles
    # below it on 429s and rising latency). Twice as many ops are under way, so that an op's journaling and its
    # wait for the disk overlap with the others' round trips and the request slots stay full.
    workers: int = 8
    cliniko_budget: Callable[[], tuple[int | None, int | None]] | None = None  # (remaining, limit)
    progress_interval: float = 0.25
    tick_interval: float = 1.0
    # Seconds a request may go on in Nutshell after the client gave up on it (its timeout): late copies of
    # records sent again are looked for no sooner than this after the last doubtful create (see _late_copies).
    late_copy_grace: float = 0.0
    # The expected duration from the planned totals (engine/estimate.py, as_dict): kept in the run's summary so
    # its report shows expected and actual side by side.
    estimator: Callable[[dict[str, int]], dict[str, Any]] | None = None


class _Fatal(Exception):
    """Stop the run (Nutshell unreachable, or errors piling up)."""


class MissingDependency(Exception):
    pass


class SkippedDependency(Exception):
    pass


@dataclass(slots=True)
class KillSwitch:
    """Test hook: the process kills itself (SIGKILL, nothing flushed) after the n-th op of an object."""

    object: str = ""
    n: int = 0
    point: str = "sent"
    seen: int = 0

    @classmethod
    def from_env(cls) -> KillSwitch | None:
        spec = os.environ.get(KILL_ENV)
        if not spec:
            return None
        match = re.fullmatch(r"([a-z_]+):(\d+)(?::(intent|sent|done))?", spec.strip())
        if match is None:
            raise ValueError(f"{KILL_ENV}={spec!r}: expected <object>:<n>[:intent|sent|done]")
        return cls(match.group(1), int(match.group(2)), match.group(3) or "sent")

    def check(self, object_: str, point: str) -> None:
        if object_ != self.object or point != self.point:
            return
        self.seen += 1
        if self.seen >= self.n:
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True)
class _Rate:
    """Completions over a sliding window, for throughput and ETA."""

    window: float = 10.0
    stamps: collections.deque[float] = field(default_factory=collections.deque)

    def add(self, now: float) -> None:
        self.stamps.append(now)
        while self.stamps and self.stamps[0] < now - self.window:
            self.stamps.popleft()

    def per_second(self, now: float, started: float) -> float:
        while self.stamps and self.stamps[0] < now - self.window:
            self.stamps.popleft()
        span = min(self.window, max(now - started, 1e-6))
        return len(self.stamps) / span


class Runner:
    def __init__(
        self,
        journal: Journal,
        destination: Destination,
        run: Run,
        plan: PlanSource,
        settings: RunSettings | None = None,
        sink: EventSink = ignore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.journal = journal
        self.dest = destination
        self.run = run
        self.plan = plan
        self.settings = settings or RunSettings()
        self._sink = sink
        self._clock = clock
        self.counts: dict[str, Counts] = collections.defaultdict(Counts)
        self._gate = asyncio.Event()
        self._gate.set()
        self._stopping = False
        self._paused_reason = ""
        self._fatal: str | None = None
        self._email_locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._existing: ExistingPeople | None = None
        self._existing_lock = asyncio.Lock()
        self._policy_skipped: set[tuple[str, str]] = set()
        self._quarantined_before: set[tuple[str, str]] = set()
        self._last_progress: dict[str, float] = {}
        self._rate = _Rate()
        self._started = 0.0
        self._consecutive_errors = 0
        self._phase_seconds: dict[str, float] = {}
        self._estimate: dict[str, Any] | None = None
        self._recovered = 0
        self._conflicts = 0
        self._failed_keys: set[tuple[str, str]] = set()
        self._kill = KillSwitch.from_env()
        self._sink_broken = False
        self._last_doubt: float | None = None  # when a create last ended in doubt (clock())
        self._busy = 0  # records being written right now
        self._pause_announced = True

    # -- control (callable while execute() runs) ---------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._gate.is_set()

    def pause(self, reason: str = "paused by the user") -> None:
        """Finish the calls in flight, then wait. Resumable in this process (`resume`) or after a restart."""
        if self.paused or self._stopping:
            return
        self._gate.clear()
        self._paused_reason = reason
        self.journal.set_run_status(self.run.id, RunStatus.PAUSED)
        self._pause_announced = False
        self._announce_pause()

    def _announce_pause(self) -> None:
        """RunPaused goes out once the records being written when the pause came are done: from then on nothing
        is written until `resume`, so "paused" on a dashboard means it."""
        if self.paused and not self._pause_announced and self._busy == 0:
            self._pause_announced = True
            for object_ in list(self.counts):
                self._progress(object_, force=True)  # the counts as they stay while paused
            self.emit_rates()
            self._emit(ev.RunPaused(self.run.id, self._paused_reason))

    def resume(self) -> None:
        if not self.paused:
            return
        self._pause_announced = True  # resumed before the writes in flight were done: no pause to announce
        self.journal.set_run_status(self.run.id, RunStatus.RUNNING)
        self._gate.set()
        self._emit(ev.RunResumed(self.run.id))

    def stop(self) -> None:
        """End the run after the calls in flight; it stays resumable (status paused)."""
        self._stopping = True
        self._gate.set()

    # -- the run -------------------------------------------------------------------------------------------
    async def execute(self) -> RunSummary:
        self._started = self._clock()
        self.dest.cap_concurrency(max(1, self.settings.workers))
        totals = self.plan.totals()
        if self.settings.estimator is not None:
            # Records the id map holds were written before: unchanged unless Cliniko changed them since, so a
            # second or resumed run is estimated by what is left to create.
            mapped = self.journal.count_mapped()
            self._estimate = self.settings.estimator(
                {o: {"create": max(0, n - mapped.get(o, 0)), "unchanged": min(n, mapped.get(o, 0))}
                 for o, n in totals.items()}
            )  # fmt: skip
        for object_, n in totals.items():
            self.counts[object_].planned = n
        self._emit(ev.RunStarted(self.run.id, self.run.kind.value, self.run.map_version, dict(totals)))
        self._quarantined_before = set() if self.settings.retry_quarantined else self.journal.quarantine_keys()
        ticker = asyncio.create_task(self._tick())
        try:
            doubtful = [e.started_at for e in self.journal.open_entries() if e.action is Action.CREATE]
            settled = await settle_open(self.journal, self.dest, self._emit)
            self._recovered += settled
            if doubtful:
                # A create a stopped process left in doubt was sent when its row was written, not now: the grace
                # for a late copy runs from then (a resume the next morning has nothing left to wait for).
                self._last_doubt = self._clock() - seconds_since(max(doubtful))
            for phase in PHASES:
                if self._stopping:
                    break
                await self._run_phase(phase)
            if not self._stopping:
                await self._late_copies()
        except (Unavailable, _Fatal) as exc:
            self._fatal = str(exc)
            log.warning("run %s stopped: %s", self.run.id, exc)
        finally:
            ticker.cancel()
        return self._finish()

    def _finish(self) -> RunSummary:
        elapsed = self._clock() - self._started
        failed = sum(c.failed for c in self.counts.values())
        if self._fatal is not None:
            status, outcome = RunStatus.INTERRUPTED, Outcome.FAILURE
        elif self._stopping:
            status, outcome = RunStatus.PAUSED, None
        else:
            status = RunStatus.FINISHED
            outcome = Outcome.PARTIAL if failed or self._conflicts else Outcome.SUCCESS
        summary = RunSummary(
            run_id=self.run.id,
            kind=self.run.kind.value,
            outcome=outcome or Outcome.PARTIAL,
            status=status,
            counts=dict(self.counts),
            quarantined=len(self._failed_keys),
            conflicts=self._conflicts,
            recovered=self._recovered,
            elapsed_seconds=elapsed,
            message=self._fatal or ("stopped; resume to continue" if self._stopping else ""),
            phase_seconds=dict(self._phase_seconds),
            estimate=self._estimate,
        )
        self.journal.finish_run(self.run.id, status, outcome, summary.as_dict())
        for object_ in self.counts:
            self._progress(object_, force=True)
        self._emit(
            ev.RunFinished(
                self.run.id,
                self.run.kind.value,
                summary.outcome.value,
                status.value,
                {k: c.as_dict() for k, c in self.counts.items()},
                elapsed,
            )
        )
        return summary

    async def _run_phase(self, phase: Phase) -> None:
        queue: asyncio.Queue[Op | None] = asyncio.Queue(maxsize=self.settings.workers * 4)
        workers = OPS_PER_REQUEST_SLOT * max(1, self.settings.workers)
        planned = sum(c.planned for o, c in self.counts.items() if phase_of(o) is phase)
        self._emit(ev.PhaseStarted(self.run.id, phase.value, planned))

        async def produce() -> None:
            try:
                for op in self.plan.ops(phase):
                    if self._stopping:
                        break
                    await queue.put(op)
            except Exception as exc:  # the plan itself failed (a bug, or the store changed under us)
                log.exception("planning %s failed", phase.value)
                raise _Fatal(f"planning {phase.value} failed: {type(exc).__name__}: {exc}") from exc
            # Not in a `finally`: when the group is cancelled, nobody is left to take these.
            for _ in range(workers):
                await queue.put(None)

        async def work() -> None:
            while (op := await queue.get()) is not None:
                await self._gate.wait()
                if self._stopping:
                    continue
                self._busy += 1
                try:
                    await self._one(op)
                finally:
                    self._busy -= 1
                    self._announce_pause()

        started = self._clock()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(workers):
                    group.create_task(work())
        except* (Unavailable, _Fatal, sqlite3.Error) as stopped:
            raise stopped.exceptions[0] from None
        finally:
            self._phase_seconds[phase.value] = self._phase_seconds.get(phase.value, 0.0) + self._clock() - started

    # -- one record ----------------------------------------------------------------------------------------
    async def _one(self, op: Op) -> None:
        if self.settings.only is not None and op.key not in self.settings.only:
            return
        try:
            outcome = await self._execute(op)
            self._consecutive_errors = 0
        except (Unavailable, _Fatal, sqlite3.Error):  # sqlite3: the store refused a write (disk full): stop
            self._stopping = True
            raise
        except Exception as exc:  # a bug or an unexpected answer: quarantine this record, keep going
            log.exception("unexpected error on %s %s", op.object, op.source_id)
            self._consecutive_errors += 1
            self._quarantine(op, "error", f"{type(exc).__name__}: {exc}")
            outcome = "failed"
            if self._consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                raise _Fatal(f"{self._consecutive_errors} records failed in a row; last: {exc}") from exc
        counts = self.counts[op.object]
        setattr(counts, outcome, getattr(counts, outcome) + 1)
        self._rate.add(self._clock())
        self._progress(op.object)

    async def _execute(self, op: Op) -> str:
        """Do what `op` calls for; returns the Counts field to bump."""
        if op.skip is not None:
            return "skipped"
        mapped = self.journal.mapped(*op.key)
        if op.retire is not None:
            return await self._retire(op, mapped) if mapped is not None else "unchanged"
        if op.unmappable is not None:
            if mapped is not None:
                return "unchanged"  # migrated before; the map now refuses it: left as it is (reconcile shows it)
            self._quarantine(op, "unmappable", op.unmappable)
            return "failed"
        if mapped is not None and mapped.payload_hash == op.hash:
            if op.key in self._quarantined_before:
                self.journal.unquarantine(*op.key)
            if op.patient_id and mapped.patient_id != op.patient_id:
                self.journal.set_patient(op.object, op.source_id, op.patient_id)  # merged into another patient
            return "unchanged"
        if op.key in self._quarantined_before:
            return "skipped"  # waits for `retry failed`
        try:
            payload = self._resolve(op.payload) if op.payload is not None else None
            parent = self._ref(op.parent) if op.parent is not None else None
            host = self._ref(op.host) if op.host is not None else None
        except SkippedDependency as exc:
            self.journal.record_skip(self.run.id, op.object, op.source_id, op.entity.value, str(exc),
                                     patient_id=op.patient_id)  # fmt: skip
            return "skipped"
        except MissingDependency as exc:
            self._quarantine(op, "dependency", str(exc))
            return "failed"
        if op.file is not None:
            return await self._upload(op, mapped, host or "")
        assert payload is not None, f"{op.object} {op.source_id}: an op needs a payload or a file"
        if parent is not None:
            payload = {**payload, "parent": parent}
        if mapped is None:
            if op.entity is Entity.CONTACTS and op.email:
                return await self._person(op, payload)
            return await self._create(op, payload)
        return await self._update(op, mapped, payload)

    # -- references ----------------------------------------------------------------------------------------
    def _ref(self, ref: RecordRef) -> str:
        mapped = self.journal.mapped(ref.object, ref.source_id)
        if mapped is not None:
            return mapped.nutshell_id
        if (ref.object, ref.source_id) in self._policy_skipped:
            raise SkippedDependency(f"{ref.object} {ref.source_id} was skipped by the policy")
        failed = self.journal.quarantined(ref.object, ref.source_id)
        why = f" (quarantined: {failed.category})" if failed else ""
        raise MissingDependency(f"depends on {ref.object} {ref.source_id}, which is not in Nutshell{why}")

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, RecordRef):
            return self._ref(value)
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    @staticmethod
    def _participant(payload: dict[str, Any]) -> str | None:
        """The person an activity belongs to: narrows the search when its outcome is unknown."""
        for pid in (payload.get("links") or {}).get("participants") or []:
            if isinstance(pid, str) and pid.endswith("-contacts"):
                return pid
        return None

    # -- creates -------------------------------------------------------------------------------------------
    async def _person(self, op: Op, payload: dict[str, Any]) -> str:
        """A patient with an e-mail: the existing-person policy decides between link, skip and create."""
        policy = self.settings.existing_person
        if policy is ExistingPersonPolicy.CREATE:
            return await self._create(op, payload)
        email = normalize_email(op.email)
        existing = await self.existing_people()
        async with self._email_locks[email]:
            # People we created or linked are not "existing" (a duplicate e-mail in Cliniko gets its own person).
            theirs = [i for i in existing.by_email.get(email, []) if not self.journal.mapped_by_nutshell_id(i)]
            if not theirs:
                return await self._create(op, payload)
            first = min(theirs, key=_number)
            if policy is ExistingPersonPolicy.SKIP:
                self._policy_skipped.add(op.key)
                why = f"existing-person policy 'skip': Nutshell person {first} has this e-mail"
                self.journal.record_skip(self.run.id, op.object, op.source_id, op.entity.value, why,
                                         target_id=first, patient_id=op.patient_id)  # fmt: skip
                return "skipped"
            # The look-up gave ids; filling their empty fields needs the whole record (custom fields included).
            whole = await self.dest.get(Entity.CONTACTS, first)
            if whole is None:  # deleted since the look-up
                return await self._create(op, payload)
            return await self._link(op, payload, whole)

    async def existing_people(self) -> ExistingPeople:
        """Who Nutshell already holds among the plan's e-mails: looked up once per run, for the fewest requests."""
        async with self._existing_lock:
            if self._existing is None:
                store = self.journal.store
                emails = self.plan.person_emails()
                self._existing = await self.dest.people_by_email(emails, total=known_people_total(store))
                remember_people_total(store, self._existing.total)
            return self._existing

    async def _create(self, op: Op, payload: dict[str, Any], *, replaces: Mapped | None = None) -> str:
        parent = payload.get("parent") if op.entity is Entity.NOTES else self._participant(payload)
        pre: dict[str, Any] | None = None
        if replaces is not None:
            pre = {"replaces": replaces.nutshell_id, "old_hash": replaces.payload_hash}
        elif op.entity is Entity.CONTACTS:
            # if the outcome is lost, the person is looked up by e-mail and name before reading everything
            pre = {"lookup_email": op.email, "lookup_name": payload.get("name")}
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            seq = self.journal.intent(
                self.run.id, op.object, op.source_id, op.entity.value, Action.CREATE,
                payload_hash=op.hash, marker=op.marker, parent_id=parent, patient_id=op.patient_id, pre_image=pre,
            )  # fmt: skip
            self._hook(op, "intent")
            try:
                remote = await self.dest.create(op.entity, payload)
            except OutcomeUnknown as exc:
                self._last_doubt = self._clock()
                self.journal.settle(seq, State.UNKNOWN, str(exc))
                if await settle(self.journal, self.dest, self.journal.entry(seq)):
                    self._recovered += 1
                    return "created"
                if attempt == CREATE_ATTEMPTS:
                    self._quarantine(op, "error", f"outcome unknown {attempt} times: {exc}")
                    return "failed"
                continue
            except Rejected as exc:
                self._fail(seq, op, "rejected", str(exc))
                return "failed"
            self._hook(op, "sent")
            self.journal.complete(
                seq, nutshell_id=remote.id, rev=remote.rev, modified=remote.modified,
                fingerprint=fingerprint(remote.fields), map_to=self._map(op, remote, Origin.CREATED, parent),
                clear_quarantine=op.key,
            )  # fmt: skip
            self._hook(op, "done")
            if replaces is not None:
                await delete_replaced(self.journal, self.dest, self.journal.entry(seq), replaces.nutshell_id)
            return "created"
        raise AssertionError("unreachable")

    async def _link(self, op: Op, payload: dict[str, Any], existing: Remote) -> str:
        changes = fill_empty(payload, existing.fields)
        pre = {"before": before_of(changes, existing.fields), "after": changes}
        seq = self.journal.intent(
            self.run.id, op.object, op.source_id, op.entity.value, Action.LINK, payload_hash=op.hash,
            marker=op.marker, target_id=existing.id, patient_id=op.patient_id, pre_image=pre,
        )  # fmt: skip
        return await self._send_changes(
            seq, op, existing, changes, Origin.LINKED, None, "linked", f"linking to {existing.id} failed"
        )

    async def _send_changes(
        self,
        seq: int,
        op: Op,
        remote: Remote,
        changes: dict[str, Any],
        origin: Origin,
        parent_id: str | None,
        result: str,
        failure: str,
    ) -> str:
        """Write `changes` onto `remote` for the journal row `seq` (already committed), then complete it; an
        unknown outcome is settled by reading Nutshell before the record is quarantined."""
        self._hook(op, "intent")
        try:
            written = await self._write_update(op.entity, remote, changes) if changes else remote
        except Rejected as exc:
            self._fail(seq, op, "rejected", str(exc))
            return "failed"
        except (OutcomeUnknown, Conflict) as exc:
            self.journal.settle(seq, State.UNKNOWN, str(exc))
            if await settle(self.journal, self.dest, self.journal.entry(seq)):
                return result
            self._quarantine(op, "error", f"{failure}: {exc}")
            return "failed"
        self._hook(op, "sent")
        self.journal.complete(
            seq, nutshell_id=written.id, rev=written.rev, modified=written.modified,
            fingerprint=fingerprint(written.fields), map_to=self._map(op, written, origin, parent_id),
            clear_quarantine=op.key,
        )  # fmt: skip
        self._hook(op, "done")
        return result

    # -- updates -------------------------------------------------------------------------------------------
    async def _update(self, op: Op, mapped: Mapped, payload: dict[str, Any]) -> str:
        entity = op.entity
        remote = await self.dest.get(entity, mapped.nutshell_id)
        edited = [] if remote is None else edited_fields(mapped.fingerprint, remote.fields)
        if remote is None or edited:
            info = ConflictInfo(
                op.object, op.source_id, mapped.nutshell_id, tuple(edited), deleted=remote is None,
                theirs={f: field_value(remote.fields, f) for f in edited} if remote is not None else {},
                ours={f: field_value(payload, f) for f in edited},
            )  # fmt: skip
            decision = await self._decide(info)
            self._conflicts += 1
            self.journal.record_conflict(
                self.run.id, op.object, op.source_id, mapped.nutshell_id, decision.value,
                ["(deleted)"] if remote is None else edited,
            )  # fmt: skip
            self._emit(
                ev.ConflictFound(self.run.id, op.object, op.source_id, mapped.nutshell_id, decision.value, info.fields)
            )
            if decision is not ConflictPolicy.OVERWRITE:
                return "conflicts"
            if remote is None:
                return await self._create(op, payload)
        assert remote is not None
        if entity is Entity.NOTES:
            # Notes cannot be edited through the API (editNote only by its author within 24 hours): a changed
            # note is replaced, the new one created first, then the old one deleted (to the trash, so a
            # rollback can take it back out).
            return await self._create(op, payload, replaces=mapped)
        changes = changes_needed(payload, remote.fields)
        if mapped.origin is Origin.LINKED:
            changes = self._linked_changes(op, payload, remote, changes)
        if not changes:
            self.journal.set_payload_hash(op.object, op.source_id, op.hash)
            return "unchanged"
        pre = {"before": before_of(changes, remote.fields), "after": changes}
        seq = self.journal.intent(
            self.run.id, op.object, op.source_id, entity.value, Action.UPDATE, payload_hash=op.hash,
            marker=op.marker, target_id=mapped.nutshell_id, parent_id=mapped.parent_id, patient_id=op.patient_id,
            pre_image=pre,
        )  # fmt: skip
        return await self._send_changes(
            seq, op, remote, changes, mapped.origin, mapped.parent_id, "updated", "update failed"
        )

    def _linked_changes(
        self, op: Op, payload: dict[str, Any], remote: Remote, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """A person we linked to keeps its own values: we only touch fields we filled, or that are empty."""
        ours: set[str] = set()
        for entry in self.journal.history(op.object, op.source_id):
            if entry.state is State.DONE and entry.action in (Action.LINK, Action.UPDATE) and entry.pre_image:
                ours |= field_names(entry.pre_image.get("after") or {})
        return restrict(changes, ours) | fill_empty(payload, remote.fields)

    async def _write_update(self, entity: Entity, remote: Remote, changes: dict[str, Any]) -> Remote:
        """Update with the rev we read; one fresh read and retry if it moved under us (our own related
        writes bump it too)."""
        try:
            return await self.dest.update(entity, remote.id, changes, remote.rev, current=remote)
        except Conflict:
            fresh = await self.dest.get(entity, remote.id)
            if fresh is None:
                raise
            return await self.dest.update(entity, remote.id, changes, fresh.rev, current=fresh)

    async def _decide(self, info: ConflictInfo) -> ConflictPolicy:
        policy = self.settings.conflicts
        if policy is ConflictPolicy.ASK:
            if self.settings.ask is None:
                return ConflictPolicy.SKIP
            answer = self.settings.ask(info)
            if inspect.isawaitable(answer):
                answer = await answer
            return ConflictPolicy(answer) if answer is not ConflictPolicy.ASK else ConflictPolicy.SKIP
        return policy

    async def _retire(self, op: Op, mapped: Mapped) -> str:
        """Delete a record the source no longer wants (kept in Nutshell's trash; a rollback undeletes it)."""
        remote = await self.dest.get(op.entity, mapped.nutshell_id)
        if remote is not None and (edited := edited_fields(mapped.fingerprint, remote.fields)):
            info = ConflictInfo(op.object, op.source_id, mapped.nutshell_id, tuple(edited),
                                theirs={f: field_value(remote.fields, f) for f in edited})  # fmt: skip
            decision = await self._decide(info)
            self._conflicts += 1
            self.journal.record_conflict(self.run.id, op.object, op.source_id, mapped.nutshell_id, decision.value,
                                         edited)  # fmt: skip
            self._emit(ev.ConflictFound(self.run.id, op.object, op.source_id, mapped.nutshell_id, decision.value,
                                        info.fields))  # fmt: skip
            if decision is not ConflictPolicy.OVERWRITE:
                return "conflicts"
        seq = self.journal.intent(
            self.run.id, op.object, op.source_id, op.entity.value, Action.DELETE, payload_hash=mapped.payload_hash,
            marker=op.marker, target_id=mapped.nutshell_id, patient_id=op.patient_id,
            pre_image={"fields": remote.fields if remote else None, "why": op.retire},
        )  # fmt: skip
        self._hook(op, "intent")
        if remote is not None:
            try:
                await self.dest.delete(op.entity, mapped.nutshell_id, remote.rev)
            except Gone:
                pass
            except (OutcomeUnknown, Conflict) as exc:
                self.journal.settle(seq, State.UNKNOWN, str(exc))
                await settle(self.journal, self.dest, self.journal.entry(seq))
                return "deleted"
        self._hook(op, "sent")
        self.journal.complete(seq, nutshell_id=mapped.nutshell_id, unmap=(*op.key, mapped.nutshell_id))
        return "deleted"

    # -- files ---------------------------------------------------------------------------------------------
    async def _upload(self, op: Op, mapped: Mapped | None, host: str) -> str:
        spec = op.file
        assert spec is not None
        try:
            self.plan.prepare_file(op)
        except Exception as exc:
            self._quarantine(op, "error", f"the file could not be prepared: {exc}")
            return "failed"
        if mapped is not None:
            # A new version of a file already there: uploaded beside it under a new name (the API offers no
            # way to remove a file from an activity).
            versions = sum(
                1 for e in self.journal.history(*op.key) if e.action is Action.UPLOAD and e.state is State.DONE
            )
            stem, dot, ext = spec.name.rpartition(".")
            name = f"{stem} (v{versions + 1}).{ext}" if dot else f"{spec.name} (v{versions + 1})"
            spec = FileSpec(spec.path, name, spec.size, spec.sha256, spec.content_type)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            seq = self.journal.intent(
                self.run.id, op.object, op.source_id, Entity.FILES.value, Action.UPLOAD, payload_hash=op.hash,
                marker=spec.name, target_id=host, parent_id=host, patient_id=op.patient_id,
            )  # fmt: skip
            self._hook(op, "intent")
            try:
                remote = await self.dest.upload_file(host, spec)
            except OutcomeUnknown as exc:
                self.journal.settle(seq, State.UNKNOWN, str(exc))
                if await settle(self.journal, self.dest, self.journal.entry(seq)):
                    return "created" if mapped is None else "updated"
                if attempt == CREATE_ATTEMPTS:
                    self._quarantine(op, "error", f"upload outcome unknown {attempt} times: {exc}")
                    return "failed"
                continue
            except (Rejected, Gone) as exc:
                self._fail(seq, op, "rejected", str(exc))
                return "failed"
            self._hook(op, "sent")
            self.journal.complete(
                seq, nutshell_id=remote.id, rev=remote.rev, modified=remote.modified,
                map_to=self._map(op, remote, Origin.CREATED, host), clear_quarantine=op.key,
            )  # fmt: skip
            self._hook(op, "done")
            return "created" if mapped is None else "updated"
        raise AssertionError("unreachable")

    # -- late copies ---------------------------------------------------------------------------------------
    async def _late_copies(self) -> None:
        """A create that timed out may still be carried out after a look found nothing and it was sent again:
        two copies. Once `late_copy_grace` has passed since the last doubtful create, each record of this run
        whose create was looked for in vain (journal rows void) is looked for again by its marker; copies beside
        the one in the id map are deleted (to the trash, journaled with `duplicate_of`, which no rollback
        undoes), and a record left unmapped whose first request landed after all is adopted."""
        voided = [e for e in self.journal.entries(self.run.id) if e.action is Action.CREATE and e.state is State.VOID]
        if not voided:
            return
        if self._last_doubt is not None:
            wait = self.settings.late_copy_grace - (self._clock() - self._last_doubt)
            if wait > 0:
                await asyncio.sleep(wait)
        for entry in {(e.object, e.source_id): e for e in voided}.values():
            mapped = self.journal.mapped(entry.object, entry.source_id)
            if mapped is None:
                # Never created as far as we know (quarantined): if the first request landed after all, adopt it.
                seq = self.journal.intent(
                    self.run.id, entry.object, entry.source_id, entry.entity, Action.CREATE,
                    payload_hash=entry.payload_hash, marker=entry.marker, parent_id=entry.parent_id,
                    patient_id=entry.patient_id, pre_image=entry.pre_image,
                )  # fmt: skip
                if not await settle(self.journal, self.dest, self.journal.entry(seq)):
                    continue
                mapped = self.journal.mapped(entry.object, entry.source_id)
                assert mapped is not None
            entity = Entity(entry.entity)
            lookup = entry.pre_image or {}
            found = await self.dest.find_marked(
                entity,
                entry.marker or entry.source_id,
                parent_id=entry.parent_id,
                email=lookup.get("lookup_email"),
                name=lookup.get("lookup_name"),
            )
            for copy in found:
                if copy.id == mapped.nutshell_id or self.journal.mapped_by_nutshell_id(copy.id):
                    continue
                log.info("run %s: deleting %s, a late copy of %s %s", self.run.id, copy.id, entry.object,
                         entry.source_id)  # fmt: skip
                seq = self.journal.intent(
                    self.run.id, entry.object, entry.source_id, entity.value, Action.DELETE, target_id=copy.id,
                    parent_id=entry.parent_id, patient_id=entry.patient_id,
                    pre_image={"duplicate_of": mapped.nutshell_id, "fields": copy.fields},
                )  # fmt: skip
                try:
                    await self.dest.delete(entity, copy.id, copy.rev)
                except Gone:
                    pass
                except (OutcomeUnknown, Conflict) as exc:
                    self.journal.settle(seq, State.UNKNOWN, str(exc))
                    await settle(self.journal, self.dest, self.journal.entry(seq))
                    continue
                self.journal.complete(seq, nutshell_id=copy.id)

    # -- helpers -------------------------------------------------------------------------------------------
    def _map(self, op: Op, remote: Remote, origin: Origin, parent: str | None) -> MapWrite:
        return MapWrite(
            object=op.object,
            source_id=op.source_id,
            entity=entity_of(op.object).value,
            nutshell_id=remote.id,
            payload_hash=op.hash,
            origin=origin,
            run_id=self.run.id,
            parent_id=parent,
            patient_id=op.patient_id,
            rev=remote.rev,
            modified=remote.modified,
            fingerprint=fingerprint(remote.fields) if op.file is None else None,
        )

    def _fail(self, seq: int, op: Op, category: str, reason: str) -> None:
        self.journal.fail(seq, reason, quarantine=(self.run.id, op.object, op.source_id, category, op.patient_id))
        self._failed_keys.add(op.key)
        self._emit(ev.RecordFailed(self.run.id, op.object, op.source_id, category, reason))

    def _quarantine(self, op: Op, category: str, reason: str) -> None:
        self.journal.quarantine(self.run.id, op.object, op.source_id, category, reason, op.patient_id)
        self._failed_keys.add(op.key)
        self._emit(ev.RecordFailed(self.run.id, op.object, op.source_id, category, reason))

    def _hook(self, op: Op, point: str) -> None:
        if self._kill is not None:
            self._kill.check(op.object, point)

    def _emit(self, event: Event) -> None:
        try:
            self._sink(event)
        except Exception:  # a view that went away must not stop the migration
            if not self._sink_broken:
                log.exception("the event sink failed; the run goes on")
            self._sink_broken = True

    def _progress(self, object_: str, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_progress.get(object_, 0.0) < self.settings.progress_interval:
            return
        self._last_progress[object_] = now
        c = self.counts[object_]
        self._emit(
            ev.ObjectProgress(
                self.run.id, object_, c.done, max(c.planned, c.done), c.created, c.updated, c.linked,
                c.unchanged, c.skipped, c.failed + c.conflicts, c.deleted, c.restored,
            )
        )  # fmt: skip

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval)
            self.emit_rates()

    def emit_rates(self) -> None:
        now = self._clock()
        done = sum(c.done for c in self.counts.values())
        total = sum(max(c.planned, c.done) for c in self.counts.values())
        rate = self._rate.per_second(now, self._started)
        eta = (total - done) / rate if rate > 0 else None
        self._emit(ev.Throughput(self.run.id, rate, done, total, eta))
        budget = self.dest.budget()
        remaining, limit = self.settings.cliniko_budget() if self.settings.cliniko_budget else (None, None)
        self._emit(ev.Budgets(self.run.id, budget.concurrency, budget.in_flight, budget.throttled, remaining, limit))


def _number(rest_id: str) -> int:
    head = rest_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0
