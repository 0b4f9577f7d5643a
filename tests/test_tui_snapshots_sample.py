"""Snapshots of the Sample step and the diff viewer at 100x30, plain and in screen-share mode; screen-share mode
shows no patient's name, birth date, e-mail or phone number.

Update them on purpose with `pytest tests/test_tui_snapshots_sample.py --snapshot-update`, look at the pictures,
and regenerate screenshots/ (tests/screenshots.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from wizard_scenes import SAMPLE_SCENES, Scene, build
from wizard_world import World, patient_data


@pytest.mark.parametrize("share", [False, True], ids=["plain", "share"])
@pytest.mark.parametrize("scene", SAMPLE_SCENES, ids=[s.name for s in SAMPLE_SCENES])
def test_sample_screens(scene: Scene, share: bool, world: World, home: Path, snap_compare: object) -> None:
    app, run_before = build(world, scene, home, share=share)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)  # type: ignore[operator]


@pytest.mark.parametrize("scene", SAMPLE_SCENES, ids=[s.name for s in SAMPLE_SCENES])
def test_screen_share_mode_hides_every_patient_value(scene: Scene, world: World, home: Path) -> None:
    app, run_before = build(world, scene, home, share=True)  # the project is built outside the app's loop
    secrets = patient_data(world.clinic)

    async def look() -> str:
        async with app.run_test(size=(200, 50)) as pilot:
            await run_before(pilot)
            return screen_text(app)

    text = asyncio.run(look())
    # practitioners are staff, shown in full (a patient may share a first name); what the user typed into a
    # search counts too, whatever its case
    staff = [name.casefold() for name in staff_names(world.clinic)]
    seen = text.casefold()
    leaks = sorted(f"{kind}: {v}" for kind, values in secrets.items() for v in values
                   if v.casefold() in seen and not any(v.casefold() in name for name in staff))  # fmt: skip
    assert not leaks, leaks


def staff_names(clinic: Path) -> list[str]:
    conn = sqlite3.connect(clinic)
    try:
        rows = conn.execute("SELECT body FROM records WHERE resource IN ('practitioners', 'users')").fetchall()
    finally:
        conn.close()
    return [
        " ".join(filter(None, (p.get("first_name"), p.get("last_name")))) for p in map(json.loads, (r[0] for r in rows))
    ]


def screen_text(app: Any) -> str:
    """What the screen shows, as text (the snapshot's own rendering, without its styles)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text(styles=False)
