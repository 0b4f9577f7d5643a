"""The wizard never runs a network call or an SQL statement on the UI thread: every one goes to a worker, so a
busy extraction or run never freezes a frame. (How fast a key press shows is measured by a benchmark, not here.)"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from wizard_pilot import settle
from wizard_world import World

from cliniko2nutshell.journey import Step
from cliniko2nutshell.tui.app import WizardApp

pytestmark = pytest.mark.e2e


class Guard:
    """Records what the UI (main) thread does that it must not, while `on`."""

    on = False
    seen: list[str] = []

    @classmethod
    def check(cls, what: str) -> None:
        if cls.on and threading.current_thread() is threading.main_thread():
            cls.seen.append(what)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.getaddrinfo"):
        Guard.check(f"network: {event} {args[1:2]}")


sys.addaudithook(_audit)  # audit hooks cannot be removed: it does nothing unless Guard.on


class GuardedConnection(sqlite3.Connection):
    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        Guard.check(f"sql: {sql.strip()[:60]}")
        return super().execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        Guard.check(f"sql: {sql.strip()[:60]}")
        return super().executemany(sql, *args)

    def executescript(self, script: str) -> sqlite3.Cursor:  # type: ignore[override]
        Guard.check("sql script")
        return super().executescript(script)

    def commit(self) -> None:
        Guard.check("sql commit")
        super().commit()


def test_no_network_or_sql_on_the_ui_thread(world: World, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _ = world.stage("preflighted", home)
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", GuardedConnection)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    app = WizardApp(project, keyring_backend=world.keyring, start_step=Step.PREFLIGHT)

    async def drive() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot, lambda: app.current_step is Step.PREFLIGHT and app.screen.result is not None)
            await pilot.press("f2")  # screen-share mode re-renders what is shown
            for step in (Step.PROJECT, Step.EXTRACT, Step.PRACTITIONERS, Step.MAP):
                app.goto(step)
                await settle(pilot, lambda step=step: app.current_step is step)
            app.goto(Step.RUN)
            await settle(pilot, lambda: app.current_step is Step.RUN)
            await pilot.press("s")
            await settle(pilot)
            await pilot.press("enter")  # start the full run
            await pilot.pause(0.5)
            app.goto(Step.PROJECT)  # leave the run: it goes on
            await settle(pilot, lambda: app.job is not None and not app.job.active, timeout=120)
            app.goto(Step.RUN)
            await settle(pilot, lambda: app.current_step is Step.RUN)

    Guard.seen, Guard.on = [], True
    try:
        asyncio.run(drive())
    finally:
        Guard.on = False
    assert app.job is not None and app.job.error is None, app.job.error
    assert app.job.result is not None and app.job.result.writes > 0
    assert Guard.seen == [], sorted(set(Guard.seen))[:20]


def test_the_guard_sees_sql_and_network_on_the_main_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above would catch a call on the UI thread (it is not vacuous)."""
    import socket

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=GuardedConnection, **k))
    Guard.seen, Guard.on = [], True
    try:
        sqlite3.connect(":memory:").execute("SELECT 1")
        with socket.socket() as s, pytest.raises(OSError):
            s.settimeout(0.5)
            s.connect(("127.0.0.1", 9))  # nothing listens on the discard port: refused, but the call was made
        worker = threading.Thread(target=lambda: sqlite3.connect(":memory:").execute("SELECT 2"))
        worker.start()
        worker.join()
    finally:
        Guard.on = False
    assert any(s.startswith("sql: SELECT 1") for s in Guard.seen)
    assert any(s.startswith("network") for s in Guard.seen)
    assert not any("SELECT 2" in s for s in Guard.seen)  # other threads are free to
