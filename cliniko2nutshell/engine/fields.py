"""Comparing what we send with what Nutshell holds, field by field (payload shape on both sides).

`customFields` and `links` are compared name by name, every other top-level key as a whole. Lists of objects (emails,
phones, addresses) compare on the keys we send: Nutshell adds its own (formatted numbers, ids).
"""

from __future__ import annotations

from typing import Any

# Compared name by name: custom fields, and links (relation by relation: a person with an owner but no company
# still gets the company under link-and-fill-empty, and a patch touches only the relations it names).
NESTED = ("customFields", "links")


def empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def same(expected: Any, stored: Any) -> bool:
    """Does `stored` hold `expected`? Empty equals empty; objects compare on the keys we sent."""
    if empty(expected) or empty(stored):
        return empty(expected) and empty(stored)
    if isinstance(stored, dict) and "amount" in stored and not isinstance(expected, dict):
        # a Currency custom field: we send the amount, Nutshell answers {"currency", "amount"}
        return same(expected, stored["amount"])
    if isinstance(expected, dict) and isinstance(stored, dict):
        return all(same(v, stored.get(k)) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(stored, list):
        if len(expected) != len(stored):
            return False
        if all(isinstance(v, str) for v in expected + stored):
            return sorted(v.strip() for v in expected) == sorted(v.strip() for v in stored)  # ids: order is not ours
        return all(same(_unlabelled(e), s) for e, s in zip(expected, stored, strict=True))
    if isinstance(expected, str) and isinstance(stored, str):
        return expected.strip() == stored.strip()
    if isinstance(expected, bool) or isinstance(stored, bool):
        return expected is stored
    if isinstance(expected, int | float) and isinstance(stored, int | float | str):
        try:
            return float(expected) == float(stored)
        except ValueError:
            return False
    return bool(expected == stored)


def _unlabelled(element: Any) -> Any:
    """An e-mail, phone or address without its label: labels are Nutshell's to normalise, and its JSON-RPC
    reads do not always carry them, so a label never makes two values differ."""
    return {k: v for k, v in element.items() if k != "name"} if isinstance(element, dict) else element


def _pairs(payload: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    """(key, custom field name or None, value) for every field of a payload."""
    out: list[tuple[str, str | None, Any]] = []
    for key, value in payload.items():
        if key in NESTED and isinstance(value, dict):
            out += [(key, name, inner) for name, inner in value.items()]
        else:
            out.append((key, None, value))
    return out


def _get(fields: dict[str, Any], key: str, name: str | None) -> Any:
    value = fields.get(key)
    if name is None:
        return value
    return (value or {}).get(name) if isinstance(value, dict) else None


def _put(out: dict[str, Any], key: str, name: str | None, value: Any) -> None:
    if name is None:
        out[key] = value
    else:
        out.setdefault(key, {})[name] = value


def changes_needed(payload: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The part of `payload` that `stored` does not hold yet."""
    out: dict[str, Any] = {}
    for key, name, value in _pairs(payload):
        if not same(value, _get(stored, key, name)):
            _put(out, key, name, value)
    return out


def fill_empty(payload: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The part of `payload` for fields `stored` has empty (link-and-fill-empty: we never overwrite theirs)."""
    out: dict[str, Any] = {}
    for key, name, value in _pairs(payload):
        if not empty(value) and empty(_get(stored, key, name)):
            _put(out, key, name, value)
    return out


def restrict(payload: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """The fields of `payload` named in `keys` ("emails", "customFields.Date of Birth")."""
    out: dict[str, Any] = {}
    for key, name, value in _pairs(payload):
        if (f"{key}.{name}" if name is not None else key) in keys:
            _put(out, key, name, value)
    return out


def field_names(changes: dict[str, Any]) -> set[str]:
    return {f"{key}.{name}" if name is not None else key for key, name, _ in _pairs(changes)}


def before_of(changes: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """What `stored` holds for the fields `changes` will set: the pre-image a rollback writes back."""
    out: dict[str, Any] = {}
    for key, name, _ in _pairs(changes):
        _put(out, key, name, _get(stored, key, name))
    return out


def apply(stored: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """What `stored` holds once `changes` are written (customFields and links name by name): an update that
    answers nothing (a PATCH's 204) is not read back."""
    out = {k: (dict(v) if k in NESTED and isinstance(v, dict) else v) for k, v in stored.items()}
    for key, name, value in _pairs(changes):
        _put(out, key, name, value)
    return out


def holds(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Does `stored` hold every field of `wanted`?"""
    return all(same(value, _get(stored, key, name)) for key, name, value in _pairs(wanted))
