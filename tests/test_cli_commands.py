"""The headless commands as a support engineer runs them: init, extract, map, plan, against both sandboxes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fixtures.nutshell import nutshell_seed_from_clinic

from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox
from cliniko2nutshell.sandbox.nutshell_app import start_nutshell_sandbox

pytestmark = pytest.mark.e2e


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cliniko2nutshell", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_init_extract_map_plan(small_clinic_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    shutil.copyfile(small_clinic_db, db)
    cliniko = start_cliniko_sandbox(db, rate_limit=100_000)
    nutshell = start_nutshell_sandbox(nutshell_seed_from_clinic(db))
    try:
        base_env = {
            **os.environ,
            "XDG_DATA_HOME": str(tmp_path / "data"),
            # The sandbox credentials come from the environment, as on a machine without a keychain.
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
        env = {
            **base_env,
            "CLINIKO_API_KEY": cliniko.api_key,
            "NUTSHELL_USERNAME": nutshell.username,
            "NUTSHELL_API_KEY": nutshell.api_key,
        }
        project = tmp_path / "proj"
        r = _run(["init", "Harbour Physio", "--path", str(project)], env)
        assert r.returncode == 0, r.stderr
        r = _run(["extract", "--project", str(project), "--cliniko-url", cliniko.base_url, "--json"], base_env)
        assert r.returncode == 2 and "CLINIKO_API_KEY" in r.stderr  # no key anywhere: a clear error
        r = _run(["extract", "--project", str(project), "--cliniko-url", cliniko.base_url, "--json"], env)
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)
        assert summary  # per-object counts
        r = _run(["map", "--project", str(project), "--nutshell-url", nutshell.rest_url], env)
        assert r.returncode == 0, r.stderr
        assert "Practitioners -> users:" in r.stdout and "Open decisions:" in r.stdout
        # The generator plants practitioners whose Nutshell user has another e-mail: a name suggestion is shown.
        assert "suggested: " in r.stdout
        r = _run(["map", "--project", str(project), "--confirm"], env)
        assert r.returncode == 3 and "still open" in r.stderr  # refused while decisions are open
        r = _run(["map", "--project", str(project), "--fallback-owner", "999-users"], env)
        assert r.returncode == 2 and "not a Nutshell user" in r.stderr
        r = _run(
            ["map", "--project", str(project), "--accept-suggestions", "--fallback-owner", "1-users", "--confirm"], env
        )
        assert r.returncode == 0, r.stderr
        assert "(confirmed)" in r.stdout.splitlines()[0] and "UNRESOLVED" not in r.stdout
        r = _run(["plan", "--project", str(project), "--json"], env)
        assert r.returncode in (0, 3), r.stderr  # 3: not ready, blocking problems listed
        plan = json.loads(r.stdout)
        assert plan["patients"] == 30
        files = [Path(f) for f in plan["files"]]
        assert {f.suffix for f in files} == {".csv", ".html"} and all(f.exists() for f in files)
        # The engine's commands, as a support engineer chains them.
        before = httpx.get(nutshell.state_url, timeout=30).json()
        r = _run(["run", "--project", str(project), "--json"], env)
        assert r.returncode == 2 and "--yes" in r.stderr  # no terminal, no --yes: refuse rather than guess
        r = _run(["fields", "--project", str(project), "--create", "--yes"], env)
        assert r.returncode == 0, r.stderr
        assert "created contacts custom field" in r.stdout
        r = _run(["run", "--project", str(project), "--yes", "--json"], env)
        assert r.returncode in (0, 3), r.stderr  # 3: partial, the planted unprocessed upload is quarantined
        run = json.loads(r.stdout)
        assert run["kind"] == "full" and run["counts"]["person"]["created"] > 0
        r = _run(["status", "--project", str(project), "--json"], env)
        status = json.loads(r.stdout)
        assert status["mapped"]["person"] == run["counts"]["person"]["done"]
        assert r.returncode == {"success": 0, "partial": 3}[status["outcome"]]
        r = _run(["reconcile", "--project", str(project), "--json"], env)
        assert json.loads(r.stdout)["balanced"] is True, r.stdout
        r = _run(["rollback", "--project", str(project), "--scope", "bogus"], env)
        assert r.returncode == 2 and "--scope" in r.stderr
        r = _run(["rollback", "--project", str(project), "--yes", "--json"], env)
        assert r.returncode == 0, r.stdout + r.stderr
        after = httpx.get(nutshell.state_url, timeout=30).json()
        assert after["live"] == before["live"]  # custom-field definitions stay: the API cannot delete them

        # Keys never reach the project folder.
        for p in project.rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                assert cliniko.api_key.encode() not in data and nutshell.api_key.encode() not in data, p
    finally:
        nutshell.stop()
        cliniko.stop()
