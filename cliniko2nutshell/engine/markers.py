"""How a record we wrote can be recognised in Nutshell without our journal, and how we hash what we send.

People carry the Cliniko Patient ID custom field. Companies, activities and notes carry a short marker line,
`cliniko:<object>:<id>`, at the end of their description or body: after a crash, an operation whose outcome is
unknown is settled by finding its marker, and reconcile counts what Nutshell holds for this project by them.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
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
    """Per-field short hashes of what a record holds, so a later read can name the fields someone edited.

    Taken from what we sent (creates are one call: nothing is read back), so each value is first put in a form
    that Nutshell's own rewriting does not move: see `comparable`. Marked "v2:"; a journal's older fingerprints
    (exact values, taken from a read-back) are still compared their own way (`legacy_fingerprint`)."""
    parts: dict[str, str] = {}
    for key, value in fields.items():
        if key in UNFINGERPRINTED:
            continue
        if key in _BY_NAME and isinstance(value, dict):
            for name, inner in value.items():
                if (canon := comparable(f"{key}.{name}", inner)) is not None:
                    parts[f"{key}.{name}"] = digest(canon)[:12]
            continue
        if (canon := comparable(key, value)) is not None:
            parts[key] = digest(canon)[:12]
    return V2 + canonical(parts)


def legacy_fingerprint(fields: dict[str, Any]) -> str:
    """The fingerprint journals held before v2: exact values of a record as read back after the write."""
    parts: dict[str, str] = {}
    for key, value in fields.items():
        if key in UNFINGERPRINTED or key in _NOT_IN_LEGACY:
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
    if old_fingerprint.startswith(V2):
        old, new = json.loads(old_fingerprint[len(V2) :]), json.loads(fingerprint(fields)[len(V2) :])
    else:
        old, new = json.loads(old_fingerprint), json.loads(legacy_fingerprint(fields))
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


V2 = "v2:"
_BY_NAME = ("customFields", "links")  # compared name by name (as engine/fields.py compares them)
_NOT_IN_LEGACY = frozenset({"isCancelled"})  # read back since v2 (an update keeps it); legacy reads never had it
_DIGITS = re.compile(r"\d")
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00:?00)?)?$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
PHONE_DIGITS = 9


def comparable(key: str, value: Any) -> Any:
    """`value` of field `key` in the form it is compared in; None when empty (absent and empty are the same).

    What we send and what Nutshell answers differ in form, not in content. Unconfirmed how the live service
    rewrites values; we choose forms that survive the rewrites seen or plausible: labels of e-mails, phones and
    addresses are Nutshell's to normalise and do not count; e-mails compare without case; phones by their last
    nine digits (a national number and its international form agree); Currency values by amount (sent bare,
    answered as {currency, amount}); numbers by value; dates by day; text without surrounding space; ids in any
    order."""
    if _normal(value) is None:
        return None
    if key in ("emails", "phones", "urls", "addresses") and isinstance(value, list):
        items = [_point(key, v) for v in value if isinstance(v, dict)]
        items = [i for i in items if i is not None]
        return sorted(items, key=canonical) or None
    if key.startswith("links.") or isinstance(value, list):
        ids = value if isinstance(value, list) else [value]
        return sorted(str(v).strip() for v in ids if _normal(v) is not None) or None
    return _scalar(value)


def _point(key: str, element: dict[str, Any]) -> Any:
    primary = bool(element.get("isPrimary"))
    if key == "addresses":
        parts = element.get("value") if isinstance(element.get("value"), dict) else element
        kept = {k: _scalar(v) for k, v in parts.items() if k not in ("isPrimary", "name") and _normal(v) is not None}
        return [primary, kept] if kept else None
    value = element.get("value")
    if not isinstance(value, str) or not value.strip():
        return None
    if key == "phones":
        return [primary, "".join(_DIGITS.findall(value))[-PHONE_DIGITS:]]
    return [primary, value.strip().casefold() if key == "emails" else value.strip()]


def _scalar(value: Any) -> Any:
    if isinstance(value, dict) and "amount" in value:
        return _scalar(value["amount"])  # a Currency value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        text = value.strip().replace("\r\n", "\n")
        if _NUMBER.match(text):
            return _number(text)
        if date := _DATE.match(text):
            return date.group(1)
        return text
    if isinstance(value, dict):
        return {k: _scalar(v) for k, v in value.items() if _normal(v) is not None}
    return value


def _number(value: int | float | str) -> str:
    return format(Decimal(str(value)).normalize(), "f")


def _normal(value: Any) -> Any:
    """Empty is empty: Nutshell may answer "" where we sent nothing, or [] where it had null."""
    if value in ("", None, [], {}):
        return None
    return value
