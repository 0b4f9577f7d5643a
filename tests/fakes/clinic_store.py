"""Load a synthetic clinic (the Cliniko sandbox's SQLite file) straight into a project store, as the extraction
would leave it, without HTTP: the engine's unit tests need realistic records, not the transport."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cliniko2nutshell.cliniko.resources import BY_OBJECT, SETTINGS_ID, SETTINGS_OBJECT
from cliniko2nutshell.project.folder import Project
from cliniko2nutshell.project.private import make_private_dir, open_private_binary
from cliniko2nutshell.project.store import AttachmentFile, RecordRow, utcnow
from cliniko2nutshell.sandbox import cliniko_db

BASE = "http://127.0.0.1:9/v1"


def load_clinic(project: Project, clinic_db: Path) -> dict[str, int]:
    """Every record the extraction would store (bookings aside), attachments downloaded. Returns counts."""
    conn = cliniko_db.connect(clinic_db)
    store = project.store
    counts: dict[str, int] = {}
    try:
        with store.transaction() as tx:
            for resource, spec in BY_OBJECT.items():
                rows = conn.execute("SELECT body FROM records WHERE resource = ? ORDER BY seq", (resource,))
                batch = [spec.row(json.loads(r[0].replace(cliniko_db.BASE, BASE))) for r in rows]
                store.upsert_records(batch, tx)
                counts[resource] = len(batch)
            settings = conn.execute("SELECT body FROM singletons WHERE name = 'settings'").fetchone()
            if settings is not None:
                raw = json.loads(settings[0].replace(cliniko_db.BASE, BASE))
                store.upsert_records([RecordRow(SETTINGS_OBJECT, SETTINGS_ID, raw)], tx)
        folder = make_private_dir(project.path / "files" / "attachments")
        blobs = conn.execute(
            "SELECT b.attachment_id, b.size, b.content_type, b.seed, r.body FROM blobs b "
            "JOIN records r ON r.resource = 'patient_attachments' AND r.id = b.attachment_id"
        ).fetchall()
        for att_id, size, content_type, seed, body in blobs:
            if json.loads(body).get("processing_completed") is False:
                continue
            digest = hashlib.sha256()
            fd = open_private_binary(folder / att_id)
            with open(fd, "wb") as fh:
                for chunk in cliniko_db.blob_chunks(seed, size, content_type):
                    digest.update(chunk)
                    fh.write(chunk)
            store.record_attachment_file(
                AttachmentFile(att_id, f"files/attachments/{att_id}", size, digest.hexdigest(), content_type, utcnow())
            )
    finally:
        conn.close()
    return counts


def nutshell_seed(clinic_db: Path) -> dict:
    conn = cliniko_db.connect(clinic_db)
    try:
        return cliniko_db.get_meta_json(conn, "nutshell_seed")
    finally:
        conn.close()
