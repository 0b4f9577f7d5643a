"""The wizard's Reconcile and Rollback steps and its audit log, driven with Pilot against the sandbox over HTTP:
what each shows, what it stored, and what Nutshell holds afterwards (the sandbox's state dump)."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_migration_e2e import canonical, differences, killed_run
from textual.widgets import Button, DataTable, Input, Select
from wizard_pilot import settle, text_of
from wizard_world import World

from cliniko2nutshell.engine.journal import Journal, RunKind, RunStatus
from cliniko2nutshell.journey import Step
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.project import open_project
from cliniko2nutshell.tui.app import WizardApp
from cliniko2nutshell.tui.screens.audit import PAGE, AuditScreen
from cliniko2nutshell.tui.screens.dialogs import TypedConfirmDialog
from cliniko2nutshell.tui.screens.reconcile import ReconcileScreen
from cliniko2nutshell.tui.screens.rollback import RollbackScreen

pytestmark = pytest.mark.e2e
SIZE = (100, 30)


def app_for(world: World, project: Path, step: Step | None = None, **kw: Any) -> WizardApp:
    return WizardApp(project, keyring_backend=world.keyring, start_step=step, **kw)


def dump(ns: Any) -> dict[str, Any]:
    return httpx.get(ns.state_url, timeout=30).json()


def runs(project: Path) -> list[Any]:
    p = open_project(project, write=False)
    try:
        return Journal(p.store).runs()
    finally:
        p.close()


def drive(app: WizardApp, steps: Any) -> None:
    """Run the app headless at 100x30 and drive it with `steps(pilot)`; the stage is built before, outside any
    event loop (the world's builders run their own)."""

    async def go() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await steps(pilot)

    asyncio.run(go())


async def job_done(pilot: Any, kind: str) -> None:
    app = pilot.app
    await settle(pilot, lambda: app.job is not None and app.job.kind == kind and not app.job.active, timeout=120)


# -- reconcile -------------------------------------------------------------------------------------------------


def test_reconcile_after_a_full_run_balances_and_lists_the_failures(world: World, home: Path) -> None:
    project, _ns = world.stage("migrated", home)
    app = app_for(world, project, Step.RECONCILE)
    rows: list[list[str]] = []

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(app.screen, ReconcileScreen) and app.screen.view is not None)
        screen = app.screen
        assert "Not reconciled yet" in text_of(app)
        await pilot.press("r")
        await job_done(pilot, "reconcile")
        await settle(pilot, lambda: screen.view is not None and screen.view.rec is not None)
        shown = text_of(app)
        assert "✓ Balanced" in shown and "✓ Done: balanced" in shown
        lines = screen.query_one("#reconcile-lines", DataTable)
        rows.extend([str(c) for c in lines.get_row_at(i)] for i in range(lines.row_count))
        people = next(r for r in rows if "People" in r[0])
        assert people[1] == people[2] == people[3] != "0"  # planned, journal and Nutshell agree
        assert all(r[0].startswith("✓") for r in rows)
        # the two unmappable records of the clinic are listed with their reasons, and open
        problems = screen.query_one("#reconcile-problems", DataTable)
        assert problems.row_count == len(screen.view.rec.quarantine) == 2
        assert "unmappable" in str(problems.get_row_at(0)[4])
        problems.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert "quarantined" in text_of(app)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("ctrl+q")  # quitting releases the project for the next window

    drive(app, steps)
    # kept with the project: reopening shows the same rows without reading Nutshell
    again = app_for(world, project, Step.RECONCILE)

    async def reopened(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(again.screen, ReconcileScreen) and again.screen.view is not None)
        assert again.job is None and "✓ Balanced" in text_of(again)
        assert again.screen.query_one("#reconcile-lines", DataTable).row_count == len(rows)

    drive(again, reopened)


def test_retry_failed_from_reconcile_runs_on_the_run_step(world: World, home: Path) -> None:
    project, _ns = world.stage("reconciled", home)
    app = app_for(world, project, Step.RECONCILE)

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(app.screen, ReconcileScreen) and app.screen.view is not None)
        assert app.screen.query_one("#reconcile-retry", Button).display
        await pilot.press("f")
        await settle(pilot, lambda: app.current_step is Step.RUN)
        assert app.job is not None and app.job.kind == "retry"
        await job_done(pilot, "retry")
        await settle(pilot)
        assert "Retry" in text_of(app)

    drive(app, steps)
    retry = runs(project)[-1]
    assert retry.kind is RunKind.RETRY and retry.status is RunStatus.FINISHED
    assert retry.options == {"records": 2}


# -- rollback --------------------------------------------------------------------------------------------------


def edit_a_person(ns: Any, project: Path) -> str:
    """Someone edits, in Nutshell, one of the people the migration created: returns that patient's Cliniko id."""
    conn = sqlite3.connect(project / "migration.db")
    try:
        source_id, nutshell_id = conn.execute(
            "SELECT source_id, nutshell_id FROM id_map WHERE object = 'person' AND origin = 'created' "
            "ORDER BY source_id LIMIT 1"
        ).fetchone()
    finally:
        conn.close()

    async def edit() -> None:
        async with NutshellClient(ns.username, ns.api_key, ns.rest_url) as client:
            await client.update_person(nutshell_id, {"description": "Edited by the front desk"})

    asyncio.run(edit())
    return str(source_id)


def test_rollback_after_the_typed_name_returns_nutshell_to_before_the_migration(world: World, home: Path) -> None:
    project, ns = world.stage("reconciled", home)
    pristine = canonical(world.pristine[project])
    edited = edit_a_person(ns, project)
    app = app_for(world, project, Step.ROLLBACK)

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(app.screen, RollbackScreen) and app.screen.state is not None)
        screen = app.screen
        assert not screen.query_one("#rollback-go", Button).display  # not before a preview
        await pilot.press("p")
        await job_done(pilot, "rollback-preview")
        await settle(pilot, lambda: screen.preview is not None)
        preview = screen.preview
        assert [i.source_id for i in preview.edited_since] == [edited]
        left = screen.query_one("#rollback-left", DataTable)
        cells = [left.get_row_at(i) for i in range(left.row_count)]
        assert any(edited in str(row[2]) and "edited in Nutshell" in str(row[3]) for row in cells)
        assert sum(1 for row in cells if "Custom field" in str(row[1])) == len(preview.custom_fields) > 0
        assert "1 skipped: edited in Nutshell since" in text_of(app)
        # the wrong name does not go ahead
        await pilot.press("b")
        await settle(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        dialog = app.screen
        await pilot.press(*"Harbour")
        await settle(pilot)
        assert dialog.query_one("#yes", Button).disabled
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is dialog and app.job.kind == "rollback-preview"
        dialog.query_one(Input).value = ""
        await pilot.press(*"Harbour Physio", "enter")
        await job_done(pilot, "rollback")
        await settle(pilot)
        shown = text_of(app)
        assert "✓ Verified" in shown and "left in place as the preview said" in shown
        assert "✓ Done: run" in shown and "rolled back" in shown

    drive(app, steps)
    rollback = runs(project)[-1]
    assert rollback.kind is RunKind.ROLLBACK and rollback.status is RunStatus.FINISHED
    assert rollback.summary["verification"]["still_there"] == []  # type: ignore[index]
    # Nutshell is as it was before the migration, apart from the person the preview said it leaves
    now = canonical(dump(ns))
    left_marks = {f"person:{edited}"}
    for kind in pristine:
        assert {m for m in now[kind] if m not in pristine[kind]} <= left_marks, kind
        assert {m: v for m, v in now[kind].items() if m not in left_marks} == pristine[kind], kind


def test_a_rollback_of_one_run_or_kinds_of_records_previews_that_scope(world: World, home: Path) -> None:
    project, _ns = world.stage("migrated", home)
    app = app_for(world, project, Step.ROLLBACK)

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(app.screen, RollbackScreen) and app.screen.state is not None)
        screen = app.screen
        sample = next(r for r in screen.state.runs if r.kind is RunKind.SAMPLE)
        screen.query_one("#kind-run").value = True
        screen.query_one("#rollback-run", Select).value = sample.id
        await settle(pilot)
        assert screen.scope().run_id == sample.id
        await pilot.press("p")
        await job_done(pilot, "rollback-preview")
        await settle(pilot, lambda: screen.preview is not None)
        assert screen.preview.scope.describe() == f"run {sample.id}"
        assert f"Preview of run {sample.id}" in text_of(app)
        # another scope: the preview is withdrawn until it is made again
        screen.query_one("#kind-objects").value = True
        await settle(pilot)
        assert screen.preview is None and screen.scope() is None
        assert not screen.query_one("#rollback-preview", Button).display  # no kind chosen yet
        screen.query_one("#rollback-groups").select("activities")
        await settle(pilot)
        assert screen.query_one("#rollback-preview", Button).display
        await pilot.press("p")
        await job_done(pilot, "rollback-preview")
        await settle(pilot, lambda: screen.preview is not None)
        objects = {i.object for i in screen.preview.items}
        assert "appointment" in objects and "person" not in objects

    drive(app, steps)


@pytest.mark.slow
def test_a_killed_rollback_resumes_from_the_rollback_step(world: World, home: Path) -> None:
    project, ns = world.stage("migrated", home)
    pristine = canonical(world.pristine[project])
    killed_run(project, ns, "rollback", "appointment:30:sent")
    interrupted = runs(project)[-1]
    assert interrupted.kind is RunKind.ROLLBACK and interrupted.status is RunStatus.RUNNING
    app = app_for(world, project)  # no step asked for: the project lands where it stands

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: isinstance(app.screen, RollbackScreen) and app.screen.state is not None)
        screen = app.screen
        assert f"Rollback run {interrupted.id} (everything) did not finish" in text_of(app)
        assert screen.query_one("#rollback-resume", Button).display
        assert not screen.query_one("#rollback-preview", Button).display
        await pilot.press("r")
        await job_done(pilot, "resume")
        await settle(pilot)
        assert "✓ Verified" in text_of(app)

    drive(app, steps)
    final = runs(project)[-1]
    assert final.id == interrupted.id and final.status is RunStatus.FINISHED
    assert differences(canonical(dump(ns)), pristine) == []


# -- the audit log ---------------------------------------------------------------------------------------------


def set_error(project: Path, text: str) -> int:
    """Give one journal entry an error text (as Nutshell's messages can carry anything); returns its seq."""
    conn = sqlite3.connect(project / "migration.db")
    try:
        seq = conn.execute("SELECT MIN(seq) FROM journal WHERE object = 'person'").fetchone()[0]
        conn.execute("UPDATE journal SET state = 'failed', error = ? WHERE seq = ?", (text, seq))
        conn.commit()
    finally:
        conn.close()
    return int(seq)


def test_the_audit_log_pages_filters_searches_and_exports(world: World, home: Path) -> None:
    project, _ns = world.stage("migrated", home)
    seq = set_error(project, '=HYPERLINK("http://x") rejected: jane.citizen@example.com is invalid')
    app = app_for(world, project, Step.PROJECT)
    seen: dict[str, int] = {}

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: app.current_step is Step.PROJECT)
        await pilot.press("ctrl+l")
        await settle(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.page is not None)
        screen = app.screen
        table = screen.query_one("#audit-entries", DataTable)
        total = seen["total"] = screen.page.total
        assert total > PAGE and table.row_count == PAGE and f"of {total:,} entries" in text_of(app)
        first = table.get_row_at(0)
        await pilot.press("right_square_bracket")
        await settle(pilot, lambda: screen.page.offset == PAGE)
        assert table.get_row_at(0) != first and "page 2 of" in text_of(app)
        await pilot.press("right_curly_bracket")
        await settle(pilot, lambda: screen.page.offset == (total - 1) // PAGE * PAGE)
        assert table.row_count == total - screen.page.offset
        # a record kind and a status from the menus
        screen.query_one("#audit-object", Select).value = "person"
        await settle(pilot, lambda: screen.page.flt.object == "person")
        assert screen.page.offset == 0 and {str(table.get_row_at(i)[2]) for i in range(table.row_count)} == {"People"}
        screen.query_one("#audit-status", Select).value = "failed"
        await settle(pilot, lambda: screen.page.flt.status == "failed")
        assert screen.page.total == 1 and screen.page.entries[0].seq == seq
        assert "jane.citizen@example.com" in text_of(app)  # shown in full outside screen-share mode
        await pilot.press("f2")
        await settle(pilot)
        assert "jane.citizen@example.com" not in text_of(app) and "j•••@•••.com" in text_of(app)
        await pilot.press("ctrl+r")
        await settle(pilot, lambda: screen.page.flt.object is None)
        # search: a Cliniko id
        entry = screen.page.entries[3]
        await pilot.press("slash", *entry.cliniko_id, "enter")
        await settle(pilot, lambda: screen.page.flt.text == entry.cliniko_id)
        assert screen.page.total >= 1 and all(e.cliniko_id == entry.cliniko_id for e in screen.page.entries)
        # an entry in full
        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert f"Journal entry {screen.page.entries[0].seq}" in text_of(app)
        await pilot.press("escape")
        await settle(pilot)
        # export what the search shows, then everything (the palette's command)
        await pilot.press("ctrl+e")
        await settle(pilot)
        app.action_export_audit_log()
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot, lambda: app.current_step is Step.PROJECT)
        app.action_export_audit_log()  # from a step: the whole journal
        await settle(pilot)

    drive(app, steps)
    exports = sorted((project / "reports").glob("audit-log-*.csv"))
    assert exports, "no CSV in the reports folder"
    sizes = []
    for path in exports:
        assert path.stat().st_mode & 0o777 == 0o600
        with path.open(newline="") as fh:
            sizes.append(len(list(csv.reader(fh))) - 1)
    assert seen["total"] in sizes
    with next(p for p in exports if sum(1 for _ in p.open()) - 1 == seen["total"]).open(newline="") as fh:
        errors = [row["error"] for row in csv.DictReader(fh) if row["error"]]
    assert errors == ['\'=HYPERLINK("http://x") rejected: jane.citizen@example.com is invalid']  # not a formula


def test_the_audit_log_of_an_empty_journal_says_so(world: World, home: Path) -> None:
    project, _ns = world.stage("preflighted", home)
    app = app_for(world, project, Step.PROJECT)

    async def steps(pilot: Any) -> None:
        await settle(pilot, lambda: app.current_step is Step.PROJECT)
        await pilot.press("ctrl+l")
        await settle(pilot, lambda: isinstance(app.screen, AuditScreen) and app.screen.page is not None)
        assert "nothing has been written to Nutshell yet" in text_of(app)

    drive(app, steps)
