"""The pre-flight report on sandbox clinics: it finds every hard case the generator planted; its writers."""

from __future__ import annotations

import json
import re
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mapping_sandbox import load_clinic

from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.mapfile import save_map
from cliniko2nutshell.mapping.model import ExistingPerson, MigrationMap
from cliniko2nutshell.mapping.names import fold
from cliniko2nutshell.mapping.practitioners import match_practitioners, propose_choices
from cliniko2nutshell.mapping.preflight import PreflightReport, Severity, preflight
from cliniko2nutshell.mapping.proposer import accept_all, apply_proposals, propose_for
from cliniko2nutshell.mapping.report_writers import write_preflight
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot
from cliniko2nutshell.mapping.workflow import describe_map, plan, practitioner_infos, propose_map
from cliniko2nutshell.project import Project
from cliniko2nutshell.project.store import Store


def proposed_map(store: Store, catalog: Catalog, snapshot: NutshellSnapshot) -> MigrationMap:
    """What the wizard proposes before the user touches anything: e-mail matches accepted, proposals accepted."""
    m = default_map(catalog, activity_types=snapshot.activity_type_names)
    matches = match_practitioners(practitioner_infos(catalog), snapshot.users)
    m = m.model_copy(update={"practitioners": propose_choices(matches)})
    proposals = propose_for(m, catalog, store, snapshot.custom_fields.get("Contacts", []))
    return accept_all(apply_proposals(m, proposals))


def run(project: Project, db: Path, **map_changes: Any) -> tuple[PreflightReport, dict[str, Any], MigrationMap]:
    meta = load_clinic(db, project.store)
    reference = datetime.fromisoformat(meta["reference_time"].replace("Z", "+00:00"))
    catalog = Catalog.from_store(project.store, reference)
    snapshot = NutshellSnapshot.from_seed(meta["nutshell_seed"])
    m = proposed_map(project.store, catalog, snapshot)
    if map_changes:
        m = m.model_copy(update=map_changes)
    return preflight(project.store, m, snapshot, catalog=catalog), meta, m


# Where each planted hard case must show up: problem kinds and notice kinds.
EXPECTED: dict[str, tuple[str, ...]] = {
    "archived_patients": ("archived_patient",),
    "merged_patients": ("merged_patient",),
    "unicode_names": ("non_ascii_name",),
    "rtl_names": ("rtl_name",),
    "missing_first_name": ("missing_first_name", "no_usable_name"),
    "missing_email": ("no_email",),
    "invalid_emails": ("invalid_email",),
    "duplicate_emails": ("duplicate_email", "merged_same_email"),
    "nutshell_email_collisions": ("existing_person",),
    "long_notes": ("long_text",),
    "large_files": ("large_file", "file_too_large"),
    "inactive_practitioners": ("inactive_practitioner",),
    "practitioner_email_mismatch": ("practitioner_unresolved",),
    "practitioner_no_user": ("practitioner_unresolved",),
    "archived_appointments": ("archived_appointment",),
    "cancelled_appointments": ("cancelled_appointment",),
    "no_show_appointments": ("no_show",),
    "future_appointments": ("future_appointment",),
    "group_appointments": ("group_session",),
    "cancelled_attendees": ("cancelled_attendance",),
    "draft_treatment_notes": ("draft_treatment_note",),
    "unprocessed_attachments": ("attachment_not_ready",),
    "archived_contacts": ("archived_contact",),
}


def _found(report: PreflightReport, kinds: tuple[str, ...]) -> set[str]:
    ids = {p.id for p in report.problems if p.kind in kinds}
    for n in report.notices:
        if n.kind in kinds:
            ids |= set(n.ids)
    return ids


@pytest.mark.parametrize("clinic", ["small_clinic_db", "clinic_db"])
def test_preflight_finds_every_planted_hard_case(clinic: str, project: Project, request: pytest.FixtureRequest) -> None:
    report, meta, _ = run(project, request.getfixturevalue(clinic))
    hard = meta["hard_cases"]
    assert set(EXPECTED) >= set(hard), f"a hard case the test does not know: {set(hard) - set(EXPECTED)}"
    for case, ids in hard.items():
        assert ids, f"the generator planted no {case}"
        missing = set(ids) - _found(report, EXPECTED[case])
        assert not missing, f"{case}: not reported: {sorted(missing)}"

    # Practitioners whose Nutshell user has another e-mail get the right user as their best suggestion.
    seed_users = {u.id: u for u in NutshellSnapshot.from_seed(meta["nutshell_seed"]).users}
    by_id = {p.id: p for p in report.problems_of("practitioner_unresolved")}
    for pid in hard["practitioner_email_mismatch"]:
        suggested = re.search(r"best suggestion (\S+)", by_id[pid].detail)
        assert suggested, by_id[pid].detail
        prac = report_catalog_name(project, pid)
        assert fold(seed_users[suggested.group(1)].last_name or "") in fold(prac)
    for pid in hard["practitioner_no_user"]:
        assert by_id[pid].detail.endswith("no similar user") or "best suggestion" in by_id[pid].detail

    # The schema findings of the seed: a field with the wrong type, and the missing ones.
    wrong = report.problems_of("custom_field_wrong_type")
    assert [p.id for p in wrong] == ["Total Invoiced"] and wrong[0].severity is Severity.BLOCKER
    missing_fields = {p.id for p in report.problems_of("custom_field_missing")}
    assert "Balance Due" in missing_fields and "Cliniko Patient ID" not in missing_fields
    assert not report.problems_of("activity_type_missing")
    assert not report.ready

    # Counts: every surviving patient planned as a person (created or linked), every contact a company.
    persons = report.counts["person"]
    survivors = report.patients - len(hard["merged_patients"])
    assert persons.get("create", 0) + persons.get("link", 0) == survivors
    assert persons.get("link", 0) == len(hard["nutshell_email_collisions"])
    assert sum(report.counts["company"].values()) == len(Catalog.from_store(project.store).contacts)
    assert report.counts["attachment_file"].get("unmappable", 0) >= len(hard["unprocessed_attachments"])
    assert {lim.id for lim in report.limitations} >= {"no-payments-api", "notes-not-backdated"}


def report_catalog_name(project: Project, pid: str) -> str:
    return Catalog.from_store(project.store).practitioner_name(pid) or ""


def test_policies_change_the_counts(project: Project, small_clinic_db: Path) -> None:
    base, meta, m = run(project, small_clinic_db)
    catalog = Catalog.from_store(project.store, datetime.fromisoformat(meta["reference_time"].replace("Z", "+00:00")))
    snapshot = NutshellSnapshot.from_seed(meta["nutshell_seed"])

    def with_policies(**changes: Any) -> PreflightReport:
        policies = m.policies.model_copy(update=changes)
        return preflight(project.store, m.model_copy(update={"policies": policies}), snapshot, catalog=catalog)

    skipping = with_policies(existing_person=ExistingPerson.SKIP)
    collisions = len(meta["hard_cases"]["nutshell_email_collisions"])
    assert skipping.counts["person"].get("skip", 0) == base.counts["person"].get("skip", 0) + collisions
    assert "link" not in skipping.counts["person"]
    assert all("not migrated" in p.action for p in skipping.problems_of("existing_person"))
    # Nothing hangs off a person that is not migrated.
    assert skipping.counts["appointment"]["create"] < base.counts["appointment"]["create"]

    generous = with_policies(future_appointments=True, draft_treatment_notes=True)
    assert generous.counts["appointment"]["create"] > base.counts["appointment"]["create"]
    assert generous.counts["treatment_note"]["create"] > base.counts["treatment_note"]["create"]
    drafts = generous.notice("draft_treatment_note")
    assert drafts is not None and drafts.detail == "drafts: migrated"


def test_writers_are_private_self_contained_and_escaped(project: Project, small_clinic_db: Path) -> None:
    report, _, _ = run(project, small_clinic_db)
    report.problems.append(
        report.problems[0].__class__(
            "invalid_email",
            Severity.WARNING,
            "patients",
            "1",
            "<script>alert(1)</script>",
            "=cmd()",
            {"email": "<b>x@y</b>"},
        )
    )
    csv_path, html_path = write_preflight(report, project.reports_dir)
    assert re.fullmatch(r"preflight-\d{8}T\d{6}Z\.csv", csv_path.name)
    assert html_path.name == csv_path.name.replace(".csv", ".html")
    for path in (csv_path, html_path):
        assert path.parent == project.reports_dir
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    page = html_path.read_text()
    assert "<script" not in page and "&lt;script&gt;" in page and "&lt;b&gt;x@y&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)\s*=|<link|@import|url\(""", page)  # no external assets
    text = csv_path.read_text()
    assert "'=cmd()" in text  # no spreadsheet formula injection
    assert text.count("\nproblem,") == len(report.problems)
    hidden_csv, hidden_html = write_preflight(report, project.reports_dir / "shared", include_personal=False)
    emails = [p.personal["email"] for p in report.problems if "email" in p.personal]
    assert emails
    for path in (hidden_csv, hidden_html):
        content = path.read_text()
        assert not any(e in content for e in emails if "<" not in e)
        assert "(hidden)" in content


def test_report_data_for_the_wizard(project: Project, small_clinic_db: Path) -> None:
    report, _, _ = run(project, small_clinic_db)
    data = report.to_dict()
    json.dumps(data)
    assert data["ready"] is False and data["blockers"] == len(report.blockers)
    assert set(data["problems_by_kind"]) >= {"practitioner_unresolved", "custom_field_missing", "invalid_email"}
    # Personal data appears only where the user needs it to act.
    for p in report.problems:
        if p.personal:
            assert p.kind in {"invalid_email", "duplicate_email", "existing_person"}, p.kind
        assert "@" not in p.detail


def test_workflow_proposes_describes_and_plans(project: Project, small_clinic_db: Path) -> None:
    meta = load_clinic(small_clinic_db, project.store)
    reference = datetime.fromisoformat(meta["reference_time"].replace("Z", "+00:00"))
    snapshot = NutshellSnapshot.from_seed(meta["nutshell_seed"])
    first = propose_map(project, snapshot, reference_time=reference)
    assert first.version == 1 and project.mapping_path.exists()
    catalog = Catalog.from_store(project.store, reference)
    text = describe_map(first, catalog)
    assert "Open decisions:" in text and "Cliniko has no payments API" in text
    assert "UNRESOLVED" in text  # the practitioners whose user has another e-mail wait for the user
    # The user's decision survives a refresh of the proposals; an unchanged refresh makes no version.
    decided = accept_all(first)
    decided = save_map(decided, project.mapping_path)
    again = propose_map(project, snapshot, reference_time=reference)
    assert again.version == decided.version
    assert all(d.confirmed for d in again.custom_field_decisions.values())
    report, paths = plan(project, again, snapshot, reference_time=reference)
    assert paths is not None and all(p.exists() for p in paths)
    assert report.map_version == again.version
    assert not report.problems_of("open_decision")
