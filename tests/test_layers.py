"""The engine runs headless: nothing outside tui/ and cli.py may import Textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cliniko2nutshell"
ALLOWED = {PACKAGE / "cli.py"}


def _imports_textual(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "textual" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "textual":
            return True
    return False


def test_no_textual_import_outside_tui_and_cli() -> None:
    offenders = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p not in ALLOWED and (PACKAGE / "tui") not in p.parents and _imports_textual(p)
    ]
    assert offenders == [], f"these modules import Textual but must run headless: {offenders}"


def test_engine_modules_load_without_textual() -> None:
    """Importing every module outside tui/ (indirect imports included) leaves Textual unloaded."""
    modules = sorted(
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
        if p not in ALLOWED and (PACKAGE / "tui") not in p.parents and p.name != "__main__.py"
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = [m for m in sys.modules if m == 'textual' or m.startswith('textual.')]\n"
    code += "assert not bad, bad\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_check_catches_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from textual.app import App\n")
    assert _imports_textual(bad)
    good = tmp_path / "good.py"
    good.write_text("import textwrap\n")
    assert not _imports_textual(good)
