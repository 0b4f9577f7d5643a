"""The engine's public face: what the CLI (`sample|run|delta|reconcile|rollback|status`) and the wizard call.

    async with NutshellClient(user, key, rest_url) as nutshell:
        engine = await Engine.connect(project, nutshell, sink=print)
        summary = await engine.full()                      # or: runner = engine.full_runner();
                                                            #     task = asyncio.create_task(runner.execute())

Every writing call returns a result whose `outcome` is success, partial (records quarantined, conflicts
skipped, rollback items left in place) or failure (the run stopped: resumable with `resume`). Runners are
plain objects whose `execute()` the caller runs as its own asyncio task: a view that closes never cancels a
run; `pause()`, `resume()` and `stop()` are there for the dashboard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cliniko2nutshell.engine.counts import RunSummary
from cliniko2nutshell.engine.destination import AfterJournal, Destination
from cliniko2nutshell.engine.destination_nutshell import NutshellDestination
from cliniko2nutshell.engine.diff import DiffReport, diff_sample
from cliniko2nutshell.engine.diff_store import load_diff, save_diff
from cliniko2nutshell.engine.estimate import estimate_for_project
from cliniko2nutshell.engine.journal import Journal, Outcome, Run, RunKind, RunStatus
from cliniko2nutshell.engine.plan import Plan, PlanScope, activity_type_ids
from cliniko2nutshell.engine.readable import Readable
from cliniko2nutshell.engine.reconcile import Reconciliation, reconcile, saved
from cliniko2nutshell.engine.reports import write_diff, write_reconciliation, write_rollback
from cliniko2nutshell.engine.rollback import Preview, RollbackRunner, RollbackScope, ScopeKind, Verification, preview
from cliniko2nutshell.engine.runner import (
    AskConflict,
    ConflictPolicy,
    ExistingPersonPolicy,
    Runner,
    RunSettings,
)
from cliniko2nutshell.engine.sample import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, SampleSelection, select_sample
from cliniko2nutshell.events import EventSink, ignore
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.mapfile import load_map
from cliniko2nutshell.mapping.model import MigrationMap
from cliniko2nutshell.mapping.practitioners import unresolved
from cliniko2nutshell.mapping.snapshot import DEFAULT_FILE_SIZE_LIMIT
from cliniko2nutshell.project.folder import Project
from cliniko2nutshell.project.integrity import verify_store
from cliniko2nutshell.project.store import utcnow

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The engine refuses to start (the message says why and what to do)."""


@dataclass(slots=True)
class RunOptions:
    conflicts: ConflictPolicy = ConflictPolicy.SKIP
    ask: AskConflict | None = None  # with conflicts=ASK: called per conflict, returns SKIP or OVERWRITE
    workers: int = 8
    allow_unconfirmed_map: bool = False  # full and delta runs need a confirmed map unless this is set


@dataclass(slots=True)
class SampleOptions:
    size: int = DEFAULT_SIZE
    seed: int = 1
    patients: list[str] | None = None  # the user's own choice instead of the stratified one
    rollback_previous: bool = False  # undo the last sample first (e.g. to run it again with a new map)
    workers: int = 8


@dataclass(slots=True)
class SampleResult:
    summary: RunSummary  # the sample run's (or, when it stopped while undoing the previous sample, the rollback's)
    selection: SampleSelection
    diff: DiffReport  # empty unless the sample finished
    reports: list[str] = field(default_factory=list)
    rollback: RollbackResult | None = None

    @property
    def finished(self) -> bool:
        """The sample ran to its end and was diffed (else it stopped, and resumes with its run id)."""
        return self.summary.kind == RunKind.SAMPLE.value and self.summary.status is RunStatus.FINISHED

    @property
    def outcome(self) -> Outcome:
        if self.summary.outcome is Outcome.FAILURE:
            return Outcome.FAILURE
        return Outcome.PARTIAL if self.summary.outcome is Outcome.PARTIAL or self.diff.problems else Outcome.SUCCESS


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """The project's last sample, read without touching the network (the wizard's Sample step and diff viewer)."""

    run: Run | None  # the last sample run, whatever its status
    undone_by: int | None = None  # the finished rollback run that undid it
    diff: DiffReport | None = None  # its diff as stored (None: not diffed yet, e.g. stopped, or resumed elsewhere)

    @property
    def patients(self) -> tuple[str, ...]:
        return tuple(self.run.options.get("patients") or ()) if self.run is not None else ()

    @property
    def named(self) -> bool:
        return bool(self.run is not None and self.run.options.get("named"))

    @property
    def options(self) -> SampleOptions:
        """The options that take the same slice again (for "run it again" with a new map version)."""
        if self.named:
            return SampleOptions(patients=list(self.patients), rollback_previous=True)
        size = int(self.run.options.get("size") or DEFAULT_SIZE) if self.run is not None else DEFAULT_SIZE
        return SampleOptions(size=min(max(size, MIN_SIZE), MAX_SIZE), rollback_previous=True)


def last_sample(project: Project) -> SampleInfo:
    """The last sample run, whether a rollback undid it since, and its stored diff."""
    journal = Journal(project.store)
    run = journal.last_run(RunKind.SAMPLE)
    if run is None:
        return SampleInfo(None)
    undone = None
    for r in journal.runs(RunKind.ROLLBACK):
        scope = r.options.get("scope") or {}
        covers = scope.get("kind") == ScopeKind.EVERYTHING.value or scope.get("run_id") == run.id
        if r.id > run.id and r.status is RunStatus.FINISHED and covers:
            undone = r.id
    return SampleInfo(run, undone, load_diff(project.store, run.id))


@dataclass(slots=True)
class DeltaResult:
    summary: RunSummary
    extraction: dict[str, Any]  # the extraction summary (cliniko/events.ExtractSummary.as_dict())
    patients: int  # patients whose records changed
    companies: int

    @property
    def outcome(self) -> Outcome:
        return self.summary.outcome


@dataclass(slots=True)
class ReconcileResult:
    reconciliation: Reconciliation
    reports: list[str]

    @property
    def outcome(self) -> Outcome:
        rec = self.reconciliation
        if rec.missing or rec.duplicates:
            return Outcome.FAILURE
        return Outcome.SUCCESS if rec.balanced and not rec.quarantine else Outcome.PARTIAL


@dataclass(slots=True)
class RollbackResult:
    summary: RunSummary
    verification: Verification
    preview: Preview
    reports: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> Outcome:
        return self.summary.outcome


@dataclass(slots=True)
class StatusReport:
    """What the project holds, without touching the network."""

    runs: list[Run]
    mapped: dict[str, int]  # records in Nutshell per object, per the journal
    quarantined: int
    open_operations: int  # journal rows whose outcome is unknown (settled at the next run)
    source: dict[str, int]  # extracted Cliniko records per object
    resumable: list[int]  # runs paused or interrupted

    @property
    def outcome(self) -> Outcome:
        if any(r.status is RunStatus.INTERRUPTED for r in self.runs[-1:]):
            return Outcome.FAILURE
        return Outcome.PARTIAL if self.quarantined or self.resumable else Outcome.SUCCESS

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [
                {
                    "id": r.id,
                    "kind": r.kind.value,
                    "status": r.status.value,
                    "outcome": r.outcome.value if r.outcome else None,
                    "map_version": r.map_version,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                }
                for r in self.runs
            ],
            "mapped": self.mapped,
            "quarantined": self.quarantined,
            "open_operations": self.open_operations,
            "source": self.source,
            "resumable": self.resumable,
            "outcome": self.outcome.value,
        }


def status(project: Project) -> StatusReport:
    journal = Journal(project.store)
    runs = journal.runs()
    return StatusReport(
        runs=runs,
        mapped=journal.count_mapped(),
        quarantined=len(journal.quarantine_list()),
        open_operations=len(journal.open_entries()),
        source=project.store.count_records(),
        resumable=[r.id for r in runs if r.status in (RunStatus.PAUSED, RunStatus.INTERRUPTED, RunStatus.RUNNING)],
    )


class Engine:
    """One project, one destination, one map. Create with `Engine.connect` (or directly, in tests)."""

    def __init__(
        self,
        project: Project,
        destination: Destination,
        mapping: MigrationMap,
        activity_types: dict[str, str],
        *,
        file_size_limit: int | None = None,
        sink: EventSink = ignore,
        reference_time: datetime | None = None,
        cliniko_budget: Any = None,
        durable: bool = True,
    ) -> None:
        if project.lock is None or not project.lock.held:
            raise EngineError("open the project for writing (it must hold its lock) before running the engine")
        self.project = project
        self.mapping = mapping
        self.activity_types = activity_types
        self.file_size_limit = file_size_limit
        self.sink = sink
        self.reference_time = reference_time
        self.cliniko_budget = cliniko_budget
        self.durable = durable  # fsync each journal commit (power loss); off only for tests
        # How long Nutshell may go on with a request the client gave up on: set from the client's timeout.
        # Unconfirmed: whether Nutshell stops work on a dropped request; we assume it may finish it.
        self.late_copy_grace = 0.0
        # Nutshell's users by id -> name, read when a diff needs them (set by `connect`; none in tests).
        self.user_names: Callable[[], Awaitable[dict[str, str]]] = _no_users
        self.journal = Journal(project.store)
        self.dest: Destination = AfterJournal(destination, self.journal.barrier)  # type: ignore[assignment]
        self._verify()
        # We hold the project lock: a run still "running" belongs to a process that died.
        for run_id in self.journal.mark_stale_runs_interrupted():
            log.info("run %s was interrupted; it resumes with `resume`", run_id)

    @classmethod
    async def connect(
        cls,
        project: Project,
        client: Any,  # NutshellClient
        *,
        mapping: MigrationMap | None = None,
        sink: EventSink = ignore,
        file_size_limit: int | None = DEFAULT_FILE_SIZE_LIMIT,
        reference_time: datetime | None = None,
    ) -> Engine:
        """An engine over the real client: the map from mapping.toml, activity types read from Nutshell. Files are
        planned against the size limit the pre-flight warns of, so a file over it is quarantined before it is sent
        (and reconcile balances) instead of being refused by Nutshell half-way."""
        mapping = mapping or load_map(project.mapping_path)
        # The engine reads records back itself when it needs to; the client's extra JSON-RPC read of the rev
        # after every write would only double the requests of a run.
        client.read_revs = False
        # Built before the first request, so a damaged store is reported before Nutshell is contacted at all.
        engine = cls(
            project,
            NutshellDestination(client),
            mapping,
            {},
            file_size_limit=file_size_limit,
            sink=sink,
            reference_time=reference_time,
        )
        engine.activity_types = activity_type_ids((t.name, t.id.rest) for t in await client.list_activity_types())
        engine.late_copy_grace = float(client.policy.timeout.read or 0.0)

        async def user_names() -> dict[str, str]:
            return {u.id.rest: u.name for u in await client.list_users()}

        engine.user_names = user_names
        return engine

    # -- helpers ---------------------------------------------------------------------------------------------
    def _catalog(self) -> Catalog:
        return Catalog.from_store(self.project.store, self.reference_time)

    def _check_map(self, *, confirmed: bool) -> None:
        blocking = unresolved(self.mapping, self._catalog().practitioners)
        if blocking:
            raise EngineError(
                f"{len(blocking)} practitioner(s) have no Nutshell user or fallback owner "
                f"({', '.join(blocking[:10])}): resolve them in the map first"
            )
        if confirmed and not self.mapping.confirmed:
            raise EngineError("the map is not confirmed yet: review and confirm it (or run a sample) first")

    def plan(self, scope: PlanScope | None = None, catalog: Catalog | None = None) -> Plan:
        """What a run would write (everything, or a scope), as Ops per phase; nothing is sent."""
        return Plan(
            self.project,
            self.mapping,
            self.activity_types,
            journal=self.journal,
            scope=scope,
            file_size_limit=self.file_size_limit,
            reference_time=self.reference_time,
            catalog=catalog,
        )

    def _settings(self, options: RunOptions, **kw: Any) -> RunSettings:
        return RunSettings(
            existing_person=ExistingPersonPolicy(self.mapping.policies.existing_person.value),
            conflicts=options.conflicts,
            ask=options.ask,
            workers=options.workers,
            cliniko_budget=self.cliniko_budget,
            late_copy_grace=self.late_copy_grace,
            estimator=lambda totals: estimate_for_project(self.project, totals, workers=options.workers).as_dict(),
            **kw,
        )

    def _verify(self) -> None:
        """Refuse to write anything (to Nutshell or the store) from a store that fails its integrity check: a
        damaged journal could make a run write records twice or a rollback miss some."""
        report = verify_store(self.project)
        if not report.ok:
            raise EngineError(report.describe())

    def _start(self, kind: RunKind, options: dict[str, Any]) -> Run:
        if self.durable:
            self.journal.durable()
        return self.journal.start_run(kind, self.mapping.version, options)

    # -- Nutshell's schema ---------------------------------------------------------------------------------
    async def ensure_custom_fields(self, client: Any, *, custom_field_cap: int | None = None) -> Any:
        """Create the custom fields the map writes and Nutshell lacks (the user asked for it), journaling each
        creation: the API cannot delete a definition, so a rollback lists them for removal by hand.
        Returns the schema check's CreationResult (created definitions and failures, e.g. the plan's cap)."""
        from cliniko2nutshell.nutshell.models import Entity as FieldFamily
        from cliniko2nutshell.nutshell.schema_check import RequiredField, SchemaNeeds, check_schema, create_missing

        needs = SchemaNeeds(
            custom_fields=[
                RequiredField(FieldFamily(f.entity.lower()), f.name, f.type, tuple(f.choices))
                for f in self.mapping.custom_fields
            ]
        )
        report = await check_schema(client, needs, custom_field_cap=custom_field_cap)
        result = await create_missing(client, report)
        for c in result.created:
            self.journal.record_schema_change(c.entity.value, c.name, c.type, c.id)
        return result

    # -- full run ------------------------------------------------------------------------------------------
    def full_runner(self, options: RunOptions | None = None) -> Runner:
        options = options or RunOptions()
        self._check_map(confirmed=not options.allow_unconfirmed_map)
        run = self._start(RunKind.FULL, {"conflicts": options.conflicts.value})
        return Runner(self.journal, self.dest, run, self.plan(), self._settings(options), self.sink)

    async def full(self, options: RunOptions | None = None) -> RunSummary:
        """Everything not yet migrated (records quarantined earlier wait for `retry`)."""
        return await self.full_runner(options).execute()

    # -- retry failed --------------------------------------------------------------------------------------
    def retry_runner(self, options: RunOptions | None = None) -> Runner:
        options = options or RunOptions()
        self._check_map(confirmed=False)
        keys = self.journal.quarantine_keys()
        patients = {q.patient_id for q in self.journal.quarantine_list() if q.patient_id}
        companies = {s for o, s in keys if o in ("company", "business_company")}
        run = self._start(RunKind.RETRY, {"records": len(keys)})
        scope = None if len(patients) > 5000 else PlanScope(frozenset(patients), frozenset(companies))
        settings = self._settings(options, only=keys, retry_quarantined=True)
        return Runner(self.journal, self.dest, run, self.plan(scope), settings, self.sink)

    async def retry(self, options: RunOptions | None = None) -> RunSummary:
        """Only the quarantined records, again (after the map or the data was fixed)."""
        return await self.retry_runner(options).execute()

    # -- sample --------------------------------------------------------------------------------------------
    def sample_runner(self, options: SampleOptions | None = None, *, resume: int | None = None) -> SampleRunner:
        """The sample as one steerable run (see SampleRunner); with `resume`, carry on that stopped sample run."""
        self._check_map(confirmed=False)
        run = None
        if resume is not None:
            run = self.journal.run(resume)
            if run.kind is not RunKind.SAMPLE:
                raise EngineError(f"run {resume} is a {run.kind.value} run, not a sample")
            if run.status is RunStatus.FINISHED:
                raise EngineError(f"sample run {resume} finished; nothing to resume")
        return SampleRunner(self, options or SampleOptions(), run)

    async def sample(self, options: SampleOptions | None = None) -> SampleResult:
        return await self.sample_runner(options).execute()

    async def diff_sample_run(self, run_id: int | None = None, *, workers: int = 8) -> tuple[DiffReport, list[str]]:
        """Read every record of a finished sample run (the last when no id is given) back from Nutshell and
        compare it with the map: the diff is kept in the project (the last sample's) and written to reports/.
        A sample diffs itself when it ends; this is for a sample resumed elsewhere, or to look again."""
        run = self.journal.run(run_id) if run_id is not None else self.journal.last_run(RunKind.SAMPLE)
        if run is None or run.kind is not RunKind.SAMPLE:
            raise EngineError("there is no sample run to compare")
        if run.status is not RunStatus.FINISHED:
            raise EngineError(f"sample run {run.id} is {run.status.value}: resume it first")
        if run.map_version != self.mapping.version:
            raise EngineError(f"the map changed since sample run {run.id} (version {run.map_version}, now "
                              f"{self.mapping.version}): run the sample again to see the new map's result")  # fmt: skip
        catalog = self._catalog()
        plan = self.plan(PlanScope(frozenset(run.options.get("patients") or [])), catalog)
        return await self._diff(run, plan, catalog, workers)

    async def _diff(self, run: Run, plan: Plan, catalog: Catalog, workers: int) -> tuple[DiffReport, list[str]]:
        ops = [op for phase_ops in (plan.ops(p) for p in _phases()) for op in phase_ops]
        types = {type_id: name for name, type_id in self.activity_types.items()}
        readable = Readable(catalog.time_zone, await self.user_names(), types)
        diff = await diff_sample(run.id, ops, self.journal, self.dest, self.project.store, workers=workers,
                                 readable=readable, mapping=self.mapping)  # fmt: skip
        save_diff(self.project.store, diff)
        return diff, [str(p) for p in write_diff(diff, self.project.reports_dir)]

    # -- delta ---------------------------------------------------------------------------------------------
    async def delta(self, cliniko_client: Any, options: RunOptions | None = None) -> DeltaResult:
        """Fetch what changed in Cliniko since the last extraction (with overlap), then create and update."""
        from cliniko2nutshell.cliniko.extract import ExtractOptions, extract

        options = options or RunOptions()
        self._check_map(confirmed=not options.allow_unconfirmed_map)
        if self.journal.last_run(RunKind.FULL) is None:
            raise EngineError("there is no full run yet: a delta picks up changes since the full run")
        started = utcnow()
        extraction = await extract(self.project, cliniko_client, ExtractOptions(incremental=True), self.sink)
        return await self.apply_changes(started, options, extraction=extraction.as_dict())

    async def apply_changes(
        self, since: str, options: RunOptions | None = None, *, extraction: dict[str, Any] | None = None
    ) -> DeltaResult:
        """The delta run over records extracted at or after `since` (the extraction is done by `delta`)."""
        options = options or RunOptions()
        catalog = self._catalog()
        patients, companies, everything = changed_since(self.project, catalog, since)
        scope = None if everything else PlanScope(frozenset(patients), frozenset(companies))
        run = self._start(RunKind.DELTA, {"since": since, "conflicts": options.conflicts.value,
                                          "patients": len(patients), "companies": len(companies),
                                          "everything": everything})  # fmt: skip
        runner = Runner(self.journal, self.dest, run, self.plan(scope, catalog), self._settings(options), self.sink)
        summary = await runner.execute()
        return DeltaResult(summary, extraction or {}, len(patients), len(companies))

    # -- resume --------------------------------------------------------------------------------------------
    def resume_runner(self, run_id: int | None = None, options: RunOptions | None = None) -> Runner | RollbackRunner:
        """The runner that carries on a paused or interrupted run (the last one when no id is given), under the
        same run id; the caller runs `execute()` and may pause or stop it. A rollback's runner returns
        (summary, verification)."""
        options = options or RunOptions()
        run = self.journal.run(run_id) if run_id is not None else self.journal.last_run()
        if run is None:
            raise EngineError("there is no run to resume")
        if run.status is RunStatus.FINISHED:
            raise EngineError(f"run {run.id} finished; nothing to resume")
        if self.durable:
            self.journal.durable()
        self.journal.set_run_status(run.id, RunStatus.RUNNING)
        run = self.journal.run(run.id)
        if run.kind is RunKind.ROLLBACK:
            return self.rollback_runner_for(run)
        scope: PlanScope | None = None
        settings = self._settings(options)
        if run.kind is RunKind.SAMPLE:
            scope = PlanScope(frozenset(run.options.get("patients") or []))
        elif run.kind is RunKind.RETRY:
            keys = self.journal.quarantine_keys()
            settings = self._settings(options, only=keys, retry_quarantined=True)
        elif run.kind is RunKind.DELTA and not run.options.get("everything"):
            patients, companies, everything = changed_since(self.project, self._catalog(), run.options["since"])
            scope = None if everything else PlanScope(frozenset(patients), frozenset(companies))
        return Runner(self.journal, self.dest, run, self.plan(scope), settings, self.sink)

    async def resume(self, run_id: int | None = None, options: RunOptions | None = None) -> RunSummary:
        """Carry on a paused or interrupted run (the last one when no id is given), under the same run id."""
        runner = self.resume_runner(run_id, options)
        if isinstance(runner, RollbackRunner):
            summary, _ = await runner.execute()
            return summary
        return await runner.execute()

    # -- reconcile -----------------------------------------------------------------------------------------
    async def reconcile(self) -> ReconcileResult:
        rec = await reconcile(self.journal, self.dest, self.plan())
        paths = [str(p) for p in write_reconciliation(rec, self.project.reports_dir)]
        last = self.journal.last_run()
        self.project.store.set_milestone(
            "reconciled",
            {
                "run_id": last.id if last else None,
                "balanced": rec.balanced,
                "missing": len(rec.missing),
                "duplicates": len(rec.duplicates),
                "quarantined": len(rec.quarantine),
                "reports": paths,
                "reconciliation": saved(rec),
            },
        )
        return ReconcileResult(rec, paths)

    # -- rollback ------------------------------------------------------------------------------------------
    async def rollback_preview(self, scope: RollbackScope, *, check: bool = True, write: bool = True) -> Preview:
        """What a rollback would do; with `check`, reads Nutshell to find records edited since we wrote them."""
        result = await preview(self.journal, self.dest if check else None, scope)
        if write:
            write_rollback(result, self.project.reports_dir)
        return result

    def rollback_runner(self, scope: RollbackScope, *, force: bool = False, workers: int = 8) -> RollbackRunner:
        if self.durable:
            self.journal.durable()
        run = self.journal.start_run(RunKind.ROLLBACK, self.mapping.version,
                                     {"scope": scope.as_dict(), "force": force})  # fmt: skip
        return RollbackRunner(self.journal, self.dest, run, scope, force=force, workers=workers, sink=self.sink,
                              reports_dir=self.project.reports_dir)  # fmt: skip

    def rollback_runner_for(self, run: Run) -> RollbackRunner:
        scope = RollbackScope.from_dict(run.options.get("scope") or {})
        return RollbackRunner(self.journal, self.dest, run, scope, force=bool(run.options.get("force")),
                              sink=self.sink, reports_dir=self.project.reports_dir)  # fmt: skip

    async def rollback(
        self, scope: RollbackScope, *, force: bool = False, steer: Callable[[RollbackRunner], None] | None = None
    ) -> RollbackResult:
        """Undo `scope`; call `rollback_preview` first and show it to the user. `steer` receives the runner (to
        pause or stop it) before it starts. The runner writes the report (so a rollback steered by the wizard,
        or resumed, has one too)."""
        runner = self.rollback_runner(scope, force=force)
        if steer is not None:
            steer(runner)
        summary, verification = await runner.execute()
        return RollbackResult(summary, verification, runner.preview, list(summary.reports))


async def _no_users() -> dict[str, str]:
    return {}


class SampleRunner:
    """A sample as one steerable run: undo the previous sample first (when asked), migrate the slice, then read
    every record back and diff it (kept in the project, written to reports/). `pause`, `resume` and `stop` reach
    whichever part is running; a stopped sample is carried on by `Engine.sample_runner(resume=run_id)`, which
    diffs it when it ends."""

    def __init__(self, engine: Engine, options: SampleOptions, run: Run | None = None) -> None:
        self.engine = engine
        self.options = options
        self.run = run  # the stopped sample run to carry on, if any
        self._current: Runner | RollbackRunner | None = None
        self._paused = False
        self._stopping = False

    def _follow(self, runner: Runner | RollbackRunner) -> None:
        self._current = runner
        if self._stopping:
            runner.stop()
        elif self._paused:
            runner.pause()

    def pause(self) -> None:
        self._paused = True
        if self._current is not None:
            self._current.pause()

    def resume(self) -> None:
        self._paused = False
        if self._current is not None:
            self._current.resume()

    def stop(self) -> None:
        self._stopping = True
        if self._current is not None:
            self._current.stop()

    async def execute(self) -> SampleResult:
        e = self.engine
        undone = None
        if self.run is None and self.options.rollback_previous:
            info = last_sample(e.project)
            if info.run is not None and info.undone_by is None:
                undone = await e.rollback(RollbackScope(ScopeKind.RUN, info.run.id), steer=self._follow)
                if undone.summary.status is not RunStatus.FINISHED or self._stopping:
                    # stopped (or failed) while undoing the previous sample: the new one has not started
                    return SampleResult(undone.summary, SampleSelection(()), DiffReport(undone.summary.run_id),
                                        [], undone)  # fmt: skip
        catalog = e._catalog()
        if self.run is not None:
            run = self.run
            patients = list(run.options.get("patients") or [])
            selection = select_sample(e.project.store, catalog, patients=patients)
            if e.durable:
                e.journal.durable()
            e.journal.set_run_status(run.id, RunStatus.RUNNING)
        else:
            options = self.options
            selection = select_sample(e.project.store, catalog, options.size, seed=options.seed,
                                      patients=options.patients)  # fmt: skip
            run = e._start(RunKind.SAMPLE, {"patients": list(selection.patients), "size": len(selection.patients),
                                            "named": selection.named})  # fmt: skip
        plan = e.plan(PlanScope(frozenset(selection.patients)), catalog)
        runner = Runner(e.journal, e.dest, run, plan, e._settings(RunOptions(workers=self.options.workers)), e.sink)
        self._follow(runner)
        summary = await runner.execute()
        self._current = None
        if summary.status is not RunStatus.FINISHED:
            return SampleResult(summary, selection, DiffReport(run.id), [], undone)
        diff, paths = await e._diff(run, plan, catalog, self.options.workers)
        summary.reports += paths
        return SampleResult(summary, selection, diff, paths, undone)


def _phases() -> tuple[Any, ...]:
    from cliniko2nutshell.engine.ops import PHASES

    return PHASES


# Reference data whose change alters the records of every patient: a delta then re-plans everything.
_GLOBAL_OBJECTS = ("appointment_types", "practitioners", "businesses", "billable_items", "products", "settings")


def changed_since(project: Project, catalog: Catalog, since: str) -> tuple[set[str], set[str], bool]:
    """Surviving patients and companies whose records were extracted at or after `since`; and whether
    reference data changed so that everything must be re-planned."""
    conn = project.store.conn
    marks = ", ".join("?" * len(_GLOBAL_OBJECTS))
    everything = (
        conn.execute(
            f"SELECT 1 FROM cliniko_records WHERE extracted_at >= ? AND object IN ({marks}) LIMIT 1",
            (since, *_GLOBAL_OBJECTS),
        ).fetchone()
        is not None
    )
    patients: set[str] = set()
    for (pid,) in conn.execute(
        "SELECT patient_id FROM cliniko_records WHERE extracted_at >= ? AND patient_id IS NOT NULL "
        "UNION SELECT id FROM cliniko_records WHERE extracted_at >= ? AND object = 'patients' "
        "UNION SELECT i.patient_id FROM cliniko_records it JOIN cliniko_records i ON i.object = 'invoices' "
        "AND i.id = it.invoice_id WHERE it.object = 'invoice_items' AND it.extracted_at >= ? "
        "UNION SELECT a.patient_id FROM cliniko_records g JOIN cliniko_records a ON a.object = 'attendees' "
        "AND a.booking_id = g.id WHERE g.object = 'group_appointments' AND g.extracted_at >= ?",
        (since, since, since, since),
    ):
        if pid:
            patients.add(pid)
            patients.add(catalog.survivor(pid))
    companies = {
        r[0] for r in conn.execute(
            "SELECT id FROM cliniko_records WHERE extracted_at >= ? AND object = 'contacts'", (since,))
    }  # fmt: skip
    return patients, companies, everything
