"""Notes (patient notes, appointment notes, medical alerts, treatment notes) and files (attachments, rendered
treatment notes) with the logged activities that hold the files.

Notes cannot be backdated and files live only on activities (limitations.py): each note starts with its original
date, and each file goes onto a logged activity of the person dated like the original.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cliniko2nutshell.cliniko.models import MedicalAlert, Patient, PatientAttachment, TreatmentNote
from cliniko2nutshell.mapping.catalog import FileInfo
from cliniko2nutshell.mapping.outputs import (
    USER,
    Context,
    NutshellName,
    Outcome,
    Planned,
    Ref,
    Skip,
    Skipped,
    Unmappable,
    marker,
)
from cliniko2nutshell.mapping.render import Answers, note_answers, note_when, treatment_note_html, treatment_note_text
from cliniko2nutshell.mapping.timeutil import local, unix
from cliniko2nutshell.project.private import make_private_dir, write_private_text

RENDER_DIR = "files/rendered"  # relative to the project folder


def _day(ts: datetime | None, ctx: Context) -> str:
    return local(ts, ctx.tz).strftime("%Y-%m-%d") if ts else "an unknown date"


def _note(kind: str, cid: str, person_id: str, body: str) -> Planned:
    return Planned(
        kind,
        cid,
        {"body": f"{body.rstrip()}\n\n{marker(kind, cid)}", "links": {"parent": Ref("person", person_id)}},
        person_id,
    )


def patient_text_note(kind: str, patient: Patient, survivor: str, ctx: Context) -> Outcome | None:
    """The patient's free-text `notes` (kind patient_note) or `appointment_notes` (kind appointment_note)."""
    object_name, attr, title = {
        "patient_note": ("patient_notes", "notes", "Patient notes"),
        "appointment_note": ("appointment_notes", "appointment_notes", "Appointment notes"),
    }[kind]
    text = (getattr(patient, attr) or "").strip()
    if not text:
        return None
    if ctx.map.object(object_name) is None:
        return Skipped(kind, patient.id, Skip(f"{object_name.replace('_', ' ')} are switched off in the map"), survivor)
    # The notes field has no date of its own: the patient record's last change is the best "as of".
    header = f"{title} from Cliniko (as of {_day(patient.updated_at or patient.created_at, ctx)})"
    return _note(kind, patient.id, survivor, f"{header}:\n\n{text}")


def medical_alert(alert: MedicalAlert, ctx: Context) -> Outcome:
    pid = alert.patient.id if alert.patient else None
    survivor = ctx.catalog.survivor(pid) if pid else None
    if ctx.map.object("medical_alerts") is None:
        return Skipped("medical_alert", alert.id, Skip("medical alerts are switched off in the map"), survivor)
    if alert.is_archived:
        return Skipped("medical_alert", alert.id, Skip("archived (removed) in Cliniko"), survivor)
    if survivor is None:
        return Skipped("medical_alert", alert.id, Unmappable("no patient"), None)
    text = (alert.name or "").strip()
    if not text:
        return Skipped("medical_alert", alert.id, Unmappable("empty alert"), survivor)
    body = f"Medical alert (recorded in Cliniko on {_day(alert.created_at, ctx)}): {text}"
    return _note("medical_alert", alert.id, survivor, body)


def rendered_document(note: TreatmentNote, ctx: Context, answers: Answers | None = None) -> bytes:
    author = note.author_name or ctx.catalog.practitioner_name(note.practitioner.id if note.practitioner else None)
    return treatment_note_html(note, ctx.tz, author, answers).encode("utf-8")


def rendered_path(note_id: str) -> str:
    return f"{RENDER_DIR}/treatment-note-{note_id}.html"


def treatment_note(note: TreatmentNote, ctx: Context) -> list[Outcome]:
    """Three records: the note on the person, a logged activity, and the rendered document on that activity."""
    kinds = ("treatment_note", "treatment_note_activity", "treatment_note_file")
    pid = note.patient.id if note.patient else None
    survivor = ctx.catalog.survivor(pid) if pid else None

    def skipped(why: Skip | Unmappable) -> list[Outcome]:
        return [Skipped(k, note.id, why, survivor) for k in kinds]

    m = ctx.map
    if m.object("treatment_notes") is None:
        return skipped(Skip("treatment notes are switched off in the map"))
    if note.is_archived:
        return skipped(Skip("archived (deleted) in Cliniko"))
    if note.draft and not m.policies.draft_treatment_notes:
        return skipped(Skip("draft treatment note: drafts move only if the map says so"))
    if survivor is None:
        return skipped(Unmappable("no patient"))
    practitioner_id = note.practitioner.id if note.practitioner else None
    author = note.author_name or ctx.catalog.practitioner_name(practitioner_id)
    title = (note.title or "Treatment note").strip()
    when = note_when(note)

    answers = note_answers(note)
    text = treatment_note_text(note, ctx.tz, author, answers)
    out: list[Outcome] = [_note("treatment_note", note.id, survivor, text)]

    if when is None:
        why = Unmappable("no date: the rendered document cannot be placed on a dated activity")
        return [
            *out,
            Skipped("treatment_note_activity", note.id, why, survivor),
            Skipped("treatment_note_file", note.id, why, survivor),
        ]
    document = rendered_document(note, ctx, answers)
    filename = f"treatment-note-{note.id}.html"
    participants: list[Ref] = [Ref("person", survivor)]
    if practitioner_id:
        participants.append(Ref(USER, practitioner_id))
    activity: dict[str, Any] = {
        "name": f"Treatment note: {title}",
        "description": "\n".join(
            [
                f"The treatment note as written in Cliniko is attached ({filename}).",
                f"Author: {author or 'unknown'}",
                f"Migrated from Cliniko ({marker('treatment_note_activity', note.id)})",
            ]
        ),
        "activityType": NutshellName("activity_type", m.value_maps.document_activity_type),
        "startTime": unix(when),
        "endTime": unix(when),
        "isLogged": True,
        "links": {"participants": participants},
    }
    out.append(Planned("treatment_note_activity", note.id, activity, survivor))
    file_payload = {
        "filename": filename,
        "path": rendered_path(note.id),
        "render": "treatment_note",
        "treatment_note_id": note.id,
        "size": len(document),
        "sha256": hashlib.sha256(document).hexdigest(),
        "content_type": "text/html",
        "activity": Ref("treatment_note_activity", note.id),
    }
    out.append(Planned("treatment_note_file", note.id, file_payload, survivor))
    return out


def ensure_rendered(project_dir: Path, note: TreatmentNote, ctx: Context) -> Path:
    """Write the rendered document where the file payload's `path` says (private mode); the engine calls this
    before uploading a "render": "treatment_note" file. Rewrites only when the content changed."""
    data = rendered_document(note, ctx)
    target = project_dir / rendered_path(note.id)
    make_private_dir(target.parent)
    if not target.exists() or target.read_bytes() != data:
        write_private_text(target, data.decode("utf-8"))
    return target


WINDOWS_RESERVED = frozenset(["CON", "PRN", "AUX", "NUL"] + [f"{d}{n}" for d in ("COM", "LPT") for n in range(1, 10)])
_FORBIDDEN_IN_NAMES = frozenset('<>:"|?*')
EMPTY_FILE = "The file is empty (0 bytes) in Cliniko: there is nothing to attach"
_MAX_NAME = 200  # characters: under every file system's 255, with room for a copy's " (2)"


def nutshell_file_name(name: str | None, attachment_id: str, content_type: str | None) -> str:
    """The name a Cliniko attachment gets in Nutshell: one plain file name, whatever Cliniko holds (directories,
    a drive, control or bidi characters, characters or device names Windows refuses, nothing at all), so the file
    is safe wherever somebody downloads it again. The Cliniko name itself goes into the activity's description."""
    base = re.split(r"[\\/]", name or "")[-1]
    kept = "".join(
        "_" if ch in _FORBIDDEN_IN_NAMES else " " if ch.isspace() else ch
        for ch in base
        if ch.isprintable() or ch.isspace()
    )
    text = kept.strip().rstrip(". ")
    if not text.strip("."):
        return f"attachment-{attachment_id}{mimetypes.guess_extension(content_type or '') or ''}"
    if text.split(".")[0].strip().upper() in WINDOWS_RESERVED:
        text = "_" + text
    if len(text) > _MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        keep = f"{dot}{ext}" if dot and 0 < len(ext) <= 16 else ""
        text = (stem if keep else text)[: _MAX_NAME - len(keep)].rstrip(". ") + keep
    return text


def attachment(att: PatientAttachment, file: FileInfo | None, ctx: Context) -> list[Outcome]:
    """Two records: a logged activity of the person and the file on it."""
    kinds = ("attachment_activity", "attachment_file")
    pid = att.patient.id if att.patient else None
    survivor = ctx.catalog.survivor(pid) if pid else None

    def skipped(why: Skip | Unmappable) -> list[Outcome]:
        return [Skipped(k, att.id, why, survivor) for k in kinds]

    if ctx.map.object("patient_attachments") is None:
        return skipped(Skip("attachments are switched off in the map"))
    if att.is_archived:
        return skipped(Skip("archived (deleted) in Cliniko"))
    if survivor is None:
        return skipped(Unmappable("no patient"))
    if att.processing_completed is False:
        return skipped(Unmappable("Cliniko had not finished processing the upload: there is no file to download"))
    if file is None:
        return skipped(Unmappable("not downloaded yet: run the extraction again"))
    limit = ctx.file_size_limit
    if limit is not None and file.size > limit:
        return skipped(Unmappable(f"{file.size} bytes is over Nutshell's file size limit of {limit} bytes"))
    when = att.created_at or att.processed_at
    if when is None:
        return skipped(Unmappable("no date to place the file's activity on"))
    filename = nutshell_file_name(att.filename, att.id, file.content_type or att.content_type)
    lines = []
    obj = ctx.map.object("patient_attachments")
    if att.description and any(r.target == "description.Description" for r in obj.rules()):  # type: ignore[union-attr]
        lines.append(f"Description: {att.description.strip()}")
    if att.filename and att.filename != filename:
        lines.append(f"File name in Cliniko: {att.filename}")
    if file.size == 0:
        lines.append(EMPTY_FILE)
    lines.append(f"Migrated from Cliniko ({marker('attachment_activity', att.id)})")
    activity = {
        "name": f"Attachment: {filename}",
        "description": "\n".join(lines),
        "activityType": NutshellName("activity_type", ctx.map.value_maps.document_activity_type),
        "startTime": unix(when),
        "endTime": unix(when),
        "isLogged": True,
        "links": {"participants": [Ref("person", survivor)]},
    }
    if file.size == 0:
        # Nutshell lists a file of 0 bytes exactly like an upload that never finished (the client refills those),
        # so an empty file could never be told apart from a failed one: the activity says it, the file stays out.
        reason = f"{EMPTY_FILE}; its activity in Nutshell says so"
        return [Planned("attachment_activity", att.id, activity, survivor),
                Skipped("attachment_file", att.id, Unmappable(reason), survivor)]  # fmt: skip
    file_payload = {
        "filename": filename,
        "path": file.path,
        "attachment_id": att.id,
        "size": file.size,
        "sha256": file.sha256,
        "content_type": file.content_type or att.content_type,
        "activity": Ref("attachment_activity", att.id),
    }
    return [
        Planned("attachment_activity", att.id, activity, survivor),
        Planned("attachment_file", att.id, file_payload, survivor),
    ]
