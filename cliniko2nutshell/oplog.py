"""The operational log of the headless commands: what a support engineer reads to know what happened.

Each command that opens a project logs its start and end (exit code, seconds) to `<project>/logs/` through
project/logs.py's private, redacting handler; `log_event` turns the engine's and the clients' typed events into
log lines: each extraction object and run phase, every retry and 429, every quarantined record, conflict and
recovery. Ids, counts and error classes only: never names, e-mails or other field values (and the handler masks
anything shaped like an e-mail or a credential as a second line of defence). `--verbose` mirrors the log to the
terminal (stderr).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from cliniko2nutshell.cliniko import events as cx
from cliniko2nutshell.engine import events as ev
from cliniko2nutshell.events import Event, EventSink
from cliniko2nutshell.nutshell import events as nx
from cliniko2nutshell.project.logs import LOGGER_NAME, attach_project_log, detach_project_log, redacting_formatter

log = logging.getLogger(f"{LOGGER_NAME}.commands")
events_log = logging.getLogger(f"{LOGGER_NAME}.events")


class CommandLog:
    """The log of one command: attached when the command opens its project, closed when it ends."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._handlers: list[logging.Handler] = []
        self._file: logging.Handler | None = None
        self.command: str | None = None
        self._started = 0.0

    def start(self, logs_dir: Path, command: str, *, verbose: bool = False, project_id: str = "") -> None:
        if self.command is not None:
            return  # one command, one start
        self._file = attach_project_log(logs_dir)
        if verbose:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(redacting_formatter("%(levelname)s %(message)s"))
            logging.getLogger(LOGGER_NAME).addHandler(console)
            self._handlers.append(console)
        self.command = command
        self._started = time.monotonic()
        from cliniko2nutshell import __version__

        log.info("command %s started (project %s, cliniko2nutshell %s)", command, project_id or "-", __version__)

    def warning(self, message: str) -> None:
        """A refusal or a stop the command explains to the user (ids, counts and kinds only)."""
        if self.command is not None:
            log.warning("command %s: %s", self.command, message)

    def error(self, exc: BaseException) -> None:
        if self.command is not None:
            log.error("command %s failed: %s: %s", self.command, type(exc).__name__, exc)

    def finish(self, code: int) -> None:
        if self.command is None:
            return
        log.info("command %s ended: exit code %s after %.1f s", self.command, code, time.monotonic() - self._started)
        logger = logging.getLogger(LOGGER_NAME)
        for handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        if self._file is not None:
            detach_project_log(self._file)
        self._reset()  # ready for the next command in this process (tests call main() many times)


COMMAND_LOG = CommandLog()


def log_event(event: Event) -> None:
    """One event as a log line (progress ticks are not logged: the phases and their totals are)."""
    match event:
        # extraction (Cliniko)
        case cx.ExtractStarted(objects=objects, incremental=incremental):
            events_log.info(
                "extraction started: %s, %d objects", "incremental" if incremental else "full", len(objects)
            )
        case cx.ObjectStarted(object=obj, mode=mode, resumed=resumed):
            events_log.info("extracting %s (%s%s)", obj, mode, ", resumed" if resumed else "")
        case cx.ObjectFinished(object=obj, records=records, pages=pages):
            events_log.info("extracted %s: %d records in %d pages", obj, records, pages)
        case cx.ObjectUnavailable(object=obj, reason=reason):
            events_log.warning("cliniko does not serve %s: %s", obj, reason)
        case cx.RequestRetried(url_path=path, attempt=attempt, reason=reason, wait=wait):
            events_log.warning("cliniko retry %d of %s after %s, waiting %.1f s", attempt, path, reason, wait)
        case cx.RateLimited(url_path=path, wait=wait):
            events_log.warning("cliniko 429 on %s: waiting %.1f s", path, wait)
        case cx.ExtractSummary() as s:
            events_log.info(
                "extraction finished in %.1f s: %d requests, %d 429s, %d retries, %d files downloaded, %d failed",
                s.elapsed, s.requests, s.rate_limited, s.retries, s.attachments_downloaded,
                len(s.attachments_failed),
            )  # fmt: skip
            for attachment_id, reason in sorted(s.attachments_failed.items()):
                events_log.warning("attachment %s not downloaded: %s", attachment_id, reason)
        # runs (engine)
        case ev.RunStarted(run_id=run_id, kind=kind, map_version=version, totals=totals):
            events_log.info("run %s (%s) started with map v%s: %d records planned", run_id, kind, version or "-",
                            sum(totals.values()))  # fmt: skip
        case ev.PhaseStarted(run_id=run_id, phase=phase, total=total):
            events_log.info("run %s: phase %s, %d operations", run_id, phase, total)
        case ev.RecordFailed(run_id=run_id, object=obj, source_id=sid, category=category, reason=reason):
            events_log.warning("run %s: %s %s quarantined (%s): %s", run_id, obj, sid, category, reason)
        case ev.ConflictFound(run_id=run_id, object=obj, source_id=sid, nutshell_id=nid, decision=decision):
            events_log.warning("run %s: %s %s (%s) edited in Nutshell since we wrote it: %s", run_id, obj, sid, nid,
                               decision)  # fmt: skip
        case ev.Recovered(run_id=run_id, object=obj, source_id=sid, found=found):
            events_log.info("run %s: %s %s had an unknown outcome: %s", run_id, obj, sid,
                            "found in Nutshell, adopted" if found else "not there, sent again")  # fmt: skip
        case ev.RunPaused(run_id=run_id, reason=reason):
            events_log.warning("run %s paused: %s", run_id, reason)
        case ev.RunResumed(run_id=run_id):
            events_log.info("run %s resumed", run_id)
        case ev.RunFinished(run_id=run_id, kind=kind, outcome=outcome, status=status, elapsed_seconds=elapsed):
            events_log.info("run %s (%s) %s: %s after %.1f s", run_id, kind, status, outcome, elapsed)
        # Nutshell's retries and 429s are logged where they happen (nutshell/sending.py); here, the slow-downs they
        # cause (the step-by-step recovery after them is left out: one line per success would drown the log)
        case nx.NutshellConcurrencyChanged(limit=limit, previous=previous, reason=reason) if limit < previous:
            events_log.warning("nutshell concurrency %d -> %d (%s)", previous, limit, reason)
        case _:
            pass


def tee(*sinks: EventSink) -> EventSink:
    """One sink that hands each event to every sink (the display and the log)."""

    def both(event: Event) -> None:
        for sink in sinks:
            sink(event)

    return both
