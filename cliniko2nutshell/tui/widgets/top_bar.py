"""The line at the top of every screen (where you are, what runs in the background) and the screen-share banner."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.format import duration


class TopBar(Horizontal):
    DEFAULT_CSS = """
    TopBar { height: 1; background: $boost; color: $text; dock: top; }
    TopBar #where { width: 1fr; padding: 0 1; }
    TopBar #job { width: auto; padding: 0 1; color: $text-accent; }
    """

    def __init__(self, step: Step | None = None) -> None:
        super().__init__()
        self.step = step

    def compose(self) -> ComposeResult:
        yield Static(id="where", markup=False)
        yield Static(id="job", markup=False)

    def on_mount(self) -> None:
        self.show_where()
        self.show_job()
        self.set_interval(0.5, self.show_job)

    def show_where(self) -> None:
        session = getattr(self.app, "session", None)
        parts: list[str | tuple[str, str]] = [("cliniko2nutshell", "bold")]
        if session is not None:
            parts += ["  ›  ", session.name]
            if session.demo is not None:
                parts += [("  (demo)", "$text-muted")]
        if self.step is not None:
            parts += ["  ›  ", (f"{self.step.number}/11 {self.step.title}", "bold")]
        self.query_one("#where", Static).update(Content.assemble(*parts))

    def show_job(self) -> None:
        if not self.screen.is_current:
            return
        job = getattr(self.app, "job", None)
        text = ""
        if job is not None and job.active:
            text = f"⟳ {job.title} {job.status.value}"
            view = job.board.snapshot()
            done, total = getattr(view, "done", 0), getattr(view, "total", 0)
            if total:
                text += f" {done * 100 // max(total, 1)}%"
            eta = getattr(view, "eta_seconds", None)
            if eta:
                text += f" · {duration(eta)} left"
        self.query_one("#job", Static).update(text)


class ShareBanner(Static):
    """Says, on every screen, that screen-share mode is on (and what it hides)."""

    DEFAULT_CSS = """
    ShareBanner { height: 1; dock: top; background: $warning; color: $text; text-style: bold; padding: 0 1;
                  display: none; }
    ShareBanner.-on { display: block; }
    """

    def on_mount(self) -> None:
        self.update("◉ SCREEN-SHARE MODE: patient names, birth dates, e-mails and phone numbers are masked (F2: off)")
        self.watch(self.app, "screen_share", lambda on: self.set_class(on, "-on"))
