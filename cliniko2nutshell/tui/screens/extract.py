"""Step 3, Extract: read everything from Cliniko into the project, with the rate-limit budget in view."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, DataTable, ProgressBar, Static

from cliniko2nutshell.cliniko.resources import RESOURCES
from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.format import count, duration, size
from cliniko2nutshell.tui.progress import ExtractBoard, ExtractView
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.work import Job

OBJECTS = [r.object for r in RESOURCES] + ["settings"]
STATUS = {"waiting": "· waiting", "reading": "⟳ reading", "done": "✓ done", "unavailable": "– not served"}
DEFAULT_RATE_LIMIT = 200  # Cliniko's documented limit per user per minute


def label(obj: str) -> str:
    return obj.replace("_", " ").capitalize()


def stored_counts(session: Any) -> dict[str, Any]:
    """What the store holds per object, and when the last extraction ended (a worker thread)."""
    with session.view() as project:
        counts = project.store.count_records()
        last = project.store.conn.execute(
            "SELECT mode, started_at, completed_at FROM extract_runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return {"counts": counts, "last": dict(last) if last else None}


def rate_limit_of(session: Any) -> int:
    if session.demo is not None:
        return session.demo.rate_limit
    connected = session.journey and session.shared.get("cliniko_rate_limit")
    return int(connected or DEFAULT_RATE_LIMIT)


async def extraction(job: Job, session: Any, incremental: bool) -> Any:
    """The job's body: the Cliniko client and the extraction, on the job's own thread and loop."""
    from cliniko2nutshell.cliniko.extract import ExtractOptions, extract
    from cliniko2nutshell.connections import cliniko_client

    project = session.project
    client = cliniko_client(project, session.secrets, rate_limit=rate_limit_of(session), sink=job.board)
    async with client:
        return await extract(project, client, ExtractOptions(incremental=incremental), sink=job.board)


class ExtractScreen(StepScreen):
    STEP = Step.EXTRACT
    INTRO = "Read everything from Cliniko into the project (read only: nothing in Cliniko changes)."
    HELP = """
Reads every Cliniko object this migration uses into the project's private database, page by page, within
Cliniko's rate limit (200 requests a minute per user): the gauge shows how much of the minute's budget is left.
Attachments are downloaded as well. It runs in the background: go on to the other steps while it works; the top
line shows its progress.

An interrupted extraction (quit, crash, network) resumes where it stopped. **Extract changes** reads only what
changed since the last extraction (used again at cutover, by the Delta step).
"""
    BINDINGS = [
        Binding("e", "extract(False)", "Extract everything"),
        Binding("c", "extract(True)", "Extract changes"),
        Binding("s", "stop", "Stop"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None

    def compose_body(self) -> ComposeResult:
        with Vertical(id="extract"):
            with Horizontal(classes="buttons left"):
                yield Button("Extract everything", id="extract-all", variant="primary", compact=True)
                yield Button("Extract changes", id="extract-changes", compact=True)
                yield Button("Stop", id="stop", disabled=True, compact=True)
            yield Static("", id="extract-status", markup=False)
            with Horizontal(id="budget-row"):
                yield Static("Cliniko budget", classes="field-label")
                yield ProgressBar(total=DEFAULT_RATE_LIMIT, show_eta=False, id="budget")
                yield Static("", id="budget-text", markup=False)
            yield DataTable(id="objects", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#objects", DataTable)
        table.add_column("Object", key="object")
        table.add_column("Records", key="records")
        table.add_column("Of", key="total")
        table.add_column("Pages", key="pages")
        table.add_column("Status", key="status")
        for obj in OBJECTS:
            table.add_row(label(obj), "–", "–", "–", "· waiting", key=obj)
        self.poll(0.25, self.refresh_progress)
        self.load_stored()
        limit = rate_limit_of(self.app.session)  # type: ignore[attr-defined]
        self.query_one("#budget", ProgressBar).update(total=limit, progress=limit)
        self.query_one("#budget-text", Static).update(f"{limit} requests a minute (Cliniko's limit per user)")

    def load_stored(self) -> None:
        self.app.background(
            lambda: stored_counts(self.app.session), self.show_stored, what="Reading the project", key="extract-counts"
        )  # type: ignore[attr-defined]

    def show_stored(self, stored: dict[str, Any]) -> None:
        if self.job is not None and self.job.active:
            return
        table = self.query_one("#objects", DataTable)
        counts: dict[str, int] = stored["counts"]
        for obj in OBJECTS:
            n = counts.get(obj)
            table.update_cell(obj, "records", count(n) if n is not None else "–", update_width=True)
            table.update_cell(obj, "status", "✓ stored" if n else "· none", update_width=True)
        last = stored["last"]
        status = self.query_one("#extract-status", Static)
        if last is None:
            status.update("Nothing extracted yet.")
        elif last["completed_at"]:
            when = last["completed_at"].replace("T", " ").removesuffix("Z")
            status.update(f"Last extraction ({last['mode']}) finished {when} UTC. Extract changes to refresh it.")
        else:
            status.update(f"The last extraction ({last['mode']}) was interrupted: start it again to resume.")

    # -- the job -------------------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "extract-all":
            self.action_extract(False)
        elif event.button.id == "extract-changes":
            self.action_extract(True)
        elif event.button.id == "stop":
            self.action_stop()

    def action_extract(self, incremental: bool) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        session = self.app.session  # type: ignore[attr-defined]
        board = ExtractBoard(incremental)
        title = "Extraction of changes" if incremental else "Extraction"
        job = self.app.start_job("extract", title, board, lambda job: extraction(job, session, incremental))  # type: ignore[attr-defined]
        if job is not None:
            self.job = job
            self.query_one("#extract-status", Static).update("Starting…")

    def action_stop(self) -> None:
        if self.job is not None and self.job.active:
            self.job.stop()
            self.notify("Stopping after the current pages (each page is saved with its cursor).", title="Extraction")

    def job_ended(self, job: Job) -> None:
        if job is self.job:
            self.refresh_progress(final=True)
            self.load_stored()

    def refresh_progress(self, final: bool = False) -> None:
        job = self.job
        running = job is not None and job.active
        self.query_one("#stop", Button).disabled = not running
        self.query_one("#extract-all", Button).disabled = running
        self.query_one("#extract-changes", Button).disabled = running
        if job is None or not (running or final) or (not self.screen.is_current and not final):
            return
        view: ExtractView = job.board.snapshot()
        table = self.query_one("#objects", DataTable)
        for obj, row in view.objects.items():
            if obj not in OBJECTS:
                continue
            table.update_cell(obj, "records", count(row.done), update_width=True)
            table.update_cell(obj, "total", count(row.total) if row.total is not None else "–", update_width=True)
            table.update_cell(obj, "pages", count(row.pages), update_width=True)
            table.update_cell(obj, "status", STATUS.get(row.status, row.status), update_width=True)
        limit = view.budget_limit or rate_limit_of(self.app.session)  # type: ignore[attr-defined]
        bar = self.query_one("#budget", ProgressBar)
        remaining = view.budget_remaining if view.budget_remaining is not None else limit
        bar.update(total=limit, progress=remaining)
        self.query_one("#budget-text", Static).update(f"{remaining} of {limit} requests left this minute")
        done, total, _downloaded, nbytes = view.attachments
        parts = [
            f"{count(view.requests)} requests",
            f"{view.rate_limited} × 429",
            f"{view.retries} retries",
            f"attachments {count(done)}/{count(total)} ({size(nbytes)})",
            f"elapsed {duration(view.elapsed)}",
        ]
        if view.eta_seconds is not None:
            parts.append(f"about {duration(view.eta_seconds)} left")
        state = job.status.value if not view.finished else "finished"
        self.query_one("#extract-status", Static).update(
            Content.assemble((f"{job.title} {state}: ", "bold"), " · ".join(parts))
        )

    def journey_changed(self, journey: Journey) -> None:
        if journey[self.STEP].state is State.NOT_READY:
            self.query_one("#extract-all", Button).disabled = True
            self.query_one("#extract-changes", Button).disabled = True
