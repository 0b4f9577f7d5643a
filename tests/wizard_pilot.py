"""Driving the wizard in tests: wait until it has settled, find what a screen shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Static


async def settle(
    pilot: Pilot[Any], until: Callable[[], Any] | None = None, timeout: float = 60.0, *, idle: bool = True
) -> None:
    """Wait until `until()` holds (when given) and no worker has run for a while: the screen shows its data.
    `idle=False` waits for `until()` alone (a dialog a running job waits on: the job stays busy meanwhile)."""
    app = pilot.app
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        busy = idle and any(not w.is_finished for w in app.workers)
        ready = until is None or bool(until())
        quiet = quiet + 1 if (ready and not busy) else 0
        if quiet >= 4:
            freeze_cursors(app)
            await pilot.pause()
            return
    raise TimeoutError(f"the wizard did not settle in {timeout} s (screen {app.screen!r})")


def freeze_cursors(app: Any) -> None:
    """Blinking cursors would be on or off at random in a picture: keep them on."""
    from textual.widgets import Input

    for screen in app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False


def text_of(app: Any) -> str:
    """Everything the current screen shows, as plain text (tables and statics included)."""
    screen = app.screen
    parts = []
    for widget in screen.query(Static):
        parts.append(str(widget.render()))
    for table in screen.query(DataTable):
        for row in range(table.row_count):
            parts.append(" | ".join(str(c) for c in table.get_row_at(row)))
    return "\n".join(parts)
