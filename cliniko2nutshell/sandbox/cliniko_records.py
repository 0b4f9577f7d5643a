"""Reading and writing the Cliniko sandbox's SQLite file (schema: cliniko_db.py) from the app's worker threads.

One connection per thread (SQLite connections are not shared across threads here); WAL lets readers run beside
the single writer. Writes run in `BEGIN IMMEDIATE` transactions so two requests never interleave a
read-modify-write of the same record.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.cliniko_query import Where, contains, like

T = TypeVar("T")

# New ids look like today's Cliniko ids (~8.4e17); legacy small ids only come from the generator.
NEW_ID_LOW = 840_000_000_000_000_000
NEW_ID_HIGH = 899_999_999_999_999_999


@dataclass(frozen=True, slots=True)
class Row:
    resource: str
    id: str
    body: str  # JSON text, links under cliniko_db.BASE
    fk: str


class SandboxClock:
    """UTC 'now' for writes: the real clock, but never before the clinic's reference time.

    The generator dates its records up to `meta.reference_time`; if the machine's clock were behind it, a write
    would get an updated_at older than the data and an incremental client would miss it.
    """

    def __init__(self, reference_time: str | None) -> None:
        floor = 0.0
        if reference_time:
            floor = datetime.fromisoformat(reference_time.replace("Z", "+00:00")).timestamp()
        self._offset = max(0.0, floor - time.time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset, UTC).replace(microsecond=0)

    def stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")


class RecordStore:
    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no Cliniko sandbox database at {path}")
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._rng = random.Random()
        # Lists count and page over (resource, created_at, seq) with the scope columns: covered, no row reads.
        self.conn().execute(
            "CREATE INDEX IF NOT EXISTS records_scope ON records"
            " (resource, created_at, seq, archived_at, cancelled_at, deleted_at)"
        )
        meta = self.conn().execute("SELECT key, value FROM meta").fetchall()
        self.meta: dict[str, str] = {r["key"]: r["value"] for r in meta}
        self.clock = SandboxClock(self.meta.get("reference_time"))

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = cliniko_db.connect(self.path)
            # Bodies are read straight from the mapped file instead of through a small page cache.
            conn.execute("PRAGMA mmap_size = 1073741824")
            conn.execute("PRAGMA cache_size = -32768")
            conn.create_function("cliniko_contains", 2, contains, deterministic=True)
            conn.create_function("cliniko_like", 2, like, deterministic=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (after the server stopped: no request is using them)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # --- reads -----------------------------------------------------------------------------------------------

    def page(
        self, resources: Sequence[str], where: Where, order_by: str, limit: int, offset: int
    ) -> tuple[int, list[Row]]:
        """(total matching, the rows of one page)."""
        sql_where, params = self._where(resources, where)
        conn = self.conn()
        total = conn.execute(f"SELECT COUNT(*) FROM records WHERE {sql_where}", params).fetchone()[0]
        # Order and cut the page on row numbers alone, then read the bodies of that page: sorting whole bodies
        # (bookings mix three resources, so they are sorted, not walked in index order) costs far more.
        order = [
            r[0]
            for r in conn.execute(
                f"SELECT seq FROM records WHERE {sql_where} ORDER BY {order_by} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            )
        ]
        if not order:
            return total, []
        marks = ", ".join("?" * len(order))
        found = {
            r["seq"]: Row(r["resource"], r["id"], r["body"], r["fk"])
            for r in conn.execute(f"SELECT seq, resource, id, body, fk FROM records WHERE seq IN ({marks})", order)
        }
        return total, [found[seq] for seq in order if seq in found]

    def one(self, resources: Sequence[str], record_id: str, where: Where) -> Row | None:
        sql_where, params = self._where(resources, where)
        r = (
            self.conn()
            .execute(
                f"SELECT resource, id, body, fk FROM records WHERE {sql_where} AND id = ? ORDER BY seq LIMIT 1",
                (*params, record_id),
            )
            .fetchone()
        )
        return Row(r["resource"], r["id"], r["body"], r["fk"]) if r else None

    def any(self, resource: str, record_id: str) -> Row | None:
        """The record whatever its archived/cancelled state (writes and link checks)."""
        r = (
            self.conn()
            .execute("SELECT resource, id, body, fk FROM records WHERE resource = ? AND id = ?", (resource, record_id))
            .fetchone()
        )
        return Row(r["resource"], r["id"], r["body"], r["fk"]) if r else None

    def singleton(self, name: str) -> str | None:
        r = self.conn().execute("SELECT body FROM singletons WHERE name = ?", (name,)).fetchone()
        return r[0] if r else None

    def blob(self, attachment_id: str) -> sqlite3.Row | None:
        return (
            self.conn()
            .execute("SELECT size, content_type, seed FROM blobs WHERE attachment_id = ?", (attachment_id,))
            .fetchone()
        )

    @staticmethod
    def _where(resources: Sequence[str], where: Where) -> tuple[str, tuple[Any, ...]]:
        marks = ", ".join("?" * len(resources))
        conditions = [f"resource IN ({marks})", *where.conditions]
        return " AND ".join(f"({c})" for c in conditions), (*resources, *where.params)

    # --- writes ----------------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.transaction() as conn:
            return fn(conn)

    def new_id(self, conn: sqlite3.Connection, resource: str) -> str:
        while True:
            candidate = str(self._rng.randint(NEW_ID_LOW, NEW_ID_HIGH))
            taken = conn.execute(
                "SELECT 1 FROM records WHERE resource = ? AND id = ?", (resource, candidate)
            ).fetchone()
            if not taken:
                return candidate

    @staticmethod
    def insert(conn: sqlite3.Connection, resource: str, body: dict[str, Any], fk: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO records (resource, id, created_at, updated_at, archived_at, cancelled_at, deleted_at, fk,"
            " body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                resource,
                body["id"],
                body["created_at"],
                body["updated_at"],
                body.get("archived_at"),
                body.get("cancelled_at"),
                body.get("deleted_at"),
                json.dumps(fk, separators=(",", ":")),
                json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            ),
        )

    @staticmethod
    def replace(conn: sqlite3.Connection, resource: str, body: dict[str, Any], fk: dict[str, Any]) -> None:
        conn.execute(
            "UPDATE records SET updated_at = ?, archived_at = ?, cancelled_at = ?, deleted_at = ?, fk = ?, body = ?"
            " WHERE resource = ? AND id = ?",
            (
                body["updated_at"],
                body.get("archived_at"),
                body.get("cancelled_at"),
                body.get("deleted_at"),
                json.dumps(fk, separators=(",", ":")),
                json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                resource,
                body["id"],
            ),
        )

    @staticmethod
    def rows_where_fk(conn: sqlite3.Connection, resource: str, key: str, value: str) -> list[Row]:
        rows = conn.execute(
            f"SELECT resource, id, body, fk FROM records WHERE resource = ? AND json_extract(fk, '$.{key}') = ?",
            (resource, value),
        ).fetchall()
        return [Row(r["resource"], r["id"], r["body"], r["fk"]) for r in rows]
