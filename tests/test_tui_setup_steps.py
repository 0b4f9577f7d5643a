"""The wizard's set-up steps driven as a clinic admin would, against the sandboxes over HTTP: what each step shows
and what it stored (keys in the in-memory keyring, records in the store, decisions in mapping.toml, custom fields
in Nutshell, the pre-flight milestone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from wizard_pilot import settle, text_of
from wizard_world import FALLBACK_USER, PATIENTS, World

from cliniko2nutshell.journey import State, Step
from cliniko2nutshell.mapping.mapfile import load_map
from cliniko2nutshell.mapping.model import PractitionerDecision
from cliniko2nutshell.project import open_project
from cliniko2nutshell.project.secrets import Secret
from cliniko2nutshell.tui.app import WizardApp

pytestmark = pytest.mark.e2e

SIZE = (100, 30)


def app_at(world: World, project: Path, step: Step, **kw: Any) -> WizardApp:
    return WizardApp(project, keyring_backend=world.keyring, start_step=step, **kw)


async def test_connect_tests_both_keys_and_keeps_them_in_the_keyring(world: World, home: Path) -> None:
    project, ns = world.stage("new", home)
    app = app_at(world, project, Step.CONNECT, demo=world.demo(ns))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.CONNECT)
        assert app.journey[Step.EXTRACT].state is State.NOT_READY
        await pilot.press("ctrl+t")
        await settle(pilot, lambda: app.screen.cliniko_access and app.screen.nutshell_access)
        shown = text_of(app)
        assert "administrator" in shown and "requests/min" in shown
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: app.current_step is Step.EXTRACT)
        assert app.journey[Step.CONNECT].state is State.DONE
    with open_project(project, write=False) as p:
        connected = p.store.milestone("connected")
        settings_id = p.settings.id
    assert connected is not None and connected.detail["cliniko_role"] == "administrator"
    # the demo keeps keys for this session only; the project folder never holds them
    secrets = world.secrets(open_project(project, write=False))
    assert secrets.get(Secret.CLINIKO_API_KEY) == world.cliniko.api_key
    assert world.keyring.get_password(f"cliniko2nutshell:{settings_id}", Secret.CLINIKO_API_KEY.value) is None
    for path in project.rglob("*"):
        if path.is_file():
            assert world.cliniko.api_key.encode() not in path.read_bytes(), path


async def test_connect_keeps_keys_in_the_keychain_when_asked(world: World, home: Path) -> None:
    project, ns = world.stage("new", home)
    app = app_at(world, project, Step.CONNECT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.CONNECT)
        screen = app.screen
        screen.query_one("#cliniko-key").value = world.cliniko.api_key
        screen.query_one("#nutshell-user").value = ns.username
        screen.query_one("#nutshell-key").value = ns.api_key
        await pilot.press("ctrl+t")
        await settle(pilot, lambda: app.screen.cliniko_access and app.screen.nutshell_access)
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: app.current_step is Step.EXTRACT)
    with open_project(project, write=False) as p:
        service = f"cliniko2nutshell:{p.settings.id}"
    assert world.keyring.get_password(service, Secret.CLINIKO_API_KEY.value) == world.cliniko.api_key
    assert world.keyring.get_password(service, Secret.NUTSHELL_API_KEY.value) == ns.api_key


async def test_connect_refuses_a_receptionists_key(world: World, home: Path) -> None:
    project, _ = world.stage("new", home)
    app = app_at(world, project, Step.CONNECT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.CONNECT)
        app.screen.query_one("#cliniko-key").value = world.cliniko.staff_keys["receptionist"]
        await pilot.click("#test-cliniko")
        await settle(pilot, lambda: "not" in str(app.screen.query_one("#cliniko-result").render()).lower())
        shown = str(app.screen.query_one("#cliniko-result").render())
        assert "receptionist" in shown and "administrator" in shown
        assert app.screen.cliniko_access is None
        assert app.screen.query_one("#save").disabled


async def test_extract_reads_the_clinic_into_the_project(world: World, home: Path) -> None:
    project, _ = world.stage("connected", home)
    app = app_at(world, project, Step.EXTRACT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.EXTRACT)
        await pilot.press("e")
        await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=120)
        await settle(pilot, lambda: app.journey[Step.EXTRACT].state is State.DONE)
        assert f"{PATIENTS} patients extracted" in app.journey[Step.EXTRACT].reason
        assert "✓ stored" in text_of(app)
    with open_project(project, write=False) as p:
        assert p.store.count_records("patients")["patients"] == PATIENTS


async def test_practitioners_decisions_are_saved_in_the_map(world: World, home: Path) -> None:
    project, _ = world.stage("extracted", home)
    app = app_at(world, project, Step.PRACTITIONERS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.PRACTITIONERS and app.screen.data is not None)
        data = app.screen.data
        unresolved = [p for p, c in data.mapping.practitioners.items() if c.decision is PractitionerDecision.UNRESOLVED]
        assert unresolved, "the sandbox plants practitioners without a Nutshell user"
        assert "unresolved" in text_of(app)
        before = data.mapping.version
        table = app.screen.query_one("#practitioners")
        table.move_cursor(row=table.get_row_index(unresolved[0]))
        screen = app.screen
        fallback = next(u for u in data.users if u.id == FALLBACK_USER)
        await pilot.press("f")  # no fallback owner yet: choose one from the searchable list
        await settle(pilot)
        await pilot.press(*fallback.name.split()[0])
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot, lambda: screen.data.mapping.version > before)
        assert "fallback" in text_of(app)
    saved = load_map(project / "mapping.toml")
    assert saved.practitioners[unresolved[0]].decision is PractitionerDecision.FALLBACK
    assert saved.fallback_owner == FALLBACK_USER
    assert saved.version > before and not saved.confirmed


async def test_map_creates_fields_in_nutshell_and_confirms_a_new_version(world: World, home: Path) -> None:
    project, ns = world.stage("matched", home)
    app = app_at(world, project, Step.MAP)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.MAP and app.screen.data is not None)
        assert app.screen.data.open_decisions
        await pilot.press("a")  # accept every proposal
        await settle(pilot, lambda: not app.screen.data.open_decisions)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("enter")  # "Create them"
        await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=60)
        await settle(pilot, lambda: "Created" in str(app.screen.query_one("#fields-result").render()))
        version = app.screen.data.mapping.version
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: app.screen.__class__.__name__ == "ConfirmDialog")
        assert "confirmed" in text_of(app)
        await pilot.press("escape")
        await settle(pilot, lambda: app.journey[Step.MAP].state is State.DONE)
    saved = load_map(project / "mapping.toml")
    assert saved.confirmed and saved.version > version
    schema = httpx.get(ns.state_url, timeout=30).json()["schema"]
    names = {f["name"] for f in schema["custom_fields"]["Contacts"]}
    assert {f.name for f in saved.custom_fields if f.entity == "Contacts"} <= names


async def test_preflight_shows_blockers_and_keeps_the_run_not_ready(world: World, home: Path) -> None:
    """A map confirmed before its custom fields exist: the pre-flight lists them as blockers, each with the step
    that fixes it, and the sample and run steps stay not ready."""
    project, _ = world.stage("matched", home)
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.mapfile import save_map
    from cliniko2nutshell.mapping.proposer import accept_all, confirm_map

    with open_project(project) as p:
        save_map(confirm_map(accept_all(load_map(p.mapping_path)), Catalog.from_store(p.store)), p.mapping_path)
    app = app_at(world, project, Step.PREFLIGHT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.current_step is Step.PREFLIGHT and app.screen.result is not None)
        await settle(pilot, lambda: app.journey[Step.PREFLIGHT].reason.endswith("to resolve"))
        shown = text_of(app)
        assert "Not ready" in shown and "custom field missing" in shown and "5 Map" in shown
        assert app.journey[Step.SAMPLE].state is State.NOT_READY
        assert "blocker" in app.journey[Step.RUN].reason
    with open_project(project, write=False) as p:
        milestone = p.store.milestone("preflight")
    assert milestone is not None and not milestone.detail["ready"] and milestone.detail["blockers"] > 0
