"""The Sample step and the diff viewer, driven like a user against the sandbox over HTTP: run a sample from the
screen, read its diff, step through the problems with the keys, undo it (Nutshell as before), and read the diff
again after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from wizard_pilot import settle, text_of
from wizard_world import World

from cliniko2nutshell.journey import Step
from cliniko2nutshell.project import open_project
from cliniko2nutshell.tui.app import WizardApp
from tests.test_migration_e2e import canonical, differences

pytestmark = pytest.mark.e2e


def _screen(app: WizardApp) -> str:
    return type(app.screen).__name__


def _detail(app: WizardApp) -> str:
    return str(app.screen.query_one("#field-detail").render())


def _selected(app: WizardApp) -> tuple[str, str]:
    """The record and the field under the cursor of the diff viewer's fields table."""
    screen: Any = app.screen
    record, field = screen.rows[screen.query_one("#fields").cursor_row]
    return f"{record.object}:{record.source_id}", field.field if field is not None else "(head)"


async def _confirm(pilot: Any) -> None:
    await settle(pilot, lambda: _screen(pilot.app) == "ConfirmDialog")
    await pilot.click("#yes")


def test_a_sample_runs_from_the_screen_its_diff_steps_through_problems_and_undo_restores_nutshell(
    world: World, home: Path
) -> None:
    project, ns = world.stage("preflighted", home)
    before = httpx.get(ns.state_url).json()

    async def walk() -> None:
        app = WizardApp(project, keyring_backend=world.keyring, start_step=Step.SAMPLE)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, lambda: getattr(app.screen, "preview", None) is not None)
            assert "The slice takes 28 patients" in text_of(app)
            assert "Appointment types: 6 of 6 covered" in text_of(app)
            await pilot.press("s")
            await _confirm(pilot)
            # the sample runs as the app's job, then the diff viewer opens in place of the step
            await settle(pilot, lambda: _screen(app) == "DiffScreen" and app.screen.info is not None, timeout=180)
            shown = text_of(app)
            assert "Sample run 1, map v3" in shown and "records compared: 4 with problems" in shown
            # the problems: two linked people keep their own phone; an upload Cliniko never finished is missing
            assert "✗ 1 | Ella Evans (17)" in shown and "✗ mismatch" in shown
            assert app.screen.query_one("#records").row_count == 3  # the filter starts at "with problems"
            # N and P step through every problem, across records, and wrap around
            problems = sum(len(r.problems) for r in app.screen.report.records())
            assert problems >= 4
            seen = [_selected(app)]
            for _ in range(problems):
                await pilot.press("n")
                await settle(pilot)
                seen.append(_selected(app))
            assert len(set(seen[:problems])) == problems and seen[problems] == seen[0]
            assert {"(record)", "phones"} <= {f for _, f in seen}
            await pilot.press("p")
            await settle(pilot)
            assert _selected(app) == seen[problems - 1]
            assert "Why:" in _detail(app) and "✗ missing" in text_of(app)
            # all records, searched for a patient: a transformation carries its reason, times read in the
            # clinic's zone
            await pilot.press("f", "slash", *"keith", "enter")
            await settle(pilot)
            screen: Any = app.screen
            assert [s.title for s in screen.shown] == ["Keith Cunningham"]
            rows = [r for rec, r in screen.rows if r is not None and rec.object == "appointment"]
            start = next(r for r in rows if r.field == "startTime")
            assert start.reformatted and start.expected.endswith(("AEST", "AEDT"))
            kind = next(r for r in rows if r.field == "activityType")
            assert kind.status.value == "transformed" and kind.note.startswith("value map")
            assert not any((r.stored or "").endswith("-activityTypes") for r in rows)
            # undo the sample: the viewer hands over to the step, which runs the rollback on the app
            await pilot.press("u")
            await _confirm(pilot)
            await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=180)
            await settle(pilot, lambda: app.current_step is Step.SAMPLE and "Undone" in text_of(app))
            assert app.job.result.verification.ok

    asyncio.run(walk())
    after = httpx.get(ns.state_url).json()
    assert differences(canonical(after), canonical(before)) == []
    # the project still holds the diff of the undone sample, and the journal says it was undone
    with open_project(project, write=False) as p:
        from cliniko2nutshell.engine.api import last_sample

        info = last_sample(p)
        assert info.diff is not None and info.undone_by is not None


def test_the_diff_is_read_from_the_project_after_a_restart(world: World, home: Path) -> None:
    project, _ns = world.stage("sampled", home)

    async def look() -> None:
        app = WizardApp(project, keyring_backend=world.keyring, start_step=Step.SAMPLE, screen_share=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, lambda: getattr(app.screen, "data", None) is not None)
            assert "D opens the diff" in text_of(app)
            await pilot.press("d")
            await settle(pilot, lambda: _screen(app) == "DiffScreen" and app.screen.info is not None)
            shown = text_of(app)
            assert "records compared" in shown
            assert "E. E. (17)" in shown and "Ella Evans" not in shown  # screen-share mode: initials
            await pilot.press("escape")
            await settle(pilot, lambda: app.current_step is Step.SAMPLE and _screen(app) == "SampleScreen")

    asyncio.run(look())
