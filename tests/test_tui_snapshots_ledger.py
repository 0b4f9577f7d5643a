"""Snapshots of Reconcile, Rollback and the audit log at 100x30, plain and in screen-share mode.

Update them on purpose with `pytest tests/test_tui_snapshots_ledger.py --snapshot-update`, look at the pictures,
and regenerate screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wizard_scenes import LEDGER_SCENES, Scene, build
from wizard_world import World

import cliniko2nutshell.engine.reports
import cliniko2nutshell.mapping.report_writers


@pytest.fixture
def steady_report_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports are named after the moment they are written; the screens show their paths."""
    for module in (cliniko2nutshell.mapping.report_writers, cliniko2nutshell.engine.reports):
        monkeypatch.setattr(module, "timestamp", lambda: "20261130T093000Z")


@pytest.mark.parametrize("share", [False, True], ids=["plain", "share"])
@pytest.mark.parametrize("scene", LEDGER_SCENES, ids=[s.name for s in LEDGER_SCENES])
def test_ledger_screens(
    scene: Scene, share: bool, world: World, home: Path, steady_report_names: None, snap_compare: object
) -> None:
    app, run_before = build(world, scene, home, share=share)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)  # type: ignore[operator]
