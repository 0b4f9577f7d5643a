"""Editing a confirmed map: each edit is saved as a new version that must be confirmed again, and a confirmation
can say what changed since the version confirmed before it. Used by the wizard's Practitioners and Map steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cliniko2nutshell.mapping.mapfile import list_versions, load_map_version, save_map
from cliniko2nutshell.mapping.model import MigrationMap, PractitionerChoice, PractitionerDecision


def save_edit(mapping: MigrationMap, path: Path, note: str) -> MigrationMap:
    """Save an edited map as the next version. An edit withdraws the confirmation: the user confirms again."""
    return save_map(mapping.model_copy(update={"confirmed": False}), path, note=note)


def unresolve(mapping: MigrationMap, practitioner_id: str) -> MigrationMap:
    """Leave a practitioner unresolved again (its best suggestion stays shown)."""
    choices = dict(mapping.practitioners)
    prev = choices.get(practitioner_id, PractitionerChoice())
    choices[practitioner_id] = PractitionerChoice(
        decision=PractitionerDecision.UNRESOLVED,
        score=prev.score,
        label=prev.label,
        suggestion=prev.suggestion or (prev.user if prev.decision is PractitionerDecision.MATCHED else None),
        suggestion_reason=prev.suggestion_reason or ("previously matched" if prev.user else ""),
    )
    return mapping.model_copy(update={"practitioners": choices})


def last_confirmed_before(path: Path, version: int) -> MigrationMap | None:
    """The newest confirmed version older than `version` (what a confirmation is compared with)."""
    for v in reversed(list_versions(path)):
        if v >= version:
            continue
        try:
            m = load_map_version(path, v)
        except ValueError:
            continue
        if m.confirmed:
            return m
    return None


def _flat(mapping: MigrationMap) -> dict[str, Any]:
    """The map as 'what: value' pairs a person can read (bookkeeping left out)."""
    out: dict[str, Any] = {}
    for name, value in mapping.policies.model_dump(mode="json").items():
        out[f"policy {name.replace('_', ' ')}"] = value
    for name, obj in mapping.objects.items():
        out[f"{name}"] = "on" if obj.enabled else "off"
        for r in obj.fields:
            out[f"{name}: {r.source} -> {r.target}"] = f"{'on' if r.enabled else 'off'}, {r.transform}"
    vm = mapping.value_maps.model_dump(mode="json")
    for section, values in vm.items():
        if isinstance(values, dict):
            for key, value in values.items():
                out[f"value map {section.replace('_', ' ')} {key}"] = value
        else:
            out[f"value map {section.replace('_', ' ')}"] = values
    for pid, c in mapping.practitioners.items():
        who = c.label or pid
        out[f"practitioner {who}"] = f"{c.decision.value}" + (f" -> {c.user}" if c.user else "")
    out["fallback owner"] = mapping.fallback_owner
    for token, d in mapping.custom_field_decisions.items():
        out[f"custom field {d.label or token}"] = (
            f"{d.action.value}" + (f" -> {d.target}" if d.target else "") + ("" if d.confirmed else " (proposed)")
        )
    for f in mapping.custom_fields:
        out[f"Nutshell field {f.name}"] = f.type
    return out


def describe_changes(old: MigrationMap | None, new: MigrationMap) -> list[str]:
    """One line per difference between two versions of a map ('added', 'removed', 'a: x → y')."""
    if old is None:
        return ["first confirmed version"]
    before, after = _flat(old), _flat(new)
    lines = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            lines.append(f"added {key}: {after[key]}")
        elif key not in after:
            lines.append(f"removed {key} (was {before[key]})")
        elif before[key] != after[key]:
            lines.append(f"{key}: {before[key]} → {after[key]}")
    return lines
