"""Steering the full run from the wizard against the sandboxes over HTTP: pause and resume it, and resume a run
whose process was killed part-way. Either way every record lands in Nutshell once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wizard_pilot import settle, text_of
from wizard_world import World

from cliniko2nutshell.engine.runner import KILL_ENV
from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.app import WizardApp
from cliniko2nutshell.tui.work import JobStatus
from tests.test_migration_e2e import canonical, dump

pytestmark = pytest.mark.e2e

SIZE = (100, 30)
REPO = Path(__file__).resolve().parents[1]


async def start_full_run(pilot: Any, app: WizardApp) -> None:
    """From the Run step: S, confirm, and wait until 20 records are written."""
    await settle(pilot, lambda: app.current_step is Step.RUN)
    await pilot.press("s")
    await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
    await pilot.press("enter")
    await settle(pilot, lambda: app.job is not None and app.job.board.snapshot().done >= 20, idle=False)


def once_each(ns: Any) -> None:
    """Every migrated record is in Nutshell exactly once."""
    twice = {(kind, m): len(v) for kind, recs in canonical(dump(ns)).items() for m, v in recs.items() if len(v) > 1}
    assert twice == {}


async def test_the_full_run_pauses_and_resumes_from_the_run_step(world: World, home: Path) -> None:
    project, ns = world.stage("preflighted", home)
    ns.knobs.latency = 0.05  # a run long enough to pause part-way
    app = WizardApp(project, keyring_backend=world.keyring, start_step=Step.RUN)
    async with app.run_test(size=SIZE) as pilot:
        await start_full_run(pilot, app)
        await pilot.press("p")
        await settle(pilot, lambda: app.job.board.snapshot().paused is not None, idle=False, timeout=30)
        assert app.job.status is JobStatus.PAUSED and "‖ paused" in text_of(app)
        held = app.job.board.snapshot().done  # "paused" is shown once the writes in flight are done
        await pilot.pause(1.0)
        assert app.job.board.snapshot().done == held  # nothing more is written while paused
        await pilot.press("p")
        await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=180)
        assert app.job.status is JobStatus.DONE
        await settle(pilot, lambda: "ended" in text_of(app))
    ns.knobs.latency = 0.0
    once_each(ns)


async def test_a_run_killed_part_way_is_offered_and_resumed_by_the_wizard(world: World, home: Path) -> None:
    project, ns = world.stage("preflighted", home)
    # the headless run, as a user started it, killed (SIGKILL) after an appointment was sent but not journaled
    env = {**os.environ, KILL_ENV: "appointment:15:sent", "PYTHONPATH": str(REPO),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "CLINIKO_API_KEY": world.cliniko.api_key,
           "NUTSHELL_USERNAME": ns.username, "NUTSHELL_API_KEY": ns.api_key}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "cliniko2nutshell", "run", "--project", str(project), "--yes"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    app = WizardApp(project, keyring_backend=world.keyring)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.RUN)  # the project opens where the work waits
        assert "stopped part-way" in text_of(app) and "R resumes it" in text_of(app)
        await pilot.press("r")
        await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=180)
        assert app.job.status is JobStatus.DONE
        await settle(pilot, lambda: "ended: " in text_of(app))
        assert app.journey.interrupted_run is None
    once_each(ns)


async def test_closing_the_app_mid_run_stops_the_run_and_releases_the_project(world: World, home: Path) -> None:
    """However the app goes away (here: the test ends it, as a closed terminal would), the run stops at a safe
    point instead of outliving it on a thread nobody waits for, and the project's lock is released."""
    from cliniko2nutshell.project import open_project

    project, ns = world.stage("preflighted", home)
    ns.knobs.latency = 0.05
    app = WizardApp(project, keyring_backend=world.keyring, start_step=Step.RUN)
    async with app.run_test(size=SIZE) as pilot:
        await start_full_run(pilot, app)
        job = app.job
    assert job.wait(0) and job.status is JobStatus.STOPPED
    ns.knobs.latency = 0.0
    open_project(project).close()  # the lock is free: no "in use by another process"
    once_each(ns)
