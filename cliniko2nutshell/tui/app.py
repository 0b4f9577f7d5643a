"""The wizard: the App, its global keys, the step screens, the one long job, and screen-share mode.

Screens talk to the engine through `engine/api.py` and the functions below `tui/`; everything that touches a
network, the store or a file runs in a thread worker (`background`, `start_job`), never on the UI thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keyring.backend
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.project.secrets import Secrets
from cliniko2nutshell.tui.commands import WizardCommands
from cliniko2nutshell.tui.mask import Kind, Masker
from cliniko2nutshell.tui.session import DemoInfo, Session, open_session
from cliniko2nutshell.tui.work import Body, Job, run_job

log = logging.getLogger(__name__)

SHUTDOWN_STOP_SECONDS = 15.0  # how long closing the app waits for a job to reach a safe point, then to cancel


class WizardApp(App[None]):
    TITLE = "cliniko2nutshell"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {WizardCommands}
    COMMAND_PALETTE_BINDING = "ctrl+p"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-normal"), (150, "-wide")]
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "toggle_screen_share", "Share"),
        Binding("ctrl+n", "next_step", "Next"),
        Binding("ctrl+l", "audit_log", "Audit log", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    screen_share: reactive[bool] = reactive(False)
    journey: reactive[Journey | None] = reactive(None, always_update=True)

    def __init__(
        self,
        project: Path | None = None,
        *,
        projects_root: Path | None = None,
        screen_share: bool = False,
        demo: DemoInfo | None = None,
        keyring_backend: keyring.backend.KeyringBackend | None = None,
        start_step: Step | None = None,
    ) -> None:
        super().__init__()
        self.project_path = project
        self.projects_root = projects_root
        self.demo = demo
        self.keyring_backend = keyring_backend
        self.start_step = start_step
        self.session: Session | None = None
        self.job: Job | None = None
        self.masker = Masker(screen_share)
        self._in_flight: set[str] = set()
        self.set_reactive(WizardApp.screen_share, screen_share)

    # -- start ---------------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.project_path is not None:
            self.open_project(self.project_path, self.start_step)
        else:
            from cliniko2nutshell.tui.screens.picker import PickerScreen

            self.push_screen(PickerScreen(self.projects_root))

    def secrets_for(self, project: Any) -> Secrets:
        return Secrets(project.settings.id, keyring_backend=self.keyring_backend)

    def open_project(self, path: Path, step: Step | None = None) -> None:
        def opened(session: Session) -> None:
            self.close_session()
            self.session = session
            self._install_steps()
            self.journey = session.journey
            self.goto(step or (session.journey.landing if session.journey else Step.CONNECT), force=True)

        self.background(lambda: open_session(path, self.secrets_for, self.demo), opened, what="Opening the project")

    def _install_steps(self) -> None:
        from cliniko2nutshell.tui.steps import STEP_SCREENS

        for step, factory in STEP_SCREENS.items():
            name = f"step-{step.value}"
            if self.is_screen_installed(name):
                self.uninstall_screen(name)
            self.install_screen(factory(), name)

    def close_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            self.background(session.close, what="Closing the project")

    # -- navigation ----------------------------------------------------------------------------------------
    def goto(self, step: Step, *, force: bool = False) -> None:
        """Show a step. A step that is not ready is shown only when forced (its heading says why)."""
        if self.session is None:
            return
        state = self.journey[step] if self.journey is not None else None
        if not force and state is not None and state.state is State.NOT_READY:
            self.notify(f"{step.title} is not ready: {state.reason}.", title="Not ready yet", severity="warning")
            return
        target = f"step-{step.value}"
        if self.screen_stack and self.screen.id == target:
            return
        if len(self.screen_stack) > 1 and isinstance(self.screen, Screen) and not self.screen.is_modal:
            self.switch_screen(target)
        else:
            self.push_screen(target)

    @property
    def current_step(self) -> Step | None:
        return getattr(self.screen, "STEP", None)

    def action_next_step(self) -> None:
        if self.journey is None or self.current_step is None:
            return
        steps = list(Step)
        for step in steps[steps.index(self.current_step) + 1 :]:
            if self.journey[step].state is not State.NOT_READY:
                self.goto(step)
                return
        self.notify("No later step is ready yet.", severity="warning")

    def refresh_journey(self) -> None:
        """Read where the project stands again (after a job, a save or a connect); the step bar follows."""
        session = self.session
        if session is None:
            return

        def read() -> Journey:
            return session.read_journey()

        def shown(journey: Journey) -> None:
            if session is self.session:
                self.journey = journey

        self.background(read, shown, what="Reading the project")

    # -- background work -----------------------------------------------------------------------------------
    def background(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        *,
        what: str = "",
        key: str | None = None,
    ) -> bool:
        """Run the blocking `fn` on a thread; hand its result to `done` (or its error to `failed`, else a
        notification) on the UI thread. Owned by the app: leaving a screen does not cancel it. With a `key`, a
        second call while the first is in flight is dropped (a screen that asks twice loads once). Returns
        whether it started."""
        if key is not None:
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
        self._background(fn, done, failed, what, key)
        return True

    @work(thread=True, group="background", exit_on_error=False)
    def _background(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None,
        failed: Callable[[BaseException], None] | None,
        what: str,
        key: str | None,
    ) -> None:
        worker = get_current_worker()
        try:
            try:
                result = fn()
            finally:
                if key is not None:
                    self.call_from_thread(lambda: self._in_flight.discard(key))
        except Exception as exc:
            if not worker.is_cancelled:
                self.call_from_thread(failed or (lambda e: self.report_error(e, what)), exc)
            return
        if done is not None and not worker.is_cancelled:
            self.call_from_thread(done, result)

    def report_error(self, exc: BaseException, what: str = "") -> None:
        message = str(exc) or type(exc).__name__
        self.notify(message, title=f"{what} failed" if what else "Something went wrong", severity="error", timeout=12)

    def start_job(self, kind: str, title: str, board: Any, body: Body) -> Job | None:
        """Start the long job (one at a time). Its end arrives as a notification and on every step screen."""
        if self.job is not None and self.job.active:
            self.notify(
                f"{self.job.title} is still {self.job.status.value}: wait for it, or stop it first.",
                title="One thing at a time",
                severity="warning",
            )
            return None
        job = Job(kind, title, board)
        self.job = job
        self._run_job(job, body)
        return job

    @work(thread=True, group="job", exit_on_error=False)
    def _run_job(self, job: Job, body: Body) -> None:
        run_job(job, body)
        try:
            self.call_from_thread(self._job_ended, job)
        except RuntimeError:
            # Only "the app has already exited" is expected here; a crash in _job_ended must surface.
            if self.is_running:
                raise

    def _job_ended(self, job: Job) -> None:
        from cliniko2nutshell.tui.work import JobStatus

        if job.status is JobStatus.FAILED:
            self.notify(
                f"{job.title} stopped: {job.error}. Nothing is lost; start it again to resume.",
                title=f"{job.title} stopped",
                severity="error",
                timeout=15,
            )
        elif job.status is JobStatus.STOPPED:
            self.notify(f"{job.title} stopped at a safe point; it resumes where it left off.", title=job.title)
        else:
            self.notify(f"{job.title} finished.", title=job.title)
        for screen in self._installed_step_screens():
            handler = getattr(screen, "job_ended", None)
            if handler is not None:
                handler(job)
        self.refresh_journey()

    def _installed_step_screens(self) -> list[Screen[Any]]:
        return [s for name, s in self._installed_screens.items() if name.startswith("step-") and isinstance(s, Screen)]

    # -- screen-share mode ---------------------------------------------------------------------------------
    def watch_screen_share(self, on: bool) -> None:
        self.masker.on = on

    def action_toggle_screen_share(self) -> None:
        self.screen_share = not self.screen_share
        self.notify(
            "Patient names, birth dates, e-mails and phone numbers are masked."
            if self.screen_share
            else "Patient data is shown in full.",
            title=f"Screen-share mode {'on' if self.screen_share else 'off'}",
        )

    def show(self, value: object, kind: Kind) -> str:
        """A patient value as the screen may show it (masked in screen-share mode)."""
        return self.masker(value, kind)

    # -- help, reports -------------------------------------------------------------------------------------
    def action_help(self) -> None:
        from cliniko2nutshell.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_open_reports(self) -> None:
        if self.session is None:
            return
        from cliniko2nutshell.tui.desktop import open_in_os

        folder = self.session.project.reports_dir
        self.background(lambda: open_in_os(folder), lambda msg: self.notify(msg, title="Reports"), what="Opening")

    def action_audit_log(self) -> None:
        from cliniko2nutshell.tui.screens.audit import AuditScreen

        if self.session is not None and not isinstance(self.screen, AuditScreen):
            self.push_screen(AuditScreen())

    def action_export_audit_log(self) -> None:
        """Every entry (or, from the audit log, those its search and menus show) into the reports folder."""
        from cliniko2nutshell.engine.audit import AuditFilter
        from cliniko2nutshell.tui.screens.audit import AuditScreen, start_export

        start_export(self, self.screen.flt if isinstance(self.screen, AuditScreen) else AuditFilter())

    async def action_switch_project(self) -> None:
        if self.job is not None and self.job.active:
            self.notify(f"{self.job.title} is running: stop it first.", severity="warning")
            return
        from cliniko2nutshell.tui.screens.picker import PickerScreen

        while len(self.screen_stack) > 1:
            await self.pop_screen()
        for screen in self._installed_step_screens():
            self.uninstall_screen(screen)
        self.close_session()
        self.journey = None
        self.push_screen(PickerScreen(self.projects_root))

    # -- quitting ------------------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        job = self.job
        if job is None or not job.active:
            self._quit_now()
            return
        from cliniko2nutshell.tui.screens.dialogs import ConfirmDialog

        def answered(stop: bool | None) -> None:
            if not stop:
                return
            self.notify("Stopping at a safe point (the journal stays consistent)…", title="Quitting")
            job.stop()
            self.background(lambda: job.wait(120), lambda _: self._quit_now(), what="Stopping")

        self.push_screen(
            ConfirmDialog(
                f"{job.title} is {job.status.value}",
                "Quit now? It stops at a safe point (every write in flight is finished and journaled) and "
                "resumes where it left off when you open the project again.",
                yes="Stop and quit",
                no="Keep working",
            ),
            answered,
        )

    async def on_unmount(self) -> None:
        """The app is going away, however it was closed (quit, a test ending it): a job still running must
        not outlive it waiting for a screen that is gone. Stop it at a safe point, cancel it if it will not stop,
        and release the project."""
        job = self.job
        if job is not None and job.active:
            job.stop()  # waited for off the loop: the job may still need the loop (call_from_thread)
            if not await asyncio.to_thread(job.wait, SHUTDOWN_STOP_SECONDS):
                job.cancel()
                await asyncio.to_thread(job.wait, SHUTDOWN_STOP_SECONDS)
        if job is not None and job.active:
            log.warning("job %s did not stop in time; the project stays locked until this process ends", job.kind)
            return
        session, self.session = self.session, None
        if session is not None:
            await asyncio.to_thread(session.close)

    def _quit_now(self) -> None:
        self.exit()  # on_unmount releases the project, whichever way the app closes
