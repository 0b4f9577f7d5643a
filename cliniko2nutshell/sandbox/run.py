"""Both sandboxes at once, from one synthetic clinic: what `cliniko2nutshell sandbox` and `demo` serve.

The generated clinic is cached per (patients, seed, generator version, hostile records or not) in the user cache
folder; each start serves a fresh copy, so writes made during a demo never leak into the next one.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from cliniko2nutshell.sandbox import cliniko_db


@dataclass
class Sandbox:
    cliniko: Any  # ClinikoSandbox
    nutshell: Any  # NutshellSandbox
    workdir: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """The line scripts read: URLs and credentials of both services (sandbox credentials only)."""
        return {
            "cliniko": {
                "base_url": self.cliniko.base_url,
                "api_key": self.cliniko.api_key,  # the clinic administrator's key
                "staff_keys": dict(self.cliniko.staff_keys),  # other users' keys by role: not administrators
            },
            "nutshell": {
                "base_url": self.nutshell.rest_url,
                "rpc_url": self.nutshell.rpc_url,
                "username": self.nutshell.username,
                "api_key": self.nutshell.api_key,
            },
        }

    def stop(self) -> None:
        self.nutshell.stop()
        self.cliniko.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cached_clinic(patients: int, seed: int, cache_dir: Path | None = None, *, hostile: bool = False) -> Path:
    """A pristine generated clinic DB, generated once per (size, seed, generator version, hostile switch)."""
    from cliniko2nutshell.sandbox.clinic import GENERATOR_VERSION, generate_clinic

    folder = cache_dir or platformdirs.user_cache_path("cliniko2nutshell") / "sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"clinic-p{patients}-s{seed}-g{GENERATOR_VERSION}{'-hostile' if hostile else ''}.db"
    if not path.exists():
        partial = path.with_suffix(".partial")
        for p in folder.glob(partial.name + "*"):
            p.unlink()
        generate_clinic(partial, patients, seed, hostile=hostile)
        _checkpoint(partial)
        partial.replace(path)
    return path


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()


def start_sandbox(
    patients: int = 300,
    seed: int = 1,
    *,
    cliniko_rate_limit: int = 200,
    cache_dir: Path | None = None,
    workdir: Path | None = None,
    cliniko_port: int = 0,
    nutshell_port: int = 0,
    hostile: bool = False,
) -> Sandbox:
    """Both sandboxes over a fresh copy of the cached clinic; ports 0: any free ones (the blob port always is)."""
    from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox
    from cliniko2nutshell.sandbox.nutshell_app import start_nutshell_sandbox

    pristine = cached_clinic(patients, seed, cache_dir, hostile=hostile)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cliniko2nutshell-sandbox-")
        workdir = Path(tmp.name)
    db_path = workdir / "cliniko.db"
    shutil.copyfile(pristine, db_path)
    conn = cliniko_db.connect(db_path)
    seed_data = cliniko_db.get_meta_json(conn, "nutshell_seed")
    conn.close()
    cliniko = start_cliniko_sandbox(db_path, rate_limit=cliniko_rate_limit, api_port=cliniko_port)
    try:
        nutshell = start_nutshell_sandbox(seed_data, port=nutshell_port)
    except BaseException:
        cliniko.stop()
        raise
    return Sandbox(cliniko, nutshell, workdir, tmp)
