"""The run dashboard: a progress bar per object with its counts, throughput over time, the ETA, both APIs'
budgets, and the failures as they happen. It follows a job's RunBoard a few times a second (never per event)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Sparkline, Static

from cliniko2nutshell.tui.format import count, duration, kind_label, kind_order
from cliniko2nutshell.tui.progress import Failure, RunView
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.work import Job, JobStatus

BAR_WIDTH = 6
# Short headers keep the table within 80 columns; the help screen spells them out.
OBJECT_COLUMNS = [
    ("object", "Records"),
    ("bar", "Progress"),
    ("created", "New"),
    ("updated", "Upd."),
    ("linked", "Link"),
    ("unchanged", "Same"),
    ("skipped", "Skip"),
    ("failed", "Fail"),
]
ROLLBACK_COLUMNS = [
    ("object", "Records"),
    ("bar", "Progress"),
    ("deleted", "Deleted"),
    ("restored", "Restored"),
    ("skipped", "Skipped"),
    ("failed", "Failed"),
]
FAILURE_COLUMNS = [("object", "Object"), ("id", "Cliniko id"), ("category", "Why"), ("reason", "Reason")]
KIND_TITLES = {
    "full": "Full run",
    "retry": "Retry of failed records",
    "delta": "Delta",
    "sample": "Sample",
    "rollback": "Rollback",
}


def bar(done: int, total: int, width: int = BAR_WIDTH) -> Content:
    """A progress bar with its figures (never colour alone: the numbers say it)."""
    share = 1.0 if total <= 0 else min(done / total, 1.0)
    filled = round(share * width)
    return Content.assemble(
        ("█" * filled, "$text-success" if share >= 1 else "$text-accent"),
        ("░" * (width - filled), "$text-muted"),
        f" {count(done)}/{count(total)}",
    )


def headline(view: RunView, job: Job | None) -> Content:
    title = KIND_TITLES.get(view.kind, view.kind or "Run")
    parts: list[str | tuple[str, str]] = [(f"{title} {view.run_id or ''}".strip(), "bold")]
    if view.finished is not None:
        f = view.finished
        mark = {"success": ("✓ ", "$text-success"), "partial": ("! ", "$text-warning")}.get(
            f.outcome, ("✗ ", "$text-error")
        )
        state = f.outcome if f.status == "finished" else f.status
        parts += ["  ", mark, (state, "bold"), f" in {duration(f.elapsed_seconds)} "]
    elif view.paused or (job is not None and job.status is JobStatus.PAUSED):
        parts += ["  ", ("‖ paused", "bold $text-warning"), f": {view.paused or 'finishing the calls in flight'} "]
    elif job is not None and job.status is JobStatus.STOPPING:
        parts += ["  ", ("■ stopping", "bold $text-warning"), " after the calls in flight "]
    else:
        parts += ["  ", ("⟳ running", "bold $text-accent"), " "]
    done, total = view.done, view.total
    if view.finished is not None or not total:  # the last throughput tick may predate the end
        done = sum(p.done for p in view.objects.values())
        total = max(total, sum(max(view.totals.get(k, 0), p.total) for k, p in view.objects.items()))
    parts += [f"· {count(done)} of {count(total)}"]
    if view.finished is None:
        parts += [f" · {view.ops_per_second:.1f}/s"]
        if view.eta_seconds is not None:
            parts += [f" · about {duration(view.eta_seconds)} left"]
        parts += [f" · {duration(view.elapsed)} so far"]
    if view.failed_total:
        parts += [" · ", (f"{view.failed_total} failed", "$text-error")]
    if view.conflicts:
        parts += [" · ", (f"{len(view.conflicts)} conflict(s)", "$text-warning")]
    return Content.assemble(*parts)


def budgets(view: RunView) -> Content:
    b = view.budgets
    if b is None:
        return Content.styled("Budgets: waiting for the first figures", "$text-muted")
    parts: list[str | tuple[str, str]] = [("Nutshell ", "bold")]
    parts += [f"{b.nutshell_concurrency if b.nutshell_concurrency is not None else '–'} at once · "]
    parts += [f"{b.nutshell_in_flight if b.nutshell_in_flight is not None else '–'} in flight · "]
    throttled = b.nutshell_throttled or 0
    parts += [(f"{throttled} × 429", "$text-warning" if throttled else "")]
    if b.cliniko_limit:
        parts += ["   ", ("Cliniko ", "bold"), f"{b.cliniko_remaining} of {b.cliniko_limit} requests left this minute"]
    return Content.assemble(*parts)


class RunDashboard(Vertical):
    """Shows one job's run. `follow(job)` starts following; it keeps showing the last state once the job ends."""

    DEFAULT_CSS = """
    RunDashboard { height: auto; }
    RunDashboard #dash-head { height: auto; }
    RunDashboard #dash-objects { height: auto; max-height: 12; margin-top: 1; }
    RunDashboard #dash-rate { height: 3; margin-top: 1; }
    RunDashboard #dash-rate-label { width: 14; color: $text-muted; }
    RunDashboard Sparkline { width: 1fr; height: 3; }
    RunDashboard #dash-budgets { height: auto; margin-top: 1; }
    RunDashboard #dash-failures-title { height: 1; margin-top: 1; text-style: bold; }
    RunDashboard #dash-failures { height: auto; max-height: 10; }
    """

    class FailureChosen(Message):
        def __init__(self, failure: Failure) -> None:
            super().__init__()
            self.failure = failure

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job: Job | None = None
        self.view: RunView | None = None
        self._failures_shown = -1

    def compose(self) -> ComposeResult:
        yield Static("", id="dash-head", markup=False)
        yield DataTable(id="dash-objects", cursor_type="none", zebra_stripes=True)
        with Horizontal(id="dash-rate"):
            yield Static("Records a second", id="dash-rate-label")
            yield Sparkline([], id="dash-sparkline")
        yield Static("", id="dash-budgets", markup=False)
        yield Static("", id="dash-failures-title", markup=False)
        yield DataTable(id="dash-failures", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.set_interval(0.25, self.poll)

    def follow(self, job: Job | None) -> None:
        self.job = job
        self._failures_shown = -1
        self.poll(force=True)

    def poll(self, force: bool = False) -> None:
        job = self.job
        if job is None or not hasattr(job.board, "snapshot"):
            return
        if not force and not job.active and self.view is not None and self.view.finished is not None:
            return  # the last state is on screen
        if not force and not self.screen.is_current:
            return
        self.show(job.board.snapshot(), job)

    def show(self, view: RunView, job: Job | None = None) -> None:
        """Render a run's state (also used directly by tests and by screens that replay a finished run)."""
        self.view = view
        self.query_one("#dash-head", Static).update(headline(view, job))
        rollback = view.kind == "rollback"
        columns = ROLLBACK_COLUMNS if rollback else OBJECT_COLUMNS
        rows = []
        for obj in sorted(set(view.totals) | set(view.objects), key=kind_order):
            p = view.objects.get(obj)
            total = max(view.totals.get(obj, 0), p.total if p else 0)
            done = p.done if p else 0
            if rollback:
                cells = [kind_label(obj), bar(done, total)]
                cells += [count(getattr(p, k, 0) if p else 0) for k in ("deleted", "restored", "skipped", "failed")]
            else:
                cells = [kind_label(obj), bar(done, total)]
                cells += [
                    count(getattr(p, k, 0) if p else 0)
                    for k in ("created", "updated", "linked", "unchanged", "skipped", "failed")
                ]
            rows.append((obj, cells))
        fill(self.query_one("#dash-objects", DataTable), columns, rows)
        self.query_one("#dash-objects", DataTable).styles.height = len(rows) + 1
        sparkline = self.query_one("#dash-sparkline", Sparkline)
        sparkline.data = view.throughput or [0.0]
        self.query_one("#dash-rate-label", Static).update(
            f"Records a second\n{view.ops_per_second:.1f} now" if view.throughput else "Records a second"
        )
        self.query_one("#dash-budgets", Static).update(budgets(view))
        title = f"Failures ({view.failed_total})" if view.failed_total else "Failures: none so far"
        if view.failed_total > len(view.failures):
            title += f", the last {len(view.failures)} shown; all are in the run report"
        self.query_one("#dash-failures-title", Static).update(title)
        if len(view.failures) != self._failures_shown:
            self._failures_shown = len(view.failures)
            show = self.app.show  # type: ignore[attr-defined]
            from cliniko2nutshell.tui.mask import Kind

            failure_rows = [
                (str(i), (kind_label(f.object), f.source_id, f.category, show(f.reason, Kind.TEXT)))
                for i, f in reversed(list(enumerate(view.failures)))
            ]
            fill(self.query_one("#dash-failures", DataTable), FAILURE_COLUMNS, failure_rows)

    def refresh_masking(self) -> None:
        self._failures_shown = -1
        if self.view is not None:
            self.show(self.view, self.job)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "dash-failures" or self.view is None:
            return
        event.stop()
        index = int(str(event.row_key.value))
        if 0 <= index < len(self.view.failures):
            self.post_message(self.FailureChosen(self.view.failures[index]))
