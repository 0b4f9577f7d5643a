"""The blocker check before anything is written (mapping/workflow.check_blockers), against the Nutshell sandbox
over HTTP, and the `preflight` milestone that both it and `plan` leave for the wizard's step bar."""

from __future__ import annotations

from pathlib import Path

import pytest

from cliniko2nutshell.connections import read_snapshot
from cliniko2nutshell.mapping.preflight import Severity
from cliniko2nutshell.mapping.workflow import check_blockers, plan, propose_map
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.project import Project
from cliniko2nutshell.sandbox.nutshell_app import start_nutshell_sandbox
from tests.fakes.clinic_store import load_clinic, nutshell_seed

pytestmark = pytest.mark.e2e

MILESTONE_KEYS = {"map_version", "ready", "blockers", "warnings", "blocker_lines", "counts"}


@pytest.fixture
def nutshell(small_clinic_db: Path):
    sandbox = start_nutshell_sandbox(nutshell_seed(small_clinic_db))
    yield sandbox
    sandbox.stop()


async def test_no_map_is_the_one_blocker(project: Project, nutshell) -> None:  # type: ignore[no-untyped-def]
    async with NutshellClient(nutshell.username, nutshell.api_key, nutshell.rest_url) as client:
        blockers = await check_blockers(project, client)
    assert [(b.kind, b.severity) for b in blockers] == [("no_map", Severity.BLOCKER)]
    assert "cliniko2nutshell map" in blockers[0].action


async def test_blockers_come_from_what_nutshell_holds_now(
    project: Project,
    nutshell,  # type: ignore[no-untyped-def]
    small_clinic_db: Path,
) -> None:
    load_clinic(project, small_clinic_db)
    patients = list(project.store.iter_records("patients"))
    async with NutshellClient(nutshell.username, nutshell.api_key, nutshell.rest_url) as client:
        snapshot = await read_snapshot(client, [p.get("email") for p in patients])
        propose_map(project, snapshot)  # saved as mapping.toml, decisions still open
        blockers = await check_blockers(project, client)
        kinds = {b.kind for b in blockers}
        # The seeded Nutshell has "Total Invoiced" as Text where the map needs Currency; other fields are missing.
        assert {"custom_field_wrong_type", "custom_field_missing"} <= kinds
        assert all(b.severity is Severity.BLOCKER for b in blockers)
        wrong = next(b for b in blockers if b.kind == "custom_field_wrong_type")
        assert wrong.id == "Total Invoiced" and "Text" in wrong.detail

        milestone = project.store.milestone("preflight")
        assert milestone is not None and set(milestone.detail) == MILESTONE_KEYS
        detail = milestone.detail
        assert detail["ready"] is False and detail["blockers"] == len(blockers)
        assert len(detail["blocker_lines"]) == min(5, len(blockers))
        assert all(": " in line for line in detail["blocker_lines"])
        emails = {p["email"] for p in patients if p.get("email")}
        assert not any(e in line for e in emails for line in detail["blocker_lines"])  # no patient data
        person = detail["counts"]["person"]
        assert set(person) == {"create", "link", "skip", "unmappable"} and person["create"] > 0

        # Fixed in Nutshell (a field created by hand): the next check sees it without a new map.
        missing = next(b for b in blockers if b.kind == "custom_field_missing")
        await client.create_custom_field("contacts", missing.id, "Date" if "Date" in missing.detail else "Text")
        again = await check_blockers(project, client)
        assert missing.id not in {b.id for b in again if b.kind == "custom_field_missing"}
        assert project.store.milestone("preflight").detail["blockers"] == len(again)  # type: ignore[union-attr]


def test_plan_records_the_same_milestone(project: Project, small_clinic_db: Path) -> None:
    from cliniko2nutshell.mapping.snapshot import NutshellSnapshot

    load_clinic(project, small_clinic_db)
    snapshot = NutshellSnapshot.from_seed(nutshell_seed(small_clinic_db))
    mapping = propose_map(project, snapshot)
    report, _ = plan(project, mapping, snapshot, write=False)
    detail = project.store.milestone("preflight").detail  # type: ignore[union-attr]
    assert set(detail) == MILESTONE_KEYS
    assert (detail["map_version"], detail["ready"], detail["blockers"]) == (
        mapping.version,
        report.ready,
        len(report.blockers),
    )
