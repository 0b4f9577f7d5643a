"""Filling a DataTable from scratch, so what it shows depends only on what it is given (snapshots rely on it:
a DataTable's columns only ever widen, so a table refilled in place would look different after a longer row)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable

MAX_WIDTH = 80  # a longer cell is cut with an ellipsis (its row opens in full where that matters)


def _width(cell: Any) -> int:
    text = cell.plain if isinstance(cell, Content | Text) else str(cell)
    return max(cell_len(line) for line in text.splitlines() or [""])


def fill(
    table: DataTable[Any],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[tuple[str | None, Sequence[Any]]],
    widths: Mapping[str, int] | None = None,  # fixed widths by column key (a longer cell is cut)
) -> None:
    """Replace the columns (key, title) and the rows (key, cells), keeping the cursor's row where it can.

    Column widths are measured here, from the cells given, rather than left to the table's own measuring on a
    later idle moment: what the table shows is then settled as soon as it is filled."""
    row = table.cursor_row
    rows = [(key, list(cells)) for key, cells in rows]
    table.clear(columns=True)
    for i, (key, title) in enumerate(columns):
        width = (widths or {}).get(key) or max(
            [cell_len(title), *(_width(cells[i]) for _, cells in rows if i < len(cells))]
        )
        table.add_column(title, key=key, width=min(width, MAX_WIDTH))
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if table.row_count and row is not None:
        table.move_cursor(row=min(row, table.row_count - 1), animate=False)
    # A table whose height follows its rows must make its container lay out again (else it can keep the old
    # height until something else moves).
    table.refresh(layout=True)
