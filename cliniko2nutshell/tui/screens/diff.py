"""The sample's diff viewer: the records down the left with their problem counts, the selected record's fields on
the right (Cliniko, expected through the map, in Nutshell, status), problems first, each transformation's reason.
It replaces the Sample step on screen (Esc goes back), and reads the last sample's diff from the project when it is
not handed one, so it works after a restart."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Static

from cliniko2nutshell.engine.api import SampleInfo
from cliniko2nutshell.engine.diff import DiffReport, DiffRow, RecordDiff, Status, Subject
from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.format import count
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.screens.sample import confirm_undo, start_sample
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.top_bar import ShareBanner, TopBar

STATUS_CELL = {
    Status.MISMATCH: ("✗ mismatch", "bold $text-error"),
    Status.MISSING: ("✗ missing", "bold $text-error"),
    Status.TRUNCATED: ("! truncated", "bold $text-warning"),
    Status.TRANSFORMED: ("→ transformed", "$text-accent"),
    Status.MATCH: ("✓ match", "$text-success"),
}
REFORMATTED = ("✓ same value", "$text-success")  # a match the two services write differently
RECORD_COLUMNS = [("state", "State"), ("record", "Patient (records)")]
FIELD_COLUMNS = [("field", "Field"), ("source", "Cliniko"), ("expected", "Expected"), ("stored", "In Nutshell"),
                 ("status", "Status")]  # fmt: skip
FIELD_WIDTH, STATUS_WIDTH = 16, 13
MIN_VALUE_WIDTH = 14  # narrower than this, the Cliniko value moves from the table to the line below it


def read_last_sample(session: Any) -> SampleInfo:
    from cliniko2nutshell.engine.api import last_sample

    with session.view() as project:
        return last_sample(project)


def masked(show: Any, value: str | None, kind: str) -> str:
    """A diff value as the screen may show it: screen-share mode masks patient data by the field's kind (each
    of several e-mails or phones on its own)."""
    if value is None:
        return ""
    if kind == "plain":
        return value
    k = Kind(kind)
    if k in (Kind.EMAIL, Kind.PHONE):
        return "; ".join(show(v, k) for v in value.split("; "))
    return show(value, k)


def _list_width(screen_width: int) -> int:
    """The records list's width, as its CSS gives it: 30% of the screen, 28 to 60 columns."""
    return min(60, max(28, screen_width * 30 // 100))


def _cut(text: str, width: int) -> str:
    line = text.replace("\n", " ⏎ ")
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


class DiffScreen(Screen[None]):
    STEP = Step.SAMPLE
    HELP = """
## The sample's diff

Every record the sample wrote, read back from Nutshell and compared field by field:

| column | what it is |
|---|---|
| Cliniko | the value in Cliniko |
| Expected | what the map says Nutshell should hold |
| In Nutshell | what Nutshell holds now |
| Status | ✗ mismatch, ✗ missing, ! truncated: problems; → transformed: changed by the map (why: below); ✓ match |

Values read as a person reads them: times in the clinic's time zone, money with its currency. A value the two
services only write differently (a time as UTC text in Cliniko and Unix seconds in Nutshell) is the same value:
**✓ same, new format**.

| key | what it does |
|---|---|
| N / P | the next / previous problem, across records |
| F | records with problems, or all records |
| / | search records (a name, a Cliniko or Nutshell id, an object) |
| Tab | between the records and the fields |
| U | undo the sample (removes what it wrote) |
| M | back to the map, to fix what the diff shows |
| A | run the same slice again (after a map change) |
| Esc | back to the Sample step |
"""
    AUTO_FOCUS = "#records"
    BINDINGS = [
        Binding("n", "next_problem", "Next ✗"),
        Binding("p", "previous_problem", "Prev ✗"),
        Binding("f", "toggle_filter", "Filter"),
        Binding("slash", "search", "Search", show=False),
        Binding("u", "undo", "Undo"),
        Binding("m", "map", "Map"),
        Binding("a", "again", "Again"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    DiffScreen #diff { height: 1fr; padding: 0 1; }
    DiffScreen #diff-head { height: auto; }
    DiffScreen #diff-controls { height: 1; margin: 1 0; }
    DiffScreen #diff-filter { width: 42; margin-right: 2; }  /* fixed: its label changes with the filter */
    DiffScreen #diff-search { width: 1fr; }
    DiffScreen #diff-body { height: 1fr; }
    DiffScreen #records { width: 30%; min-width: 28; max-width: 60; height: 1fr; margin-right: 1; }
    DiffScreen #diff-right { width: 1fr; height: 1fr; }
    DiffScreen #fields { height: 1fr; }
    DiffScreen #field-detail { height: auto; max-height: 8; border-top: solid $foreground 20%; }
    """

    def __init__(self, report: DiffReport | None = None) -> None:
        super().__init__()
        self.report = report
        self.info: SampleInfo | None = None
        self.subjects: list[Subject] = []
        self.shown: list[Subject] = []  # after the filter and the search
        self.filter = "problems"
        self.query_text = ""
        self.subject: Subject | None = None
        self.rows: list[tuple[RecordDiff, DiffRow | None]] = []  # the fields table: a record's head, then its fields
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(self.STEP)
        yield ShareBanner()
        with Vertical(id="diff"):
            yield Static("Reading the diff…", id="diff-head", markup=False)
            with Horizontal(id="diff-controls"):
                yield Button("With problems", id="diff-filter", compact=True)
                yield Input(placeholder="/ search: a name, an id", id="diff-search", compact=True)
            with Horizontal(id="diff-body"):
                yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
                with Vertical(id="diff-right"):
                    yield DataTable(id="fields", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="field-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "screen_share", self._masking, init=True)
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: read_last_sample(session), self._read, what="Reading the diff", key="diff")  # type: ignore[attr-defined]

    def _masking(self, on: bool) -> None:
        # what the user types to find a patient is a name too: dots on a shared screen
        self.query_one("#diff-search", Input).password = on
        self._rerender()

    def _read(self, info: SampleInfo) -> None:
        self.info = info
        if self.report is None or (info.diff is not None and info.diff.run_id == self.report.run_id):
            self.report = info.diff
        self.show_report()

    # -- showing -------------------------------------------------------------------------------------------
    def show_report(self) -> None:
        report = self.report
        head = self.query_one("#diff-head", Static)
        if report is None:
            head.update("No diff yet: run a sample (Esc goes back to the Sample step).")
            return
        self.subjects = report.subjects()
        if not any(s.problems for s in self.subjects) and self.filter == "problems":
            self.filter = "all"
        version = f", map v{report.map_version}" if report.map_version is not None else ""
        parts: list[str | tuple[str, str]] = [(f"Sample run {report.run_id}{version}: ", "bold"), report.describe()]
        info = self.info
        if info is not None and info.undone_by is not None and info.run is not None and info.run.id == report.run_id:
            parts += ["\n", ("↺ Undone ", "bold $text-warning"), f"by run {info.undone_by}: these records are no "
                      "longer in Nutshell (A runs the slice again)."]  # fmt: skip
        head.update(Content.assemble(*parts))
        self.show_subjects()

    def _matches(self, subject: Subject) -> bool:
        if self.filter == "problems" and not subject.problems:
            return False
        words = self.query_text.casefold().split()
        if not words:
            return True
        hay = " ".join([subject.label, subject.title, *(f"{r.label} {r.source_id} {r.nutshell_id or ''}"
                                                        for r in subject.records)]).casefold()  # fmt: skip
        return all(word in hay for word in words)

    def show_subjects(self) -> None:
        """The list on the left: each patient (with all their records) and each company."""
        if not self.is_mounted:
            return
        bad = sum(1 for s in self.subjects if s.problems)
        self.query_one("#diff-filter", Button).label = (
            f"Showing: with problems ({count(bad)}) · F: all" if self.filter == "problems"
            else f"Showing: all ({count(len(self.subjects))}) · F: with problems"
        )  # fmt: skip
        keep = self.subject.key if self.subject is not None else None
        self.shown = [s for s in self.subjects if self._matches(s)]
        show = self.app.show  # type: ignore[attr-defined]
        width = _list_width(self.app.size.width) - 14  # less the state column and the cells' padding
        rows = []
        for subject in self.shown:
            if subject.problems:
                state = Content.styled(f"✗ {subject.problems}", "bold $text-error")
            elif subject.transformed:
                state = Content.styled(f"→ {subject.transformed}", "$text-accent")
            else:
                state = Content.styled("✓", "$text-success")
            title = masked(show, subject.title, subject.title_kind)
            what = f"{title} ({len(subject.records)})"
            if subject.label != "Patient":
                what = f"{subject.label}: {what}"
            rows.append((subject.key, (state, _cut(what, width))))
        table = self.query_one("#records", DataTable)
        fill(table, RECORD_COLUMNS, rows)
        if not rows:
            self.subject, self.rows = None, []
            fill(self.query_one("#fields", DataTable), FIELD_COLUMNS, [])
            self.query_one("#field-detail", Static).update(
                "Nothing matches the search." if self.query_text.strip() else "No record has a problem."
            )
            return
        index = next((i for i, s in enumerate(self.shown) if s.key == keep), 0)
        table.move_cursor(row=index, animate=False)
        self.show_subject(self.shown[index])

    def _layout(self, subject: Subject) -> list[tuple[RecordDiff, DiffRow | None]]:
        """The fields table's rows for `subject`: each record's head, then its fields (problems first). With the
        problems filter, only the records that have one."""
        out: list[tuple[RecordDiff, DiffRow | None]] = []
        for rec in subject.records:
            if self.filter == "problems" and not rec.problems:
                continue
            out.append((rec, None))
            out += [(rec, r) for r in rec.fields]
        return out

    def show_subject(self, subject: Subject, row: int | None = None) -> None:
        self.subject = subject
        self.rows = self._layout(subject)
        show = self.app.show  # type: ignore[attr-defined]
        table = self.query_one("#fields", DataTable)
        columns, value_width = self._field_columns()
        sides = [k for k, _ in columns if k in ("source", "expected", "stored")]
        cells_of: list[tuple[str, list[Any]]] = []
        for i, (rec, r) in enumerate(self.rows):
            if r is None:  # the record's head: what it is (its title spread over the value columns), its state
                parts = masked(show, rec.title, rec.title_kind).split(" · ", len(sides) - 1)
                parts += [""] * (len(sides) - len(parts))
                if rec.problems:
                    state = Content.styled(f"✗ {len(rec.problems)}", "bold $text-error")
                elif rec.transformed:
                    state = Content.styled(f"→ {rec.transformed}", "$text-accent")
                else:
                    state = Content.styled("✓", "$text-success")
                cells_of.append(
                    (
                        f"h{i}",
                        [
                            Content.styled(_cut(f"▸ {rec.label}", FIELD_WIDTH), "bold $text-accent"),
                            *(Content.styled(_cut(p, value_width), "bold") for p in parts),
                            state,
                        ],
                    )
                )
                continue
            label, style = REFORMATTED if r.reformatted else STATUS_CELL[r.status]
            hot = "bold $text-error" if r.problem else ""
            cells = [Content.styled(_cut(r.label or r.field, FIELD_WIDTH), hot)]
            for side in sides:
                value = getattr(r, side)
                text = _cut(masked(show, value, r.kind), value_width) if value is not None else "–"
                cells.append(Content.styled(text, hot))
            cells.append(Content.styled(label, style))
            cells_of.append((str(i), cells))
        fill(table, columns, cells_of, widths=self._widths(columns, value_width))
        if cells_of:
            first = next((i for i, (_, r) in enumerate(self.rows) if r is not None and r.problem), 1)
            table.move_cursor(row=min(first if row is None else row, len(cells_of) - 1), animate=False)
        self.show_field()

    def _widths(self, columns: list[tuple[str, str]], value_width: int) -> dict[str, int]:
        return {"field": FIELD_WIDTH, "status": STATUS_WIDTH} | {k: value_width for k, _ in columns
                                                                 if k in ("source", "expected", "stored")}  # fmt: skip

    def _field_columns(self) -> tuple[list[tuple[str, str]], int]:
        """The fields table's columns and the width of a value, for the screen's width: on a laptop (under about
        130 columns) the Cliniko value is shown on the line below the table rather than squeezed into it."""
        width = self.app.size.width
        table = width - 2 - _list_width(width) - 1 - 2  # the screen's padding, the list, its margin, a scrollbar
        five = (table - FIELD_WIDTH - STATUS_WIDTH - 5 * 2) // 3
        if five >= MIN_VALUE_WIDTH:
            return FIELD_COLUMNS, five
        four = (table - FIELD_WIDTH - STATUS_WIDTH - 4 * 2) // 2
        return [c for c in FIELD_COLUMNS if c[0] != "source"], max(8, four)

    def show_field(self) -> None:
        table = self.query_one("#fields", DataTable)
        box = self.query_one("#field-detail", Static)
        if not self.rows:
            box.update("")
            return
        rec, r = self.rows[min(table.cursor_row, len(self.rows) - 1)]
        show = self.app.show  # type: ignore[attr-defined]
        parts: list[str | tuple[str, str]] = [(f"{rec.label} {rec.source_id}", "bold"),
                                              f" → Nutshell {rec.nutshell_id or '–'}"]  # fmt: skip
        if r is None:
            parts += ["\n", masked(show, rec.title, rec.title_kind), "\n",
                      f"{len(rec.fields)} fields: {len(rec.problems)} with a problem, {rec.transformed} changed by "
                      "the map, the rest as in Cliniko."]  # fmt: skip
            box.update(Content.assemble(*parts))
            return
        label, style = REFORMATTED if r.reformatted else STATUS_CELL[r.status]

        def value(v: str | None) -> str:
            return masked(show, v, r.kind).replace("\n", " ⏎ ") if v is not None else "–"

        parts += [" · ", (r.label or r.field, "bold"), " ", (label, style),
                  "\n", ("Cliniko: ", "$text-muted"), value(r.source),
                  "\n", ("Expected: ", "$text-muted"), value(r.expected),
                  "\n", ("In Nutshell: ", "$text-muted"), value(r.stored)]  # fmt: skip
        if r.note:
            parts += ["\n", ("Why: ", "bold"), show(r.note, Kind.TEXT) if r.problem else r.note]
        box.update(Content.assemble(*parts))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "records":
            if 0 <= event.cursor_row < len(self.shown) and self.shown[event.cursor_row] is not self.subject:
                self.show_subject(self.shown[event.cursor_row])
        elif event.data_table.id == "fields":
            self.show_field()

    def on_resize(self) -> None:
        self.call_after_refresh(self._rerender)

    def _rerender(self) -> None:
        if self.subject is None:
            return
        row = self.query_one("#fields", DataTable).cursor_row
        subject = self.subject
        self.show_subjects()
        if self.subject is subject:
            self.show_subject(subject, row)

    # -- filter and search ---------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "diff-filter":
            event.stop()
            self.action_toggle_filter()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "diff-search":
            self.query_text = event.value
            # one refresh when the typing pauses, not one per key (a sample lists up to 500 patients)
            if self._search_timer is not None:
                self._search_timer.stop()
            self._search_timer = self.set_timer(0.2, self.show_subjects)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "diff-search":
            if self._search_timer is not None:
                self._search_timer.stop()
            self.show_subjects()
            self.query_one("#records", DataTable).focus()

    def action_toggle_filter(self) -> None:
        self.filter = "all" if self.filter == "problems" else "problems"
        self.show_subjects()

    def action_search(self) -> None:
        self.query_one("#diff-search", Input).focus()

    # -- stepping through problems -------------------------------------------------------------------------
    def _problems(self) -> list[tuple[int, int]]:
        """(patient, row of the fields table) of every problem shown, in order."""
        return [(i, j) for i, subject in enumerate(self.shown) for j, (_, r) in enumerate(self._layout(subject))
                if r is not None and r.problem]  # fmt: skip

    def _go(self, step: int) -> None:
        spots = self._problems()
        if not spots:
            self.notify("No problem in the records shown.", title="Diff")
            return
        subjects = self.query_one("#records", DataTable)
        here = (subjects.cursor_row, self.query_one("#fields", DataTable).cursor_row)
        if step > 0:
            target = next((s for s in spots if s > here), spots[0])
        else:
            target = next((s for s in reversed(spots) if s < here), spots[-1])
        i, j = target
        subjects.move_cursor(row=i, animate=False)
        self.show_subject(self.shown[i], j)
        self.query_one("#fields", DataTable).focus()
        self.notify(f"Problem {spots.index(target) + 1} of {len(spots)}", timeout=2)

    def action_next_problem(self) -> None:
        self._go(1)

    def action_previous_problem(self) -> None:
        self._go(-1)

    # -- what to do about it -------------------------------------------------------------------------------
    def action_back(self) -> None:
        if self.focused is not None and self.focused.id == "diff-search" and self.query_text:
            self.query_one("#diff-search", Input).value = ""
            return
        self.app.goto(Step.SAMPLE)  # type: ignore[attr-defined]

    def action_map(self) -> None:
        self.app.goto(Step.MAP)  # type: ignore[attr-defined]

    def _sample(self) -> SampleInfo | None:
        info = self.info
        if info is None or info.run is None:
            self.notify("The sample is still being read; try again in a moment.")
            return None
        return info

    def action_undo(self) -> None:
        info = self._sample()
        if info is None or info.run is None:
            return
        if info.undone_by is not None:
            self.notify(f"This sample was undone already (run {info.undone_by}).")
            return
        confirm_undo(self.app, info.run.id, then=lambda _job: self.app.goto(Step.SAMPLE))  # type: ignore[attr-defined]

    def action_again(self) -> None:
        info = self._sample()
        if info is None:
            return
        if start_sample(self.app, info.options) is not None:
            self.app.goto(Step.SAMPLE)  # type: ignore[attr-defined]
