"""Value rules of the Nutshell sandbox, shared by both protocols: times, names, e-mails, phones, multi-value
items, and custom field types with their validation.

Everything here is pure. A bad value raises `ValueError` with a message fit to show the API user; the protocol
layers turn it into their own error body.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

# The types a custom field definition may have (reference §2.7). Number is not in Nutshell's published list but
# its 2026 blog shows numeric fields. Unconfirmed: we choose to accept "Number".
CUSTOM_FIELD_TYPES = ("Text", "LongText", "Currency", "Date", "Decision", "Number")
LEAD_ONLY_TYPES = ("Email", "location", "phone", "URL")
# Unconfirmed: the currency used when a Currency value is given as a bare amount; we choose USD, Nutshell's default.
DEFAULT_CURRENCY = "USD"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*(\d+)\s*$", re.IGNORECASE)
# Calling codes by prefix, longest match first; enough for the clinics this tool serves and for the tests.
_CALLING_CODES = sorted(
    [
        "1",
        "7",
        "27",
        "31",
        "33",
        "34",
        "39",
        "41",
        "44",
        "45",
        "46",
        "47",
        "49",
        "52",
        "55",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "86",
        "90",
        "91",
        "353",
        "351",
        "852",
        "971",
        "972",
    ],
    key=len,
    reverse=True,
)


# --- times -----------------------------------------------------------------------------------------------------


def atom(ts: int | None) -> str | None:
    """A Unix time as JSON-RPC writes it: `YYYY-MM-DDTHH:MM:SS+0000` (offset without a colon)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_time(value: Any, what: str) -> int:
    """Unix seconds from an int, a digit string, or an RFC 3339 / ATOM time (with or without a colon in the offset)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a time, not a boolean")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        if re.search(r"[+-]\d{4}$", text):
            text = text[:-2] + ":" + text[-2:]
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return int(parsed.timestamp())
    raise ValueError(f"{what} is not a valid time: {value!r}")


# --- names -----------------------------------------------------------------------------------------------------


def split_name(name: str) -> tuple[str, str]:
    """(given, family) from a full name: the last word is the family name.

    Unconfirmed: how Nutshell splits a one-word name; we choose to keep it whole as the given name.
    """
    words = name.split()
    if len(words) < 2:
        return (words[0] if words else "", "")
    return " ".join(words[:-1]), words[-1]


def initials(name: str) -> str:
    return "".join(w[0] for w in name.split()[:2]).upper() if name.strip() else ""


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unnamed"


# --- e-mails, phones, multi-value items --------------------------------------------------------------------------


def check_email(value: Any) -> str:
    """Unconfirmed: Nutshell's e-mail validation rule; we choose to reject anything not shaped `x@y.z`."""
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise ValueError(f"{value!r} is not a valid email address")
    return value.strip()


def parse_phone(raw: Any) -> dict[str, Any]:
    """The structured phone Nutshell returns, from what the user typed.

    Unconfirmed: Nutshell applies the account's default country to numbers without a `+`; the sandbox knows no
    default country, so such numbers keep an empty country code and an E164 made of their digits.
    """
    if isinstance(raw, dict):  # an already structured value (REST output shape sent back as input)
        raw = raw.get("E164") or raw.get("countryCodeAndNumber") or raw.get("numberFormatted") or raw.get("number")
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise ValueError(f"Invalid phone number: {raw!r}")
    text = str(raw).strip()
    extension = None
    match = _EXTENSION.search(text)
    if match:
        extension = match.group(1)
        text = text[: match.start()]
    digits = re.sub(r"\D", "", text)
    if len(digits) < 3:
        raise ValueError(f"Invalid phone number: {raw!r}")
    country = ""
    number = digits
    if text.startswith("+"):
        country = next((c for c in _CALLING_CODES if digits.startswith(c)), digits[:1])
        number = digits[len(country) :]
    formatted = text.lstrip("+")
    if country and formatted.startswith(country):
        formatted = formatted[len(country) :].strip(" -.")
    return {
        "countryCode": country,
        "number": number,
        "extension": extension,
        "numberFormatted": formatted,
        "E164": "+" + country + number,
        "countryCodeAndNumber": (f"+{country} {formatted}" if country else formatted),
    }


ADDRESS_KEYS = ("address_1", "address_2", "address_3", "city", "state", "postalCode", "country")


def normalise_address(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"An address must be an object with {', '.join(ADDRESS_KEYS)}; got {value!r}")
    inner = value.get("value") if isinstance(value.get("value"), dict) else {}
    merged = {**inner, **{k: v for k, v in value.items() if k in ADDRESS_KEYS}}
    out: dict[str, Any] = {}
    for key in ADDRESS_KEYS:
        item = merged.get(key)
        if item is not None and not isinstance(item, str | int):
            raise ValueError(f"address {key} must be text, not {item!r}")
        out[key] = None if item in (None, "") else str(item)
    if not any(out.values()):
        raise ValueError("An address needs at least one of " + ", ".join(ADDRESS_KEYS))
    return out


def item(label: str, value: Any, primary: bool) -> dict[str, Any]:
    """One element of a multi-value field, protocol-neutral: phones keep what was typed, e-mails are checked."""
    return {"label": label, "value": value, "primary": primary}


def one_primary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exactly one primary element when there are any: the first flagged one, else the first."""
    chosen = next((i for i, it in enumerate(items) if it["primary"]), 0)
    return [{**it, "primary": i == chosen} for i, it in enumerate(items)]


def check_multi_value(field: str, value: Any) -> Any:
    """Validate one value of `emails` / `phones` / `urls` / `addresses` and return its stored form."""
    if field == "emails":
        return check_email(value)
    if field == "phones":
        parse_phone(value)  # validation only: we keep what was typed and derive the structure when rendering
        if isinstance(value, dict):
            return value.get("E164") or value.get("number")
        return str(value).strip()
    if field == "urls":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"Invalid URL: {value!r}")
        return value.strip()
    if field == "addresses":
        return normalise_address(value)
    raise ValueError(f"{field} is not a multi-value field")


# --- custom fields ---------------------------------------------------------------------------------------------


def check_definition(name: Any, type_: Any, choices: Any, is_multiple: Any, entity: str) -> dict[str, Any]:
    """A custom field definition's stored form, or ValueError."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("A custom field needs a non-empty name")
    if type_ in LEAD_ONLY_TYPES and entity != "Leads":
        raise ValueError("Email, location, phone, and URL are only applicable to leads.")
    if type_ not in CUSTOM_FIELD_TYPES and type_ not in LEAD_ONLY_TYPES:
        raise ValueError(f"Invalid custom field type {type_!r}; use one of {', '.join(CUSTOM_FIELD_TYPES)}")
    if type_ == "Decision":
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
            raise ValueError("A Decision custom field needs a non-empty list of text choices")
    elif choices not in (None, []):
        raise ValueError("choices apply to Decision custom fields only")
    if is_multiple is not None and not isinstance(is_multiple, bool):
        raise ValueError("isMultiple must be true or false")
    return {
        "name": name.strip(),
        "type": type_,
        "choices": list(choices) if type_ == "Decision" else [],
        "is_multiple": bool(is_multiple) and type_ == "Decision",
    }


def coerce_custom_value(definition: dict[str, Any], value: Any) -> Any:
    """The stored form of a value for a custom field, or ValueError naming the field and what it expects."""
    name, type_ = definition["name"], definition["type"]
    if value is None:
        return None
    if type_ in ("Text", "LongText", "Email", "location", "phone", "URL"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"Custom field '{name}' ({type_}) expects text, not {value!r}")
        return str(value)
    if type_ == "Number":
        number = _decimal(value)
        if number is None:
            raise ValueError(f"Custom field '{name}' (Number) expects a number, not {value!r}")
        return int(number) if number == number.to_integral_value() else float(number)
    if type_ == "Currency":
        currency, amount = DEFAULT_CURRENCY, value
        if isinstance(value, dict):
            currency = value.get("currency") or value.get("currency_shortname") or DEFAULT_CURRENCY
            amount = value.get("amount")
        number = _decimal(amount)
        if number is None or not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ValueError(
                f"Custom field '{name}' (Currency) expects an amount or {{'currency': 'USD', 'amount': '10.00'}}, "
                f"not {value!r}"
            )
        return {"currency": currency.upper(), "amount": str(number.quantize(Decimal("0.01")))}
    if type_ == "Date":
        if isinstance(value, str):
            match = _DATE.match(value.strip())
            if match:
                try:
                    return dt.date(*(int(g) for g in match.groups())).isoformat()
                except ValueError:
                    pass
        raise ValueError(f"Custom field '{name}' (Date) expects a date as YYYY-MM-DD, not {value!r}")
    if type_ == "Decision":
        values = value if isinstance(value, list) else [value]
        if len(values) > 1 and not definition["is_multiple"]:
            raise ValueError(f"Custom field '{name}' (Decision) takes one choice, not {value!r}")
        chosen = []
        for v in values:
            match = next((c for c in definition["choices"] if isinstance(v, str) and c.lower() == v.lower()), None)
            if match is None:
                raise ValueError(
                    f"{v!r} is not a choice of custom field '{name}'; choices: {', '.join(definition['choices'])}"
                )
            chosen.append(match)
        return chosen if definition["is_multiple"] else chosen[0]
    raise ValueError(f"Custom field '{name}' has an unknown type {type_!r}")


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
