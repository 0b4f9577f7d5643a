"""How a record we wrote can be recognised in Nutshell without our journal, and how we hash what we send.

People carry the Cliniko Patient ID custom field. Companies, activities and notes carry a short marker line,
`cliniko:<object>:<id>`, at the end of their description or body: after a crash, an operation whose outcome is
unknown is settled by finding its marker, and reconcile counts what Nutshell holds for this project by them.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

PATIENT_ID_FIELD = "Cliniko Patient ID"
_MARKER = re.compile(r"cliniko:([a-z_]+):([0-9A-Za-z_.-]+)")
# Fields that change with our own later writes rather than with anyone's edit: files arrive on a document
# activity after it is created.
UNFINGERPRINTED = frozenset({"files"})


def marker(object_: str, source_id: str) -> str:
    return f"cliniko:{object_}:{source_id}"


def with_marker(text: str | None, mark: str) -> str:
    """`text` ending with the marker line (once)."""
    text = (text or "").rstrip()
    if mark in text:
        return text
    return f"{text}\n\n{mark}" if text else mark


def markers_in(text: object) -> list[tuple[str, str]]:
    """(object, source id) of every marker in a description or body."""
    return _MARKER.findall(text) if isinstance(text, str) else []


def remote_markers(entity: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    """The markers a record read from Nutshell carries, whatever kind it is."""
    if entity == "contacts":
        value = (fields.get("customFields") or {}).get(PATIENT_ID_FIELD)
        return [("person", str(value).strip())] if value not in (None, "") else []
    if entity == "notes":
        return markers_in(fields.get("body"))
    return markers_in(fields.get("description"))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


def fingerprint(fields: dict[str, Any]) -> str:
    """Per-field short hashes (JSON), so a later comparison can name the fields someone edited."""
    parts: dict[str, str] = {}
    for key, value in fields.items():
        if key in UNFINGERPRINTED:
            continue
        if key == "customFields" and isinstance(value, dict):
            for name, inner in value.items():
                if _normal(inner) is not None:
                    parts[f"customFields.{name}"] = digest(inner)[:12]
            continue
        if _normal(value) is not None:  # absent and empty are the same field
            parts[key] = digest(value)[:12]
    return canonical(parts)


def field_value(fields: dict[str, Any], name: str) -> Any:
    """The value of a field named as `fingerprint` and `edited_fields` name them ("customFields.<Name>" inside)."""
    if name.startswith("customFields."):
        inner = fields.get("customFields")
        return inner.get(name.removeprefix("customFields.")) if isinstance(inner, dict) else None
    return fields.get(name)


def edited_fields(old_fingerprint: str | None, fields: dict[str, Any]) -> list[str]:
    """Names of the fields whose value moved since `old_fingerprint` was taken ([] when none or unknown)."""
    if not old_fingerprint:
        return []
    old = json.loads(old_fingerprint)
    new = json.loads(fingerprint(fields))
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _normal(value: Any) -> Any:
    """Empty is empty: Nutshell may answer "" where we sent nothing, or [] where it had null."""
    if value in ("", None, [], {}):
        return None
    return value
