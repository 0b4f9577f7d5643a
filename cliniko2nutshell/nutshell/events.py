"""Progress events of the Nutshell client, for the run dashboard (derive from cliniko2nutshell.events.Event)."""

from __future__ import annotations

from dataclasses import dataclass

from cliniko2nutshell.events import Event


@dataclass(frozen=True, slots=True)
class NutshellRetrying(Event):
    """A request failed in a way worth another try; the client waits `delay` seconds first."""

    where: str  # "GET /contacts/3-contacts" or "rpc getActivity": never a payload
    attempt: int  # the attempt that failed, 1-based
    delay: float
    reason: str  # "HTTP 503", "ReadTimeout", ...


@dataclass(frozen=True, slots=True)
class NutshellRateLimited(Event):
    """Nutshell answered 429; every request pauses `delay` seconds (Retry-After when given)."""

    where: str
    delay: float
    retry_after: float | None
    concurrency: int  # the concurrency limit after this answer


@dataclass(frozen=True, slots=True)
class NutshellConcurrencyChanged(Event):
    """The adaptive concurrency limit moved (halved on a 429, one more after a run of successes)."""

    limit: int
    previous: int
    reason: str  # "rate limited" or "recovered"
