"""The project picker: the projects under the user data folder, a new one, or a folder opened by path."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cliniko2nutshell.journey import ProjectSummary, project_summary
from cliniko2nutshell.project import create_project, default_projects_root, list_projects
from cliniko2nutshell.tui.format import home_path
from cliniko2nutshell.tui.screens.dialogs import PathDialog, PromptDialog
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.top_bar import ShareBanner, TopBar


def read_projects(root: Path | None) -> list[ProjectSummary]:
    return [project_summary(info.path) for info in list_projects(root)]


class PickerScreen(Screen[None]):
    INTRO = "Pick a migration project, or start a new one."
    HELP = (
        "A project is a private folder on this computer that holds everything about one clinic's migration: "
        "the records read from Cliniko, the map you confirm, the journal of every write to Nutshell, reports and "
        "logs. Keys are never stored in it. Projects listed here live under the user data folder; any other "
        "folder can be opened by its path."
    )
    BINDINGS = [
        Binding("enter", "open_selected", "Open", show=True),
        Binding("n", "new_project", "New project"),
        Binding("o", "open_path", "Open a folder"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self.projects: list[ProjectSummary] = []

    def compose(self) -> ComposeResult:
        yield TopBar()
        yield ShareBanner()
        with Vertical(id="picker"):
            yield Static("Migration projects", classes="screen-title")
            yield Static(self.INTRO, id="picker-intro", classes="muted")
            yield DataTable(id="projects", cursor_type="row", zebra_stripes=True)
            yield Static("", id="picker-empty", markup=False)
            yield Static(f"Folder: {home_path(self.root or default_projects_root())}", classes="muted", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.app.background(lambda: read_projects(self.root), self.show_projects, what="Listing projects")  # type: ignore[attr-defined]

    def show_projects(self, projects: list[ProjectSummary]) -> None:
        self.projects = projects
        table = self.query_one("#projects", DataTable)
        rows = []
        for p in projects:
            last_step = f"✓ {p.last_step.title}" if p.last_step else "–"
            last_run = f"⚠ {p.interrupted}" if p.interrupted else (p.last_run or "none yet")
            if p.problem:
                last_run = f"✗ cannot read: {p.problem[:60]}"
            rows.append((str(p.path), (p.name, p.clinic or "not connected", last_step, last_run, home_path(p.path))))
        columns = [("name", "Project"), ("clinic", "Clinic"), ("step", "Last step"), ("run", "Last run"),
                   ("folder", "Folder")]  # fmt: skip
        fill(table, columns, rows)
        empty = self.query_one("#picker-empty", Static)
        empty.update("" if projects else "No projects yet. Press N to create one, or O to open a project folder.")
        table.display = bool(projects)
        if projects:
            table.focus()

    def action_open_selected(self) -> None:
        table = self.query_one("#projects", DataTable)
        if not self.projects or table.cursor_row is None:
            return
        self.app.open_project(self.projects[table.cursor_row].path)  # type: ignore[attr-defined]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.open_project(Path(str(event.row_key.value)))  # type: ignore[attr-defined]

    def action_new_project(self) -> None:
        def named(name: str | None) -> None:
            if not name:
                return

            def create() -> Path:
                project = create_project(name, root=self.root, command="cliniko2nutshell (wizard)")
                project.close()
                return project.path

            self.app.background(create, lambda path: self.app.open_project(path), what="Creating the project")  # type: ignore[attr-defined]

        self.app.push_screen(
            PromptDialog(
                "New migration project",
                "A name for it (the clinic's name is a good one):",
                placeholder="Harbour Physio",
                action="Create",
            ),
            named,
        )

    def action_open_path(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.app.open_project(Path(path).expanduser())  # type: ignore[attr-defined]

        self.app.push_screen(PathDialog("Open a project folder", "The folder's path:", action="Open"), chosen)
