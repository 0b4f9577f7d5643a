"""The audit log: every journal entry (each write to Nutshell, and each undo) as a person reads it, filtered and
paged, for `cliniko2nutshell log` and the wizard's audit-log screen.

    flt = AuditFilter(run=3, object="person", status="failed")
    total = count_audit_entries(store, flt)
    page = audit_entries(store, flt, limit=500, offset=0)   # ordered by time (journal order)
    write_audit_csv(store, flt, path)                       # every matching entry

Entries carry ids, actions and Nutshell's error messages; never names or e-mails (the journal holds none).
Reads are paged in SQL, so a screen never loads the whole journal (millions of rows at 100,000 patients).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cliniko2nutshell.mapping.report_writers import write_csv_file
from cliniko2nutshell.project.store import Store

# Rows fetched per step while streaming an export (memory stays flat at any journal size).
_EXPORT_BATCH = 5000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str  # when the entry was made (UTC, the intent before the call)
    run_id: int
    run_kind: str  # sample | full | delta | retry | rollback
    object: str  # migration object: person, company, appointment, attachment...
    action: str  # create | link | update | replace | upload | delete | restore | undelete | skip
    cliniko_id: str
    nutshell_id: str | None  # the record written (or acted on)
    status: str  # intent | done | failed | unknown | void | skipped
    error: str | None
    seq: int = 0  # the journal's sequence number: a stable key for a row
    finished_at: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field narrows the entries; None (or empty) leaves that dimension open."""

    run: int | None = None
    object: str | None = None
    action: str | None = None
    status: str | None = None
    text: str | None = None  # a substring of the Cliniko id, the Nutshell id or the error (case-insensitive)


HEADER = [f.name for f in fields(AuditEntry)]

_SELECT = (
    "SELECT j.seq, j.started_at AS at, j.finished_at, j.run_id, r.kind AS run_kind, j.object, j.action, "
    "j.source_id AS cliniko_id, COALESCE(j.nutshell_id, j.target_id) AS nutshell_id, j.state AS status, j.error "
    "FROM journal j JOIN runs r ON r.id = j.run_id"
)


def _where(flt: AuditFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("j.run_id", flt.run), ("j.object", flt.object), ("j.action", flt.action),
                          ("j.state", flt.status)):  # fmt: skip
        if value not in (None, ""):
            clauses.append(f"{column} = ?")
            args.append(value)
    if flt.text and flt.text.strip():
        like = "%" + flt.text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            "(j.source_id LIKE ? ESCAPE '\\' OR j.nutshell_id LIKE ? ESCAPE '\\' OR j.target_id LIKE ? ESCAPE '\\' "
            "OR j.error LIKE ? ESCAPE '\\')"
        )
        args += [like] * 4
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        run_id=row["run_id"],
        run_kind=row["run_kind"],
        object=row["object"],
        action=row["action"],
        cliniko_id=row["cliniko_id"],
        nutshell_id=row["nutshell_id"],
        status=row["status"],
        error=row["error"],
        seq=row["seq"],
        finished_at=row["finished_at"],
    )


def audit_entries(store: Store, flt: AuditFilter, *, limit: int | None = None, offset: int = 0) -> list[AuditEntry]:
    """The matching entries in journal order (the order they happened), `limit` of them from `offset`."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("limit and offset must not be negative")
    where, args = _where(flt)
    sql = f"{_SELECT}{where} ORDER BY j.seq LIMIT ? OFFSET ?"
    rows = store.conn.execute(sql, [*args, -1 if limit is None else limit, offset])
    return [_entry(r) for r in rows]


def count_audit_entries(store: Store, flt: AuditFilter) -> int:
    where, args = _where(flt)
    return int(store.conn.execute(f"SELECT COUNT(*) FROM journal j{where}", args).fetchone()[0])


def audit_facets(store: Store) -> dict[str, list[Any]]:
    """What the filter menus offer: the runs (`{"id", "kind", "started_at"}`, newest first), and the objects,
    actions and statuses that occur in the journal."""
    conn = store.conn
    runs = [
        {"id": r["id"], "kind": r["kind"], "started_at": r["started_at"]}
        for r in conn.execute("SELECT id, kind, started_at FROM runs ORDER BY id DESC")
    ]
    return {
        "runs": runs,
        "objects": _distinct(store, "object"),
        "actions": _distinct(store, "action"),
        "statuses": _distinct(store, "state"),
    }


def _distinct(store: Store, column: str) -> list[str]:
    # A loose index scan over the index led by `column` (store migration 6): one seek per distinct value, where
    # SELECT DISTINCT would read every row.
    sql = (
        f"WITH RECURSIVE v(x) AS (SELECT MIN({column}) FROM journal UNION ALL "
        f"SELECT (SELECT MIN({column}) FROM journal WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL) "
        "SELECT x FROM v WHERE x IS NOT NULL"
    )
    return [r[0] for r in store.conn.execute(sql)]


def iter_audit_entries(store: Store, flt: AuditFilter) -> Iterator[AuditEntry]:
    """Every matching entry, in journal order, read in batches (keyset paging on `seq`)."""
    where, args = _where(flt)
    joiner = " AND " if where else " WHERE "
    after = 0
    while True:
        sql = f"{_SELECT}{where}{joiner}j.seq > ? ORDER BY j.seq LIMIT ?"
        rows = store.conn.execute(sql, [*args, after, _EXPORT_BATCH]).fetchall()
        if not rows:
            return
        for row in rows:
            yield _entry(row)
        after = rows[-1]["seq"]


def write_audit_csv(store: Store, flt: AuditFilter, path: Path) -> int:
    """Every matching entry into a CSV at `path` (private, written atomically; cells a spreadsheet would read as a
    formula are neutralised); returns how many entries were written."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a folder: choose where the CSV goes")
    rows = ([getattr(e, name) for name in HEADER] for e in iter_audit_entries(store, flt))
    return write_csv_file(path, HEADER, rows)
