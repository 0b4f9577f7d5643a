"""The open project as the wizard holds it: the locked project, its secrets, and what the screens share.

Everything here blocks (files, SQLite, network through `asyncio.run`): the app calls it from thread workers only,
never on the UI thread. The locked project's own store connection belongs to the one long job that may run at a
time (extraction or a migration run); every other read or write opens a short-lived view of the project with its
own connection (`view()`), which SQLite's WAL mode lets run beside the job.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cliniko2nutshell.journey import Journey, journey
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot
from cliniko2nutshell.project import Project, open_project
from cliniko2nutshell.project.secrets import Secrets


@dataclass
class DemoInfo:
    """The sandbox the demo started: endpoints and its (synthetic, throw-away) credentials."""

    cliniko_url: str
    cliniko_key: str
    nutshell_url: str
    nutshell_username: str
    nutshell_key: str
    patients: int
    rate_limit: int


@dataclass
class Session:
    project: Project
    secrets: Secrets
    demo: DemoInfo | None = None
    journey: Journey | None = None
    snapshot: NutshellSnapshot | None = None  # what Nutshell holds (users, types, fields), read on demand
    shared: dict[str, Any] = field(default_factory=dict)  # results screens hand to each other (connect, pre-flight)

    @property
    def path(self) -> Path:
        return self.project.path

    @property
    def name(self) -> str:
        return self.project.settings.name

    @contextmanager
    def view(self) -> Iterator[Project]:
        """The project with a connection of its own (no lock): for reads and small writes beside a running job."""
        project = Project(self.project.path, self.project.settings)
        try:
            yield project
        finally:
            project.close()

    def read_journey(self) -> Journey:
        with self.view() as project:
            self.journey = journey(project, self.secrets)
        return self.journey

    def close(self) -> None:
        self.project.close()


def open_session(path: Path, secrets_for: Any, demo: DemoInfo | None = None) -> Session:
    """Open the project at `path` for writing (its lock names this window) and read where it stands."""
    project = open_project(path, command="cliniko2nutshell (wizard)")
    try:
        session = Session(project, secrets_for(project), demo)
        session.read_journey()
    except BaseException:
        project.close()
        raise
    return session
