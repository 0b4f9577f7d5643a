"""Typed progress events of the Cliniko client and the extraction (consumed by the TUI and the headless CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cliniko2nutshell.events import Event


@dataclass(frozen=True, slots=True)
class RequestRetried(Event):
    """A request failed transiently (5xx, timeout, dropped connection) and will be tried again after `wait`."""

    url_path: str  # path only: query strings may carry filter values
    attempt: int
    reason: str
    wait: float


@dataclass(frozen=True, slots=True)
class RateLimited(Event):
    """A 429 came anyway: every request waits `wait` seconds (until X-RateLimit-Reset plus jitter)."""

    url_path: str
    wait: float


@dataclass(frozen=True, slots=True)
class ExtractStarted(Event):
    objects: tuple[str, ...]
    incremental: bool


@dataclass(frozen=True, slots=True)
class ObjectStarted(Event):
    object: str
    mode: str  # 'full' or 'incremental'
    resumed: bool  # continuing a pass that a crash interrupted
    watermark: str | None  # the updated_at lower bound of an incremental pass


@dataclass(frozen=True, slots=True)
class ObjectProgress(Event):
    """After each committed page. `total` is None while unknown (Cliniko may omit total_entries)."""

    object: str
    done: int
    total: int | None
    requests: int  # requests made by the whole extraction so far
    budget_remaining: int  # requests left in the rolling rate-limit window
    budget_limit: int


@dataclass(frozen=True, slots=True)
class ObjectFinished(Event):
    object: str
    records: int  # rows received in this run (an id seen by two passes counts twice)
    pages: int


@dataclass(frozen=True, slots=True)
class ObjectUnavailable(Event):
    """An optional endpoint answered 404 (older APIs or the sandbox do not serve it); nothing was stored."""

    object: str
    reason: str


@dataclass(frozen=True, slots=True)
class AttachmentProgress(Event):
    done: int
    total: int
    downloaded: int
    skipped: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ExtractSummary(Event):
    """The end of an extraction: what it fetched and what it cost."""

    incremental: bool
    records: dict[str, int] = field(default_factory=dict)  # rows received per object in this run
    stored: dict[str, int] = field(default_factory=dict)  # rows held in the store per object afterwards
    unavailable: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    rate_limited: int = 0  # 429s seen
    retries: int = 0
    attachments_downloaded: int = 0
    attachments_skipped: int = 0
    attachments_failed: dict[str, str] = field(default_factory=dict)  # attachment id -> why
    attachment_bytes: int = 0
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "incremental": self.incremental,
            "records": dict(self.records),
            "stored": dict(self.stored),
            "unavailable": dict(self.unavailable),
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "attachments": {
                "downloaded": self.attachments_downloaded,
                "skipped": self.attachments_skipped,
                "failed": dict(self.attachments_failed),
                "bytes": self.attachment_bytes,
            },
            "elapsed_seconds": round(self.elapsed, 3),
        }
