"""Proposals for Cliniko patient custom fields: map into an existing (or planned) Nutshell custom field, create a
new one, or skip, each with a confidence (0-1) and a one-line reason.

The evidence: name similarity (rapidfuzz, section and field name against the Nutshell field's name), type
compatibility, and how many sampled patient values the target type would accept. Every field ends with an explicit,
confirmed decision before the map is confirmed; `open_decisions` lists those still open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from rapidfuzz import fuzz

from cliniko2nutshell.cliniko.models import Patient
from cliniko2nutshell.mapping.catalog import Catalog, CustomFieldDef, parse_or_none
from cliniko2nutshell.mapping.derived import custom_value_text, insurance_fields
from cliniko2nutshell.mapping.field_types import accept_type_fixes, describe_fix
from cliniko2nutshell.mapping.model import (
    CustomFieldAction,
    CustomFieldDecision,
    CustomFieldSpec,
    MigrationMap,
    NutshellFieldType,
    PractitionerDecision,
)
from cliniko2nutshell.mapping.names import fold
from cliniko2nutshell.mapping.snapshot import CustomFieldInfo
from cliniko2nutshell.project.store import Store

MAP_THRESHOLD = 0.75  # at or above: propose mapping into that field; below: propose a new field
TEXT_LIMIT = 255  # Unconfirmed: Nutshell's Text field length; longer values go to LongText

# How well a Nutshell type holds a Cliniko type's values, before looking at the values themselves.
TYPE_FIT: dict[str, dict[str, float]] = {
    "text": {"Text": 1.0, "LongText": 0.9, "Number": 0.5, "Currency": 0.4, "Date": 0.4, "Decision": 0.4},
    "paragraph": {"LongText": 1.0, "Text": 0.6},
    "date": {"Date": 1.0, "Text": 0.6, "LongText": 0.5},
    "radiobuttons": {"Decision": 1.0, "Text": 0.8, "LongText": 0.6},
    "checkboxes": {"Text": 0.8, "LongText": 0.8, "Decision": 0.5},
}
NEW_TYPE: dict[str, NutshellFieldType] = {
    "text": "Text",
    "paragraph": "LongText",
    "date": "Date",
    "radiobuttons": "Decision",
    # Unconfirmed: whether a REST Decision field takes several values; several ticked boxes are joined as text.
    "checkboxes": "Text",
}


@dataclass(frozen=True, slots=True)
class Proposal:
    token: str
    label: str  # "Section / Field"
    cliniko_type: str
    action: CustomFieldAction
    target: str | None
    target_type: NutshellFieldType | None
    confidence: float
    reason: str
    choices: tuple[str, ...] = ()

    def decision(self) -> CustomFieldDecision:
        return CustomFieldDecision(
            action=self.action,
            target=self.target,
            type=self.target_type if self.action is CustomFieldAction.CREATE else None,
            choices=list(self.choices) if self.target_type == "Decision" else [],
            confirmed=False,
            label=self.label,
            confidence=round(self.confidence, 2),
            reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    type: str
    choices: tuple[str, ...] = ()
    exists: bool = True  # in Nutshell now (False: planned by the map, created on request)


def sample_values(store: Store, definitions: dict[str, CustomFieldDef], limit: int = 500) -> dict[str, list[str]]:
    """Non-empty values of each custom field over the first `limit` patients that have custom fields."""
    out: dict[str, list[str]] = {t: [] for t in definitions}
    seen = 0
    for raw in store.iter_records("patients"):
        if not raw.get("custom_fields"):
            continue
        patient = parse_or_none(Patient, raw)
        if patient is None:
            continue
        for token in definitions:
            if (value := custom_value_text(patient, token)) is not None:
                out[token].append(value)
        seen += 1
        if seen >= limit:
            break
    return out


def _fits(value: str, target_type: str, choices: tuple[str, ...]) -> bool:
    v = value.strip()
    if target_type == "Date":
        try:
            date.fromisoformat(v[:10])
            return True
        except ValueError:
            return False
    if target_type in ("Number", "Currency"):
        return re.fullmatch(r"[-+]?[$€£]?\s?\d[\d,]*(\.\d+)?", v) is not None
    if target_type == "Decision":
        return not choices or v in choices
    if target_type == "Text":
        return len(v) <= TEXT_LIMIT and "\n" not in v
    return True


def _name_similarity(d: CustomFieldDef, candidate: str) -> float:
    c = fold(candidate)
    return (
        max(
            fuzz.token_set_ratio(fold(d.name), c),
            fuzz.token_sort_ratio(fold(f"{d.section} {d.name}"), c),
            fuzz.token_set_ratio(fold(f"{d.section} {d.name}"), c) * 0.95,
        )
        / 100.0
    )


def score(d: CustomFieldDef, c: Candidate, samples: list[str]) -> tuple[float, str]:
    type_fit = TYPE_FIT.get(d.type, {}).get(c.type, 0.0)
    name = _name_similarity(d, c.name)
    if samples:
        fitting = sum(_fits(s, c.type, c.choices) for s in samples)
        sample_fit = fitting / len(samples)
        sample_note = f"{fitting}/{len(samples)} sampled values fit"
    else:
        sample_fit = 1.0
        sample_note = "no values to sample"
    if type_fit == 0.0:
        return 0.0, f"{d.type} cannot go into a {c.type} field"
    confidence = name * (0.55 + 0.3 * type_fit + 0.15 * sample_fit)
    if sample_fit < 0.5:
        confidence *= 0.5
    where = "existing field" if c.exists else "field the map creates"
    reason = f"name {round(name * 100)}% like {where} '{c.name}'; {d.type} -> {c.type}; {sample_note}"
    return min(1.0, confidence), reason


def _new_field_name(d: CustomFieldDef, taken: set[str]) -> str:
    name = d.name.strip() or d.token
    if fold(name) in taken:
        name = f"{d.section} {name}".strip()
    return name


def propose(
    definitions: dict[str, CustomFieldDef],
    samples: dict[str, list[str]],
    nutshell_fields: Iterable[CustomFieldInfo],
    planned: Iterable[CustomFieldSpec] = (),
    *,
    insurance_targets: dict[str, str] | None = None,
) -> list[Proposal]:
    """One proposal per Cliniko patient custom field, in settings order."""
    candidates = {f.name: Candidate(f.name, f.type, f.choices) for f in nutshell_fields if f.entity == "Contacts"}
    for spec in planned:
        if spec.entity == "Contacts" and spec.name not in candidates:
            candidates[spec.name] = Candidate(spec.name, spec.type, tuple(spec.choices), exists=False)
    taken = {fold(n) for n in candidates}
    out: list[Proposal] = []
    for d in definitions.values():
        values = samples.get(d.token, [])
        if insurance_targets and d.token in insurance_targets:
            target = insurance_targets[d.token]
            out.append(
                Proposal(
                    d.token,
                    d.label,
                    d.type,
                    CustomFieldAction.MAP,
                    target,
                    None,
                    1.0,
                    f"carried into '{target}' by the map's insurance rule",
                    d.options,
                )
            )
            continue
        if d.archived and not values:
            out.append(
                Proposal(
                    d.token,
                    d.label,
                    d.type,
                    CustomFieldAction.SKIP,
                    None,
                    None,
                    0.9,
                    "archived in Cliniko and no sampled patient has a value",
                    d.options,
                )
            )
            continue
        scored = sorted(((*score(d, c, values), c) for c in candidates.values()), key=lambda t: (-t[0], t[2].name))
        best = scored[0] if scored else None
        if best is not None and best[0] >= MAP_THRESHOLD:
            conf, reason, cand = best
            out.append(
                Proposal(d.token, d.label, d.type, CustomFieldAction.MAP, cand.name, None, conf, reason, d.options)
            )
            continue
        new_type = NEW_TYPE.get(d.type, "Text")
        if new_type == "Decision" and any(v not in d.options for v in values):
            new_type = "Text"  # "Other" answers are free text: a picklist would refuse them
        if new_type == "Text" and values and any(not _fits(v, "Text", ()) for v in values):
            new_type = "LongText"
        name = _new_field_name(d, taken)
        taken.add(fold(name))
        near = f"; closest existing: '{best[2].name}' ({round(best[0] * 100)}%)" if best and best[0] > 0 else ""
        if not values:
            out.append(
                Proposal(
                    d.token,
                    d.label,
                    d.type,
                    CustomFieldAction.SKIP,
                    None,
                    None,
                    0.6,
                    f"no sampled patient has a value{near}",
                    d.options,
                )
            )
            continue
        out.append(
            Proposal(
                d.token,
                d.label,
                d.type,
                CustomFieldAction.CREATE,
                name,
                new_type,
                # As sure of a new field as the best existing one is unlike it.
                round(max(0.5, 1.0 - (best[0] if best else 0.0)), 2),
                f"no Nutshell field fits{near}; a new {new_type} field '{name}'",
                d.options,
            )
        )
    return out


def insurance_targets(mapping: MigrationMap, definitions: dict[str, CustomFieldDef]) -> dict[str, str]:
    """Custom fields already carried by the map's insurance rules (derived.insurance_*), and into which field."""
    policy, group = insurance_fields(definitions)
    out: dict[str, str] = {}
    patients = mapping.objects.get("patients")
    for rule in patients.rules() if patients else []:
        if rule.source == "derived.insurance_policy_number" and policy and rule.custom_field:
            out[policy] = rule.custom_field
        if rule.source == "derived.insurance_group_number" and group and rule.custom_field:
            out[group] = rule.custom_field
    return out


def propose_for(
    mapping: MigrationMap, catalog: Catalog, store: Store | None, nutshell_fields: Iterable[CustomFieldInfo]
) -> list[Proposal]:
    definitions = catalog.custom_field_defs
    samples = sample_values(store, definitions) if store is not None else {}
    return propose(
        definitions,
        samples,
        nutshell_fields,
        mapping.custom_fields,
        insurance_targets=insurance_targets(mapping, definitions),
    )


def apply_proposals(mapping: MigrationMap, proposals: Iterable[Proposal]) -> MigrationMap:
    """Record each proposal as an unconfirmed decision (decisions the user already made are kept)."""
    decisions = dict(mapping.custom_field_decisions)
    for p in proposals:
        current = decisions.get(p.token)
        if current is None or not current.confirmed:
            decisions[p.token] = p.decision()
    return mapping.model_copy(update={"custom_field_decisions": decisions})


def decide(
    mapping: MigrationMap,
    token: str,
    action: CustomFieldAction,
    target: str | None = None,
    type_: NutshellFieldType | None = None,
    choices: Iterable[str] = (),
) -> MigrationMap:
    """The user's decision for one field (confirmed). A new field is added to the map's custom fields."""
    prev = mapping.custom_field_decisions.get(token)
    chosen = list(choices) or (prev.choices if prev else [])
    if type_ != "Decision":
        chosen = []
    decision = CustomFieldDecision(
        action=action,
        target=target,
        type=type_,
        choices=chosen,
        confirmed=True,
        label=prev.label if prev else "",
        confidence=prev.confidence if prev else 0.0,
        reason=prev.reason if prev else "decided by the user",
    )
    decisions = {**mapping.custom_field_decisions, token: decision}
    fields = list(mapping.custom_fields)
    if action is CustomFieldAction.CREATE and target and mapping.custom_field(target) is None:
        fields.append(CustomFieldSpec(name=target, type=type_ or "Text", choices=chosen))
    return mapping.model_copy(update={"custom_field_decisions": decisions, "custom_fields": fields})


def accept_all(mapping: MigrationMap) -> MigrationMap:
    """Confirm every proposal as proposed (the "accept all" button): patient custom fields, and the fixes of
    custom fields Nutshell has typed otherwise."""
    m = mapping
    for token, d in mapping.custom_field_decisions.items():
        if not d.confirmed:
            m = decide(m, token, d.action, d.target, d.type, d.choices)
    return accept_type_fixes(m)


@dataclass(frozen=True, slots=True)
class OpenDecision:
    kind: str  # "custom_field" | "field_type" | "currency" | "practitioner"
    id: str  # the custom field token, the Nutshell field name, "currency" or the practitioner id
    label: str
    proposal: str  # what is proposed, for the screen and the CLI


def open_decisions(mapping: MigrationMap, catalog: Catalog) -> list[OpenDecision]:
    """What must still be decided before the map can be confirmed."""
    out: list[OpenDecision] = []
    for token, d in catalog.custom_field_defs.items():
        decision = mapping.custom_field_decisions.get(token)
        if decision is None or not decision.confirmed:
            proposal = (
                f"{decision.action.value} {decision.target or ''} ({round(decision.confidence * 100)}%: "
                f"{decision.reason})".replace("  ", " ")
                if decision
                else "no proposal yet"
            )
            out.append(OpenDecision("custom_field", token, d.label, proposal))
    for name, fix in mapping.field_type_decisions.items():
        if not fix.confirmed:
            label = f"Nutshell's {fix.existing_type} field"
            out.append(OpenDecision("field_type", name, label, describe_fix(name, fix)))
    if needs_currency(mapping) and not (mapping.currency or catalog.currency):
        why = "the Cliniko account's country gives none: choose one (map --currency AUD)"
        out.append(OpenDecision("currency", "currency", "currency of amounts", why))
    for pid in sorted(catalog.practitioners):
        choice = mapping.practitioners.get(pid)
        if choice is None or mapping.owner_for(pid) is None:
            label = catalog.practitioner_name(pid) or pid
            if choice is None:
                state = "not matched yet"
            elif choice.decision is PractitionerDecision.UNRESOLVED:
                state = "unresolved: accept a suggestion, pick a user, or use the fallback owner"
            else:
                state = "the fallback owner is not set"
            out.append(OpenDecision("practitioner", pid, label, state))
    return out


def needs_currency(mapping: MigrationMap) -> bool:
    """Does the map write any amount (a rule with the `currency` transform)?"""
    return any(r.transform == "currency" for o in mapping.objects.values() if o.enabled for r in o.rules())


def confirm_map(mapping: MigrationMap, catalog: Catalog) -> MigrationMap:
    """The map marked confirmed; ValueError listing what is still open."""
    pending = open_decisions(mapping, catalog)
    if pending:
        lines = "\n".join(f"  {p.kind} {p.id} ({p.label}): {p.proposal}" for p in pending)
        raise ValueError(f"{len(pending)} decision(s) are still open:\n{lines}")
    return mapping.model_copy(update={"confirmed": True})
