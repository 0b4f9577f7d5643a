"""The named value transforms of field rules, and applying an object's rules to a record.

A rule reads its source (a record attribute, "derived.<name>", or "custom.<token>"), turns it into text with its
transform, and puts it in a custom field or a labelled description line. Structured targets (name, e-mails,
phones...) are built by the object's own transform; their rules only switch them on or off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from cliniko2nutshell.cliniko.models import Patient, Pronouns
from cliniko2nutshell.mapping.derived import custom_value_text
from cliniko2nutshell.mapping.model import TRANSFORM_NAMES, FieldRule
from cliniko2nutshell.mapping.outputs import Context
from cliniko2nutshell.mapping.timeutil import local

Transform = Callable[[Any, Context], str | None]


def _text(value: Any, ctx: Context) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return _yes_no(value, ctx)
    if isinstance(value, datetime):
        return _local_datetime(value, ctx)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _currency(value, ctx)
    if isinstance(value, list | tuple):
        return _join(value, ctx)
    if isinstance(value, BaseModel):
        return None  # a link or a nested object has no text of its own; structured targets handle those
    text = str(value).strip()
    return text or None


def _date(value: Any, ctx: Context) -> str | None:
    if isinstance(value, datetime):
        return _local_date(value, ctx)
    if isinstance(value, date):
        return value.isoformat()
    return _text(value, ctx)


def _local_date(value: Any, ctx: Context) -> str | None:
    if isinstance(value, datetime):
        return local(value, ctx.tz).date().isoformat()
    return _date(value, ctx) if isinstance(value, date) else _text(value, ctx)


def _local_datetime(value: Any, ctx: Context) -> str | None:
    if isinstance(value, datetime):
        return local(value, ctx.tz).strftime("%Y-%m-%d %H:%M")
    return _text(value, ctx)


def _currency(value: Any, ctx: Context) -> str | None:
    """The amount as "123.45" (`apply_rules` adds the currency: see `money`)."""
    if value is None:
        return None
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite():
        return None
    try:
        return str(amount.quantize(Decimal("0.01")))
    except InvalidOperation:  # beyond the decimal context's precision: keep the exact value
        return str(amount)


def _yes_no(value: Any, ctx: Context) -> str | None:
    if value is None:
        return None
    return "Yes" if bool(value) else "No"


def _join(value: Any, ctx: Context) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        return _text(value, ctx)
    parts = [t for t in (_text(v, ctx) for v in value) if t]
    return ", ".join(parts) or None


def _service_choice(value: Any, ctx: Context) -> str | None:
    name = _text(value, ctx)
    if name is None:
        return None
    return ctx.map.value_maps.service_types.get(name, name)


def _pronouns(value: Any, ctx: Context) -> str | None:
    if isinstance(value, Pronouns):
        parts = [p for p in (value.nominative, value.accusative) if p and p.strip()]
        return "/".join(p.strip() for p in parts) or None
    return _text(value, ctx)


TRANSFORMS: dict[str, Transform] = {
    "text": _text,
    "date": _date,
    "local_date": _local_date,
    "local_datetime": _local_datetime,
    "currency": _currency,
    "yes_no": _yes_no,
    "join": _join,
    "service_choice": _service_choice,
    "pronouns": _pronouns,
}
assert set(TRANSFORMS) == TRANSFORM_NAMES, "model.TRANSFORM_NAMES and values.TRANSFORMS must list the same names"


def source_value(record: BaseModel, source: str, derived: Mapping[str, Any]) -> Any:
    """The raw value a rule reads. Unknown attributes read as None (an older export may lack a newer field)."""
    if source.startswith("derived."):
        return derived.get(source.removeprefix("derived."))
    if source.startswith("custom."):
        return custom_value_text(record, source.removeprefix("custom.")) if isinstance(record, Patient) else None
    value: Any = record
    for part in source.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def money(amount: str, ctx: Context, field_type: str | None) -> Any:
    """An amount with its currency, never bare (a bare amount lands in Nutshell's default currency, USD):
    `{"currency": "AUD", "amount": "123.45"}` for a Currency custom field, "123.45 AUD" as text elsewhere.

    Unconfirmed: the REST OpenAPI document types custom-field values as strings, while the JSON-RPC reference
    writes a Currency value as {currency, amount}; we send the object, the only documented way to name the
    currency (the sandbox takes both)."""
    currency = ctx.currency
    if currency is None:
        return amount  # no currency known: the pre-flight blocks the run until the map names one
    if field_type == "Currency":
        return {"currency": currency, "amount": amount}
    return f"{amount} {currency}"


@dataclass
class Applied:
    """What an object's rules produced for one record."""

    lines: list[str] = field(default_factory=list)  # "Label: value" description lines, in rule order
    custom_fields: dict[str, Any] = field(default_factory=dict)  # text, or {"currency", "amount"} for money
    structured: set[str] = field(default_factory=set)  # structured targets switched on


def apply_rules(rules: list[FieldRule], record: BaseModel, derived: Mapping[str, Any], ctx: Context) -> Applied:
    out = Applied()
    for rule in rules:
        if not rule.enabled:
            continue
        if not rule.target.startswith(("description.", "customFields.")):
            out.structured.add(rule.target)
            continue
        value = TRANSFORMS[rule.transform](source_value(record, rule.source, derived), ctx)
        if value is None:
            continue
        spec = ctx.map.custom_field(rule.custom_field) if rule.custom_field is not None else None
        sent: Any = money(value, ctx, spec.type if spec else None) if rule.transform == "currency" else value
        if rule.custom_field is not None:
            out.custom_fields[rule.custom_field] = sent
        else:
            value = sent
            label = rule.target.removeprefix("description.")
            out.lines.append(f"{label}:\n{value}" if "\n" in value else f"{label}: {value}")
    return out


# Cliniko stores the country as a name; Nutshell's address `country` is a code.
_COUNTRY_CODES = {
    "australia": "AU",
    "new zealand": "NZ",
    "united kingdom": "GB",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "ireland": "IE",
    "canada": "CA",
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "us": "US",
    "south africa": "ZA",
    "singapore": "SG",
    "hong kong": "HK",
    "malaysia": "MY",
    "india": "IN",
    "philippines": "PH",
    "indonesia": "ID",
    "japan": "JP",
    "china": "CN",
    "south korea": "KR",
    "germany": "DE",
    "france": "FR",
    "spain": "ES",
    "italy": "IT",
    "netherlands": "NL",
    "belgium": "BE",
    "switzerland": "CH",
    "austria": "AT",
    "sweden": "SE",
    "norway": "NO",
    "denmark": "DK",
    "finland": "FI",
    "iceland": "IS",
    "portugal": "PT",
    "greece": "GR",
    "poland": "PL",
    "czech republic": "CZ",
    "czechia": "CZ",
    "hungary": "HU",
    "estonia": "EE",
    "latvia": "LV",
    "lithuania": "LT",
    "israel": "IL",
    "united arab emirates": "AE",
    "saudi arabia": "SA",
    "qatar": "QA",
    "egypt": "EG",
    "kenya": "KE",
    "nigeria": "NG",
    "brazil": "BR",
    "argentina": "AR",
    "chile": "CL",
    "mexico": "MX",
    "colombia": "CO",
    "fiji": "FJ",
    "papua new guinea": "PG",
    "samoa": "WS",
    "tonga": "TO",
    "thailand": "TH",
    "vietnam": "VN",
}


def country_code(name: str | None, code: str | None = None) -> str | None:
    """ISO 3166 alpha-2 for Nutshell's `country`. Unconfirmed: what Nutshell does with an unknown value; we pass
    a name we cannot translate through unchanged rather than drop it."""
    if code and len(code.strip()) == 2:
        return code.strip().upper()
    if not name or not name.strip():
        return None
    return _COUNTRY_CODES.get(name.strip().casefold(), name.strip())
