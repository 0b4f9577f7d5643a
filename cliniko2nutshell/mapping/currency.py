"""The clinic's currency: from the Cliniko account's country (`settings.account.country_code`), changeable in the map.

Nutshell's Currency custom fields take `{"currency": "AUD", "amount": "12.50"}`; a bare amount lands in the
account's default currency (USD), so money is always sent with its currency.
"""

from __future__ import annotations

import re

# ISO 3166 alpha-2 -> ISO 4217, for the countries Cliniko serves (its shards: au, uk, eu, ca; clinics in NZ, IE,
# the US and elsewhere) and their neighbours. A country missing here leaves the currency for the user to choose.
CURRENCY_BY_COUNTRY: dict[str, str] = {
    "AU": "AUD",
    "NZ": "NZD",
    "GB": "GBP",
    "UK": "GBP",  # not ISO, but seen in hand-written settings
    "IM": "GBP",
    "JE": "GBP",
    "GG": "GBP",
    "IE": "EUR",
    "US": "USD",
    "CA": "CAD",
    "ZA": "ZAR",
    "SG": "SGD",
    "HK": "HKD",
    "MY": "MYR",
    "PH": "PHP",
    "IN": "INR",
    "AE": "AED",
    "JP": "JPY",
    "CH": "CHF",
    "NO": "NOK",
    "SE": "SEK",
    "DK": "DKK",
    "PL": "PLN",
    "CZ": "CZK",
    "HU": "HUF",
    "IS": "ISK",
    "FJ": "FJD",
    "PG": "PGK",
    **dict.fromkeys(
        (
            "AT",
            "BE",
            "CY",
            "DE",
            "EE",
            "ES",
            "FI",
            "FR",
            "GR",
            "HR",
            "IT",
            "LT",
            "LU",
            "LV",
            "MT",
            "NL",
            "PT",
            "SI",
            "SK",
        ),
        "EUR",
    ),
}

_CODE = re.compile(r"^[A-Z]{3}$")


def currency_for_country(country_code: str | None) -> str | None:
    """The currency of a country (None when the country is unknown or not in our table)."""
    if not country_code:
        return None
    return CURRENCY_BY_COUNTRY.get(country_code.strip().upper())


def normalize_currency(code: str) -> str:
    """An ISO 4217 code as Nutshell wants it ("aud" -> "AUD"); ValueError for anything else."""
    text = (code or "").strip().upper()
    if not _CODE.match(text):
        raise ValueError(f"{code!r} is not a currency code: use three letters such as AUD, NZD, GBP, USD or EUR")
    return text
