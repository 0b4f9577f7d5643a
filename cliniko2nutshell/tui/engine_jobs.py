"""The bodies of the wizard's long jobs: each opens the clients on the job's own loop, connects the engine
(`engine/api.py`), wires pause/resume/stop to the runner, and reports events to the job's board and to the
project's operational log, exactly as the headless commands do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from cliniko2nutshell.engine.api import Engine
from cliniko2nutshell.oplog import log_event, tee
from cliniko2nutshell.project.logs import attach_project_log, detach_project_log
from cliniko2nutshell.tui.work import Job


class Blocked(RuntimeError):
    """The pre-flight found blockers: nothing was written. `problems` lists them."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{len(problems)} blocker(s) stand: {first.detail}: {first.action}{more}")


@asynccontextmanager
async def connected_engine(
    job: Job, session: Any, *, check_blockers: bool = False
) -> AsyncIterator[tuple[Engine, Any]]:
    """The engine over a fresh Nutshell client, reporting to the job's board and the project log. With
    `check_blockers`, the pre-flight runs again first (as `sample` and `run` do) and Blocked is raised."""
    from cliniko2nutshell.connections import nutshell_client
    from cliniko2nutshell.mapping.workflow import check_blockers as blockers_of

    project = session.project
    sink = tee(job.board, log_event)
    handler = attach_project_log(project.logs_dir)
    try:
        async with nutshell_client(project, session.secrets, sink=sink) as client:
            if check_blockers:
                problems = await blockers_of(project, client)
                if problems:
                    raise Blocked(problems)
            engine = await Engine.connect(project, client, sink=sink)
            yield engine, client
    finally:
        detach_project_log(handler)


def steer(job: Job, runner: Any) -> None:
    """Pause, resume and stop reach the runner on the job's own loop."""
    job.on_pause = runner.pause
    job.on_resume = runner.resume
    job.on_stop = runner.stop


RunnerFactory = Callable[[Engine], Any]


async def run_with(job: Job, session: Any, make_runner: RunnerFactory, *, check_blockers: bool = False) -> Any:
    """A full, retry or resumed run: the runner is steerable from the dashboard. A migration run's report is
    written when it ends (a rollback writes its own); its paths are added to the summary's `reports`."""
    from cliniko2nutshell.engine.run_report import write_run_report

    async with connected_engine(job, session, check_blockers=check_blockers) as (engine, _client):
        runner = make_runner(engine)
        steer(job, runner)
        result = await runner.execute()
        summary = result[0] if isinstance(result, tuple) else result
        if summary.kind != "rollback":
            paths = write_run_report(summary, engine.journal, session.project.reports_dir)
            summary.reports += [str(p) for p in paths]
        return result


async def call_engine(
    job: Job, session: Any, action: Callable[[Engine, Any], Awaitable[Any]], *, check_blockers: bool = False
) -> Any:
    """An engine call that runs a whole operation itself (sample, delta, reconcile, rollback, creating fields).
    Stopping it cancels between writes; the journal settles any write left in flight at the next run."""
    async with connected_engine(job, session, check_blockers=check_blockers) as (engine, client):
        return await action(engine, client)
