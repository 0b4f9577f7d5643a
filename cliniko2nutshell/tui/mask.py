"""Screen-share mode's one masking function. Pure: no Textual, no I/O.

Every widget that shows patient data passes the value through `mask(value, kind)` when the mode is on. It keeps
enough to tell records apart on a shared screen (initials, the first letter of an e-mail and its top-level
domain, the last three digits of a phone) and hides the rest. Practitioner and Nutshell user names are staff, not
patients: callers do not mask them.
"""

from __future__ import annotations

import re
from enum import StrEnum

DOT = "•"
HIDDEN = DOT * 3


class Kind(StrEnum):
    NAME = "name"  # a patient's or a third party's name: initials
    EMAIL = "email"
    PHONE = "phone"
    BIRTH_DATE = "birth_date"  # hidden entirely
    ADDRESS = "address"  # hidden but for the country
    TEXT = "text"  # free text (notes, descriptions, error messages): e-mails, phones and dates inside are masked
    VALUE = "value"  # a field value of unknown meaning: masked as free text


_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
# A run of 6+ digits with the separators phones use (spaces, dots, dashes, brackets, a leading +).
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{4,}\d(?![\w])")
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")


def initials(name: str) -> str:
    """'Jane van der Berg' -> 'J. V. D. B.'; nothing printable -> '—'."""
    letters = [part[0].upper() for part in re.split(r"[\s\-]+", name.strip()) if part and part[0].isalnum()]
    return " ".join(f"{c}." for c in letters) if letters else "—"


def mask_email(email: str) -> str:
    """'jane.smith@example.com' -> 'j•••@•••.com'."""
    local, at, domain = email.strip().partition("@")
    if not at:
        return HIDDEN
    tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
    return f"{local[:1]}{HIDDEN}@{HIDDEN}" + (f".{tld}" if tld else "")


def mask_phone(phone: str) -> str:
    """'+61 3 9000 0591' -> '•••• ••• 591' (the last three digits tell two numbers apart)."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 4:
        return HIDDEN
    return f"{DOT * 4} {DOT * 3} {digits[-3:]}"


def mask_text(text: str) -> str:
    """Free text with the e-mails, phone numbers and dates inside it masked."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    text = _DATE.sub("••••-••-••", text)
    return _PHONE.sub(
        lambda m: mask_phone(m.group(0)) if sum(c.isdigit() for c in m.group(0)) >= 6 else m.group(0), text
    )


def mask(value: object, kind: Kind) -> str:
    """The value as screen-share mode shows it. None and empty values stay empty."""
    if value is None:
        return ""
    text = str(value)
    if not text.strip():
        return text
    if kind is Kind.NAME:
        return initials(text)
    if kind is Kind.EMAIL:
        return mask_email(text)
    if kind is Kind.PHONE:
        return mask_phone(text)
    if kind is Kind.BIRTH_DATE:
        return "••••-••-••"
    if kind is Kind.ADDRESS:
        return HIDDEN
    return mask_text(text)


class Masker:
    """Applies `mask` when screen-share mode is on, and nothing when it is off."""

    def __init__(self, on: bool = False) -> None:
        self.on = on

    def __call__(self, value: object, kind: Kind) -> str:
        if not self.on:
            return "" if value is None else str(value)
        return mask(value, kind)
