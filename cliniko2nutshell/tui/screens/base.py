"""What every step screen shares: the top bar, the screen-share banner, the step bar, a heading that says what
the step does and whether it is ready, and the footer with the keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from cliniko2nutshell.journey import Journey, State, Step
from cliniko2nutshell.tui.widgets.step_bar import StepBar
from cliniko2nutshell.tui.widgets.top_bar import ShareBanner, TopBar


class StepHeading(Static):
    DEFAULT_CSS = """
    StepHeading { height: auto; padding: 0 1; margin-bottom: 1; }
    """


class StepScreen(Screen[None]):
    """Base of the step screens. Subclasses set STEP, INTRO, HELP and compose their body in `compose_body`."""

    STEP: ClassVar[Step]
    INTRO: ClassVar[str] = ""
    HELP: ClassVar[str] = ""  # Markdown: what the step does, in the user's words
    AUTO_FOCUS = "#content Input, #content DataTable, #content Button, #content OptionList"

    def compose(self) -> ComposeResult:
        yield TopBar(self.STEP)
        yield ShareBanner()
        with Horizontal(id="frame"):
            yield StepBar(self.STEP, id="steps")
            with Vertical(id="content"):
                yield StepHeading(id="heading")
                yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def poll(self, seconds: float, refresh: Callable[[], object]) -> None:
        """Call `refresh` every `seconds` while this screen is the one in view: a screen left behind (or being
        taken down as the app quits) has nothing to show, and its widgets may already be gone. Coming back, the
        next tick brings it up to date."""

        def tick() -> None:
            if self.is_current:
                refresh()

        self.set_interval(seconds, tick)

    def on_mount(self) -> None:
        self.watch(self.app, "journey", self._journey_changed)
        self.watch(self.app, "screen_share", self._mask_changed, init=False)

    # -- the journey ---------------------------------------------------------------------------------------
    def _journey_changed(self, journey: Journey | None) -> None:
        self.show_heading(journey)
        if journey is not None:
            self.journey_changed(journey)

    def show_heading(self, journey: Journey | None) -> None:
        parts: list[str | tuple[str, str]] = [(f"{self.STEP.title}", "bold"), "  ", (self.INTRO, "$text-muted")]
        if journey is not None:
            state = journey[self.STEP]
            if state.state is State.NOT_READY:
                parts += ["\n", ("· Not ready: ", "bold $text-warning"), state.reason]
            elif state.state is State.DONE:
                parts += ["\n", ("✓ Done: ", "bold $text-success"), state.reason]
            elif state.reason:
                parts += ["\n", ("○ Ready: ", "bold $text-accent"), state.reason]
        self.query_one("#heading", StepHeading).update(Content.assemble(*parts))

    def journey_changed(self, journey: Journey) -> None:
        """Called when the project's state changed (after a job, a save, a connect)."""

    def _mask_changed(self, on: bool) -> None:
        self.masking_changed(on)

    def masking_changed(self, on: bool) -> None:
        """Screens that show patient data re-render it here."""

    @property
    def ready(self) -> bool:
        journey = getattr(self.app, "journey", None)
        return journey is not None and journey[self.STEP].state is not State.NOT_READY

    # -- navigation ----------------------------------------------------------------------------------------
    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(event.option_list, StepBar) and event.option.id:
            event.stop()
            self.app.goto(Step(event.option.id))  # type: ignore[attr-defined]


class DashboardStepScreen(StepScreen):
    """A step that follows its run on a RunDashboard (the Run and Delta steps): `show_state` says where the step
    stands; it is refreshed twice a second, when the journey changes and when the job ends."""

    def __init__(self) -> None:
        super().__init__()
        self.job: Any = None

    def on_mount(self) -> None:
        super().on_mount()
        self.poll(0.5, self.show_state)

    def show_state(self) -> None:
        raise NotImplementedError

    def journey_changed(self, journey: Journey) -> None:
        self.show_state()

    def job_ended(self, job: Any) -> None:
        from cliniko2nutshell.tui.widgets.dashboard import RunDashboard

        if job is self.job:
            self.query_one(RunDashboard).follow(job)
            self.show_state()

    def masking_changed(self, on: bool) -> None:
        from cliniko2nutshell.tui.widgets.dashboard import RunDashboard

        self.query_one(RunDashboard).refresh_masking()
