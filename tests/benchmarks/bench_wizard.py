"""The wizard's responsiveness in a real terminal (a pseudo-terminal at 100x30), printed, never asserted:

1. first screen: from starting `cliniko2nutshell open PROJECT` to the project's name on screen (median of 5);
2. key-press latency while a long job runs: F1 (help opens) and Esc (the step shows again), each from writing
   the key to its effect on screen, pressed `--presses` times during an extraction of `--patients` patients and
   during the full run of them: median, p90, p99 and the worst.

    .venv/bin/python tests/benchmarks/bench_wizard.py [--patients 5000] [--presses 100] [--skip-run]

The sandboxes run in this process (both services over HTTP on 127.0.0.1); the wizard runs as a user runs it, in
its own process, reading the keys from the environment. Note the load average beside the figures: the machine is
shared, and the figures move with it.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from wizard_world import World, make_clinic  # noqa: E402

from cliniko2nutshell.project import create_project  # noqa: E402

ROWS, COLS = 30, 100
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07]*\x07")


class Terminal:
    """The wizard in a pseudo-terminal: write keys, wait for text to appear on screen."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the wizard
            os.execvpe(args[0], args, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.seen = b""

    def wait_for(self, text: str, timeout: float = 120.0) -> float:
        """Seconds until `text` appears in what the wizard writes from now on."""
        start = time.perf_counter()
        self.seen = b""
        needle = text.encode()
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                self.seen = (self.seen + chunk)[-200_000:]
                if needle in ANSI.sub(b"", self.seen):
                    return time.perf_counter() - start
        raise TimeoutError(f"{text!r} did not appear in {timeout} s")

    def drain(self, seconds: float = 0.2) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            ready, _, _ = select.select([self.fd], [], [], 0.02)
            if ready:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    return

    def press(self, key: bytes, then: str, timeout: float = 30.0) -> float:
        self.drain(0.05)
        self.seen = b""
        os.write(self.fd, key)
        return self.wait_for(then, timeout)

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


F1, ESC, CTRL_P, ENTER = b"\x1bOP", b"\x1b", b"\x10", b"\r"


def env_for(world: World | None, ns: object | None, home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), TERM="xterm-256color",
               COLUMNS=str(COLS), LINES=str(ROWS), PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")  # fmt: skip
    if world is not None and ns is not None:
        env |= {"CLINIKO_API_KEY": world.cliniko.api_key, "NUTSHELL_USERNAME": ns.username,  # type: ignore[attr-defined]
                "NUTSHELL_API_KEY": ns.api_key}  # type: ignore[attr-defined]  # fmt: skip
    return env


def wizard(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("cliniko2nutshell")), *args]


def first_screen(root: Path, repeats: int = 5) -> list[float]:
    home = root / "home-first"
    home.mkdir()
    create_project("Seaside Osteopathy", path=home / "seaside", command="bench").close()
    times = []
    for _ in range(repeats):
        term = Terminal(wizard("open", str(home / "seaside")), env_for(None, None, home))
        try:
            times.append(term.wait_for("Seaside Osteopathy", timeout=60))
        finally:
            term.close()
    return times


def latencies(term: Terminal, step_text: str, help_text: str, presses: int, still_running: str) -> list[float]:
    """F1 then Esc, `presses` times each, while the job runs (the job's top-line text must still show)."""
    out = []
    for _ in range(presses):
        out.append(term.press(F1, help_text))
        out.append(term.press(ESC, step_text))
        time.sleep(0.05)
    try:
        term.wait_for(still_running, timeout=5)
        print(f"  (the job was still running after the last press: {still_running!r} on screen)")
    except TimeoutError:
        print("  (the job ended before the last press: use more patients for a figure under load)")
    return out


def describe(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p = lambda q: ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]  # noqa: E731
    return (f"{name}: n={len(ms)} median {statistics.median(ms):.0f} ms, p90 {p(0.9):.0f} ms, "
            f"p99 {p(0.99):.0f} ms, worst {ms[-1]:.0f} ms")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cliniko2nutshell-bench-wizard-"))
    try:
        print(f"load average {os.getloadavg()[0]:.2f}")
        print(describe("first screen (open PROJECT → its name on screen)", first_screen(root)))

        clinic_dir = root / "clinic"
        clinic_dir.mkdir()
        t = time.perf_counter()
        clinic = make_clinic(clinic_dir, patients=args.patients)
        print(f"clinic of {args.patients} patients generated in {time.perf_counter() - t:.0f} s")
        world_dir = root / "world"
        world_dir.mkdir()
        world = World.start(world_dir, clinic=clinic)
        try:
            # during an extraction
            home = root / "home-extract"
            home.mkdir()
            project, ns = world.stage("connected", home)
            term = Terminal(wizard("open", str(project)), env_for(world, ns, home))
            try:
                term.wait_for("Harbour Physio")
                term.wait_for("Extract")
                term.drain(1.0)
                idle = [term.press(key, text) for _ in range(args.presses // 2)
                        for key, text in ((F1, "3. Extract"), (ESC, "Read everything"))]  # fmt: skip
                print(describe("key to screen with nothing running (the same keys)", idle))
                term.press(b"e", "Extraction running", timeout=60)
                values = latencies(term, "Read everything", "3. Extract", args.presses, "Extraction running")
                print(f"load average {os.getloadavg()[0]:.2f}")
                print(describe(f"key to screen during the extraction of {args.patients} patients", values))
            finally:
                term.close()
            if not args.skip_run:
                home = root / "home-run"
                home.mkdir()
                t = time.perf_counter()
                project, ns = world.stage("preflighted", home)
                print(f"project prepared to the pre-flight in {time.perf_counter() - t:.0f} s")
                term = Terminal(wizard("open", str(project)), env_for(world, ns, home))
                try:
                    term.wait_for("Harbour Physio")
                    term.drain(1.0)
                    os.write(term.fd, CTRL_P)
                    term.drain(0.5)
                    os.write(term.fd, b"go to full run")
                    term.drain(1.0)
                    term.press(ENTER, "Migrate everything", timeout=30)
                    term.press(b"s", "Start the full run?", timeout=30)
                    term.press(ENTER, "Full run running", timeout=60)
                    term.drain(3.0)  # past the blocker check, into the writes
                    values = latencies(term, "Migrate everything", "8. Full run", args.presses, "Full run running")
                    print(f"load average {os.getloadavg()[0]:.2f}")
                    print(describe(f"key to screen during the full run of {args.patients} patients", values))
                finally:
                    term.close()
        finally:
            world.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
