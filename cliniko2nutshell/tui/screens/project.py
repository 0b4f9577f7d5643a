"""Step 1, Project: what this project is, where it lives, and what has happened in it."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.format import home_path
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.widgets.tables import fill


def read_history(session: Any) -> list[tuple[str, ...]]:
    from cliniko2nutshell.engine.journal import Journal

    with session.view() as project:
        runs = Journal(project.store).runs()
    return [
        (
            str(r.id),
            r.kind.value,
            r.status.value,
            r.outcome.value if r.outcome else "–",
            f"v{r.map_version}" if r.map_version else "–",
            r.started_at.replace("T", " ").removesuffix("Z"),
            (r.finished_at or "").replace("T", " ").removesuffix("Z") or "–",
        )
        for r in reversed(runs)
    ]


class ProjectScreen(StepScreen):
    STEP = Step.PROJECT
    INTRO = "This migration project: a private folder on this computer."
    HELP = """
The project folder holds everything about this clinic's migration: the records read from Cliniko
(`migration.db`), the map you confirm (`mapping.toml`, every version kept), the journal of every write to
Nutshell, the reports and the operational log. Folders are private to you (0700, files 0600). Keys are never in
it: they are in your OS keychain, the environment, or memory for this session.
"""
    BINDINGS = [
        Binding("ctrl+o", "app.open_reports", "Reports folder"),
        Binding("ctrl+w", "app.switch_project", "Switch project"),
    ]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="project-facts", markup=False)
            yield Static("Runs", classes="section-title")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Static("", id="runs-empty", classes="muted", markup=False)

    def journey_changed(self, journey: Journey) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        if session is None:
            return
        path = session.project.path
        next_step = journey.landing
        lines = [
            f"Name     {session.name}",
            f"Folder   {home_path(path)}",
            f"Clinic   {journey.notes.get('clinic') or 'not connected yet'}",
            f"Next     step {next_step.number}, {next_step.title}: {journey[next_step].reason}",
        ]
        if journey.interrupted_run is not None:
            r = journey.interrupted_run
            lines.append(f"⚠ Run {r.id} ({r.kind.value}) is {r.status.value}: open its step to resume it.")
        done = sum(1 for s in Step if journey[s].state is State.DONE)
        lines.append(f"Progress {done} of {len(Step)} steps done")
        self.query_one("#project-facts", Static).update("\n".join(lines))
        self.app.background(lambda: read_history(session), self._show_runs, what="Reading the runs")  # type: ignore[attr-defined]

    def _show_runs(self, rows: list[tuple[str, ...]]) -> None:
        table = self.query_one("#runs", DataTable)
        columns = [(c.lower(), c) for c in ("Run", "Kind", "Status", "Outcome", "Map", "Started", "Ended")]
        fill(table, columns, ((row[0], row) for row in rows))
        table.display = bool(rows)
        table.styles.height = min(len(rows) + 1, 16)  # a header and the rows; an auto height can lag a refill
        self.query_one("#runs-empty", Static).update("" if rows else "Nothing has been written to Nutshell yet.")
