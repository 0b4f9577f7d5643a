"""The map's life in a project, for the wizard and the `map` / `plan` commands: propose (or refresh) the map,
describe it with its open decisions, write the pre-flight report, and check for blockers before a write.

Callers bring a `NutshellSnapshot` (built from the Nutshell client, or `NutshellSnapshot.from_seed` for the
sandbox); only `check_blockers` reads one itself, fresh, through the client it is given.

Every pre-flight (plan, check_blockers) is recorded as the `preflight` milestone: map version, ready, counts of
blockers and warnings, up to five blocker lines ("detail: action", never patient data) and the counts per object.
The wizard's step bar and `projects` read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from cliniko2nutshell.connections import contact_limit, read_snapshot
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.field_types import describe_fix, propose_type_fixes
from cliniko2nutshell.mapping.limitations import limitations_for
from cliniko2nutshell.mapping.mapfile import load_map, save_map
from cliniko2nutshell.mapping.model import CustomFieldAction, MigrationMap
from cliniko2nutshell.mapping.practitioners import (
    NutshellUser,
    PractitionerInfo,
    match_practitioners,
    propose_choices,
    user_label,
)
from cliniko2nutshell.mapping.preflight import PreflightReport, Problem, Severity, preflight
from cliniko2nutshell.mapping.proposer import apply_proposals, open_decisions, propose_for
from cliniko2nutshell.mapping.report_writers import write_preflight
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot
from cliniko2nutshell.project import Project


def practitioner_infos(catalog: Catalog) -> list[PractitionerInfo]:
    """Each practitioner with the e-mail of its Cliniko user (what the e-mail match compares)."""
    out = []
    for pid, p in sorted(catalog.practitioners.items()):
        user = catalog.users.get(p.user.id or "") if p.user else None
        out.append(
            PractitionerInfo(
                pid,
                p.first_name,
                p.last_name,
                p.title,
                p.display_name,
                p.label,
                user.email if user else None,
                p.active is not False,
            )
        )
    return out


def propose_map(
    project: Project, snapshot: NutshellSnapshot, *, reference_time: datetime | None = None, save: bool = True
) -> MigrationMap:
    """The project's map with fresh proposals: the saved map if there is one (the user's decisions kept), else the
    default map; practitioner matches and custom-field proposals refreshed against `snapshot`. Saved as a new
    version when it changed."""
    catalog = Catalog.from_store(project.store, reference_time)
    if project.mapping_path.exists():
        mapping = load_map(project.mapping_path)
    else:
        mapping = default_map(catalog, activity_types=snapshot.activity_type_names)
    matches = match_practitioners(practitioner_infos(catalog), snapshot.users)
    mapping = mapping.model_copy(update={"practitioners": propose_choices(matches, mapping.practitioners)})
    proposals = propose_for(mapping, catalog, project.store, snapshot.custom_fields.get("Contacts", []))
    mapping = propose_type_fixes(apply_proposals(mapping, proposals), snapshot)
    if mapping.currency is None and catalog.currency is not None:
        mapping = mapping.model_copy(update={"currency": catalog.currency})
    if save:
        mapping = save_map(mapping, project.mapping_path, note="proposals refreshed")
    return mapping


def describe_map(mapping: MigrationMap, catalog: Catalog, users: Iterable[NutshellUser] = ()) -> str:
    """The map as text: objects and their rules, value maps, practitioners, custom fields, open decisions and
    the limitations (the `map` command prints it). Nutshell users are named from `users` when given."""
    by_id = {u.id: u for u in users}

    def who(user_id: str | None) -> str:
        return user_label(by_id.get(user_id or ""), user_id) if user_id else "UNRESOLVED"

    lines = [f"Map version {mapping.version}{' (confirmed)' if mapping.confirmed else ''}", ""]
    for name, obj in mapping.objects.items():
        state = "on" if obj.enabled else "off"
        lines.append(f"{name} -> {obj.target} [{state}]" + (f"  ({obj.note})" if obj.note else ""))
        for r in obj.fields:
            flag = "x" if r.enabled else " "  # a ticked box: the rule moves data
            note = f"  # {r.note}" if r.note else ""
            lines.append(f"  [{flag}] {r.source} -> {r.target} ({r.transform}){note}")
        for lim in limitations_for(f"object:{name}"):
            lines.append(f"  ! {lim.title}")
    vm = mapping.value_maps
    lines += ["", "Appointment types -> activity types:"]
    for tid, target in vm.appointment_types.items():
        t = catalog.appointment_types.get(tid)
        lines.append(f"  {t.name if t and t.name else tid} -> {target}")
    lines.append("Appointment status -> how recorded:")
    for status, rule in vm.appointment_status.items():
        lines.append(f"  {status.value} -> {rule.record.value}{f' ({rule.label})' if rule.label else ''}")
    lines.append("Policies: " + ", ".join(f"{k}={v}" for k, v in mapping.policies.model_dump(mode="json").items()))
    lines += ["", "Practitioners -> users:"]
    for pid, choice in sorted(mapping.practitioners.items()):
        owner = mapping.owner_for(pid)
        lines.append(
            f"  {choice.label or pid} ({pid}) -> {who(owner)} [{choice.decision.value}, {choice.method or '-'}]"
        )
        if owner is None and choice.suggestion:
            lines.append(
                f"      suggested: {who(choice.suggestion)} (score {round(choice.score)}: {choice.suggestion_reason})"
            )
    lines.append(f"Fallback owner: {who(mapping.fallback_owner) if mapping.fallback_owner else 'not set'}")
    country = catalog.country_code
    source = "from the Cliniko account's country" if mapping.currency == catalog.currency else "chosen in the map"
    lines.append(
        f"Currency of amounts: {mapping.currency or 'NOT SET'}"
        + (f" ({source}{f', {country}' if country else ''}; change with --currency)" if mapping.currency else "")
    )
    lines += ["", "Custom fields the map writes:"]
    for f in mapping.custom_fields:
        lines.append(f"  {f.name} ({f.type})" + (f" - {f.description}" if f.description else ""))
    if mapping.field_type_decisions:
        lines += ["", "Custom fields Nutshell has with another type:"]
        for name, fix in mapping.field_type_decisions.items():
            lines.append(f"  {name}: Nutshell {fix.existing_type}, map {fix.wanted_type}: {describe_fix(name, fix)}")
    lines += ["", "Cliniko patient custom fields:"]
    for token, d in catalog.custom_field_defs.items():
        dec = mapping.custom_field_decisions.get(token)
        if dec is None:
            lines.append(f"  {d.label}: no proposal")
            continue
        where = f" -> {dec.target}" if dec.action is not CustomFieldAction.SKIP else ""
        state = "confirmed" if dec.confirmed else f"proposed, {round(dec.confidence * 100)}%: {dec.reason}"
        lines.append(f"  {d.label}: {dec.action.value}{where} ({state})")
    pending = open_decisions(mapping, catalog)
    lines += ["", f"Open decisions: {len(pending)}"]
    lines += [f"  {p.kind} {p.label} ({p.id}): {p.proposal}" for p in pending]
    return "\n".join(lines) + "\n"


def plan(
    project: Project,
    mapping: MigrationMap,
    snapshot: NutshellSnapshot,
    *,
    reference_time: datetime | None = None,
    write: bool = True,
    include_personal: bool = True,
) -> tuple[PreflightReport, tuple[Path, Path] | None]:
    """The pre-flight report, written to `reports/` as CSV and HTML when `write` (the `plan` command)."""
    report = preflight(project.store, mapping, snapshot, reference_time=reference_time)
    paths = write_preflight(report, project.reports_dir, include_personal=include_personal) if write else None
    record_preflight(project, report)
    return report, paths


BLOCKER_LINES = 5  # blocker lines kept in the milestone (the report has them all)
COUNT_KEYS = ("create", "link", "skip", "unmappable")


def blocker_line(problem: Problem) -> str:
    """One short line for a blocker: what is wrong, then what to do (Problem.detail never holds patient data)."""
    return f"{problem.detail}: {problem.action}"


def record_preflight(project: Project, report: PreflightReport) -> None:
    """The `preflight` milestone: what the wizard's step bar and `projects` show of the last pre-flight."""
    detail: dict[str, Any] = {
        "map_version": report.map_version,
        "ready": report.ready,
        "blockers": len(report.blockers),
        "warnings": sum(1 for p in report.problems if p.severity is Severity.WARNING),
        "blocker_lines": [blocker_line(p) for p in report.blockers[:BLOCKER_LINES]],
        "counts": {obj: {k: c.get(k, 0) for k in COUNT_KEYS} for obj, c in report.counts.items()},
    }
    project.store.set_milestone("preflight", detail)


async def check_blockers(project: Project, client: Any, *, reference_time: datetime | None = None) -> list[Problem]:
    """The pre-flight again, against what Nutshell holds now: the blockers that stand (empty: go ahead).

    `sample`, `run` and the wizard's Sample and Run steps call this before writing anything; the result is also
    recorded as the `preflight` milestone. `client` is a NutshellClient. Without a saved map the one blocker is
    that: there is nothing to run yet."""
    if not project.mapping_path.exists():
        return [
            Problem(
                "no_map",
                Severity.BLOCKER,
                "map",
                "mapping.toml",
                "there is no map yet",
                "run `cliniko2nutshell map` (the wizard's Map step), decide the open questions and confirm it",
            )
        ]
    mapping = load_map(project.mapping_path)
    emails = [r.get("email") for r in project.store.iter_records("patients")]
    snapshot = await read_snapshot(client, emails, contact_limit=contact_limit(project), project=project)
    report = preflight(project.store, mapping, snapshot, reference_time=reference_time)
    record_preflight(project, report)
    return report.blockers
