"""The synthetic clinic: a deterministic Cliniko account written into the sandbox's SQLite file.

`generate_clinic(path, patients, seed)` writes every record as Cliniko's API serves it (see cliniko_db.py for the
file's shape), the planted hard cases (`meta.hard_cases`) and the Nutshell account the other sandbox starts from
(`meta.nutshell_seed`). One seed and size give byte-identical bodies.

How it stays fast and small at 100,000 patients: records are streamed patient by patient, bodies are built as
JSON text from templates (json.dumps of a dict costs ten times more and we write millions), and from a few
thousand patients the records are built in a child process while this one inserts the previous batch, so the
two halves run on two cores (a thread could not overlap them: both hold the GIL most of the time); the indexes
are built once, at the end. The only state kept across patients is small: the practice's catalogue, the hard-case
plan, the group classes (their attendee lists) and the ids the meta lists name.

Conventions of the bodies, all from the reference and the OAS23 schemas:
- ids are int64 decimal strings from one counter, scrambled; records created before Cliniko's switch to 64-bit
  ids (Feb 2022) get small legacy ids, later ones ~8e17 ids. Ids are unique across resources, which also keeps
  individual appointments, group appointments and unavailable blocks apart (they share the /bookings id space).
- timestamps UTC `...Z` with second precision; empty timestamps `null`; money decimal strings ("50.0"), except
  the few fields OAS23 types as numbers (invoice item tax_rate, total_including_tax, discount_percentage,
  tax_amount; tax rate and amount).
- a to-one relation is `{"links": {"self": "{{base}}/<plural>/<id>"}}` and also goes into `fk` as `<rel>_id`.
  Spec conflict: the reference says absent relations come as `null`, but OAS23 declares those link objects
  non-nullable (only `repeats` and `conflicts` are nullable), so a `null` would fail the contract tests. We
  choose to omit the key of an absent to-one relation and keep `null` only where OAS23 allows it.

Where each part lives (the generator is one object assembled from a mixin per module; `_Generator.run` calls them
in a fixed order and every part draws from the one random stream and id counter, so adding records anywhere but at
the end of that order changes every later byte; `test_the_output_is_pinned_byte_for_byte` notices):
- clinic_base.py: text of the bodies (timestamps, strings, links, money), ids, time zones, shared record types
- clinic_practice.py: the practice's catalogue, businesses, custom-field definitions, account settings
- clinic_people.py: users, practitioners, contacts, patients and their charts' small records
- clinic_appointments.py: appointment types, unavailable blocks, visits, attendees, group classes
- clinic_billing.py: taxes, concessions, billable items, products, invoices and their items
- clinic_documents.py: treatment note templates and notes, communications, attachments
- clinic_hard_cases.py: the hard-case plan and lists, and the Nutshell account the other sandbox starts from
- clinic_hostile.py: the hostile records, planted only with `hostile=True` (after every ordinary patient, so the
  clinic without them is unchanged)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import marshal
import os
import random
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.clinic_appointments import _Appointments
from cliniko2nutshell.sandbox.clinic_base import DAY, HISTORY_DAYS, _encode, _IdMint, _Rng, _Session, _ts
from cliniko2nutshell.sandbox.clinic_billing import _Billing
from cliniko2nutshell.sandbox.clinic_data import CLINIC_NAMES
from cliniko2nutshell.sandbox.clinic_documents import _Documents
from cliniko2nutshell.sandbox.clinic_hard_cases import HARD_CASE_RESOURCES, _HardCases
from cliniko2nutshell.sandbox.clinic_hostile import HOSTILE_CASES, HOSTILE_RESOURCES, _Hostile
from cliniko2nutshell.sandbox.clinic_people import _People
from cliniko2nutshell.sandbox.clinic_practice import _Practice

__all__ = [
    "GENERATOR_VERSION",
    "HARD_CASE_RESOURCES",
    "HOSTILE_CASES",
    "MAX_PATIENTS",
    "MIN_PATIENTS",
    "ClinicSummary",
    "generate_clinic",
]

GENERATOR_VERSION = "3"  # bump whenever the output changes: run.py caches clinics by it
MIN_PATIENTS = 10
MAX_PATIENTS = 100_000


@dataclass(frozen=True)
class ClinicSummary:
    """What generate_clinic wrote."""

    path: Path
    patients: int
    seed: int
    shard: str
    api_key: str
    counts: dict[str, int]  # records per resource
    hard_cases: dict[str, list[str]]  # with the switch on, also `hostile_<case>` (clinic_hostile.HOSTILE_CASES)
    seconds: float
    hostile: bool = False


def generate_clinic(
    path: Path,
    patients: int,
    seed: int = 1,
    *,
    shard: str = "au2",
    reference_time: str = "2026-11-01T00:00:00Z",
    hostile: bool = False,
) -> ClinicSummary:
    """Write a synthetic clinic of `patients` patients into a new SQLite file at `path`; with `hostile`, plus the
    corpus of hostile records (clinic_hostile.py), each listed in the summary's hard cases."""
    path = Path(path)
    if not MIN_PATIENTS <= patients <= MAX_PATIENTS:
        raise ValueError(f"patients must be between {MIN_PATIENTS} and {MAX_PATIENTS}, not {patients}")
    if not (len(shard) in (3, 4) and shard[:2].isalpha() and shard[2:].isdigit() and shard == shard.lower()):
        raise ValueError(f"shard must look like 'au2' (two letters and one or two digits), not {shard!r}")
    try:
        ref = int(datetime.fromisoformat(reference_time.replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise ValueError(f"reference_time must be an ISO-8601 UTC time, not {reference_time!r}") from exc
    if path.exists():
        raise FileExistsError(f"{path} already exists; the generator only writes a new file")
    started = time.perf_counter()
    try:
        outcome = _write(path, patients, seed, shard, ref, hostile)
    except BaseException:
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)  # only the file we created: the path did not exist before
        raise
    return ClinicSummary(
        path=path,
        patients=patients,
        seed=seed,
        shard=shard,
        api_key=outcome.api_key,
        counts=dict(sorted(outcome.counts.items())),
        hard_cases=outcome.hard_cases,
        seconds=time.perf_counter() - started,
        hostile=hostile,
    )


class _Outcome(NamedTuple):
    """What the caller learns from a finished generation (the generator itself may live in another process)."""

    api_key: str
    counts: dict[str, int]
    hard_cases: dict[str, list[str]]


def _write(path: Path, patients: int, seed: int, shard: str, ref: int, hostile: bool) -> _Outcome:
    conn = cliniko_db.connect(path)
    try:
        # A new file that nobody reads until we are done: no journal, no fsync, indexes built once at the end.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA page_size=16384")  # fewer, fuller pages for ~1 KB rows; VACUUM applies it
        conn.execute("VACUUM")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-131072")
        # The shared schema's indexes (whatever their names, the unique one included: the generator never repeats
        # an id) are dropped here and re-created from it at the end, each in one sort.
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' AND sql IS NOT NULL"
        ).fetchall():
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("BEGIN")
        if patients >= _PROCESS_MIN_PATIENTS and sys.executable:  # no interpreter to start when embedded
            outcome = _generate_in_child(conn, patients, seed, shard, ref, hostile)
        else:
            outcome = _generate_here(conn.executemany, patients, seed, shard, ref, hostile)
        conn.execute("COMMIT")
        conn.execute("PRAGMA threads=2")  # lets the index sorts use a helper thread when a core is free
        conn.executescript(cliniko_db.SCHEMA)  # the indexes dropped above, built in one sort each
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    return outcome


def _generate_here(emit: Callable[[str, list[tuple[Any, ...]]], object], *args: Any) -> _Outcome:
    sink = _Sink(emit)
    gen = _Generator(sink, *args)
    gen.run()
    sink.close()
    return _Outcome(gen.api_key, dict(sink.counts), gen.hard_cases())


# Building the records costs more CPU than inserting them, so at scale the records are built in a child process
# and inserted here: with two cores the halves overlap (threads cannot: both halves hold the GIL most of the time).
# The child is a plain `python -c` (not multiprocessing) so it never re-imports the caller's main module. Below this
# size starting it (~0.3 s) costs more than it saves.
_PROCESS_MIN_PATIENTS = 2000
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_CHILD_CODE = "from cliniko2nutshell.sandbox.clinic import _produce; _produce()"
_DONE = "done"
_FAILED = "failed"


def _generate_in_child(
    conn: sqlite3.Connection, patients: int, seed: int, shard: str, ref: int, hostile: bool
) -> _Outcome:
    read_fd, write_fd = os.pipe()
    path_list = [str(_PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    try:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD_CODE,
                str(write_fd),
                str(patients),
                str(seed),
                shard,
                str(ref),
                str(int(hostile)),
            ],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(path_list)},
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # ours: so a child that dies without a word shows up as end of file, not a hang
    try:
        with open(read_fd, "rb") as pipe:
            while True:
                head = pipe.read(8)
                blob = pipe.read(int.from_bytes(head, "little")) if len(head) == 8 else b""
                if not blob:
                    raise RuntimeError(f"the clinic generator process died (exit code {child.wait()})")
                sql, payload = marshal.loads(blob)
                if sql == _DONE:
                    break
                if sql == _FAILED:
                    raise RuntimeError(f"the clinic generator process failed:\n{payload}")
                conn.executemany(sql, payload)
    except BaseException:
        child.kill()  # our own child: its rows can no longer go anywhere
        child.wait()
        raise
    child.wait()  # it exits right after its last message
    return _Outcome(*payload)


def _produce() -> None:
    """The child process: build every record and send them to the parent in length-prefixed batches.

    marshal, not pickle: the batches are plain tuples of strings, both ends run the same interpreter, and marshal
    costs about half as much CPU at each end.
    """
    fd, patients, seed, shard, ref, hostile = sys.argv[1:7]
    with open(int(fd), "wb") as pipe:

        def send(sql: str, rows: object) -> None:
            # a full pipe blocks the write: the parent's inserts pace the generator and memory stays flat
            blob = marshal.dumps((sql, rows))
            pipe.write(len(blob).to_bytes(8, "little"))
            pipe.write(blob)
            pipe.flush()

        try:
            outcome = _generate_here(send, int(patients), int(seed), shard, int(ref), hostile == "1")
            send(_DONE, (outcome.api_key, outcome.counts, outcome.hard_cases))
        except BaseException:
            with contextlib.suppress(OSError):
                send(_FAILED, traceback.format_exc())
            raise


# --- the writer ------------------------------------------------------------------------------------------------

_INSERT_RECORD = (
    "INSERT INTO records (resource, id, created_at, updated_at, archived_at, cancelled_at, deleted_at, fk, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _Sink:
    """Batches rows per table and hands each full batch to `emit(sql, rows)` (an insert, or a pipe to one)."""

    def __init__(self, emit: Callable[[str, list[tuple[Any, ...]]], object], batch: int = 5000) -> None:
        self.counts: Counter[str] = Counter()
        self._emit = emit
        self._batch = batch
        self._rows: list[tuple[Any, ...]] = []
        self._other: dict[str, list[tuple[Any, ...]]] = {}

    def record(
        self,
        resource: str,
        rid: str,
        created: str,
        updated: str,
        archived: str | None,
        cancelled: str | None,
        deleted: str | None,
        fk: str,
        body: str,
    ) -> None:
        self._rows.append((resource, rid, created, updated, archived, cancelled, deleted, fk, body))
        self.counts[resource] += 1
        if len(self._rows) >= self._batch:
            rows, self._rows = self._rows, []
            self._emit(_INSERT_RECORD, rows)

    def add(self, sql: str, row: tuple[Any, ...]) -> None:
        """A row of another table, batched apart from the records (order across tables does not matter)."""
        rows = self._other.setdefault(sql, [])
        rows.append(row)
        if len(rows) >= self._batch:
            self._other[sql] = []
            self._emit(sql, rows)

    def close(self) -> None:
        """Hand over what is pending."""
        rows, self._rows = self._rows, []
        other, self._other = self._other, {}
        if rows:
            self._emit(_INSERT_RECORD, rows)
        for sql, pending in other.items():
            if pending:
                self._emit(sql, pending)


# --- the generator ---------------------------------------------------------------------------------------------


class _Generator(_Practice, _People, _Appointments, _Billing, _Documents, _HardCases, _Hostile):
    """One clinic, written in `run`'s order: the practice, the hard-case plan, the patients one by one (each with
    their visits, invoices, notes, messages and files), then what needs every patient first (group classes,
    settings, meta)."""

    def __init__(self, sink: _Sink, patients: int, seed: int, shard: str, ref: int, hostile: bool = False) -> None:
        self.sink = sink
        self.with_hostile = hostile
        self.hostile: dict[str, list[str]] = {}
        self.patients = patients
        self.seed = seed
        self.shard = shard
        self.ref = ref
        self.rng = _Rng(seed)
        self.mint = _IdMint(seed)
        self.open = ref - HISTORY_DAYS * DAY
        name, slug = CLINIC_NAMES[seed % len(CLINIC_NAMES)]
        self.clinic_name = name
        self.subdomain = f"{slug}{seed % 1000}"
        self.domain = f"{self.subdomain}.example"
        self.email_from = f"hello@{self.domain}"
        self.sms_sender = "".join(w[0].upper() + w[1:] for w in name.split() if w.isalpha())[:11]
        self.api_key = _api_key(seed, shard)
        self.hard: dict[str, list[str]] = {key: [] for key in HARD_CASE_RESOURCES}
        self.duplicates: dict[str, list[str]] = {}
        self.nutshell_people: list[dict[str, Any]] = []
        self.nutshell_users: list[dict[str, Any]] = []
        self.invoice_number = 1000
        self.sessions: dict[tuple[int, int], list[_Session]] = {}

    def run(self) -> None:
        self._tokens_rng = random.Random(f"tokens-{self.seed}")
        self._build_practice()
        self._plan_hard_cases()
        self.last_active: str | None = None  # an earlier patient that is neither archived nor merged
        self.last_plain: tuple[str, str] | None = None  # an earlier patient (id, e-mail) with an ordinary e-mail
        for i in range(self.patients):
            self._patient(i)
        if self.with_hostile:
            self._plant_hostile()  # after every ordinary patient: they stay what they are without the switch
        self._write_sessions()
        self._write_singletons()
        self._write_meta()

    def _write_meta(self) -> None:
        seed_doc = self._nutshell_seed()
        meta = {
            "seed": str(self.seed),
            "patients": str(self.patients),
            "shard": self.shard,
            "api_key": self.api_key,
            "generator_version": GENERATOR_VERSION,
            "reference_time": _ts(self.ref),
            "hard_cases": _encode(self.hard_cases()),
            "hard_case_resources": _encode({k: list(v) for k, v in self._case_resources().items()}),
            "nutshell_seed": _encode(seed_doc),
        }
        if self.with_hostile:
            meta["hostile"] = "1"
        for row in sorted(meta.items()):
            self.sink.add("INSERT INTO meta (key, value) VALUES (?, ?)", row)

    def hard_cases(self) -> dict[str, list[str]]:
        return {**super().hard_cases(), **self.hostile}

    def _case_resources(self) -> dict[str, tuple[str, ...]]:
        return {**HARD_CASE_RESOURCES, **HOSTILE_RESOURCES} if self.with_hostile else HARD_CASE_RESOURCES


def _api_key(seed: int, shard: str) -> str:
    """A key shaped like Cliniko's: a base64 token, then `-<shard>` (reference §1)."""
    digest = hashlib.sha256(f"cliniko-key-{seed}".encode()).hexdigest()[:24]
    token = base64.b64encode(f"{seed}-{digest}".encode()).decode().rstrip("=")
    return f"{token}-{shard}"
