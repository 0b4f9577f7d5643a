"""Headless rendering of extraction events: a live progress bar per object on a terminal, plain lines otherwise.

The CLI's consumer of cliniko/events.py (the TUI is the other). It prints object names, counts and the rate budget;
never record contents.
"""

from __future__ import annotations

from cliniko2nutshell.cliniko.events import (
    AttachmentProgress,
    ExtractSummary,
    ObjectFinished,
    ObjectProgress,
    ObjectStarted,
    ObjectUnavailable,
    RateLimited,
    RequestRetried,
)
from cliniko2nutshell.console import ProgressSink
from cliniko2nutshell.events import Event


class ExtractProgress(ProgressSink):
    """Extraction events as bars and lines."""

    def __call__(self, event: Event) -> None:
        match event:
            case ObjectStarted(object=name, mode=mode, resumed=resumed):
                if self.live:
                    self._progress.update(self._task(name), note="resuming" if resumed else mode)
                elif resumed:
                    self._say(f"{name}: resuming an interrupted {mode} extraction")
            case ObjectProgress(object=name, done=done, total=total) as p:
                if self.live:
                    note = f"{p.requests} requests, budget {p.budget_remaining}/{p.budget_limit}"
                    self._progress.update(self._task(name), completed=done, total=total, note=note)
            case ObjectFinished(object=name, records=records, pages=pages):
                if self.live:
                    task = self._task(name)
                    self._progress.update(task, total=records, completed=records, note=f"done, {pages} pages")
                else:
                    self._say(f"{name}: {records} records in {pages} pages")
            case ObjectUnavailable(object=name, reason=reason):
                self._say(f"{name}: not served here ({reason}); skipped")
            case AttachmentProgress(done=done, total=total) as a:
                if self.live:
                    note = f"{a.downloaded} downloaded, {a.skipped} unchanged"
                    self._progress.update(self._task("attachment files"), completed=done, total=total, note=note)
                elif done == total:
                    self._say(f"attachment files: {a.downloaded} downloaded, {a.skipped} unchanged")
            case RateLimited(wait=wait):
                self._say(f"Cliniko rate limit reached: waiting {wait:.1f} s")
            case RequestRetried(url_path=path, attempt=attempt, reason=reason, wait=wait):
                self._say(f"retrying {path} (attempt {attempt + 1}) in {wait:.1f} s: {reason}")
            case _:
                pass


def format_summary(summary: ExtractSummary) -> str:
    lines = [f"{'Incremental' if summary.incremental else 'Full'} extraction finished in {summary.elapsed:.1f} s."]
    width = max((len(k) for k in summary.stored), default=10)
    lines.append(f"  {'object':<{width}}  {'fetched':>8}  {'stored':>8}")
    for name in sorted(set(summary.stored) | set(summary.records)):
        lines.append(f"  {name:<{width}}  {summary.records.get(name, 0):>8}  {summary.stored.get(name, 0):>8}")
    for name, reason in sorted(summary.unavailable.items()):
        lines.append(f"  {name}: not served ({reason})")
    lines.append(
        f"Requests: {summary.requests}; 429s: {summary.rate_limited}; retries: {summary.retries}. "
        f"Attachment files: {summary.attachments_downloaded} downloaded, {summary.attachments_skipped} unchanged, "
        f"{len(summary.attachments_failed)} failed ({summary.attachment_bytes} bytes)."
    )
    for attachment_id, reason in sorted(summary.attachments_failed.items()):
        lines.append(f"  attachment {attachment_id}: {reason}")
    return "\n".join(lines)
