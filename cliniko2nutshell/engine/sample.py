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


# -- what a slice covers, as a person reads it -------------------------------------------------------------------

STRATUM_KINDS = {"appointment_type": "Appointment type", "invoice_status": "Invoice status",
                 "practitioner": "Practitioner"}  # fmt: skip
STRATUM_PLURALS = {"appointment_type": "Appointment types", "invoice_status": "Invoice statuses",
                   "practitioner": "Practitioners"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stratum:
    kind: str  # appointment_type | invoice_status | practitioner
    id: str
    name: str  # the appointment type's or practitioner's name, the invoice status's word
    patients: int  # sampled patients who have it (0: the slice does not cover it)

    @property
    def covered(self) -> bool:
        return self.patients > 0


def strata_of(selection: SampleSelection, catalog: Catalog) -> list[Stratum]:
    """Every stratum of the clinic with how many of the slice's patients cover it, in kind then name order."""
    from cliniko2nutshell.mapping.activities import INVOICE_STATUS

    def name(kind: str, id_: str) -> str:
        if kind == "appointment_type":
            t = catalog.appointment_types.get(id_)
            return (t.name if t is not None else None) or f"appointment type {id_}"
        if kind == "practitioner":
            return catalog.practitioner_name(id_) or f"practitioner {id_}"
        return INVOICE_STATUS.get(int(id_), f"status {id_}") if id_.isdigit() else id_

    out = []
    for key in [*selection.strata, *selection.uncovered]:
        kind, _, id_ = key.partition(":")
        out.append(Stratum(kind, id_, name(kind, id_), len(selection.strata.get(key, ()))))
    order = list(STRATUM_KINDS)
    return sorted(out, key=lambda s: (order.index(s.kind) if s.kind in order else 9, s.name.lower(), s.id))


# -- naming patients: search the store, a page at a time ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatientHit:
    id: str
    name: str
    date_of_birth: str | None
    email: str | None
    archived: bool


@dataclass(frozen=True, slots=True)
class PatientPage:
    hits: tuple[PatientHit, ...]
    total: int  # patients matching the search
    offset: int


# One pass over the patients: each row's JSON read once, the words matched against one lower-cased text of its
# name, e-mail and id, the total counted in the same scan (tests/benchmarks/bench_patient_search.py).
_SEARCH_SQL = """
WITH p AS (
    SELECT id, archived, json_extract(raw, '$.first_name') AS first, json_extract(raw, '$.last_name') AS last,
           json_extract(raw, '$.label') AS label, json_extract(raw, '$.email') AS email,
           json_extract(raw, '$.date_of_birth') AS dob
    FROM cliniko_records WHERE object = 'patients'
), m AS (
    SELECT *, lower(coalesce(first, '') || ' ' || coalesce(last, '') || ' ' || coalesce(email, '') || ' ' || id)
           AS hay
    FROM p
)
SELECT id, archived, first, last, label, email, dob, count(*) OVER () AS total FROM m WHERE {where}
ORDER BY lower(coalesce(last, '')), lower(coalesce(first, '')), id LIMIT ? OFFSET ?
"""


def search_patients(store: Store, text: str = "", *, limit: int = 50, offset: int = 0) -> PatientPage:
    """Patients whose name, e-mail or Cliniko id contains every word of `text` (case-insensitive), by last then
    first name, `limit` at a time from `offset`: a screen pages through a clinic of any size without loading it."""
    words = [w for w in text.casefold().split() if w]
    likes = ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
    where = " AND ".join(["hay LIKE ? ESCAPE '\\'"] * len(likes)) or "1"
    rows = store.conn.execute(_SEARCH_SQL.format(where=where), [*likes, limit, offset]).fetchall()
    total = rows[0]["total"] if rows else (0 if offset == 0 else _count(store, where, likes))
    hits = []
    for r in rows:
        name = " ".join(x for x in (r["first"], r["last"]) if x) or r["label"] or f"patient {r['id']}"
        hits.append(PatientHit(r["id"], name, r["dob"], r["email"], bool(r["archived"])))
    return PatientPage(tuple(hits), total, offset)


def _count(store: Store, where: str, likes: list[str]) -> int:
    """The matches of a page past the end (the window count comes only with rows)."""
    sql = _SEARCH_SQL.split("SELECT id, archived, first")[0] + f"SELECT count(*) FROM m WHERE {where}"
    return int(store.conn.execute(sql, likes).fetchone()[0])
