"""Screen-share mode's masking function: enough to tell records apart, nothing more."""

from __future__ import annotations

import pytest

from cliniko2nutshell.tui.mask import Kind, Masker, initials, mask, mask_email, mask_phone, mask_text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Jane Smith", "J. S."),
        ("José Álvarez", "J. Á."),
        ("  mary-jane  o'neil ", "M. J. O."),
        ("李 小龍", "李. 小."),
        ("", "—"),
        ("   ", "—"),
    ],
)
def test_names_become_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


def test_emails_keep_first_letter_and_top_level_domain() -> None:
    assert mask_email("jane.smith@example.com") == "j•••@•••.com"
    assert mask_email("x@localhost") == "x•••@•••"
    assert mask_email("not-an-email") == "•••"


def test_phones_keep_the_last_three_digits() -> None:
    assert mask_phone("+61 3 9000 0591") == "•••• ••• 591"
    assert mask_phone("(03) 9123-4567") == "•••• ••• 567"
    assert mask_phone("12") == "•••"


def test_birth_dates_and_addresses_are_hidden() -> None:
    assert "1984" not in mask("1984-02-29", Kind.BIRTH_DATE)
    assert mask("12 Harbour St, Sydney", Kind.ADDRESS) == "•••"


def test_free_text_masks_what_it_contains() -> None:
    text = "Contact jane@example.com or 0412 345 678 before 1990-05-01; patient 12345 is fine"
    out = mask_text(text)
    assert "jane@example.com" not in out and "j•••@•••.com" in out
    assert "0412 345 678" not in out and "678" in out
    assert "1990-05-01" not in out
    assert "patient 12345" in out  # short numbers (ids) stay: they identify records, not people


def test_empty_values_stay_empty_and_the_masker_is_off_by_default() -> None:
    assert mask(None, Kind.NAME) == ""
    assert mask("", Kind.EMAIL) == ""
    off = Masker()
    assert off("Jane Smith", Kind.NAME) == "Jane Smith"
    off.on = True
    assert off("Jane Smith", Kind.NAME) == "J. S."
