"""Small modal dialogs that return a typed result: confirm, typed confirmation, a text or path prompt, a choice."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class Dialog(ModalScreen):  # type: ignore[type-arg]
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 72; max-width: 95%; height: auto; max-height: 90%; border: thick $accent;
                        background: $surface; padding: 1 2; }
    Dialog .title { text-style: bold; margin-bottom: 1; }
    Dialog .buttons { height: auto; margin-top: 1; align-horizontal: right; }
    Dialog .buttons Button { margin-left: 2; }
    Dialog .error { color: $text-error; height: auto; }
    """

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(Dialog):
    """Yes or no. Returns True or False (escape: False). `no=None`: a message with one button."""

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str | None = "No", danger: bool = False) -> None:
        super().__init__()
        self._title, self._message, self._yes, self._no, self._danger = title, message, yes, no, danger

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, classes="title", markup=False)
            yield Static(self._message, markup=False)
            with Horizontal(classes="buttons"):
                if self._no is not None:
                    yield Button(self._no, id="no")
                yield Button(self._yes, id="yes", variant="error" if self._danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#no" if self._danger and self._no is not None else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmDialog(Dialog):
    """Goes ahead only when the user types `expected` (e.g. the project's name). Returns True or False."""

    def __init__(self, title: str, message: str, expected: str, action: str = "Go ahead") -> None:
        super().__init__()
        self._title, self._message, self._expected, self._action = title, message, expected, action

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, classes="title", markup=False)
            yield Static(self._message, markup=False)
            yield Label(f"Type {self._expected!r} to confirm:")
            yield Input(id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="no")
                yield Button(self._action, id="yes", variant="error", disabled=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value.strip() != self._expected

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == self._expected:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)


class PromptDialog(Dialog):
    """One line of text (a name, a folder). Returns the text, or None when cancelled."""

    def __init__(self, title: str, label: str, value: str = "", placeholder: str = "", action: str = "OK") -> None:
        super().__init__()
        self._title, self._label, self._value, self._placeholder, self._action = (
            title,
            label,
            value,
            placeholder,
            action,
        )

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, classes="title", markup=False)
            yield Label(self._label)
            yield Input(self._value, placeholder=self._placeholder, id="value")
            yield Static("", classes="error", id="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="no")
                yield Button(self._action, id="yes", variant="primary")

    def validate(self, value: str) -> str | None:
        """An error message for `value`, or None when it is acceptable."""
        return None if value.strip() else "Please enter a value."

    def _submit(self) -> None:
        value = self.query_one("#value", Input).value
        problem = self.validate(value)
        if problem:
            self.query_one("#error", Static).update(problem)
            return
        self.dismiss(value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self._submit()
        else:
            self.dismiss(None)


class PathDialog(PromptDialog):
    """A folder that must exist and hold a project (project.toml)."""

    def validate(self, value: str) -> str | None:
        path = Path(value.strip()).expanduser()
        if not value.strip():
            return "Please enter the project folder's path."
        if not path.is_dir():
            return f"There is no folder at {path}."
        if not (path / "project.toml").exists():
            return f"{path} is not a cliniko2nutshell project (it has no project.toml)."
        return None


class ChoiceDialog(Dialog):
    """Pick one of many, with a search box that narrows the list. Returns the chosen id, or None."""

    DEFAULT_CSS = """
    ChoiceDialog OptionList { height: auto; max-height: 16; }
    """

    def __init__(self, title: str, choices: list[tuple[str, str]], hint: str = "") -> None:
        super().__init__()
        self._title, self._choices, self._hint = title, choices, hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._title, classes="title", markup=False)
            if self._hint:
                yield Static(self._hint, markup=False)
            yield Input(placeholder="Type to search", id="search")
            yield OptionList(*self._options(""), id="choices")

    def on_mount(self) -> None:
        options = self.query_one("#choices", OptionList)
        if options.option_count:
            options.highlighted = 0

    def _options(self, query: str) -> list[Option]:
        q = query.strip().lower()
        return [Option(label, id=key) for key, label in self._choices if not q or q in label.lower()]

    def on_input_changed(self, event: Input.Changed) -> None:
        options = self.query_one("#choices", OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#choices", OptionList)
        if options.highlighted is not None:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def key_down(self) -> None:
        self.query_one("#choices", OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
