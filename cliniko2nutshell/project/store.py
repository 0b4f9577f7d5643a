"""migration.db: the SQLite store of a project (WAL mode, versioned schema with forward migrations).

It holds the extracted Cliniko records (raw JSON plus the columns the engine queries), the extraction cursors,
the downloaded files' metadata, and (later migrations) the id map and the journal.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cliniko2nutshell.project.private import FILE_MODE, private_umask

# The foreign ids kept as columns, so the engine can join without parsing JSON.
FOREIGN_KEYS = (
    "patient_id",
    "practitioner_id",
    "business_id",
    "appointment_type_id",
    "booking_id",
    "invoice_id",
    "contact_id",
    "user_id",
)

# Each entry moves the schema from version i to i+1. Append only; never edit a released step.
MIGRATIONS: list[str] = [
    # 1: extracted records, cursors, files
    f"""
    CREATE TABLE cliniko_records (
        object TEXT NOT NULL,
        id TEXT NOT NULL,
        created_at TEXT,
        updated_at TEXT,
        archived INTEGER NOT NULL DEFAULT 0,
        cancelled INTEGER NOT NULL DEFAULT 0,
        {", ".join(f"{k} TEXT" for k in FOREIGN_KEYS)},
        raw TEXT NOT NULL,
        extracted_at TEXT NOT NULL,
        PRIMARY KEY (object, id)
    ) WITHOUT ROWID;
    CREATE INDEX cliniko_records_patient ON cliniko_records (object, patient_id);
    CREATE INDEX cliniko_records_updated ON cliniko_records (object, updated_at);

    CREATE TABLE extract_state (
        object TEXT PRIMARY KEY,
        mode TEXT NOT NULL,              -- 'full' or 'incremental'
        run_started_at TEXT NOT NULL,    -- when the current pass began (becomes the next watermark)
        watermark TEXT,                  -- updated_at lower bound of the current pass (None: everything)
        next_url TEXT,                   -- the page to fetch next; None once the pass completed
        pages INTEGER NOT NULL DEFAULT 0,
        records INTEGER NOT NULL DEFAULT 0,
        completed_at TEXT,               -- set when the pass has read its last page
        last_watermark TEXT              -- watermark for the next incremental pass
    );

    CREATE TABLE attachment_files (
        attachment_id TEXT PRIMARY KEY,
        path TEXT NOT NULL,              -- relative to the project folder
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content_type TEXT,
        downloaded_at TEXT NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    pass


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class RecordRow:
    """One extracted record as the store keeps it."""

    object: str
    id: str
    raw: dict[str, Any]
    created_at: str | None = None
    updated_at: str | None = None
    archived: bool = False
    cancelled: bool = False
    foreign: dict[str, str | None] = field(default_factory=dict)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        with private_umask():
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{path}{suffix}")
            if p.exists():
                p.chmod(FILE_MODE)

    # -- schema ------------------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer cliniko2nutshell (schema {current}, "
                f"this version knows {SCHEMA_VERSION}). Upgrade the tool to open it."
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[version]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: one durable step; rolled back whole on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # -- extracted records ---------------------------------------------------------------------------------
    def upsert_records(self, rows: Iterable[RecordRow], conn: sqlite3.Connection | None = None) -> int:
        """Insert or replace records; call inside `transaction()` to commit them with a cursor move."""
        now = utcnow()
        params = [
            (
                r.object,
                r.id,
                r.created_at,
                r.updated_at,
                int(r.archived),
                int(r.cancelled),
                *(r.foreign.get(k) for k in FOREIGN_KEYS),
                json.dumps(r.raw, separators=(",", ":"), ensure_ascii=False),
                now,
            )
            for r in rows
        ]
        placeholders = ", ".join("?" * (8 + len(FOREIGN_KEYS)))
        (conn or self.conn).executemany(
            f"INSERT OR REPLACE INTO cliniko_records (object, id, created_at, updated_at, archived, cancelled, "
            f"{', '.join(FOREIGN_KEYS)}, raw, extracted_at) VALUES ({placeholders})",
            params,
        )
        return len(params)

    def get_record(self, object_: str, id_: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT raw FROM cliniko_records WHERE object = ? AND id = ?", (object_, id_)
        ).fetchone()
        return json.loads(row["raw"]) if row else None

    def iter_records(
        self, object_: str, *, include_archived: bool = True, where: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Raw records of one object, in id order; `where` filters on the foreign-id columns."""
        sql = "SELECT raw FROM cliniko_records WHERE object = ?"
        args: list[Any] = [object_]
        if not include_archived:
            sql += " AND archived = 0"
        for key, value in (where or {}).items():
            if key not in FOREIGN_KEYS:
                raise ValueError(f"cannot filter on {key!r}")
            sql += f" AND {key} = ?"
            args.append(value)
        for row in self.conn.execute(sql + " ORDER BY id", args):
            yield json.loads(row["raw"])

    def count_records(self, object_: str | None = None) -> dict[str, int]:
        """Record counts per object (or for one object)."""
        if object_ is None:
            rows = self.conn.execute("SELECT object, COUNT(*) FROM cliniko_records GROUP BY object")
        else:
            rows = self.conn.execute(
                "SELECT object, COUNT(*) FROM cliniko_records WHERE object = ? GROUP BY object", (object_,)
            )
        return {r[0]: r[1] for r in rows}


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script (semicolons inside comments are fine)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [s for s in statements if s]
