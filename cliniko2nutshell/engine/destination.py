"""What the engine needs from Nutshell, and nothing more: the engine is written against this Protocol.

The real implementation is an adapter over the Nutshell client (destination_nutshell.py); the tests use an
in-memory fake (tests/fakes/destination.py). Ids are Nutshell REST ids ("12-contacts") throughout.

Records are exchanged as *fields*: a plain dict in the shape of the REST create payload (the shape the mapping
layer produces), so the engine can compare what it sent with what Nutshell holds without knowing either
protocol. The adapter normalises what it reads into that shape and lists only content fields (no revs, times,
side-loaded relations or embedded notes), so a related change such as a new note on a person does not look
like an edit of the person.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol


class Entity(StrEnum):
    """Nutshell record types the engine writes (REST names)."""

    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    ACTIVITIES = "activities"
    NOTES = "notes"
    FILES = "files"


@dataclass(frozen=True, slots=True)
class Remote:
    """A Nutshell record as it stands now."""

    id: str
    rev: str | None = None
    modified: str | None = None  # ISO-8601 UTC, when Nutshell tells it
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileSpec:
    """A file to put on a logged activity: the local copy and the name it gets in Nutshell."""

    path: Path
    name: str
    size: int
    sha256: str
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class ExistingPeople:
    """People already in Nutshell by e-mail (compared trimmed and case-folded): their ids only (read one whole
    before writing to it), and how many people the account holds when that was learned."""

    by_email: dict[str, list[str]] = field(default_factory=dict)
    total: int | None = None


@dataclass(frozen=True, slots=True)
class DestinationBudget:
    concurrency: int | None = None  # the adaptive concurrency limit right now
    in_flight: int | None = None
    throttled: int | None = None  # 429 answers seen


class OutcomeUnknown(Exception):
    """A write may or may not have happened (connection dropped after sending): look before sending again."""


class Rejected(Exception):
    """Nutshell refused the record itself (validation: its message says why); sending it again will not help."""


class Conflict(Exception):
    """Nutshell's concurrency check failed: the record changed since we read it."""


class Gone(Exception):
    """The record does not exist (or is in the trash)."""


class Unavailable(Exception):
    """Nutshell could not be reached or kept failing after the client's retries; the run should stop."""


class Destination(Protocol):
    """The Nutshell operations the engine uses. Errors are the five exceptions above; anything else is a bug."""

    async def create(self, entity: Entity, payload: dict[str, Any]) -> Remote:
        """Create one record from a REST create element (notes: {"body": str, "parent": "<id>"}), in one call:
        the Remote holds what Nutshell answered (and what was sent where the answer leaves it out), no rev."""
        ...

    async def get(self, entity: Entity, id_: str) -> Remote | None:
        """The record, or None when it does not exist or is in the trash."""
        ...

    async def read_many(
        self, entity: Entity, ids: Iterable[str], *, revs: bool = False, confirm_missing: bool = True
    ) -> dict[str, Remote | None]:
        """`get` of many records for at most about min(records, pages of the type) requests (plus one to learn
        the type's size): each id to its record, or None when gone. `revs`: each record with the rev its delete
        needs where the API can tell it. `confirm_missing`: a record the pages did not show is read on its own
        (paging may skip one); without, it counts as gone."""
        ...

    async def update(
        self, entity: Entity, id_: str, changes: dict[str, Any], rev: str | None, current: Remote | None = None
    ) -> Remote:
        """Set top-level fields (customFields: only the names given). `current` is the record as the caller just
        read it (its conflict check): with it the update is one call; `rev` guards where the API can."""
        ...

    async def delete(self, entity: Entity, id_: str, rev: str | None) -> None:
        """Delete (to Nutshell's trash where it has one). Raises Gone when already gone."""
        ...

    async def undelete(self, entity: Entity, id_: str) -> Remote:
        """Take a record back out of the trash (rollback of a replacement)."""
        ...

    async def find_marked(
        self,
        entity: Entity,
        marker: str,
        *,
        parent_id: str | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> list[Remote]:
        """Records carrying `marker` (contacts: the Cliniko Patient ID value; others: a marker in the
        description or body). `parent_id`, `email` and `name` narrow the search where the adapter can use
        them; without a hit it must look at everything rather than miss the record."""
        ...

    async def find_people_by_email(self, email: str) -> list[Remote]: ...

    async def people_by_email(self, emails: Iterable[str | None], *, total: int | None = None) -> ExistingPeople:
        """Who already holds any of `emails`, for at most min(distinct e-mails, pages of the account's people)
        requests (one more to learn the account's size when `total`, its size last time, is not given)."""
        ...

    async def upload_file(self, activity_id: str, spec: FileSpec) -> Remote:
        """Put a file on a logged activity; the Remote is the file (fields: name, size)."""
        ...

    async def find_file(self, activity_id: str, name: str) -> Remote | None:
        """A file of that name on the activity (size 0: reserved but never uploaded)."""
        ...

    async def list_files(self, activity_id: str) -> list[Remote]:
        """The files on an activity ([] when the activity is gone)."""
        ...

    def scan(self, entity: Entity) -> AsyncIterator[Remote]:
        """Every live record of a type (reconcile counts those that carry our markers)."""
        ...

    def budget(self) -> DestinationBudget: ...

    def cap_concurrency(self, requests: int) -> None:
        """At most `requests` calls in flight from now on (the run's `workers`)."""
        ...


class AfterJournal:
    """A Destination whose writes wait until the journal is on disk: every intent is durable before the call it
    guards, wherever the call comes from (runs, rollbacks, recovery). Reads go straight through."""

    _WRITES = frozenset({"create", "update", "delete", "undelete", "upload_file"})

    def __init__(self, inner: Destination, barrier: Callable[[], Awaitable[None]]) -> None:
        self.inner = inner
        self._barrier = barrier

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self._WRITES:
            return attr

        async def written(*args: Any, **kwargs: Any) -> Any:
            await self._barrier()
            return await attr(*args, **kwargs)

        return written
