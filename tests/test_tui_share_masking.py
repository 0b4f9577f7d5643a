"""Screen-share mode hides patient data in every picture: each screen-share snapshot (tests/__snapshots__) and
screenshot (screenshots/) is read as text, line by line, and must hold no patient name, birth date, e-mail or
phone number of the sandbox clinic the pictures were taken of. The plain pictures show such values (the check
finds them there), so a detector that finds nothing fails too."""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from wizard_world import make_clinic, patient_data

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = ROOT / "tests" / "__snapshots__"
SCREENSHOTS = ROOT / "screenshots"
_TEXT = re.compile(r'<text[^>]*\bx="([\d.]+)"[^>]*\by="([\d.]+)"[^>]*>([^<]*)</text>')


def lines_of(svg: Path) -> list[str]:
    """The picture's text, one string per terminal line (spans of one line joined in order)."""
    rows: dict[float, list[tuple[float, str]]] = defaultdict(list)
    for x, y, text in _TEXT.findall(svg.read_text(encoding="utf-8")):
        rows[float(y)].append((float(x), html.unescape(text).replace("\u00a0", " ")))
    return ["".join(t for _, t in sorted(spans)) for _, spans in sorted(rows.items())]


def leaks(lines: list[str], data: dict[str, set[str]]) -> list[str]:
    found = []
    squeezed = [re.sub(r"\s", "", line) for line in lines]
    for kind, values in data.items():
        for value in values:
            if kind == "name":
                pattern = re.compile(rf"\b{re.escape(value)}\b")
                hit = any(pattern.search(line) for line in lines)
            elif kind == "phone":
                digits = re.sub(r"\D", "", value)
                hit = any(digits in re.sub(r"\D", "", line) for line in lines if len(digits) >= 6)
            else:
                hit = any(value.lower() in line.lower() for line in squeezed)
            if hit:
                found.append(f"{kind} {value!r}")
    return found


@pytest.fixture(scope="module")
def clinic_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The clinic's patient data, less the names patients share with its staff (practitioners' names are shown
    in screen-share mode: they are who the clinic's users work with)."""
    clinic = make_clinic(tmp_path_factory.mktemp("clinic"))
    data = patient_data(clinic)
    conn = sqlite3.connect(clinic)
    try:
        for (body,) in conn.execute("SELECT body FROM records WHERE resource = 'practitioners'"):
            p = json.loads(body)
            data["name"] -= {p.get("first_name"), p.get("last_name")}
    finally:
        conn.close()
    return data


def pictures(kind: str) -> list[Path]:
    pattern = f"*{kind}*.svg"
    return sorted(SNAPSHOTS.glob(f"*/{pattern}")) + sorted(SCREENSHOTS.glob(pattern))


def test_screen_share_pictures_show_no_patient_data(clinic_data: dict[str, set[str]]) -> None:
    shared = pictures("share")
    assert len(shared) >= 18, "the screen-share snapshots are missing"
    problems = {p.relative_to(ROOT).as_posix(): found for p in shared if (found := leaks(lines_of(p), clinic_data))}
    assert problems == {}


def test_the_check_finds_patient_data_in_plain_pictures(clinic_data: dict[str, set[str]]) -> None:
    plain = [p.name for p in pictures("plain") if leaks(lines_of(p), clinic_data)]
    assert "test_run_screens[09b-delta-conflict-plain].svg" in plain, "the detector misses what the pictures show"
