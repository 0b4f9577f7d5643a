"""Default value maps: appointment types and communication types to Nutshell activity types, service types to the
Primary Service Type choices, businesses to activity locations. The user edits them in the map."""

from __future__ import annotations

from collections.abc import Iterable

from rapidfuzz import fuzz, process

from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.model import ValueMaps
from cliniko2nutshell.mapping.names import fold

# Nutshell's default activity types (reference §2.4), used until the real list is known.
NUTSHELL_DEFAULT_ACTIVITY_TYPES = ("Phone Call / Meeting", "Email", "Meeting")

_COMMUNICATION_WANTS = {
    "SMS": ("SMS", "Text Message", "Text", "Phone Call / Meeting"),
    "Email": ("Email", "E-mail"),
    "Phone call": ("Phone Call", "Call", "Phone Call / Meeting"),
    "Other": ("Note", "Other", "Meeting"),
}
_APPOINTMENT_WANTS = ("Appointment", "Consultation", "Meeting", "Phone Call / Meeting")


def _pick(wants: Iterable[str], available: list[str]) -> str | None:
    folded = {fold(a): a for a in available}
    for w in wants:
        if fold(w) in folded:
            return folded[fold(w)]
    return None


def activity_type_for(name: str | None, available: list[str], fallback: str) -> str:
    """The Nutshell activity type closest to a Cliniko appointment type's name (or category), else `fallback`."""
    if name and available:
        hit = process.extractOne(fold(name), [fold(a) for a in available], scorer=fuzz.token_set_ratio)
        if hit is not None and hit[1] >= 85:
            return available[hit[2]]
    return fallback


def default_value_maps(catalog: Catalog, activity_types: Iterable[str] | None = None) -> ValueMaps:
    available = list(activity_types or NUTSHELL_DEFAULT_ACTIVITY_TYPES)
    default_type = _pick(_APPOINTMENT_WANTS, available) or available[0]
    document_type = _pick(("Document", "Note", "Meeting"), available) or default_type
    appointment_types = {
        tid: activity_type_for(t.name, available, activity_type_for(t.category, available, default_type))
        for tid, t in sorted(catalog.appointment_types.items())
    }
    communication_types = {
        kind: _pick(wants, available) or default_type for kind, wants in _COMMUNICATION_WANTS.items()
    }
    names = sorted(
        {b.name.strip() for b in catalog.billable_items.values() if b.name and b.name.strip()}
        | {p.name.strip() for p in catalog.products.values() if p.name and p.name.strip()}
    )
    locations = {bid: business_location(catalog, bid) or "" for bid in sorted(catalog.businesses)}
    return ValueMaps(
        appointment_types=appointment_types,
        default_activity_type=default_type,
        communication_types=communication_types,
        document_activity_type=document_type,
        service_types={n: n for n in names},
        locations={k: v for k, v in locations.items() if v},
    )


def business_location(catalog: Catalog, business_id: str | None) -> str | None:
    """ "Healthy Times, 20 Smith Street, Smithytown": the business's name and street address."""
    b = catalog.businesses.get(business_id or "")
    if b is None:
        return None
    name = b.display_name or b.business_name or b.label
    parts = [p.strip() for p in (name, b.address_1, b.address_2, b.city) if p and p.strip()]
    return ", ".join(parts) or None


def service_choices(value_maps: ValueMaps) -> list[str]:
    """The Primary Service Type picklist: the distinct targets of the service-type value map."""
    return sorted({v for v in value_maps.service_types.values() if v})


def unknown_activity_types(value_maps: ValueMaps, available: Iterable[str]) -> list[str]:
    """Activity types the map uses that Nutshell does not have (activity types cannot be created by the API)."""
    have = {fold(a) for a in available}
    used = {
        value_maps.default_activity_type,
        value_maps.document_activity_type,
        *value_maps.appointment_types.values(),
        *value_maps.communication_types.values(),
    }
    return sorted(u for u in used if u and fold(u) not in have)
