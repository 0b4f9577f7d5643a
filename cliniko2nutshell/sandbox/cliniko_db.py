"""The Cliniko sandbox's state: one SQLite file written by the clinic generator and served by the Cliniko app.

Bodies are stored as the API serves them, except that links are written relative to BASE, a placeholder the
server replaces with its own `http://127.0.0.1:<port>/v1` when it answers (a text replace on the JSON, no parse).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BASE = "{{base}}"

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: the tie-break of the default created_at sort
    resource TEXT NOT NULL,                 -- the collection name: 'patients', 'individual_appointments', ...
    id TEXT NOT NULL,                       -- int64 as a decimal string
    created_at TEXT NOT NULL,               -- UTC, 'YYYY-MM-DDTHH:MM:SSZ' (sorts as text)
    updated_at TEXT NOT NULL,
    archived_at TEXT,
    cancelled_at TEXT,
    deleted_at TEXT,
    fk TEXT NOT NULL DEFAULT '{}',          -- relation ids for q[] filters: {"patient_id": "12", "patient_ids": [..]}
    body TEXT NOT NULL                      -- the JSON object as served, links under BASE
);
-- Uniqueness as an index, not a table constraint, so the generator can build it once after loading.
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records (resource, id);
-- Lists count and page over (resource, created_at, seq) within the archive/cancel scope: a covering index.
CREATE INDEX IF NOT EXISTS records_scope ON records (resource, created_at, seq, archived_at, cancelled_at, deleted_at);
CREATE INDEX IF NOT EXISTS records_updated ON records (resource, updated_at, seq);
CREATE TABLE IF NOT EXISTS singletons (
    name TEXT PRIMARY KEY,                  -- 'settings' (GET /settings), 'public_settings', 'current_user_id'
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (          -- attachment contents, generated on demand from a seed
    attachment_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    seed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,                   -- 'seed', 'patients', 'shard', 'api_key', 'generator_version',
    value TEXT NOT NULL                     -- 'reference_time', 'nutshell_seed' (JSON, see nutshell seed doc)
);
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.executescript(SCHEMA)
    return conn


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def get_meta_json(conn: sqlite3.Connection, key: str) -> Any:
    value = get_meta(conn, key)
    return json.loads(value) if value is not None else None


def blob_chunks(seed: int, size: int, content_type: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The deterministic content of an attachment: a recognisable header, then seeded random bytes."""
    header = {
        "application/pdf": b"%PDF-1.4\n",
        "image/jpeg": b"\xff\xd8\xff\xe0",
        "image/png": b"\x89PNG\r\n\x1a\n",
        "text/plain": b"",
    }.get(content_type, b"")[:size]
    rng = random.Random(seed)
    sent = 0
    if header:
        yield header
        sent = len(header)
    while sent < size:
        n = min(chunk, size - sent)
        if content_type == "text/plain":
            yield (
                bytes(rng.choice(b"abcdefghij klmnopqrstuvwxyz\n") for _ in range(n))
                if n < 4096
                else ((b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * (n // 56 + 1))[:n])
            )
        else:
            yield rng.randbytes(n)
        sent += n
