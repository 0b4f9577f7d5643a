"""mapping.toml: read, validate, save as a new version, and read back any earlier version.

Each saved change makes the next version: the file being replaced is kept as
`<project>/mapping-history/mapping.v<N>.toml`, and mapping.toml carries `version = N+1`. A run records the version
it used, so its exact map can be read back with `load_map_version`. Saving an unchanged map makes no version.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from cliniko2nutshell.mapping.model import MigrationMap
from cliniko2nutshell.project.private import make_private_dir, write_private_text
from cliniko2nutshell.project.settings import validation_lines

HISTORY_DIR = "mapping-history"
_VERSION_FILE = re.compile(r"^mapping\.v(\d+)\.toml$")
# Fields that describe a save rather than the map: two maps differing only here are the same map.
_BOOKKEEPING = {"version", "saved_at", "change_note"}

HEADER = (
    "# cliniko2nutshell migration map. Edit with care: every save makes a new version, and earlier versions\n"
    "# are kept in mapping-history/. Unknown keys are refused, so a typo is reported, not ignored.\n"
)


class MapError(ValueError):
    """mapping.toml is missing, unreadable or invalid. The message names the file and the key."""


def _format_errors(path: Path, exc: ValidationError) -> str:
    newer = any("newer cliniko2nutshell" in str(e.get("msg")) for e in exc.errors())
    todo = "Upgrade cliniko2nutshell to open it." if newer else _RESTORE
    return f"{path} is not a valid map:\n" + "\n".join(validation_lines(exc)) + f"\n{todo}"


_RESTORE = f"Fix the keys named above by hand, or copy the last good version back from {HISTORY_DIR}/."


def parse_map(text: str, path: Path) -> MigrationMap:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MapError(
            f"{path} is not valid TOML ({exc}); it may have been cut short or mistyped. "
            f"Fix it by hand, or copy the last good version back from {HISTORY_DIR}/."
        ) from exc
    try:
        return MigrationMap.model_validate(data)
    except ValidationError as exc:
        raise MapError(_format_errors(path, exc)) from exc


def load_map(path: Path) -> MigrationMap:
    if not path.exists():
        raise MapError(f"{path} does not exist; build the default map first")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MapError(f"{path} is not UTF-8 text. {_RESTORE}") from exc
    return parse_map(text, path)


def dump_map(mapping: MigrationMap) -> str:
    data = mapping.model_dump(mode="json", exclude_none=True)
    return HEADER + tomli_w.dumps(data)


def _content(mapping: MigrationMap) -> dict[str, Any]:
    return mapping.model_dump(mode="json", exclude=_BOOKKEEPING)


def history_dir(path: Path) -> Path:
    return path.parent / HISTORY_DIR


def save_map(mapping: MigrationMap, path: Path, note: str = "") -> MigrationMap:
    """Write `mapping` as the next version (the current file moves to the history). Returns the saved map.

    Unchanged content makes no new version and returns the map as it is on disk.
    """
    current: MigrationMap | None = load_map(path) if path.exists() else None
    if current is not None and _content(current) == _content(mapping):
        return current
    version = max((current.version if current else 0), *list_versions(path), 0) + 1
    if current is not None:
        make_private_dir(history_dir(path))
        write_private_text(history_dir(path) / f"mapping.v{current.version}.toml", path.read_text(encoding="utf-8"))
    saved = mapping.model_copy(
        update={
            "version": version,
            "saved_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "change_note": note,
        }
    )
    # Validate what we write, so a map built in code is held to the same rules as one edited by hand.
    MigrationMap.model_validate(saved.model_dump(mode="json"))
    write_private_text(path, dump_map(saved))
    return saved


def list_versions(path: Path) -> list[int]:
    """Every saved version: those in the history plus the current one, ascending."""
    found = set()
    folder = history_dir(path)
    if folder.is_dir():
        for f in folder.iterdir():
            if m := _VERSION_FILE.match(f.name):
                found.add(int(m.group(1)))
    if path.exists():
        with contextlib.suppress(MapError):
            found.add(load_map(path).version)
    return sorted(found)


def load_map_version(path: Path, version: int) -> MigrationMap:
    """The map exactly as it was at `version` (a run records the version it used)."""
    if path.exists():
        current = load_map(path)
        if current.version == version:
            return current
    old = history_dir(path) / f"mapping.v{version}.toml"
    if not old.exists():
        raise MapError(f"version {version} of {path.name} is not kept (known: {list_versions(path)})")
    return parse_map(old.read_text(encoding="utf-8"), old)
