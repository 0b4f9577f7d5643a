"""`cliniko2nutshell sandbox --json` as a script uses it: one JSON line, then both services answer over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_sandbox_command_serves_both_services(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cliniko2nutshell", "sandbox", "--patients", "10", "--seed", "5", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        assert set(info) == {"cliniko", "nutshell"}
        assert set(info["nutshell"]) == {"base_url", "rpc_url", "username", "api_key"}
        cliniko = info["cliniko"]
        ua = {"User-Agent": "cliniko2nutshell tests (tests@example.com)", "Accept": "application/json"}
        r = httpx.get(
            f"{cliniko['base_url']}/patients",
            params={"q[]": "archived_at:*"},  # the 10 include archived and merged patients
            auth=(cliniko["api_key"], ""),
            headers=ua,
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["total_entries"] == 10
        for host in (cliniko["base_url"], info["nutshell"]["base_url"], info["nutshell"]["rpc_url"]):
            assert host.startswith("http://127.0.0.1:")
        nutshell = info["nutshell"]
        r = httpx.get(f"{nutshell['base_url']}/users", auth=(nutshell["username"], nutshell["api_key"]), timeout=10)
        assert r.status_code == 200, r.text
        r = httpx.post(
            nutshell["rpc_url"],
            json={"method": "findUsers", "params": {}, "id": "t1"},
            auth=(nutshell["username"], nutshell["api_key"]),
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["id"] == "t1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
