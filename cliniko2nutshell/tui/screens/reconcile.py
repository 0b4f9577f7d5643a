"""Step 10, Reconcile: per kind of record, what Cliniko has to move, what the journal says we wrote and what
Nutshell holds, whether they balance, and every record that failed or differs, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, DataTable, Static

from cliniko2nutshell.engine.journal import Quarantined
from cliniko2nutshell.engine.reconcile import Reconciliation
from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.format import count, home_path, kind_label, kind_order
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.progress import RunBoard
from cliniko2nutshell.tui.screens.audit import short_when
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.screens.dialogs import ConfirmDialog
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.work import Job, JobStatus

PROBLEMS_SHOWN = 1000  # rows of the problems table; the report lists every one
# Jobs after which what Nutshell holds may have changed: a reconciliation shown from before is out of date.
WRITING_JOBS = ("sample", "full", "retry", "resume", "delta", "rollback")

ACTION_BUTTONS = {"reconcile": "reconcile-run", "stop": "reconcile-stop", "retry": "reconcile-retry",
                  "open_report": "reconcile-report"}  # fmt: skip
LINE_COLUMNS = [
    ("object", "Records"),
    ("planned", "Planned"),
    ("journal", "Journal"),
    ("nutshell", "Nutshell"),
    ("missing", "Missing"),
    ("duplicates", "Dupl."),
    ("quarantined", "Failed"),
]
PROBLEM_COLUMNS = [
    ("problem", "Problem"),
    ("object", "Record"),
    ("cliniko", "Cliniko id"),
    ("nutshell", "Nutshell id"),
    ("reason", "Reason"),
]
PROBLEM_LABELS = {
    "failed": ("✗ failed", "$text-error"),
    "missing": ("? missing", "$text-error"),
    "duplicate": ("≠ duplicate", "$text-warning"),
    "unknown": ("+ unknown", "$text-warning"),
}
WHAT_TO_DO = {
    "missing": (
        "The journal says we wrote this record, but Nutshell no longer holds it: someone deleted (or merged) it in "
        "Nutshell after the run. If it should be there, restore it from Nutshell's trash, then reconcile again."
    ),
    "duplicate": (
        "Nutshell holds more than one copy of this Cliniko record. Keep the one the journal names (the first id "
        "is ours unless the audit log says otherwise) and delete the others in Nutshell, then reconcile again."
    ),
    "unknown": (
        "Nutshell holds a record marked as this project's, which the journal does not know: a copy made outside "
        "this project (another project, or by hand). Delete it in Nutshell if it is not wanted."
    ),
}


@dataclass
class Problem:
    kind: str  # failed | missing | duplicate | unknown
    object: str
    source_id: str
    nutshell_ids: list[str] = field(default_factory=list)
    reason: str = ""
    failure: Quarantined | None = None


@dataclass
class ReconcileView:
    """A reconciliation to show: just made, or the one the project kept (with today's failures)."""

    rec: Reconciliation | None
    after_run: int | None = None  # the last run when it was made
    at: str | None = None
    last_run: int | None = None  # the project's last run now
    totals: dict[str, int] = field(default_factory=dict)  # missing, duplicates, orphans: all of them
    reports: list[str] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.rec is not None and self.after_run != self.last_run

    def problems(self) -> list[Problem]:
        rec = self.rec
        if rec is None:
            return []
        out = [Problem("missing", o, s, [n], "in the journal, not in Nutshell") for o, s, n in rec.missing]
        out += [Problem("duplicate", o, s, ids, f"{len(ids)} copies in Nutshell") for o, s, ids in rec.duplicates]
        out += [Problem("unknown", o, s, [n], "ours in Nutshell, unknown to the journal") for o, s, n in rec.orphans]
        out += [Problem("failed", q.object, q.source_id, [], f"{q.category}: {q.reason}", q) for q in rec.quarantine]
        return out[:PROBLEMS_SHOWN]


def read_kept(session: Any) -> ReconcileView:
    """The reconciliation the project kept, with the failures as the journal lists them now (worker thread)."""
    from cliniko2nutshell.engine.journal import Journal
    from cliniko2nutshell.engine.reconcile import from_saved

    with session.view() as project:
        journal = Journal(project.store)
        last = journal.last_run()
        milestone = project.store.milestone("reconciled")
        quarantine = journal.quarantine_list()
    if milestone is None or "reconciliation" not in milestone.detail:
        return ReconcileView(None, last_run=last.id if last else None)
    detail = milestone.detail
    saved = detail["reconciliation"]
    return ReconcileView(
        from_saved(saved, quarantine),
        after_run=detail.get("run_id"),
        at=milestone.at,
        last_run=last.id if last else None,
        totals=dict(saved.get("totals") or {}),
        reports=list(detail.get("reports") or []),
    )


class ReconcileScreen(StepScreen):
    STEP = Step.RECONCILE
    INTRO = "Cliniko, the journal and Nutshell compared, record kind by record kind."
    HELP = """
Reconcile reads every record of this project in Nutshell (recognised by the Cliniko id each carries) and
compares three counts per kind of record: **planned** (what Cliniko has to move, after what the map and the
policies leave out), **journal** (what the journal says we wrote) and **Nutshell** (what Nutshell holds now).
A kind **balances** (✓) when the three agree and nothing is missing, duplicated or unknown.

Below are the records that need a look, each with its reason (Enter opens one): **failed** records (quarantined
by a run: Nutshell refused them, or their data cannot be mapped), **missing** ones (written, then deleted in
Nutshell), **duplicates** (more than one copy in Nutshell) and **unknown** ones (marked as ours, not in the
journal). **Retry failed** (F) runs the failed records again on the Run step's dashboard, once their data (in
Cliniko, then *Extract changes*) or the map is fixed. The report (CSV and HTML) lists everything.

Reading Nutshell takes a while on a large clinic (one request per 100 records); the result is kept with the
project, so coming back shows it again without reading Nutshell.
"""
    BINDINGS = [
        Binding("r", "reconcile", "Reconcile"),
        Binding("x", "stop", "Stop"),
        Binding("f", "retry", "Retry failed"),
        Binding("o", "open_report", "Report"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view: ReconcileView | None = None
        self.job: Job | None = None
        self.available: dict[str, bool] = {}  # the actions that do something now (buttons, footer keys)

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="reconcile"):
            yield Static("", id="reconcile-state", markup=False)
            with Horizontal(classes="buttons left"):
                yield Button("Reconcile now", id="reconcile-run", variant="primary", compact=True)
                yield Button("Stop", id="reconcile-stop", compact=True)
                yield Button("Retry failed", id="reconcile-retry", compact=True)
                yield Button("Open the report", id="reconcile-report", compact=True)
            yield DataTable(id="reconcile-lines", cursor_type="none", zebra_stripes=True)
            yield Static("", id="reconcile-problems-title", classes="section-title", markup=False)
            yield DataTable(id="reconcile-problems", cursor_type="row", zebra_stripes=True)
            yield Static("", id="reconcile-paths", classes="muted", markup=False)

    # -- loading -------------------------------------------------------------------------------------------
    def on_screen_resume(self) -> None:
        if self.view is None and self.ready:
            self.load()
        job = getattr(self.app, "job", None)
        if job is not None and job.kind == "reconcile" and job.active:
            self.job = job
        self.show_state()

    def journey_changed(self, journey: Journey) -> None:
        if self.view is None and journey[self.STEP].state is not State.NOT_READY and self.is_current:
            self.load()
        self.show_state()

    def load(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(
            lambda: read_kept(session), self.show, what="Reading the last reconciliation", key="reconcile-kept"
        )  # type: ignore[attr-defined]

    def show(self, view: ReconcileView) -> None:
        self.view = view
        self.show_state()
        self._show_lines()
        self._show_problems()

    # -- what the step shows -------------------------------------------------------------------------------
    def show_state(self) -> None:
        view, job = self.view, self.job
        running = job is not None and job.active
        parts: list[str | tuple[str, str]] = []
        if running:
            parts += [
                ("⟳ ", "$text-accent"),
                "Reading every record of this project in Nutshell and comparing… ",
                ("X stops it (nothing is written either way)", "$text-muted"),
            ]
        elif job is not None and job.status is JobStatus.FAILED:
            parts += [("✗ ", "$text-error"), f"The reconciliation stopped: {job.error}. R tries again."]
        elif view is None:
            parts += ["Reading the last reconciliation…" if self.ready else ""]
        elif view.rec is None:
            parts += [
                ("○ ", "$text-accent"),
                "Not reconciled yet. R compares Cliniko, the journal and Nutshell: it ",
                "reads every record of this project in Nutshell (nothing is written).",
            ]
        else:
            rec = view.rec
            totals = view.totals
            if rec.balanced:
                parts += [
                    ("✓ Balanced", "bold $text-success"),
                    ": what Cliniko has to move, what we wrote and what Nutshell holds agree.",
                ]
            else:
                parts += [("✗ Not balanced", "bold $text-error"), ": "]
                bits = [
                    f"{count(n)} {label}"
                    for n, label in (
                        (totals.get("missing", len(rec.missing)), "missing in Nutshell"),
                        (totals.get("duplicates", len(rec.duplicates)), "duplicated"),
                        (totals.get("orphans", len(rec.orphans)), "unknown to the journal"),
                    )
                    if n
                ]
                unbalanced = [kind_label(k) for k, line in sorted(rec.lines.items()) if not line.balanced]
                parts += [", ".join(bits) or "the counts differ", f" ({', '.join(unbalanced)})." if unbalanced else "."]
            if rec.quarantine:
                n = len(rec.quarantine)
                parts += [
                    "\n",
                    ("! ", "$text-warning"),
                    f"{count(n)} record{'s' if n != 1 else ''} failed (quarantined): ",
                    "fix the cause, then F retries them on the Run step.",
                ]
            when = f" at {short_when(view.at)} UTC" if view.at else ""
            parts += ["\n", (f"Reconciled after run {view.after_run}{when}.", "$text-muted")]
            if view.stale:
                parts += [" ", ("⚠ Run " + str(view.last_run) + " wrote since: R reconciles again.", "$text-warning")]
        self.query_one("#reconcile-state", Static).update(Content.assemble(*parts))
        self.available = {
            "reconcile": not running and self.ready,
            "stop": running,
            "retry": not running and bool(view and view.rec and view.rec.quarantine),
            "open_report": bool(view and view.reports),
        }
        for action, shown in self.available.items():
            self.query_one(f"#{ACTION_BUTTONS[action]}", Button).display = shown
        self.query_one("#reconcile-run", Button).label = "Reconcile again" if view and view.rec else "Reconcile now"
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that do something now are in the footer."""
        return self.available.get(action, True)

    def _show_lines(self) -> None:
        table = self.query_one("#reconcile-lines", DataTable)
        rec = self.view.rec if self.view else None
        rows = []
        if rec is not None:
            for obj in sorted(rec.lines, key=kind_order):
                line = rec.lines[obj]
                mark = ("✓ ", "$text-success") if line.balanced else ("✗ ", "$text-error")
                cells = [Content.assemble(mark, kind_label(obj))]
                for key, _ in LINE_COLUMNS[1:]:
                    n = getattr(line, key)
                    bad = key in ("missing", "duplicates", "quarantined") and n
                    cells.append(Content.styled(count(n), "$text-error" if bad else ""))
                rows.append((obj, cells))
        fill(table, LINE_COLUMNS, rows)
        table.display = bool(rows)
        table.styles.height = len(rows) + 1

    def _problems(self) -> list[Problem]:
        return self.view.problems() if self.view else []

    def _show_problems(self) -> None:
        problems = self._problems()
        show = self.app.show  # type: ignore[attr-defined]
        rows = []
        for i, p in enumerate(problems):
            label, style = PROBLEM_LABELS[p.kind]
            ids = ", ".join(p.nutshell_ids) or "–"
            rows.append(
                (
                    str(i),
                    (Content.styled(label, style), kind_label(p.object), p.source_id, ids, show(p.reason, Kind.TEXT)),
                )
            )
        table = self.query_one("#reconcile-problems", DataTable)
        fill(table, PROBLEM_COLUMNS, rows)
        table.display = bool(rows)
        title = self.query_one("#reconcile-problems-title", Static)
        view = self.view
        if view is None or view.rec is None:
            title.update("")
        elif not problems:
            title.update("Nothing failed, nothing missing, no duplicates.")
        else:
            listed = len(problems)
            rec = view.rec
            total = len(rec.quarantine) + sum(
                view.totals.get(k, len(getattr(rec, k))) for k in ("missing", "duplicates", "orphans")
            )
            more = f" ({count(listed)} listed here, all of them in the report)" if total > listed else ""
            title.update(f"Records to look at: {count(total)}{more} · Enter opens one")
        paths = self.query_one("#reconcile-paths", Static)
        if view is not None and view.reports:
            html = next((p for p in view.reports if p.endswith(".html")), view.reports[0])
            paths.update(f"Report: {home_path(html)} (O opens it)")
        else:
            paths.update("")

    def masking_changed(self, on: bool) -> None:
        self._show_problems()

    # -- actions -------------------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        action = next((a for a, button in ACTION_BUTTONS.items() if button == event.button.id), None)
        if action is not None:
            event.stop()
            getattr(self, f"action_{action}")()

    def action_reconcile(self) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        from cliniko2nutshell.tui.engine_jobs import call_engine

        session = self.app.session  # type: ignore[attr-defined]
        job = self.app.start_job(
            "reconcile",
            "Reconciliation",
            RunBoard(),  # type: ignore[attr-defined]
            lambda job: call_engine(job, session, lambda engine, _client: engine.reconcile()),
        )
        if job is not None:
            self.job = job
            self.show_state()

    def action_stop(self) -> None:
        if self.job is not None and self.job.active:
            self.job.stop()
            self.show_state()

    def job_ended(self, job: Job) -> None:
        if not self.is_mounted:  # installed, never shown: nothing on it to update
            return
        if job is self.job and job.status is JobStatus.DONE and job.result is not None:
            self.view = None  # what the project kept now is this result, with its reports
            self.load()
        elif job.kind in WRITING_JOBS and self.view is not None:
            self.load()  # Nutshell changed since: the kept result is shown as out of date
        self.show_state()

    def action_retry(self) -> None:
        view = self.view
        if view is None or view.rec is None or not view.rec.quarantine:
            self.notify("No failed records to retry.")
            return
        from cliniko2nutshell.tui.screens.run import start_run

        if start_run(self.app, "retry") is not None:
            self.app.goto(Step.RUN)  # type: ignore[attr-defined]

    def action_open_report(self) -> None:
        from cliniko2nutshell.tui.desktop import open_in_os

        view = self.view
        if view is None or not view.reports:
            return
        html = next((p for p in view.reports if p.endswith(".html")), view.reports[0])
        self.app.background(lambda: open_in_os(Path(html)), lambda msg: self.notify(msg, title="Reconciliation"))  # type: ignore[attr-defined]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "reconcile-problems":
            return
        event.stop()
        problems = self._problems()
        index = int(str(event.row_key.value))
        if not 0 <= index < len(problems):
            return
        p = problems[index]
        if p.failure is not None:
            from cliniko2nutshell.tui.screens.run import FailureDialog

            self.app.push_screen(FailureDialog(p.failure, self.app.masker))  # type: ignore[attr-defined]
            return
        label, _ = PROBLEM_LABELS[p.kind]
        ids = ", ".join(p.nutshell_ids)
        self.app.push_screen(
            ConfirmDialog(
                f"{kind_label(p.object)} {p.source_id}: {label}",
                f"Nutshell: {ids}\n\n{WHAT_TO_DO[p.kind]}",
                yes="Close",
                no="Back",
            )
        )
