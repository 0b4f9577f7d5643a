"""The last sample's diff, kept in the project's store: the wizard's diff viewer (and anything else) reads it after
a restart without reading Nutshell again. Only the newest sample's diff is kept (each sample's CSV and HTML stay
in reports/); a sample run again replaces it.
"""

from __future__ import annotations

from cliniko2nutshell.engine.diff import DiffReport, DiffRow, Status
from cliniko2nutshell.project.store import Store

_COLUMNS = ("object", "source_id", "nutshell_id", "patient_id", "field", "label", "kind", "source", "expected",
            "stored", "status", "note", "reformatted")  # fmt: skip


def save_diff(store: Store, report: DiffReport) -> None:
    """Replace the stored diff with `report` (one transaction: a reader sees the old diff or the new one)."""
    marks = ", ".join("?" * (len(_COLUMNS) + 3))
    with store.transaction() as conn:
        conn.execute("DELETE FROM sample_diff")
        conn.executemany(
            f"INSERT INTO sample_diff (run_id, position, map_version, {', '.join(_COLUMNS)}) VALUES ({marks})",
            (
                (report.run_id, i, report.map_version, r.object, r.source_id, r.nutshell_id, r.patient_id, r.field,
                 r.label, r.kind, r.source, r.expected, r.stored, r.status.value, r.note, int(r.reformatted))
                for i, r in enumerate(report.rows)
            ),
        )  # fmt: skip


def load_diff(store: Store, run_id: int | None = None) -> DiffReport | None:
    """The stored diff (of `run_id`, when given), or None when there is none."""
    row = store.conn.execute(
        "SELECT run_id, map_version FROM sample_diff" + (" WHERE run_id = ?" if run_id is not None else "")
        + " ORDER BY run_id DESC LIMIT 1",
        (run_id,) if run_id is not None else (),
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    found, version = row[0], row[1]
    rows = [
        DiffRow(r["object"], r["source_id"], r["nutshell_id"], r["field"], r["source"], r["expected"], r["stored"],
                Status(r["status"]), r["note"], r["patient_id"], r["label"], r["kind"], bool(r["reformatted"]))
        for r in store.conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sample_diff WHERE run_id = ? ORDER BY position", (found,))
    ]  # fmt: skip
    return DiffReport(found, rows, version)


def drop_diff(store: Store) -> None:
    with store.transaction() as conn:
        conn.execute("DELETE FROM sample_diff")
