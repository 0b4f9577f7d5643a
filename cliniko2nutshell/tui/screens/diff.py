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
from textual.widgets import DataTable, Footer, Input, Select, Static

from cliniko2nutshell.engine.api import SampleInfo
from cliniko2nutshell.engine.diff import DiffReport, RecordDiff, Status
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
REFORMATTED = ("✓ same, new format", "$text-success")
RECORD_COLUMNS = [("state", "Problems"), ("record", "Record")]
FIELD_COLUMNS = [("field", "Field"), ("source", "Cliniko"), ("expected", "Expected"), ("stored", "In Nutshell"),
                 ("status", "Status")]  # fmt: skip
FILTERS = ("problems", "all")


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
        Binding("slash", "search", "Search"),
        Binding("u", "undo", "Undo"),
        Binding("m", "map", "Map"),
        Binding("a", "again", "Again"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    DiffScreen #diff { height: 1fr; padding: 0 1; }
    DiffScreen #diff-head { height: auto; margin-bottom: 1; }
    DiffScreen #diff-controls { height: 1; margin-bottom: 1; }
    DiffScreen #diff-filter { width: 30; margin-right: 2; }
    DiffScreen #diff-search { width: 1fr; }
    DiffScreen #diff-body { height: 1fr; }
    DiffScreen #records { width: 38%; min-width: 28; max-width: 64; height: 1fr; margin-right: 1; }
    DiffScreen #diff-right { width: 1fr; height: 1fr; }
    DiffScreen #fields { height: 1fr; }
    DiffScreen #field-detail { height: auto; max-height: 8; border-top: solid $foreground 20%; }
    """

    def __init__(self, report: DiffReport | None = None) -> None:
        super().__init__()
        self.report = report
        self.info: SampleInfo | None = None
        self.records: list[RecordDiff] = []
        self.shown: list[RecordDiff] = []  # after the filter and the search
        self.filter = "problems"
        self.query_text = ""
        self._names: dict[str, str] = {}  # patient id -> the person's name (search finds a patient's records)
        self._record: RecordDiff | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(self.STEP)
        yield ShareBanner()
        with Vertical(id="diff"):
            yield Static("Reading the diff…", id="diff-head", markup=False)
            with Horizontal(id="diff-controls"):
                yield Select([("With problems", "problems"), ("All records", "all")], value="problems",
                             allow_blank=False, id="diff-filter", compact=True)  # fmt: skip
                yield Input(placeholder="/ search: a name, an id, an object", id="diff-search", compact=True)
            with Horizontal(id="diff-body"):
                yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
                with Vertical(id="diff-right"):
                    yield DataTable(id="fields", cursor_type="row", zebra_stripes=True)
                    yield Static("", id="field-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "screen_share", lambda _on: self.show_records(), init=False)
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: read_last_sample(session), self._read, what="Reading the diff", key="diff")  # type: ignore[attr-defined]

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
        self.records = report.records()
        self._names = {r.patient_id: r.title for r in self.records if r.object == "person" and r.patient_id}
        bad = sum(1 for r in self.records if r.problems)
        if not bad and self.filter == "problems":
            self.filter = "all"
        with self.prevent(Select.Changed):
            select = self.query_one("#diff-filter", Select)
            select.set_options([(f"With problems ({count(bad)})", "problems"),
                                (f"All records ({count(len(self.records))})", "all")])  # fmt: skip
            select.value = self.filter
        version = f", map v{report.map_version}" if report.map_version is not None else ""
        parts: list[str | tuple[str, str]] = [(f"Sample run {report.run_id}{version}: ", "bold"), report.describe()]
        info = self.info
        if info is not None and info.undone_by is not None and info.run is not None and info.run.id == report.run_id:
            parts += ["\n", ("↺ Undone ", "bold $text-warning"), f"by run {info.undone_by}: these records are no "
                      "longer in Nutshell (A runs the slice again)."]  # fmt: skip
        head.update(Content.assemble(*parts))
        self.show_records()

    def _matches(self, rec: RecordDiff) -> bool:
        if self.filter == "problems" and not rec.problems:
            return False
        q = self.query_text.strip().casefold()
        if not q:
            return True
        hay = " ".join([rec.label, rec.title, rec.source_id, rec.nutshell_id or "", rec.object,
                        self._names.get(rec.patient_id or "", "")]).casefold()  # fmt: skip
        return all(word in hay for word in q.split())

    def show_records(self) -> None:
        if not self.is_mounted:
            return
        keep = self._record.key if self._record is not None else None
        self.shown = [r for r in self.records if self._matches(r)]
        show = self.app.show  # type: ignore[attr-defined]
        # the list's width as its CSS gives it (38% of the screen, 28 to 64 columns), less the count and padding
        width = min(64, max(28, self.app.size.width * 38 // 100)) - 14
        rows = []
        for rec in self.shown:
            problems = len(rec.problems)
            if problems:
                state = Content.styled(f"✗ {problems}", "bold $text-error")
            elif rec.transformed:
                state = Content.styled(f"→ {rec.transformed}", "$text-accent")
            else:
                state = Content.styled("✓", "$text-success")
            title = masked(show, rec.title, rec.title_kind)
            rows.append((f"{rec.object}:{rec.source_id}", (state, _cut(f"{rec.label}: {title}", width))))
        table = self.query_one("#records", DataTable)
        fill(table, RECORD_COLUMNS, rows)
        if not rows:
            self._record = None
            empty = "No record matches the search." if self.query_text else "No record has a problem."
            fill(self.query_one("#fields", DataTable), FIELD_COLUMNS, [])
            self.query_one("#field-detail", Static).update(empty)
            return
        index = next((i for i, r in enumerate(self.shown) if r.key == keep), None)
        if index is None:
            index = 0
        table.move_cursor(row=index, animate=False)
        self.show_record(self.shown[index])

    def show_record(self, rec: RecordDiff, field_row: int | None = None) -> None:
        self._record = rec
        show = self.app.show  # type: ignore[attr-defined]
        table = self.query_one("#fields", DataTable)
        total = max(60, table.size.width or (self.app.size.width * 60 // 100))
        value_width = max(8, (total - 18 - 20 - 12) // 3)
        rows = []
        for i, r in enumerate(rec.fields):
            label, style = REFORMATTED if r.reformatted else STATUS_CELL[r.status]
            hot = "bold $text-error" if r.problem else ""
            cells = [Content.styled(_cut(r.label or r.field, 18), hot)]
            for value in (r.source, r.expected, r.stored):
                text = _cut(masked(show, value, r.kind), value_width) if value is not None else "–"
                cells.append(Content.styled(text, hot))
            cells.append(Content.styled(label, style))
            rows.append((str(i), cells))
        fill(table, FIELD_COLUMNS, rows)
        if rows:
            table.move_cursor(row=min(field_row or 0, len(rows) - 1), animate=False)
        self.show_field()

    def show_field(self) -> None:
        rec = self._record
        table = self.query_one("#fields", DataTable)
        box = self.query_one("#field-detail", Static)
        if rec is None or not rec.fields:
            box.update("")
            return
        r = rec.fields[min(table.cursor_row, len(rec.fields) - 1)]
        show = self.app.show  # type: ignore[attr-defined]
        label, style = REFORMATTED if r.reformatted else STATUS_CELL[r.status]

        def value(v: str | None) -> str:
            return masked(show, v, r.kind).replace("\n", " ⏎ ") if v is not None else "–"

        parts: list[str | tuple[str, str]] = [
            (f"{rec.label} {rec.source_id}", "bold"),
            f" → Nutshell {rec.nutshell_id or '–'} · ",
            (r.label or r.field, "bold"),
            " ",
            (label, style),
            "\n",
            ("Cliniko: ", "$text-muted"),
            value(r.source),
            "\n",
            ("Expected: ", "$text-muted"),
            value(r.expected),
            "\n",
            ("In Nutshell: ", "$text-muted"),
            value(r.stored),
        ]
        if r.note:
            parts += ["\n", ("Why: ", "bold"), show(r.note, Kind.TEXT) if r.problem else r.note]
        box.update(Content.assemble(*parts))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "records":
            if 0 <= event.cursor_row < len(self.shown) and self.shown[event.cursor_row] is not self._record:
                self.show_record(self.shown[event.cursor_row])
        elif event.data_table.id == "fields":
            self.show_field()

    def on_resize(self) -> None:
        if self._record is not None:
            self.call_after_refresh(self._rerender)

    def _rerender(self) -> None:
        row = self.query_one("#fields", DataTable).cursor_row
        self.show_records()
        if self._record is not None:
            self.show_record(self._record, row)

    # -- filter and search ---------------------------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "diff-filter" and event.value in FILTERS:
            self.filter = str(event.value)
            self.show_records()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "diff-search":
            self.query_text = event.value
            self.show_records()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "diff-search":
            self.query_one("#records", DataTable).focus()

    def action_toggle_filter(self) -> None:
        self.filter = "all" if self.filter == "problems" else "problems"
        with self.prevent(Select.Changed):
            self.query_one("#diff-filter", Select).value = self.filter
        self.show_records()

    def action_search(self) -> None:
        self.query_one("#diff-search", Input).focus()

    # -- stepping through problems -------------------------------------------------------------------------
    def _problems(self) -> list[tuple[int, int]]:
        """(record, field) of every problem shown, in order."""
        return [(i, j) for i, rec in enumerate(self.shown) for j, r in enumerate(rec.fields) if r.problem]

    def _go(self, step: int) -> None:
        spots = self._problems()
        if not spots:
            self.notify("No problem in the records shown.", title="Diff")
            return
        records = self.query_one("#records", DataTable)
        here = (records.cursor_row, self.query_one("#fields", DataTable).cursor_row)
        if step > 0:
            target = next((s for s in spots if s > here), spots[0])
        else:
            target = next((s for s in reversed(spots) if s < here), spots[-1])
        i, j = target
        records.move_cursor(row=i, animate=False)
        self.show_record(self.shown[i], j)
        where = spots.index(target) + 1
        self.query_one("#fields", DataTable).focus()
        self.notify(f"Problem {where} of {len(spots)}", timeout=2)

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
