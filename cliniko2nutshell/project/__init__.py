"""The local project folder: layout, settings, SQLite store, lock and secrets."""

from cliniko2nutshell.project.folder import (
    Project,
    ProjectError,
    ProjectInfo,
    create_project,
    default_projects_root,
    list_projects,
    open_project,
)
from cliniko2nutshell.project.lock import ProjectLocked

__all__ = [
    "Project",
    "ProjectError",
    "ProjectInfo",
    "ProjectLocked",
    "create_project",
    "default_projects_root",
    "list_projects",
    "open_project",
]
