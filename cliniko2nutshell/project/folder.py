"""Create, open and list migration projects. Layout (DESIGN.md):

    <project>/project.toml  mapping.toml  migration.db  files/  reports/  logs/

Folders are 0700 and files 0600: the project holds health data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from cliniko2nutshell.project.lock import ProjectLock
from cliniko2nutshell.project.private import make_private_dir
from cliniko2nutshell.project.settings import ProjectSettings, SettingsError
from cliniko2nutshell.project.store import Store, StoreError

APP_NAME = "cliniko2nutshell"
SETTINGS_FILE = "project.toml"
MAPPING_FILE = "mapping.toml"
STORE_FILE = "migration.db"
SUBDIRS = ("files", "reports", "logs")


class ProjectError(RuntimeError):
    pass


def default_projects_root() -> Path:
    return platformdirs.user_data_path(APP_NAME) / "projects"


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    return slug or "project"


@dataclass
class Project:
    """An open project. `lock` is held while it is open for writing."""

    path: Path
    settings: ProjectSettings
    lock: ProjectLock | None = None
    _store: Store | None = field(default=None, repr=False)
    _new: bool = field(default=False, repr=False)  # being created: the one time an empty store may be made

    @property
    def settings_path(self) -> Path:
        return self.path / SETTINGS_FILE

    @property
    def mapping_path(self) -> Path:
        return self.path / MAPPING_FILE

    @property
    def store_path(self) -> Path:
        return self.path / STORE_FILE

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_path, create=self._new)
        return self._store

    def save_settings(self) -> None:
        self.settings.save(self.settings_path)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ProjectInfo:
    name: str
    path: Path
    created_at: str


def create_project(name: str, path: Path | None = None, root: Path | None = None, command: str = "") -> Project:
    """A new project at `path`, or under `root` (default: the user data folder) named after `name`."""
    target = path or (root or default_projects_root()) / _slug(name)
    if (target / SETTINGS_FILE).exists():
        raise ProjectError(f"A project already exists at {target}; open it instead.")
    if target.exists() and any(target.iterdir()):
        raise ProjectError(f"{target} is not empty; choose an empty or new folder for the project.")
    if path is None:
        make_private_dir(target.parent)
    make_private_dir(target)
    for sub in SUBDIRS:
        make_private_dir(target / sub)
    lock = ProjectLock(target, command).acquire()
    settings = ProjectSettings(name=name)
    settings.save(target / SETTINGS_FILE)
    project = Project(target, settings, lock, _new=True)
    project.store  # noqa: B018 - create migration.db now, with its schema
    return project


def open_project(path: Path, *, write: bool = True, command: str = "") -> Project:
    """Open an existing project; with `write`, take its lock (ProjectLocked names the holder)."""
    if not (path / SETTINGS_FILE).exists():
        raise ProjectError(f"No project at {path} (no {SETTINGS_FILE}). Create one first.")
    lock = ProjectLock(path, command).acquire() if write else None
    try:
        settings = ProjectSettings.load(path / SETTINGS_FILE)
        project = Project(path, settings, lock)
        project.store  # noqa: B018 - a damaged, missing or newer migration.db is refused here, before any use
    except (SettingsError, StoreError) as exc:
        if lock:
            lock.release()
        raise ProjectError(str(exc)) from exc
    except BaseException:
        if lock:
            lock.release()
        raise
    for sub in SUBDIRS:
        make_private_dir(path / sub)
    return project


def list_projects(root: Path | None = None) -> list[ProjectInfo]:
    """Projects under `root`, most recently created first."""
    base = root or default_projects_root()
    if not base.is_dir():
        return []
    found = []
    for settings_path in base.glob(f"*/{SETTINGS_FILE}"):
        try:
            s = ProjectSettings.load(settings_path)
        except Exception:
            continue
        found.append(ProjectInfo(s.name, settings_path.parent, s.created_at))
    return sorted(found, key=lambda p: p.created_at, reverse=True)
