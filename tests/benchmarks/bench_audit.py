"""Benchmark: the audit-log query (engine/audit.py) over a journal the size of a 100,000-patient migration.

    .venv/bin/python tests/benchmarks/bench_audit.py [--rows 1500000] [--repeat 5] [--no-indexes]

Fills a fresh project store with `--rows` journal entries shaped like a full run's (objects, actions and states in
the proportions a run produces, ~2% failed, a few hundred error messages), then times what the wizard's audit-log
screen and `cliniko2nutshell log` do: the first page and a deep page of 500, filtered pages (an object, a rare
status, a run, a text search), the counts behind them, the filter menus (facets), and a full CSV export. Prints the
median of `--repeat` runs per query, in milliseconds. `--no-indexes` drops the audit indexes of store migration 6
first, to show what they buy. Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cliniko2nutshell.engine.audit import (  # noqa: E402
    AuditFilter,
    audit_entries,
    audit_facets,
    count_audit_entries,
    write_audit_csv,
)
from cliniko2nutshell.project import create_project  # noqa: E402

# (object, entity, share of rows) as a full run of the synthetic clinic writes them
OBJECTS = [
    ("person", "contacts", 0.10),
    ("company", "accounts", 0.002),
    ("appointment", "activities", 0.45),
    ("treatment_note", "notes", 0.20),
    ("communication", "activities", 0.15),
    ("attachment", "files", 0.05),
    ("patient_note", "notes", 0.048),
]


def fill(store, rows: int, seed: int = 1) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    conn = store.conn
    with store.transaction():
        for kind in ("sample", "full", "delta", "retry", "rollback"):
            conn.execute(
                "INSERT INTO runs (kind, status, outcome, map_version, started_at) VALUES (?, 'finished', 'partial', "
                "1, '2026-11-01T00:00:00Z')",
                (kind,),
            )
    weights = [w for *_, w in OBJECTS]
    errors = [f"HTTP 400: Invalid phone number (POST /contacts) #{i}" for i in range(300)]
    batch = []
    for seq in range(1, rows + 1):
        obj, entity, _ = rng.choices(OBJECTS, weights)[0]
        run_id = 1 if seq < rows * 0.01 else 2 if seq < rows * 0.9 else rng.choice((3, 4, 5))
        action = "delete" if run_id == 5 else rng.choices(("create", "link", "update", "upload"), (80, 10, 8, 2))[0]
        state = rng.choices(("done", "failed", "unknown", "void"), (97.8, 2, 0.1, 0.1))[0]
        error = rng.choice(errors) if state == "failed" else None
        t = f"2026-11-{1 + seq * 28 // rows:02d}T{seq % 24:02d}:{seq % 60:02d}:{seq % 59:02d}Z"
        batch.append((seq, run_id, obj, str(800_000_000_000_000_000 + seq * 7919), entity, action, state,
                      None if state == "failed" else f"{seq}-{entity}", error, t, t))  # fmt: skip
        if len(batch) == 50_000:
            _insert(store, batch)
            batch = []
    if batch:
        _insert(store, batch)
    conn.execute("ANALYZE")


def _insert(store, batch) -> None:  # type: ignore[no-untyped-def]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO journal (seq, run_id, object, source_id, entity, action, state, nutshell_id, error, "
            "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )


def write_cost(store, n: int) -> float:  # type: ignore[no-untyped-def]
    """Microseconds per journaled write (intent, then complete), synchronous=FULL as a run uses it."""
    from cliniko2nutshell.engine.journal import Action, Journal, RunKind

    journal = Journal(store)
    journal.durable()
    run = journal.start_run(RunKind.FULL, 1)
    started = time.perf_counter()
    for i in range(n):
        seq = journal.intent(run.id, "appointment", f"w{i}", "activities", Action.CREATE, payload_hash="h")
        journal.complete(seq, nutshell_id=f"{i}-activities")
    return (time.perf_counter() - started) * 1e6 / n


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-indexes", action="store_true")
    parser.add_argument("--writes", type=int, default=3000, help="journaled writes timed after the queries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = create_project("bench", path=Path(tmp) / "p")
        store = project.store
        started = time.perf_counter()
        fill(store, args.rows)
        print(f"journal: {args.rows} rows filled in {time.perf_counter() - started:.1f} s")
        if args.no_indexes:
            for name in ("journal_audit_object", "journal_audit_action", "journal_audit_state"):
                store.conn.execute(f"DROP INDEX IF EXISTS {name}")
            print("audit indexes dropped")
        deep = args.rows // 2
        cases = [
            ("page 1 (500), no filter", lambda: audit_entries(store, AuditFilter(), limit=500)),
            (f"page at offset {deep}", lambda: audit_entries(store, AuditFilter(), limit=500, offset=deep)),
            ("object=person, page 1", lambda: audit_entries(store, AuditFilter(object="person"), limit=500)),
            ("status=failed, page 1", lambda: audit_entries(store, AuditFilter(status="failed"), limit=500)),
            ("status=unknown, page 1", lambda: audit_entries(store, AuditFilter(status="unknown"), limit=500)),
            ("run=4, page 1", lambda: audit_entries(store, AuditFilter(run=4), limit=500)),
            ("text 'phone', page 1", lambda: audit_entries(store, AuditFilter(text="phone"), limit=500)),
            ("count, no filter", lambda: count_audit_entries(store, AuditFilter())),
            ("count object=person", lambda: count_audit_entries(store, AuditFilter(object="person"))),
            ("count status=failed", lambda: count_audit_entries(store, AuditFilter(status="failed"))),
            ("count run=2", lambda: count_audit_entries(store, AuditFilter(run=2))),
            ("facets", lambda: audit_facets(store)),
        ]
        print(f"{'query':<36} {'median ms':>10}  result")
        for name, fn in cases:
            ms, result = timed(fn, args.repeat)
            shown = len(result) if isinstance(result, list) else result if isinstance(result, int) else "-"
            print(f"{name:<36} {ms:>10.1f}  {shown}")
        out = Path(tmp) / "audit.csv"
        ms, n = timed(lambda: write_audit_csv(store, AuditFilter(), out), 1)
        print(f"{'CSV export, everything':<36} {ms:>10.1f}  {n} rows, {out.stat().st_size / 2**20:.0f} MB")
        costs = [write_cost(store, args.writes) for _ in range(args.repeat)]
        print(f"{'journaled write (intent + complete)':<36} {statistics.median(costs) / 1000:>10.3f}  per write")
        project.close()


if __name__ == "__main__":
    main()
