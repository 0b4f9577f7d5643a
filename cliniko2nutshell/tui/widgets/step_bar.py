"""The step indicator: every step of the journey with its state as a symbol and a word, always in view."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from cliniko2nutshell.journey import Journey, State, Step

# Never colour alone: each state has its own symbol (the help screen names them), and a step that is not ready
# says why on the line under it.
SYMBOLS = {State.DONE: "✓", State.READY: "○", State.NOT_READY: "·"}
CURRENT = "▸"
STYLES = {State.DONE: "$text-success", State.READY: "$text-accent", State.NOT_READY: "$text-muted"}


def step_line(step: Step, journey: Journey | None, current: Step | None, width: int) -> Content:
    """One step as the bar shows it: symbol, number, title; under it, why it is not ready."""
    state = journey[step] if journey is not None else None
    here = step is current
    symbol = CURRENT if here else (SYMBOLS[state.state] if state else "○")
    colour = STYLES[state.state] if state else ""
    title_style = "bold" if here else ("$text-muted" if state and state.state is State.NOT_READY else "")
    line = Content.assemble(
        (f"{symbol} ", f"bold {colour}" if here else colour), (f"{step.number:>2} {step.title}", title_style)
    )
    if state is not None and state.state is State.DONE and not here and width >= 34:
        line = Content.assemble(line, ("  done", "$text-muted"))
    line = line.truncate(width, ellipsis=True)
    if state is not None and state.state is State.NOT_READY and state.reason:
        # an arrow, not an indent: the option list drops the leading spaces of a prompt's second line
        why = Content.styled(f"  ↳ {state.reason}", "$text-muted").truncate(width, ellipsis=True)
        line = Content.assemble(line, "\n", why)
    return line


class StepBar(OptionList):
    """Steps down the side. Enter (or a click) goes to a step that is done or ready; a step that is not ready
    says why instead."""

    DEFAULT_CSS = """
    StepBar { height: 100%; border: none; padding: 0; background: $panel; }
    StepBar:focus { border: none; background-tint: $foreground 4%; }
    """

    def __init__(self, current: Step | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current
        self._journey: Journey | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "journey", self.show_journey)

    def on_resize(self) -> None:
        self.show_journey(self._journey)

    def show_journey(self, journey: Journey | None) -> None:
        self._journey = journey
        width = max(self.size.width - 1, 12)
        highlighted = self.highlighted
        self.clear_options()
        for step in Step:
            self.add_option(Option(step_line(step, journey, self.current, width), id=step.value))
        if highlighted is not None:
            self.highlighted = highlighted
        elif self.current is not None:
            self.highlighted = list(Step).index(self.current)
