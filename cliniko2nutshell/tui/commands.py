"""The command palette's own commands (Ctrl+P), built from where the project stands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from cliniko2nutshell.journey import State, Step

if TYPE_CHECKING:
    from cliniko2nutshell.tui.app import WizardApp


class WizardCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, Callable[[], object], str]]:
        app: WizardApp = self.app  # type: ignore[assignment]
        share = "off" if app.screen_share else "on"
        yield (f"Screen-share mode: turn {share}", app.action_toggle_screen_share, "mask patient data (F2)")
        yield ("Help for this screen", app.action_help, "what this step does and its keys (F1)")
        if app.session is None:
            return
        journey = app.journey
        for step in Step:
            state = journey[step] if journey is not None else None
            if state is not None and state.state is State.NOT_READY:
                continue
            word = state.state.value if state is not None else ""
            yield (
                f"Go to step {step.number}: {step.title}",
                partial(app.goto, step),
                f"{word}: {state.reason}" if state else "",
            )
        yield ("Open the reports folder", app.action_open_reports, "pre-flight, sample diff, reconciliation, rollback")
        if hasattr(app, "action_audit_log"):
            yield ("Audit log", app.action_audit_log, "every write the migration made, searchable")
        if hasattr(app, "action_export_audit_log"):
            yield ("Export the audit log (CSV)", app.action_export_audit_log, "into the reports folder")
        yield ("Switch project", app.action_switch_project, "close this project and pick another")

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, help=help_text)
