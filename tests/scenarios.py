"""What the fault scenarios and the random kills share: a world (a project, the two sandboxes on a fresh copy of
a small clinic), the journey's phases run the way a user runs them (the same step again until it finishes),
clean reference states, and the invariants checked against the Nutshell sandbox's state dump.

The invariants, per phase: every record of the clean run is in Nutshell exactly once with the same content, or
quarantined with a reason (never silently missing: "lost"); nothing is there twice ("duplicated"); nothing is
there that a clean run would not have written; apart from the records the scenario itself changed (edited by
someone else, in either service), which are named and checked on their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.cliniko.errors import ClinikoError
from cliniko2nutshell.cliniko.extract import extract
from cliniko2nutshell.engine.api import Engine, EngineError
from cliniko2nutshell.engine.journal import Journal, RunStatus
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD
from cliniko2nutshell.engine.rollback import RollbackScope
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.errors import NutshellError
from cliniko2nutshell.project import create_project, open_project
from cliniko2nutshell.retry import RetryPolicy
from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.knobs import Knobs
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, start_nutshell_sandbox
from tests.test_migration_e2e import Template, _cliniko_changes, _make_template, canonical, differences, dump

# Retries as the real policy does them, scaled down: a one-second timeout (the "slow" fault stalls longer),
# waits of tens of milliseconds instead of seconds.
FAST = RetryPolicy(attempts=6, base=0.05, cap=0.4, timeout=httpx.Timeout(1.0, connect=1.0))
MAX_TRIES = 8  # times a user runs the same step again before the scenario counts as failed


# -- a world ---------------------------------------------------------------------------------------------------------


@dataclass
class World:
    project: Path
    clinic: Path
    cliniko: ClinikoSandbox
    nutshell: NutshellSandbox
    template: Template

    def stop(self) -> None:
        self.nutshell.stop()
        self.cliniko.stop()

    def knobs(self, service: str, **values: Any) -> None:
        """Change the knobs of "cliniko", "nutshell" or "both" (over their control endpoint, as a tester would)."""
        for name in ("cliniko", "nutshell") if service == "both" else (service,):
            knobs: Knobs = getattr(self, name).knobs
            knobs.update(values)

    def quiet(self) -> dict[str, dict[str, Any]]:
        """Switch every fault off (the test's own calls must not meet them); returns what to switch back on."""
        saved = {}
        for name in ("cliniko", "nutshell"):
            knobs: Knobs = getattr(self, name).knobs
            saved[name] = {k: knobs.public()[k] for k in FAULT_KNOBS}
            knobs.update(QUIET)
        return saved

    def restore(self, saved: dict[str, dict[str, Any]]) -> None:
        for name, values in saved.items():
            getattr(self, name).knobs.update(values)


QUIET: dict[str, Any] = {"fault_rate": 0.0, "fail_next": [], "storm_every": 0, "revoke_after": None,
                         "revoked": False, "edit_every": 0}  # fmt: skip
FAULT_KNOBS = tuple(QUIET)


def make_world(
    template: Template,
    where: Path,
    *,
    file_size_limit: int | None = None,
    custom_field_cap: int | None = None,
    mapping: str | None = None,
) -> World:
    """A new project (not extracted yet, the template's confirmed map in place, or `mapping`) and both
    sandboxes."""
    project = create_project("scenario", path=where / "project")
    project.close()
    if mapping is None:
        shutil.copyfile(template.project / "mapping.toml", where / "project" / "mapping.toml")
    else:
        (where / "project" / "mapping.toml").write_text(mapping, encoding="utf-8")
    clinic = where / "clinic.db"
    shutil.copyfile(template.clinic, clinic)
    cliniko = start_cliniko_sandbox(clinic, rate_limit=None)
    kwargs: dict[str, Any] = {"custom_field_cap": custom_field_cap}
    if file_size_limit is not None:
        kwargs["file_size_limit"] = file_size_limit
    try:
        nutshell = start_nutshell_sandbox(template.seed, **kwargs)
    except BaseException:
        cliniko.stop()
        raise
    # The endpoints a user gives once with --cliniko-url / --nutshell-url, so the commands need no flags.
    project = open_project(where / "project", command="scenario")
    try:
        project.settings.cliniko.base_url = cliniko.base_url
        project.settings.nutshell.base_url = nutshell.rest_url
        project.save_settings()
    finally:
        project.close()
    return World(where / "project", clinic, cliniko, nutshell, template)


# -- the commands a user types ----------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def cli_env(world: World, home: Path) -> dict[str, str]:
    """A user's environment: no keychain on this machine, so the keys come from the environment."""
    return {
        **os.environ,
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "CLINIKO_API_KEY": world.cliniko.api_key,
        "NUTSHELL_USERNAME": world.nutshell.username,
        "NUTSHELL_API_KEY": world.nutshell.api_key,
        "PYTHONPATH": str(REPO),
    }


def command(world: World, *args: str) -> list[str]:
    return [sys.executable, "-m", "cliniko2nutshell", args[0], "--project", str(world.project), *args[1:]]


def cli(world: World, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(world, *args), env=env, capture_output=True, text=True, timeout=300)


def disk_full_after(limit: int) -> Callable[[], None]:
    """For subprocess's preexec_fn: the command cannot grow any file past `limit` bytes; its writes then fail
    (EFBIG; SQLite reports an I/O error) as they would on a full disk, without the signal that would kill it."""

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@dataclass
class Kill:
    """SIGKILL the command's process when the `service` sandbox sees its `at`-th request since arming: as the
    request arrives (the sandbox still carries it out, as a server does for a client that died) or as its
    answer starts (the work done, the answer never read)."""

    service: str  # cliniko | nutshell
    at: int
    when: str  # arrival | answer

    def describe(self) -> str:
        return f"{self.service} request {self.at}, at its {self.when}"


def killed(world: World, env: dict[str, str], kill: Kill, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command and SIGKILL it at the moment `kill` names; returns the finished process."""
    knobs: Knobs = getattr(world, kill.service).knobs
    target = knobs.requests + kill.at
    holder: dict[str, int] = {}

    def hook(n: int) -> None:
        if n == target and "pid" in holder:
            os.kill(holder.pop("pid"), signal.SIGKILL)

    proc = subprocess.Popen(command(world, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    holder["pid"] = proc.pid
    if kill.when == "arrival":
        knobs._on_request = hook
    else:
        knobs._on_answer = hook
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        knobs._on_request = knobs._on_answer = None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def until_finished(world: World, env: dict[str, str], *args: str, tries: int = 4) -> subprocess.CompletedProcess[str]:
    """The same command again until it finishes (exit 0, or 3: finished with records quarantined)."""
    for _ in range(tries):
        done = cli(world, env, *args)
        if done.returncode in (0, 3):
            return done
    raise AssertionError(f"{args[0]} did not finish: {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


# -- the steps, run as a user runs them ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    tries: int = 0
    stops: list[str] = field(default_factory=list)  # why each try before the last one did not finish
    result: Any = None

    def ended(self) -> str:
        outcome = getattr(self.result, "outcome", None)
        how = f"finished ({outcome.value})" if outcome is not None else "finished"
        if not self.stops:
            return how
        return f"{how} after {len(self.stops)} stop(s), first: {self.stops[0]}"


def _nutshell_client(ns: NutshellSandbox) -> NutshellClient:
    return NutshellClient(ns.username, ns.api_key, ns.rest_url, policy=FAST, read_revs=False)


async def _extract(world: World, incremental: bool) -> Any:
    from cliniko2nutshell.cliniko.extract import ExtractOptions

    project = open_project(world.project, command="scenario extract")
    try:
        async with ClinikoClient(world.cliniko.api_key, base_url=world.cliniko.base_url, rate_limit=100_000,
                                 retry=FAST) as client:  # fmt: skip
            return await extract(project, client, ExtractOptions(incremental=incremental))
    finally:
        project.close()


async def _engine(world: World, action: str, **kw: Any) -> Any:
    project = open_project(world.project, command=f"scenario {action}")
    try:
        async with _nutshell_client(world.nutshell) as client:
            engine = await Engine.connect(project, client)
            engine.durable = False
            if action == "fields":
                return await engine.ensure_custom_fields(client)
            if action == "full":
                return await engine.full()
            if action == "resume":
                return await engine.resume()
            if action == "delta":
                cl = world.cliniko
                async with ClinikoClient(cl.api_key, base_url=cl.base_url, rate_limit=100_000, retry=FAST) as cliniko:
                    return await engine.delta(cliniko)
            if action == "rollback":
                return await engine.rollback(RollbackScope())
            if action == "reconcile":
                return await engine.reconcile()
            raise ValueError(action)
    finally:
        project.close()


def extract_phase(world: World, *, incremental: bool = False, between: Callable[[int], None] | None = None) -> Phase:
    """Extract until the summary has nothing left to fetch (a user runs `extract` again when it says so)."""
    phase = Phase("extract")
    while phase.tries < MAX_TRIES:
        phase.tries += 1
        try:
            summary = asyncio.run(_extract(world, incremental))
        except ClinikoError as exc:
            phase.stops.append(str(exc))
        else:
            left = {**summary.unavailable, **summary.attachments_failed}
            if not left:
                phase.result = summary
                return phase
            phase.stops.append(f"{len(left)} object(s) or file(s) not fetched: {next(iter(left.values()))}")
        if between is not None:
            between(phase.tries)
    raise AssertionError(f"extraction never finished: {phase.stops}")


def engine_phase(
    world: World, name: str, first: str, then: str, *, between: Callable[[int], None] | None = None, **kw: Any
) -> Phase:
    """Run `first`, then `then` while it stops, until the run finishes (EngineError is a bug: raised)."""
    phase = Phase(name)
    action = first
    while phase.tries < MAX_TRIES:
        phase.tries += 1
        try:
            result = asyncio.run(_engine(world, action, **kw))
        except (NutshellError, ClinikoError) as exc:
            phase.stops.append(str(exc))
        except EngineError as exc:
            if "nothing to resume" not in str(exc):
                raise
            phase.stops.append(str(exc))
        else:
            failures = getattr(result, "failures", None)  # `fields`: definitions not created (the user reruns it)
            if failures:
                phase.stops.append(f"{len(failures)} custom field(s) not created: {failures[0].reason}")
                action = then
                if between is not None:
                    between(phase.tries)
                continue
            summary = getattr(result, "summary", result)
            status = getattr(summary, "status", RunStatus.FINISHED)
            if status is RunStatus.FINISHED:
                phase.result = result
                return phase
            phase.stops.append(summary.message or status.value)
        action = then
        if between is not None:
            between(phase.tries)
    raise AssertionError(f"{name} never finished: {phase.stops}")


def cliniko_changes(world: World) -> dict[str, str]:
    """The changes made in Cliniko between the full run and the delta (faults off for the test's own calls)."""
    saved = world.quiet()
    try:
        return _cliniko_changes(world.cliniko, world.project)
    finally:
        world.restore(saved)


# -- reading the outcome ---------------------------------------------------------------------------------------------


def record_of(kind: str, mark: str) -> tuple[str, str] | None:
    """The (object, Cliniko id) a canonical marker stands for; None for what was in Nutshell before us."""
    if mark.startswith("seed:"):
        return None
    if kind == "contacts":
        return ("person", mark.split(":", 1)[1])
    if kind == "files":
        host = mark.split("/", 1)[0].removeprefix("log:")
        obj, _, sid = host.partition(":")
        return (obj.replace("_activity", "_file"), sid)
    if kind == "notes" and mark.startswith("log:"):
        return record_of("activities", mark[4:])
    obj, _, sid = mark.partition(":")
    return (obj, sid)


def rename(state: dict[str, dict[str, list[Any]]], names: dict[str, str]) -> dict[str, dict[str, list[Any]]]:
    """Ids renamed everywhere, markers and content (a record created in Cliniko gets a random id; both sides
    call it by one name)."""
    text = json.dumps(state)
    for old, new in names.items():
        text = text.replace(old, new)
    # The cancellation made in Cliniko is stamped with the sandbox's clock, a different minute in each world.
    text = re.sub(r"Cancelled on \d{4}-\d\d-\d\d \d\d:\d\d", "Cancelled on (when)", text)
    return json.loads(text)


@dataclass
class Tally:
    """One phase's outcome against the clean run's state."""

    attempted: int = 0  # records the clean run holds in Nutshell (ours, not what was there before)
    migrated: int = 0  # of those, in Nutshell now
    quarantined: int = 0  # of those, missing and quarantined with a reason
    duplicated: int = 0  # records in Nutshell more often than in the clean run
    lost: int = 0  # missing and not quarantined
    changed: int = 0  # records the scenario itself changed (checked on their own)
    problems: list[str] = field(default_factory=list)

    def row(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("attempted", "migrated", "quarantined", "duplicated", "lost")}


def compare(
    got: dict[str, dict[str, list[Any]]],
    want: dict[str, dict[str, list[Any]]],
    quarantined: dict[tuple[str, str], str],
    changed: set[str] = frozenset(),  # type: ignore[assignment]
) -> Tally:
    """`got` against `want` (canonical states), marker by marker. A record missing because it is quarantined
    is not expected in the lists that would name it either (a log note's files)."""
    tally = Tally()
    held_files = {m for m, v in want.get("files", {}).items() if v and not got.get("files", {}).get(m)
                  and record_of("files", m) in quarantined}  # fmt: skip
    if held_files:
        notes = {m: [{**n, "files": [f for f in n.get("files", []) if f not in held_files]} for n in v]
                 for m, v in want.get("notes", {}).items()}  # fmt: skip
        want = {**want, "notes": notes}
    for kind in sorted(set(got) | set(want)):
        g, w = got.get(kind, {}), want.get(kind, {})
        for mark in sorted(set(g) | set(w)):
            key = record_of(kind, mark)
            have, should = g.get(mark, []), w.get(mark, [])
            if key is not None and should:
                tally.attempted += 1
            if len(have) > max(1, len(should)):
                tally.duplicated += 1
                tally.problems.append(f"{kind} {mark}: {len(have)} times in Nutshell")
            if mark in changed:
                tally.changed += 1
                tally.migrated += bool(have and key)
                continue
            if should and not have:
                if key is not None and key in quarantined:
                    if not quarantined[key].strip():
                        tally.problems.append(f"{kind} {mark}: quarantined without a reason")
                    tally.quarantined += 1
                else:
                    tally.lost += 1
                    tally.problems.append(f"{kind} {mark}: missing, not quarantined")
                continue
            if have and not should:
                tally.problems.append(f"{kind} {mark}: in Nutshell, not in the clean run")
                continue
            if key is not None and have:
                tally.migrated += 1
            if have[:1] != should[:1]:
                tally.problems += differences({kind: {mark: have[:1]}}, {kind: {mark: should[:1]}})
    return tally


def quarantine_of(world: World) -> dict[tuple[str, str], str]:
    project = open_project(world.project, write=False)
    try:
        return {(q.object, q.source_id): q.reason for q in Journal(project.store).quarantine_list()}
    finally:
        project.close()


def people_marks(state: dict[str, Any], rest_ids: list[str]) -> set[str]:
    """The canonical markers of the people with these REST ids (the ones someone else edited)."""
    wanted = {int(r.split("-")[0]) for r in rest_ids}
    out = set()
    for c in state["live"]["contacts"] + state["trash"]["contacts"]:
        if c["id"] in wanted:
            pid = (c.get("custom") or {}).get(PATIENT_ID_FIELD)
            out.add(f"person:{pid}" if pid else "seed:" + ",".join(sorted(e["value"] for e in c.get("emails") or [])))
    return out


def late_copies(world: World) -> int:
    """Late copies the runs found and deleted (journal rows marked `duplicate_of`)."""
    project = open_project(world.project, write=False)
    try:
        return sum(1 for e in Journal(project.store).entries() if (e.pre_image or {}).get("duplicate_of"))
    finally:
        project.close()


# -- the journey under faults (test_fault_scenarios_*.py) ---------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    both: dict[str, Any] = field(default_factory=dict)  # knobs of both sandboxes, every step
    cliniko: dict[str, Any] = field(default_factory=dict)  # knobs of the Cliniko sandbox, every step
    nutshell: dict[str, Any] = field(default_factory=dict)
    extract_only: dict[str, Any] = field(default_factory=dict)  # Cliniko knobs during the first extraction only
    writes_only: dict[str, Any] = field(default_factory=dict)  # Nutshell knobs during the full run and the delta
    revoke: bool = False  # the Nutshell key stops working half-way through each step; the admin puts it right
    file_size_limit: int | None = None
    custom_field_cap: int | None = None


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, small_clinic_db: Path) -> Template:
    return _make_template(tmp_path_factory.mktemp("small"), small_clinic_db)


@dataclass
class Reference:
    pristine: dict[str, Any]
    full: dict[str, Any]
    delta: dict[str, Any]


@pytest.fixture(scope="module")
def clean(small: Template, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The journey without faults: what every faulted one must end as, step by step."""
    world = make_world(small, tmp_path_factory.mktemp("clean"))
    try:
        pristine = canonical(dump(world.nutshell))
        extract_phase(world)
        engine_phase(world, "fields", "fields", "fields")
        engine_phase(world, "full", "full", "resume")
        full = canonical(dump(world.nutshell))
        changes = cliniko_changes(world)
        engine_phase(world, "delta", "delta", "delta")
        delta = rename(canonical(dump(world.nutshell)), {changes["booked"]: "BOOKED"})
        return Reference(pristine, full, delta)
    finally:
        world.stop()


def revoker(world: World) -> tuple[Any, Any]:
    """Knobs that revoke the Nutshell key some requests into a step, and the admin's fix between tries."""

    def arm(after: int) -> None:
        world.knobs("nutshell", revoked=False, revoke_after=world.nutshell.knobs.requests + after)

    def fix(_try: int) -> None:
        world.knobs("nutshell", revoked=False, revoke_after=None)

    return arm, fix


def journey_under_faults(scenario: Scenario, small: Template, clean: Reference, tmp_path: Path) -> None:
    """The whole journey in a world with the scenario's faults, checked step by step against the clean one."""
    world = make_world(small, tmp_path, file_size_limit=scenario.file_size_limit,
                       custom_field_cap=scenario.custom_field_cap)  # fmt: skip
    rows: dict[str, Any] = {}
    try:
        for service, values in (("both", scenario.both), ("cliniko", scenario.cliniko),
                                ("nutshell", scenario.nutshell), ("cliniko", scenario.extract_only)):  # fmt: skip
            if values:
                world.knobs(service, **values)
        arm, fix = revoker(world)

        extracted = extract_phase(world)
        cliniko_edited = list(world.cliniko.knobs.edited)
        if scenario.extract_only:
            world.knobs("cliniko", edit_every=0)
            assert cliniko_edited, "the scenario edits Cliniko while the extraction reads it"
        rows["extract"] = extracted.ended()

        def admin_makes_room(_try: int) -> None:  # the clinic deletes unused custom fields or upgrades its plan
            world.nutshell.state.custom_field_cap = None

        fields = engine_phase(world, "fields", "fields", "fields", between=admin_makes_room)
        if scenario.custom_field_cap is not None:
            assert fields.stops and f"plan allows {scenario.custom_field_cap} custom fields" in fields.stops[0]
        rows["fields"] = fields.ended()
        if scenario.writes_only:
            world.knobs("nutshell", **scenario.writes_only)
        if scenario.revoke:
            arm(120)
        full = engine_phase(world, "full", "full", "resume", between=fix)
        after_full = dump(world.nutshell)
        edited_people = people_marks(after_full, world.nutshell.knobs.edited)
        changed = edited_people | _patient_marks(cliniko_edited)
        held = quarantine_of(world)
        tally = compare(canonical(after_full), clean.full, held, changed)
        assert tally.problems == [] and tally.lost == 0 and tally.duplicated == 0, (tally.problems[:20], held)
        rows["full"] = full.ended()
        rows["table"] = tally.row()
        _check_reasons(world, scenario)

        changes = cliniko_changes(world)
        if scenario.revoke:
            arm(10)
        delta = engine_phase(world, "delta", "delta", "delta", between=fix)
        after_delta = dump(world.nutshell)
        edited_people = people_marks(after_delta, world.nutshell.knobs.edited)
        changed = edited_people | _patient_marks(cliniko_edited)
        got = rename(canonical(after_delta), {changes["booked"]: "BOOKED"})
        tally = compare(got, clean.delta, quarantine_of(world), changed)
        assert tally.problems == [] and tally.lost == 0 and tally.duplicated == 0, tally.problems[:20]
        for pid in cliniko_edited:  # the edits the extraction may have missed arrived with the delta
            person = got["contacts"].get(f"person:{pid}", [])
            if person and f"person:{pid}" not in edited_people:
                occupation = _occupation(world, pid)
                assert occupation and occupation in (person[0].get("description") or ""), (pid, occupation)
        rows["delta"] = delta.ended()
        rows["delta_table"] = tally.row()

        world.knobs("nutshell", edit_every=0)
        if scenario.revoke:
            arm(60)
        undone = engine_phase(world, "rollback", "rollback", "rollback", between=fix)
        left = canonical(dump(world.nutshell))
        tally = compare(left, clean.pristine, {}, edited_people)
        assert tally.problems == [] and tally.lost == 0 and tally.duplicated == 0, tally.problems[:20]
        for mark in edited_people:  # edited by someone else since we wrote them: left in place, reported
            assert len(left["contacts"].get(mark, [])) == 1, mark
        assert undone.result.verification.ok, undone.result.verification
        rows["rollback"] = undone.ended()
        rows["rollback_counts"] = {k: c.as_dict() for k, c in undone.result.summary.counts.items()}
        rows["quarantine"] = sorted({f"{k[0]}: {v}" for k, v in quarantine_of(world).items()})
        rows["late_copies_deleted"] = late_copies(world)
    finally:
        world.stop()
        _record(scenario.name, rows)


def _patient_marks(pids: list[str]) -> set[str]:
    """What an edit of a patient in Cliniko changes in Nutshell: the person, and the note dated by the patient."""
    return {f"{kind}:{pid}" for pid in pids for kind in ("person", "patient_note")}


def _check_reasons(world: World, scenario: Scenario) -> None:
    """Every quarantined record has a reason; the scenarios that refuse records say why in plain words."""
    held = quarantine_of(world)
    assert all(reason.strip() for reason in held.values())
    if scenario.file_size_limit is not None:
        files = [r for (obj, _), r in held.items() if obj == "attachment_file"]
        assert any("too large" in r.lower() for r in files), files
        assert all("too large" in r.lower() or "processing" in r for r in files), files  # and the planted one


def _occupation(world: World, pid: str) -> str | None:
    """The patient's occupation as the Cliniko sandbox holds it now."""
    conn = sqlite3.connect(world.clinic)
    try:
        row = conn.execute("SELECT body FROM records WHERE resource = 'patients' AND id = ?", (pid,)).fetchone()
    finally:
        conn.close()
    return json.loads(row[0]).get("occupation") if row else None


def _record(name: str, rows: dict[str, Any]) -> None:
    target = os.environ.get("C2N_SCENARIO_TABLE")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"scenario": name, **rows}) + "\n")


# -- random kills (test_random_kills_*.py) -------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A world saved just before a step: the project folder, the clinic and the Nutshell account."""

    project: Path
    clinic: Path
    nutshell: dict[str, Any]  # NutshellState.snapshot()


@dataclass
class Counted:
    """The journey through the commands, undisturbed: its states, how many requests each step sends, and the
    world just before each step (so a kill test starts there instead of walking the journey again)."""

    pristine: dict[str, Any]
    extracted: dict[tuple[str, str], str]
    full: dict[str, Any]
    delta: dict[str, Any]
    requests: dict[str, dict[str, int]]  # step -> service -> requests
    before: dict[str, Checkpoint]


def store_records(world: World) -> dict[tuple[str, str], str]:
    """What an extraction left in the store: every record's JSON (links to the sandbox's own port made alike),
    and each downloaded file's sha256."""
    conn = sqlite3.connect(f"file:{world.project / 'migration.db'}?mode=ro", uri=True)
    port = re.compile(r"http://127\.0\.0\.1:\d+")
    try:
        rows = conn.execute("SELECT object, id, raw FROM cliniko_records")
        out = {(r[0], r[1]): port.sub("http://sandbox", r[2]) for r in rows}
        out |= {("file", r[0]): r[1] for r in conn.execute("SELECT attachment_id, sha256 FROM attachment_files")}
        return out
    finally:
        conn.close()


def save_checkpoint(world: World, where: Path) -> Checkpoint:
    where.mkdir(parents=True)
    shutil.copytree(world.project, where / "project", ignore=shutil.ignore_patterns(".lock"))
    shutil.copyfile(world.clinic, where / "clinic.db")
    return Checkpoint(where / "project", where / "clinic.db", world.nutshell.state.snapshot())


def world_at(template: Template, checkpoint: Checkpoint, where: Path) -> World:
    """A world restored from a checkpoint: copies of its project and clinic, its Nutshell account, new servers."""
    shutil.copytree(checkpoint.project, where / "project")
    shutil.copyfile(checkpoint.clinic, where / "clinic.db")
    cliniko = start_cliniko_sandbox(where / "clinic.db", rate_limit=None)
    try:
        nutshell = start_nutshell_sandbox(template.seed)
        nutshell.state.restore(checkpoint.nutshell)
    except BaseException:
        cliniko.stop()
        raise
    project = open_project(where / "project", command="scenario")
    try:
        project.settings.cliniko.base_url = cliniko.base_url
        project.settings.nutshell.base_url = nutshell.rest_url
        project.save_settings()
    finally:
        project.close()
    return World(where / "project", where / "clinic.db", cliniko, nutshell, template)


@pytest.fixture(scope="module")
def counted(small: Template, tmp_path_factory: pytest.TempPathFactory) -> Counted:
    root = tmp_path_factory.mktemp("counted")
    world = make_world(small, root)
    (world.project / "mapping.toml").unlink()  # the map is made the way a user makes it, below
    env = cli_env(world, root)
    steps: dict[str, dict[str, int]] = {}
    before: dict[str, Checkpoint] = {}

    def step(name: str, *args: str) -> None:
        if name in STEP_COMMANDS:
            before[name] = save_checkpoint(world, root / f"before-{name}")
        start = {s: getattr(world, s).knobs.requests for s in ("cliniko", "nutshell")}
        done = cli(world, env, *args)
        assert done.returncode in (0, 3), f"{args}: {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        steps[name] = {s: getattr(world, s).knobs.requests - n for s, n in start.items()}

    try:
        pristine = canonical(dump(world.nutshell))
        step("extract", *STEP_COMMANDS["extract"])
        extracted = store_records(world)
        step("map", "map", "--accept-suggestions", "--fallback-owner", "1-users", "--confirm")
        step("fields", "fields", "--create", "--yes")
        step("full", *STEP_COMMANDS["full"])
        full = canonical(dump(world.nutshell))
        before["delta"] = save_checkpoint(world, root / "before-delta")  # before the changes in Cliniko
        changes = cliniko_changes(world)
        start = {s: getattr(world, s).knobs.requests for s in ("cliniko", "nutshell")}
        done = cli(world, env, *STEP_COMMANDS["delta"])
        assert done.returncode in (0, 3), done.stdout[-2000:] + done.stderr[-2000:]
        steps["delta"] = {s: getattr(world, s).knobs.requests - n for s, n in start.items()}
        delta = rename(canonical(dump(world.nutshell)), {changes["booked"]: "BOOKED"})
        step("rollback", *STEP_COMMANDS["rollback"])
        assert compare(canonical(dump(world.nutshell)), pristine, {}).problems == []
        return Counted(pristine, extracted, full, delta, steps, before)
    finally:
        world.stop()


STEP_COMMANDS = {
    "extract": ("extract",),
    "full": ("run", "--yes"),
    "delta": ("delta", "--yes"),
    "rollback": ("rollback", "--yes"),
}
# What a user types after the kill, in order of preference: a command exiting 2 ("nothing to resume": the kill
# came before the run began) gives way to the next; one exiting 1 is typed again.
RECOVERY = {
    "extract": [("extract",)],
    "full": [("run", "--resume", "--yes"), ("run", "--yes")],
    "full-again": [("run", "--yes")],
    "delta": [("delta", "--yes")],
    "rollback": [("rollback", "--yes")],
    "rollback-resume": [("run", "--resume", "--yes"), ("rollback", "--yes")],
}


def draw_kill(counted: Counted, step: str, index: int, seed: int) -> Kill:
    """A moment drawn (seeded) from the requests the step sends undisturbed: which request, and whether the
    process dies as it arrives or as its answer starts. A step that talks to both services (the delta reads
    Cliniko, then writes to Nutshell) has its moments alternate between the two."""
    rng = random.Random(f"{seed}-{step}-{index}")
    services = sorted(s for s, n in counted.requests[step].items() if n > 0)
    service = services[index % len(services)]
    count = counted.requests[step][service]
    return Kill(service, rng.randint(1, max(1, int(count * 0.9))), rng.choice(["arrival", "answer"]))


def recover(world: World, env: dict[str, str], plan: list[tuple[str, ...]]) -> list[str]:
    """Type the recovery commands until one finishes; returns what was typed."""
    typed: list[str] = []
    for args in plan:
        for _ in range(3):
            typed.append(" ".join(args))
            done = cli(world, env, *args)
            if done.returncode in (0, 3):
                return typed
            if done.returncode == 2:
                break
    raise AssertionError(f"no recovery finished after {typed}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def kill_and_resume(counted: Counted, small: Template, where: Path, step: str, index: int, seed: int) -> dict:
    """Start from the world just before `step`, run the step's command and kill it at a drawn moment, recover
    as a user would, and check the outcome against the undisturbed journey. Returns what happened."""
    from cliniko2nutshell.project.integrity import verify_project

    world = world_at(small, counted.before[step], where)
    env = cli_env(world, where)
    kill = draw_kill(counted, step, index, seed)
    try:
        changes = cliniko_changes(world) if step == "delta" else {}
        died = killed(world, env, kill, *STEP_COMMANDS[step])
        assert died.returncode == -signal.SIGKILL, f"not killed at {kill.describe()}: {died.stderr[-2000:]}"
        plan = RECOVERY[step]
        if step == "full" and index % 2:
            plan = RECOVERY["full-again"]
        if step == "rollback" and index % 2:
            plan = RECOVERY["rollback-resume"]
        typed = recover(world, env, plan)
        state = canonical(dump(world.nutshell))
        held = quarantine_of(world)
        if step == "extract":
            got = store_records(world)
            differ = sorted(k for k in set(got) | set(counted.extracted) if got.get(k) != counted.extracted.get(k))
            assert differ == [], [(k, got.get(k, "")[:300], counted.extracted.get(k, "")[:300]) for k in differ[:5]]
            tally = Tally()
        elif step == "full":
            tally = compare(state, counted.full, held)
        elif step == "delta":
            tally = compare(rename(state, {changes["booked"]: "BOOKED"}), counted.delta, held)
        else:
            tally = compare(state, counted.pristine, held)
            # attempted: our records before the rollback; migrated: those undone (not in Nutshell any more)
            ours = {(k, m) for k, marks in counted.delta.items() for m in marks if record_of(k, m) is not None}
            tally.attempted = len(ours)
            tally.migrated = sum(1 for k, m in ours if not state.get(k, {}).get(m))
        assert tally.problems == [] and tally.lost == 0 and tally.duplicated == 0, tally.problems[:20]
        report = verify_project(world.project)
        assert report.ok and not report.warnings, report.describe()
        if step in ("full", "delta"):
            rec = engine_phase(world, "reconcile", "reconcile", "reconcile").result.reconciliation
            assert rec.balanced and not rec.missing and not rec.duplicates, rec.as_dict()
        return {"step": step, "kill": kill.describe(), "typed": typed, **tally.row()}
    finally:
        world.stop()
