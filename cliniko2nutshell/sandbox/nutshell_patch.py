"""REST PATCH: JSON-Patch operations on a contact or an account, as the OpenAPI document describes them.

Paths are `/<type>/0/<field>` for fields, `/<type>/0/links/<rel>` for links (`/-` appends one, `/<id>` names the
one to remove, a list replaces them all), and `/<type>/0/<Custom Field Name>` (or `/customFields/<name>`) for
custom field values. The operations are applied to a copy: on any error nothing changes.
"""

from __future__ import annotations

import copy
from typing import Any

from cliniko2nutshell.sandbox.nutshell_rest_shapes import multi_items, parse_id, reference_link
from cliniko2nutshell.sandbox.nutshell_state import MULTI_VALUE_FIELDS, NutshellState, Record, invalid
from cliniko2nutshell.sandbox.nutshell_values import split_name

SCALARS = {"name": "name", "description": "description", "jobTitle": "job_title"}


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def apply_patch(state: NutshellState, rec: Record, ops: Any) -> tuple[dict[str, Any], list[int] | None]:
    """(the record's new content, the account's new contact ids or None when they did not change)."""
    if not isinstance(ops, list) or not ops:
        raise invalid("No patches sent")
    kind = rec.kind
    data = copy.deepcopy(rec.data)
    contacts = [c.id for c in state.contacts_of_account(rec.id)] if kind == "accounts" else None
    contacts_before = list(contacts) if contacts is not None else None
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise invalid(f"Patch operation {index} must be an object with 'op' and 'path'")
        name = op.get("op")
        if name in ("move", "copy", "test"):
            raise invalid(f"The sandbox does not support the JSON-Patch operation {name!r}")
        if name not in ("add", "remove", "replace"):
            raise invalid(f"Invalid JSON-Patch operation {name!r}")
        parts = [_unescape(p) for p in op["path"].split("/")[1:]]
        if len(parts) < 3 or parts[0] != kind or parts[1] != "0":
            raise invalid(f"Patch paths start with /{kind}/0/, not {op['path']!r}")
        field, rest, value = parts[2], parts[3:], op.get("value")
        if field in SCALARS and not (field == "jobTitle" and kind != "contacts") and not rest:
            data[SCALARS[field]] = ("" if field == "name" else None) if name == "remove" else value
        elif field in ("firstName", "lastName") and kind == "contacts" and not rest:
            given, family = split_name(data["name"])
            new = "" if name == "remove" else value
            if not isinstance(new, str):
                raise invalid(f"{field} must be text")
            given, family = (new, family) if field == "firstName" else (given, new)
            data["name"] = f"{given} {family}".strip()
        elif field in MULTI_VALUE_FIELDS:
            data[field] = _patch_list(field, data[field], name, rest, value)
        elif field == "links" and rest:
            contacts = _patch_link(kind, data, contacts, name, rest, value)
        elif field == "customFields" and len(rest) == 1:
            _patch_custom(data, name, rest[0], value)
        elif not rest:
            # Anything else names a custom field; the state refuses unknown names with "... is not a custom field".
            _patch_custom(data, name, field, value)
        else:
            raise invalid(f"Cannot patch {op['path']!r}")
    return data, (contacts if contacts != contacts_before else None)


def _patch_list(field: str, current: list[dict[str, Any]], op: str, rest: list[str], value: Any) -> list[Any]:
    items = list(current)
    if not rest:
        if op == "remove":
            return []
        return multi_items(field, value if isinstance(value, list) else [value])
    if len(rest) != 1:
        raise invalid(f"Cannot patch /{field}/{'/'.join(rest)}")
    if rest[0] == "-":
        if op != "add":
            raise invalid(f"'/-' only works with 'add' on {field}")
        return items + multi_items(field, [value])
    if not rest[0].isdigit() or int(rest[0]) > len(items) or (op != "add" and int(rest[0]) == len(items)):
        raise invalid(f"{field} has no element {rest[0]}")
    position = int(rest[0])
    if op == "remove":
        del items[position]
    elif op == "replace":
        items[position] = multi_items(field, [value])[0]
    else:
        items.insert(position, multi_items(field, [value])[0])
    return items


def _patch_link(
    kind: str, data: dict[str, Any], contacts: list[int] | None, op: str, rest: list[str], value: Any
) -> list[int] | None:
    rel, target = rest[0], rest[1:]
    if not target and (single := reference_link(kind, rel, None if op == "remove" else value)) is not None:
        data[single[0]] = single[1]
        return contacts
    if rel == "owner" and not target:
        data["owner"] = None if op == "remove" or value is None else parse_id(value, "users")
        return contacts
    plural = {"tags": "tags", "accounts": "accounts", "contacts": "contacts"}.get(rel)
    if plural is None or (rel == "accounts" and kind != "contacts") or (rel == "contacts" and kind != "accounts"):
        raise invalid(f"links/{rel} cannot be patched on {kind} in the sandbox")
    if rel == "tags":
        current = list(data["tags"])
    elif rel == "accounts":
        current = [a["id"] for a in data["accounts"]]
    else:
        current = list(contacts or [])
    if not target:
        if op == "remove":
            current = []
        else:
            if not isinstance(value, list):
                raise invalid(f"Replacing links/{rel} takes a list of ids")
            current = [parse_id(v, plural) for v in value]
    elif target == ["-"] and op == "add":
        current.append(parse_id(value, plural))
    elif len(target) == 1 and op == "remove":
        rid = parse_id(target[0], plural)
        if rid not in current:
            raise invalid(f"{target[0]} is not linked")
        current.remove(rid)
    else:
        raise invalid(f"Cannot {op} links/{rel}/{'/'.join(target)}")
    if rel == "tags":
        data["tags"] = current
    elif rel == "accounts":
        relationships = {a["id"]: a["relationship"] for a in data["accounts"]}
        data["accounts"] = [{"id": a, "relationship": relationships.get(a, "")} for a in current]
    else:
        return current
    return contacts


def _patch_custom(data: dict[str, Any], op: str, name: str, value: Any) -> None:
    # None removes the value; the state still checks that the name is a custom field.
    custom = {k: v for k, v in data["custom"].items() if k.lower() != name.lower()}
    custom[name] = None if op == "remove" else value
    data["custom"] = custom
