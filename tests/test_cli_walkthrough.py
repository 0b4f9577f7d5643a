"""The README's headless walk-through, run as written: the sandbox command in one process, then each command of the
walk-through in turn (only the ports are swapped for free ones). `connect` runs in a pseudo-terminal and is answered
as a person would answer it, keys pasted from the sandbox's own output.

Between processes the keys live in a file-backed stand-in for the OS keychain (tests/fakes/keyring_file.py, in the
test's temporary folder): the point is that no key goes through the environment or a project file.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CLI = [sys.executable, "-m", "cliniko2nutshell"]


def readme_commands() -> tuple[str, list[str]]:
    """(the sandbox command, the walk-through's commands) from README.md's sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    sandbox = next(line for line in lines if line.startswith("cliniko2nutshell sandbox"))
    start = lines.index(next(line for line in lines if line.startswith("cliniko2nutshell init")))
    walk = [line for line in lines[start:] if line.startswith("cliniko2nutshell ")]
    return sandbox, walk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def argv(line: str, ports: dict[str, str]) -> list[str]:
    for old, new in ports.items():
        line = line.replace(old, new)
    words = shlex.split(line)
    assert words[0] == "cliniko2nutshell"
    return [*CLI, *words[1:]]


def in_terminal(args: list[str], env: dict[str, str], cwd: Path, answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run `args` with a pseudo-terminal as its terminal; answer each prompt (a text to wait for, what to type)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command (nothing else runs here)
        try:
            os.chdir(cwd)
            os.execve(args[0], args, env)
        finally:
            os._exit(127)
    out, seen, pending = b"", 0, list(answers)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            out += chunk
            while pending and pending[0][0].encode() in out[seen:]:
                seen = out.index(pending[0][0].encode(), seen) + len(pending[0][0])
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"{args} did not finish:\n{out.decode(errors='replace')}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert not pending, f"never asked: {pending}\n{out.decode(errors='replace')}"
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def assert_plain(command: str, text: str) -> None:
    """Readable output: no line is a JSON document, no Python dict is printed."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped[:1] in "{[":
            with pytest.raises(ValueError):
                json.loads(stripped)
        assert "{'" not in line and '{"' not in line, f"{command}: raw data in its output: {line}"


# Exit codes the README says each step ends with (3: partial, the planted unprocessed upload is quarantined).
EXPECTED_EXIT = {"sample": {3}, "run": {3}, "reconcile": {3}}


def test_the_readme_walk_through_runs_as_written(tmp_path: Path) -> None:
    sandbox_line, walk = readme_commands()
    assert [shlex.split(c)[1] for c in walk] == [
        "init", "connect", "extract", "map", "map", "fields", "plan", "sample", "run", "reconcile", "log", "rollback"
    ]  # fmt: skip
    ports = {"8801": str(free_port()), "8802": str(free_port())}
    env = {k: v for k, v in os.environ.items() if k not in ("CLINIKO_API_KEY", "NUTSHELL_USERNAME", "NUTSHELL_API_KEY")}
    env |= {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PYTHON_KEYRING_BACKEND": "fakes.keyring_file.FileKeyring",
        "C2N_TEST_KEYRING": str(tmp_path / "keychain.json"),
        "COLUMNS": "120",
    }
    work = tmp_path / "work"
    work.mkdir()
    server = subprocess.Popen(argv(sandbox_line, ports), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)  # fmt: skip
    try:
        assert server.stdout is not None
        banner = ""
        while "Press Ctrl+C" not in banner:
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else "the sandbox stopped"
            banner += line
        cliniko_key = re.search(r"Cliniko\s+\S+\s+key (\S+)", banner).group(1)  # type: ignore[union-attr]
        found = re.search(r"Nutshell\s+\S+\s+user (\S+)\s+key (\S+)", banner)
        assert found is not None, banner
        nutshell_user, nutshell_key = found.groups()
        project = work / "harbour"
        outputs: dict[str, str] = {}
        for line in walk:
            args = argv(line, ports)
            command = shlex.split(line)[1]
            if command == "connect":
                code, out = in_terminal(
                    args,
                    env,
                    work,
                    [
                        ("Cliniko API key", cliniko_key),
                        ("Nutshell user e-mail", nutshell_user),
                        ("Nutshell API key", nutshell_key),
                        ("contact", ""),
                    ],
                )
                assert cliniko_key not in out and nutshell_key not in out  # typed without being shown
            else:
                r = subprocess.run(args, capture_output=True, text=True, env=env, cwd=work, timeout=600)
                code, out = r.returncode, r.stdout
                assert_plain(command, r.stdout)
                if code not in EXPECTED_EXIT.get(command, {0}):
                    pytest.fail(f"`{line}` exited {code}:\n{r.stdout}\n{r.stderr}")
            assert code in EXPECTED_EXIT.get(command, {0}), f"`{line}` exited {code}:\n{out}"
            outputs[command] = outputs.get(command, "") + out
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    assert f"in {project}" in outputs["init"] and "Next: cliniko2nutshell connect --project" in outputs["init"]
    assert "Keys saved in the OS keychain" in outputs["connect"] and "role administrator" in outputs["connect"]
    assert "Total Invoiced" in outputs["map"] and "Open decisions: 0" in outputs["map"]
    assert "ready to run." in outputs["plan"] and "Nutshell after the run:" in outputs["plan"]
    assert "Reconciliation: balanced." in outputs["reconcile"]
    assert re.search(r"^\S+Z\s+\d+\s+person\s+create", outputs["log"], re.M), outputs["log"]
    assert "Verification:" in outputs["rollback"] and "Outcome: success" in outputs["rollback"]
    # The keys are in the keychain stand-in, and nowhere in the project folder.
    assert cliniko_key in (tmp_path / "keychain.json").read_text()
    for path in project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert cliniko_key.encode() not in data and nutshell_key.encode() not in data, path
    log = (project / "logs" / "cliniko2nutshell.log").read_text()
    for command in ("init", "connect", "extract", "run", "reconcile", "rollback"):
        assert f"command {command} started" in log and f"command {command} ended: exit code" in log
    assert "quarantined (unmappable)" in log and "phase people" in log
