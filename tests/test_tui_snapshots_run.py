"""Snapshots of the wizard's run and delta screens at 100x30, plain and in screen-share mode: the Run step ready,
its dashboard part-way and at the end (a board fed with fixed events), the Delta step and its conflict dialog.

Update them on purpose with `pytest tests/test_tui_snapshots_run.py --snapshot-update`, look at the pictures, and
regenerate screenshots/ (tests/screenshots.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wizard_scenes import RUN_SCENES, Scene, build
from wizard_world import World


@pytest.mark.parametrize("share", [False, True], ids=["plain", "share"])
@pytest.mark.parametrize("scene", RUN_SCENES, ids=[s.name for s in RUN_SCENES])
def test_run_screens(
    scene: Scene, share: bool, world: World, home: Path, steady_latency: None, snap_compare: object
) -> None:
    app, run_before = build(world, scene, home, share=share)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)  # type: ignore[operator]
