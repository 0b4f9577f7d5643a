"""Choosing the sample: a small set of patients that still shows every kind of record the map has to handle.

Stratified: every appointment type, invoice status and practitioner present in the clinic is represented by at
least one sampled patient (greedily, the patient covering most still-missing strata first), then the sample is
filled up to its size with a seeded random choice. Or the user names the patients.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.project.store import Store

MIN_SIZE = 100
MAX_SIZE = 500
DEFAULT_SIZE = 100


@dataclass(frozen=True, slots=True)
class SampleSelection:
    patients: tuple[str, ...]  # surviving patient ids, sorted
    strata: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "appointment_type:<id>" -> patients covering
    uncovered: tuple[str, ...] = ()  # strata no patient of the clinic covers (cannot be sampled)
    named: bool = False


def _strata(store: Store, catalog: Catalog) -> dict[str, set[str]]:
    """Stratum -> surviving patients that have it."""
    out: dict[str, set[str]] = defaultdict(set)
    conn = store.conn

    def add(stratum: str, patient_id: str | None) -> None:
        if patient_id:
            out[stratum].add(catalog.survivor(patient_id))

    for pid, type_id, prac_id in conn.execute(
        "SELECT patient_id, appointment_type_id, practitioner_id FROM cliniko_records "
        "WHERE object = 'individual_appointments'"
    ):
        if type_id:
            add(f"appointment_type:{type_id}", pid)
        if prac_id:
            add(f"practitioner:{prac_id}", pid)
    for pid, type_id, prac_id in conn.execute(
        "SELECT a.patient_id, g.appointment_type_id, g.practitioner_id FROM cliniko_records a "
        "JOIN cliniko_records g ON g.object = 'group_appointments' AND g.id = a.booking_id "
        "WHERE a.object = 'attendees'"
    ):
        if type_id:
            add(f"appointment_type:{type_id}", pid)
        if prac_id:
            add(f"practitioner:{prac_id}", pid)
    for pid, status in conn.execute(
        "SELECT patient_id, json_extract(raw, '$.status') FROM cliniko_records WHERE object = 'invoices'"
    ):
        if status is not None:
            add(f"invoice_status:{status}", pid)
    return out


def select_sample(
    store: Store,
    catalog: Catalog,
    size: int = DEFAULT_SIZE,
    *,
    seed: int = 1,
    patients: list[str] | None = None,
) -> SampleSelection:
    """The patients of a sample run. Named patients are taken as they are (merged ones go to their survivor)."""
    alive = sorted({catalog.survivor(str(r[0])) for r in store.conn.execute(
        "SELECT id FROM cliniko_records WHERE object = 'patients'")})  # fmt: skip
    known = set(alive)
    strata = _strata(store, catalog)
    if patients:
        unknown = [p for p in patients if catalog.survivor(p) not in known]
        if unknown:
            raise ValueError(f"no such patient in the extracted data: {', '.join(unknown[:10])}")
        chosen = sorted({catalog.survivor(p) for p in patients})
        return SampleSelection(tuple(chosen), _covering(strata, set(chosen)), named=True)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"a sample has {MIN_SIZE} to {MAX_SIZE} patients (asked for {size})")
    size = min(size, len(alive))
    rng = random.Random(seed)
    chosen: set[str] = set()
    missing = {s for s, who in strata.items() if who & known}
    by_patient: dict[str, set[str]] = defaultdict(set)
    for s, who in strata.items():
        for p in who & known:
            by_patient[p].add(s)
    while missing and len(chosen) < size:
        # the patient covering most still-missing strata; ties broken by the seeded shuffle order
        candidates = sorted(by_patient, key=lambda p: (-len(by_patient[p] & missing), p))
        best = candidates[0]
        if not by_patient[best] & missing:
            break
        chosen.add(best)
        missing -= by_patient[best]
    rest = [p for p in alive if p not in chosen]
    rng.shuffle(rest)
    chosen.update(rest[: size - len(chosen)])
    uncovered = tuple(sorted(s for s, who in strata.items() if not who & known))
    return SampleSelection(tuple(sorted(chosen)), _covering(strata, chosen), uncovered)


def _covering(strata: dict[str, set[str]], chosen: set[str]) -> dict[str, tuple[str, ...]]:
    return {s: tuple(sorted(who & chosen)) for s, who in sorted(strata.items())}
