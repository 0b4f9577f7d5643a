"""The whole journey in the wizard, as a clinic admin walks it, against the sandboxes over HTTP: connect, extract,
practitioners, map, pre-flight, a sample, a map change, the sample again, the full run, a change in Cliniko and an
edit in Nutshell, a delta whose conflict is answered in the dialog, reconcile and rollback. At the end Nutshell
holds what it held before the migration, apart from what the rollback preview said it would leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from wizard_pilot import settle, text_of
from wizard_world import FALLBACK_USER, PROJECT_NAME, World

from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD
from cliniko2nutshell.journey import State, Step
from cliniko2nutshell.mapping.mapfile import load_map
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.project import open_project
from cliniko2nutshell.tui.app import WizardApp
from tests.test_migration_e2e import canonical, dump

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZE = (100, 30)
HEADERS = {"User-Agent": "journey (journey@example.org)", "Accept": "application/json"}


@pytest.fixture
def own_world(world: World, tmp_path: Path) -> Iterator[World]:
    """A world of this test's own: it edits the clinic in Cliniko, which the shared world's tests must not see."""
    (tmp_path / "world").mkdir()
    w = World.start(tmp_path / "world", clinic=world.clinic)
    try:
        yield w
    finally:
        w.stop()


T0 = time.monotonic()


def phase(name: str) -> None:
    print(f"[journey {time.monotonic() - T0:6.1f}s] {name}", flush=True)


async def until_job_ends(pilot: Pilot[Any], timeout: float = 180) -> None:
    app = pilot.app
    await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=timeout)


async def goto(pilot: Pilot[Any], step: Step, ready: Any = None) -> None:
    app = pilot.app
    app.goto(step)
    await settle(pilot, lambda: app.current_step is step and (ready is None or ready()))


async def answer(pilot: Pilot[Any], dialog: str, key: str) -> None:
    app = pilot.app
    await settle(pilot, lambda: type(app.screen).__name__ == dialog)
    await pilot.press(key)
    await settle(pilot, lambda: type(app.screen).__name__ != dialog)


def patient_contact(ns: Any, patient_id: str) -> dict[str, Any]:
    state = dump(ns)
    return next(c for c in state["live"]["contacts"] if (c.get("custom") or {}).get(PATIENT_ID_FIELD) == patient_id)


async def test_the_whole_journey_from_connect_to_rollback(own_world: World, home: Path) -> None:
    world = own_world
    project, ns = world.stage("new", home)
    pristine = dump(ns)
    app = WizardApp(project, demo=world.demo(ns), keyring_backend=world.keyring, start_step=Step.CONNECT)
    async with app.run_test(size=SIZE) as pilot:
        # Connect: the demo filled the keys in; test both, save
        phase("Connect: the demo filled the keys in; ")
        await settle(pilot, lambda: app.current_step is Step.CONNECT)
        await pilot.press("ctrl+t")
        await settle(pilot, lambda: app.screen.cliniko_access and app.screen.nutshell_access)
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: app.current_step is Step.EXTRACT)

        # Extract
        phase("Extract")
        await pilot.press("e")
        await until_job_ends(pilot)
        await settle(pilot, lambda: app.journey[Step.EXTRACT].state is State.DONE)

        # Practitioners: accept the e-mail matches, every other one to the fallback owner
        phase("Practitioners: accept the e-mail match")
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: app.current_step is Step.PRACTITIONERS and app.screen.data is not None)
        await pilot.press("m")
        await settle(pilot)
        fallback = next(u for u in app.screen.data.users if u.id == FALLBACK_USER)
        await pilot.press("F")
        await settle(pilot, lambda: type(app.screen).__name__ == "ChoiceDialog")
        await pilot.press(*fallback.name.split()[0], "enter")
        await settle(pilot, lambda: app.journey[Step.PRACTITIONERS].state is State.DONE)

        # Map: accept the proposals, create the missing custom fields, confirm
        phase("Map: accept the proposals, create the ")
        await goto(pilot, Step.MAP, lambda: app.screen.data is not None)
        await pilot.press("a")
        await settle(pilot, lambda: not app.screen.data.open_decisions)
        await pilot.press("x")
        await answer(pilot, "ConfirmDialog", "enter")
        await until_job_ends(pilot)
        await pilot.press("ctrl+s")
        await answer(pilot, "ConfirmDialog", "escape")
        await settle(pilot, lambda: app.journey[Step.MAP].state is State.DONE)
        first_version = load_map(project / "mapping.toml").version

        # Pre-flight: ready, no blockers
        phase("Pre-flight: ready, no blockers")
        await goto(pilot, Step.PREFLIGHT, lambda: app.screen.result is not None)
        await settle(pilot, lambda: app.journey[Step.SAMPLE].state is not State.NOT_READY)

        # Sample, then its diff
        phase("Sample, then its diff")
        await goto(pilot, Step.SAMPLE, lambda: getattr(app.screen, "data", None) is not None)
        await pilot.press("s")
        await answer(pilot, "ConfirmDialog", "enter")
        await until_job_ends(pilot)
        await settle(pilot, lambda: type(app.screen).__name__ == "DiffScreen")
        assert "Field" in text_of(app) or "record" in text_of(app).lower()

        # A map change (a field off), confirmed as a new version; the sample again with it
        phase("A map change (a field off), confirmed ")
        await pilot.press("m")
        await settle(pilot, lambda: app.current_step is Step.MAP and app.screen.data is not None)
        await pilot.press("tab")  # from the objects to their fields
        await pilot.press("down", "down", "down", "space")  # phone numbers → off
        await settle(pilot, lambda: app.screen.data.mapping.version > first_version)
        await pilot.press("ctrl+s")
        await answer(pilot, "ConfirmDialog", "escape")
        await settle(pilot, lambda: app.journey[Step.MAP].state is State.DONE)
        second = load_map(project / "mapping.toml")
        assert second.version > first_version and second.confirmed
        await goto(pilot, Step.PREFLIGHT, lambda: app.screen.result is not None)
        await settle(pilot, lambda: app.journey[Step.SAMPLE].state is not State.NOT_READY)
        await goto(pilot, Step.SAMPLE, lambda: getattr(app.screen, "data", None) is not None)
        await pilot.press("a")  # run it again, with the new map version
        await until_job_ends(pilot)
        await settle(pilot, lambda: type(app.screen).__name__ == "DiffScreen")

        # The full run
        phase("The full run")
        await goto(pilot, Step.RUN)
        await pilot.press("s")
        await answer(pilot, "ConfirmDialog", "enter")
        await until_job_ends(pilot, timeout=300)
        await settle(pilot, lambda: app.journey[Step.RUN].state is State.DONE)
        assert "ended" in text_of(app)

        # Cliniko changes a patient; the front desk edits the same person in Nutshell
        phase("Cliniko changes a patient; the front d")
        with open_project(project, write=False) as p:
            patient = next(r for r in p.store.iter_records("patients") if not r.get("archived_at"))
        pid = str(patient["id"])
        httpx.patch(f"{world.cliniko.base_url}/patients/{pid}", json={"occupation": "Sculptor"},
                    auth=(world.cliniko.api_key, ""), headers=HEADERS, timeout=30).raise_for_status()  # fmt: skip
        theirs = patient_contact(ns, pid)["id"]

        async def edit() -> None:
            async with NutshellClient(ns.username, ns.api_key, ns.rest_url) as client:
                await client.update_person(f"{theirs}-contacts", {"description": "Edited by the front desk"})

        await asyncio.get_running_loop().run_in_executor(None, lambda: asyncio.run(edit()))

        # Delta under "ask": the dialog shows the conflict; keep Nutshell's edit
        phase('Delta under "ask": the dialog shows th')
        await goto(pilot, Step.DELTA)
        await pilot.press("d")
        await settle(pilot, lambda: type(app.screen).__name__ == "ConflictDialog", timeout=180, idle=False)
        assert "Edited by the front desk" in text_of(app)
        await pilot.press("k")
        await until_job_ends(pilot)
        await settle(pilot, lambda: "Delta run" in text_of(app))
        assert "1 kept as edited" in text_of(app)
        assert patient_contact(ns, pid).get("description") == "Edited by the front desk"

        # Reconcile: balanced
        await goto(pilot, Step.RECONCILE, lambda: getattr(app.screen, "view", None) is not None)
        phase("Reconcile")
        await pilot.press("r")
        await until_job_ends(pilot)
        await settle(pilot, lambda: app.screen.view is not None and app.screen.view.rec is not None)
        assert "✓ Balanced" in text_of(app)

        # Rollback: preview, the project's name typed, verified
        await goto(pilot, Step.ROLLBACK, lambda: getattr(app.screen, "state", None) is not None)
        phase("Rollback")
        await pilot.press("p")
        await until_job_ends(pilot)
        await settle(pilot, lambda: app.screen.preview is not None)
        preview = app.screen.preview
        assert [i.source_id for i in preview.edited_since] == [pid]  # the front desk's edit is left alone
        await pilot.press("b")
        await settle(pilot, lambda: type(app.screen).__name__ == "TypedConfirmDialog")
        await pilot.press(*PROJECT_NAME, "enter")
        await until_job_ends(pilot, timeout=300)
        await settle(pilot, lambda: "✓ Verified" in text_of(app))
        phase("Rolled back")

    # Nutshell holds what it held before the migration, apart from what the preview said it would leave: the
    # person edited in Nutshell since (and the custom fields, which Nutshell's API cannot delete)
    before, now = canonical(pristine), canonical(dump(ns))
    left = {f"person:{pid}"}
    for kind in before:
        assert {m for m in now[kind] if m not in before[kind]} <= left, kind
        assert {m: v for m, v in now[kind].items() if m not in left} == before[kind], kind
