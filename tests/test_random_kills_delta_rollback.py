"""Random kills, the delta and the rollback: the command a user types is SIGKILLed at a seeded random moment (a request
number drawn from what the step sends undisturbed, as the request arrives or as its answer starts), then the user
types the command again (or `run --resume`) until it finishes. Nothing may be duplicated or missing: the store
(extraction) or the Nutshell sandbox's state dump equals the undisturbed journey's; `check` finds the project
sound and `reconcile` balanced. Five moments per step; the other steps are in the other random-kill file.

With C2N_KILL_TABLE=<file> set, each kill appends what happened to that file as one JSON line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.scenarios import Counted, counted, kill_and_resume, small
from tests.test_migration_e2e import Template

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["counted", "small"]  # the module's fixtures

SEED = 20260211
CASES = [("delta", i) for i in range(5)] + [("rollback", i) for i in range(5)]


@pytest.mark.parametrize(("step", "index"), CASES, ids=[f"{s}-{i}" for s, i in CASES])
def test_killed_and_resumed(step: str, index: int, counted: Counted, small: Template, tmp_path: Path) -> None:
    row = kill_and_resume(counted, small, tmp_path, step, index, SEED)
    if target := os.environ.get("C2N_KILL_TABLE"):
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
