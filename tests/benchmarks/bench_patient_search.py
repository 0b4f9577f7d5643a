"""Benchmark: the Sample step's patient search (engine/sample.py `search_patients`) over a 100,000-patient store.

    .venv/bin/python tests/benchmarks/bench_patient_search.py [--patients 100000] [--repeat 5]

Fills a fresh project store with `--patients` patient records shaped like Cliniko's (names, e-mail, birth date),
then times what the wizard does as the user types and pages: the first page with no search, a deep page, a
common surname, a rare full name, an e-mail fragment, and an id prefix (each a count and a page of 50). Prints
the median of `--repeat` runs per query, in milliseconds. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cliniko2nutshell.engine.sample import search_patients  # noqa: E402
from cliniko2nutshell.project import create_project  # noqa: E402
from cliniko2nutshell.project.store import FOREIGN_KEYS  # noqa: E402

FIRST = ["Ann", "Ben", "Chloe", "David", "Ella", "Finn", "Grace", "Hugo", "Isla", "Jack", "Kate", "Liam", "Mia",
         "Noah", "Olivia", "Paul", "Ruby", "Sam", "Tara", "Will"]  # fmt: skip
LAST = ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Nguyen", "Johnson", "Martin", "White", "Walker",
        "Anderson", "Thompson", "Kelly", "Ryan", "Evans", "Myers", "Fernandez", "Lee", "Zhang"]  # fmt: skip


def fill(store, patients: int, seed: int = 1) -> str:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    columns = ["object", "id", "created_at", "updated_at", "archived", "cancelled", *FOREIGN_KEYS, "raw",
               "extracted_at"]  # fmt: skip
    marks = ", ".join("?" * len(columns))
    rare = ""
    with store.transaction() as conn:
        rows = []
        for i in range(patients):
            first, last = rng.choice(FIRST), rng.choice(LAST) + ("" if i % 997 else "-Quill")
            pid = str(800_000_000_000_000_000 + i * 7919)
            raw = {"id": pid, "first_name": first, "last_name": last, "email": f"{first}.{last}{i}@example.com".lower(),
                   "date_of_birth": f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"}  # fmt: skip
            if i == patients // 2:
                rare = f"{first} {last}"
            rows.append(("patients", pid, None, None, 0, 0, *([None] * len(FOREIGN_KEYS)), json.dumps(raw), "x"))
        conn.executemany(f"INSERT INTO cliniko_records ({', '.join(columns)}) VALUES ({marks})", rows)
    return rare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = create_project("bench", path=Path(tmp) / "p")
        started = time.perf_counter()
        rare = fill(project.store, args.patients)
        print(f"{args.patients:,} patients stored in {time.perf_counter() - started:.1f} s")
        queries = [
            ("first page, no search", "", 0),
            ("page 1,000 (offset 49,950)", "", 49_950),
            ("a common surname: 'smith'", "smith", 0),
            (f"a rare full name: {rare!r}", rare, 0),
            ("an e-mail fragment: 'kate.ryan1'", "kate.ryan1", 0),
            ("an id prefix: '8000000000003'", "8000000000003", 0),
        ]
        print(f"{'query':<48} {'matches':>8} {'median ms':>10}")
        for label, text, offset in queries:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                page = search_patients(project.store, text, limit=50, offset=offset)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{label:<48} {page.total:>8,} {statistics.median(times):>10.0f}")
        project.close()


if __name__ == "__main__":
    main()
