"""Step 7, Sample: migrate a slice of the clinic (stratified, or patients the user names), read it back, and show the
field-level diff; undo it, change the map, run it again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, DataTable, Input, Label, Static, TabbedContent, TabPane

from cliniko2nutshell.engine.api import SampleInfo, SampleOptions
from cliniko2nutshell.engine.sample import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, PatientPage, Stratum
from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.format import count
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.progress import RunBoard
from cliniko2nutshell.tui.screens.base import StepScreen
from cliniko2nutshell.tui.screens.dialogs import ConfirmDialog
from cliniko2nutshell.tui.widgets.dashboard import RunDashboard
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.work import Job, JobStatus

PAGE = 50  # patients a search shows at a time


# -- below the screen: what the step reads and runs (worker threads and job bodies) ----------------------------


@dataclass
class SampleData:
    info: SampleInfo  # the last sample, its stored diff, whether it was undone
    map_version: int | None
    patients: int  # patients in the clinic


@dataclass
class SlicePreview:
    size: int
    patients: int  # how many the slice takes (fewer when the clinic is smaller)
    strata: list[Stratum]


def load_sample_data(session: Any) -> SampleData:
    from cliniko2nutshell.engine.api import last_sample
    from cliniko2nutshell.mapping.mapfile import load_map

    with session.view() as project:
        info = last_sample(project)
        version = load_map(project.mapping_path).version if project.mapping_path.exists() else None
        patients = project.store.count_records("patients").get("patients", 0)
    return SampleData(info, version, patients)


def preview_slice(session: Any, size: int) -> SlicePreview:
    """The stratified slice of `size` the sample would take now, and what it covers."""
    from cliniko2nutshell.engine.sample import select_sample, strata_of
    from cliniko2nutshell.mapping.catalog import Catalog

    with session.view() as project:
        catalog = Catalog.from_store(project.store)
        selection = select_sample(project.store, catalog, size)
        return SlicePreview(size, len(selection.patients), strata_of(selection, catalog))


def find_patients(session: Any, text: str, offset: int) -> PatientPage:
    from cliniko2nutshell.engine.sample import search_patients

    with session.view() as project:
        return search_patients(project.store, text, limit=PAGE, offset=offset)


def undo_counts(session: Any, run_id: int) -> dict[str, int]:
    """What undoing sample run `run_id` deletes or restores, per object (from the journal: no network)."""
    from cliniko2nutshell.engine.journal import Journal
    from cliniko2nutshell.engine.rollback import RollbackScope, ScopeKind, planned_preview

    with session.view() as project:
        result = planned_preview(Journal(project.store), RollbackScope(ScopeKind.RUN, run_id))
    return {obj: sum(c.values()) for obj, c in result.counts().items()}


async def sample_job(job: Job, session: Any, options: SampleOptions | None, resume: int | None = None) -> Any:
    """The job: the sample (or the rest of a stopped one), steerable, diffed when it ends. A new sample checks
    the pre-flight's blockers first, as the headless `sample` does."""
    from cliniko2nutshell.tui.engine_jobs import call_engine, steer

    async def action(engine: Any, _client: Any) -> Any:
        runner = engine.sample_runner(options, resume=resume)
        steer(job, runner)
        return await runner.execute()

    return await call_engine(job, session, action, check_blockers=resume is None)


async def undo_job(job: Job, session: Any, run_id: int) -> Any:
    """The job: roll sample run `run_id` back (records edited in Nutshell since are left and reported)."""
    from cliniko2nutshell.engine.rollback import RollbackScope, ScopeKind
    from cliniko2nutshell.tui.engine_jobs import call_engine, steer

    def follow(runner: Any) -> None:
        steer(job, runner)

    return await call_engine(job, session, lambda e, _c: e.rollback(RollbackScope(ScopeKind.RUN, run_id), steer=follow))


async def diff_job(job: Job, session: Any, run_id: int) -> Any:
    """The job: read a finished sample back and diff it (a sample resumed from another step has no diff yet)."""
    from cliniko2nutshell.tui.engine_jobs import call_engine

    return await call_engine(job, session, lambda e, _c: e.diff_sample_run(run_id))


# -- starting the jobs (the Sample step and the diff viewer share them) -----------------------------------------


def start_sample(app: Any, options: SampleOptions | None, *, resume: int | None = None) -> Job | None:
    session = app.session
    title = f"Sample run {resume} resumed" if resume is not None else "Sample"
    return app.start_job("sample", title, RunBoard(), lambda job: sample_job(job, session, options, resume))


def confirm_undo(app: Any, run_id: int, then: Any = None) -> None:
    """Ask (with what it will undo), then roll the sample back as the app's job."""
    session = app.session

    def ask(counts: dict[str, int]) -> None:
        from cliniko2nutshell.engine.readable import object_label

        what = ", ".join(f"{count(n)} {object_label(o).lower()}" for o, n in sorted(counts.items())) or "nothing"

        def answered(go: bool | None) -> None:
            if go:
                job = app.start_job("rollback", f"Undo of sample run {run_id}", RunBoard(),
                                    lambda job: undo_job(job, session, run_id))  # fmt: skip
                if then is not None and job is not None:
                    then(job)

        app.push_screen(
            ConfirmDialog(
                f"Undo sample run {run_id}?",
                f"Deletes from Nutshell what the sample created, and puts back what it changed on people who were "
                f"already there ({what}). Records someone edited in Nutshell since are left in place and reported. "
                "The diff stays readable.",
                yes="Undo the sample",
                no="Keep it",
                danger=True,
            ),
            answered,
        )

    app.background(lambda: undo_counts(session, run_id), ask, what="Reading what the sample wrote")


def open_diff(app: Any, report: Any = None) -> None:
    """Show the diff viewer in place of the Sample step (Esc comes back)."""
    from cliniko2nutshell.tui.screens.diff import DiffScreen

    app.switch_screen(DiffScreen(report))


# -- the screen ------------------------------------------------------------------------------------------------

STRATA_COLUMNS = [("kind", "Covers"), ("name", "Name"), ("patients", "In the slice")]
PATIENT_COLUMNS = [("chosen", "✓"), ("name", "Patient"), ("born", "Born"), ("email", "E-mail"), ("id", "Cliniko id")]


class SampleScreen(StepScreen):
    STEP = Step.SAMPLE
    INTRO = "Migrate a slice first, read it back from Nutshell and compare it field by field."
    HELP = """
The sample migrates a slice of the clinic to Nutshell exactly as the full run will, then reads every record back
and compares it, field by field, with Cliniko and with what the map says it should be: the **diff**.

- **Stratified slice**: 100 to 500 patients chosen so that every appointment type, invoice status and
  practitioner of the clinic appears at least once (the table shows what the slice covers), filled up at random.
- **Patients you name**: search the clinic by name, e-mail or Cliniko id and choose (Space or Enter) the patients
  you know well; the sample takes exactly those.

S starts the sample (the pre-flight's blockers are checked again first); it runs in the background with its
progress here (P pauses, X stops; a stopped sample resumes with R). When it ends, the diff opens (D opens it
again, also after a restart). Found something to fix? **Back to the map** (M), change it, then **Run it again** (A):
the previous sample is undone first and the same slice runs with the new map version. **Undo the sample** (U)
removes what it wrote.
"""
    AUTO_FOCUS = "#sample-tabs"
    DEFAULT_CSS = """
    SampleScreen #sample-state { height: auto; }
    SampleScreen #sample-dashboard { margin-bottom: 1; }
    SampleScreen #size-note { width: 1fr; padding-left: 2; color: $text-muted; }
    SampleScreen #coverage { height: auto; margin-bottom: 1; }
    SampleScreen #strata { height: auto; max-height: 14; }
    SampleScreen #patient-search { margin-bottom: 1; }
    SampleScreen #patients { height: auto; max-height: 16; }
    SampleScreen #chosen { height: auto; margin-top: 1; }
    """
    BINDINGS = [
        Binding("s", "start", "Start"),
        Binding("r", "resume_sample", "Resume", show=False),
        Binding("d", "diff", "Diff"),
        Binding("a", "again", "Run again"),
        Binding("u", "undo", "Undo"),
        Binding("m", "map", "Map"),
        Binding("p", "pause", "Pause", show=False),
        Binding("x", "stop", "Stop", show=False),
        Binding("space", "choose", "Choose", show=False),
        Binding("pagedown", "more", "More", show=False),
        Binding("pageup", "fewer", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: SampleData | None = None
        self.preview: SlicePreview | None = None
        self.page: PatientPage | None = None
        self.chosen: dict[str, str] = {}  # patient id -> name (shown masked in screen-share mode)
        self.job: Job | None = None
        self._slice_size = DEFAULT_SIZE
        self._search = ""
        self._offset = 0
        self._blocked: str | None = None
        self._actions: dict[str, bool] = {}  # which of the step's actions apply now (buttons and footer keys)

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="sample"):
            yield Static("", id="sample-state", markup=False)
            with Horizontal(classes="buttons left", id="sample-buttons"):
                yield Button("Start sample", id="start", variant="primary", compact=True)
                yield Button("Resume", id="resume", compact=True)
                yield Button("Open diff", id="diff", compact=True)
                yield Button("Run again", id="again", compact=True)
                yield Button("Undo sample", id="undo", compact=True)
                yield Button("To the map", id="map", compact=True)
                yield Button("Pause", id="pause", compact=True)
                yield Button("Stop", id="stop", compact=True)
            yield RunDashboard(id="sample-dashboard")
            with TabbedContent(id="sample-tabs"):
                with TabPane("Stratified slice", id="tab-slice"):
                    with Horizontal(classes="field-row"):
                        yield Label("Patients", classes="field-label")
                        yield Input(str(DEFAULT_SIZE), id="size", restrict=r"\d{0,3}", max_length=3, compact=True)
                        yield Static(f"{MIN_SIZE} to {MAX_SIZE}", id="size-note", markup=False)
                    yield Static("", id="coverage", markup=False)
                    yield DataTable(id="strata", cursor_type="row", zebra_stripes=True)
                with TabPane("Patients you name", id="tab-named"):
                    yield Input(placeholder="Search by name, e-mail or Cliniko id", id="patient-search", compact=True)
                    yield DataTable(id="patients", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="patients-page", classes="muted", markup=False)
                    yield Static("", id="chosen", markup=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#patient-search", Input).password = bool(self.app.screen_share)  # type: ignore[attr-defined]
        self.show_progress()

    def on_screen_resume(self) -> None:
        job = getattr(self.app, "job", None)
        if job is not None and job.kind in ("sample", "rollback") and job is not self.job and job.active:
            self._follow(job)
        if self.ready:
            self.load()

    def journey_changed(self, journey: Journey) -> None:
        if self.is_current and journey[self.STEP].state is not State.NOT_READY:
            self.load()
        self.show_state()

    # -- loading -------------------------------------------------------------------------------------------
    def load(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: load_sample_data(session), self._loaded, what="Reading the sample", key="sample")  # type: ignore[attr-defined]

    def _loaded(self, data: SampleData) -> None:
        self.data = data
        self.show_state()
        if self.preview is None or self.preview.size != self._slice_size:
            self.load_preview()
        if self.page is None:
            self.search()

    def load_preview(self) -> None:
        session, size = self.app.session, self._slice_size  # type: ignore[attr-defined]
        self.query_one("#coverage", Static).update("Choosing the slice…")
        self.app.background(lambda: preview_slice(session, size), self._previewed, what="Choosing the slice",  # type: ignore[attr-defined]
                            key="sample-preview")  # fmt: skip

    def _previewed(self, preview: SlicePreview) -> None:
        if preview.size != self._slice_size:  # the size changed while this one was chosen
            self.load_preview()
            return
        self.preview = preview
        by_kind: dict[str, list[Stratum]] = {}
        for s in preview.strata:
            by_kind.setdefault(s.kind, []).append(s)
        from cliniko2nutshell.engine.sample import STRATUM_KINDS, STRATUM_PLURALS

        parts: list[str | tuple[str, str]] = [(f"The slice takes {count(preview.patients)} patients", "bold")]
        for kind, title in STRATUM_PLURALS.items():
            strata = by_kind.get(kind, [])
            covered = sum(1 for s in strata if s.covered)
            mark = ("✓ ", "$text-success") if covered == len(strata) else ("! ", "$text-warning")
            parts += ["\n", mark, f"{title}: {covered} of {len(strata)} covered"]
        missing = [s for s in preview.strata if not s.covered]
        if missing:
            parts += ["\n", ("Not covered: ", "$text-warning"),
                      "no patient of the clinic has " + ", ".join(s.name for s in missing[:5])]  # fmt: skip
        self.query_one("#coverage", Static).update(Content.assemble(*parts))
        rows = []
        for s in preview.strata:
            state = Content.assemble(("✓ ", "$text-success"), count(s.patients)) if s.covered else (
                Content.styled("· none", "$text-warning"))  # fmt: skip
            rows.append((f"{s.kind}:{s.id}", (STRATUM_KINDS.get(s.kind, s.kind), s.name, state)))
        fill(self.query_one("#strata", DataTable), STRATA_COLUMNS, rows)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "size":
            value = int(event.value) if event.value.isdigit() else 0
            note = self.query_one("#size-note", Static)
            if MIN_SIZE <= value <= MAX_SIZE:
                note.update(f"{MIN_SIZE} to {MAX_SIZE}")
                if value != self._slice_size:
                    self._slice_size = value
                    self.load_preview()
            else:
                note.update(Content.styled(f"a sample has {MIN_SIZE} to {MAX_SIZE} patients", "$text-warning"))
        elif event.input.id == "patient-search":
            self._search = event.value
            self._offset = 0
            self.search()

    def search(self) -> None:
        session, text, offset = self.app.session, self._search, self._offset  # type: ignore[attr-defined]

        def found(page: PatientPage) -> None:
            if (text, offset) != (self._search, self._offset):  # typed on while this ran: ask again
                self.search()
                return
            self.page = page
            self.show_patients()

        self.app.background(lambda: find_patients(session, text, offset), found, what="Searching patients",  # type: ignore[attr-defined]
                            key="sample-search")  # fmt: skip

    def show_patients(self) -> None:
        page = self.page
        if page is None:
            return
        show = self.app.show  # type: ignore[attr-defined]
        rows = []
        for p in page.hits:
            mark = Content.styled("✓", "bold $text-success") if p.id in self.chosen else ""
            name = show(p.name, Kind.NAME) + (" (archived)" if p.archived else "")
            rows.append((p.id, (mark, name, show(p.date_of_birth, Kind.BIRTH_DATE) or "–",
                                show(p.email, Kind.EMAIL) or "–", p.id)))  # fmt: skip
        fill(self.query_one("#patients", DataTable), PATIENT_COLUMNS, rows)
        shown = f"{count(page.offset + 1)}–{count(page.offset + len(page.hits))}" if page.hits else "none"
        more = " · PgDn: the next page" if page.offset + len(page.hits) < page.total else ""
        less = " · PgUp: the previous page" if page.offset else ""
        self.query_one("#patients-page", Static).update(
            f"{shown} of {count(page.total)} patients{more}{less} · Space or Enter chooses"
        )
        chosen = self.query_one("#chosen", Static)
        if self.chosen:
            names = ", ".join(show(n, Kind.NAME) for n in list(self.chosen.values())[:12])
            extra = f" and {len(self.chosen) - 12} more" if len(self.chosen) > 12 else ""
            chosen.update(Content.assemble((f"{len(self.chosen)} chosen: ", "bold"), names + extra))
        else:
            chosen.update("None chosen yet: the sample takes exactly the patients you choose here.")

    def masking_changed(self, on: bool) -> None:
        self.query_one("#patient-search", Input).password = on  # a typed name is a name too
        self.query_one(RunDashboard).refresh_masking()
        self.show_patients()

    def action_choose(self) -> None:
        table = self.query_one("#patients", DataTable)
        if self.page is None or not table.row_count or not table.has_focus:
            return
        hit = self.page.hits[min(table.cursor_row, len(self.page.hits) - 1)]
        if hit.id in self.chosen:
            del self.chosen[hit.id]
        else:
            self.chosen[hit.id] = hit.name
        self.show_patients()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "patients":
            event.stop()
            self.action_choose()

    def action_more(self) -> None:
        if self.page is not None and self.page.offset + len(self.page.hits) < self.page.total:
            self._offset = self.page.offset + PAGE
            self.search()

    def action_fewer(self) -> None:
        if self._offset:
            self._offset = max(0, self._offset - PAGE)
            self.search()

    # -- what the step shows -------------------------------------------------------------------------------
    def show_state(self) -> None:
        if not self.is_mounted:
            return
        journey: Journey | None = self.app.journey  # type: ignore[attr-defined]
        data, job = self.data, self.job
        running = job is not None and job.active
        info = data.info if data is not None else None
        run = info.run if info is not None else None
        parts: list[str | tuple[str, str]] = []
        if running:
            assert job is not None
            parts += [("⟳ ", "$text-accent"), f"{job.title} is {job.status.value}. ",
                      "P pauses, X stops at a safe point: it resumes where it stopped (R)."]  # fmt: skip
        elif self._blocked:
            parts += [("✗ Blocked: ", "bold $text-error"), self._blocked,
                      "\n  Nothing was written. Resolve it (the pre-flight says how), then S again."]  # fmt: skip
        elif journey is not None and journey[self.STEP].state is State.NOT_READY:
            parts += [("· ", "$text-warning"), f"Not ready: {journey[self.STEP].reason}."]
        elif run is None:
            parts += ["No sample yet. Choose a slice below (or name patients), then S: their records are written to "
                      "Nutshell, read back and compared field by field."]  # fmt: skip
        else:
            assert info is not None and data is not None
            kind = "named patients" if info.named else "stratified"
            what = f"Sample run {run.id} (map v{run.map_version}, {count(len(info.patients))} patients, {kind})"
            if run.status.value != "finished":
                parts += [("! ", "$text-warning"), (what, "bold"), f" is {run.status.value}: ",
                          "R resumes it where it stopped (nothing is sent twice)."]  # fmt: skip
            elif info.diff is None:
                parts += [("○ ", "$text-accent"), (what, "bold"),
                          " finished without a diff yet: D reads it back from Nutshell and compares it."]  # fmt: skip
            else:
                bad = sum(1 for r in info.diff.records() if r.problems)
                mark = ("✓ ", "$text-success") if not bad else ("! ", "$text-warning")
                parts += [mark, (what, "bold"), f": {info.diff.describe()}. D opens the diff."]
            if info.undone_by is not None:
                parts += ["\n  ", ("↺ Undone ", "bold"), f"by run {info.undone_by}: its records are gone from "
                          "Nutshell. S runs a new sample, A the same slice again."]  # fmt: skip
            elif data.map_version is not None and run.map_version != data.map_version:
                parts += ["\n  ", ("The map changed since ", "bold"), f"(now v{data.map_version}): A runs the same "
                          "slice again with it (this sample is undone first)."]  # fmt: skip
        self.query_one("#sample-state", Static).update(Content.assemble(*parts))
        self._show_buttons(journey, info, running)

    def _show_buttons(self, journey: Journey | None, info: SampleInfo | None, running: bool) -> None:
        run = info.run if info is not None else None
        ready = journey is not None and journey[self.STEP].state is not State.NOT_READY
        stopped = run is not None and run.status.value != "finished"
        finished = run is not None and not stopped
        shown = {
            "start": ready and not running and not stopped,
            "resume": not running and stopped,
            "diff": not running and finished,
            "again": ready and not running and finished,
            "undo": not running and run is not None and info is not None and info.undone_by is None,
            "map": not running,
            "pause": running,
            "stop": running,
        }
        for button, visible in shown.items():
            self.query_one(f"#{button}", Button).display = visible
        if shown != self._actions:
            self._actions = shown
            self.refresh_bindings()
        paused = self.job is not None and self.job.status is JobStatus.PAUSED
        self.query_one("#pause", Button).label = "Resume" if paused else "Pause"
        self.query_one("#sample-tabs").display = not running

    def show_progress(self) -> None:
        """The dashboard follows a sample or its undo (a diff job is short: the state line says it runs)."""
        job = self.job
        dashboard = self.query_one(RunDashboard)
        shown = job is not None and job.kind in ("sample", "rollback") and (job.active or job.ended is not None)
        dashboard.display = shown
        if shown and dashboard.job is not job:
            dashboard.follow(job)

    # -- actions -------------------------------------------------------------------------------------------
    _ACTION_BUTTONS = {"start": "start", "resume_sample": "resume", "diff": "diff", "again": "again", "undo": "undo",
                       "pause": "pause", "stop": "stop"}  # fmt: skip

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers what applies now (the same as the buttons)."""
        button = self._ACTION_BUTTONS.get(action)
        if button is None or not self._actions:
            return True
        return self._actions.get(button, False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "start": self.action_start,
            "resume": self.action_resume_sample,
            "diff": self.action_diff,
            "again": self.action_again,
            "undo": self.action_undo,
            "map": self.action_map,
            "pause": self.action_pause,
            "stop": self.action_stop,
        }
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def _options(self) -> SampleOptions | None:
        """The sample the tabs describe (None, with a notice, when it cannot be taken)."""
        tabs = self.query_one("#sample-tabs", TabbedContent)
        if tabs.active == "tab-named":
            if not self.chosen:
                self.notify("Choose at least one patient first (Space or Enter on a row).", severity="warning")
                return None
            return SampleOptions(patients=list(self.chosen))
        if not MIN_SIZE <= self._slice_size <= MAX_SIZE:
            self.notify(f"A sample has {MIN_SIZE} to {MAX_SIZE} patients.", severity="warning")
            return None
        return SampleOptions(size=self._slice_size)

    def _follow(self, job: Job | None) -> None:
        if job is not None:
            self.job = job
            self._blocked = None
            self.show_state()
            self.show_progress()

    def _busy(self) -> bool:
        job = getattr(self.app, "job", None)
        return job is not None and job.active

    def action_start(self) -> None:
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        info = self.data.info if self.data is not None else None
        if info is not None and info.run is not None and info.run.status.value != "finished":
            self.notify(f"Sample run {info.run.id} stopped part-way: resume it (R) or undo it (U) first.")
            return
        options = self._options()
        if options is None:
            return
        if info is not None and info.run is not None and info.undone_by is None:
            options.rollback_previous = True  # a new sample replaces the last one, as "run it again" does
        size = self.preview.patients if self.preview is not None else options.size
        what = f"the {len(options.patients)} patients you named" if options.patients else f"a slice of {size} patients"
        undo = " The last sample is undone first." if options.rollback_previous else ""

        def answered(go: bool | None) -> None:
            if go:
                self._follow(start_sample(self.app, options))

        self.app.push_screen(
            ConfirmDialog(
                "Start the sample?",
                f"Migrates {what} to Nutshell (the pre-flight's blockers are checked again first), then reads every "
                f"record back and compares it with the map.{undo} Undo it any time (U).",
                yes="Start",
                no="Not now",
            ),
            answered,
        )

    def action_resume_sample(self) -> None:
        info = self.data.info if self.data is not None else None
        if info is None or info.run is None or info.run.status.value == "finished":
            self.notify("No sample is waiting to be resumed.")
            return
        self._follow(start_sample(self.app, None, resume=info.run.id))

    def action_again(self) -> None:
        info = self.data.info if self.data is not None else None
        if info is None or info.run is None:
            self.notify("No sample yet: S starts one.")
            return
        if not self.ready:
            self.notify(self.app.journey[self.STEP].reason, title="Not ready", severity="warning")  # type: ignore[attr-defined]
            return
        self._follow(start_sample(self.app, info.options))

    def action_undo(self) -> None:
        info = self.data.info if self.data is not None else None
        if info is None or info.run is None or info.undone_by is not None:
            self.notify("There is no sample to undo.")
            return
        if self._busy():
            self.notify("Wait for the running job to end first.", severity="warning")
            return
        confirm_undo(self.app, info.run.id, then=self._follow)

    def action_diff(self) -> None:
        info = self.data.info if self.data is not None else None
        if info is None or info.run is None:
            self.notify("No sample yet: S starts one.")
        elif info.diff is not None:
            open_diff(self.app, info.diff)
        elif info.run.status.value == "finished":
            session, run_id = self.app.session, info.run.id  # type: ignore[attr-defined]
            self._follow(self.app.start_job("diff", f"Diff of sample run {run_id}", RunBoard(),  # type: ignore[attr-defined]
                                            lambda job: diff_job(job, session, run_id)))  # fmt: skip
        else:
            self.notify("The sample stopped before its diff: resume it (R) first.")

    def action_map(self) -> None:
        self.app.goto(Step.MAP)  # type: ignore[attr-defined]

    def action_pause(self) -> None:
        job = self.job
        if job is None or not job.active:
            return
        if job.status is JobStatus.PAUSED:
            job.resume()
        elif not job.pause():
            self.notify("It cannot pause right now; X stops it.", severity="warning")
        self.show_state()

    def action_stop(self) -> None:
        job = self.job
        if job is not None and job.active:
            job.stop()
            self.notify("Stopping after the writes in flight; R resumes it.", title=job.title)
            self.show_state()

    def job_ended(self, job: Job) -> None:
        if job is not self.job:
            if job.kind in ("sample", "rollback"):
                self.load()
            return
        from cliniko2nutshell.tui.engine_jobs import Blocked

        self._blocked = str(job.error) if isinstance(job.error, Blocked) else None
        self.query_one(RunDashboard).follow(job)  # its last state, once
        self.show_progress()
        self.load()
        result = job.result
        if job.kind == "sample" and getattr(result, "finished", False):
            if self.is_current:
                open_diff(self.app, result.diff)
        elif job.kind == "diff" and result is not None and self.is_current:
            open_diff(self.app, result[0])
        elif job.kind == "rollback" and result is not None:
            v = result.verification
            left = f"; {v.reported} edited since and left in place" if v.reported else ""
            self.notify(f"The sample is undone: {v.gone} records checked gone from Nutshell{left}.",
                        title="Sample undone")  # fmt: skip
