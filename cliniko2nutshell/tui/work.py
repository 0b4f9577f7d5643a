"""Long work that belongs to the app, not to a screen: an extraction or a migration run.

A job runs its coroutine on a thread of its own, with its own event loop, so SQLite commits, fsyncs and planning
never stall the UI, and leaving a screen never cancels it. The UI steers it only through `pause`, `resume` and
`stop`, which are handed to the job's loop (the engine's runner is not thread-safe), and reads its progress board.
One job at a time: the engine and the extraction share the project's locked store connection.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class JobStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped at a safe point by the user; resumable


@dataclass
class Job:
    kind: str  # extract | sample | full | retry | resume | delta | rollback
    title: str  # "Extraction", "Full run" ...
    board: Any  # progress.ExtractBoard or progress.RunBoard
    status: JobStatus = JobStatus.RUNNING
    result: Any = None
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    # Set by the body once it has something to steer (a Runner): called on the job's own loop.
    on_pause: Callable[[], None] | None = None
    on_resume: Callable[[], None] | None = None
    on_stop: Callable[[], None] | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _task: asyncio.Task[Any] | None = field(default=None, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)
    _questions: set[asyncio.Future[Any]] = field(default_factory=set, repr=False)

    @property
    def active(self) -> bool:
        return self.status in (JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.STOPPING)

    def call(self, fn: Callable[[], Any]) -> None:
        """Run `fn` on the job's loop (thread-safe); a no-op once the job has ended."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    def pause(self) -> bool:
        if self.status is not JobStatus.RUNNING or self.on_pause is None:
            return False
        self.status = JobStatus.PAUSED
        self.call(self.on_pause)
        return True

    def resume(self) -> bool:
        if self.status is not JobStatus.PAUSED or self.on_resume is None:
            return False
        self.status = JobStatus.RUNNING
        self.call(self.on_resume)
        return True

    def stop(self) -> None:
        """Stop at a safe point: the runner finishes the calls in flight and journals them; an extraction is
        cancelled between pages (each page is committed with its cursor). Either resumes later."""
        if not self.active:
            return
        self.status = JobStatus.STOPPING
        self.call(lambda: [answer.cancel() for answer in list(self._questions)])
        if self.on_stop is not None:
            self.call(self.on_stop)
        else:
            self.cancel()

    async def question(self, answer: asyncio.Future[Any]) -> Any:
        """Wait (on the job's loop) for the user's answer to a question; `stop` withdraws it (CancelledError)."""
        self._questions.add(answer)
        try:
            return await answer
        finally:
            self._questions.discard(answer)

    def cancel(self) -> None:
        """Cancel the job's task wherever it waits (a dialog that will never be answered, a stalled call).
        Safe for the data: every write was journaled before it was sent, so a resume reconciles what was in
        flight, as after a kill."""
        task = self._task
        self.call(lambda: task.cancel() if task is not None else None)

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


Body = Callable[[Job], Awaitable[Any]]


def run_job(job: Job, body: Body) -> None:
    """The job's thread: a fresh event loop runs `body(job)` to its end. Sets status, result and error."""
    loop = asyncio.new_event_loop()
    job._loop = loop
    try:

        async def main() -> Any:
            job._task = asyncio.current_task()
            return await body(job)

        job.result = loop.run_until_complete(main())
        job.status = JobStatus.STOPPED if job.status is JobStatus.STOPPING else JobStatus.DONE
    except asyncio.CancelledError:
        job.status = JobStatus.STOPPED
    except BaseException as exc:  # reported to the user by the app; nothing is lost (journal, cursors)
        log.info("job %s ended with %s", job.kind, type(exc).__name__)
        job.error = exc
        job.status = JobStatus.FAILED
    finally:
        job.ended = time.monotonic()
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            job._loop = None
            loop.close()
            job._finished.set()
