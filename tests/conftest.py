"""Shared fixtures. Sandbox fixtures live in tests/fixtures/, one module per area."""

from __future__ import annotations

from pathlib import Path

import pytest

from cliniko2nutshell.project import create_project
from cliniko2nutshell.project.secrets import MemoryKeyring

pytest_plugins = ["fixtures.clinic", "fixtures.cliniko", "fixtures.nutshell", "fixtures.wizard"]

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
