"""The README's two set-up commands stay true, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (REPO / "README.md").read_text(encoding="utf-8"))


def test_readme_has_two_setup_commands() -> None:
    commands = _readme_commands()
    assert len(commands) >= 2
    assert commands[0].endswith("cliniko2nutshell demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci.splitlines()
