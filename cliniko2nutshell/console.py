"""The headless commands' live display: a bar per object on a terminal, plain lines otherwise.

Subclasses turn one layer's typed events into bars and lines (cliniko/progress.py for extraction,
engine/progress.py for runs). Object names, counts and budgets only; never record contents.
"""

from __future__ import annotations

from typing import Self, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cliniko2nutshell.events import Event


class ProgressSink:
    """An EventSink with a display: `with Sink(sys.stderr) as sink: ... sink(event)`."""

    def __init__(self, stream: TextIO, live: bool | None = None) -> None:
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._progress = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        if self.live:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._progress.stop()

    def _say(self, text: str) -> None:
        if self.live:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def _task(self, name: str, total: int | None = None) -> TaskID:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(name, total=total, note="")
        return self._tasks[name]

    def __call__(self, event: Event) -> None:
        raise NotImplementedError
