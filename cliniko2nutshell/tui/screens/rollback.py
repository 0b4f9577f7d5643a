"""Step 11, Rollback: choose what to undo, preview it, confirm with the project's name, watch it on the dashboard,
then read the verification. A rollback that was interrupted (a crash, a kill, a stop) resumes from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Checkbox, DataTable, RadioSet, Select, SelectionList, Static

from cliniko2nutshell.engine.journal import Run, RunKind, RunStatus
from cliniko2nutshell.engine.ops import GROUPS
from cliniko2nutshell.engine.rollback import Preview, RollbackScope, ScopeKind, Verification
from cliniko2nutshell.engine.rollback import Step as Undo
from cliniko2nutshell.journey import Journey, Step
from cliniko2nutshell.tui.format import count, home_path, kind_label, kind_order
from cliniko2nutshell.tui.progress import RunBoard
from cliniko2nutshell.tui.screens.audit import short_when
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.screens.dialogs import TypedConfirmDialog
from cliniko2nutshell.tui.widgets.dashboard import RunDashboard
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.toggles import Choice, Tick
from cliniko2nutshell.tui.work import Job, JobStatus

GROUP_LABELS = {
    "companies": "Companies (and the people linked to them)",
    "people": "People (and everything of theirs)",
    "activities": "Activities (and the files on them)",
    "notes": "Notes",
    "files": "Files",
}
COUNT_COLUMNS = [
    ("object", "Records"),
    ("delete", "Delete"),
    ("restore", "Restore"),
    ("undelete", "Undelete"),
    ("edited", "Skip: edited"),
    ("keep", "Left"),
]
LEFT_COLUMNS = [("what", "Left in place"), ("object", "Record"), ("id", "Cliniko id or name"), ("why", "Why")]
LEFT_SHOWN = 1000  # rows of the left-in-place table; the preview report lists every one
ACTION_BUTTONS = {"preview": "rollback-preview", "rollback": "rollback-go", "resume": "rollback-resume",
                  "stop": "rollback-stop", "open_report": "rollback-report"}  # fmt: skip
# Jobs after which a preview no longer says what a rollback would do.
WRITING_JOBS = ("sample", "full", "retry", "resume", "delta", "rollback")


@dataclass
class RollbackState:
    """What the step needs from the project: the runs a scope can name, and the last rollback's result."""

    runs: list[Run] = field(default_factory=list)  # migration runs, newest first
    last_rollback: Run | None = None  # the last rollback that finished


def read_state(session: Any) -> RollbackState:
    from cliniko2nutshell.engine.journal import Journal

    with session.view() as project:
        runs = Journal(project.store).runs()
    migration = [r for r in reversed(runs) if r.kind is not RunKind.ROLLBACK]
    rollbacks = [r for r in runs if r.kind is RunKind.ROLLBACK and r.status is RunStatus.FINISHED]
    return RollbackState(migration, rollbacks[-1] if rollbacks else None)


@dataclass(frozen=True)
class PreviewTally:
    """A preview in the step's words: what is deleted, restored, brought back, skipped and left."""

    delete: int
    restore: int
    undelete: int
    edited: int
    keep: int
    gone: int

    @classmethod
    def of(cls, preview: Preview, force: bool) -> PreviewTally:
        items = preview.items
        edited = 0 if force else len(preview.edited_since)

        def n(*steps: Undo) -> int:
            return sum(1 for i in items if i.step in steps and (force or not i.edited))

        return cls(
            n(Undo.DELETE, Undo.WITH_ACTIVITY),
            n(Undo.RESTORE),
            n(Undo.UNDELETE),
            edited,
            n(Undo.KEEP) + len(preview.custom_fields),
            sum(1 for i in items if i.gone),
        )


def count_rows(preview: Preview, force: bool) -> list[tuple[str, list[str]]]:
    per: dict[str, dict[str, int]] = {}
    for item in preview.items:
        row = per.setdefault(item.object, {k: 0 for k, _ in COUNT_COLUMNS[1:]})
        if item.edited and not force:
            row["edited"] += 1
        elif item.step in (Undo.DELETE, Undo.WITH_ACTIVITY):
            row["delete"] += 1
        else:
            row[item.step.value] += 1
    return [
        (obj, [kind_label(obj), *(count(per[obj][k]) for k, _ in COUNT_COLUMNS[1:])])
        for obj in sorted(per, key=kind_order)
    ]


def left_rows(preview: Preview, force: bool) -> list[tuple[str, list[Any]]]:
    """What the rollback leaves in Nutshell, and why (the verification counts these as reported)."""
    rows: list[tuple[str, list[Any]]] = []
    if not force:
        for i in preview.edited_since:
            why = f"edited in Nutshell since we wrote it ({', '.join(i.edited)}): their edit is kept"
            rows.append(
                (f"e{len(rows)}", [Content.styled("✎ edited", "$text-warning"), kind_label(i.object), i.source_id, why])
            )
    for i in preview.items:
        if i.step is Undo.KEEP:
            rows.append(
                (
                    f"k{len(rows)}",
                    [Content.styled("· kept", "$text-muted"), kind_label(i.object), i.source_id, i.reason],
                )
            )
    for c in preview.custom_fields:
        rows.append(
            (
                f"c{len(rows)}",
                [
                    Content.styled("· kept", "$text-muted"),
                    "Custom field",
                    c,
                    "the API cannot delete custom-field definitions: remove it by hand",
                ],
            )
        )
    return rows[:LEFT_SHOWN]


def verification_text(verification: dict[str, Any] | Verification, status: str) -> Content:
    v = (
        verification
        if isinstance(verification, dict)
        else {
            "checked": verification.checked,
            "gone": verification.gone,
            "reported": verification.reported,
            "still_there": [list(t) for t in verification.still_there],
        }
    )
    if status != RunStatus.FINISHED.value:
        return Content.assemble(
            ("‖ Not finished", "bold $text-warning"), f": the rollback is {status}. R resumes it where it stopped."
        )
    still = v.get("still_there") or []
    parts: list[str | tuple[str, str]] = []
    if still:
        parts += [
            ("✗ Verification failed", "bold $text-error"),
            f": {count(len(still))} record(s) we created are still in Nutshell: ",
        ]
        parts += [", ".join(f"{kind_label(o)} {s} ({n})" for o, s, n in still[:5])]
        parts += [" …" if len(still) > 5 else "", ". Look at them in Nutshell, then preview and roll back again."]
    else:
        parts += [
            ("✓ Verified", "bold $text-success"),
            f": {count(v.get('gone', 0))} of {count(v.get('checked', 0))} records we created in scope are gone "
            f"from Nutshell",
        ]
        reported = v.get("reported", 0)
        parts += [f"; {count(reported)} left in place as the preview said." if reported else "."]
    return Content.assemble(*parts)


class RollbackScreen(StepScreen):
    STEP = Step.ROLLBACK
    INTRO = "Undo what the migration wrote to Nutshell: preview first, then confirm with the project's name."
    HELP = """
Rollback puts Nutshell back as it was, from the journal: it **deletes** the records we created, **restores** the
values of people we linked or updated, and **brings back** (undeletes) what a run deleted. Files go with the
activity that holds them.

Choose the **scope**: everything, one run (what it created and changed; a person it created takes their later
records along), or kinds of records (with everything that depends on them). **Preview** (P) reads each record in
Nutshell first: records someone **edited in Nutshell since we wrote them** are left as they are (their edits are
kept) unless you tick *Also undo records edited since*; what the API cannot undo (custom-field definitions,
files on an activity that stays) is listed with the reason. The preview is written to the reports folder.

**Roll back** (B) asks you to type the project's name. Progress shows on the dashboard below; stopping (X) or a
crash loses nothing: every step is journaled first, and R resumes it here. At the end, the rollback **verifies**
that every record we created in scope is gone from Nutshell, or was left on purpose as the preview said.
"""
    BINDINGS = [
        Binding("p", "preview", "Preview"),
        Binding("b", "rollback", "Roll back"),
        Binding("r", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("o", "open_report", "Report"),
    ]
    AUTO_FOCUS = "#rollback Button"
    DEFAULT_CSS = """
    RollbackScreen #rollback-scope { height: auto; }
    RollbackScreen #rollback-kind { width: auto; layout: horizontal; border: none; padding: 0; height: auto; }
    RollbackScreen #rollback-kind RadioButton { width: auto; margin-right: 2; }
    RollbackScreen #rollback-run { width: 34; margin-left: 2; }
    RollbackScreen #rollback-groups { height: auto; max-height: 7; border: none; padding: 0; }
    RollbackScreen #rollback-state, RollbackScreen #rollback-summary, RollbackScreen #rollback-result {
        height: auto; }
    RollbackScreen #rollback-result { margin-bottom: 1; }
    RollbackScreen #rollback-left-title { margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.state: RollbackState | None = None
        self.preview: Preview | None = None
        self.preview_reports: list[str] = []
        self.job: Job | None = None  # the preview, the rollback or its resumption, started here
        self._force = False
        self.available: dict[str, bool] = {}  # the actions that do something now (buttons, footer keys)

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="rollback"):
            yield Static("", id="rollback-state", markup=False)
            with Horizontal(id="rollback-scope"):
                with RadioSet(id="rollback-kind", compact=True):
                    yield Choice("Everything", value=True, id="kind-everything", compact=True)
                    yield Choice("One run", id="kind-run", compact=True)
                    yield Choice("Kinds of records", id="kind-objects", compact=True)
                yield Select([], prompt="Which run?", id="rollback-run", compact=True)
            yield SelectionList[str](
                *((label, name) for name, label in GROUP_LABELS.items() if name in GROUPS),
                id="rollback-groups",
                compact=True,
            )
            yield Tick(
                "Also undo records edited in Nutshell since (their edits are lost)",
                id="rollback-force",
                compact=True,
            )
            with Horizontal(classes="buttons left"):
                yield Button("Preview", id="rollback-preview", variant="primary", compact=True)
                yield Button("Roll back…", id="rollback-go", variant="error", compact=True)
                yield Button("Resume", id="rollback-resume", variant="primary", compact=True)
                yield Button("Stop", id="rollback-stop", compact=True)
                yield Button("Open the report", id="rollback-report", compact=True)
            yield Static("", id="rollback-result", markup=False)
            yield RunDashboard(id="rollback-dashboard")
            yield Static("", id="rollback-summary", markup=False)
            yield DataTable(id="rollback-counts", cursor_type="none", zebra_stripes=True)
            yield Static("", id="rollback-left-title", classes="section-title", markup=False)
            yield DataTable(id="rollback-left", cursor_type="row", zebra_stripes=True)
            yield Static("", id="rollback-paths", classes="muted", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#rollback-run", Select).display = False
        self.query_one("#rollback-groups", SelectionList).display = False
        self.query_one("#rollback-dashboard", RunDashboard).display = False
        for table in ("#rollback-counts", "#rollback-left"):
            self.query_one(table, DataTable).display = False

    # -- loading -------------------------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        if self.ready:
            self.load()
        job = getattr(self.app, "job", None)
        if job is not None and job.active and job is not self.job and self._ours(job):
            self._follow(job)
        self.show_state()

    def journey_changed(self, journey: Journey) -> None:
        if self.is_current and self.ready:
            self.load()
        self.show_state()

    def load(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: read_state(session), self._loaded, what="Reading the runs", key="rollback-state")  # type: ignore[attr-defined]

    def _loaded(self, state: RollbackState) -> None:
        self.state = state
        select = self.query_one("#rollback-run", Select)
        current = select.value
        options = [(f"Run {r.id} · {r.kind.value} · {short_when(r.started_at)}", r.id) for r in state.runs]
        with self.prevent(Select.Changed):
            select.set_options(options)
            if any(v == current for _, v in options):
                select.value = current
            elif options:
                select.value = options[0][1]
        self.show_state()

    # -- scope ---------------------------------------------------------------------------------------------
    def scope(self) -> RollbackScope | None:
        """The scope the controls describe, or None while it is incomplete (no run, no kind chosen)."""
        kind = self._kind()
        if kind is ScopeKind.RUN:
            run = self.query_one("#rollback-run", Select).value
            return RollbackScope(ScopeKind.RUN, int(run)) if isinstance(run, int) else None
        if kind is ScopeKind.OBJECTS:
            chosen = tuple(self.query_one("#rollback-groups", SelectionList).selected)
            return RollbackScope(ScopeKind.OBJECTS, objects=chosen) if chosen else None
        return RollbackScope()

    def _kind(self) -> ScopeKind:
        pressed = self.query_one("#rollback-kind", RadioSet).pressed_button
        return {"kind-run": ScopeKind.RUN, "kind-objects": ScopeKind.OBJECTS}.get(
            pressed.id if pressed is not None else "", ScopeKind.EVERYTHING
        )

    def _scope_changed(self) -> None:
        kind = self._kind()
        self.query_one("#rollback-run", Select).display = kind is ScopeKind.RUN
        self.query_one("#rollback-groups", SelectionList).display = kind is ScopeKind.OBJECTS
        if self.preview is not None and self.preview.scope != self.scope():
            self.preview = None  # it described another scope
            self.show_preview()
        self.show_state()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self._scope_changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "rollback-run":
            self._scope_changed()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self._scope_changed()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._force = event.value
        self.show_preview()
        self.show_state()

    # -- what the step shows -------------------------------------------------------------------------------
    def _ours(self, job: Job) -> bool:
        return job.kind in ("rollback", "rollback-preview") or (
            job.kind == "resume" and self._interrupted() is not None
        )

    def _interrupted(self) -> Run | None:
        journey: Journey | None = self.app.journey  # type: ignore[attr-defined]
        run = journey.interrupted_run if journey is not None else None
        return run if run is not None and run.kind is RunKind.ROLLBACK else None

    def _rollback_job(self) -> Job | None:
        job = self.job
        return job if job is not None and job.kind in ("rollback", "resume") else None

    def show_state(self) -> None:
        job, interrupted, scope = self.job, self._interrupted(), self.scope()
        running = job is not None and job.active
        parts: list[str | tuple[str, str]] = []
        if running:
            assert job is not None
            what = (
                "Reading each record in Nutshell for the preview…"
                if job.kind == "rollback-preview"
                else (f"{job.title} is {job.status.value}: X stops it at a safe point; R resumes it later.")
            )
            parts += [("⟳ ", "$text-accent"), what]
        elif job is not None and job.status is JobStatus.FAILED:
            parts += [
                ("✗ ", "$text-error"),
                f"{job.title} stopped: {job.error}. Nothing is lost: "
                + ("R resumes it." if interrupted else "try again."),
            ]
        elif interrupted is not None:
            was = RollbackScope.from_dict(interrupted.options.get("scope") or {}).describe()
            parts += [
                ("⚠ ", "$text-warning"),
                (f"Rollback run {interrupted.id} ({was}) did not finish", "bold"),
                ": it stopped part-way (a stop, a crash or a closed laptop). R resumes it where it stopped; "
                "nothing is undone twice.",
            ]
        elif self.preview is None:
            if scope is None:
                parts += [
                    "Choose "
                    + ("a run" if self._kind() is ScopeKind.RUN else "at least one kind of record")
                    + ", then P previews what the rollback would do."
                ]
            else:
                parts += [
                    ("○ ", "$text-accent"),
                    f"Scope: {scope.describe()}. P previews what the rollback would do "
                    "(it reads each record in Nutshell; nothing is written).",
                ]
        else:
            parts += [("✓ ", "$text-success"), "Previewed. B rolls back as previewed (you type the project's name)."]
        self.query_one("#rollback-state", Static).update(Content.assemble(*parts))
        self._show_result()
        previewed = self.preview is not None and scope is not None and self.preview.scope == scope
        can_write = not running and interrupted is None and self.ready
        self.available = {
            "preview": can_write and scope is not None,
            "rollback": can_write and previewed and bool(self.preview and self.preview.items),
            "resume": not running and interrupted is not None,
            "stop": running,
            "open_report": not running and bool(self._report()),
        }
        for action, shown in self.available.items():
            self.query_one(f"#{ACTION_BUTTONS[action]}", Button).display = shown
        self.refresh_bindings()
        for selector in ("#rollback-scope", "#rollback-force"):
            self.query_one(selector).disabled = running or interrupted is not None
        self.query_one("#rollback-groups", SelectionList).disabled = running or interrupted is not None

    def _show_result(self) -> None:
        """The verification of the rollback started here, or else of the project's last one."""
        result = self.query_one("#rollback-result", Static)
        result.display = True
        job = self._rollback_job()
        if job is not None and not job.active and isinstance(job.result, tuple):
            summary, verification = job.result
            text = verification_text(verification, summary.status.value)
            result.update(Content.assemble((f"Rollback run {summary.run_id}: ", "bold"), text))
            return
        last = self.state.last_rollback if self.state is not None else None
        if job is None and last is not None and last.summary and "verification" in last.summary:
            scope = RollbackScope.from_dict(last.summary.get("scope") or {})
            head = f"Last rollback, run {last.id} ({scope.describe()}, {short_when(last.finished_at or '')} UTC): "
            text = verification_text(last.summary["verification"], last.status.value)
            result.update(Content.assemble((head, "bold"), text))
            return
        result.update("")
        result.display = False

    def show_preview(self) -> None:
        preview, force = self.preview, self._force
        counts = self.query_one("#rollback-counts", DataTable)
        left = self.query_one("#rollback-left", DataTable)
        summary = self.query_one("#rollback-summary", Static)
        title = self.query_one("#rollback-left-title", Static)
        if preview is None:
            for table in (counts, left):
                table.display = False
            summary.update("")
            title.update("")
            self._show_paths()
            return
        tally = PreviewTally.of(preview, force)
        if not preview.items and not preview.custom_fields:
            summary.update(Content.assemble(("Preview", "bold"), f" of {preview.scope.describe()}: nothing to undo."))
        else:
            parts: list[str | tuple[str, str]] = [
                ("Preview", "bold"),
                f" of {preview.scope.describe()}: ",
                f"{count(tally.delete)} deleted, {count(tally.restore)} restored, {count(tally.undelete)} brought back",
            ]
            if tally.edited:
                parts += [" · ", (f"{count(tally.edited)} skipped: edited in Nutshell since", "$text-warning")]
            elif force and preview.edited_since:
                parts += [
                    " · ",
                    (
                        f"{count(len(preview.edited_since))} edited since: undone anyway, their edits lost",
                        "$text-error",
                    ),
                ]
            if tally.keep:
                parts += [f" · {count(tally.keep)} left in place (why below)"]
            if tally.gone:
                parts += [f" · {count(tally.gone)} already gone from Nutshell"]
            if not preview.checked:
                parts += ["\n", ("Nutshell was not read: edits made there since are not known.", "$text-warning")]
            summary.update(Content.assemble(*parts))
        rows = count_rows(preview, force)
        fill(counts, COUNT_COLUMNS, rows)
        counts.display = bool(rows)
        counts.styles.height = len(rows) + 1
        kept = left_rows(preview, force)
        fill(left, LEFT_COLUMNS, kept)
        left.display = bool(kept)
        left.styles.height = min(len(kept), 10) + 1
        title.update(
            f"What the rollback leaves in Nutshell ({count(len(kept))})"
            if kept
            else "The rollback leaves nothing of ours behind in Nutshell."
        )
        self._show_paths()

    def _report(self) -> str | None:
        job = self._rollback_job()
        reports: list[str] = []
        if job is not None and isinstance(job.result, tuple):
            reports = job.result[0].reports
        elif self.preview is not None:
            reports = self.preview_reports
        elif self.state is not None and self.state.last_rollback is not None and job is None:
            reports = list((self.state.last_rollback.summary or {}).get("reports") or [])
        return next((p for p in reports if p.endswith(".html")), None)

    def _show_paths(self) -> None:
        report = self._report()
        self.query_one("#rollback-paths", Static).update(f"Report: {home_path(report)} (O opens it)" if report else "")

    # -- actions -------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that do something now are in the footer."""
        return self.available.get(action, True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = next((a for a, button in ACTION_BUTTONS.items() if button == event.button.id), None)
        if action is not None:
            event.stop()
            getattr(self, f"action_{action}")()

    def _can_write(self) -> bool:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return False
        if self._interrupted() is not None:
            self.notify("A rollback is waiting to be resumed: R resumes it first.", severity="warning")
            return False
        return True

    def action_preview(self) -> None:
        scope = self.scope()
        if scope is None or not self._can_write():
            return
        from cliniko2nutshell.tui.engine_jobs import call_engine

        session = self.app.session  # type: ignore[attr-defined]

        async def body(job: Job) -> tuple[Preview, list[str]]:
            from cliniko2nutshell.engine.reports import write_rollback

            preview = await call_engine(job, session, lambda engine, _c: engine.rollback_preview(scope, write=False))
            return preview, [str(p) for p in write_rollback(preview, session.project.reports_dir)]

        job = self.app.start_job("rollback-preview", "Rollback preview", RunBoard(), body)  # type: ignore[attr-defined]
        if job is not None:
            self.job = job
            self.preview = None
            self.show_preview()
            self.show_state()

    def action_rollback(self) -> None:
        scope, preview, force = self.scope(), self.preview, self._force
        if not self._can_write() or scope is None:
            return
        if preview is None or preview.scope != scope:
            self.notify("Preview it first (P): you confirm what you have seen.", severity="warning")
            return
        if not preview.items:
            self.notify("Nothing to undo in this scope.")
            return
        session = self.app.session  # type: ignore[attr-defined]
        tally = PreviewTally.of(preview, force)
        lines = [
            f"This deletes {count(tally.delete)} records from Nutshell, restores {count(tally.restore)} "
            f"to their values before the migration and brings back {count(tally.undelete)}."
        ]
        if tally.edited:
            lines.append(f"{count(tally.edited)} records edited in Nutshell since we wrote them are left as they are.")
        elif force and preview.edited_since:
            lines.append(
                f"{count(len(preview.edited_since))} records edited in Nutshell since are undone too: "
                "those edits are lost."
            )
        if tally.keep:
            lines.append(f"{count(tally.keep)} things stay in Nutshell (listed under the preview).")
        lines.append("Every step is journaled first: if it stops, it resumes from this step.")

        def answered(go: bool | None) -> None:
            if go:
                self._start_rollback(scope, force)

        self.app.push_screen(
            TypedConfirmDialog(f"Roll back {scope.describe()}?", "\n".join(lines), session.name, action="Roll back"),
            answered,
        )

    def _start_rollback(self, scope: RollbackScope, force: bool) -> None:
        from cliniko2nutshell.tui.engine_jobs import run_with

        session = self.app.session  # type: ignore[attr-defined]
        job = self.app.start_job(
            "rollback",
            "Rollback",
            RunBoard(),  # type: ignore[attr-defined]
            lambda job: run_with(job, session, lambda e: e.rollback_runner(scope, force=force)),
        )
        self._follow(job)

    def action_resume(self) -> None:
        run = self._interrupted()
        if run is None:
            self.notify("No rollback is waiting to be resumed.")
            return
        from cliniko2nutshell.tui.screens.run import start_run

        self._follow(start_run(self.app, "resume", run_id=run.id))

    def _follow(self, job: Job | None) -> None:
        if job is None:
            return
        self.job = job
        dashboard = self.query_one("#rollback-dashboard", RunDashboard)
        if job.kind in ("rollback", "resume"):
            dashboard.display = True
            dashboard.follow(job)
        self.show_state()

    def action_stop(self) -> None:
        job = self.job
        if job is not None and job.active:
            job.stop()
            self.notify("Stopping after the calls in flight; R resumes it where it stopped.", title=job.title)
            self.show_state()

    def job_ended(self, job: Job) -> None:
        if not self.is_mounted:  # installed, never shown: nothing on it to update
            return
        if job is self.job:
            if job.kind == "rollback-preview" and job.status is JobStatus.DONE and job.result is not None:
                self.preview, self.preview_reports = job.result
            elif job.kind in ("rollback", "resume"):
                self.preview = None  # it described the state before the rollback
                self.query_one("#rollback-dashboard", RunDashboard).follow(job)
            self.show_preview()
        elif job.kind in WRITING_JOBS and self.preview is not None:
            self.preview = None  # Nutshell and the journal changed since it was made
            self.show_preview()
        self.load()
        self.show_state()

    def action_open_report(self) -> None:
        from cliniko2nutshell.tui.desktop import open_in_os

        report = self._report()
        if report:
            self.app.background(lambda: open_in_os(Path(report)), lambda msg: self.notify(msg, title="Rollback"))  # type: ignore[attr-defined]

    def masking_changed(self, on: bool) -> None:
        self.query_one("#rollback-dashboard", RunDashboard).refresh_masking()

    def on_run_dashboard_failure_chosen(self, event: RunDashboard.FailureChosen) -> None:
        from cliniko2nutshell.tui.screens.run import FailureDialog

        self.app.push_screen(FailureDialog(event.failure, self.app.masker))  # type: ignore[attr-defined]
