"""Patients to people, third-party contacts (and optionally businesses) to companies."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from cliniko2nutshell.cliniko.models import Business, Contact, Patient, PhoneNumber
from cliniko2nutshell.mapping.catalog import Catalog, PatientBundle
from cliniko2nutshell.mapping.derived import custom_value_text, derive
from cliniko2nutshell.mapping.model import CustomFieldAction
from cliniko2nutshell.mapping.names import is_valid_email
from cliniko2nutshell.mapping.outputs import USER, Context, Outcome, Planned, Ref, Skip, Skipped, marker
from cliniko2nutshell.mapping.timeutil import aware
from cliniko2nutshell.mapping.values import apply_rules, country_code

_PHONE_ORDER = {"mobile": 0, "home": 1, "work": 2, "other": 3, "fax": 4}


def person_name(p: Patient) -> str | None:
    """First and last name; the last (or first) alone when the other is missing; else Cliniko's label."""
    parts = [x.strip() for x in (p.first_name, p.last_name) if x and x.strip()]
    return " ".join(parts) or ((p.label or "").strip() or None)


def placeholder_name(patient_id: str) -> str:
    return f"Cliniko patient {patient_id}"


def phone_value(phone: PhoneNumber) -> str | None:
    """Unconfirmed: contactPostInput's `phones` component types `value` as the structured object Nutshell
    returns, while Nutshell's documented create example (and accountPostInput) send the number as a string.
    We send the string: Cliniko's E.164 form when it normalised the number, else the number as typed."""
    normalized = (phone.normalized_number or "").strip()
    if normalized.startswith("+") and len(re.sub(r"\D", "", normalized)) >= 6:
        return normalized
    typed = (phone.number or "").strip()
    return typed if re.search(r"\d{3}", typed) else None


def unusable_phone_lines(numbers: list[PhoneNumber]) -> list[str]:
    """What was typed in a phone field but is no number ("call after 5pm"): kept where a person can read it."""
    return [f"Phone in Cliniko (not a number): {typed}" for ph in numbers
            if phone_value(ph) is None and (typed := (ph.number or "").strip())]  # fmt: skip


def phones_payload(numbers: list[PhoneNumber]) -> list[dict[str, Any]]:
    items = []
    seen: set[str] = set()
    for ph in sorted(numbers, key=lambda x: _PHONE_ORDER.get((x.phone_type or "other").lower(), 3)):
        value = phone_value(ph)
        if value is None or value in seen:
            continue
        seen.add(value)
        items.append({"isPrimary": not items, "name": (ph.phone_type or "phone").strip().lower(), "value": value})
    return items


def _address_parts(rec: Patient | Contact | Business) -> dict[str, str]:
    fields = {
        "address_1": rec.address_1,
        "address_2": rec.address_2,
        "address_3": getattr(rec, "address_3", None),
        "city": rec.city,
        "state": rec.state,
        "postalCode": rec.post_code,
        "country": country_code(rec.country, rec.country_code),
    }
    return {k: v.strip() for k, v in fields.items() if v and v.strip()}


def owner_practitioner(bundle: PatientBundle, catalog: Catalog) -> str | None:
    """The practitioner the patient saw most (ties: the most recent); else the author of their treatment notes,
    else the practitioner on their invoices."""
    counts: Counter[str] = Counter()
    latest: dict[str, datetime] = {}
    oldest = datetime.min.replace(tzinfo=UTC)

    def seen(pid: str | None, when: datetime | None) -> None:
        if pid:
            counts[pid] += 1
            latest[pid] = max(latest.get(pid, oldest), aware(when) if when else oldest)

    for a in bundle.appointments:
        if not a.is_cancelled and not a.is_archived:
            seen(a.practitioner.id if a.practitioner else None, a.starts_at)
    for att in bundle.attendees:
        group = catalog.group_appointments.get(att.booking.id or "") if att.booking else None
        if group is not None and not att.is_cancelled and group.practitioner:
            seen(group.practitioner.id, group.starts_at)
    if not counts:
        for n in bundle.treatment_notes:
            seen(n.practitioner.id if n.practitioner else None, n.created_at)
    if not counts:
        for inv in bundle.invoices:
            seen(inv.practitioner.id if inv.practitioner else None, inv.created_at)
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k], -latest[k].timestamp(), k))


def company_links(bundle: PatientBundle, ctx: Context) -> list[Ref]:
    refs: list[Ref] = []
    if ctx.map.object("contacts") is not None:
        ids = []
        for p in (bundle.patient, *bundle.merged):
            if p.referring_doctor and p.referring_doctor.id:
                ids.append(p.referring_doctor.id)
        ids += [c.contact.id for c in bundle.patient_cases if c.contact and c.contact.id]
        rs = bundle.referral_source
        if rs and (rs.referrer_type or "").lower() == "contact" and rs.referrer and rs.referrer.id:
            ids.append(rs.referrer.id)
        refs += [Ref("company", i) for i in dict.fromkeys(ids) if i in ctx.catalog.contacts]
    if ctx.map.object("businesses") is not None:
        bids = [a.business.id for a in bundle.appointments if a.business and a.business.id]
        for att in bundle.attendees:
            group = ctx.catalog.group_appointments.get(att.booking.id or "") if att.booking else None
            if group is not None and group.business and group.business.id:
                bids.append(group.business.id)
        refs += [Ref("business_company", b) for b in dict.fromkeys(bids) if b in ctx.catalog.businesses]
    return refs


def person(bundle: PatientBundle, ctx: Context) -> Outcome:
    p = bundle.patient
    m = ctx.map
    obj = m.object("patients")
    if obj is None:
        return Skipped("person", p.id, Skip("patients are switched off in the map"), p.id)
    if p.is_archived and not m.policies.archived_patients:
        return Skipped("person", p.id, Skip("archived in Cliniko; the map leaves archived patients out"), p.id)

    derived = asdict(derive(bundle, ctx.catalog, ctx.custom_field_defs))
    rules = obj.rules() + (m.object("invoices").rules() if m.object("invoices") else [])  # type: ignore[union-attr]
    applied = apply_rules(rules, p, derived, ctx)

    custom: dict[str, str] = {}
    for token, decision in m.custom_field_decisions.items():
        if decision.confirmed and decision.action is not CustomFieldAction.SKIP and decision.target:
            value = custom_value_text(p, token)
            if value is not None:
                custom[decision.target] = value
    custom.update(applied.custom_fields)  # an explicit rule wins over a custom-field decision

    lines = list(applied.lines)
    payload: dict[str, Any] = {"name": person_name(p) or placeholder_name(p.id)}
    email = (p.email or "").strip()
    if "emails" in applied.structured and email:
        if is_valid_email(email):
            payload["emails"] = [{"isPrimary": True, "name": "email", "value": email}]
        else:
            # Kept where a person can see and fix it: an invalid address would be refused by Nutshell.
            lines.append(f"E-mail in Cliniko (not a valid address): {email}")
    if "phones" in applied.structured:
        if phones := phones_payload(p.patient_phone_numbers):
            payload["phones"] = phones
        lines += unusable_phone_lines(p.patient_phone_numbers)
    if "addresses" in applied.structured and (addr := _address_parts(p)):
        payload["addresses"] = [{"isPrimary": True, "name": "home", **addr}]
    if bundle.merged:
        lines.append("Merged in Cliniko from patients: " + ", ".join(x.id for x in bundle.merged))
    if lines:
        payload["description"] = "\n".join(lines)
    if custom:
        payload["customFields"] = custom

    links: dict[str, Any] = {}
    if "owner" in applied.structured:
        pid = owner_practitioner(bundle, ctx.catalog)
        if pid is not None:
            links["owner"] = Ref(USER, pid)
        elif m.fallback_owner:
            links["owner"] = m.fallback_owner
    if "accounts" in applied.structured and (accounts := company_links(bundle, ctx)):
        links["accounts"] = accounts
    if links:
        payload["links"] = links
    return Planned("person", p.id, payload, p.id)


# -- companies -------------------------------------------------------------------------------------------------

_CONTACT_TYPES = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}


def contact_name(c: Contact) -> str:
    if c.company_name and c.company_name.strip():
        return c.company_name.strip()
    parts = [x.strip() for x in (c.title, c.first_name, c.last_name) if x and x.strip()]
    return " ".join(parts) or f"Cliniko contact {c.id}"


def _account_common(
    kind: str,
    rec_id: str,
    name: str,
    lines: list[str],
    structured: set[str],
    email: str | None,
    phones: list[PhoneNumber],
    addr: dict[str, str],
) -> dict[str, Any]:
    """An accountPostInput element: its e-mails are {value}, its addresses nest the fields under `value`."""
    payload: dict[str, Any] = {"name": name}
    email = (email or "").strip()
    if "emails" in structured and email:
        if is_valid_email(email):
            payload["emails"] = [{"value": email}]
        else:
            lines.append(f"E-mail in Cliniko (not a valid address): {email}")
    if "phones" in structured:
        if items := phones_payload(phones):
            payload["phones"] = items
        lines += unusable_phone_lines(phones)
    if "addresses" in structured and addr:
        payload["addresses"] = [{"name": "work", "isPrimary": True, "value": addr}]
    lines.append(f"Migrated from Cliniko ({marker(kind, rec_id)})")
    payload["description"] = "\n".join(lines)
    return payload


def company(contact: Contact, ctx: Context) -> Outcome:
    obj = ctx.map.object("contacts")
    if obj is None:
        return Skipped("company", contact.id, Skip("third-party contacts are switched off in the map"))
    person_name_ = " ".join(x.strip() for x in (contact.first_name, contact.last_name) if x and x.strip())
    derived = {
        "type": contact.type or _CONTACT_TYPES.get(contact.type_code or -1),
        # Only when the company has its own name; otherwise the person's name already is the company name.
        "contact_person": person_name_ if contact.company_name and contact.company_name.strip() else None,
    }
    applied = apply_rules(obj.rules(), contact, derived, ctx)
    lines = list(applied.lines)
    if contact.is_archived:
        lines.append("Archived in Cliniko")
    payload = _account_common(
        "company",
        contact.id,
        contact_name(contact),
        lines,
        applied.structured,
        contact.email,
        contact.phone_numbers,
        _address_parts(contact),
    )
    if applied.custom_fields:
        payload["customFields"] = applied.custom_fields
    return Planned("company", contact.id, payload)


def business_company(business: Business, ctx: Context) -> Outcome:
    obj = ctx.map.object("businesses")
    if obj is None:
        return Skipped("business_company", business.id, Skip("businesses become activity locations only"))
    applied = apply_rules(obj.rules(), business, {}, ctx)
    name = (business.display_name or business.business_name or business.label or "").strip()
    payload = _account_common(
        "business_company",
        business.id,
        name or f"Cliniko business {business.id}",
        list(applied.lines),
        applied.structured,
        business.email_reply_to,
        [],
        _address_parts(business),
    )
    if applied.custom_fields:
        payload["customFields"] = applied.custom_fields
    return Planned("business_company", business.id, payload)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def fill_empty_fields(existing: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """The policy "link and fill empty": of a planned person payload, only what the existing Nutshell person
    lacks (top-level fields, custom fields and links one by one). Nothing the person already holds is replaced."""
    changes: dict[str, Any] = {}
    for key, value in planned.items():
        if key == "customFields":
            have = existing.get("customFields") or {}
            fill = {k: v for k, v in value.items() if _empty(have.get(k))}
            if fill:
                changes["customFields"] = fill
        elif key == "links":
            have = existing.get("links") or {}
            fill = {k: v for k, v in value.items() if _empty(have.get(k))}
            if fill:
                changes["links"] = fill
        elif _empty(existing.get(key)) and not _empty(value):
            changes[key] = value
    return changes
