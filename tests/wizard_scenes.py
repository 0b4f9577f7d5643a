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


async def _problem_opened(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#reconcile-problems").focus()
    await pilot.press("enter")
    await settle(pilot)


async def _rollback_previewed(pilot: Pilot[Any]) -> None:
    await pilot.press("p")
    await settle(pilot, lambda: getattr(pilot.app.screen, "preview", None) is not None)
    pilot.app.clear_notifications()  # "Rollback preview finished." would fade at a moment of its own
    await settle(pilot)


async def _rollback_confirm(pilot: Pilot[Any]) -> None:
    await _rollback_previewed(pilot)
    await pilot.press("b")
    await settle(pilot)
    await pilot.press(*"Harbour")
    await settle(pilot)


async def _audit_log(pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+l")
    await settle(pilot, lambda: getattr(pilot.app.screen, "page", None) is not None)


async def _audit_people(pilot: Pilot[Any]) -> None:
    await _audit_log(pilot)
    pilot.app.screen.query_one("#audit-object").value = "person"
    await settle(pilot, lambda: pilot.app.screen.page.flt.object == "person")


async def _audit_entry(pilot: Pilot[Any]) -> None:
    await _audit_people(pilot)
    await pilot.press("down", "down", "enter")
    await settle(pilot)


LEDGER_SCENES: tuple[Scene, ...] = (
    Scene("10-reconcile", "Step 10, Reconcile: Cliniko, the journal and Nutshell, kind by kind", "reconciled",
          Step.RECONCILE, ready=lambda app: getattr(app.screen, "view", None) is not None),
    Scene("10b-reconcile-failure", "A failed record, with its reason and what to do", "reconciled", Step.RECONCILE,
          ready=lambda app: getattr(app.screen, "view", None) is not None, action=_problem_opened),
    Scene("11-rollback", "Step 11, Rollback: choose the scope", "reconciled", Step.ROLLBACK, ready=_attr("state")),
    Scene("11b-rollback-preview", "The rollback's preview: what is deleted, restored, skipped and left, and why",
          "reconciled", Step.ROLLBACK, ready=_attr("state"), action=_rollback_previewed),
    Scene("11c-rollback-confirm", "Rolling back takes the project's name", "reconciled", Step.ROLLBACK,
          ready=_attr("state"), action=_rollback_confirm),
    Scene("11d-rollback-verified", "After the rollback: its verification", "rolled_back", Step.ROLLBACK,
          ready=_attr("state")),
    Scene("12-audit-log", "The audit log (Ctrl+L): every write, a page at a time", "reconciled", Step.PROJECT,
          action=_audit_log),
    Scene("12b-audit-log-people", "The audit log filtered to one kind of record", "reconciled", Step.PROJECT,
          action=_audit_people),
    Scene("12c-audit-entry", "A journal entry in full", "reconciled", Step.PROJECT, action=_audit_entry),
)  # fmt: skip


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


# -- the run, the delta --------------------------------------------------------------------------------------------
# A run's dashboard changes every quarter second, so its pictures show a board fed with fixed events (the figures a
# 30-patient run of the sandbox clinic produces, part-way and at its end); Pilot tests drive real runs.


class _Clock:
    """Started at 0, then always 252 s later: the dashboard says "4 min 12 s so far" in every picture."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return 0.0 if self.calls == 1 else 252.0


def _first_patient(app: Any) -> dict[str, Any]:
    """The project's first extracted patient (a test may read the store on the UI thread; the wizard may not)."""
    with app.session.view() as project:
        return next(project.store.iter_records("patients"))


def _scripted_board(patient: dict[str, Any], *, finished: bool) -> Any:
    from cliniko2nutshell.engine import events as ev
    from cliniko2nutshell.tui.progress import RunBoard

    board = RunBoard(clock=_Clock())
    totals = {
        "company": 4,
        "person": 30,
        "appointment": 180,
        "communication": 95,
        "treatment_note": 60,
        "attachment_file": 6,
    }
    board(ev.RunStarted(2, "full", 1, totals))
    share = 1.0 if finished else 0.46
    failed_person = 1
    for obj, total in totals.items():
        done = total if finished else round(total * min(1.0, share * (1.6 if obj in ("company", "person") else 0.9)))
        failed = failed_person if obj == "person" else 0
        board(ev.ObjectProgress(2, obj, done, total, created=done - failed, failed=failed))
    done = sum(p.done for p in board.snapshot().objects.values())
    board(ev.Throughput(2, 7.4, done, sum(totals.values()), None if finished else 25.0))
    for i in range(1, 37):  # a ramp-up, then a steady rate with the wobble of a shared network
        rate = min(7.5, i * 1.5) + (0.4 if i % 3 == 0 else -0.3 if i % 5 == 0 else 0.0)
        board(ev.Throughput(2, rate, done, sum(totals.values()), None if finished else 25.0))
    board(ev.Budgets(2, nutshell_concurrency=8, nutshell_in_flight=0 if finished else 6, nutshell_throttled=2,
                     cliniko_remaining=None, cliniko_limit=None))  # fmt: skip
    why = f"Nutshell refused the e-mail address {patient.get('email') or 'x@example.org'}: invalid"
    board(ev.RecordFailed(2, "person", str(patient["id"]), "rejected", why))
    if finished:
        counts = {obj: {"created": p.created, "failed": p.failed} for obj, p in board.snapshot().objects.items()}
        board(ev.RunFinished(2, "full", "partial", "finished", counts, 252.0))
    return board


def _scripted_run(finished: bool) -> Action:
    async def show(pilot: Pilot[Any]) -> None:
        from cliniko2nutshell.engine.counts import Counts, RunSummary
        from cliniko2nutshell.engine.journal import Outcome, RunStatus
        from cliniko2nutshell.tui.work import Job, JobStatus

        app = pilot.app
        job = Job("full", "Full run", _scripted_board(_first_patient(app), finished=finished))
        job._finished.set()  # a picture of a job that no thread runs: closing the app has nothing to wait for
        if finished:
            view = job.board.snapshot()
            job.status = JobStatus.DONE
            job.result = RunSummary(
                2, "full", Outcome.PARTIAL, RunStatus.FINISHED,
                {obj: Counts(created=p.created, failed=p.failed) for obj, p in view.objects.items()},
                quarantined=1, elapsed_seconds=252.0, reports=["reports/run-2-full.html"],
            )  # fmt: skip
        app.job = job  # type: ignore[attr-defined]
        app.screen.on_screen_resume()
        await settle(pilot)

    return show


def _conflict(p: dict[str, Any]) -> Any:
    """Patient `p` edited in Nutshell since the full run wrote them, as the delta's dialog shows it."""
    from cliniko2nutshell.engine.runner import ConflictInfo

    name = f"{p['first_name']} {p['last_name']}"
    phone = next((n["number"] for n in p.get("patient_phone_numbers") or []), "0400 000 591")
    return ConflictInfo(
        "person", str(p["id"]), "12-contacts", ("name", "emails", "phones", "customFields.Date of Birth"),
        theirs={"name": name.upper(), "emails": [{"value": "front.desk@example.org"}], "phones": [{"value": phone}],
                "customFields.Date of Birth": p.get("date_of_birth")},
        ours={"name": name, "emails": [{"value": p.get("email") or ""}], "phones": [{"value": phone}],
              "customFields.Date of Birth": p.get("date_of_birth")},
    )  # fmt: skip


async def _conflict_dialog(pilot: Pilot[Any]) -> None:
    from cliniko2nutshell.tui.screens.delta import ConflictDialog

    app = pilot.app
    app.push_screen(ConflictDialog(_conflict(_first_patient(app)), app.show))  # type: ignore[attr-defined]
    await settle(pilot)


RUN_SCENES: tuple[Scene, ...] = (
    Scene("08-run", "Step 8, the full run, ready to start", "sampled", Step.RUN),
    Scene("08b-run-dashboard", "The run dashboard, part-way", "sampled", Step.RUN, action=_scripted_run(False)),
    Scene("08c-run-finished", "The run's summary, what to do next", "sampled", Step.RUN, action=_scripted_run(True)),
    Scene("09-delta", "Step 9, the delta at cutover", "migrated", Step.DELTA),
    Scene(
        "09b-delta-conflict",
        "A record edited in Nutshell: the delta asks",
        "migrated",
        Step.DELTA,
        action=_conflict_dialog,
    ),
)


# -- the Sample step and the diff viewer -----------------------------------------------------------------------


def _sample_ready(app: Any) -> bool:
    screen = app.screen
    return getattr(screen, "preview", None) is not None and getattr(screen, "page", None) is not None


def _diff_ready(app: Any) -> bool:
    screen = app.screen
    return type(screen).__name__ == "DiffScreen" and getattr(screen, "info", None) is not None


async def _named_patients(pilot: Pilot[Any]) -> None:
    pilot.app.screen.query_one("#sample-tabs").active = "tab-named"
    await settle(pilot)
    pilot.app.screen.query_one("#patients").focus()
    await pilot.press("space", "down", "down", "space")
    await settle(pilot)


async def _open_diff(pilot: Pilot[Any]) -> None:
    await pilot.press("d")
    await settle(pilot, lambda: _diff_ready(pilot.app))


async def _diff_patient(pilot: Pilot[Any]) -> None:
    """All records, searched for one patient, on an appointment's activity type (a value map's transformation)."""
    await _open_diff(pilot)
    await pilot.press("f", "slash", *"keith", "enter")
    await settle(pilot)
    screen: Any = pilot.app.screen
    row = next(i for i, (rec, r) in enumerate(screen.rows) if rec.object == "appointment" and r is not None
               and r.field == "activityType")  # fmt: skip
    screen.query_one("#fields").focus()
    screen.query_one("#fields").move_cursor(row=row, animate=False)
    await settle(pilot)


SAMPLE_SCENES: tuple[Scene, ...] = (
    Scene("07-sample", "Step 7, Sample: the stratified slice and what it covers", "preflighted", Step.SAMPLE,
          ready=_sample_ready),
    Scene("07b-sample-named", "Sample: patients you name, from a search of the clinic", "preflighted", Step.SAMPLE,
          ready=_sample_ready, action=_named_patients),
    Scene("07c-sample-done", "Sample: the last sample, and what to do next", "sampled", Step.SAMPLE,
          ready=_sample_ready),
    Scene("07d-diff", "The sample's diff: records with problems, mismatches first", "sampled", Step.SAMPLE,
          ready=_sample_ready, action=_open_diff),
    Scene("07e-diff-patient", "One patient's records in the diff: each field, and why the map changed it", "sampled",
          Step.SAMPLE, ready=_sample_ready, action=_diff_patient),
)  # fmt: skip
