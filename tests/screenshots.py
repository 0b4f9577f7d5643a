"""Regenerate screenshots/: every scene of tests/wizard_scenes.py (the same ones the snapshot tests pin), at
100x30, plain and in screen-share mode, as SVG.

    .venv/bin/python tests/screenshots.py            # all of them (a few minutes: each scene builds its project)
    .venv/bin/python tests/screenshots.py 08 09b     # only the scenes whose names start so

It runs the wizard against the sandboxes on 127.0.0.1 with a synthetic clinic; the pictures hold no key and, in
screen-share mode, no patient data (tests/test_tui_share_masking.py checks them).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import sys
import tempfile
from pathlib import Path

import wizard_scenes
from wizard_scenes import Scene, build
from wizard_world import World, steady_connection_checks

OUT = Path(__file__).resolve().parents[1] / "screenshots"
SIZE = (100, 30)


def all_scenes() -> list[Scene]:
    found = [s for name, group in vars(wizard_scenes).items() if name.endswith("_SCENES") for s in group]
    return sorted(found, key=lambda s: s.name)


async def shoot(world: World, scene: Scene, share: bool, home: Path) -> str:
    os.environ["HOME"] = str(home)  # projects show as ~/harbour-physio, as in the snapshots
    os.environ["XDG_DATA_HOME"] = str(home / ".local" / "share")
    app, run_before = build(world, scene, home, share=share)
    async with app.run_test(size=SIZE) as pilot:
        await run_before(pilot)
        await pilot.pause()
        return app.export_screenshot(title=scene.title)


def write_gallery(scenes: list[Scene]) -> None:
    """screenshots/README.md: every picture with its title, plain beside screen-share, in journey order."""
    lines = [
        "# Screenshots",
        "",
        "Every screen of the wizard at 100x30, plain and in screen-share mode (patient data masked), made from the",
        "same scenes the snapshot tests pin. Regenerate them with `.venv/bin/python tests/screenshots.py`.",
        "",
        "| screen | plain | screen-share |",
        "|---|---|---|",
    ]
    for scene in scenes:
        lines.append(f"| {scene.title} | ![{scene.title}]({scene.name}.svg) | ![{scene.title}, screen-share]"
                     f"({scene.name}-share.svg) |")  # fmt: skip
    (OUT / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(prefixes: list[str]) -> int:
    scenes = [s for s in all_scenes() if not prefixes or s.name.startswith(tuple(prefixes))]
    if not scenes:
        print(f"no scene starts with {' or '.join(prefixes)}", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    steady_connection_checks(builtins.setattr)
    with tempfile.TemporaryDirectory(prefix="cliniko2nutshell-shots-") as tmp:
        (Path(tmp) / "world").mkdir()
        world = World.start(Path(tmp) / "world")
        try:
            for scene in scenes:
                for share in (False, True):
                    home = Path(tmp) / f"{scene.name}-{'share' if share else 'plain'}"
                    home.mkdir()
                    svg = asyncio.run(shoot(world, scene, share, home))
                    path = OUT / f"{scene.name}{'-share' if share else ''}.svg"
                    path.write_text(svg, encoding="utf-8")
                    print(f"{path.relative_to(OUT.parent)}  {scene.title}")
        finally:
            world.stop()
    write_gallery(all_scenes())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
