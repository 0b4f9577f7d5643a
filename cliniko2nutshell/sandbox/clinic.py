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
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import marshal
import math
import os
import random
import sqlite3
import subprocess
import sys
import time
import traceback
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from cliniko2nutshell.sandbox import clinic_data as data
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.nutshell_seed import DEFAULT_ACTIVITY_TYPES

GENERATOR_VERSION = "3"  # bump whenever the output changes: run.py caches clinics by it
MIN_PATIENTS = 10
MAX_PATIENTS = 100_000

DAY = 86_400
# Cliniko's ids jumped from ~7.5e7 to ~8.4e17 in February 2022 (reference §1); older records keep small ids.
LEGACY_ID_CUTOFF = int(datetime(2022, 2, 15, tzinfo=UTC).timestamp())
HISTORY_DAYS = 6 * 365  # how far back the clinic's records go from the reference time
FUTURE_DAYS = 90  # how far ahead appointments are booked

BASE = cliniko_db.BASE
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_STATUS = {10: "Open", 20: "Paid", 30: "Closed", 40: "Open credit"}
_B = {True: "true", False: "false", None: "null"}


@dataclass(frozen=True)
class ClinicSummary:
    """What generate_clinic wrote."""

    path: Path
    patients: int
    seed: int
    shard: str
    api_key: str
    counts: dict[str, int]  # records per resource
    hard_cases: dict[str, list[str]]
    seconds: float


def generate_clinic(
    path: Path,
    patients: int,
    seed: int = 1,
    *,
    shard: str = "au2",
    reference_time: str = "2026-11-01T00:00:00Z",
) -> ClinicSummary:
    """Write a synthetic clinic of `patients` patients into a new SQLite file at `path`."""
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
        outcome = _write(path, patients, seed, shard, ref)
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
    )


class _Outcome(NamedTuple):
    """What the caller learns from a finished generation (the generator itself may live in another process)."""

    api_key: str
    counts: dict[str, int]
    hard_cases: dict[str, list[str]]


def _write(path: Path, patients: int, seed: int, shard: str, ref: int) -> _Outcome:
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
            outcome = _generate_in_child(conn, patients, seed, shard, ref)
        else:
            outcome = _generate_here(conn.executemany, patients, seed, shard, ref)
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


def _generate_in_child(conn: sqlite3.Connection, patients: int, seed: int, shard: str, ref: int) -> _Outcome:
    read_fd, write_fd = os.pipe()
    path_list = [str(_PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, str(write_fd), str(patients), str(seed), shard, str(ref)],
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
    fd, patients, seed, shard, ref = sys.argv[1:6]
    with open(int(fd), "wb") as pipe:

        def send(sql: str, rows: object) -> None:
            # a full pipe blocks the write: the parent's inserts pace the generator and memory stays flat
            blob = marshal.dumps((sql, rows))
            pipe.write(len(blob).to_bytes(8, "little"))
            pipe.write(blob)
            pipe.flush()

        try:
            outcome = _generate_here(send, int(patients), int(seed), shard, int(ref))
            send(_DONE, (outcome.api_key, outcome.counts, outcome.hard_cases))
        except BaseException:
            with contextlib.suppress(OSError):
                send(_FAILED, traceback.format_exc())
            raise


# --- text of the bodies ----------------------------------------------------------------------------------------


class _Days(dict[int, str]):
    """'YYYY-MM-DD' per day number (days since 1970), made on first use."""

    def __missing__(self, day: int) -> str:
        text = self[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        return text


_DAYS = _Days()
_CLOCK = [f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]


def _date(sec: int) -> str:
    return _DAYS[sec // DAY]


def _ts(sec: int) -> str:
    # the two tables turn the hottest formatting of the generator into two look-ups
    return _DAYS[sec // DAY] + _CLOCK[sec % DAY]


def _t(sec: int | None) -> str:
    """A nullable timestamp as JSON."""
    return "null" if sec is None else f'"{_ts(sec)}"'


def _s(text: str | None) -> str:
    """A nullable string as JSON."""
    return "null" if text is None else encode_basestring(text)


def _n(value: int | None) -> str:
    return "null" if value is None else str(value)


def _link(path: str) -> str:
    return f'{{"links":{{"self":"{BASE}/{path}"}}}}'


_money_text: dict[int, str] = {}


def _money(cents: int) -> str:
    """Cents as Cliniko prints decimals: "50.0", "45.5", "81.82". Prices repeat, so the text is cached."""
    text = _money_text.get(cents)
    if text is None:
        sign = "-" if cents < 0 else ""
        whole, frac = divmod(abs(cents), 100)
        if frac == 0:
            text = f"{sign}{whole}.0"
        elif frac % 10 == 0:
            text = f"{sign}{whole}.{frac // 10}"
        else:
            text = f"{sign}{whole}.{frac:02d}"
        _money_text[cents] = text
    return text


def _percent(pct: int) -> str:
    return f"{pct}.0"


class _Zone:
    """A business's time zone: the UTC second of local midnight per local day, cached."""

    def __init__(self, iana: str) -> None:
        self._tz = ZoneInfo(iana)
        self._offsets: dict[int, int] = {}

    def offset(self, day: int) -> int:
        off = self._offsets.get(day)
        if off is None:
            local = datetime.fromtimestamp(day * DAY + DAY // 2, UTC).astimezone(self._tz)
            off = self._offsets[day] = int(local.utcoffset().total_seconds())  # type: ignore[union-attr]
        return off

    def at(self, day: int, minute: int) -> int:
        """UTC seconds of local `day` (days since 1970 in local calendar) at `minute` past local midnight."""
        return day * DAY - self.offset(day) + minute * 60

    def local_date(self, sec: int) -> str:
        return _date(sec + self.offset(sec // DAY))


class _Rng(random.Random):
    """random.Random with cheaper integer draws: one float each (the generator makes millions of them)."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:  # type: ignore[override]
        if stop is None:
            return int(self.random() * start)
        return start + step * int(self.random() * ((stop - start + step - 1) // step))

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]


# --- ids -------------------------------------------------------------------------------------------------------


class _IdMint:
    """Deterministic, unique, unordered ids: a bijective scramble of one counter (salted by the seed)."""

    _M26 = (1 << 26) - 1
    _M56 = (1 << 56) - 1

    def __init__(self, seed: int) -> None:
        salt = random.Random(f"ids-{seed}").getrandbits(64)
        self._salt26 = salt & self._M26
        self._salt56 = (salt >> 8) & self._M56
        self._n = 0

    def __call__(self, created: int) -> str:
        self._n += 1
        if created < LEGACY_ID_CUTOFF:
            x = self._n ^ self._salt26
            x = (x * 0x2C1B3C6D) & self._M26
            x ^= x >> 13
            x = (x * 0x297A2D39) & self._M26
            x ^= x >> 11
            return str(1_000_000 + x)  # < 1e8, like the accounts that predate 2022
        x = (self._n * 0x9E3779B97F4A7C15 + self._salt56) & self._M56
        x ^= x >> 29
        x = (x * 0xBF58476D1CE4E5B9) & self._M56
        return str(800_000_000_000_000_000 + (x ^ (x >> 32)))


# --- the writer ------------------------------------------------------------------------------------------------

_INSERT_BLOB = "INSERT INTO blobs (attachment_id, size, content_type, seed) VALUES (?, ?, ?, ?)"
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


# --- the practice: what every patient refers to ----------------------------------------------------------------


class _Business(NamedTuple):
    id: str
    link: str
    name: str
    zone: _Zone
    sms_from: str


class _Practitioner(NamedTuple):
    id: str
    link: str
    label: str
    categories: tuple[str, ...]
    businesses: tuple[int, ...]
    start: int  # first day they see patients
    end: int | None  # last day (inactive practitioners)
    user_id: str


class _ApptType(NamedTuple):
    id: str
    link: str
    name: str
    category: str
    minutes: int
    max_attendees: int
    price: int
    item_id: str
    item_link: str
    code: str
    telehealth: bool
    templates: tuple[int, int]


class _Product(NamedTuple):
    id: str
    link: str
    name: str
    price_ex: int
    code: str


class _Contact(NamedTuple):
    id: str
    link: str
    name: str
    email: str


class _Field(NamedTuple):
    section: int
    name: str
    type: str
    token: str
    options: tuple[tuple[str, str], ...]  # (name, token)
    archived: bool


class _GroupSlot(NamedTuple):
    type: int  # index into the appointment types
    business: int
    weekday: int  # 0 = Monday
    minute: int  # local minute of the day


class _Session:
    """A group class, aggregated while its attendees are generated; written at the end."""

    __slots__ = ("booked", "created", "end", "id", "patient_ids", "practitioner", "slot", "start", "updated")

    def __init__(self, sid: str, slot: int, start: int, end: int, practitioner: int, created: int) -> None:
        self.id = sid
        self.slot = slot
        self.start = start
        self.end = end
        self.practitioner = practitioner
        self.created = created
        self.updated = created
        self.booked = 0
        self.patient_ids: list[str] = []


class _Visit(NamedTuple):
    """One planned appointment of a patient."""

    start: int
    type: int
    practitioner: int
    business: int
    session: _Session | None


# --- the generator ---------------------------------------------------------------------------------------------

_EMAIL_FLAGS = ("missing_email", "invalid_emails", "duplicate_emails", "nutshell_email_collisions")
_NAME_FLAGS = ("unicode_names", "rtl_names", "missing_first_name")
_STATUS_FLAGS = ("archived_patients", "merged_patients")
_CONTENT_FLAGS = ("long_notes", "large_files", "draft_treatment_notes")

# Which resource(s) the ids of each hard-case list belong to (ids are unique across resources).
HARD_CASE_RESOURCES: dict[str, tuple[str, ...]] = {
    "archived_patients": ("patients",),
    "merged_patients": ("patients",),
    "unicode_names": ("patients",),
    "rtl_names": ("patients",),
    "missing_first_name": ("patients",),
    "missing_email": ("patients",),
    "invalid_emails": ("patients",),
    "duplicate_emails": ("patients",),
    "nutshell_email_collisions": ("patients",),
    "long_notes": ("patients", "treatment_notes"),
    "large_files": ("patient_attachments",),
    "inactive_practitioners": ("practitioners",),
    "practitioner_email_mismatch": ("practitioners",),
    "practitioner_no_user": ("practitioners",),
    "archived_appointments": ("individual_appointments",),
    "cancelled_appointments": ("individual_appointments",),
    "no_show_appointments": ("individual_appointments",),
    "future_appointments": ("individual_appointments",),
    "group_appointments": ("group_appointments",),
    "cancelled_attendees": ("attendees",),
    "draft_treatment_notes": ("treatment_notes",),
    "unprocessed_attachments": ("patient_attachments",),
    "archived_contacts": ("contacts",),
}


class _Generator:
    def __init__(self, sink: _Sink, patients: int, seed: int, shard: str, ref: int) -> None:
        self.sink = sink
        self.patients = patients
        self.seed = seed
        self.shard = shard
        self.ref = ref
        self.rng = _Rng(seed)
        self.mint = _IdMint(seed)
        self.open = ref - HISTORY_DAYS * DAY
        name, slug = data.CLINIC_NAMES[seed % len(data.CLINIC_NAMES)]
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

    def hard_cases(self) -> dict[str, list[str]]:
        cases = {k: list(v) for k, v in self.hard.items()}
        cases["duplicate_emails"] = [pid for ids in self.duplicates.values() if len(ids) > 1 for pid in ids]
        return cases

    # -- orchestration --

    def run(self) -> None:
        self._tokens_rng = random.Random(f"tokens-{self.seed}")
        self._build_practice()
        self._plan_hard_cases()
        self.last_active: str | None = None  # an earlier patient that is neither archived nor merged
        self.last_plain: tuple[str, str] | None = None  # an earlier patient (id, e-mail) with an ordinary e-mail
        for i in range(self.patients):
            self._patient(i)
        self._write_sessions()
        self._write_singletons()
        self._write_meta()

    # -- the practice --

    def _build_practice(self) -> None:
        rng = self.rng
        scale = self.patients
        n_business = 2 if scale < 1000 else 3 if scale < 10_000 else 4
        n_types = 6 if scale < 1000 else 8 if scale < 10_000 else 12
        n_active = min(12, 6 + round(2 * math.log10(max(scale, 100) / 100)))
        n_inactive = 1 if scale < 1000 else 2
        setup = self.open - 30 * DAY  # the account was set up a month before the first patient

        # taxes, concession types, billable items, products
        self.gst = self._tax("GST", 10, setup)
        self.gst_free = self._tax("GST-Free", 0, setup)
        self.concessions: list[tuple[str, str, str, int]] = []
        for name, pct in data.CONCESSION_TYPES:
            cid = self.mint(setup)
            ts = _ts(setup)
            body = (
                f'{{"id":"{cid}","created_at":"{ts}","updated_at":"{ts}","name":{_s(name)},'
                f'"links":{{"self":"{BASE}/concession_types/{cid}"}}}}'
            )
            self.sink.record("concession_types", cid, ts, ts, None, None, None, "{}", body)
            self.concessions.append((cid, _link(f"concession_types/{cid}"), name, pct))
        self.templates = self._treatment_note_templates(setup)
        # Notes are drawn from a pool of filled-in variants per template: writing each one afresh costs more
        # than everything else a visit writes, and nothing downstream needs every note to differ.
        self.note_pool = [
            (
                [_note_content(rng, sections, False, 0) for _ in range(48)],
                [_note_content(rng, sections, True, 0) for _ in range(8)],
            )
            for _, _, _, sections in self.templates
        ]
        self.types: list[_ApptType] = []
        for spec in data.APPOINTMENT_TYPES[:n_types]:
            self.types.append(self._appointment_type(spec, setup))
        self.other_items = [
            self._billable_item(n, kind, price, code, setup) for n, kind, price, code in data.OTHER_SERVICES
        ]
        self.products = [self._product(spec, setup) for spec in data.PRODUCTS]

        # businesses and people
        self.businesses: list[_Business] = []
        for spec in data.BUSINESSES[:n_business]:
            self.businesses.append(self._business(spec, setup))
        self._users_and_practitioners(n_active, n_inactive, setup)
        self._contacts(setup)
        self._unavailable_blocks()
        self._custom_field_definitions()
        self.referral_types = [(self.mint(setup), name, kind) for name, kind in data.REFERRAL_SOURCE_TYPES]

        self._working: dict[tuple[int, str | None], list[int]] = {}  # practitioners at work, per day and category
        individual = [t for t, at in enumerate(self.types) if at.max_attendees == 1]
        self.own_types = [
            [t for t in individual if self.types[t].category in p.categories] or individual for p in self.practitioners
        ]

        # group classes: weekly slots per group type, more of them in bigger clinics
        per_type = 1 + scale // 8000
        self.group_slots: list[_GroupSlot] = []
        for t, atype in enumerate(self.types):
            if atype.max_attendees <= 1:
                continue
            for k in range(per_type):
                self.group_slots.append(
                    _GroupSlot(t, k % len(self.businesses), (t + 2 * k) % 6, 7 * 60 + ((t * 5 + k * 3) % 11) * 60)
                )

    def _tax(self, name: str, rate: int, at: int) -> tuple[str, str, str, int]:
        tid = self.mint(at)
        ts = _ts(at)
        body = (
            f'{{"id":"{tid}","created_at":"{ts}","updated_at":"{ts}","name":{_s(name)},'
            f'"rate":{rate}.0,"amount":{rate}.0,"links":{{"self":"{BASE}/taxes/{tid}"}}}}'
        )
        self.sink.record("taxes", tid, ts, ts, None, None, None, "{}", body)
        return tid, _link(f"taxes/{tid}"), name, rate

    def _billable_item(self, name: str, kind: str, price: int, code: str, at: int) -> tuple[str, str, str, int, str]:
        bid = self.mint(at)
        ts = _ts(at)
        tax_id, tax_link = self.gst_free[0], self.gst_free[1]
        body = (
            f'{{"id":"{bid}","created_at":"{ts}","updated_at":"{ts}","archived_at":null,'
            f'"item_code":{_s(code)},"item_type":"{kind}","name":{_s(name)},"price":"{_money(price)}",'
            f'"tax":{tax_link},"links":{{"self":"{BASE}/billable_items/{bid}"}}}}'
        )
        self.sink.record("billable_items", bid, ts, ts, None, None, None, f'{{"tax_id":"{tax_id}"}}', body)
        return bid, _link(f"billable_items/{bid}"), name, price, code

    def _product(self, spec: tuple[str, int, int, str], at: int) -> _Product:
        name, price_incl, cost, code = spec
        rng = self.rng
        pid = self.mint(at)
        created = _ts(at)
        updated = _ts(at + rng.randint(0, 400) * DAY)
        price_ex = round(price_incl / 1.1)
        supplier = data.SUPPLIERS[len(name) % len(data.SUPPLIERS)]
        body = (
            f'{{"id":"{pid}","created_at":"{created}","updated_at":"{updated}","archived_at":null,'
            f'"name":{_s(name)},"item_code":"{code}","serial_number":null,"notes":null,'
            f'"cost_price":"{_money(cost)}","price_ex_tax":"{_money(price_ex)}",'
            f'"price_including_tax":"{_money(price_incl)}","stock_level":{rng.randint(-2, 60)},'
            f'"product_supplier_name":{_s(supplier)},"tax":{self.gst[1]},'
            f'"links":{{"self":"{BASE}/products/{pid}"}}}}'
        )
        self.sink.record("products", pid, created, updated, None, None, None, f'{{"tax_id":"{self.gst[0]}"}}', body)
        return _Product(pid, _link(f"products/{pid}"), name, price_ex, code)

    def _treatment_note_templates(self, at: int) -> list[tuple[str, str, str, tuple[Any, ...]]]:
        out = []
        for k, (name, sections) in enumerate(data.TREATMENT_NOTE_TEMPLATES):
            tid = self.mint(at)
            archived = k == len(data.TREATMENT_NOTE_TEMPLATES) - 1  # the old form, kept for old notes
            updated = at + (400 * DAY if archived else 0)
            content = {
                "sections": [
                    {"name": sname, "questions": [_template_question(q, t, opts) for q, t, opts in questions]}
                    for sname, questions in sections
                ]
            }
            print_settings = {
                "include_patient_address": True,
                "include_patient_dob": True,
                "include_patient_medicare": False,
                "include_patient_occupation": k == 0,
                "include_patient_reference_number": False,
                "title": name,
            }
            body = (
                f'{{"id":"{tid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}",'
                f'"archived_at":{_t(updated if archived else None)},"deleted_at":null,"name":{_s(name)},'
                f'"content":{_encode(content)},"print_settings":{_encode(print_settings)},'
                f'"links":{{"self":"{BASE}/treatment_note_templates/{tid}"}}}}'
            )
            self.sink.record(
                "treatment_note_templates",
                tid,
                _ts(at),
                _ts(updated),
                _ts(updated) if archived else None,
                None,
                None,
                "{}",
                body,
            )
            out.append((tid, _link(f"treatment_note_templates/{tid}"), name, sections))
        return out

    def _appointment_type(self, spec: tuple[Any, ...], at: int) -> _ApptType:
        name, category, minutes, max_att, color, price, code, telehealth = spec
        item_id, item_link, *_ = self._billable_item(name, "Service", price, code, at)
        tid = self.mint(at)
        first, later = data.TEMPLATE_FOR_CATEGORY[category]
        template_id, template_link = self.templates[first][0], self.templates[first][1]
        ts = _ts(at)
        online = max_att == 1 and not telehealth
        body = (
            f'{{"id":"{tid}","created_at":"{ts}","updated_at":"{ts}","archived_at":null,"name":{_s(name)},'
            f'"description":null,"category":{_s(category)},"color":"{color}","duration_in_minutes":{minutes},'
            f'"max_attendees":{max_att},"show_in_online_bookings":{_B[online]},"telehealth_enabled":{_B[telehealth]},'
            f'"online_payments_enabled":false,"online_payments_mode":null,"deposit_price":null,'
            f'"add_deposit_to_account_credit":null,"online_bookings_lead_time_hours":{2 if online else "null"},'
            f'"appointment_confirmation_template_ids":[],"appointment_reminder_template_ids":[],'
            f'"billable_item":{item_link},"treatment_note_template":{template_link},'
            f'"practitioners":{{"links":{{"self":"{BASE}/appointment_types/{tid}/practitioners"}}}},'
            f'"links":{{"self":"{BASE}/appointment_types/{tid}"}}}}'
        )
        fk = f'{{"billable_item_id":"{item_id}","treatment_note_template_id":"{template_id}"}}'
        self.sink.record("appointment_types", tid, ts, ts, None, None, None, fk, body)
        return _ApptType(
            tid,
            _link(f"appointment_types/{tid}"),
            name,
            category,
            minutes,
            max_att,
            price,
            item_id,
            item_link,
            code,
            telehealth,
            (first, later),
        )

    def _business(self, spec: tuple[str, ...], at: int) -> _Business:
        _, label, iana, state, city, post_code, country, cc, address = spec
        name = self.clinic_name if not self.businesses else f"{self.clinic_name} {city}"
        bid = self.mint(at)
        created = _ts(at)
        updated = _ts(at + 200 * DAY)
        type_ids = "[" + ",".join(f'"{t.id}"' for t in self.types) + "]"
        abn = self.rng.randint(10**10, 10**11 - 1)
        phone = f"(0{3 + len(self.businesses)}) 9{self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}"
        body = (
            f'{{"id":"{bid}","created_at":"{created}","updated_at":"{updated}","archived_at":null,"deleted_at":null,'
            f'"business_name":{_s(name)},"display_name":null,"label":{_s(name)},"address_1":{_s(address)},'
            f'"address_2":null,"city":{_s(city)},"state":{_s(state)},"post_code":"{post_code}",'
            f'"country":{_s(country)},"country_code":"{cc}","contact_information":{_s("Phone: " + phone)},'
            f'"email_reply_to":"{self.email_from}","website_address":"https://{self.domain}",'
            f'"business_registration_name":"ABN","business_registration_value":"{abn}",'
            f'"additional_information":null,"additional_invoice_information":"Payment due within 14 days",'
            f'"show_in_online_bookings":true,"appointment_reminders_enabled":true,"appointment_type_ids":{type_ids},'
            f'"time_zone":"{label}","time_zone_identifier":"{iana}",'
            f'"practitioners":{{"links":{{"self":"{BASE}/businesses/{bid}/practitioners"}}}},'
            f'"appointments":{{"links":{{"self":"{BASE}/businesses/{bid}/appointments"}}}},'
            f'"links":{{"self":"{BASE}/businesses/{bid}"}}}}'
        )
        fk = f'{{"appointment_type_ids":{type_ids}}}'
        self.sink.record("businesses", bid, created, updated, None, None, None, fk, body)
        return _Business(bid, _link(f"businesses/{bid}"), name, _Zone(iana), self.sms_sender)

    def _user(
        self, title: str, first: str, last: str, email: str, role: str, active: bool, at: int, updated: int
    ) -> str:
        uid = self.mint(at)
        label, iana = data.BUSINESSES[0][1], data.BUSINESSES[0][2]
        phone = f"04{self.rng.randint(10, 99)} {self.rng.randint(100, 999)} {self.rng.randint(100, 999)}"
        phones = f'[{{"number":"{phone}","normalized_number":"+61{phone[1:].replace(" ", "")}","phone_type":"Mobile"}}]'
        body = (
            f'{{"id":"{uid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title)},'
            f'"first_name":{_s(first)},"last_name":{_s(last)},"email":{_s(email)},"phone_numbers":{phones},'
            f'"role":"{role}","active":{_B[active]},"user_active":{_B[active]},"time_zone":"{label}",'
            f'"time_zone_identifier":"{iana}","new_ui_enabled":true,"privacy_policy_accepted":null,'
            f'"links":{{"self":"{BASE}/users/{uid}"}}}}'
        )
        self.sink.record("users", uid, _ts(at), _ts(updated), None, None, None, "{}", body)
        return uid

    def _users_and_practitioners(self, n_active: int, n_inactive: int, setup: int) -> None:
        rng = self.rng
        domain = self.domain
        self.admin_user_id = ""
        self.staff_user_ids: list[str] = []
        for title, first, last, role, local in data.STAFF:
            uid = self._user(title, first, last, f"{local}@{domain}", role, True, setup, setup + 90 * DAY)
            self.staff_user_ids.append(uid)
            if role == "administrator":
                self.admin_user_id = uid
                self.admin_name = (first, last)
        self.nutshell_users.append(
            {
                "first_name": self.admin_name[0],
                "last_name": self.admin_name[1],
                "emails": [f"admin@{domain}"],
                "is_administrator": True,
                "is_enabled": True,
            }
        )

        self.practitioners: list[_Practitioner] = []
        specs = [(spec, True) for spec in data.PRACTITIONERS[:n_active]]
        specs += [(spec, False) for spec in data.INACTIVE_PRACTITIONERS[:n_inactive]]
        for k, ((title, first, last, discipline), active) in enumerate(specs):
            # Most started when the clinic opened; a few joined later; the inactive ones left a while ago.
            start = self.open if k < 4 or not active else self.open + rng.randint(200, 1200) * DAY
            end = None if active else self.ref - rng.randint(200, 500) * DAY
            at = start - 14 * DAY
            email = f"{_ascii(first)}.{_ascii(last)}@{domain}".lower().replace("'", "")
            user_updated = end if end is not None else at + 30 * DAY
            uid = self._user(title, first, last, email, "practitioner", active, at, user_updated)
            pid = self.mint(at)
            categories = data.DISCIPLINES[discipline]
            own_types = [t for t in self.types if t.category in categories and t.max_attendees == 1]
            default_type = own_types[0] if own_types else self.types[0]
            label = f"{title} {first} {last}".strip()
            businesses = (k % len(self.businesses),) if k % 3 else (0, min(1, len(self.businesses) - 1))
            updated = user_updated
            body = (
                f'{{"id":"{pid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title or None)},'
                f'"first_name":{_s(first)},"last_name":{_s(last)},"display_name":null,"label":{_s(label)},'
                f'"designation":{_s(discipline)},"description":null,"show_in_online_bookings":{_B[active]},'
                f'"active":{_B[active]},"user":{_link(f"users/{uid}")},'
                f'"default_appointment_type":{default_type.link},'
                f'"practitioner_reference_numbers":{{"links":{{"self":"{BASE}/practitioners/{pid}/practitioner_reference_numbers"}}}},'
                f'"appointment_types":{{"links":{{"self":"{BASE}/practitioners/{pid}/appointment_types"}}}},'
                f'"appointments":{{"links":{{"self":"{BASE}/practitioners/{pid}/appointments"}}}},'
                f'"invoices":{{"links":{{"self":"{BASE}/practitioners/{pid}/invoices"}}}},'
                f'"links":{{"self":"{BASE}/practitioners/{pid}"}}}}'
            )
            fk = f'{{"user_id":"{uid}","default_appointment_type_id":"{default_type.id}"}}'
            self.sink.record("practitioners", pid, _ts(at), _ts(updated), None, None, None, fk, body)
            self.practitioners.append(
                _Practitioner(
                    pid,
                    _link(f"practitioners/{pid}"),
                    label,
                    categories,
                    businesses,
                    start // DAY,
                    None if end is None else end // DAY,
                    uid,
                )
            )
            self._nutshell_user_for(k, active, pid, first, last, email)
        for first, last, local in data.NUTSHELL_ONLY_USERS:
            self.nutshell_users.append(
                {
                    "first_name": first,
                    "last_name": last,
                    "emails": [f"{local}@{domain}"],
                    "is_administrator": False,
                    "is_enabled": True,
                }
            )

    def _nutshell_user_for(self, k: int, active: bool, pid: str, first: str, last: str, email: str) -> None:
        """The practitioner's future Nutshell user: the matching and mismatching cases the wizard must handle."""
        if not active:
            self.hard["inactive_practitioners"].append(pid)
            if len(self.hard["inactive_practitioners"]) == 1:
                self.hard["practitioner_no_user"].append(pid)  # left the clinic before the CRM arrived
                return
            user = {"first_name": first, "last_name": last, "emails": [email], "is_administrator": False}
            self.nutshell_users.append({**user, "is_enabled": False})
            return
        if k < len(data.NUTSHELL_ALIASES):
            n_first, n_last, local, kind = data.NUTSHELL_ALIASES[k]
            domain = "mail.example.com" if kind == "personal" else self.domain
            self.hard["practitioner_email_mismatch"].append(pid)
            self.nutshell_users.append(
                {
                    "first_name": n_first,
                    "last_name": n_last,
                    "emails": [f"{local}@{domain}"],
                    "is_administrator": False,
                    "is_enabled": True,
                }
            )
            return
        if k == len(data.NUTSHELL_ALIASES):
            self.hard["practitioner_no_user"].append(pid)  # not invited to Nutshell yet
            return
        # Exact matches, written the way people type them: some in another case, some with stray spaces.
        variant = (k - len(data.NUTSHELL_ALIASES) - 1) % 3
        shown = (
            f" {email} "
            if variant == 0
            else f"{first}.{last}@{self.domain}".replace("'", "")
            if variant == 1
            else email
        )
        self.nutshell_users.append(
            {
                "first_name": first,
                "last_name": last,
                "emails": [shown],
                "is_administrator": k == len(data.NUTSHELL_ALIASES) + 1,
                "is_enabled": True,
            }
        )

    def _contacts(self, setup: int) -> None:
        rng = self.rng
        self.insurers: list[_Contact] = []
        self.doctors: list[_Contact] = []
        self.others: list[_Contact] = []
        # Unconfirmed (reference §5.10): type_code 2 = "3rd Party Payer" is inferred by elimination; we use it.
        for company, local in data.INSURERS:
            slug = "".join(ch for ch in company.lower() if ch.isalnum())[:16]
            email = f"{local}@{slug}.example.com"
            c = self._contact(setup, 2, "", "", company, email, None, "3rd Party Payer")
            self.insurers.append(c)
        n_doctors = 8 + self.patients // 300
        for k in range(n_doctors):
            sex = "Female" if k % 2 else "Male"
            first = rng.choice(data.FIRST_NAMES[sex])
            last = rng.choice(data.LAST_NAMES)
            centre = data.MEDICAL_CENTRES[k % len(data.MEDICAL_CENTRES)]
            email = f"dr.{first}.{last}{k}@{centre.split()[0].lower()}medical.example.com".lower()
            kind = "specialist" if k % 5 == 4 else "general_practitioner"
            at = self.open + rng.randint(-30, HISTORY_DAYS - 60) * DAY
            archived = k == 7  # a retired GP: archived, yet older patients still point at them
            c = self._contact(at, 1, first, last, centre, email, kind, "Doctor", archived=archived)
            if archived:
                self.hard["archived_contacts"].append(c.id)
            self.doctors.append(c)
        for k in range(3 + self.patients // 2000):
            first = rng.choice(data.FIRST_NAMES["Other"])
            last = rng.choice(data.LAST_NAMES)
            role = data.STANDARD_CONTACT_ROLES[k % len(data.STANDARD_CONTACT_ROLES)]
            email = f"{first}.{last}{k}@services.example.org".lower()
            at = self.open + rng.randint(0, HISTORY_DAYS - 30) * DAY
            self.others.append(self._contact(at, 0, first, last, None, email, None, "Standard", occupation=role))

    def _contact(
        self,
        at: int,
        type_code: int,
        first: str,
        last: str,
        company: str | None,
        email: str,
        doctor_type: str | None,
        type_name: str,
        *,
        archived: bool = False,
        occupation: str | None = None,
    ) -> _Contact:
        rng = self.rng
        cid = self.mint(at)
        updated = min(self.ref, at + rng.randint(0, 300) * DAY)
        archived_at = updated if archived else None
        suburb, post_code = rng.choice(data.SUBURBS)
        number = f"03 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        phones = (
            f'[{{"number":"{number}","normalized_number":"+613{number[3:].replace(" ", "")}","phone_type":"Work"}}]'
        )
        title = "Dr" if type_code == 1 else None
        provider = f"{rng.randint(100000, 999999)}{rng.choice('ABCDEFHJKLTWXY')}" if type_code == 1 else ""
        body = (
            f'{{"id":"{cid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","title":{_s(title)},'
            f'"first_name":{_s(first)},"last_name":{_s(last)},"preferred_name":"","company_name":{_s(company or "")},'
            f'"occupation":{_s(occupation or "")},"email":{_s(email)},"phone_numbers":{phones},'
            f'"address_1":"{rng.randint(1, 400)} {rng.choice(data.STREETS)}","address_2":"","address_3":"",'
            f'"city":{_s(suburb)},"state":"Victoria","post_code":"{post_code}","country":"Australia","country_code":"AU",'
            f'"notes":"","provider_number":{_s(provider)},"doctor_type":{_s(doctor_type)},"type":{_s(type_name)},'
            f'"type_code":{type_code},"archived_at":{_t(archived_at)},"deleted_at":null,'
            f'"links":{{"self":"{BASE}/contacts/{cid}"}}}}'
        )
        self.sink.record(
            "contacts", cid, _ts(at), _ts(updated), _ts(archived_at) if archived_at else None, None, None, "{}", body
        )
        name = company if type_code == 2 else f"{first} {last}".strip()
        return _Contact(cid, _link(f"contacts/{cid}"), name or "", email)

    def _unavailable_blocks(self) -> None:
        """Leave and meetings; a few weekly series (repeated_from) and one deleted block (deleted_at)."""
        rng = self.rng
        n = 4 + self.patients // 500
        deleted_done = False
        for k in range(n):
            prac = self.practitioners[k % len(self.practitioners)]
            b = self.businesses[prac.businesses[0]]
            last_day = prac.end if prac.end is not None else self.ref // DAY + 60
            day = rng.randint(prac.start + 10, last_day - 1)
            series = k % 4 == 1
            repeats = rng.randint(2, 4) if series else 1
            minutes = rng.choice((60, 120, 240, 480))
            minute = 8 * 60 if minutes == 480 else rng.randint(8, 15) * 60
            notes = rng.choice(("Annual leave", "Team meeting", "Professional development", "Admin time"))
            rule = (
                f'{{"repeat_type":"Weekly","number_of_repeats":{repeats},"repeating_interval":1}}' if series else "null"
            )
            head: str | None = None
            for r in range(repeats):
                start = b.zone.at(day + 7 * r, minute)
                created = start - rng.randint(7, 60) * DAY
                if created > self.ref:
                    break
                bid = self.mint(created)
                deleted = None
                if not deleted_done and not series and start < self.ref:
                    deleted = created + DAY
                    deleted_done = True
                updated = deleted or created
                repeats_link = (
                    f'{{"links":{{"self":"{BASE}/unavailable_blocks?q%5B%5D=repeated_from_id%3A%3D{bid}"}}}}'
                    if series and r == 0
                    else "null"
                )
                rf = f'"repeated_from":{_link(f"unavailable_blocks/{head}")},' if head else ""
                body = (
                    f'{{"id":"{bid}","created_at":"{_ts(created)}","updated_at":"{_ts(updated)}",'
                    f'"starts_at":"{_ts(start)}","ends_at":"{_ts(start + minutes * 60)}","notes":{_s(notes)},'
                    f'"repeat_rule":{rule},"archived_at":null,"deleted_at":{_t(deleted)},'
                    f'"business":{b.link},"practitioner":{prac.link},{rf}"repeats":{repeats_link},'
                    f'"conflicts":{{"links":{{"self":"{BASE}/unavailable_blocks/{bid}/conflicts"}}}},'
                    f'"links":{{"self":"{BASE}/unavailable_blocks/{bid}"}}}}'
                )
                fk = f'{{"business_id":"{b.id}","practitioner_id":"{prac.id}"'
                fk += f',"repeated_from_id":"{head}"}}' if head else "}"
                self.sink.record(
                    "unavailable_blocks",
                    bid,
                    _ts(created),
                    _ts(updated),
                    None,
                    None,
                    _ts(deleted) if deleted else None,
                    fk,
                    body,
                )
                if series and head is None:
                    head = bid

    def _token(self) -> str:
        return str(uuid.UUID(int=self._tokens_rng.getrandbits(128), version=4))

    def _custom_field_definitions(self) -> None:
        """Settings' patient custom fields: "Insurance" (text fields) and "Intake" (one of each other type)."""
        sections = [("Insurance", self._token()), ("Intake", self._token())]
        specs: list[tuple[int, str, str, tuple[str, ...], bool]] = [
            (0, "Policy number", "text", (), False),
            (0, "Group number", "text", (), False),
            (0, "Insurer", "text", (), False),
            (1, "How did you hear about us?", "radiobuttons", ("Google", "Friend", "Doctor", "Walked past"), False),
            (1, "Areas of concern", "checkboxes", ("Neck", "Back", "Shoulder", "Knee", "Ankle"), False),
            (1, "Date of injury", "date", (), False),
            (1, "Goals", "paragraph", (), False),
            (1, "Previous clinic", "text", (), True),
        ]
        self.sections = sections
        self.fields = [
            _Field(sec, name, ftype, self._token(), tuple((o, self._token()) for o in opts), archived)
            for sec, name, ftype, opts, archived in specs
        ]
        self.field_heads = {
            f.token: f'{{"name":{_s(f.name)},"type":"{f.type}","token":"{f.token}"' for f in self.fields
        }
        self.option_text = {
            t: (f'{{"name":{_s(n)},"token":"{t}"}}', f'{{"name":{_s(n)},"token":"{t}","selected":true}}')
            for f in self.fields
            for n, t in f.options
        }

    # -- the hard-case plan --

    def _plan_hard_cases(self) -> None:
        """Which patients carry which hard case: a few always, plus ~0.1% of patients per case.

        Cases of one family exclude each other (a patient has at most one e-mail case, one name case, one
        status case); patient 0 is always ordinary, so merges and duplicates have an earlier patient to use.
        """
        rng = random.Random(f"hard-cases-{self.seed}")
        self.flags: dict[int, set[str]] = {}
        for family in (_EMAIL_FLAGS, _NAME_FLAGS, _STATUS_FLAGS, _CONTENT_FLAGS):
            counts = [self._planted(flag) for flag in family]
            exclusive = family is not _CONTENT_FLAGS
            if exclusive:
                picks = rng.sample(range(1, self.patients), sum(counts))
                for flag, count in zip(family, counts, strict=True):
                    for i in picks[:count]:
                        self.flags.setdefault(i, set()).add(flag)
                    picks = picks[count:]
            else:
                for flag, count in zip(family, counts, strict=True):
                    for i in rng.sample(range(1, self.patients), count):
                        self.flags.setdefault(i, set()).add(flag)

    def _planted(self, flag: str) -> int:
        fixed = 1 if flag == "large_files" else 2
        return fixed + round(self.patients * 0.001)

    # -- patients --

    def _patient(self, i: int) -> None:
        rng = self.rng
        ref = self.ref
        flags = self.flags.get(i, ())
        showcase = i == 0  # patient 0 carries one of everything, so every kind exists at any size
        created = self.open + int((ref - 2 * DAY - self.open) * rng.random() ** 0.7)
        if showcase:
            created = ref - 80 * DAY - rng.randint(0, DAY)  # ten visits behind, a few ahead
        elif flags:
            created = min(created, ref - 60 * DAY)  # room for the past visits a planted case needs
        pid = self.mint(created)
        plink = _link(f"patients/{pid}")

        # who they are
        sex = rng.choice(data.SEXES)
        first = rng.choice(data.FIRST_NAMES[sex])
        last = rng.choice(data.LAST_NAMES)
        stem = f"{first}.{last}".lower()
        if "unicode_names" in flags:
            first, last, stem = data.UNICODE_NAMES[len(self.hard["unicode_names"]) % len(data.UNICODE_NAMES)]
            self.hard["unicode_names"].append(pid)
        elif "rtl_names" in flags:
            first, last, stem = data.RTL_NAMES[len(self.hard["rtl_names"]) % len(data.RTL_NAMES)]
            self.hard["rtl_names"].append(pid)
        elif "missing_first_name" in flags:
            first = ""
            self.hard["missing_first_name"].append(pid)
        label = f"{first} {last}".strip()
        email: str | None = f"{stem}{i}@{data.PATIENT_EMAIL_DOMAINS[i % len(data.PATIENT_EMAIL_DOMAINS)]}"
        if "missing_email" in flags:
            email = None
            self.hard["missing_email"].append(pid)
        elif "invalid_emails" in flags:
            email = data.INVALID_EMAILS[len(self.hard["invalid_emails"]) % len(data.INVALID_EMAILS)].format(n=i)
            self.hard["invalid_emails"].append(pid)
        elif "duplicate_emails" in flags and self.last_plain is not None:
            other_id, email = self.last_plain  # a family sharing one address
            self.duplicates.setdefault(email, [other_id]).append(pid)
        elif "nutshell_email_collisions" in flags:
            self.hard["nutshell_email_collisions"].append(pid)
            shown = email if len(self.hard["nutshell_email_collisions"]) % 3 else email.capitalize()
            number = f"+614{rng.randint(10_000_000, 99_999_999)}"
            self.nutshell_people.append({"name": label or last, "emails": [shown], "phones": [number]})
        else:
            self.last_plain = (pid, email)

        x = int(rng.random() * 90_000_000) + 10_000_000
        mobile = f"04{x // 1_000_000:02d} {x // 1000 % 1000:03d} {x % 1000:03d}"
        phones = [("Mobile", mobile, "+61" + mobile[1:].replace(" ", ""))] if rng.random() < 0.92 or showcase else []
        if rng.random() < 0.25 or showcase:
            home = f"(03) 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Home", home, "+613" + home[5:].replace(" ", "")))
        if rng.random() < 0.08 or showcase:
            work = f"03 8{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Work", work, "+613" + work[3:].replace(" ", "")))
        if rng.random() < 0.015 or showcase:
            fax = f"03 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            phones.append(("Fax", fax, "+613" + fax[3:].replace(" ", "")))
        if rng.random() < 0.01 or showcase:
            other = f"+44 7700 900{rng.randint(100, 999)}"
            phones.append(("Other", other, other.replace(" ", "")))
        sms_ok = bool(phones) and phones[0][0] == "Mobile"
        u = rng.random()
        reminder = "SMS & Email" if showcase or u < 0.5 else "SMS" if u < 0.75 else "Email" if u < 0.9 else "None"
        if email is None and "Email" in reminder:
            reminder = "SMS" if sms_ok else "None"
        if not sms_ok and "SMS" in reminder:
            reminder = "Email" if email else "None"

        # the practice relationship
        concession = self.concessions[rng.randrange(len(self.concessions))] if rng.random() < 0.1 else None
        doctor = self.doctors[rng.randrange(len(self.doctors))] if rng.random() < 0.25 or showcase else None
        insured = rng.random() < 0.4 or showcase
        insurer = self.insurers[rng.randrange(len(self.insurers))] if insured else None
        third_party = insurer is not None and (rng.random() < 0.3 or showcase)
        case_id: str | None = None
        if rng.random() < 0.02 or showcase:
            case_id = self.mint(created + 600)
        day0 = created // DAY
        prac_idx = self._pick_practitioner(day0, None)
        classes = (rng.random() < 0.12 or showcase) and bool(self.group_slots)

        # the appointments
        status = "merged" if "merged_patients" in flags else "archived" if "archived_patients" in flags else None
        visits = self._plan_visits(rng, created, prac_idx, classes, showcase, past_only=status is not None)
        long_tn = "long_notes" in flags and len(self.hard["long_notes"]) % 2 == 1
        long_pn = "long_notes" in flags and not long_tn
        draft_wanted = "draft_treatment_notes" in flags
        state = _PatientState(pid, plink, label, email, reminder, mobile if sms_ok else None, concession, case_id)
        state.insurer = insurer if third_party else None
        state.created_floor = created
        long_k = draft_k = None
        if long_tn or draft_wanted:
            past = [k for k, v in enumerate(visits) if v.start + self.types[v.type].minutes * 60 < ref]
            long_k = past[0] if long_tn and past else None
            draft_k = past[-1] if draft_wanted and past else None
        for k, visit in enumerate(visits):
            self._visit(state, visit, k, showcase, k == long_k, k == draft_k)
        if long_tn and state.long_note_id:
            self.hard["long_notes"].append(state.long_note_id)
        if draft_wanted and state.draft_id:
            self.hard["draft_treatment_notes"].append(state.draft_id)

        last_activity = max(state.last_activity, created)
        archived_at = merged_at = None
        merged_with = None
        if status == "merged" and self.last_active is not None:
            merged_at = min(ref - DAY, last_activity + rng.randint(1, 120) * DAY)
            archived_at = merged_at
            merged_with = self.last_active
            self.hard["merged_patients"].append(pid)
        elif status is not None:
            archived_at = min(ref - DAY, last_activity + rng.randint(30, 400) * DAY)
            self.hard["archived_patients"].append(pid)
        else:
            self.last_active = pid
        updated = archived_at or min(ref - 60, max(created, last_activity - rng.randint(0, 5) * DAY))

        # the rest of the chart
        self._medical_alerts(state, created, showcase)
        self._memos(state, created, showcase)
        self._attachments(state, created, "large_files" in flags, showcase)
        if rng.random() < 0.3 or showcase:
            self._referral_source(state, created, doctor)
        if case_id is not None:
            self._patient_case(state, case_id, created, doctor)

        # the patient record itself
        dob = None if rng.random() < 0.03 else _date(created - rng.randint(6 * 365, 90 * 365) * DAY)
        title = rng.choice(data.TITLES_BY_SEX[sex])
        has_address = rng.random() < 0.85 or showcase
        suburb, post_code = rng.choice(data.SUBURBS)
        notes = _long_text(rng, 21_000) if long_pn else rng.choice(("", "", "", "Prefers morning appointments."))
        if long_pn:
            self.hard["long_notes"].append(pid)
        pronouns = "null"
        if rng.random() < 0.1 or showcase:
            pronouns = _encode(data.PRONOUNS["they" if sex == "Other" else "she" if sex == "Female" else "he"])
        custom = self._custom_fields(rng, insurer, showcase)
        phones_json = (
            "["
            + ",".join(
                f'{{"phone_type":"{kind}","number":"{num}","normalized_number":"{norm}"}}' for kind, num, norm in phones
            )
            + "]"
        )
        invoice_to = insurer.name if third_party and insurer else None
        medicare = f"{rng.randint(2000, 6999)} {rng.randint(10000, 99999)} {rng.randint(1, 9)}"
        # ids carried over from the system the clinic used before Cliniko
        old_ref = str(rng.randint(1000, 99999)) if created < LEGACY_ID_CUTOFF and rng.random() < 0.3 else ""
        fk = [f'"latest_booking_id":"{state.latest_id}"'] if state.latest_id else []
        links = []
        if concession:
            fk.append(f'"concession_type_id":"{concession[0]}"')
            links.append(f'"concession_type":{concession[1]},')
        if doctor:
            fk.append(f'"referring_doctor_id":"{doctor.id}"')
            links.append(f'"referring_doctor":{doctor.link},')
        if merged_with:
            fk.append(f'"merged_with_patient_id":"{merged_with}"')
            links.append(f'"merged_with_patient":{_link(f"patients/{merged_with}")},')
        if state.latest_id:
            links.append(f'"latest_booking":{_link(f"bookings/{state.latest_id}")},')
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{pid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
            f'"archived_at":{_t(archived_at)},"deleted_at":null,"title":{_s(title)},"first_name":{_s(first)},'
            f'"last_name":{_s(last)},"preferred_first_name":{_s("")},"label":{_s(label)},'
            f'"date_of_birth":{_s(dob)},"email":{_s(email)},"sex":"{sex}","gender_identity":"{data.GENDER_IDENTITY[sex]}",'
            f'"gender":"{sex}","pronouns":{pronouns},"patient_phone_numbers":{phones_json},'
            f'"address_1":{_s(f"{rng.randint(1, 250)} {rng.choice(data.STREETS)}" if has_address else "")},'
            f'"address_2":"","address_3":"","city":{_s(suburb if has_address else "")},'
            f'"state":{_s("Victoria" if has_address else "")},"post_code":{_s(post_code if has_address else "")},'
            f'"country":{_s("Australia" if has_address else "")},'
            f'"occupation":{_s(rng.choice(data.OCCUPATIONS))},"emergency_contact":"","notes":{_s(notes)},'
            f'"appointment_notes":{_s(rng.choice(data.APPOINTMENT_NOTES) if rng.random() < 0.05 else "")},'
            f'"medicare":{_s(medicare if rng.random() < 0.5 else "")},"medicare_reference_number":"",'
            f'"dva_card_number":{_s("VX" + str(rng.randint(10000, 99999)) if rng.random() < 0.01 else None)},'
            f'"invoice_default_to":{_s(invoice_to or "")},'
            f'"invoice_email":{_s(insurer.email if third_party and insurer else None)},'
            f'"invoice_extra_information":{_s(f"Claim {rng.randint(100000, 999999)}" if third_party else "")},'
            f'"referral_source":"","old_reference_id":{_s(old_ref)},'
            f'"reminder_type":"{reminder}","receives_confirmation_emails":{_B[email is not None]},'
            f'"accepted_privacy_policy":{_B[rng.choice((True, True, None))]},'
            f'"accepted_email_marketing":{_B[rng.random() < 0.3]},"accepted_sms_marketing":{_B[rng.random() < 0.2]},'
            f'"time_zone":null,"merged_at":{_t(merged_at)},"custom_fields":{custom},'
            + "".join(links)
            + f'"appointments":{{"links":{{"self":"{BASE}/patients/{pid}/appointments"}}}},'
            f'"attendees":{{"links":{{"self":"{BASE}/patients/{pid}/attendees"}}}},'
            f'"invoices":{{"links":{{"self":"{BASE}/patients/{pid}/invoices"}}}},'
            f'"medical_alerts":{{"links":{{"self":"{BASE}/patients/{pid}/medical_alerts"}}}},'
            f'"patient_attachments":{{"links":{{"self":"{BASE}/patients/{pid}/patient_attachments"}}}},'
            f'"links":{{"self":"{BASE}/patients/{pid}"}}}}'
        )
        self.sink.record(
            "patients",
            pid,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            None,
            None,
            "{" + ",".join(fk) + "}",
            body,
        )

    def _pick_practitioner(self, day: int, category: str | None) -> int:
        """A practitioner working on `day` (and treating `category`, when given); the first one otherwise."""
        candidates = self._working.get((day, category))
        if candidates is None:
            candidates = self._working[day, category] = [
                k
                for k, p in enumerate(self.practitioners)
                if p.start <= day and (p.end is None or day <= p.end) and (category is None or category in p.categories)
            ] or [0]
        return candidates[int(self.rng.random() * len(candidates))]

    def _plan_visits(
        self, rng: random.Random, created: int, prac_idx: int, classes: bool, showcase: bool, past_only: bool
    ) -> list[_Visit]:
        """A course of care: a first visit soon after the patient was created, then weekly to monthly ones."""
        u = rng.random()
        if showcase:
            n = 14
        elif u < 0.64:
            n = 1 + (rng.random() < 0.28)
        elif u < 0.95:
            n = rng.randint(3, 5)
        else:
            n = min(30, 6 + int(rng.expovariate(1 / 4.5)))
        horizon = (self.ref - 2 * DAY) if past_only else (self.ref + FUTURE_DAYS * DAY)
        prac = self.practitioners[prac_idx]
        own = self.own_types[prac_idx]
        business = prac.businesses[rng.randrange(len(prac.businesses))]
        visits: list[_Visit] = []
        day = created // DAY + rng.randint(1, 14)
        for k in range(n):
            if showcase and k:
                day += 7
            elif k:
                day += rng.choice((7, 7, 7, 14, 14, 21, 28)) if rng.random() > 0.06 else rng.randint(60, 300)
            if day * DAY > horizon:
                break
            group = k in (6, 7) if showcase else classes and k > 0 and rng.random() < 0.6
            if group:
                session = self._join_class(day)
                if session is not None:
                    slot = self.group_slots[session.slot]
                    visits.append(_Visit(session.start, slot.type, session.practitioner, slot.business, session))
                    continue
            p = prac_idx
            if self.practitioners[p].end is not None and day > self.practitioners[p].end:  # type: ignore[operator]
                p = prac_idx = self._pick_practitioner(day, self.types[own[0]].category)
                business = self.practitioners[p].businesses[0]
            if k == 0:
                t = own[0]  # the initial consultation
            elif len(own) > 1 and rng.random() < 0.8:
                t = own[1]  # the usual follow-up
            else:
                t = own[rng.randrange(len(own))]
            minute = rng.randint(32, 71) * 15
            visits.append(_Visit(self.businesses[business].zone.at(day, minute), t, p, business, None))
        return visits

    def _join_class(self, day: int) -> _Session | None:
        """A place in a group class in the week of `day` (or a later one); None when no class can take them."""
        rng = self.rng
        week = (day + 3) // 7  # weeks starting on Monday (1970-01-01 was a Thursday)
        for w in range(week, week + 4):
            order = list(range(len(self.group_slots)))
            rng.shuffle(order)
            for s in order:
                slot = self.group_slots[s]
                atype = self.types[slot.type]
                sessions = self.sessions.setdefault((s, w), [])
                if sessions and sessions[-1].booked < atype.max_attendees:
                    session = sessions[-1]
                elif not sessions:
                    local_day = w * 7 - 3 + slot.weekday
                    start = self.businesses[slot.business].zone.at(local_day, slot.minute)
                    created = start - 28 * DAY
                    if created > self.ref:
                        return None
                    prac = self._pick_practitioner(local_day, "Classes")
                    session = _Session(self.mint(created), s, start, start + atype.minutes * 60, prac, created)
                    sessions.append(session)
                    self.hard["group_appointments"].append(session.id)
                else:
                    continue
                session.booked += 1
                return session
        return None

    def _visit(self, st: _PatientState, v: _Visit, k: int, showcase: bool, long_note: bool, draft_note: bool) -> None:
        """One appointment: the booking, its attendee row, and what followed (invoice, note, reminder)."""
        rng = self.rng
        ref = self.ref
        atype = self.types[v.type]
        prac = self.practitioners[v.practitioner]
        business = self.businesses[v.business]
        start = v.start
        end = start + atype.minutes * 60
        group = v.session is not None
        past = end < ref
        # booked at the end of the previous visit, or a few days ahead
        created = max(st.created_floor, start - rng.randint(1, 21) * DAY - rng.randint(0, 36_000))
        if k == 0:
            created = st.created_floor + rng.randint(0, 900)  # the patient was created when first booked
        created = min(created, ref - rng.randint(60, 3600))
        if group:
            created = max(created, v.session.created)  # type: ignore[union-attr]
        st.created_floor = created

        # what happened: showcase visits cycle through every outcome
        outcome = "attended" if past else "booked"
        if showcase and not group and k < 6:
            outcome = ("attended", "cancelled", "no_show", "archived", "attended", "cancelled")[k] if past else outcome
        elif showcase and group:
            outcome = "cancelled" if k == 7 else outcome
        elif long_note or draft_note:
            pass  # the planted note needs an attended visit
        else:
            u = rng.random()
            if u < 0.07:
                outcome = "cancelled"
            elif past and u < 0.1:
                outcome = "no_show"
            elif not group and u < 0.106:
                outcome = "archived"
        cancelled_at = archived_at = None
        reason = None
        if outcome == "cancelled":
            cancelled_at = min(ref - 60, max(created + 600, start - rng.randint(1, 72) * 3600))
            reason = data.CANCELLATION_REASONS[rng.randrange(len(data.CANCELLATION_REASONS))]
        elif outcome == "archived":
            archived_at = min(ref - 60, created + rng.randint(1, 48) * 3600)
        arrived = outcome == "attended"
        dna = outcome == "no_show"
        updated = cancelled_at or archived_at or (min(ref - 30, end + rng.randint(60, 7200)) if past else created)

        invoice_status: int | None = None
        invoice = None
        if arrived and (rng.random() < 0.88 or showcase or st.insurer is not None):
            invoice_status = self._invoice_status(rng, end, showcase, st)
            invoice = (invoice_status, [(atype.item_id, atype.item_link, atype.name, atype.code, atype.price, True)])
        elif (dna and rng.random() < 0.3) or (outcome == "cancelled" and past and rng.random() < 0.1):
            fee = self.other_items[2 if dna else 0]
            invoice_status = self._invoice_status(rng, end, False, st)
            invoice = (invoice_status, [(fee[0], fee[1], fee[2], fee[4], fee[3], True)])
        note_wanted = arrived and (rng.random() < 0.55 or showcase or long_note or draft_note)
        note_status = None if not note_wanted else 10 if draft_note else 90

        booking_id = v.session.id if group else self.mint(created)  # type: ignore[union-attr]
        attendee_id = self.mint(created)
        case = st.case_id if st.case_id and k >= 1 else None
        if group:
            session = v.session
            assert session is not None
            session.updated = max(session.updated, updated)
            # Unconfirmed: whether a group's `patient_ids` keeps patients whose attendance was cancelled; we
            # choose to list only those still attending (their attendee rows keep the cancellation).
            if outcome != "cancelled":
                session.patient_ids.append(st.pid)
        else:
            self._individual_appointment(
                st, booking_id, atype, prac, business, start, end, created, updated, outcome, cancelled_at,
                archived_at, reason, invoice_status, note_status, case, k,
            )  # fmt: skip
        self._attendee(
            st, attendee_id, booking_id, group, created, updated, outcome, cancelled_at, archived_at, reason,
            invoice_status, note_status, case, showcase,
        )  # fmt: skip
        if archived_at is None and (start > st.latest_start or st.latest_id is None):
            st.latest_start = start
            st.latest_id = booking_id
        st.last_activity = max(st.last_activity, min(updated, ref - DAY))

        if invoice is not None:
            self._invoice(st, invoice[0], invoice[1], booking_id, prac, business, end, rng.random() < 0.1)
        if note_wanted:
            self._treatment_note(st, atype, prac, booking_id, attendee_id, end, k, long_note, draft_note)
        if st.reminder != "None" and archived_at is None and (rng.random() < 0.12 or showcase):
            self._reminder(st, booking_id, attendee_id, business, start, showcase and k % 2 == 1)

    def _invoice_status(self, rng: random.Random, at: int, showcase: bool, st: _PatientState) -> int:
        if showcase:
            st.showcase_invoices += 1
            return (20, 10, 30, 40)[(st.showcase_invoices - 1) % 4]
        if at > self.ref - 14 * DAY:
            return rng.choice((10, 10, 20))
        u = rng.random()
        return 20 if u < 0.8 else 10 if u < 0.9 else 30 if u < 0.95 else 40

    def _individual_appointment(
        self,
        st: _PatientState,
        aid: str,
        atype: _ApptType,
        prac: _Practitioner,
        business: _Business,
        start: int,
        end: int,
        created: int,
        updated: int,
        outcome: str,
        cancelled_at: int | None,
        archived_at: int | None,
        reason: tuple[int, str] | None,
        invoice_status: int | None,
        note_status: int | None,
        case: str | None,
        k: int,
    ) -> None:
        rng = self.rng
        online = rng.random() < 0.25
        ip = f'"203.0.113.{rng.randint(1, 254)}"' if online else "null"
        telehealth = (
            f'"https://{self.subdomain}.cliniko.com/appointments/{aid}/connect"' if atype.telehealth else "null"
        )
        # A weekly series booked in one go: the first carries `repeats`, the others `repeated_from`.
        # Unconfirmed: whether the later ones repeat the series' repeat_rule; we choose to copy it.
        series_head = None
        repeat_rule = "null"
        repeats = "null"
        if st.series_head is not None and st.series_left > 0:
            series_head = st.series_head
            st.series_left -= 1
            repeat_rule = st.series_rule
        elif st.series_head is None and k == 1 and outcome != "archived" and rng.random() < 0.1:
            st.series_head = aid
            st.series_left = rng.randint(2, 5)
            st.series_rule = (
                f'{{"repeat_type":"Weekly","number_of_repeats":{st.series_left + 1},"repeating_interval":1}}'
            )
            repeat_rule = st.series_rule
            repeats = f'{{"links":{{"self":"{BASE}/individual_appointments?q%5B%5D=repeated_from_id%3A%3D{aid}"}}}}'
        reminded = st.reminder != "None" and outcome != "archived" and start - DAY < self.ref
        fk = (
            f'{{"appointment_type_id":"{atype.id}","business_id":"{business.id}","practitioner_id":"{prac.id}",'
            f'"patient_id":"{st.pid}"'
        )
        extra = ""
        if case:
            fk += f',"patient_case_id":"{case}"'
            extra += f'"patient_case":{_link(f"patient_cases/{case}")},'
        if series_head:
            fk += f',"repeated_from_id":"{series_head}"'
            extra += f'"repeated_from":{_link(f"individual_appointments/{series_head}")},'
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{aid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
            f'"starts_at":"{_ts(start)}","ends_at":"{_ts(end)}","patient_name":{_s(st.label)},'
            f'"notes":{_s(rng.choice(data.APPOINTMENT_NOTES) if rng.random() < 0.05 else None)},'
            f'"did_not_arrive":{_B[outcome == "no_show"]},"patient_arrived":{_B[outcome == "attended"]},'
            f'"cancelled_at":{_t(cancelled_at)},"cancellation_reason":{_n(reason[0] if reason else None)},'
            f'"cancellation_reason_description":{_s(reason[1] if reason else None)},'
            f'"cancellation_note":{_s(rng.choice(data.CANCELLATION_NOTES) if reason else None)},'
            f'"invoice_status":{_n(invoice_status)},"treatment_note_status":{_n(note_status)},'
            f'"email_reminder_sent":{_B[reminded and "Email" in st.reminder]},'
            f'"sms_reminder_sent":{_B[reminded and "SMS" in st.reminder]},'
            f'"online_booking_policy_accepted":{_B[True if online else None]},"booking_ip_address":{ip},'
            f'"has_patient_appointment_notes":false,"telehealth_url":{telehealth},'
            f'"repeat_rule":{repeat_rule},"repeats":{repeats},"archived_at":{_t(archived_at)},"deleted_at":null,'
            f'"appointment_type":{atype.link},"business":{business.link},"practitioner":{prac.link},'
            f'"patient":{st.plink},{extra}'
            f'"attendees":{{"links":{{"self":"{BASE}/individual_appointments/{aid}/attendees"}}}},'
            f'"conflicts":{{"links":{{"self":"{BASE}/individual_appointments/{aid}/conflicts"}}}},'
            f'"links":{{"self":"{BASE}/individual_appointments/{aid}"}}}}'
        )
        self.sink.record(
            "individual_appointments",
            aid,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            _ts(cancelled_at) if cancelled_at else None,
            None,
            fk + "}",
            body,
        )
        if outcome == "archived":
            self.hard["archived_appointments"].append(aid)
        elif outcome == "cancelled":
            self.hard["cancelled_appointments"].append(aid)
        elif outcome == "no_show":
            self.hard["no_show_appointments"].append(aid)
        if start > self.ref:
            self.hard["future_appointments"].append(aid)

    def _attendee(
        self,
        st: _PatientState,
        att_id: str,
        booking_id: str,
        group: bool,
        created: int,
        updated: int,
        outcome: str,
        cancelled_at: int | None,
        archived_at: int | None,
        reason: tuple[int, str] | None,
        invoice_status: int | None,
        note_status: int | None,
        case: str | None,
        showcase: bool,
    ) -> None:
        """Per-patient state of a booking, for individual and group appointments alike (reference §5.3).

        Unconfirmed: the attendee of an individual appointment mirrors the appointment's cancellation and
        archiving; we choose to copy them (the appointment is the booking of that one attendee).
        """
        cancel_url = (
            f'"https://{self.subdomain}.cliniko.com/bookings/{att_id}/cancel"'
            if group and cancelled_at is None
            else "null"
        )
        arrived = True if outcome == "attended" else False if outcome in ("no_show", "cancelled") else None
        fk = f'{{"booking_id":"{booking_id}","appointment_id":"{booking_id}","patient_id":"{st.pid}"'
        case_link = ""
        if case:
            fk += f',"patient_case_id":"{case}"'
            case_link = f'"patient_case":{_link(f"patient_cases/{case}")},'
            st.case_attendees.append(att_id)
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{att_id}","created_at":"{c_ts}","updated_at":"{u_ts}","arrived":{_B[arrived]},'
            f'"notes":null,"cancelled_at":{_t(cancelled_at)},"cancellation_reason":{_n(reason[0] if reason else None)},'
            f'"cancellation_reason_description":{_s(reason[1] if reason else "")},'
            f'"cancellation_note":null,"cancellation_url":{cancel_url},"invoice_status":{_n(invoice_status)},'
            f'"treatment_note_status":{_n(note_status)},"email_reminder_sent":false,"sms_reminder_sent":false,'
            f'"booking_ip_address":null,"online_booking_policy_accepted":null,"telehealth_url":null,'
            f'"archived_at":{_t(archived_at)},"deleted_at":null,"booking":{_link(f"bookings/{booking_id}")},'
            f'"patient":{st.plink},{case_link}'
            f'"invoices":{{"links":{{"self":"{BASE}/attendees/{att_id}/invoices"}}}},'
            f'"patient_forms":{{"links":{{"self":"{BASE}/attendees/{att_id}/patient_forms"}}}},'
            f'"links":{{"self":"{BASE}/attendees/{att_id}"}}}}'
        )
        self.sink.record(
            "attendees",
            att_id,
            c_ts,
            u_ts,
            _ts(archived_at) if archived_at else None,
            _ts(cancelled_at) if cancelled_at else None,
            None,
            fk + "}",
            body,
        )
        if group and cancelled_at is not None:
            self.hard["cancelled_attendees"].append(att_id)

    def _invoice(
        self,
        st: _PatientState,
        status: int,
        lines: list[tuple[str, str, str, str, int, bool]],
        booking_id: str,
        prac: _Practitioner,
        business: _Business,
        at: int,
        with_product: bool,
    ) -> None:
        rng = self.rng
        ref = self.ref
        created = min(ref - 60, at + rng.randint(0, 1800))
        iid = self.mint(created)
        self.invoice_number += 1
        closed_at = None
        if status in (20, 30):
            closed_at = created + (rng.randint(0, 14) * DAY if status == 20 else rng.randint(30, 90) * DAY)
            if rng.random() < 0.6 and status == 20:
                closed_at = created + rng.randint(10, 600)  # paid at the desk
            if closed_at > ref - 60:
                closed_at = ref - 60
        updated = closed_at or created
        c_ts, u_ts = _ts(created), _ts(updated)
        items = list(lines)
        if with_product:
            p = self.products[rng.randrange(len(self.products))]
            items.append((p.id, p.link, p.name, p.code, p.price_ex, False))
        pct = st.concession[3] if st.concession else 0
        net_total = tax_total = disc_total = 0
        for item_id, item_link, name, code, unit, is_service in items:
            qty = 1 if is_service else rng.choice((1, 1, 2))
            gross = unit * qty
            discount = gross * pct // 100 if is_service else 0
            net = gross - discount
            rate = 0 if is_service else 10
            tax = net * rate // 100
            net_total += net
            tax_total += tax
            disc_total += discount
            line_id = self.mint(created)
            rel = "billable_item" if is_service else "product"
            body = (
                f'{{"id":"{line_id}","created_at":"{c_ts}","updated_at":"{c_ts}","name":{_s(name)},'
                f'"code":"{code}","quantity":{qty},"unit_price":"{_money(unit)}","net_price":"{_money(net)}",'
                f'"discount_percentage":{_percent(pct if is_service else 0)},"discounted_amount":"{_money(discount)}",'
                f'"is_monetary_discount":false,"tax_name":"{"GST-Free" if is_service else "GST"}",'
                f'"tax_rate":{rate}.0,"tax_amount":{_money(tax)},"total_including_tax":{_money(net + tax)},'
                f'"concession_type_name":{_s(st.concession[2] if st.concession and is_service else "")},'
                f'"archived_at":null,"deleted_at":null,"{rel}":{item_link},'
                f'"invoice":{_link(f"invoices/{iid}")},"links":{{"self":"{BASE}/invoice_items/{line_id}"}}}}'
            )
            fk = f'{{"invoice_id":"{iid}","{rel}_id":"{item_id}"}}'
            self.sink.record("invoice_items", line_id, c_ts, c_ts, None, None, None, fk, body)
        invoice_to = f"{st.insurer.name}\r\nRe: {st.label}" if st.insurer else st.label
        # Unconfirmed (reference §10): for a group class, whether invoice.appointment names the booking or the
        # attendee; we choose the booking (= the group appointment's id), like individual appointments.
        online_url = f'"https://{self.subdomain}.cliniko.com/pay/{iid}"' if status == 10 else "null"
        body = (
            f'{{"id":"{iid}","created_at":"{c_ts}","updated_at":"{u_ts}","number":{self.invoice_number},'
            f'"issue_date":"{business.zone.local_date(at)}","status":{status},"status_description":"{_STATUS[status]}",'
            f'"total_amount":"{_money(net_total + tax_total)}","net_amount":"{_money(net_total)}",'
            f'"tax_amount":"{_money(tax_total)}","discounted_amount":"{_money(disc_total)}","notes":"",'
            f'"invoice_to":{_s(invoice_to)},'
            f'"patient_extra_information":"","online_payment_url":{online_url},"closed_at":{_t(closed_at)},'
            f'"archived_at":null,"deleted_at":null,"appointment":{_link(f"appointments/{booking_id}")},'
            f'"business":{business.link},"practitioner":{prac.link},"patient":{st.plink},'
            f'"invoice_items":{{"links":{{"self":"{BASE}/invoices/{iid}/invoice_items"}}}},'
            f'"links":{{"self":"{BASE}/invoices/{iid}"}}}}'
        )
        fk = (
            f'{{"appointment_id":"{booking_id}","business_id":"{business.id}","practitioner_id":"{prac.id}",'
            f'"patient_id":"{st.pid}"}}'
        )
        self.sink.record("invoices", iid, c_ts, u_ts, None, None, None, fk, body)
        # the e-mails the clinic sent about it
        if st.email and (rng.random() < 0.1 or st.showcase_invoices == 1):
            self._email(st, created + 120, 3, "Invoice", f"Invoice {self.invoice_number}", iid, None)
        # A payment receipt links /payments/{id}: Cliniko has no payments endpoint, so the link leads nowhere.
        if st.email and status == 20 and closed_at and (rng.random() < 0.06 or st.showcase_invoices == 1):
            self._email(st, closed_at + 60, 14, "Payment Receipt", "Payment receipt", iid, self.mint(closed_at))

    def _treatment_note(
        self,
        st: _PatientState,
        atype: _ApptType,
        prac: _Practitioner,
        booking_id: str,
        attendee_id: str,
        end: int,
        k: int,
        long_note: bool,
        draft: bool,
    ) -> None:
        rng = self.rng
        created = min(self.ref - 60, end + rng.randint(60, 7200))
        nid = self.mint(created)
        template_idx = atype.templates[0 if k == 0 else 1]
        if created < self.open + 200 * DAY and template_idx == 1:
            template_idx = len(self.templates) - 1  # early notes used the form the clinic later archived
        tid, tlink, tname, sections = self.templates[template_idx]
        if long_note:
            content = _note_content(rng, sections, draft, 24_000)
        else:
            pool = self.note_pool[template_idx][draft]
            content = pool[int(rng.random() * len(pool))]
        finalized = None if draft else min(self.ref - 30, created + rng.randint(0, 3600))
        updated = finalized or created
        c_ts, u_ts = _ts(created), _ts(updated)
        body = (
            f'{{"id":"{nid}","created_at":"{c_ts}","updated_at":"{u_ts}","title":{_s(tname)},'
            f'"draft":{_B[draft]},"finalized_at":{_t(finalized)},"pinned_at":null,"author_name":{_s(prac.label)},'
            f'"archived_at":null,"deleted_at":null,"content":{content},"patient":{st.plink},'
            f'"practitioner":{prac.link},"treatment_note_template":{tlink},'
            f'"booking":{_link(f"bookings/{booking_id}")},"attendee":{_link(f"attendees/{attendee_id}")},'
            f'"links":{{"self":"{BASE}/treatment_notes/{nid}"}}}}'
        )
        fk = (
            f'{{"patient_id":"{st.pid}","practitioner_id":"{prac.id}","treatment_note_template_id":"{tid}",'
            f'"booking_id":"{booking_id}","attendee_id":"{attendee_id}"}}'
        )
        self.sink.record("treatment_notes", nid, c_ts, u_ts, None, None, None, fk, body)
        if long_note:
            st.long_note_id = nid
        if draft:
            st.draft_id = nid

    def _reminder(
        self, st: _PatientState, booking_id: str, attendee_id: str, business: _Business, start: int, email: bool
    ) -> None:
        at = start - DAY
        if at > self.ref:
            return
        use_sms = "SMS" in st.reminder and not (email and st.email)
        if use_sms and st.mobile:
            text = f"Hi, a reminder of your appointment at {business.name} tomorrow. Reply Y to confirm."
            self._communication(st, at, 1, "Appointment Reminder", 1, "SMS", 1, text, None, business.sms_from,
                                st.mobile, booking_id, attendee_id, None, None)  # fmt: skip
        elif st.email:
            text = f"This is a reminder of your appointment at {business.name} tomorrow."
            self._communication(st, at, 1, "Appointment Reminder", 2, "Email", 1, text, "Appointment reminder",
                                self.email_from, st.email, booking_id, attendee_id, None, None)  # fmt: skip

    def _email(
        self, st: _PatientState, at: int, code: int, category: str, subject: str, invoice_id: str, payment: str | None
    ) -> None:
        text = f"Please find attached your {subject.lower()}. Thank you for visiting {self.clinic_name}."
        self._communication(st, min(at, self.ref - 30), code, category, 2, "Email", 1, text, subject, self.email_from,
                            st.email, None, None, invoice_id, payment)  # fmt: skip

    def _communication(
        self,
        st: _PatientState,
        at: int,
        code: int,
        category: str,
        type_code: int,
        type_name: str,
        direction: int,
        content: str,
        subject: str | None,
        sender: str | None,
        to: str | None,
        booking_id: str | None,
        attendee_id: str | None,
        invoice_id: str | None,
        payment_id: str | None,
        confidential: bool | None = None,
    ) -> None:
        cid = self.mint(at)
        fk = f'{{"patient_id":"{st.pid}"'
        links = ""
        for rel, target, rid in (
            ("booking", "bookings", booking_id),
            ("attendee", "attendees", attendee_id),
            ("invoice", "invoices", invoice_id),
            ("payment", "payments", payment_id),
        ):
            if rid:
                fk += f',"{rel}_id":"{rid}"'
                links += f'"{rel}":{_link(f"{target}/{rid}")},'
        memo = code == 12
        extra = f'"confidential":{_B[confidential]},' if memo else ""
        if type_code == 2 and not memo:
            extra += f'"content_subject":{_s(subject)},'
        c_ts = _ts(at)
        body = (
            f'{{"id":"{cid}","created_at":"{c_ts}","updated_at":"{c_ts}","category":"{category}",'
            f'"category_code":{code},"type":"{type_name}","type_code":{type_code},"direction_code":{direction},'
            f'"direction_description":"{"Sent" if direction == 1 else "Received"}","content":{_s(content)},{extra}'
            f'"from":{_s(sender)},"to":{_s(to)},"archived_at":null,"patient":{st.plink},{links}'
            f'"links":{{"self":"{BASE}/communications/{cid}"}}}}'
        )
        self.sink.record("communications", cid, c_ts, c_ts, None, None, None, fk + "}", body)

    def _memos(self, st: _PatientState, created: int, showcase: bool) -> None:
        """What the front desk logged by hand: memos (category 12) typed as a phone call, e-mail, SMS or other.

        Unconfirmed: OAS23 gives no category code for patients' replies; we log received calls and messages
        as memos with direction 2 (Received), the only place the codes we know allow.
        """
        rng = self.rng
        kinds = (
            range(len(data.MEMOS)) if showcase else [rng.randrange(len(data.MEMOS)) for _ in range(_memo_count(rng))]
        )
        for m in kinds:
            type_name, type_code, text = data.MEMOS[m]
            at = rng.randint(created, max(created, min(self.ref - 60, st.last_activity)))
            direction = 2 if (type_code in (1, 3) and (rng.random() < 0.5 or (showcase and m == 0))) else 1
            self._communication(st, at, 12, "Memo", type_code, type_name, direction, text, None, None, None, None,
                                None, None, None, confidential=rng.random() < 0.1)  # fmt: skip

    def _medical_alerts(self, st: _PatientState, created: int, showcase: bool) -> None:
        rng = self.rng
        if not (rng.random() < 0.12 or showcase):
            return
        for _ in range(2 if showcase else rng.choice((1, 1, 2))):
            at = min(self.ref - 60, created + rng.randint(0, 30) * DAY)
            aid = self.mint(at)
            archived = at + 90 * DAY if rng.random() < 0.05 and at + 90 * DAY < self.ref else None
            updated = archived or at
            body = (
                f'{{"id":"{aid}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}",'
                f'"name":{_s(data.MEDICAL_ALERTS[rng.randrange(len(data.MEDICAL_ALERTS))])},'
                f'"archived_at":{_t(archived)},"deleted_at":null,"patient":{st.plink},'
                f'"links":{{"self":"{BASE}/medical_alerts/{aid}"}}}}'
            )
            self.sink.record(
                "medical_alerts",
                aid,
                _ts(at),
                _ts(updated),
                _ts(archived) if archived else None,
                None,
                None,
                f'{{"patient_id":"{st.pid}"}}',
                body,
            )

    def _attachments(self, st: _PatientState, created: int, large: bool, showcase: bool) -> None:
        rng = self.rng
        count = rng.choice((1, 1, 1, 2, 3)) if rng.random() < 0.18 else 0
        plan = [("normal", k) for k in range(count)]
        if large:
            plan.append(("large", 0))
        if showcase:
            plan += [("normal", 0), ("unprocessed", 0), ("export", 0)]
        elif rng.random() < 0.003:
            plan.append(("export", 0))
        elif count and rng.random() < 0.02:
            plan.append(("unprocessed", 0))
        uploaders = [*self.staff_user_ids[1:3], *(p.user_id for p in self.practitioners[:3])]
        for kind, _ in plan:
            if kind == "unprocessed":
                at = self.ref - rng.randint(60, 1800)  # just uploaded: Cliniko has not processed it yet
            else:
                at = rng.randint(created, max(created, min(self.ref - 3600, st.last_activity + 7 * DAY)))
            aid = self.mint(at)
            if kind == "export":
                desc, ctype, ext = "Full patient export", "application/zip", "zip"
            else:
                desc, ctype, ext = data.ATTACHMENT_KINDS[rng.randrange(len(data.ATTACHMENT_KINDS))]
                if kind == "large":
                    desc, ctype, ext = (
                        ("MRI images", "image/jpeg", "jpg") if rng.random() < 0.5 else data.ATTACHMENT_KINDS[2]
                    )
            if kind == "large":
                size = rng.randint(3 * 2**20, 6 * 2**20)
            else:
                size = int(math.exp(rng.uniform(math.log(2_000), math.log(900_000))))
            processed = kind != "unprocessed"
            processed_at = at + rng.randint(5, 120) if processed else None
            filename = f"{desc.lower().replace(' ', '-')}-{_date(at)}.{ext}"
            user = uploaders[rng.randrange(len(uploaders))]
            pinned = processed_at if processed_at and rng.random() < 0.03 else None
            # Unconfirmed: while processing, Cliniko's guide says the metadata stays null; we also keep the
            # content link null until then.
            content = f'{{"links":{{"self":"{BASE}/patient_attachments/{aid}/content"}}}}' if processed else "null"
            updated = processed_at or at
            c_ts, u_ts = _ts(at), _ts(updated)
            body = (
                f'{{"id":"{aid}","created_at":"{c_ts}","updated_at":"{u_ts}",'
                f'"filename":{_s(filename if processed else None)},"content_type":{_s(ctype if processed else None)},'
                f'"size":{_n(size if processed else None)},"description":{_s(desc if kind != "export" else None)},'
                f'"processing_completed":{_B[processed]},"processed_at":{_t(processed_at)},"pinned_at":{_t(pinned)},'
                f'"archived_at":null,"content":{content},"patient":{st.plink},"user":{_link(f"users/{user}")},'
                f'"links":{{"self":"{BASE}/patient_attachments/{aid}"}}}}'
            )
            fk = f'{{"patient_id":"{st.pid}","user_id":"{user}"}}'
            self.sink.record("patient_attachments", aid, c_ts, u_ts, None, None, None, fk, body)
            self.sink.add(_INSERT_BLOB, (aid, size, ctype, rng.getrandbits(31)))
            if kind == "large":
                self.hard["large_files"].append(aid)
            elif kind == "unprocessed":
                self.hard["unprocessed_attachments"].append(aid)

    def _referral_source(self, st: _PatientState, created: int, doctor: _Contact | None) -> None:
        rng = self.rng
        type_idx = 1 if doctor is not None and rng.random() < 0.7 else rng.choice((0, 0, 2, 3, 4))
        # The referral source types are linked but not written: /referral_source_types is not among the
        # resources the sandbox serves (so `referral_source_type_id` in fk names no stored record).
        type_id, type_name, referrer_type = self.referral_types[type_idx]
        referrer = "null"
        fk = f'{{"patient_id":"{st.pid}","referral_source_type_id":"{type_id}"'
        if referrer_type == "Contact" and doctor is not None:
            referrer = doctor.link
            fk += f',"referrer_id":"{doctor.id}"'
        elif referrer_type == "Patient" and self.last_active is not None:
            referrer = _link(f"patients/{self.last_active}")
            fk += f',"referrer_id":"{self.last_active}"'
        else:
            referrer_type = None
        rid = self.mint(created)
        subs = data.REFERRAL_SUBCATEGORIES.get(type_name)
        c_ts = _ts(created)
        body = (
            f'{{"id":"{rid}","created_at":"{c_ts}","updated_at":"{c_ts}",'
            f'"referrer_type":{_s(referrer_type)},"referrer":{referrer},'
            f'"subcategory":{_s(subs[rng.randrange(len(subs))] if subs else None)},"notes":null,'
            f'"patient":{st.plink},"referral_source_type":{_link(f"referral_source_types/{type_id}")},'
            f'"links":{{"self":"{BASE}/patients/{st.pid}/referral_source"}}}}'
        )
        self.sink.record("referral_sources", rid, c_ts, c_ts, None, None, None, fk + "}", body)

    def _patient_case(self, st: _PatientState, case_id: str, created: int, doctor: _Contact | None) -> None:
        rng = self.rng
        at = created + 600
        kind = rng.choice((("Workers compensation claim", None), ("EPC referral", "medicare"), ("DVA referral", "dva")))
        issue = _date(at)
        expiry = _date(at + 365 * DAY)
        updated = min(self.ref - 60, max(at, st.last_activity))
        contact = f'"contact":{doctor.link},' if doctor else ""
        fk = f'{{"patient_id":"{st.pid}"' + (f',"contact_id":"{doctor.id}"' if doctor else "")
        fk += ',"attendee_ids":[' + ",".join(f'"{a}"' for a in st.case_attendees) + "]}"
        body = (
            f'{{"id":"{case_id}","created_at":"{_ts(at)}","updated_at":"{_ts(updated)}","name":{_s(kind[0])},'
            f'"notes":null,"closed":{_B[updated < self.ref - 180 * DAY]},'
            f'"issue_date":"{issue}","expiry_date":"{expiry}",'
            f'"max_sessions":{5 if kind[1] == "medicare" else 12},"max_invoiceable_amount":null,'
            f'"include_cancelled_attendees":false,"include_dna_attendees":true,"referral":{_B[kind[1] is not None]},'
            f'"referral_type":{_s(kind[1])},"attendee_ids":[' + ",".join(f'"{a}"' for a in st.case_attendees) + "],"
            f'"archived_at":null,"patient":{st.plink},{contact}'
            f'"attendees":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/attendees"}}}},'
            f'"bookings":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/bookings"}}}},'
            f'"invoices":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/invoices"}}}},'
            f'"patient_attachments":{{"links":{{"self":"{BASE}/patient_cases/{case_id}/patient_attachments"}}}},'
            f'"links":{{"self":"{BASE}/patient_cases/{case_id}"}}}}'
        )
        self.sink.record("patient_cases", case_id, _ts(at), _ts(updated), None, None, None, fk, body)

    def _custom_fields(self, rng: _Rng, insurer: _Contact | None, showcase: bool) -> str:
        """The patient's custom field values, keyed by the settings' tokens; null when they have none.

        Built from text fragments prepared once per field (json.dumps per patient was a hot spot).
        """
        fields: tuple[list[str], list[str]] = ([], [])
        for f in self.fields:
            head = self.field_heads[f.token]
            if f.section == 0:
                if insurer is None or (f.name == "Group number" and rng.random() < 0.5 and not showcase):
                    continue
                value = insurer.name if f.name == "Insurer" else f"{rng.choice('ABCHMN')}{rng.randint(100000, 9999999)}"
                fields[0].append(f'{head},"value":{_s(value)}}}')
            elif f.archived:
                if rng.random() < 0.03 or showcase:
                    fields[1].append(f'{head},"archived":true,"value":"Old clinic"}}')
            elif rng.random() < 0.6 or showcase:
                if f.type == "radiobuttons":
                    pick = int(rng.random() * len(f.options))
                    opts = ",".join(self.option_text[t][j == pick] for j, (_, t) in enumerate(f.options))
                    fields[1].append(f'{head},"options":[{opts}]}}')
                elif f.type == "checkboxes":
                    opts = ",".join(self.option_text[t][rng.random() < 0.4] for _, t in f.options)
                    fields[1].append(f'{head},"options":[{opts}]}}')
                elif f.type == "date":
                    fields[1].append(f'{head},"value":"{_date(self.ref - rng.randint(10, 2000) * DAY)}"}}')
                else:
                    fields[1].append(f'{head},"value":"Return to running; sleep without pain"}}')
        parts = [
            f'{{"name":{_s(name)},"token":"{token}","fields":[{",".join(section)}]}}'
            for (name, token), section in zip(self.sections, fields, strict=True)
            if section
        ]
        return f'{{"sections":[{",".join(parts)}]}}' if parts else "null"

    # -- what is written last --

    def _write_sessions(self) -> None:
        """The group classes, now that every attendee is known."""
        for sessions in self.sessions.values():
            for s in sessions:
                slot = self.group_slots[s.slot]
                atype = self.types[slot.type]
                business = self.businesses[slot.business]
                prac = self.practitioners[s.practitioner]
                ids = "[" + ",".join(f'"{p}"' for p in s.patient_ids) + "]"
                updated = max(s.created, min(s.updated, self.ref - 60))
                body = (
                    f'{{"id":"{s.id}","created_at":"{_ts(s.created)}","updated_at":"{_ts(updated)}",'
                    f'"starts_at":"{_ts(s.start)}","ends_at":"{_ts(s.end)}","max_attendees":{atype.max_attendees},'
                    f'"notes":null,"patient_ids":{ids},"repeat_rule":null,"repeats":null,"telehealth_url":null,'
                    f'"archived_at":null,"deleted_at":null,"appointment_type":{atype.link},"business":{business.link},'
                    f'"practitioner":{prac.link},'
                    f'"attendees":{{"links":{{"self":"{BASE}/group_appointments/{s.id}/attendees"}}}},'
                    f'"conflicts":{{"links":{{"self":"{BASE}/group_appointments/{s.id}/conflicts"}}}},'
                    f'"links":{{"self":"{BASE}/group_appointments/{s.id}"}}}}'
                )
                fk = (
                    f'{{"appointment_type_id":"{atype.id}","business_id":"{business.id}",'
                    f'"practitioner_id":"{prac.id}","patient_ids":{ids}}}'
                )
                self.sink.record("group_appointments", s.id, _ts(s.created), _ts(updated), None, None, None, fk, body)

    def _write_singletons(self) -> None:
        settings = self._settings()
        public = {k: v for k, v in settings.items() if k not in ("account",)}
        public["account"] = {
            k: v
            for k, v in settings["account"].items()
            if k not in ("email_from", "first_name", "last_name", "compliance")
        }
        public["integrations"] = {k: v for k, v in settings["integrations"].items() if k != "medipass"}
        for name, body in (
            ("settings", _encode(settings)),
            ("public_settings", _encode(public)),
            ("current_user_id", json.dumps(self.admin_user_id)),
        ):
            self.sink.add("INSERT INTO singletons (name, body) VALUES (?, ?)", (name, body))

    def _settings(self) -> dict[str, Any]:
        definition = {
            "sections": [
                {
                    "name": name,
                    "token": token,
                    "archived": False,
                    "fields": [
                        {
                            "name": f.name,
                            "token": f.token,
                            "type": f.type,
                            "archived": f.archived,
                            **({"options": [{"name": n, "token": t, "archived": False} for n, t in f.options]}
                               if f.options else {}),
                            **({"other": {"enabled": False, "archived": False}} if f.type == "checkboxes" else {}),
                        }
                        for f in self.fields
                        if f.section == s
                    ],
                }
                for s, (name, token) in enumerate(self.sections)
            ]
        }  # fmt: skip
        return {
            "account": {
                "id": self.mint(self.open - 30 * DAY),
                "name": self.clinic_name,
                "country": "Australia",
                "country_code": "AU",
                "currency_symbol": "$",
                "subdomain": self.subdomain,
                "has_time_travelers": False,
                "time_zone_support": True,
                "time_zone": data.BUSINESSES[0][1],  # in the reference (§5.19), absent from OAS23
                "email_from": self.email_from,
                "first_name": self.admin_name[0],
                "last_name": self.admin_name[1],
                "compliance": {"has_hipaa_compliance_conflicts": False, "hipaa_compliance-conflict_messages": []},
            },
            "calendar": {
                "start_hour": 7,
                "end_hour": 20,
                "timeslot_height_in_pixels": 24,
                "timeslot_size_in_minutes": 15,
                "show_current_time_indicator": True,
                "multiple_appointments_gap": False,
            },
            "documents_and_printing": {"logo_url": None, "logo_height": 80},
            "email": {"patient_accept_email_marketing_by_default": False},
            "integrations": {
                "mail_chimp": {"enabled": False},
                "xero": {"enabled": True},
                "medipass": {"enabled": False},
            },
            "online_bookings": {
                "allow_bookings_days_in_advance": 90,
                "allow_online_bookings_time_zone_choice": False,
                "booking_reservation_minutes": 10,
                "calendar_info": None,
                "daily_bookings_limit": 0,
                "disabled_text": None,
                "disabled_title": None,
                "enabled": True,
                "logo_url": None,
                "max_appointments_per_day_segment": 0,
                "min_hours_advance_required_to_book": 2,
                "min_hours_notice_for_patient_cancellation": 24,
                "notice_enabled": False,
                "notice_text": None,
                "notice_title": None,
                "notify_practitioner_by_email": True,
                "notify_practitioner_by_sms": False,
                "policy": "Please give 24 hours notice of cancellation.",
                "practitioner_order": [p.id for p in self.practitioners if p.end is None],
                "privacy_policy_url": f"https://{self.domain}/privacy",
                "require_patient_address": False,
                "show_appointment_duration": True,
                "show_prices": True,
            },
            "online_payments": {"activated": False},
            "patient_custom_fields_definition": definition,
            "patient_privacy": {
                "browser_title_name_format": "initials",
                "ical_patient_name_option": "initials",
                "prevent_sending_financial_data_by_email": False,
                "requires_hipaa_compliance": False,
                "anonymise_appointments_on_deletion": False,
                "anonymise_booking_notifications": False,
                "anonymise_invoices_and_payments_on_deletion": False,
                "baa_requested": False,
            },
            "reminders": {"default_reminder_type": "SMS & Email"},
            "sms": {
                "alphanumeric_source_number_required": False,
                "default_alphanumeric_source_number": self.sms_sender,
                "max_message_length": 459,
                "number_of_usable_characters_per_message": 153,
                "patient_accept_sms_marketing_by_default": False,
                "replies_supported": True,
            },
            "terminology": {"patient": "patient", "titles": ["Mr", "Mrs", "Ms", "Miss", "Mx", "Dr"]},
            "wait_list": {"default_wait_list_expiry_period": 30},
        }

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
            "hard_case_resources": _encode({k: list(v) for k, v in HARD_CASE_RESOURCES.items()}),
            "nutshell_seed": _encode(seed_doc),
        }
        for row in sorted(meta.items()):
            self.sink.add("INSERT INTO meta (key, value) VALUES (?, ?)", row)

    def _nutshell_seed(self) -> dict[str, Any]:
        rng = random.Random(f"nutshell-{self.seed}")
        people = list(self.nutshell_people)
        for k, (name, _company) in enumerate(data.NUTSHELL_PEOPLE):
            local = name.lower().replace(" ", ".")
            people.append({"name": name, "emails": [f"{local}@crm.example.com"], "phones": [f"+6139{k:03d}1234"]})
        for k in range(self.patients // 200):
            first = rng.choice(data.FIRST_NAMES["Other"])
            last = rng.choice(data.LAST_NAMES)
            people.append(
                {"name": f"{first} {last}", "emails": [f"{first}.{last}.{k}@crm.example.com".lower()], "phones": []}
            )
        accounts = [{"name": company} for _, company in data.NUTSHELL_PEOPLE if company]
        accounts += [{"name": self.insurers[0].name}, {"name": self.insurers[1].name}]
        return {
            "company_domain": self.domain,
            "api_user": {
                "email": f"admin@{self.domain}",
                "api_key": hashlib.sha1(f"nutshell-api-key-{self.seed}".encode()).hexdigest(),
            },
            "users": self.nutshell_users,
            "activity_types": list(DEFAULT_ACTIVITY_TYPES),  # the Nutshell sandbox's own defaults
            "people": people,
            "accounts": accounts,
            "custom_fields": {
                "Contacts": [
                    {"name": "Cliniko Patient ID", "type": "Text"},
                    {"name": "Date of Birth", "type": "Date"},
                    {"name": "Total Invoiced", "type": "Text"},  # wrong on purpose: the map wants Currency
                ],
                "Accounts": [],
                "Leads": [],
            },
            "custom_field_cap": None,
        }


class _PatientState:
    """What the records of one patient share while they are written."""

    __slots__ = (
        "case_attendees",
        "case_id",
        "concession",
        "created_floor",
        "draft_id",
        "email",
        "insurer",
        "label",
        "last_activity",
        "latest_id",
        "latest_start",
        "long_note_id",
        "mobile",
        "pid",
        "plink",
        "reminder",
        "series_head",
        "series_left",
        "series_rule",
        "showcase_invoices",
    )

    def __init__(
        self,
        pid: str,
        plink: str,
        label: str,
        email: str | None,
        reminder: str,
        mobile: str | None,
        concession: tuple[str, str, str, int] | None,
        case_id: str | None,
    ) -> None:
        self.pid = pid
        self.plink = plink
        self.label = label
        self.email = email
        self.reminder = reminder
        self.mobile = mobile
        self.concession = concession
        self.case_id = case_id
        self.case_attendees: list[str] = []
        self.insurer: _Contact | None = None
        self.created_floor = 0
        self.last_activity = 0
        self.latest_id: str | None = None
        self.latest_start = 0
        self.long_note_id: str | None = None
        self.draft_id: str | None = None
        self.series_head: str | None = None
        self.series_left = 0
        self.series_rule = "null"
        self.showcase_invoices = 0


# --- small pure helpers ----------------------------------------------------------------------------------------


def _api_key(seed: int, shard: str) -> str:
    """A key shaped like Cliniko's: a base64 token, then `-<shard>` (reference §1)."""
    digest = hashlib.sha256(f"cliniko-key-{seed}".encode()).hexdigest()[:24]
    token = base64.b64encode(f"{seed}-{digest}".encode()).decode().rstrip("=")
    return f"{token}-{shard}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _memo_count(rng: random.Random) -> int:
    u = rng.random()
    return 0 if u < 0.8 else 1 if u < 0.95 else rng.randint(2, 3)


def _template_question(name: str, qtype: str, options: tuple[str, ...]) -> dict[str, Any]:
    q: dict[str, Any] = {"name": name, "type": qtype}
    if options:
        q["answers"] = [{"value": o} for o in options]
    if qtype == "checkboxes":
        q["other"] = {"enabled": True}
    if qtype == "paragraph" and name == "Plan":
        q["answer"] = "<p>Continue program</p>"
    return q


def _note_content(rng: random.Random, sections: tuple[Any, ...], draft: bool, long_chars: int) -> str:
    """A note filled in from its template: HTML paragraphs, selected options, a date, body chart ids."""
    out = []
    long_done = False
    for sname, questions in sections:
        qs = []
        for qname, qtype, options in questions:
            if draft and rng.random() < 0.5:
                continue  # a draft is half written
            q: dict[str, Any] = {"name": qname, "type": qtype}
            if qtype == "paragraph":
                if long_chars and not long_done:
                    q["answer"] = _long_text(rng, long_chars)
                    long_done = True
                else:
                    q["answer"] = (
                        f"<p>{rng.choice(data.COMPLAINTS).capitalize()}.</p>"
                        f"<ul><li>{rng.choice(data.FINDINGS)}</li><li>{rng.choice(data.PLANS)}</li></ul>"
                        + ("<p>Pain &lt; 3/10 at rest</p>" if rng.random() < 0.2 else "")
                    )
            elif qtype == "text":
                q["answer"] = str(rng.randint(1, 8))
            elif qtype == "date":
                q["answer"] = f"20{rng.randint(24, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            elif qtype == "radiobuttons":
                pick = rng.randrange(len(options))
                q["answers"] = [
                    {"value": o, "selected": True} if j == pick else {"value": o} for j, o in enumerate(options)
                ]
            elif qtype == "checkboxes":
                q["answers"] = [{"value": o, "selected": True} if rng.random() < 0.4 else {"value": o} for o in options]
                other = rng.random() < 0.1
                q["other"] = {"enabled": True, "selected": other, "value": "Driving" if other else ""}
            elif qtype == "bodycharts":
                q["body_chart_ids"] = [str(800_000_000_000_000_000 + rng.getrandbits(56))]
            qs.append(q)
        if qs:
            out.append({"name": sname, "questions": qs})
    return _encode({"sections": out}) if out else "null"


def _long_text(rng: random.Random, chars: int) -> str:
    """A very long clinical narrative (HTML paragraphs), at least `chars` characters."""
    parts: list[str] = []
    size = 0
    while size < chars:
        p = (
            f"<p>Session review: {rng.choice(data.COMPLAINTS)}. {rng.choice(data.FINDINGS)}. "
            f"{rng.choice(data.PLANS)}. Discussed goals, sleep, work ergonomics and load management in detail; "
            f"patient understands the plan and agrees to continue the home program twice daily.</p>"
        )
        parts.append(p)
        size += len(p)
    return "".join(parts)
