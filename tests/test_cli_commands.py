"""The headless commands as a support engineer runs them: init, extract, map, plan, against both sandboxes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fixtures.nutshell import nutshell_seed_from_clinic
from test_cli_walkthrough import assert_plain

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
        assert r.returncode == 2 and "neither the e-mail nor the id of a Nutshell user" in r.stderr
        r = _run(["map", "--project", str(project), "--fallback-owner", "nobody@nowhere.example"], env)
        assert r.returncode == 2, r.stderr

        # A blocker blocks: while decisions are open and custom fields are missing or of the wrong type, sample and
        # run refuse with exit 3, each blocker listed with what to do, and nothing reaches Nutshell.
        untouched = httpx.get(nutshell.state_url, timeout=30).json()
        for command in ("sample", "run"):
            r = _run([command, "--project", str(project), "--yes"], env)
            assert r.returncode == 3, r.stdout + r.stderr
            assert f"{command} refused: the pre-flight found" in r.stderr and "Nothing was written." in r.stderr
            assert "[custom_field_wrong_type] 'Total Invoiced' exists in Nutshell as Text" in r.stderr
            assert r.stderr.count("what to do: ") >= 2
        assert httpx.get(nutshell.state_url, timeout=30).json()["live"] == untouched["live"]
        log = (project / "logs" / "cliniko2nutshell.log").read_text()
        assert "command sample: refused:" in log and "custom_field_wrong_type" in log

        r = _run(  # the fallback owner by e-mail, as the map names users
            [
                "map", "--project", str(project), "--accept-suggestions", "--fallback-owner", nutshell.username,
                "--confirm",
            ],
            env,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "(confirmed)" in r.stdout.splitlines()[0] and "UNRESOLVED" not in r.stdout
        assert f"Fallback owner: Morgan Hale <{nutshell.username}> (1-users)" in r.stdout
        assert "Currency of amounts: AUD" in r.stdout
        r = _run(["plan", "--project", str(project), "--json"], env)
        assert r.returncode in (0, 3), r.stderr  # 3: not ready, blocking problems listed
        plan = json.loads(r.stdout)
        assert plan["patients"] == 30
        # Keys from the environment, never `connect`ed: no latency was measured, the estimate says it assumed one.
        assert plan["estimate"]["inputs"]["latency_measured"] is False
        assert plan["estimate"]["requests"]["people"] >= sum(plan["counts"]["person"].get(a, 0) for a in ("create",))
        assert plan["estimate"]["summary"].startswith("about ")
        files = [Path(f) for f in plan["files"]]
        assert {f.suffix for f in files} == {".csv", ".html"} and all(f.exists() for f in files)
        # The engine's commands, as a support engineer chains them.
        before = httpx.get(nutshell.state_url, timeout=30).json()
        r = _run(["fields", "--project", str(project), "--create", "--yes"], env)
        assert r.returncode == 0, r.stderr
        assert "created contacts custom field" in r.stdout
        r = _run(["run", "--project", str(project), "--json"], env)
        assert r.returncode == 2 and "--yes" in r.stderr  # no terminal, no --yes: refuse rather than guess
        r = _run(["run", "--project", str(project), "--yes", "--json"], env)
        assert r.returncode in (0, 3), r.stderr  # 3: partial, the planted unprocessed upload is quarantined
        run = json.loads(r.stdout)
        assert run["kind"] == "full" and run["counts"]["person"]["created"] > 0
        assert run["estimate"]["requests"]["people"] == run["counts"]["person"]["planned"]  # expected beside actual
        assert set(run["phase_seconds"]) >= {"people", "activities"}
        r = _run(["status", "--project", str(project), "--json"], env)
        status = json.loads(r.stdout)
        assert status["mapped"]["person"] == run["counts"]["person"]["done"]
        assert r.returncode == {"success": 0, "partial": 3}[status["outcome"]]
        r = _run(["reconcile", "--project", str(project), "--json"], env)
        assert json.loads(r.stdout)["balanced"] is True, r.stdout
        for command in ("status", "reconcile", "plan"):  # plain output: a readable summary, no raw JSON
            r = _run([command, "--project", str(project)], env)
            assert r.returncode in (0, 3), r.stderr
            assert_plain(command, r.stdout)

        # The audit log: filtered, as JSON lines, as a table, exported.
        r = _run(["log", "--project", str(project), "--object", "person", "--status", "done", "--json"], env)
        assert r.returncode == 0, r.stderr
        people = [json.loads(line) for line in r.stdout.splitlines()]
        assert len(people) == run["counts"]["person"]["done"]
        assert {(e["object"], e["status"], e["run_kind"]) for e in people} == {("person", "done", "full")}
        assert all(e["nutshell_id"].endswith("-contacts") for e in people)
        one = people[0]["cliniko_id"]
        r = _run(["log", "--project", str(project), "--search", one], env)
        assert r.returncode == 0 and one in r.stdout and "1 of 1 entries" in r.stdout, r.stdout
        assert_plain("log", r.stdout)
        r = _run(["log", "--project", str(project), "--run", str(run["run_id"]), "--limit", "3"], env)
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 5, r.stdout  # header, 3 rows, the count
        export = tmp_path / "audit.csv"
        r = _run(["log", "--project", str(project), "--csv", str(export)], env)
        assert r.returncode == 0 and export.exists() and oct(export.stat().st_mode & 0o777) == "0o600"
        written = int(r.stdout.split()[0])
        assert written == len(export.read_text().splitlines()) - 1 >= len(people)
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


def test_connect_stores_the_keys_and_refuses_a_receptionists_key(small_clinic_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "clinic.db"
    shutil.copyfile(small_clinic_db, db)
    cliniko = start_cliniko_sandbox(db, rate_limit=100_000)
    nutshell = start_nutshell_sandbox(nutshell_seed_from_clinic(db))
    try:
        base = {
            k: v for k, v in os.environ.items() if k not in ("CLINIKO_API_KEY", "NUTSHELL_USERNAME", "NUTSHELL_API_KEY")
        }
        base |= {
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "PYTHON_KEYRING_BACKEND": "cliniko2nutshell.project.secrets.MemoryKeyring",  # the in-memory keyring
        }
        r = _run(["init", "Harbour Physio"], base)  # under the user data folder, where `projects` looks
        assert r.returncode == 0, r.stderr
        project = tmp_path / "data" / "cliniko2nutshell" / "projects" / "Harbour-Physio"
        assert f"in {project}" in r.stdout
        urls = ["--cliniko-url", cliniko.base_url, "--nutshell-url", nutshell.rest_url]
        keys = {"NUTSHELL_USERNAME": nutshell.username, "NUTSHELL_API_KEY": nutshell.api_key}

        r = _run(["connect", "--project", str(project), *urls], base)
        assert r.returncode == 2 and "--from-env" in r.stderr  # no terminal to type the keys into
        r = _run(["connect", "--project", str(project), *urls, "--from-env"], base)
        assert r.returncode == 2 and "CLINIKO_API_KEY" in r.stderr

        receptionist = {**base, **keys, "CLINIKO_API_KEY": cliniko.staff_keys["receptionist"]}
        r = _run(["connect", "--project", str(project), *urls, "--from-env"], receptionist)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "role receptionist: NOT an administrator" in r.stdout
        assert "Only an administrator's key" in r.stderr and "Not connected: nothing was stored." in r.stderr
        assert "Keys saved" not in r.stdout

        wrong = {**base, **keys, "CLINIKO_API_KEY": cliniko.api_key, "NUTSHELL_API_KEY": "0" * 40}
        r = _run(["connect", "--project", str(project), *urls, "--from-env"], wrong)
        assert r.returncode == 2 and "API key not found" in r.stderr

        admin = {**base, **keys, "CLINIKO_API_KEY": cliniko.api_key}
        r = _run(["connect", "--project", str(project), *urls, "--from-env", "--contact-limit", "5000"], admin)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Keys saved in the OS keychain (secrets MemoryKeyring)" in r.stdout
        assert "role administrator" in r.stdout and "currency AUD" in r.stdout and "Nutshell company:" in r.stdout
        assert "Contact limit of your Nutshell plan: 5000" in r.stdout
        assert_plain("connect", r.stdout)
        settings = (project / "project.toml").read_text()
        assert "contact_limit = 5000" in settings and nutshell.username in settings
        for p in project.rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                assert cliniko.api_key.encode() not in data and nutshell.api_key.encode() not in data, p
        r = _run(["status", "--project", str(project), "--verbose"], base)  # the operational log, mirrored
        assert r.returncode in (0, 3) and "command status started" in r.stderr, r.stderr
        log = (project / "logs" / "cliniko2nutshell.log").read_text()
        assert "command connect started" in log and "command connect ended: exit code 0" in log
        assert "command connect ended: exit code 2" in log  # the refusals are logged too
        r = _run(["projects"], base)
        row = next(line for line in r.stdout.splitlines() if line.startswith("Harbour Physio"))
        assert r.returncode == 0 and "2. Connect" in row and str(project) in row, r.stdout
    finally:
        nutshell.stop()
        cliniko.stop()


def test_help_lists_the_commands_in_the_order_of_a_migration() -> None:
    r = _run(["--help"], {**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0
    listed = re.findall(r"^    ([a-z]+) +\S", r.stdout, re.M)
    assert listed[:13] == ["init", "connect", "extract", "map", "fields", "plan", "sample", "run", "delta",
                           "reconcile", "rollback", "log", "status"]  # fmt: skip
    assert all(len(line) <= 80 for line in r.stdout.splitlines())  # one line each
