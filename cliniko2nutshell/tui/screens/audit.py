"""The audit log: every journal entry (each write to Nutshell, and each undo), a page at a time, with search,
filters and an export to CSV. Reached from anywhere (Ctrl+L, the palette); Escape goes back.

The journal of a 100,000-patient project holds millions of rows: the screen asks the store for one page and its
count at a time (engine/audit.py pages in SQL), on a worker thread, and never holds more than a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Select, Static

from cliniko2nutshell.engine.audit import (
    AuditEntry,
    AuditFilter,
    audit_entries,
    audit_facets,
    count_audit_entries,
    write_audit_csv,
)
from cliniko2nutshell.tui.format import count, home_path, kind_label
from cliniko2nutshell.tui.mask import Kind
from cliniko2nutshell.tui.screens.dialogs import Dialog
from cliniko2nutshell.tui.widgets.tables import fill
from cliniko2nutshell.tui.widgets.top_bar import ShareBanner, TopBar

PAGE = 100  # rows a page: what one screen can usefully scroll through, and one quick query at any journal size
ALL = "all"
SEARCH_DELAY = 0.35  # seconds of no typing before a search runs

# Never colour alone: each status has its symbol.
STATUS = {
    "done": ("✓ done", "$text-success"),
    "failed": ("✗ failed", "$text-error"),
    "unknown": ("? unknown", "$text-warning"),
    "intent": ("… sending", "$text-warning"),
    "void": ("– void", "$text-muted"),
    "skipped": ("↷ skipped", "$text-muted"),
}
STATUS_MEANING = {
    "done": "written (or undone) and confirmed by Nutshell",
    "failed": "Nutshell refused it; the record is quarantined with this reason",
    "unknown": "sent, but the answer was lost: the next run looks in Nutshell before sending anything again",
    "intent": "journaled before the call; the call had not been answered when this was read",
    "void": "not sent after all (the record changed in between, or a retry replaced it)",
    "skipped": "left out on purpose (a policy, or edited in Nutshell since we wrote it)",
}
# The status before the ids, so that at 100 columns the table shows it; the error of the highlighted entry is
# spelled out below the table, whatever the width.
COLUMNS = [
    ("at", "UTC"),
    ("run", "Run"),
    ("object", "Record"),
    ("action", "Action"),
    ("status", "Status"),
    ("cliniko", "Cliniko id"),
    ("nutshell", "Nutshell id"),
    ("error", "Error"),
]
PROMPTS = {"run": "All runs", "object": "All records", "action": "All actions", "status": "All statuses"}
ERROR_CELL = 60  # characters of an error in the table; the line below the table and Enter show it whole


@dataclass(frozen=True)
class AuditPage:
    flt: AuditFilter
    offset: int
    total: int
    entries: list[AuditEntry] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE))

    @property
    def number(self) -> int:
        return self.offset // PAGE + 1


def read_page(session: Any, flt: AuditFilter, offset: int) -> AuditPage:
    """One page of matching entries and how many match (worker thread). An offset past the end (the journal
    shrank, or the filter narrowed) lands on the last page. `offset < 0` asks for the last page."""
    with session.view() as project:
        total = count_audit_entries(project.store, flt)
        last = max(0, (total - 1) // PAGE * PAGE)
        offset = last if offset < 0 or offset > last else offset
        entries = audit_entries(project.store, flt, limit=PAGE, offset=offset)
    return AuditPage(flt, offset, total, entries)


def read_facets(session: Any) -> dict[str, list[Any]]:
    with session.view() as project:
        return audit_facets(project.store)


def export_path(reports_dir: Path) -> Path:
    """reports/audit-log-<time>.csv; a second export within the same second gets -2, -3..."""
    from cliniko2nutshell.mapping.report_writers import timestamp

    stem = reports_dir / f"audit-log-{timestamp()}"
    path, n = stem.with_suffix(".csv"), 1
    while path.exists():
        n += 1
        path = stem.with_name(f"{stem.name}-{n}.csv")
    return path


def export_audit_log(session: Any, flt: AuditFilter) -> tuple[Path, int]:
    """Every entry matching `flt` into reports/audit-log-<time>.csv (private; formula cells neutralised).
    Returns the path and the number of entries (worker thread)."""
    from cliniko2nutshell.project.private import make_private_dir

    with session.view() as project:
        make_private_dir(project.reports_dir)
        path = export_path(project.reports_dir)
        written = write_audit_csv(project.store, flt, path)
    return path, written


def start_export(app: Any, flt: AuditFilter) -> None:
    """Export in the background and say where the file went (the App's palette command and the screen's key)."""
    session = app.session
    if session is None:
        app.notify("Open a project first.", severity="warning")
        return

    def done(result: tuple[Path, int]) -> None:
        path, written = result
        what = "entry" if written == 1 else "entries"
        app.notify(f"{count(written)} {what} written to {home_path(path)}", title="Audit log exported", timeout=12)

    app.background(lambda: export_audit_log(session, flt), done, what="Exporting the audit log", key="audit-export")


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def when(at: str | None) -> str:
    """'2026-11-30T09:30:00Z' -> '2026-11-30 09:30:00'."""
    return (at or "").replace("T", " ").removesuffix("Z")


def short_when(at: str) -> str:
    """'2026-11-30T09:30:00Z' -> '30 Nov 09:30:00' (the year is in the entry's dialog)."""
    try:
        return f"{int(at[8:10])} {MONTHS[int(at[5:7]) - 1]} {at[11:19]}"
    except (ValueError, IndexError):
        return when(at)


def status_cell(status: str) -> Content:
    label, style = STATUS.get(status, (status, ""))
    return Content.styled(label, style)


def one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


class EntryDialog(Dialog):
    """One journal entry in full."""

    def __init__(self, entry: AuditEntry, error: str) -> None:
        super().__init__()
        self.entry, self.error = entry, error

    def compose(self) -> ComposeResult:
        e = self.entry
        status, _ = STATUS.get(e.status, (e.status, ""))
        lines = [
            f"Run          {e.run_id} ({e.run_kind})",
            f"Record       {kind_label(e.object)} ({e.object})",
            f"Action       {e.action}",
            f"Cliniko id   {e.cliniko_id}",
            f"Nutshell id  {e.nutshell_id or '–'}",
            f"Status       {status}: {STATUS_MEANING.get(e.status, '')}",
            f"Journaled    {when(e.at)} UTC (before the call)",
            f"Settled      {when(e.finished_at) + ' UTC' if e.finished_at else '–'}",
            f"Journal seq  {e.seq}",
        ]
        with Vertical():
            yield Static(f"Journal entry {e.seq}", classes="title", markup=False)
            yield Static("\n".join(lines), markup=False)
            if e.error:
                yield Static("Error", classes="title section", markup=False)
                with VerticalScroll(id="entry-error"):
                    yield Static(self.error, markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class AuditScreen(Screen[None]):
    INTRO = "Every write the migration made to Nutshell, and every undo, in the order they happened."
    HELP = """
The journal records every write **before** it is sent (the intent) and settles it **after** (done, failed, or
unknown when the answer was lost), so this log is complete even after a crash. Rollbacks are journaled too.

Search finds a Cliniko id, a Nutshell id or words of an error; the menus narrow to one run, one kind of record,
one action or one status. The log is read a page (100 entries) at a time, however large the journal.
Enter opens an entry in full. **Export** writes every entry matching the search and the menus to a CSV in the
project's reports folder (cells a spreadsheet would run as a formula are neutralised); the notification names
the file. In screen-share mode, error texts are masked like any free text (ids are not patient data).
"""
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("slash", "search", "Search"),
        Binding("left_square_bracket", "page(-1)", "Earlier"),
        Binding("right_square_bracket", "page(1)", "Later"),
        Binding("left_curly_bracket", "first", "First page", show=False),
        Binding("right_curly_bracket", "last", "Last"),
        Binding("ctrl+e", "export", "Export"),
        Binding("ctrl+r", "clear", "Clear filters", show=False),
    ]
    DEFAULT_CSS = """
    AuditScreen #audit { padding: 0 1; }
    AuditScreen #audit-title { height: auto; margin-bottom: 1; }
    AuditScreen #audit-filters { height: 1; margin-bottom: 1; }
    AuditScreen #audit-search { width: 1fr; min-width: 20; }
    AuditScreen #audit-filters Select { width: 18; }
    AuditScreen.-narrow #audit-filters Select { width: 14; }
    AuditScreen #audit-entries { height: 1fr; }
    AuditScreen #audit-detail { height: 2; color: $text-muted; }
    AuditScreen #audit-position { height: 1; }
    EntryDialog .section { margin-top: 1; margin-bottom: 0; }
    EntryDialog #entry-error { height: auto; max-height: 8; }
    """

    def __init__(self, flt: AuditFilter | None = None) -> None:
        super().__init__()
        self.flt = flt or AuditFilter()
        self.start = 0
        self.page: AuditPage | None = None
        self.facets: dict[str, list[Any]] | None = None
        self._wanted: tuple[AuditFilter, int] | None = None
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield TopBar()
        yield ShareBanner()
        with Vertical(id="audit"):
            yield Static(Content.assemble(("Audit log", "bold"), "  ", (self.INTRO, "$text-muted")), id="audit-title")
            with Horizontal(id="audit-filters"):
                yield Input(
                    self.flt.text or "",
                    placeholder="/ search ids, errors",
                    id="audit-search",
                    compact=True,
                )
                for name, prompt in PROMPTS.items():
                    yield Select([(prompt, ALL)], value=ALL, allow_blank=False, id=f"audit-{name}", compact=True)
            yield DataTable(id="audit-entries", cursor_type="row", zebra_stripes=True)
            yield Static("", id="audit-detail", markup=False)
            yield Static("Reading the journal…", id="audit-position", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "screen_share", lambda _on: self._show_page(), init=False)
        self.query_one("#audit-entries", DataTable).focus()
        self.load_facets()
        self.load()

    # -- reading -------------------------------------------------------------------------------------------
    def load_facets(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        self.app.background(lambda: read_facets(session), self._show_facets, what="Reading the journal")  # type: ignore[attr-defined]

    def load(self, offset: int | None = None) -> None:
        """Ask for the page at `offset` (the current one when None; -1: the last) with the current filter. The
        newest request wins: one in flight is followed by another if the filter or page changed meanwhile."""
        if offset is not None:
            self.start = offset
        self._wanted = (self.flt, self.start)
        session = self.app.session  # type: ignore[attr-defined]
        flt, at = self._wanted
        self.app.background(lambda: read_page(session, flt, at), self._loaded, self._failed, key="audit-page")  # type: ignore[attr-defined]

    def _failed(self, exc: BaseException) -> None:
        self.query_one("#audit-position", Static).update(
            f"Could not read the journal: {exc}. Changing a filter or the page tries again."
        )
        self.app.report_error(exc, "Reading the journal")  # type: ignore[attr-defined]

    def _loaded(self, page: AuditPage) -> None:
        asked = self._wanted
        self.page = page
        self.start = page.offset
        self._show_page()
        if asked is not None and asked != (page.flt, page.offset) and not (asked[1] < 0 and asked[0] == page.flt):
            self.load()  # the user moved on while this page was read

    def _show_facets(self, facets: dict[str, list[Any]]) -> None:
        self.facets = facets
        options = {
            "run": [(f"Run {r['id']} · {r['kind']}", str(r["id"])) for r in facets["runs"]],
            "object": [(kind_label(o), o) for o in facets["objects"]],
            "action": [(a, a) for a in facets["actions"]],
            "status": [(STATUS.get(s, (s,))[0], s) for s in facets["statuses"]],
        }
        with self.prevent(Select.Changed):
            for name, choices in options.items():
                select = self.query_one(f"#audit-{name}", Select)
                current = getattr(self.flt, name)
                current = ALL if current in (None, "") else str(current)
                select.set_options([(PROMPTS[name], ALL), *choices])
                select.value = current if any(v == current for _, v in choices) else ALL

    # -- showing -------------------------------------------------------------------------------------------
    def _show_page(self) -> None:
        page = self.page
        if page is None:
            return
        show = self.app.show  # type: ignore[attr-defined]
        rows = []
        for e in page.entries:
            error = one_line(show(e.error, Kind.TEXT), ERROR_CELL) if e.error else ""
            cells = (
                short_when(e.at),
                f"{e.run_id} {e.run_kind}",
                kind_label(e.object),
                e.action,
                status_cell(e.status),
                e.cliniko_id,
                e.nutshell_id or "–",
                error,
            )
            rows.append((str(e.seq), cells))
        table = self.query_one("#audit-entries", DataTable)
        fill(table, COLUMNS, rows)
        if page.entries:
            table.move_cursor(row=min(table.cursor_row, len(page.entries) - 1), animate=False)
        self._show_status()
        self._show_detail()

    def _show_status(self) -> None:
        page = self.page
        if page is None:
            return
        narrowed = page.flt != AuditFilter()
        if not page.total:
            text = (
                "No entries match: change the search or the menus (Ctrl+R clears them)."
                if narrowed
                else ("The journal is empty: nothing has been written to Nutshell yet.")
            )
            self.query_one("#audit-position", Static).update(text)
            return
        first, last = page.offset + 1, page.offset + len(page.entries)
        parts: list[str | tuple[str, str]] = [
            (f"{count(first)}–{count(last)} of {count(page.total)}", "bold"),
            f" {'matching entries' if narrowed else 'entries'} · page {count(page.number)} of {count(page.pages)}",
            ("  ·  [ ] pages, { } first and last, Enter opens one", "$text-muted"),
        ]
        self.query_one("#audit-position", Static).update(Content.assemble(*parts))

    def _current(self) -> AuditEntry | None:
        table = self.query_one("#audit-entries", DataTable)
        if self.page is None or not self.page.entries or table.cursor_row is None:
            return None
        return self.page.entries[min(table.cursor_row, len(self.page.entries) - 1)]

    def _show_detail(self) -> None:
        entry = self._current()
        detail = self.query_one("#audit-detail", Static)
        if entry is None:
            detail.update("")
            return
        show = self.app.show  # type: ignore[attr-defined]
        meaning = STATUS_MEANING.get(entry.status, "")
        text = f"{kind_label(entry.object)} {entry.cliniko_id}: {entry.action}, {entry.status} ({meaning})"
        if entry.error:
            text = f"{kind_label(entry.object)} {entry.cliniko_id}: {show(entry.error, Kind.TEXT)}"
        detail.update(one_line(text, 400))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        entry = self._current()
        if entry is not None:
            self.app.push_screen(EntryDialog(entry, self.app.show(entry.error, Kind.TEXT) if entry.error else ""))  # type: ignore[attr-defined]

    # -- filtering -----------------------------------------------------------------------------------------
    def _set_filter(self, **changes: Any) -> None:
        values = {k: getattr(self.flt, k) for k in ("run", "object", "action", "status", "text")} | changes
        flt = AuditFilter(**values)
        if flt != self.flt:
            self.flt = flt
            self.load(0)

    def on_select_changed(self, event: Select.Changed) -> None:
        name = (event.select.id or "").removeprefix("audit-")
        if name not in PROMPTS:
            return
        value = None if event.value == ALL else str(event.value)
        self._set_filter(**{name: int(value) if name == "run" and value is not None else value})

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "audit-search":
            return
        if self._search_timer is not None:
            self._search_timer.stop()
        text = event.value
        self._search_timer = self.set_timer(SEARCH_DELAY, lambda: self._set_filter(text=text.strip() or None))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "audit-search":
            if self._search_timer is not None:
                self._search_timer.stop()
            self._set_filter(text=event.value.strip() or None)
            self.query_one("#audit-entries", DataTable).focus()

    # -- actions -------------------------------------------------------------------------------------------
    def action_search(self) -> None:
        self.query_one("#audit-search", Input).focus()

    def action_page(self, step: int) -> None:
        if self.page is None:
            return
        target = self.page.offset + step * PAGE
        if target < 0 or target >= self.page.total:
            self.notify("That was the " + ("first" if step < 0 else "last") + " page.", timeout=3)
            return
        self.load(target)

    def action_first(self) -> None:
        self.load(0)

    def action_last(self) -> None:
        self.load(-1)

    def action_clear(self) -> None:
        with self.prevent(Select.Changed, Input.Changed):
            for name in PROMPTS:
                self.query_one(f"#audit-{name}", Select).value = ALL
            self.query_one("#audit-search", Input).value = ""
        self.flt = AuditFilter()
        self.load(0)

    def action_export(self) -> None:
        start_export(self.app, self.flt)

    def action_close(self) -> None:
        self.dismiss(None)
