"""Values computed from a patient's records: invoice totals, balance due, payments, primary service, insurance.

Cliniko has no payments API: "paid" is known only from an invoice's status (20 Paid) and the time it was closed.
So the last payment is the most recently closed paid invoice, and the balance due is the total of open invoices
(part-payments are invisible). The labels of these fields say so (defaults.py, limitations.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation, Overflow, localcontext

from cliniko2nutshell.cliniko.models import Invoice, InvoiceItem, Patient
from cliniko2nutshell.mapping.catalog import Catalog, CustomFieldDef, PatientBundle, patient_custom_values
from cliniko2nutshell.mapping.timeutil import aware

OPEN, PAID, CLOSED, OPEN_CREDIT = 10, 20, 30, 40


@dataclass(frozen=True, slots=True)
class Derived:
    total_invoiced: Decimal | None = None
    balance_due: Decimal | None = None
    last_invoice_date: date | None = None
    last_payment_date: datetime | None = None
    last_payment_amount: Decimal | None = None
    primary_service_type: str | None = None
    insurance_policy_number: str | None = None
    insurance_group_number: str | None = None

    def get(self, name: str) -> object:
        if name not in self.__slots__:  # type: ignore[attr-defined]
            raise KeyError(f"no derived value {name!r}")
        return getattr(self, name)


DERIVED_NAMES = tuple(Derived.__slots__)  # type: ignore[attr-defined]


def _sum(values: list[Decimal]) -> Decimal:
    """A sum that never raises on absurd amounts (an overflow gives Infinity, which no field accepts)."""
    with localcontext() as ctx:
        ctx.traps[Overflow] = False
        ctx.traps[InvalidOperation] = False
        return sum(values, Decimal(0))


def _live(inv: Invoice) -> bool:
    return not inv.is_archived


def invoice_totals(invoices: list[Invoice]) -> tuple[Decimal | None, Decimal | None, date | None]:
    """(total invoiced, balance due, last invoice date) over the invoices that were not deleted."""
    live = [i for i in invoices if _live(i)]
    if not live:
        return None, None, None
    total = _sum([i.total_amount or Decimal(0) for i in live])
    due = _sum([i.total_amount or Decimal(0) for i in live if i.status == OPEN])
    dates = [i.issue_date for i in live if i.issue_date]
    return total, due, max(dates) if dates else None


def last_payment(invoices: list[Invoice]) -> tuple[datetime | None, Decimal | None]:
    """The most recently closed paid invoice: its closing time and total (no payments API, see module doc)."""
    paid = [i for i in invoices if _live(i) and i.status == PAID and i.closed_at is not None]
    if not paid:
        return None, None
    latest = max(paid, key=lambda i: (aware(i.closed_at), i.id))  # type: ignore[arg-type]
    return latest.closed_at, latest.total_amount


def primary_service(items: list[InvoiceItem], invoices: list[Invoice], catalog: Catalog) -> str | None:
    """The most frequent billable item or product on the patient's invoices (ties: the most recent, then name)."""
    live_invoices = {i.id: i for i in invoices if _live(i)}
    counts: Counter[str] = Counter()
    latest: dict[str, str] = {}
    for item in items:
        if item.is_archived or item.invoice is None or item.invoice.id not in live_invoices:
            continue
        name = catalog.item_name(item)
        if not name:
            continue
        counts[name] += 1
        inv = live_invoices[item.invoice.id]
        stamp = inv.issue_date.isoformat() if inv.issue_date else ""
        latest[name] = max(latest.get(name, ""), stamp)
    if not counts:
        return None
    return min(counts, key=lambda n: (-counts[n], _neg(latest.get(n, "")), n))


def _neg(stamp: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in stamp)


_POLICY = re.compile(r"\b(policy|member(ship)?|insurance|health fund|fund)\b.*\b(no|number|num|#|id)\b|\bpolicy\b")
_GROUP = re.compile(r"\bgroup\b.*\b(no|number|num|#|id)\b|\bgroup\b")


def insurance_fields(definitions: dict[str, CustomFieldDef]) -> tuple[str | None, str | None]:
    """The tokens of the custom fields that hold the insurance policy and group numbers, by their names."""
    policy = group = None
    for d in definitions.values():
        if d.archived or d.type not in ("text", "paragraph"):
            continue
        name = d.name.casefold()
        context = f"{d.section} {d.name}".casefold()
        if group is None and _GROUP.search(name):
            group = d.token
        elif policy is None and (_POLICY.search(name) or ("insur" in context and "number" in name)):
            policy = d.token
    return policy, group


def custom_value_text(patient: Patient, token: str) -> str | None:
    """A patient custom field's value as text: selected options joined, "Other" text included."""
    f = patient_custom_values(patient).get(token)
    if f is None:
        return None
    parts: list[str] = []
    if f.value and f.value.strip():
        parts.append(f.value.strip())
    parts.extend(o.name.strip() for o in f.options if o.selected and o.name and o.name.strip())
    if f.other is not None and f.other.selected and f.other.value and f.other.value.strip():
        parts.append(f.other.value.strip())
    return ", ".join(parts) or None


def derive(bundle: PatientBundle, catalog: Catalog, definitions: dict[str, CustomFieldDef] | None = None) -> Derived:
    total, due, last_date = invoice_totals(bundle.invoices)
    paid_at, paid_amount = last_payment(bundle.invoices)
    policy_token, group_token = insurance_fields(catalog.custom_field_defs if definitions is None else definitions)
    return Derived(
        total_invoiced=total,
        balance_due=due,
        last_invoice_date=last_date,
        last_payment_date=paid_at,
        last_payment_amount=paid_amount,
        primary_service_type=primary_service(bundle.invoice_items, bundle.invoices, catalog),
        insurance_policy_number=custom_value_text(bundle.patient, policy_token) if policy_token else None,
        insurance_group_number=custom_value_text(bundle.patient, group_token) if group_token else None,
    )
