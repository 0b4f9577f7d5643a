"""A sandbox clinic and projects at every stage of the journey, for the wizard's tests and its screenshots.

A `World` serves one small synthetic clinic (both sandboxes on 127.0.0.1) and builds projects at a named stage
by doing, over real HTTP, what a user would have done before it: connect, extract, decide the map, create the
custom fields, pre-flight, sample, run... Each stage gets a Nutshell sandbox of its own (`stage()` returns the
project folder and the sandbox), because later screens read Nutshell live.

Snapshots must not change from run to run: the stage builders set every time the store records to a fixed
moment (`freeze_times`), projects live under a fixed name below a temporary HOME (shown as ~/...), and keys sit
in an in-memory keyring. Nothing here imports pytest: `tests/screenshots.py` uses it too.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.cliniko.extract import extract
from cliniko2nutshell.connect import check_cliniko, check_nutshell, record_connection, store_keys
from cliniko2nutshell.connections import read_snapshot
from cliniko2nutshell.engine.api import Engine, RunOptions, SampleOptions
from cliniko2nutshell.engine.rollback import RollbackScope
from cliniko2nutshell.journey import Step
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.mapfile import load_map, save_map
from cliniko2nutshell.mapping.practitioners import accept_suggestions, fallback_unresolved
from cliniko2nutshell.mapping.proposer import accept_all, confirm_map
from cliniko2nutshell.mapping.workflow import plan, propose_map
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.project import create_project, open_project
from cliniko2nutshell.project.secrets import MemoryKeyring, Secrets
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.clinic import generate_clinic
from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, start_nutshell_sandbox
from cliniko2nutshell.tui.session import DemoInfo

PATIENTS = 30
SEED = 3
PROJECT_NAME = "Harbour Physio"
FROZEN = "2026-11-30T09:30:00Z"  # every time the store records, in snapshots
FALLBACK_USER = "1-users"  # the sandbox's API user: the fallback owner of practitioners without an account

# The stages in journey order; each includes everything before it.
STAGES = (
    "new",
    "connected",
    "extracted",
    "matched",  # practitioners resolved, map not yet confirmed
    "confirmed",  # custom fields created, map confirmed
    "preflighted",
    "sampled",
    "migrated",
    "reconciled",
    "rolled_back",  # everything rolled back
)
WRITING_STAGES = ("sampled", "migrated", "reconciled", "rolled_back")  # Nutshell before the first: `pristine`


def run_async(coro: Any) -> Any:
    """asyncio.run, also from inside a running event loop (an async test): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_clinic(folder: Path, patients: int = PATIENTS, seed: int = SEED) -> Path:
    path = folder / f"clinic-{patients}-s{seed}.db"
    if not path.exists():
        generate_clinic(path, patients, seed=seed)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    return path


def freeze_times(project_dir: Path) -> None:
    """Every time the store holds set to FROZEN, so that screens showing them look the same in every run."""
    conn = sqlite3.connect(project_dir / "migration.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, columns in {
            "extract_runs": ("started_at", "completed_at"),
            "extract_state": ("run_started_at", "completed_at"),
            "runs": ("started_at", "finished_at"),
            "milestones": ("at",),
            "journal": ("started_at", "finished_at"),
            "quarantine": ("first_at", "last_at"),
            "id_map": ("written_at",),
            "conflicts": ("at",),
            "schema_changes": ("created_at",),
        }.items():
            if table not in tables:
                continue
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column in have:
                    conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} IS NOT NULL", (FROZEN,))
        conn.commit()
    finally:
        conn.close()


@dataclass
class World:
    """One clinic served by a Cliniko sandbox; projects at any stage, each with its own Nutshell sandbox."""

    root: Path
    clinic: Path
    cliniko: ClinikoSandbox
    nutshell_seed: dict[str, Any]
    keyring: MemoryKeyring = field(default_factory=MemoryKeyring)
    _nutshells: list[NutshellSandbox] = field(default_factory=list)
    # Nutshell's state dump (the sandbox's /_sandbox/state) just before a stage's first migration run, by project
    pristine: dict[Path, dict[str, Any]] = field(default_factory=dict)
    _extracted: Path | None = None

    @classmethod
    def start(cls, root: Path, clinic: Path | None = None) -> World:
        clinic = clinic or make_clinic(root)
        served = root / "served-clinic.db"
        shutil.copyfile(clinic, served)
        conn = cliniko_db.connect(served)
        seed = cliniko_db.get_meta_json(conn, "nutshell_seed")
        conn.close()
        cliniko = start_cliniko_sandbox(served, rate_limit=100_000)
        return cls(root, clinic, cliniko, seed)

    def stop(self) -> None:
        for ns in self._nutshells:
            ns.stop()
        self.cliniko.stop()

    def nutshell(self) -> NutshellSandbox:
        ns = start_nutshell_sandbox(self.nutshell_seed)
        self._nutshells.append(ns)
        return ns

    def secrets(self, project: Any) -> Secrets:
        return Secrets(project.settings.id, keyring_backend=self.keyring, env={})

    def demo(self, ns: NutshellSandbox) -> DemoInfo:
        return DemoInfo(
            cliniko_url=self.cliniko.base_url,
            cliniko_key=self.cliniko.api_key,
            nutshell_url=ns.rest_url,
            nutshell_username=ns.username,
            nutshell_key=ns.api_key,
            patients=PATIENTS,
            rate_limit=100_000,
        )

    # -- stages --------------------------------------------------------------------------------------------
    def stage(self, name: str, where: Path) -> tuple[Path, NutshellSandbox]:
        """A project at stage `name` in `where`/<project> (a fresh folder), and the Nutshell sandbox it wrote to."""
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
        ns = self.nutshell()
        target = where / "harbour-physio"
        upto = STAGES.index(name)
        if upto >= STAGES.index("extracted"):
            shutil.copytree(self._extracted_template(), target, ignore=shutil.ignore_patterns(".lock"))
            project = open_project(target, command="tests")
            project.settings.nutshell.base_url = ns.rest_url
            project.save_settings()
            project.close()
            self._connect(target, ns)
        else:
            create_project(PROJECT_NAME, path=target, command="tests").close()
            self._point(target, ns)
            if upto >= STAGES.index("connected"):
                self._connect(target, ns)
        self.pristine.pop(target, None)
        for step in STAGES[STAGES.index("extracted") + 1 : upto + 1]:
            if step in WRITING_STAGES and target not in self.pristine:
                self.pristine[target] = httpx.get(ns.state_url, timeout=30).json()
            _STEPS[step](self, target, ns)
        freeze_times(target)
        return target, ns

    def _point(self, target: Path, ns: NutshellSandbox) -> None:
        project = open_project(target, command="tests")
        project.settings.cliniko.base_url = self.cliniko.base_url
        project.settings.nutshell.base_url = ns.rest_url
        project.save_settings()
        project.close()

    def _connect(self, target: Path, ns: NutshellSandbox) -> None:
        cliniko, nutshell = run_async(_check_both(self.cliniko, ns))
        project = open_project(target, command="tests")
        try:
            store_keys(project, cliniko_key=self.cliniko.api_key, nutshell_username=ns.username,
                       nutshell_key=ns.api_key, secrets=self.secrets(project))  # fmt: skip
            record_connection(project, cliniko, nutshell)
        finally:
            project.close()

    def _extracted_template(self) -> Path:
        if self._extracted is None:
            template = self.root / "template-extracted"
            shutil.rmtree(template, ignore_errors=True)  # a half-made one from an earlier failure
            create_project(PROJECT_NAME, path=template, command="tests").close()
            ns = self.nutshell()
            self._point(template, ns)

            async def pull() -> None:
                project = open_project(template, command="tests")
                try:
                    async with ClinikoClient(self.cliniko.api_key, base_url=self.cliniko.base_url,
                                             rate_limit=100_000) as client:  # fmt: skip
                        await extract(project, client)
                finally:
                    project.close()

            run_async(pull())
            self._extracted = template
        return self._extracted


async def _check_both(cliniko: ClinikoSandbox, ns: NutshellSandbox) -> tuple[Any, Any]:
    return await asyncio.gather(check_cliniko(cliniko.api_key, cliniko.base_url),
                                check_nutshell(ns.username, ns.api_key, ns.rest_url))  # fmt: skip


def _client(ns: NutshellSandbox) -> NutshellClient:
    return NutshellClient(ns.username, ns.api_key, ns.rest_url)


def _with_project(target: Path, body: Callable[[Any], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        project = open_project(target, command="tests")
        try:
            return await body(project)
        finally:
            project.close()

    return run_async(go())


def _matched(world: World, target: Path, ns: NutshellSandbox) -> None:
    async def body(project: Any) -> None:
        async with _client(ns) as client:
            snapshot = await read_snapshot(client)
        mapping = propose_map(project, snapshot)
        mapping = fallback_unresolved(accept_suggestions(mapping), FALLBACK_USER)
        save_map(mapping, project.mapping_path, note="practitioners decided (tests)")

    _with_project(target, body)


def _confirmed(world: World, target: Path, ns: NutshellSandbox) -> None:
    async def body(project: Any) -> None:
        mapping = accept_all(load_map(project.mapping_path))
        mapping = confirm_map(mapping, Catalog.from_store(project.store))
        save_map(mapping, project.mapping_path, note="confirmed (tests)")
        async with _client(ns) as client:
            engine = await Engine.connect(project, client)
            await engine.ensure_custom_fields(client)

    _with_project(target, body)


def _preflighted(world: World, target: Path, ns: NutshellSandbox) -> None:
    async def body(project: Any) -> None:
        emails = [r.get("email") for r in project.store.iter_records("patients")]
        async with _client(ns) as client:
            snapshot = await read_snapshot(client, emails)
        plan(project, load_map(project.mapping_path), snapshot)

    _with_project(target, body)


def _engine_step(action: Callable[[Engine], Awaitable[Any]]) -> Callable[[World, Path, NutshellSandbox], None]:
    def step(world: World, target: Path, ns: NutshellSandbox) -> None:
        async def body(project: Any) -> None:
            async with _client(ns) as client:
                engine = await Engine.connect(project, client)
                engine.durable = False
                await action(engine)

        _with_project(target, body)

    return step


_STEPS: dict[str, Callable[[World, Path, NutshellSandbox], None]] = {
    "matched": _matched,
    "confirmed": _confirmed,
    "preflighted": _preflighted,
    # One worker: records are written in plan order, so Nutshell's ids and the journal's order are the same in
    # every build (the audit log and the rollback show them).
    "sampled": _engine_step(lambda e: e.sample(SampleOptions(size=100, workers=1))),
    "migrated": _engine_step(lambda e: e.full(RunOptions(workers=1))),
    "reconciled": _engine_step(lambda e: e.reconcile()),
    "rolled_back": _engine_step(lambda e: e.rollback(RollbackScope())),
}


def steady_connection_checks(setattr_: Callable[[Any, str, Any], None]) -> None:
    """Make connection tests report a fixed round trip (a live one differs each run, like the time); `setattr_` is
    pytest's monkeypatch.setattr in tests, the builtin in the screenshot command."""
    import dataclasses

    import cliniko2nutshell.connect as connect

    for name in ("check_cliniko", "check_nutshell"):
        real = getattr(connect, name)

        async def steady(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            access = await _real(*args, **kwargs)
            return dataclasses.replace(access, latency_ms=12.0)

        setattr_(connect, name, steady)


def temporary_world() -> tuple[World, tempfile.TemporaryDirectory[str]]:
    tmp = tempfile.TemporaryDirectory(prefix="cliniko2nutshell-world-")
    return World.start(Path(tmp.name)), tmp


# Which stage each step's screen is shown at in snapshots and screenshots.
STEP_STAGES: dict[Step, str] = {
    Step.PROJECT: "migrated",
    Step.CONNECT: "new",
    Step.EXTRACT: "extracted",
    Step.PRACTITIONERS: "extracted",
    Step.MAP: "matched",
    Step.PREFLIGHT: "confirmed",
    Step.SAMPLE: "preflighted",
    Step.RUN: "sampled",
    Step.DELTA: "migrated",
    Step.RECONCILE: "migrated",
    Step.ROLLBACK: "reconciled",
}


def patient_data(clinic: Path) -> dict[str, set[str]]:
    """Every patient name, birth date, e-mail and phone number of the clinic (what screen-share mode hides)."""
    import json

    conn = sqlite3.connect(clinic)
    try:
        rows = conn.execute("SELECT body FROM records WHERE resource = 'patients'").fetchall()
    finally:
        conn.close()
    out: dict[str, set[str]] = {"name": set(), "birth_date": set(), "email": set(), "phone": set()}
    for (body,) in rows:
        p = json.loads(body)
        for key in ("first_name", "last_name", "preferred_first_name"):
            if (v := (p.get(key) or "").strip()) and len(v) >= 3:
                out["name"].add(v)
        if p.get("date_of_birth"):
            out["birth_date"].add(p["date_of_birth"])
        if p.get("email"):
            out["email"].add(p["email"])
        for phone in p.get("patient_phone_numbers") or []:
            if phone.get("number"):
                out["phone"].add(phone["number"])
    return out
