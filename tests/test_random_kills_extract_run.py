"""Random kills, extraction and the full run: the command a user types is SIGKILLed at a seeded random moment (a request
number drawn from what the step sends undisturbed, as the request arrives or as its answer starts), then the user
types the command again (or `run --resume`) until it finishes. Nothing may be duplicated or missing: the store
(extraction) or the Nutshell sandbox's state dump equals the undisturbed journey's; `check` finds the project
sound and `reconcile` balanced. Five moments per step; the other steps are in the other random-kill file.

With C2N_KILL_TABLE=<file> set, each kill appends what happened to that file as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cliniko2nutshell.project.integrity import verify_project
from tests.scenarios import (
    RECOVERY,
    STEP_COMMANDS,
    Counted,
    canonical,
    cli_env,
    command,
    compare,
    counted,
    disk_full_after,
    dump,
    kill_and_resume,
    quarantine_of,
    recover,
    small,
    store_records,
    world_at,
)
from tests.test_migration_e2e import Template

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["counted", "small"]  # the module's fixtures

SEED = 20260211
CASES = [("extract", i) for i in range(5)] + [("full", i) for i in range(5)]


@pytest.mark.parametrize(("step", "index"), CASES, ids=[f"{s}-{i}" for s, i in CASES])
def test_killed_and_resumed(step: str, index: int, counted: Counted, small: Template, tmp_path: Path) -> None:
    row = kill_and_resume(counted, small, tmp_path, step, index, SEED)
    if target := os.environ.get("C2N_KILL_TABLE"):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


@pytest.mark.parametrize("step", ["extract", "full"])
def test_a_disk_that_fills_up_stops_the_step_clearly_and_it_resumes(
    step: str, counted: Counted, small: Template, tmp_path: Path
) -> None:
    """The disk fills up mid-step (simulated: the command may not grow any file past a limit, so its writes fail
    as on a full disk): it stops with a message that says so and what to do, and once there is room the same
    command (or `run --resume`) finishes with nothing lost or doubled."""
    world = world_at(small, counted.before[step], tmp_path)
    env = cli_env(world, tmp_path)
    try:
        # The store's write-ahead log outgrows the limit some way into the step (the extraction: after its
        # first pages; the run: a few hundred writes in).
        grow = 64 * 1024 if step == "extract" else 256 * 1024
        full = subprocess.run(command(world, *STEP_COMMANDS[step]), env=env, capture_output=True, text=True,
                              timeout=300, preexec_fn=disk_full_after(grow))  # fmt: skip
        assert full.returncode in (1, 2), full.stdout[-2000:] + full.stderr[-3000:]
        message = full.stderr.lower()
        assert "disk" in message and "free" in message and "again" in message and "traceback" not in message, (
            full.stderr[-3000:]
        )
        typed = recover(world, env, RECOVERY[step])
        if step == "extract":
            got = store_records(world)
            assert got == counted.extracted, sorted(k for k in got.keys() ^ counted.extracted.keys())[:10]
        else:
            tally = compare(canonical(dump(world.nutshell)), counted.full, quarantine_of(world))
            assert tally.problems == [] and tally.lost == 0 and tally.duplicated == 0, tally.problems[:20]
        assert verify_project(world.project).ok, typed
    finally:
        world.stop()
