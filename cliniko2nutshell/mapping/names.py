"""Name and e-mail normalisation shared by practitioner matching, the proposer and the pre-flight."""

from __future__ import annotations

import re
import unicodedata

# Honorifics and post-nominals that say nothing about who someone is.
TITLES = frozenset(
    {
        "dr",
        "doctor",
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "prof",
        "professor",
        "assoc",
        "associate",
        "a/prof",
        "aprof",
        "sir",
        "dame",
        "rev",
        "fr",
        "sr",
        "jr",
        "md",
        "phd",
        "dpt",
        "do",
        "rn",
        "np",
        "pa",
        "dc",
        "bsc",
        "msc",
        "mbbs",
        "facp",
        "fracgp",
        "physio",
        "osteo",
        "ii",
        "iii",
    }
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")


def fold(text: str) -> str:
    """Lower case, diacritics removed, ligatures and special letters spelled out (Ø -> o, ß -> ss)."""
    special = str.maketrans(
        {
            "ø": "o",
            "Ø": "o",
            "ß": "ss",
            "æ": "ae",
            "Æ": "ae",
            "œ": "oe",
            "Œ": "oe",
            "ł": "l",
            "Ł": "l",
            "đ": "d",
            "Đ": "d",
            "ı": "i",
        }
    )
    decomposed = unicodedata.normalize("NFKD", text.translate(special))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def name_tokens(text: str | None) -> list[str]:
    """Folded word tokens with titles removed; hyphenated and apostrophe names split into their parts."""
    if not text:
        return []
    words = re.split(r"[\s,/]+", fold(text))
    out: list[str] = []
    for word in words:
        bare = word.strip(".()\"'")
        if not bare or bare.replace(".", "") in TITLES:
            continue
        # O'Brien and D’Angelo are one word; Garcia-Lopez and J.R. are several.
        bare = re.sub(r"['’`]", "", bare)
        out.extend(p for p in re.split(r"[-.]+", bare) if p)
    return out


def normalize_email(value: str | None) -> str:
    """The comparable form of an e-mail: trimmed and case-folded (both sides of the @, as people type it)."""
    return (value or "").strip().casefold()


def is_valid_email(value: str | None) -> bool:
    """A usable single address: one @, no spaces, a dotted domain. Deliberately simple, not RFC 5322."""
    v = (value or "").strip()
    if not _EMAIL.match(v) or ".." in v or len(v) > 254:  # RFC 5321's limits, which mail servers enforce
        return False
    local, domain = v.rsplit("@", 1)
    if len(local) > 64:
        return False
    return not (local.startswith(".") or local.endswith(".") or domain.startswith(("-", ".")))
