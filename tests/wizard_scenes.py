"""Every screen of the wizard as a scene: a project at a stage, the step to open, and what to do before the picture.

The snapshot tests (tests/test_tui_snapshots_*.py) and the screenshot command (tests/screenshots.py) both take
their pictures from here, so screenshots/ shows exactly what the snapshots pin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from wizard_pilot import settle
from wizard_world import World

from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.app import WizardApp

Action = Callable[[Pilot[Any]], Awaitable[None]]


@dataclass(frozen=True)
class Scene:
    name: str  # the picture's file name, in journey order
    title: str  # what the README says under it
    stage: str  # the project's stage (wizard_world.STAGES)
    step: Step | None  # the step to open; None: the project picker
    demo: bool = False  # the fields filled in as by `cliniko2nutshell demo`
    ready: Callable[[Any], Any] | None = None  # what must hold before the picture (besides idle workers)
    action: Action | None = None  # keys pressed once it has settled


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda app: getattr(app.screen, name, None) is not None


async def _test_both(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+t")
    await settle(pilot, lambda: pilot.app.screen.cliniko_access and pilot.app.screen.nutshell_access)


async def _help(pilot: Pilot[Any]) -> None:
    await pilot.press("f1")
    await settle(pilot)


async def _palette(pilot: Pilot[Any]) -> None:
    from textual.command import CommandList

    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*"go to")
    seen: list[int] = []

    def steady() -> bool:  # the palette gathers its hits in the background: wait until the list stops growing
        lists = pilot.app.screen.query(CommandList)
        seen.append(lists.first().option_count if lists else 0)
        return len(seen) > 8 and seen[-1] > 0 and len(set(seen[-8:])) == 1

    await settle(pilot, steady)


async def _custom_fields_tab(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#map-tabs").active = "tab-fields"
    await settle(pilot)


async def _value_maps_tab(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#map-tabs").active = "tab-values"
    await settle(pilot)


async def _policies_tab(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#map-tabs").active = "tab-policies"
    await settle(pilot)


async def _choose_user(pilot: Pilot[Any]) -> None:
    await pilot.press("c")
    await settle(pilot)


SETUP_SCENES: tuple[Scene, ...] = (
    Scene("00-picker", "The project picker", "extracted", None),
    Scene("01-project", "Step 1, the project and its runs", "migrated", Step.PROJECT),
    Scene("02-connect", "Step 2, Connect: both keys tested live", "new", Step.CONNECT, demo=True, action=_test_both),
    Scene("03-extract", "Step 3, Extract", "extracted", Step.EXTRACT),
    Scene(
        "04-practitioners",
        "Step 4, Practitioners matched to Nutshell users",
        "extracted",
        Step.PRACTITIONERS,
        ready=_attr("data"),
    ),
    Scene(
        "04b-choose-user",
        "Choosing a Nutshell user for a practitioner",
        "extracted",
        Step.PRACTITIONERS,
        ready=_attr("data"),
        action=_choose_user,
    ),
    Scene("05-map", "Step 5, the map, object by object", "matched", Step.MAP, ready=_attr("data")),
    Scene(
        "05b-map-custom-fields",
        "The map's custom-field decisions",
        "matched",
        Step.MAP,
        ready=_attr("data"),
        action=_custom_fields_tab,
    ),
    Scene(
        "05c-map-value-maps", "The map's value maps", "matched", Step.MAP, ready=_attr("data"), action=_value_maps_tab
    ),
    Scene("05d-map-policies", "The map's policies", "matched", Step.MAP, ready=_attr("data"), action=_policies_tab),
    Scene("06-preflight", "Step 6, the pre-flight report", "confirmed", Step.PREFLIGHT, ready=_attr("result")),
    Scene("90-help", "Help for a step (F1)", "extracted", Step.EXTRACT, action=_help),
    Scene("91-palette", "The command palette (Ctrl+P)", "extracted", Step.EXTRACT, action=_palette),
)


def build(world: World, scene: Scene, where: Path, *, share: bool = False) -> tuple[WizardApp, Action]:
    """The app for `scene` (its project made at the scene's stage under `where`) and what to run before the
    picture."""
    from cliniko2nutshell.project import create_project

    project, ns = world.stage(scene.stage, where)
    if scene.step is None:
        create_project("Seaside Osteopathy", root=where, command="tests").close()
        app = WizardApp(projects_root=where, keyring_backend=world.keyring, screen_share=share)
    else:
        app = WizardApp(
            project,
            demo=world.demo(ns) if scene.demo else None,
            keyring_backend=world.keyring,
            start_step=scene.step,
            screen_share=share,
        )

    async def run_before(pilot: Pilot[Any]) -> None:
        def shown() -> bool:
            if scene.step is None:
                return bool(getattr(app.screen, "projects", None))
            return app.current_step is scene.step and (scene.ready is None or bool(scene.ready(app)))

        await settle(pilot, shown)
        if scene.action is not None:
            await scene.action(pilot)

    return app, run_before
