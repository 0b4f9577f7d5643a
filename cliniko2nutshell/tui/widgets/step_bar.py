"""The step indicator: every step of the journey with its state as a symbol and a word, always in view."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from cliniko2nutshell.journey import Journey, State, Step

# Never colour alone: each state has its own symbol, and the help screen names them.
SYMBOLS = {State.DONE: "✓", State.READY: "○", State.NOT_READY: "·"}
CURRENT = "▸"
STYLES = {State.DONE: "$text-success", State.READY: "$text-accent", State.NOT_READY: "$text-muted"}


def describe(step: Step, journey: Journey | None, current: Step | None) -> tuple[str, str, str]:
    """(symbol, word, reason) for one step."""
    if journey is None:
        return ("○", "", "")
    state = journey[step]
    if step is current:
        return (CURRENT, "here", state.reason)
    return (SYMBOLS[state.state], state.state.value, state.reason)


class StepBar(OptionList):
    """Steps down the side. Enter (or a click) goes to a step that is done or ready; a step that is not ready
    says why instead."""

    DEFAULT_CSS = """
    StepBar { width: 26; height: auto; max-height: 100%; border: none; padding: 0; background: $panel; }
    StepBar.-wide { width: 38; }
    """

    def __init__(self, current: Step | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.current = current
        self._journey: Journey | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "journey", self.show_journey)
        self.can_focus = True

    def on_resize(self) -> None:
        self.show_journey(self._journey)

    def show_journey(self, journey: Journey | None) -> None:
        self._journey = journey
        width = max(self.size.width - 2, 12)
        highlighted = self.highlighted
        self.clear_options()
        for step in Step:
            symbol, word, reason = describe(step, journey, self.current)
            state = journey[step].state if journey else None
            colour = STYLES[state] if state else ""
            here = step is self.current
            parts: list[tuple[str, str]] = [(f"{symbol} ", f"bold {colour}" if here else colour)]
            parts.append(
                (
                    f"{step.number:>2} {step.title}",
                    "bold" if here else ("$text-muted" if state is State.NOT_READY else ""),
                )
            )
            used = len(symbol) + 4 + len(step.title)
            if state is State.NOT_READY and reason and width - used - 2 > 6:
                room = width - used - 2
                parts.append(("  " + (reason if len(reason) <= room else reason[: room - 1] + "…"), "$text-muted"))
            elif word and not here and width - used > 12:
                parts.append((f"  {word}", "$text-muted"))
            line = Content.assemble(*parts).truncate(width, ellipsis=True)
            self.add_option(Option(line, id=step.value))
        if highlighted is not None:
            self.highlighted = highlighted
        elif self.current is not None:
            self.highlighted = list(Step).index(self.current)

    def reason_for(self, step: Step) -> str:
        if self._journey is None:
            return ""
        s = self._journey[step]
        return f"{step.title}: {s.state.value}" + (f" — {s.reason}" if s.reason else "")
