"""Tolerant readers for the value shapes the two Nutshell protocols disagree on.

JSON-RPC gives ATOM timestamps (offset with or without a colon), multi-value fields as objects keyed "0", "1",
a label or "--primary", and names as an object on full entities but a string on stubs. REST gives Unix
timestamps, lists of `{isPrimary, name, value}` and string names. Everything here accepts all of those.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

PRIMARY_KEY = "--primary"


def parse_time(value: object) -> datetime | None:
    """A timestamp from Unix seconds (int, float or digit string) or ATOM/RFC 3339 text; None for empty."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        try:
            # Python 3.11 reads "+0000" as well as "+00:00" and "Z".
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"not a timestamp: {value!r}")


def to_unix(value: datetime | int | float) -> int:
    """Unix seconds for REST; naive datetimes are taken as UTC."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def to_atom(value: datetime) -> str:
    """ATOM text as JSON-RPC writes it ("2024-03-30T18:00:00+0000")."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def person_name(value: object) -> str:
    """A display name from a name object ({givenName, familyName, displayName, ...}) or a plain string."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        display = value.get("displayName") or value.get("name")
        if isinstance(display, str) and display.strip():
            return display
        parts = [value.get(k) for k in ("givenName", "familyName")]
        return " ".join(p for p in parts if isinstance(p, str) and p)
    return str(value)


def name_parts(value: object) -> tuple[str | None, str | None]:
    """(given, family) when the name is an object that says so."""
    if isinstance(value, dict):
        given, family = value.get("givenName"), value.get("familyName")
        return (given if isinstance(given, str) else None, family if isinstance(family, str) else None)
    return None, None


def multi_values(raw: object) -> list[tuple[str | None, Any, bool]]:
    """(label, value, is_primary) for every element of a multi-value field, in the order given.

    Accepts a REST list of `{isPrimary, name, value}`, a JSON-RPC object keyed by index or label with a
    "--primary" duplicate, a plain list, or a single scalar. Index keys ("0") carry no label.
    """
    if raw is None or raw == "" or raw == {} or raw == []:
        return []
    if isinstance(raw, dict):
        primary = raw.get(PRIMARY_KEY)
        items = [(None if str(k).isdigit() else str(k), v) for k, v in raw.items() if k != PRIMARY_KEY]
        return _mark_primary(items, primary, PRIMARY_KEY in raw)
    if isinstance(raw, list | tuple):
        out: list[tuple[str | None, Any, bool]] = []
        flagged = False
        for element in raw:
            if isinstance(element, dict) and "value" in element and ("isPrimary" in element or "name" in element):
                label = element.get("name")
                is_primary = bool(element.get("isPrimary")) and not flagged
                flagged = flagged or is_primary
                value = element["value"]
                if isinstance(value, dict):
                    # REST addresses keep the street fields beside `value` (which holds the location).
                    merged = {k: v for k, v in element.items() if k not in ("name", "isPrimary", "value")}
                    merged.update(value)
                    value = merged
                elif _is_address_element(element):
                    value = {k: v for k, v in element.items() if k not in ("name", "isPrimary")}
                out.append((label if isinstance(label, str) else None, value, is_primary))
            elif isinstance(element, dict) and _is_address_element(element):
                label = element.get("name")
                is_primary = bool(element.get("isPrimary")) and not flagged
                flagged = flagged or is_primary
                value = {k: v for k, v in element.items() if k not in ("name", "isPrimary")}
                out.append((label if isinstance(label, str) else None, value, is_primary))
            else:
                out.append((None, element, False))
        if out and not flagged:
            label, value, _ = out[0]
            out[0] = (label, value, True)
        return out
    return [(None, raw, True)]


def _is_address_element(element: dict[str, Any]) -> bool:
    return any(k in element for k in ("address_1", "city", "postalCode", "country", "state"))


def _mark_primary(
    items: Iterable[tuple[str | None, Any]], primary: Any, has_primary: bool
) -> list[tuple[str | None, Any, bool]]:
    out: list[tuple[str | None, Any, bool]] = []
    found = False
    for label, value in items:
        is_primary = has_primary and not found and value == primary
        found = found or is_primary
        out.append((label, value, is_primary))
    if not out and has_primary:
        # Only "--primary" was sent: it is the one value.
        return [(None, primary, True)]
    if out and not found:
        label, value, _ = out[0]
        out[0] = (label, value, True)
    return out


def phone_text(value: object) -> str:
    """The comparable text of a phone value: E.164 when Nutshell parsed it, else what it holds."""
    if isinstance(value, dict):
        for key in ("E164", "numberFormatted", "countryCodeAndNumber", "number"):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text
        return ""
    return "" if value is None else str(value)
