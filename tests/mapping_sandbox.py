"""A sandbox clinic (the generator's SQLite file) loaded into a project store, as the extraction would leave it.
Shared by the pre-flight tests and tests/benchmarks/bench_preflight.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cliniko2nutshell.project.store import FOREIGN_KEYS, AttachmentFile, RecordRow, Store
from cliniko2nutshell.sandbox import cliniko_db

BASE = "https://api.example.test/v1"


def load_clinic(db_path: Path, store: Store, *, analyze: bool = True) -> dict[str, Any]:
    """The sandbox DB's records into a project store, as the extraction would leave them (attachments that
    finished processing counted as downloaded). Returns the clinic's meta."""
    conn = cliniko_db.connect(db_path)
    try:
        done: set[str] = set()
        batch: list[RecordRow] = []

        def flush() -> None:
            with store.transaction() as tx:
                store.upsert_records(batch, tx)
            batch.clear()

        for r in conn.execute(
            "SELECT resource, id, created_at, updated_at, archived_at, cancelled_at, fk, body FROM records"
        ):
            fk = json.loads(r["fk"])
            row = RecordRow(
                r["resource"],
                r["id"],
                json.loads(r["body"].replace(cliniko_db.BASE, BASE)),
                r["created_at"],
                r["updated_at"],
                r["archived_at"] is not None,
                r["cancelled_at"] is not None,
                {k: fk[k] for k in FOREIGN_KEYS if isinstance(fk.get(k), str)},
            )
            if row.object == "patient_attachments" and row.raw.get("processing_completed"):
                done.add(row.id)
            batch.append(row)
            if len(batch) >= 5000:
                flush()
        settings = conn.execute("SELECT body FROM singletons WHERE name = 'settings'").fetchone()
        batch.append(RecordRow("settings", "settings", json.loads(settings[0].replace(cliniko_db.BASE, BASE))))
        flush()
        for b in conn.execute("SELECT attachment_id, size, content_type FROM blobs"):
            if b[0] in done:
                store.record_attachment_file(
                    AttachmentFile(b[0], f"files/attachments/{b[0]}", b[1], "0" * 64, b[2], "2026-11-01T00:00:00Z")
                )
        # Query-planner statistics, as the extraction should leave them (see the report to the lead): without
        # them SQLite scans a whole object for each patient's records.
        if analyze:
            store.conn.execute("ANALYZE")
        return {
            "hard_cases": cliniko_db.get_meta_json(conn, "hard_cases"),
            "nutshell_seed": cliniko_db.get_meta_json(conn, "nutshell_seed"),
            "reference_time": cliniko_db.get_meta(conn, "reference_time"),
        }
    finally:
        conn.close()
