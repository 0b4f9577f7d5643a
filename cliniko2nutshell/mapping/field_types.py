"""Custom fields Nutshell already has under the map's name but with another type ("Total Invoiced" as Text where
the map writes Currency): a blocker in the pre-flight, and an open decision in the map with a proposed choice.

The choices: write into the existing field when its type holds the values without loss (an amount as "123.45
AUD" in a Text field; a date as text), create a field of the wanted type under another name, or skip the field.
`propose_type_fixes` records a proposal per conflict; `apply_type_fix` applies a choice to the map (its custom
field and the rules that write it) and marks it confirmed; `accept_type_fixes` takes every proposal.
"""

from __future__ import annotations

from cliniko2nutshell.mapping.model import (
    CustomFieldAction,
    FieldTypeDecision,
    FieldTypeFix,
    MigrationMap,
    ObjectMap,
)
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot

# The existing types that hold every value of a wanted type without loss (values become text where needed).
# Unconfirmed: Nutshell's Text length (proposer.TEXT_LIMIT, 255) is not documented, so long text goes to LongText.
LOSSLESS: dict[str, frozenset[str]] = {
    "Currency": frozenset({"Text", "LongText"}),  # "123.45 AUD"
    "Number": frozenset({"Text", "LongText"}),
    "Date": frozenset({"Text", "LongText"}),  # "2024-05-01"
    "Decision": frozenset({"Text", "LongText"}),  # the choice's text
    "Text": frozenset({"LongText"}),
    "LongText": frozenset(),
}


def lossless(wanted: str, existing: str) -> bool:
    return existing in LOSSLESS.get(wanted, frozenset())


def _entity(mapping: MigrationMap, name: str) -> str:
    spec = mapping.custom_field(name)
    return spec.entity if spec else "Contacts"


def conflicts(mapping: MigrationMap, snapshot: NutshellSnapshot) -> dict[str, tuple[str, str]]:
    """Field name -> (the map's type, Nutshell's type) for every custom field of the map Nutshell has typed
    otherwise."""
    out: dict[str, tuple[str, str]] = {}
    for spec in mapping.custom_fields:
        have = snapshot.custom_field(spec.name, spec.entity)
        if have is not None and have.type != spec.type:
            out[spec.name] = (spec.type, have.type)
    return out


def _free_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name.casefold() in taken:
        name, n = f"{base} {n}", n + 1
    return name


def propose_type_fixes(mapping: MigrationMap, snapshot: NutshellSnapshot) -> MigrationMap:
    """An unconfirmed proposal per type conflict (decisions already confirmed are kept; proposals for conflicts
    that are gone are dropped)."""
    found = conflicts(mapping, snapshot)
    taken = {f.name.casefold() for fields in snapshot.custom_fields.values() for f in fields}
    taken |= {f.name.casefold() for f in mapping.custom_fields}
    decisions = {k: d for k, d in mapping.field_type_decisions.items() if d.confirmed or k in found}
    for name, (wanted, existing) in found.items():
        current = decisions.get(name)
        if current is not None and current.confirmed:
            continue
        if lossless(wanted, existing):
            decisions[name] = FieldTypeDecision(
                action=FieldTypeFix.USE_EXISTING,
                existing_type=existing,
                wanted_type=wanted,
                reason=f"a {existing} field holds {wanted} values without loss, as text"
                + (' such as "123.45 AUD"' if wanted == "Currency" else ""),
            )
            continue
        target = _free_name(f"{name} ({wanted})", taken)
        taken.add(target.casefold())
        decisions[name] = FieldTypeDecision(
            action=FieldTypeFix.RENAME,
            existing_type=existing,
            wanted_type=wanted,
            target=target,
            reason=f"a {existing} field cannot hold {wanted} values",
        )
    return mapping.model_copy(update={"field_type_decisions": decisions})


def _retarget(obj: ObjectMap, old: str, new: str | None) -> ObjectMap:
    """Rules writing `customFields.<old>` now write `customFields.<new>`, or are switched off (new None)."""
    rules = []
    for rule in obj.fields:
        if rule.custom_field != old:
            rules.append(rule)
        elif new is None:
            if rule.locked:
                raise ValueError(f"'{old}' is required by the migration (it finds people again by it): rename it")
            rules.append(rule.model_copy(update={"enabled": False}))
        else:
            rules.append(rule.model_copy(update={"target": f"customFields.{new}"}))
    return obj.model_copy(update={"fields": rules})


def apply_type_fix(
    mapping: MigrationMap,
    name: str,
    action: FieldTypeFix,
    target: str | None = None,
    *,
    existing_type: str | None = None,
) -> MigrationMap:
    """Decide for the conflicting field `name` (confirmed) and change the map to match: its custom field takes
    the existing type, or a new name (the rules follow), or is dropped with its rules switched off. ValueError
    when the choice cannot work (a type that would lose values, a name in use, a field the migration needs)."""
    spec = mapping.custom_field(name)
    if spec is None:
        raise ValueError(f"the map writes no custom field named {name!r}")
    prev = mapping.field_type_decisions.get(name)
    existing = existing_type or (prev.existing_type if prev else None)
    if existing is None:
        raise ValueError(f"Nutshell's type of {name!r} is not known: refresh the map first")
    fields = list(mapping.custom_fields)
    objects = dict(mapping.objects)
    decisions = dict(mapping.custom_field_decisions)
    if action is FieldTypeFix.USE_EXISTING:
        if not lossless(spec.type, existing):
            raise ValueError(f"a {existing} field cannot hold {spec.type} values without loss: rename or skip it")
        fields = [f.model_copy(update={"type": existing, "choices": []}) if f.name == name else f for f in fields]
    elif action is FieldTypeFix.RENAME:
        new = (target or (prev.target if prev else None) or "").strip()
        if not new or new == name:
            raise ValueError("a renamed field needs a new name")
        if mapping.custom_field(new) is not None:
            raise ValueError(f"the map already writes a custom field named {new!r}")
        target = new
        fields = [f.model_copy(update={"name": new}) if f.name == name else f for f in fields]
        objects = {k: _retarget(o, name, new) for k, o in objects.items()}
        decisions = {
            k: d.model_copy(update={"target": new}) if d.action is CustomFieldAction.MAP and d.target == name else d
            for k, d in decisions.items()
        }
    else:
        objects = {k: _retarget(o, name, None) for k, o in objects.items()}
        fields = [f for f in fields if f.name != name]
        decisions = {
            k: d.model_copy(update={"action": CustomFieldAction.SKIP, "target": None})
            if d.target == name and d.action is not CustomFieldAction.SKIP
            else d
            for k, d in decisions.items()
        }
    decision = FieldTypeDecision(
        action=action,
        existing_type=existing,
        wanted_type=prev.wanted_type if prev else spec.type,
        target=target if action is FieldTypeFix.RENAME else None,
        confirmed=True,
        reason=prev.reason if prev else "decided by the user",
    )
    return mapping.model_copy(
        update={
            "custom_fields": fields,
            "objects": objects,
            "custom_field_decisions": decisions,
            "field_type_decisions": {**mapping.field_type_decisions, name: decision},
        }
    )


def accept_type_fixes(mapping: MigrationMap) -> MigrationMap:
    """Every proposed fix, as proposed."""
    m = mapping
    for name, d in mapping.field_type_decisions.items():
        if not d.confirmed:
            m = apply_type_fix(m, name, d.action, d.target, existing_type=d.existing_type)
    return m


def describe_fix(name: str, d: FieldTypeDecision) -> str:
    what = {
        FieldTypeFix.USE_EXISTING: f"write into Nutshell's {d.existing_type} field '{name}'",
        FieldTypeFix.RENAME: f"create a {d.wanted_type} field '{d.target}'",
        FieldTypeFix.SKIP: "skip the field",
    }[d.action]
    return f"{what} (confirmed)" if d.confirmed else f"{what} (proposed: {d.reason})"
