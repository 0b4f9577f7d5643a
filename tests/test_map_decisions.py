"""Decisions a newcomer makes in the map: the currency of amounts (from the Cliniko account's country, changeable),
custom fields Nutshell has typed otherwise (a blocker with a proposed fix that --accept-suggestions takes), the
plan's contact limit, and users named by e-mail."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from mapping_sandbox import load_clinic
from test_preflight import proposed_map

from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.field_types import apply_type_fix, conflicts, lossless, propose_type_fixes
from cliniko2nutshell.mapping.model import FieldTypeFix, MigrationMap
from cliniko2nutshell.mapping.practitioners import NutshellUser, find_user, user_label
from cliniko2nutshell.mapping.preflight import Severity, preflight
from cliniko2nutshell.mapping.proposer import accept_all, open_decisions
from cliniko2nutshell.mapping.report_writers import write_preflight
from cliniko2nutshell.mapping.snapshot import CustomFieldInfo, NutshellSnapshot
from cliniko2nutshell.mapping.transforms import plan_patient
from cliniko2nutshell.mapping.workflow import describe_map, propose_map
from cliniko2nutshell.project import Project


@pytest.fixture
def clinic(project: Project, small_clinic_db: Path):  # type: ignore[no-untyped-def]
    meta = load_clinic(small_clinic_db, project.store)
    reference = datetime.fromisoformat(meta["reference_time"].replace("Z", "+00:00"))
    catalog = Catalog.from_store(project.store, reference)
    snapshot = NutshellSnapshot.from_seed(meta["nutshell_seed"])  # "Total Invoiced" is Text there
    return project, catalog, snapshot


def _person_fields(project: Project, catalog: Catalog, mapping: MigrationMap) -> list[dict]:  # type: ignore[type-arg]
    from cliniko2nutshell.mapping.catalog import iter_bundles
    from cliniko2nutshell.mapping.outputs import Context, Planned

    ctx = Context(map=mapping, catalog=catalog)
    out = []
    for bundle in iter_bundles(project.store, catalog):
        if isinstance(bundle, tuple):
            continue
        head = plan_patient(bundle, ctx)[0]
        if isinstance(head, Planned):
            out.append(head.payload.get("customFields", {}))
    return out


def test_amounts_carry_the_accounts_currency_and_it_can_be_changed(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    assert catalog.country_code == "AU" and catalog.currency == "AUD"
    mapping = proposed_map(project.store, catalog, snapshot)
    assert mapping.currency == "AUD"
    money = [f["Balance Due"] for f in _person_fields(project, catalog, mapping) if "Balance Due" in f]
    assert money and all(v["currency"] == "AUD" and set(v) == {"currency", "amount"} for v in money)
    nz = MigrationMap.model_validate({**mapping.model_dump(mode="json"), "currency": "nzd"})  # as mapping.toml reads
    assert nz.currency == "NZD"
    assert {f["Balance Due"]["currency"] for f in _person_fields(project, catalog, nz) if "Balance Due" in f} == {"NZD"}
    with pytest.raises(ValueError, match="three-letter"):
        MigrationMap.model_validate({**mapping.model_dump(mode="json"), "currency": "dollars"})
    assert "Currency of amounts: AUD (from the Cliniko account's country, AU" in describe_map(mapping, catalog)


def test_an_unknown_country_leaves_the_currency_open_and_blocks(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    assert catalog.settings is not None and catalog.settings.account is not None
    catalog.settings.account.country_code = "XX"
    mapping = proposed_map(project.store, catalog, snapshot)
    assert mapping.currency is None
    assert any(d.kind == "currency" for d in open_decisions(mapping, catalog))
    report = preflight(project.store, mapping, snapshot, catalog=catalog)
    assert "currency_unknown" in {p.kind for p in report.blockers}
    chosen = mapping.model_copy(update={"currency": "EUR"})
    assert not any(d.kind == "currency" for d in open_decisions(chosen, catalog))


def test_a_wrong_typed_field_is_a_blocker_with_a_proposal_that_accepting_resolves(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    base = proposed_map(project.store, catalog, snapshot)
    assert conflicts(base, snapshot) == {"Total Invoiced": ("Currency", "Text")}
    blocked = preflight(project.store, base, snapshot, catalog=catalog)
    wrong = [p for p in blocked.blockers if p.kind == "custom_field_wrong_type"]
    assert wrong and "accept-suggestions" in wrong[0].action

    proposed = propose_type_fixes(base, snapshot)
    fix = proposed.field_type_decisions["Total Invoiced"]
    assert (fix.action, fix.existing_type, fix.confirmed) == (FieldTypeFix.USE_EXISTING, "Text", False)
    assert any(d.kind == "field_type" and d.id == "Total Invoiced" for d in open_decisions(proposed, catalog))

    accepted = accept_all(proposed)  # what `map --accept-suggestions` does
    assert accepted.custom_field("Total Invoiced").type == "Text"  # type: ignore[union-attr]
    assert not conflicts(accepted, snapshot)
    assert not [d for d in open_decisions(accepted, catalog) if d.kind != "practitioner"]
    report = preflight(project.store, accepted, snapshot, catalog=catalog)
    assert "custom_field_wrong_type" not in {p.kind for p in report.problems}
    # Written into the Text field as text, the currency kept: nothing lost.
    totals = [f["Total Invoiced"] for f in _person_fields(project, catalog, accepted) if "Total Invoiced" in f]
    assert totals and all(isinstance(t, str) and t.endswith(" AUD") for t in totals)
    # A later refresh keeps the decision.
    again = propose_type_fixes(accepted, snapshot)
    assert again.field_type_decisions["Total Invoiced"].confirmed


def test_a_field_whose_type_would_lose_values_is_renamed_or_skipped(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    base = proposed_map(project.store, catalog, snapshot)
    dates = [f for f in snapshot.custom_fields["Contacts"] if f.name != "Date of Birth"]
    contacts = [*dates, CustomFieldInfo("Date of Birth", "Currency")]
    typed = replace(snapshot, custom_fields={**snapshot.custom_fields, "Contacts": contacts})
    assert not lossless("Date", "Currency")
    proposed = propose_type_fixes(base, typed)
    fix = proposed.field_type_decisions["Date of Birth"]
    assert fix.action is FieldTypeFix.RENAME and fix.target == "Date of Birth (Date)"
    renamed = apply_type_fix(proposed, "Date of Birth", FieldTypeFix.RENAME, fix.target)
    assert renamed.custom_field("Date of Birth (Date)") is not None and renamed.custom_field("Date of Birth") is None
    rules = [r for o in renamed.objects.values() for r in o.fields if r.source == "date_of_birth"]
    assert rules and all(r.target == "customFields.Date of Birth (Date)" for r in rules)
    assert "Date of Birth" not in conflicts(renamed, typed)

    skipped = apply_type_fix(proposed, "Date of Birth", FieldTypeFix.SKIP)
    assert skipped.custom_field("Date of Birth") is None
    assert all(not r.enabled for o in skipped.objects.values() for r in o.fields if r.source == "date_of_birth")
    with pytest.raises(ValueError, match="without loss"):
        apply_type_fix(proposed, "Date of Birth", FieldTypeFix.USE_EXISTING)


def test_the_patient_id_field_cannot_be_skipped(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    base = proposed_map(project.store, catalog, snapshot)
    with pytest.raises(ValueError, match="rename"):
        apply_type_fix(base, "Cliniko Patient ID", FieldTypeFix.SKIP, existing_type="Number")


def test_the_preflight_counts_contacts_after_the_run_against_the_plans_limit(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    mapping = accept_all(propose_type_fixes(proposed_map(project.store, catalog, snapshot), snapshot))
    counted = replace(snapshot, people_total=100, companies_total=10)
    report = preflight(project.store, mapping, counted, catalog=catalog)
    after = report.summary()["nutshell_after"]
    new_people = report.counts["person"].get("create", 0)
    assert after["people"] == 100 + new_people and after["people_now"] == 100
    assert "contact_limit" not in {p.kind for p in report.problems}
    total = after["people"] + after["companies"]
    tight = preflight(project.store, mapping, replace(counted, contact_limit=total - 1), catalog=catalog)
    limit = [p for p in tight.problems if p.kind == "contact_limit"]
    assert limit and limit[0].severity is Severity.BLOCKER and str(total) in limit[0].detail
    roomy = preflight(project.store, mapping, replace(counted, contact_limit=total), catalog=catalog)
    assert "contact_limit" not in {p.kind for p in roomy.problems}
    csv_path, html_path = write_preflight(tight, project.reports_dir)  # the report says it too
    for path in (csv_path, html_path):
        text = path.read_text()
        assert f"Nutshell after the run: {after['people']} people" in text and f"limit: {total - 1}" in text


def test_users_are_found_by_id_or_e_mail_and_named_in_the_map(clinic) -> None:  # type: ignore[no-untyped-def]
    project, catalog, snapshot = clinic
    users = [NutshellUser("5-users", "Jane Doe", (" Jane.Doe@Clinic.example ",)), NutshellUser("6-users", "Sam O")]
    assert find_user(users, "jane.doe@clinic.example").id == "5-users"  # type: ignore[union-attr]
    assert find_user(users, "5").id == "5-users" and find_user(users, "6-users").id == "6-users"  # type: ignore[union-attr]
    assert find_user(users, "nobody@clinic.example") is None and find_user(users, " ") is None
    assert user_label(users[0]) == "Jane Doe <Jane.Doe@Clinic.example> (5-users)"
    mapping = propose_map(project, snapshot, save=False)
    text = describe_map(mapping, catalog, snapshot.users)
    matched = next(c for c in mapping.practitioners.values() if c.user)
    label = user_label(next(u for u in snapshot.users if u.id == matched.user))
    assert f"-> {label}" in text and "Fallback owner: not set" in text
