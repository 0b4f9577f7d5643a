"""The journey as data: the eleven steps of a migration and where a project stands on each, read from the project.

The wizard's step bar and the `projects` command read this; nothing here talks to a network or imports Textual.
A step is *done* (its result is in the project), *ready* (it can be taken now) or *not ready* (with the reason in
one line, e.g. "2 practitioners unresolved"). Which step the user is looking at is the UI's business; `landing`
is where reopening a project puts them: the first step that is ready and not done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cliniko2nutshell.engine.journal import Journal, Run, RunKind, RunStatus
from cliniko2nutshell.mapping.mapfile import MapError, load_map
from cliniko2nutshell.mapping.model import MigrationMap, PractitionerDecision
from cliniko2nutshell.mapping.practitioners import unresolved
from cliniko2nutshell.project.folder import Project, ProjectError, open_project
from cliniko2nutshell.project.secrets import Secret, Secrets
from cliniko2nutshell.project.store import Milestone, Store


class Step(StrEnum):
    PROJECT = "project"
    CONNECT = "connect"
    EXTRACT = "extract"
    PRACTITIONERS = "practitioners"
    MAP = "map"
    PREFLIGHT = "preflight"
    SAMPLE = "sample"
    RUN = "run"
    DELTA = "delta"
    RECONCILE = "reconcile"
    ROLLBACK = "rollback"

    @property
    def title(self) -> str:
        return TITLES[self]

    @property
    def number(self) -> int:
        return list(Step).index(self) + 1


TITLES = {
    Step.PROJECT: "Project",
    Step.CONNECT: "Connect",
    Step.EXTRACT: "Extract",
    Step.PRACTITIONERS: "Practitioners",
    Step.MAP: "Map",
    Step.PREFLIGHT: "Pre-flight",
    Step.SAMPLE: "Sample",
    Step.RUN: "Full run",
    Step.DELTA: "Delta",
    Step.RECONCILE: "Reconcile",
    Step.ROLLBACK: "Rollback",
}


class State(StrEnum):
    DONE = "done"
    READY = "ready"
    NOT_READY = "not ready"


@dataclass(frozen=True, slots=True)
class StepState:
    step: Step
    state: State
    reason: str = ""  # one line: why not ready, or what done/ready means here ("300 patients extracted")

    @property
    def reachable(self) -> bool:
        return self.state is not State.NOT_READY


@dataclass(frozen=True, slots=True)
class Journey:
    steps: dict[Step, StepState]
    map_version: int | None = None
    last_run: Run | None = None
    interrupted_run: Run | None = None  # a run that stopped part-way (crash, kill, error, pause): resumable
    notes: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, step: Step) -> StepState:
        return self.steps[step]

    @property
    def landing(self) -> Step:
        """Where reopening the project lands: an interrupted run first, else the first ready step not done."""
        if self.interrupted_run is not None:
            return (
                Step.ROLLBACK if self.interrupted_run.kind is RunKind.ROLLBACK else _RUN_STEP[self.interrupted_run.kind]
            )
        for step in Step:
            if self.steps[step].state is State.READY:
                return step
        return Step.RECONCILE

    @property
    def last_reached(self) -> Step:
        """The furthest step done (PROJECT when nothing else is)."""
        done = [s for s in Step if self.steps[s].state is State.DONE]
        return done[-1] if done else Step.PROJECT


_RUN_STEP = {
    RunKind.SAMPLE: Step.SAMPLE,
    RunKind.FULL: Step.RUN,
    RunKind.RETRY: Step.RUN,
    RunKind.DELTA: Step.DELTA,
    RunKind.ROLLBACK: Step.ROLLBACK,
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _practitioner_ids(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT id FROM cliniko_records WHERE object = 'practitioners'")]


def _load_map(project: Project) -> tuple[MigrationMap | None, str]:
    if not project.mapping_path.exists():
        return None, ""
    try:
        return load_map(project.mapping_path), ""
    except MapError as exc:
        return None, str(exc).splitlines()[0]


def journey(project: Project, secrets: Secrets | None = None) -> Journey:
    """Where `project` stands on every step. Reads the store, mapping.toml and (when given) the secrets."""
    store = project.store
    journal = Journal(store)
    steps: dict[Step, StepState] = {Step.PROJECT: StepState(Step.PROJECT, State.DONE, project.settings.name)}

    # -- connect -------------------------------------------------------------------------------------------
    connected: Milestone | None = store.milestone("connected")
    missing_keys = []
    if secrets is not None:
        missing_keys = [s for s in Secret if not secrets.get(s)]
        if Secret.NUTSHELL_USERNAME in missing_keys and project.settings.nutshell.username:
            missing_keys.remove(Secret.NUTSHELL_USERNAME)
    if connected is None:
        steps[Step.CONNECT] = StepState(Step.CONNECT, State.READY, "test both keys")
    elif missing_keys:
        steps[Step.CONNECT] = StepState(Step.CONNECT, State.READY, "keys not available in this session")
    else:
        account = connected.detail.get("cliniko_account") or "Cliniko"
        steps[Step.CONNECT] = StepState(Step.CONNECT, State.DONE, f"{account} → Nutshell")
    is_connected = steps[Step.CONNECT].state is State.DONE

    # -- extract -------------------------------------------------------------------------------------------
    last_extract = store.conn.execute("SELECT mode, completed_at FROM extract_runs ORDER BY id DESC LIMIT 1").fetchone()
    completed = store.conn.execute("SELECT 1 FROM extract_runs WHERE completed_at IS NOT NULL LIMIT 1").fetchone()
    patients = store.count_records("patients").get("patients", 0)
    if completed is not None:
        extract = StepState(Step.EXTRACT, State.DONE, f"{_plural(patients, 'patient')} extracted")
        if last_extract is not None and last_extract["completed_at"] is None:
            extract = StepState(Step.EXTRACT, State.DONE, "changes: interrupted, resume")
    elif last_extract is not None:
        extract = StepState(Step.EXTRACT, State.READY if is_connected else State.NOT_READY, "interrupted: resume")
    elif not is_connected:
        extract = StepState(Step.EXTRACT, State.NOT_READY, "connect first")
    else:
        extract = StepState(Step.EXTRACT, State.READY, "read everything from Cliniko")
    steps[Step.EXTRACT] = extract
    extracted = completed is not None

    # -- practitioners and map -----------------------------------------------------------------------------
    mapping, map_problem = _load_map(project)
    if not extracted:
        steps[Step.PRACTITIONERS] = StepState(Step.PRACTITIONERS, State.NOT_READY, "extract first")
    elif mapping is None:
        why = f"mapping.toml: {map_problem}" if map_problem else "match practitioners to users"
        steps[Step.PRACTITIONERS] = StepState(Step.PRACTITIONERS, State.READY, why)
    else:
        # The same rule the engine refuses to run by: every practitioner needs an owner in Nutshell.
        blocking = unresolved(mapping, _practitioner_ids(store))
        if blocking:
            reason = f"{_plural(len(blocking), 'practitioner')} unresolved"
            steps[Step.PRACTITIONERS] = StepState(Step.PRACTITIONERS, State.READY, reason)
        else:
            matched = sum(1 for c in mapping.practitioners.values() if c.decision is PractitionerDecision.MATCHED)
            steps[Step.PRACTITIONERS] = StepState(Step.PRACTITIONERS, State.DONE, f"{matched} matched")
    practitioners_done = steps[Step.PRACTITIONERS].state is State.DONE

    if not practitioners_done:
        steps[Step.MAP] = StepState(
            Step.MAP, State.NOT_READY, steps[Step.PRACTITIONERS].reason if extracted else "extract first"
        )
    elif mapping is not None and mapping.confirmed:
        steps[Step.MAP] = StepState(Step.MAP, State.DONE, f"version {mapping.version} confirmed")
    else:
        steps[Step.MAP] = StepState(Step.MAP, State.READY, "review and confirm")
    map_done = steps[Step.MAP].state is State.DONE
    version = mapping.version if mapping is not None else None

    # -- pre-flight ----------------------------------------------------------------------------------------
    preflight = store.milestone("preflight")
    current = preflight is not None and preflight.detail.get("map_version") == version
    blockers = int(preflight.detail.get("blockers", 0)) if current and preflight else 0
    if not map_done:
        steps[Step.PREFLIGHT] = StepState(Step.PREFLIGHT, State.NOT_READY, "confirm the map first")
    elif not current:
        steps[Step.PREFLIGHT] = StepState(Step.PREFLIGHT, State.READY, f"check map version {version}")
    elif blockers:
        steps[Step.PREFLIGHT] = StepState(Step.PREFLIGHT, State.READY, f"{_plural(blockers, 'blocker')} to resolve")
    else:
        warnings = int(preflight.detail.get("warnings", 0)) if preflight else 0
        steps[Step.PREFLIGHT] = StepState(Step.PREFLIGHT, State.DONE, f"ready, {_plural(warnings, 'warning')}")
    preflight_ok = steps[Step.PREFLIGHT].state is State.DONE

    def gate() -> str:
        if not map_done:
            return steps[Step.MAP].reason if steps[Step.MAP].state is State.NOT_READY else "confirm the map first"
        if blockers:
            first = (preflight.detail.get("blocker_lines") or [""])[0] if preflight else ""
            return f"pre-flight: {_plural(blockers, 'blocker')}" + (f" ({first})" if first else "")
        return "run the pre-flight first"

    # -- runs ----------------------------------------------------------------------------------------------
    runs = journal.runs()
    last_run = runs[-1] if runs else None
    interrupted = next(
        (r for r in reversed(runs) if r.status in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.INTERRUPTED)),
        None,
    )

    def last_finished(*kinds: RunKind) -> Run | None:
        return next((r for r in reversed(runs) if r.kind in kinds and r.status is RunStatus.FINISHED), None)

    sample = last_finished(RunKind.SAMPLE)
    full = last_finished(RunKind.FULL)
    if interrupted is not None and interrupted.kind is RunKind.SAMPLE:
        steps[Step.SAMPLE] = StepState(Step.SAMPLE, State.READY, "interrupted: resume")
    elif sample is not None and (sample.map_version == version or full is not None):
        steps[Step.SAMPLE] = StepState(Step.SAMPLE, State.DONE, f"sampled with map v{sample.map_version}")
    elif not preflight_ok:
        steps[Step.SAMPLE] = StepState(Step.SAMPLE, State.NOT_READY, gate())
    elif sample is not None:
        steps[Step.SAMPLE] = StepState(Step.SAMPLE, State.READY, f"map changed since v{sample.map_version}")
    else:
        steps[Step.SAMPLE] = StepState(Step.SAMPLE, State.READY, "try a slice first")

    if interrupted is not None and interrupted.kind in (RunKind.FULL, RunKind.RETRY):
        steps[Step.RUN] = StepState(Step.RUN, State.READY, f"run {interrupted.id} {interrupted.status.value}: resume")
    elif full is not None:
        steps[Step.RUN] = StepState(Step.RUN, State.DONE, f"run {full.id}: {full.outcome or 'finished'}")
    elif not preflight_ok:
        steps[Step.RUN] = StepState(Step.RUN, State.NOT_READY, gate())
    else:
        steps[Step.RUN] = StepState(Step.RUN, State.READY, "migrate everything")

    rolled_back_after_full = full is not None and any(
        r.kind is RunKind.ROLLBACK and r.status is RunStatus.FINISHED and r.id > full.id for r in runs
    )
    delta = last_finished(RunKind.DELTA)
    if interrupted is not None and interrupted.kind is RunKind.DELTA:
        steps[Step.DELTA] = StepState(Step.DELTA, State.READY, "interrupted: resume")
    elif full is None or rolled_back_after_full:
        steps[Step.DELTA] = StepState(Step.DELTA, State.NOT_READY, "after the full run")
    elif delta is not None and delta.id > full.id:
        steps[Step.DELTA] = StepState(Step.DELTA, State.DONE, f"last delta: run {delta.id}")
    else:
        steps[Step.DELTA] = StepState(Step.DELTA, State.READY, "pick up changes at cutover")

    reconciled = store.milestone("reconciled")
    if full is None:
        steps[Step.RECONCILE] = StepState(Step.RECONCILE, State.NOT_READY, "after the full run")
    elif reconciled is not None and last_run is not None and reconciled.detail.get("run_id") == last_run.id:
        balanced = reconciled.detail.get("balanced")
        steps[Step.RECONCILE] = StepState(Step.RECONCILE, State.DONE, "balanced" if balanced else "not balanced")
    else:
        steps[Step.RECONCILE] = StepState(Step.RECONCILE, State.READY, "compare both sides")

    migration_runs = [r for r in runs if r.kind is not RunKind.ROLLBACK]
    if interrupted is not None and interrupted.kind is RunKind.ROLLBACK:
        steps[Step.ROLLBACK] = StepState(Step.ROLLBACK, State.READY, "interrupted: resume")
    elif not migration_runs:
        steps[Step.ROLLBACK] = StepState(Step.ROLLBACK, State.NOT_READY, "nothing written yet")
    elif last_run is not None and last_run.kind is RunKind.ROLLBACK and last_run.status is RunStatus.FINISHED:
        steps[Step.ROLLBACK] = StepState(Step.ROLLBACK, State.DONE, f"run {last_run.id} rolled back")
    else:
        steps[Step.ROLLBACK] = StepState(Step.ROLLBACK, State.READY, "undo, if you must")

    return Journey(
        steps=steps,
        map_version=version,
        last_run=last_run,
        interrupted_run=interrupted,
        notes={"patients": patients, "clinic": (connected.detail.get("cliniko_account") if connected else None)},
    )


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """One line of the project list (`projects`, the wizard's picker)."""

    name: str
    path: Path
    created_at: str
    clinic: str | None = None  # the Cliniko account name, once connected
    last_step: Step | None = None
    last_run: str | None = None  # "full run 3: partial"
    interrupted: str | None = None  # "run 3 interrupted: resume it"
    problem: str | None = None  # why the project could not be read


def project_summary(path: Path) -> ProjectSummary:
    """A project's clinic, last step reached and last run's outcome, read without taking its lock."""
    try:
        project = open_project(path, write=False)
    except ProjectError as exc:
        return ProjectSummary(path.name, path, "", problem=str(exc))
    with project:
        try:
            state = journey(project)
        except Exception as exc:  # a damaged migration.db (any sqlite or store error) must not hide the others
            return ProjectSummary(project.settings.name, path, project.settings.created_at, problem=str(exc))
    run = state.last_run
    last = None
    if run is not None:
        last = f"{run.kind.value} run {run.id}: {run.outcome.value if run.outcome else run.status.value}"
    interrupted = None
    if state.interrupted_run is not None:
        r = state.interrupted_run
        interrupted = f"{r.kind.value} run {r.id} {r.status.value}: resume it"
    return ProjectSummary(
        project.settings.name,
        path,
        project.settings.created_at,
        clinic=state.notes.get("clinic"),
        last_step=state.last_reached,
        last_run=last,
        interrupted=interrupted,
    )


# Where each kind of pre-flight problem is fixed (the wizard's "go and fix it" jump; the CLI names the step).
_FIXED_AT = {
    "practitioner_unresolved": Step.PRACTITIONERS,
    "custom_field_missing": Step.MAP,
    "custom_field_wrong_type": Step.MAP,
    "custom_field_cap": Step.MAP,
    "custom_field_choices": Step.MAP,
    "activity_type_missing": Step.MAP,
    "open_decision": Step.MAP,
    "existing_person": Step.MAP,
    "duplicate_email": Step.MAP,
    "contact_limit": Step.CONNECT,
    "invalid_email": Step.EXTRACT,
    "no_usable_name": Step.EXTRACT,
    "invalid_record": Step.EXTRACT,
    "file_too_large": Step.EXTRACT,
    "file_not_downloaded": Step.EXTRACT,
    "attachment_not_ready": Step.EXTRACT,
}


def fix_step(problem_kind: str) -> Step:
    """The step where a pre-flight problem of this kind is resolved (data problems: fix them in Cliniko, then
    extract the changes)."""
    return _FIXED_AT.get(problem_kind, Step.MAP)
