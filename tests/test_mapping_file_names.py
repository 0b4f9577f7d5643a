"""The name an attachment gets in Nutshell: whatever Cliniko holds, one plain file name, safe on Windows too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cliniko2nutshell.mapping.documents import WINDOWS_RESERVED, nutshell_file_name

FORBIDDEN = set('<>:"/\\|?*')


@pytest.mark.parametrize(
    ("cliniko", "nutshell"),
    [
        ("report-2024.pdf", "report-2024.pdf"),
        ("../../x", "x"),
        ("..\\..\\evil.pdf", "evil.pdf"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\System32\\drivers\\etc\\hosts", "hosts"),
        ("CON", "_CON"),
        ("NUL.txt", "_NUL.txt"),
        ("aux.COM1.pdf", "_aux.COM1.pdf"),
        ('scan<1>:"a|b"?*. ', "scan_1___a_b___"),
        ("\u202egnp.exe", "gnp.exe"),
        ("tab\there\x07.pdf", "tab here.pdf"),
        ("", "attachment-42.pdf"),
        ("..", "attachment-42.pdf"),
        ("  . ", "attachment-42.pdf"),
        ("Zoë 🌸 x-ray.jpg", "Zoë 🌸 x-ray.jpg"),
    ],
)
def test_names_become_one_plain_file_name(cliniko: str, nutshell: str) -> None:
    assert nutshell_file_name(cliniko, "42", "application/pdf") == nutshell


def test_a_long_name_keeps_its_extension() -> None:
    name = nutshell_file_name("very-long-" * 40 + ".pdf", "42", "application/pdf")
    assert len(name) <= 200 and name.endswith(".pdf")


@given(st.text(max_size=400))
def test_any_name_is_safe_everywhere(raw: str) -> None:
    name = nutshell_file_name(raw, "7", None)
    assert name and len(name) <= 200
    assert not FORBIDDEN & set(name)
    assert all(ch.isprintable() or ch == " " for ch in name)
    assert name not in (".", "..") and not name.endswith((".", " "))
    assert name.split(".")[0].upper() not in WINDOWS_RESERVED
