"""Radio buttons and check boxes whose state shows as a mark, not only as a colour: Textual draws the same glyph
on and off, in two colours, which a colour-blind user or a washed-out projector cannot tell apart."""

from __future__ import annotations

from textual.widgets import Checkbox, RadioButton


class Choice(RadioButton):
    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:
        return "●" if self.value else " "


class Tick(Checkbox):
    @property  # type: ignore[override]
    def BUTTON_INNER(self) -> str:
        return "✓" if self.value else " "
