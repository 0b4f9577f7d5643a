"""Shared fixtures. Sandbox fixtures live in tests/fixtures/, one module per area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cliniko2nutshell.project import create_project
from cliniko2nutshell.project.secrets import MemoryKeyring

pytest_plugins = ["fixtures.clinic", "fixtures.cliniko", "fixtures.nutshell", "fixtures.wizard"]

# The sandboxes answer in milliseconds. A run resumed after a kill waits one request timeout for late copies of
# the creates left in doubt (30 s by default): a 5 s timeout keeps that wait from dominating the suite. The
# commands the tests start inherit it. A test that needs the default sets its own.
os.environ.setdefault("CLINIKO2NUTSHELL_TIMEOUT", "5")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def project(tmp_path: Path):
    p = create_project("Test Clinic", path=tmp_path / "proj")
    yield p
    p.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with whole journeys (marked slow) first: with `--dist loadfile` each file runs on one worker, so a
    long file collected last (they are mostly test_tui_* and test_random_*) would finish alone while the other core
    idles. Stable, so every worker collects the same order."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)
