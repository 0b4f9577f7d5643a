"""Step 6, Pre-flight: what the run will create, link or skip, and every problem found, blockers first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import DataTable, Select, Static

from cliniko2nutshell.journey import Journey, State, Step, fix_step
from cliniko2nutshell.mapping.preflight import PreflightReport, Problem, Severity
from cliniko2nutshell.tui.format import count, home_path, kind_label, kind_order
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.widgets.tables import fill

SEVERITY = {
    Severity.BLOCKER: ("✗ blocker", "bold $text-error"),
    Severity.WARNING: ("! warning", "$text-warning"),
    Severity.INFO: ("i info", "$text-muted"),
}
PERSONAL_KINDS = {"email": Kind.EMAIL, "emails": Kind.EMAIL, "name": Kind.NAME, "phone": Kind.PHONE}


@dataclass
class PreflightResult:
    report: PreflightReport
    paths: tuple[Path, Path] | None
    estimate: str | None = None


def run_preflight(session: Any) -> PreflightResult:
    """The pre-flight against a fresh look at Nutshell (people with the patients' e-mails included), written to
    reports/ and recorded as the project's last pre-flight. Worker thread."""
    from cliniko2nutshell.mapping.mapfile import load_map
    from cliniko2nutshell.mapping.workflow import plan
    from cliniko2nutshell.tui.screens.practitioners import read_snapshot

    with session.view() as project:
        emails = [r.get("email") for r in project.store.iter_records("patients")]
    snapshot = read_snapshot(session, emails)
    with session.view() as project:
        mapping = load_map(project.mapping_path)
        report, paths = plan(project, mapping, snapshot)
    return PreflightResult(report, paths, estimate_line(session, report))


def estimate_line(session: Any, report: PreflightReport) -> str | None:
    """The expected duration, when the estimator is available (measured latency from Connect)."""
    try:
        from cliniko2nutshell.engine.estimate import estimate_for_project  # type: ignore[attr-defined]
    except ImportError:
        return None
    with session.view() as project:
        return str(estimate_for_project(project, report.counts))


COUNT_COLUMNS = [("object", "Nutshell"), ("create", "Create"), ("link", "Link"), ("skip", "Skip"),
                 ("unmappable", "Unmappable")]  # fmt: skip
PROBLEM_COLUMNS = [("severity", "Severity"), ("kind", "Kind"), ("record", "Record"), ("detail", "Detail"),
                   ("action", "Action"), ("fix", "Fixed at")]  # fmt: skip


class PreflightScreen(StepScreen):
    STEP = Step.PREFLIGHT
    DEFAULT_CSS = """
    PreflightScreen #problem-filters { height: auto; }
    PreflightScreen #problems { height: 1fr; min-height: 5; }
    """
    INTRO = "Everything the run will do, and every problem found, before anything is written."
    HELP = """
The pre-flight walks every extracted record through the confirmed map, exactly as the run will, and counts what
will be **created**, **linked** (to people already in Nutshell), **skipped** and what cannot be mapped. Then it
lists every problem: **blockers** (the sample and the run stay not ready until each is resolved), **warnings**
(the run goes ahead and handles the record as described) and information. Enter on a problem goes to the step
that fixes it; data problems are fixed in Cliniko, then picked up with *Extract changes*.

The report is written as HTML (O opens it in your browser) and CSV in the project's reports folder.
"""
    BINDINGS = [
        Binding("r", "run", "Run again"),
        Binding("o", "open_report", "Open report"),
        Binding("enter", "fix", "Go and fix", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: PreflightResult | None = None
        self._severity: str = "all"
        self._kind: str = "all"

    def compose_body(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="preflight-status", markup=False)
            yield DataTable(id="counts", cursor_type="none", zebra_stripes=True)
            with Horizontal(id="problem-filters"):
                yield Select([("All severities", "all")], value="all", allow_blank=False, id="severity")
                yield Select([("All kinds", "all")], value="all", allow_blank=False, id="kind")
            yield DataTable(id="problems", cursor_type="row", zebra_stripes=True)
            yield Static("", id="report-paths", classes="muted", markup=False)

    def on_screen_resume(self) -> None:
        if self.result is None and self.ready:
            self.action_run()

    def journey_changed(self, journey: Journey) -> None:
        if self.result is not None and self.result.report.map_version != journey.map_version:
            self.result = None  # the map changed since: this report is stale
            self.query_one("#preflight-status", Static).update("The map changed: press R to run the pre-flight again.")
        if self.result is None and self.is_current and journey[self.STEP].state is not State.NOT_READY:
            self.action_run()

    def action_run(self) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        self.query_one("#preflight-status", Static).update("⟳ Checking every record against the map and Nutshell…")
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: run_preflight(session), self.show, what="The pre-flight", key="preflight")  # type: ignore[attr-defined]

    def show(self, result: PreflightResult) -> None:
        self.result = result
        self.app.refresh_journey()  # type: ignore[attr-defined]  # the pre-flight milestone decides sample and run
        report = result.report
        blockers = len(report.blockers)
        warnings = sum(1 for p in report.problems if p.severity is Severity.WARNING)
        if blockers:
            head: list[str | tuple[str, str]] = [
                ("✗ Not ready: ", "bold $text-error"),
                f"{blockers} blocker{'s' if blockers != 1 else ''} to resolve before the sample or the run",
            ]
        else:
            head = [("✓ Ready: ", "bold $text-success"), "no blockers"]
        head += [f" · {warnings} warning{'s' if warnings != 1 else ''} · {count(report.patients)} patients",
                 f" · map version {report.map_version}"]  # fmt: skip
        if result.estimate:
            head += ["\n", ("Expected duration: ", "bold"), result.estimate]
        self.query_one("#preflight-status", Static).update(Content.assemble(*head))
        rows = [
            (obj, (kind_label(obj), *(count(c.get(k, 0)) for k in ("create", "link", "skip", "unmappable"))))
            for obj, c in sorted(report.counts.items(), key=lambda item: kind_order(item[0]))
        ]
        fill(self.query_one("#counts", DataTable), COUNT_COLUMNS, rows)
        severity = self.query_one("#severity", Select)
        kinds = sorted({p.kind for p in report.problems})
        with self.prevent(Select.Changed):
            severity.set_options(
                [("All severities", "all")]
                + [
                    (f"{s.value.capitalize()}s ({sum(1 for p in report.problems if p.severity is s)})", s.value)
                    for s in Severity
                ]
            )
            severity.value = self._severity
            kind = self.query_one("#kind", Select)
            kind.set_options([("All kinds", "all")] + [(k.replace("_", " "), k) for k in kinds])
            kind.value = self._kind if self._kind in kinds or self._kind == "all" else "all"
        self._show_problems()
        if result.paths:
            html, csv = result.paths if result.paths[0].suffix == ".html" else result.paths[::-1]
            self.query_one("#report-paths", Static).update(f"Report: {home_path(html)} (O opens it) · {home_path(csv)}")

    def _filtered(self) -> list[Problem]:
        if self.result is None:
            return []
        return [
            p
            for p in self.result.report.problems
            if (self._severity == "all" or p.severity.value == self._severity)
            and (self._kind == "all" or p.kind == self._kind)
        ]

    def _show_problems(self) -> None:
        rows = []
        show = self.app.show  # type: ignore[attr-defined]
        for i, p in enumerate(self._filtered()):
            label, style = SEVERITY[p.severity]
            personal = ", ".join(show(v, PERSONAL_KINDS.get(k, Kind.VALUE)) for k, v in p.personal.items())
            record = f"{p.object} {p.id}" + (f" ({personal})" if personal else "")
            step = fix_step(p.kind)
            cells = (Content.styled(label, style), p.kind.replace("_", " "), record, p.detail, p.action,
                     f"{step.number} {step.title}")  # fmt: skip
            rows.append((str(i), cells))
        fill(self.query_one("#problems", DataTable), PROBLEM_COLUMNS, rows)

    def masking_changed(self, on: bool) -> None:
        self._show_problems()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "severity":
            self._severity = str(event.value)
        elif event.select.id == "kind":
            self._kind = str(event.value)
        self._show_problems()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "problems":
            event.stop()
            self.action_fix()

    def action_fix(self) -> None:
        table = self.query_one("#problems", DataTable)
        problems = self._filtered()
        if table.cursor_row is None or table.cursor_row >= len(problems):
            return
        problem = problems[table.cursor_row]
        step = fix_step(problem.kind)
        self.notify(problem.action, title=f"Fix at step {step.number}: {step.title}")
        self.app.goto(step)  # type: ignore[attr-defined]

    def action_open_report(self) -> None:
        from cliniko2nutshell.tui.desktop import open_in_os

        if self.result is None or not self.result.paths:
            return
        html = next((p for p in self.result.paths if p.suffix == ".html"), self.result.paths[0])
        self.app.background(lambda: open_in_os(html), lambda msg: self.notify(msg, title="Pre-flight report"))  # type: ignore[attr-defined]
