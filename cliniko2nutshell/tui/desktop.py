"""Hand a file or folder to the desktop (the browser for an HTML report, the file manager for a folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import webbrowser
from pathlib import Path

from cliniko2nutshell.tui.format import home_path


def open_in_os(path: Path) -> str:
    """Open `path` with the desktop's default program; returns a sentence for the user (with the path, which is
    what matters when there is no desktop, e.g. over SSH)."""
    shown = home_path(path)
    # A console browser (lynx, w3m) would take over the terminal the wizard runs in: only a real desktop.
    desktop = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not desktop:
        return f"No desktop to open it with here: it is at {shown}"
    try:
        if path.suffix.lower() in (".html", ".htm"):
            opened = webbrowser.open(path.resolve().as_uri())
        elif sys.platform == "darwin":
            opened = subprocess.run(["open", str(path)], check=False, timeout=10).returncode == 0
        elif sys.platform == "win32":  # pragma: no cover - Windows only
            os.startfile(path)  # type: ignore[attr-defined]
            opened = True
        elif shutil.which("xdg-open"):
            opened = subprocess.run(["xdg-open", str(path)], check=False, timeout=10).returncode == 0
        else:
            opened = False
    except (OSError, subprocess.SubprocessError, webbrowser.Error):
        opened = False
    return f"Opened {shown}" if opened else f"No desktop to open it with here: it is at {shown}"
