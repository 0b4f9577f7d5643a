"""The journal, the id map, runs, quarantine and conflicts: the engine's durable memory in migration.db.

Every write to Nutshell is an `intent` row committed BEFORE the call and completed AFTER it, in the same
transaction as the id map change it causes. So after a crash at any instant, each record is in one of three
states: in the id map (confirmed), quarantined (durably failed), or neither (still to do); an `intent` row
left open marks the one case that needs a look in Nutshell before anything is sent again (recovery.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cliniko2nutshell.project.store import Store, utcnow


class RunKind(StrEnum):
    SAMPLE = "sample"
    FULL = "full"
    DELTA = "delta"
    RETRY = "retry"
    ROLLBACK = "rollback"


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # stopped by an error (e.g. Nutshell unreachable) or found running after a crash


class Outcome(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"  # finished, with quarantined records or skipped conflicts
    FAILURE = "failure"


class Action(StrEnum):
    CREATE = "create"
    LINK = "link"  # an existing Nutshell person adopted (empty fields filled)
    UPDATE = "update"
    REPLACE = "replace"  # notes cannot be edited: a new note, then the old one deleted
    UPLOAD = "upload"
    DELETE = "delete"
    RESTORE = "restore"  # a pre-image written back
    UNDELETE = "undelete"
    SKIP = "skip"  # a policy left the record out (nothing sent): journaled so reconcile and the audit account for it


class State(StrEnum):
    INTENT = "intent"  # committed before the call; still open means the outcome is unknown
    DONE = "done"
    FAILED = "failed"  # the call failed and nothing was written
    UNKNOWN = "unknown"  # the call may have happened; recovery must look
    VOID = "void"  # recovery looked: nothing happened
    SKIPPED = "skipped"  # an Action.SKIP row: nothing was to be sent


class Origin(StrEnum):
    CREATED = "created"
    LINKED = "linked"


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    kind: RunKind
    status: RunStatus
    outcome: Outcome | None
    map_version: int | None
    options: dict[str, Any]
    started_at: str
    finished_at: str | None
    summary: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Entry:
    """A journal row."""

    seq: int
    run_id: int
    object: str
    source_id: str
    entity: str
    action: Action
    state: State
    target_id: str | None
    parent_id: str | None
    patient_id: str | None
    payload_hash: str | None
    marker: str | None
    nutshell_id: str | None
    rev: str | None
    modified: str | None
    fingerprint: str | None
    pre_image: dict[str, Any] | None
    error: str | None
    started_at: str
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class Mapped:
    """An id map row: a Cliniko record and the Nutshell record it became."""

    object: str
    source_id: str
    entity: str
    nutshell_id: str
    parent_id: str | None
    patient_id: str | None
    rev: str | None
    modified: str | None
    fingerprint: str | None
    payload_hash: str
    origin: Origin
    created_run_id: int
    run_id: int
    journal_seq: int
    written_at: str


@dataclass(frozen=True, slots=True)
class Quarantined:
    object: str
    source_id: str
    run_id: int
    category: str
    reason: str
    patient_id: str | None
    attempts: int
    first_at: str
    last_at: str


@dataclass(frozen=True, slots=True)
class ConflictRow:
    id: int
    run_id: int
    object: str
    source_id: str
    nutshell_id: str
    decision: str
    fields: list[str]
    at: str


@dataclass(frozen=True, slots=True)
class SchemaChange:
    entity: str
    name: str
    type: str
    nutshell_id: str | None
    created_at: str


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        kind=RunKind(row["kind"]),
        status=RunStatus(row["status"]),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        map_version=row["map_version"],
        options=json.loads(row["options"]),
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        summary=_loads(row["summary"]),
    )


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        seq=row["seq"],
        run_id=row["run_id"],
        object=row["object"],
        source_id=row["source_id"],
        entity=row["entity"],
        action=Action(row["action"]),
        state=State(row["state"]),
        target_id=row["target_id"],
        parent_id=row["parent_id"],
        patient_id=row["patient_id"],
        payload_hash=row["payload_hash"],
        marker=row["marker"],
        nutshell_id=row["nutshell_id"],
        rev=row["rev"],
        modified=row["modified"],
        fingerprint=row["fingerprint"],
        pre_image=_loads(row["pre_image"]),
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _mapped(row: sqlite3.Row) -> Mapped:
    return Mapped(**{k: row[k] for k in row.keys()} | {"origin": Origin(row["origin"])})  # noqa: SIM118


class Journal:
    """Accessors over the engine's tables. One instance per open store; every method commits what it writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self._durable = False

    def durable(self) -> None:
        """Make each intent reach the disk before the call it guards (WAL's NORMAL may lose the last commits on
        power loss, and a lost intent row would let a resume create a record twice): every write to Nutshell
        then waits for `barrier()` (engine/destination.py `AfterJournal`), one fsync for all the calls waiting."""
        self._durable = True

    async def barrier(self) -> None:
        """Everything journaled so far is on disk (when `durable()`: a no-op otherwise, e.g. in tests)."""
        if self._durable:
            await self.store.barrier()

    # -- runs ----------------------------------------------------------------------------------------------
    def start_run(self, kind: RunKind, map_version: int | None, options: dict[str, Any] | None = None) -> Run:
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (kind, status, map_version, options, started_at) VALUES (?, ?, ?, ?, ?)",
                (kind.value, RunStatus.RUNNING.value, map_version, _dumps(options or {}), utcnow()),
            )
            run_id = int(cur.lastrowid or 0)
        return self.run(run_id)

    def run(self, run_id: int) -> Run:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id}")
        return _run(row)

    def runs(self, kind: RunKind | None = None) -> list[Run]:
        if kind is None:
            rows = self.conn.execute("SELECT * FROM runs ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM runs WHERE kind = ? ORDER BY id", (kind.value,))
        return [_run(r) for r in rows]

    def last_run(self, *kinds: RunKind, finished: bool = False) -> Run | None:
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        clauses = []
        if kinds:
            clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args += [k.value for k in kinds]
        if finished:
            clauses.append("status = 'finished'")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        row = self.conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _run(row) if row else None

    def set_run_status(self, run_id: int, status: RunStatus) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE runs SET status = ? WHERE id = ?", (status.value, run_id))

    def finish_run(
        self, run_id: int, status: RunStatus, outcome: Outcome | None, summary: dict[str, Any] | None
    ) -> Run:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, outcome = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status.value, outcome.value if outcome else None, utcnow(), _dumps(summary), run_id),
            )
        return self.run(run_id)

    def mark_stale_runs_interrupted(self) -> list[int]:
        """Runs left 'running' by a process that died. Call it only while holding the project lock."""
        with self.store.transaction() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE status = 'running'")]
            conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
        return ids

    # -- journal -------------------------------------------------------------------------------------------
    def intent(
        self,
        run_id: int,
        object_: str,
        source_id: str,
        entity: str,
        action: Action,
        *,
        payload_hash: str | None = None,
        marker: str | None = None,
        target_id: str | None = None,
        parent_id: str | None = None,
        patient_id: str | None = None,
        pre_image: dict[str, Any] | None = None,
    ) -> int:
        """Record what is about to be sent (committed before the call). Returns the row's seq."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO journal (run_id, object, source_id, entity, action, state, target_id, parent_id, "
                "patient_id, payload_hash, marker, pre_image, started_at) "
                "VALUES (?, ?, ?, ?, ?, 'intent', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    object_,
                    source_id,
                    entity,
                    action.value,
                    target_id,
                    parent_id,
                    patient_id,
                    payload_hash,
                    marker,
                    _dumps(pre_image),
                    utcnow(),
                ),
            )
            return int(cur.lastrowid or 0)

    def complete(
        self,
        seq: int,
        *,
        nutshell_id: str | None,
        rev: str | None = None,
        modified: str | None = None,
        fingerprint: str | None = None,
        pre_image: dict[str, Any] | None = None,
        map_to: MapWrite | None = None,
        unmap: tuple[str, str, str] | None = None,
        clear_quarantine: tuple[str, str] | None = None,
    ) -> None:
        """The call succeeded: close the row, and move the id map (and quarantine) in the same commit."""
        now = utcnow()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE journal SET state = 'done', nutshell_id = ?, rev = ?, modified = ?, fingerprint = ?, "
                "pre_image = COALESCE(?, pre_image), error = NULL, finished_at = ? WHERE seq = ?",
                (nutshell_id, rev, modified, fingerprint, _dumps(pre_image), now, seq),
            )
            if map_to is not None:
                self._write_map(conn, map_to, seq, now)
            if unmap is not None:
                # (object, source id, nutshell id): only if the map still points at that record
                conn.execute("DELETE FROM id_map WHERE object = ? AND source_id = ? AND nutshell_id = ?", unmap)
            if clear_quarantine is not None:
                conn.execute("DELETE FROM quarantine WHERE object = ? AND source_id = ?", clear_quarantine)

    def record_skip(
        self,
        run_id: int,
        object_: str,
        source_id: str,
        entity: str,
        reason: str,
        *,
        target_id: str | None = None,
        patient_id: str | None = None,
    ) -> int | None:
        """A record a policy left out: nothing is sent, but the journal says so (with why, in `error`, and the
        Nutshell record it deferred to in `target_id`). Not repeated while the record's last entry says the same.
        Returns the row's seq, or None when nothing new was written."""
        with self.store.transaction() as conn:
            last = conn.execute(
                "SELECT action, error, target_id FROM journal WHERE object = ? AND source_id = ? "
                "ORDER BY seq DESC LIMIT 1",
                (object_, source_id),
            ).fetchone()
            if last is not None and (last["action"], last["error"], last["target_id"]) == ("skip", reason, target_id):
                return None
            now = utcnow()
            cur = conn.execute(
                "INSERT INTO journal (run_id, object, source_id, entity, action, state, target_id, patient_id, error, "
                "started_at, finished_at) VALUES (?, ?, ?, ?, 'skip', 'skipped', ?, ?, ?, ?, ?)",
                (run_id, object_, source_id, entity, target_id, patient_id, reason, now, now),
            )
            return int(cur.lastrowid or 0)

    def policy_skipped(self) -> set[tuple[str, str]]:
        """(object, source id) of the records a policy leaves out now: their last entry is a skip and they are not
        in Nutshell through us (reconcile counts them as skipped, not missing)."""
        rows = self.conn.execute(
            "SELECT j.object, j.source_id FROM journal j WHERE j.action = 'skip' "
            "AND j.seq = (SELECT MAX(k.seq) FROM journal k WHERE k.object = j.object AND k.source_id = j.source_id) "
            "AND NOT EXISTS (SELECT 1 FROM id_map m WHERE m.object = j.object AND m.source_id = j.source_id)"
        )
        return {(r[0], r[1]) for r in rows}

    def settle(self, seq: int, state: State, error: str | None = None) -> None:
        """Close a row without a write: failed, void (recovery found nothing), or unknown (look later)."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE journal SET state = ?, error = ?, finished_at = ? WHERE seq = ?",
                (state.value, error, utcnow(), seq),
            )

    def entry(self, seq: int) -> Entry:
        row = self.conn.execute("SELECT * FROM journal WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise KeyError(f"no journal row {seq}")
        return _entry(row)

    def open_entries(self) -> list[Entry]:
        """Rows whose outcome nobody knows: intents a crash left open, and calls that ended in doubt."""
        rows = self.conn.execute("SELECT * FROM journal WHERE state IN ('intent', 'unknown') ORDER BY seq")
        return [_entry(r) for r in rows]

    def entries(self, run_id: int | None = None, *, object_: str | None = None) -> list[Entry]:
        sql, args = "SELECT * FROM journal WHERE 1", []
        if run_id is not None:
            sql += " AND run_id = ?"
            args.append(run_id)
        if object_ is not None:
            sql += " AND object = ?"
            args.append(object_)
        return [_entry(r) for r in self.conn.execute(sql + " ORDER BY seq", args)]

    def history(self, object_: str, source_id: str) -> list[Entry]:
        rows = self.conn.execute(
            "SELECT * FROM journal WHERE object = ? AND source_id = ? ORDER BY seq", (object_, source_id)
        )
        return [_entry(r) for r in rows]

    def created_entries(self) -> list[Entry]:
        """Every completed create or upload: what we ever created in Nutshell."""
        rows = self.conn.execute(
            "SELECT * FROM journal WHERE state = 'done' AND action IN ('create', 'upload') ORDER BY seq"
        )
        return [_entry(r) for r in rows]

    def entries_undoing(self, seq: int) -> list[Entry]:
        """Completed rollback rows that undid journal row `seq`."""
        rows = self.conn.execute(
            "SELECT * FROM journal WHERE state = 'done' AND json_extract(pre_image, '$.undoes') = ?", (seq,)
        )
        return [_entry(r) for r in rows]

    def count_entries(self, run_id: int | None = None) -> dict[tuple[str, str], int]:
        """(action, state) -> rows, for one run or all."""
        sql = "SELECT action, state, COUNT(*) FROM journal"
        args: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args.append(run_id)
        return {(a, s): n for a, s, n in self.conn.execute(sql + " GROUP BY action, state", args)}

    # -- id map --------------------------------------------------------------------------------------------
    @staticmethod
    def _write_map(conn: sqlite3.Connection, m: MapWrite, seq: int, now: str) -> None:
        conn.execute(
            "INSERT INTO id_map (object, source_id, entity, nutshell_id, parent_id, patient_id, rev, modified, "
            "fingerprint, payload_hash, origin, created_run_id, run_id, journal_seq, written_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (object, source_id) DO UPDATE SET entity = excluded.entity, "
            "nutshell_id = excluded.nutshell_id, parent_id = excluded.parent_id, patient_id = excluded.patient_id, "
            "rev = excluded.rev, modified = excluded.modified, fingerprint = excluded.fingerprint, "
            "payload_hash = excluded.payload_hash, run_id = excluded.run_id, journal_seq = excluded.journal_seq, "
            "written_at = excluded.written_at, "
            # a record keeps the run and origin of its first write: rollback of that run removes it
            "origin = CASE WHEN id_map.nutshell_id = excluded.nutshell_id THEN id_map.origin ELSE excluded.origin END, "
            "created_run_id = CASE WHEN id_map.nutshell_id = excluded.nutshell_id "
            "THEN id_map.created_run_id ELSE excluded.created_run_id END",
            (
                m.object,
                m.source_id,
                m.entity,
                m.nutshell_id,
                m.parent_id,
                m.patient_id,
                m.rev,
                m.modified,
                m.fingerprint,
                m.payload_hash,
                m.origin.value,
                m.run_id,
                m.run_id,
                seq,
                now,
            ),
        )

    def mapped(self, object_: str, source_id: str) -> Mapped | None:
        row = self.conn.execute(
            "SELECT * FROM id_map WHERE object = ? AND source_id = ?", (object_, source_id)
        ).fetchone()
        return _mapped(row) if row else None

    def mapped_children(self, parent_id: str) -> list[Mapped]:
        """Records hanging from a Nutshell record (files on an activity)."""
        rows = self.conn.execute("SELECT * FROM id_map WHERE parent_id = ? ORDER BY object, source_id", (parent_id,))
        return [_mapped(r) for r in rows]

    def mapped_by_nutshell_id(self, nutshell_id: str) -> list[Mapped]:
        rows = self.conn.execute("SELECT * FROM id_map WHERE nutshell_id = ?", (nutshell_id,))
        return [_mapped(r) for r in rows]

    def iter_mapped(
        self,
        *,
        objects: Iterable[str] | None = None,
        created_run_id: int | None = None,
        patient_ids: Iterable[str] | None = None,
    ) -> Iterator[Mapped]:
        sql, args = "SELECT * FROM id_map WHERE 1", []
        if objects is not None:
            objs = list(objects)
            sql += f" AND object IN ({', '.join('?' * len(objs))})"
            args += objs
        if created_run_id is not None:
            sql += " AND created_run_id = ?"
            args.append(created_run_id)
        rows = self.conn.execute(sql + " ORDER BY object, source_id", args).fetchall()
        wanted = set(patient_ids) if patient_ids is not None else None
        for r in rows:
            if wanted is None or r["patient_id"] in wanted:
                yield _mapped(r)

    def count_mapped(self) -> dict[str, int]:
        return {o: n for o, n in self.conn.execute("SELECT object, COUNT(*) FROM id_map GROUP BY object")}

    def refresh_mapped(self, object_: str, source_id: str, *, rev: str | None, modified: str | None) -> None:
        """Remember a record's new rev after a change that is not an edit of its content (e.g. a new note)."""
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE id_map SET rev = ?, modified = ? WHERE object = ? AND source_id = ?",
                (rev, modified, object_, source_id),
            )

    def set_patient(self, object_: str, source_id: str, patient_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE id_map SET patient_id = ? WHERE object = ? AND source_id = ?", (patient_id, object_, source_id)
            )

    def set_payload_hash(self, object_: str, source_id: str, payload_hash: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE id_map SET payload_hash = ? WHERE object = ? AND source_id = ?",
                (payload_hash, object_, source_id),
            )

    # -- quarantine ----------------------------------------------------------------------------------------
    def quarantine(
        self, run_id: int, object_: str, source_id: str, category: str, reason: str, patient_id: str | None = None
    ) -> None:
        now = utcnow()
        with self.store.transaction() as conn:
            self._quarantine(conn, run_id, object_, source_id, category, reason, patient_id, now)

    def fail(
        self,
        seq: int,
        error: str,
        *,
        quarantine: tuple[int, str, str, str, str | None] | None = None,
        state: State = State.FAILED,
    ) -> None:
        """Close a row as failed and quarantine its record (run, object, source id, category, patient) at once."""
        now = utcnow()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE journal SET state = ?, error = ?, finished_at = ? WHERE seq = ?",
                (state.value, error, now, seq),
            )
            if quarantine is not None:
                run_id, object_, source_id, category, patient_id = quarantine
                self._quarantine(conn, run_id, object_, source_id, category, error, patient_id, now)

    @staticmethod
    def _quarantine(
        conn: sqlite3.Connection,
        run_id: int,
        object_: str,
        source_id: str,
        category: str,
        reason: str,
        patient_id: str | None,
        now: str,
    ) -> None:
        conn.execute(
            "INSERT INTO quarantine (object, source_id, run_id, category, reason, patient_id, first_at, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (object, source_id) DO UPDATE SET run_id = excluded.run_id, "
            "category = excluded.category, reason = excluded.reason, attempts = quarantine.attempts + 1, "
            "last_at = excluded.last_at",
            (object_, source_id, run_id, category, reason, patient_id, now, now),
        )

    def unquarantine(self, object_: str, source_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM quarantine WHERE object = ? AND source_id = ?", (object_, source_id))

    def quarantined(self, object_: str, source_id: str) -> Quarantined | None:
        row = self.conn.execute(
            "SELECT * FROM quarantine WHERE object = ? AND source_id = ?", (object_, source_id)
        ).fetchone()
        return Quarantined(**dict(row)) if row else None

    def quarantine_list(self, object_: str | None = None) -> list[Quarantined]:
        if object_ is None:
            rows = self.conn.execute("SELECT * FROM quarantine ORDER BY object, source_id")
        else:
            rows = self.conn.execute("SELECT * FROM quarantine WHERE object = ? ORDER BY source_id", (object_,))
        return [Quarantined(**dict(r)) for r in rows]

    def quarantine_keys(self) -> set[tuple[str, str]]:
        return {(o, s) for o, s in self.conn.execute("SELECT object, source_id FROM quarantine")}

    # -- conflicts -----------------------------------------------------------------------------------------
    def record_conflict(
        self, run_id: int, object_: str, source_id: str, nutshell_id: str, decision: str, fields: list[str]
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO conflicts (run_id, object, source_id, nutshell_id, decision, fields, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, object_, source_id, nutshell_id, decision, _dumps(sorted(fields)), utcnow()),
            )

    def conflicts(self, run_id: int | None = None) -> list[ConflictRow]:
        if run_id is None:
            rows = self.conn.execute("SELECT * FROM conflicts ORDER BY id")
        else:
            rows = self.conn.execute("SELECT * FROM conflicts WHERE run_id = ? ORDER BY id", (run_id,))
        return [ConflictRow(**(dict(r) | {"fields": json.loads(r["fields"])})) for r in rows]

    # -- custom-field definitions we created -------------------------------------------------------------------
    def record_schema_change(self, entity: str, name: str, type_: str, nutshell_id: str | None) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO schema_changes (entity, name, type, nutshell_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (entity, name, type_, nutshell_id, utcnow()),
            )

    def schema_changes(self) -> list[SchemaChange]:
        rows = self.conn.execute("SELECT entity, name, type, nutshell_id, created_at FROM schema_changes ORDER BY id")
        return [SchemaChange(**dict(r)) for r in rows]


@dataclass(frozen=True, slots=True)
class MapWrite:
    """The id map row a completed write leaves behind."""

    object: str
    source_id: str
    entity: str
    nutshell_id: str
    payload_hash: str
    origin: Origin
    run_id: int
    parent_id: str | None = None
    patient_id: str | None = None
    rev: str | None = None
    modified: str | None = None
    fingerprint: str | None = None
