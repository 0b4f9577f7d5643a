"""Help for the screen underneath: what the step does, its keys, and the symbols of the step bar."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

GENERAL = """
## Everywhere

| key | what it does |
|---|---|
| Ctrl+P | the command palette: go to a step, screen-share mode, reports, audit log, theme |
| F1 | this help |
| F2 | screen-share mode: masks patient names, birth dates, e-mails and phones |
| Ctrl+N | the next step that is ready |
| Tab / Shift+Tab | move between the parts of a screen |
| Ctrl+Q | quit (a running job is asked about first, then stopped at a safe point) |

## The step bar

| mark | meaning |
|---|---|
| ✓ | done: its result is in the project |
| ▸ | the step you are on |
| ○ | ready: you can take it now |
| · | not ready: the reason follows the step's name |

Long work (extraction, runs) belongs to the app: leave the screen whenever you like, it carries on, and the top
line shows how far it is.
"""


def _key(key: str) -> str:
    return "+".join(part.capitalize() if len(part) > 1 else part.upper() for part in key.split("+"))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 95%; height: 90%; border: thick $accent;
                                  background: $surface; padding: 0 1; }
    """

    def __init__(self, under: Screen) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        step = getattr(self.under, "STEP", None)
        title = f"# {step.number}. {step.title}" if step is not None else f"# {self.under.__class__.__name__}"
        body = getattr(self.under, "HELP", "") or getattr(self.under, "INTRO", "")
        rows = [
            f"| {', '.join(_key(k) for k in b.key.split(','))} | {b.description} |"
            for b in getattr(self.under, "BINDINGS", [])
            if hasattr(b, "description") and b.description
        ]
        keys = "\n## Keys on this screen\n\n| key | what it does |\n|---|---|\n" + "\n".join(rows) if rows else ""
        with VerticalScroll():
            yield Markdown(f"{title}\n\n{body}\n{keys}\n{GENERAL}")

    def action_close(self) -> None:
        self.dismiss(None)
