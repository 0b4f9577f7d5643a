"""Typed progress events: the engine and the clients emit them, the TUI and the headless CLI consume them.

Each layer defines its own event dataclasses deriving from `Event`; a sink is any callable taking one event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event the engine reports."""


EventSink = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default sink: drops events (headless callers that need no progress)."""
