"""Step 8, Full run: start, pause, resume or stop the migration, watch it on the dashboard, read its summary.

The dashboard here follows whatever migration job is running (a full run, a retry, a delta, a sample or a
rollback started from another step), so "show me the run" is always this step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Static

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.format import count, kind_label
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.progress import RunBoard
from cliniko2nutshell.tui.screens.base import DashboardStepScreen
from cliniko2nutshell.tui.screens.dialogs import ConfirmDialog
from cliniko2nutshell.tui.widgets.dashboard import RunDashboard
from cliniko2nutshell.tui.work import Job, JobStatus

RUN_KINDS = ("sample", "full", "retry", "resume", "delta", "rollback")


def start_run(app: Any, kind: str, *, run_id: int | None = None) -> Job | None:
    """Start a full run, a retry of the failed records, or the resumption of run `run_id`, as the app's job."""
    from cliniko2nutshell.engine.api import RunOptions
    from cliniko2nutshell.tui.engine_jobs import run_with

    session = app.session
    if kind == "full":
        title, make, check = "Full run", (lambda e: e.full_runner(RunOptions())), True
    elif kind == "retry":
        title, make, check = "Retry of failed records", (lambda e: e.retry_runner(RunOptions())), True
    else:
        title, make, check = f"Run {run_id} resumed", (lambda e: e.resume_runner(run_id, RunOptions())), False
    return app.start_job(kind, title, RunBoard(), lambda job: run_with(job, session, make, check_blockers=check))


class FailureDialog(ConfirmDialog):
    """One failed record in full: what it is, why it failed, what to do."""

    def __init__(self, failure: Any, masker: Any) -> None:
        reason = masker(failure.reason, Kind.TEXT)
        super().__init__(
            f"{kind_label(failure.object)}: Cliniko {failure.source_id} · {failure.category}",
            f"{reason}\n\nThe record is quarantined with this reason: nothing else waits for it. Fix the data in "
            "Cliniko (then extract the changes) or the map, then retry the failed records from this step or "
            "Reconcile.",
            yes="Close",
            no=None,
        )


class RunScreen(DashboardStepScreen):
    STEP = Step.RUN
    INTRO = "Migrate everything not yet migrated, with the dashboard in view. Pause, resume or stop any time."
    HELP = """
The full run writes every planned record to Nutshell: companies, people, activities, notes and files, in that
order. Every write is journaled before it is sent, so a crash, a closed laptop or a stop loses nothing: the run
**resumes** where it stopped and never sends a record twice. The blockers of the pre-flight are checked again
before the first write.

The dashboard shows a bar per object with what was created, updated, linked, left unchanged, skipped or failed;
the records a second over time; the time left; both services' budgets (Nutshell: how many calls at once, how many
in flight, 429s; Cliniko: requests left this minute); and the failures as they happen (Enter opens one).
**Leaving this screen never stops the run**: the top line keeps its progress.

When it ends: a summary per object, what to do next, and the run report (O). Records that failed can be retried
(F) once their data or the map is fixed.
"""
    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("r", "resume_run", "Resume"),
        Binding("p", "pause", "Pause/resume"),
        Binding("x", "stop", "Stop"),
        Binding("f", "retry", "Retry failed"),
        Binding("o", "open_report", "Report"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None
        self._offered: dict[str, bool] = {}

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="run"):
            yield Static("", id="run-state", markup=False)
            with Horizontal(classes="buttons left", id="run-buttons"):
                yield Button("Start the full run", id="start", variant="primary", compact=True)
                yield Button("Resume", id="resume", compact=True)
                yield Button("Pause", id="pause", compact=True)
                yield Button("Stop", id="stop", compact=True)
                yield Button("Retry failed", id="retry", compact=True)
                yield Button("Open the report", id="report", compact=True)
            yield RunDashboard(id="dashboard")

    def on_screen_resume(self) -> None:
        job = getattr(self.app, "job", None)
        if job is not None and job.kind in RUN_KINDS and job is not self.job:
            self.job = job
            self.query_one(RunDashboard).follow(job)
        self.show_state()

    # -- what the step shows -------------------------------------------------------------------------------
    def _summary(self) -> Any:
        job = self.job
        if job is None or job.active or job.result is None:
            return None
        result = job.result[0] if isinstance(job.result, tuple) else job.result
        # a sample's, delta's or rollback's result carries its run's summary
        return getattr(result, "summary", result)

    def show_state(self) -> None:
        journey: Journey | None = self.app.journey  # type: ignore[attr-defined]
        job = self.job
        running = job is not None and job.active
        summary = self._summary()
        interrupted = journey.interrupted_run if journey is not None else None
        parts: list[str | tuple[str, str]] = []
        if running:
            assert job is not None
            parts += [("⟳ ", "$text-accent"), f"{job.title} is {job.status.value}. "]
            parts += ["P pauses (the calls in flight finish first), X stops at a safe point; both resume later."]
        elif job is not None and job.status is JobStatus.FAILED:
            parts += [("✗ ", "$text-error"), f"{job.title} stopped: {job.error}. ",
                      "Nothing is lost: R resumes it once the cause is fixed."]  # fmt: skip
        elif summary is not None:
            from cliniko2nutshell.engine.run_report import next_steps

            mark = ("✓ ", "$text-success") if summary.outcome.value == "success" else ("! ", "$text-warning")
            parts += [mark, (f"Run {summary.run_id} ended: {summary.outcome.value}", "bold"),
                      f" · {count(summary.writes)} writes · {summary.quarantined} failed"]  # fmt: skip
            for line in next_steps(summary):
                parts += ["\n  · ", line]
        elif interrupted is not None and interrupted.kind.value in ("full", "retry"):
            what = f"Run {interrupted.id} ({interrupted.kind.value}) is {interrupted.status.value}"
            parts += [("⚠ ", "$text-warning"), (what, "bold"),
                      ": it stopped part-way (a crash, a kill, a closed laptop or a stop). R resumes it where it "
                      "stopped; nothing is sent twice."]  # fmt: skip
        elif journey is not None and journey[self.STEP].state is State.DONE:
            parts += [("✓ ", "$text-success"), f"{journey[self.STEP].reason}. S runs again for anything not yet "
                      "migrated (e.g. after extracting changes); Delta is the step for cutover."]  # fmt: skip
        elif journey is not None and journey[self.STEP].state is State.NOT_READY:
            parts += [("· ", "$text-warning"), f"Not ready: {journey[self.STEP].reason}."]
        else:
            parts += ["Ready. S starts the full run (the pre-flight's blockers are checked again first)."]
        self.query_one("#run-state", Static).update(Content.assemble(*parts))
        ready = journey is not None and journey[self.STEP].state is not State.NOT_READY
        paused = job is not None and job.status is JobStatus.PAUSED
        resumable = interrupted is not None and interrupted.kind.value in ("full", "retry", "sample", "delta")
        self.query_one("#start", Button).display = not running and ready and interrupted is None
        self.query_one("#resume", Button).display = not running and resumable
        self.query_one("#pause", Button).display = running
        self.query_one("#pause", Button).label = "Resume" if paused else "Pause"
        self.query_one("#stop", Button).display = running
        self.query_one("#retry", Button).display = bool(summary is not None and summary.quarantined)
        self.query_one("#report", Button).display = bool(summary is not None and summary.reports)
        self.query_one(RunDashboard).display = job is not None
        offered = {
            action: self.query_one(f"#{button}", Button).display
            for action, button in (("start", "start"), ("resume_run", "resume"), ("pause", "pause"),
                                   ("stop", "stop"), ("retry", "retry"), ("open_report", "report"))
        }  # fmt: skip
        if offered != self._offered:  # the footer offers the keys of the buttons in view, no others
            self._offered = offered
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self._offered.get(action, True)

    # -- actions -------------------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "start": self.action_start,
            "resume": self.action_resume_run,
            "pause": self.action_pause,
            "stop": self.action_stop,
            "retry": self.action_retry,
            "report": self.action_open_report,
        }
        if event.button.id in actions:
            actions[event.button.id]()

    def _follow(self, job: Job | None) -> None:
        if job is not None:
            self.job = job
            self.query_one(RunDashboard).follow(job)
            self.show_state()

    def action_start(self) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return

        def answered(go: bool | None) -> None:
            if go:
                self._follow(start_run(self.app, "full"))

        self.app.push_screen(
            ConfirmDialog(
                "Start the full run?",
                "Everything not yet migrated is written to Nutshell. Every write is journaled first: it can be "
                "paused, stopped and resumed, and undone with Rollback.",
                yes="Start",
                no="Not now",
            ),
            answered,
        )

    def action_resume_run(self) -> None:
        journey = self.app.journey  # type: ignore[attr-defined]
        run = journey.interrupted_run if journey is not None else None
        if run is None:
            self.notify("No run is waiting to be resumed.")
            return
        self._follow(start_run(self.app, "resume", run_id=run.id))

    def action_pause(self) -> None:
        job = self.job
        if job is None or not job.active:
            return
        if job.status is JobStatus.PAUSED:
            job.resume()
            self.notify("Resumed.", title=job.title)
        elif job.pause():
            self.notify("Pausing: the calls in flight finish, then it waits.", title=job.title)
        else:
            self.notify("This job cannot be paused; it can be stopped (X).", severity="warning")
        self.show_state()

    def action_stop(self) -> None:
        job = self.job
        if job is None or not job.active:
            return

        def answered(stop: bool | None) -> None:
            if stop:
                job.stop()
                self.notify("Stopping after the calls in flight; resume it any time.", title=job.title)
                self.show_state()

        self.app.push_screen(
            ConfirmDialog(
                f"Stop the {job.title.lower()}?",
                "It stops at a safe point and resumes where it left off (R).",
                yes="Stop",
                no="Keep running",
            ),
            answered,
        )

    def action_retry(self) -> None:
        summary = self._summary()
        if summary is None or not summary.quarantined:
            self.notify("No failed records in this run.")
            return
        self._follow(start_run(self.app, "retry"))

    def action_open_report(self) -> None:
        from cliniko2nutshell.tui.desktop import open_in_os

        summary = self._summary()
        if summary is None or not summary.reports:
            return
        html = next((p for p in summary.reports if p.endswith(".html")), summary.reports[0])
        self.app.background(lambda: open_in_os(Path(html)), lambda msg: self.notify(msg, title="Run report"))  # type: ignore[attr-defined]

    def on_run_dashboard_failure_chosen(self, event: RunDashboard.FailureChosen) -> None:
        self.app.push_screen(FailureDialog(event.failure, self.app.masker))  # type: ignore[attr-defined]
