"""How values read on screen: durations, counts, sizes, paths. Pure: no Textual."""

from __future__ import annotations

from pathlib import Path


def duration(seconds: float | None) -> str:
    """'about 3 h 20 min', '4 min', '35 s'."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def home_path(path: Path | str) -> str:
    """A path as a person reads it: under the home folder as ~/..."""
    p = Path(path)
    try:
        return "~/" + str(p.relative_to(Path.home()))
    except ValueError:
        return str(p)


# What the engine's record kinds (mapping/outputs.py KINDS) are called on screen, in the order a run writes them.
KIND_LABELS = {
    "company": "Companies",
    "business_company": "Businesses",
    "person": "People",
    "appointment": "Appointments",
    "attendance": "Group attendances",
    "communication": "Communications",
    "treatment_note_activity": "Note activities",
    "attachment_activity": "File activities",
    "treatment_note": "Treatment notes",
    "patient_note": "Patient notes",
    "appointment_note": "Appt. notes",
    "medical_alert": "Medical alerts",
    "treatment_note_file": "Note documents",
    "attachment_file": "Attachments",
}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def kind_order(kind: str) -> tuple[int, str]:
    order = list(KIND_LABELS)
    return (order.index(kind) if kind in order else len(order), kind)
