"""Benchmark: the pre-flight and the run's planning over a synthetic clinic loaded into a project store. Prints
figures; asserts nothing.

    .venv/bin/python tests/benchmarks/bench_preflight.py [--patients 1000 10000] [--seed 5] [--no-analyze]
                                                         [--invoice-index]

For each size the clinic is generated and loaded into a project store in a child process (so the peak RSS printed
is the pre-flight's own), then the pre-flight runs: every patient through the transforms, plus the checks; then the
planning a run does (engine/plan.py: every op of every phase, as `run` draws them, nothing sent). Printed for each:
wall and CPU seconds, patients per second (by CPU time, steadier on a shared machine) and the peak RSS so far.
`--no-analyze` leaves the store without query-planner statistics and `--invoice-index` adds an (object,
invoice_id) index first: both emulate store changes requested from the lead (see the mapping report).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from mapping_sandbox import load_clinic  # noqa: E402

from cliniko2nutshell.engine.journal import Journal  # noqa: E402
from cliniko2nutshell.engine.ops import PHASES  # noqa: E402
from cliniko2nutshell.engine.plan import Plan  # noqa: E402
from cliniko2nutshell.mapping.catalog import Catalog  # noqa: E402
from cliniko2nutshell.mapping.defaults import default_map  # noqa: E402
from cliniko2nutshell.mapping.practitioners import match_practitioners, propose_choices  # noqa: E402
from cliniko2nutshell.mapping.preflight import preflight  # noqa: E402
from cliniko2nutshell.mapping.proposer import accept_all, apply_proposals, propose_for  # noqa: E402
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot  # noqa: E402
from cliniko2nutshell.mapping.workflow import practitioner_infos  # noqa: E402
from cliniko2nutshell.project import create_project, open_project  # noqa: E402
from cliniko2nutshell.sandbox.clinic import generate_clinic  # noqa: E402


def prepare(patients: int, seed: int, analyze: bool, invoice_index: bool, folder: Path, out: dict) -> None:
    db = folder / f"clinic-{patients}.db"
    generate_clinic(db, patients, seed=seed)
    project = create_project("bench", path=folder / f"proj-{patients}")
    if invoice_index:
        project.store.conn.execute("CREATE INDEX bench_invoice ON cliniko_records (object, invoice_id)")
    out.update(load_clinic(db, project.store, analyze=analyze))
    project.close()


def bench(patients: int, seed: int, analyze: bool, invoice_index: bool, folder: Path) -> None:
    t0 = time.perf_counter()
    with multiprocessing.Manager() as manager:
        shared = manager.dict()
        child = multiprocessing.Process(target=prepare, args=(patients, seed, analyze, invoice_index, folder, shared))
        child.start()
        child.join()
        meta = dict(shared)
    prepared = time.perf_counter() - t0
    project = open_project(folder / f"proj-{patients}")
    reference = datetime.fromisoformat(meta["reference_time"].replace("Z", "+00:00"))
    snapshot = NutshellSnapshot.from_seed(meta["nutshell_seed"])
    catalog = Catalog.from_store(project.store, reference)
    m = default_map(catalog, activity_types=snapshot.activity_type_names)
    matches = match_practitioners(practitioner_infos(catalog), snapshot.users)
    m = m.model_copy(update={"practitioners": propose_choices(matches)})
    m = accept_all(apply_proposals(m, propose_for(m, catalog, project.store, snapshot.custom_fields["Contacts"])))
    wall, cpu = time.perf_counter(), time.process_time()
    report = preflight(project.store, m, snapshot, catalog=catalog)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    planned = sum(c.get("create", 0) + c.get("link", 0) for c in report.counts.values())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    flags = ("" if analyze else "  [no planner statistics]") + ("  [invoice_id index]" if invoice_index else "")
    print(
        f"{patients:>7} patients (prepared in {prepared:.0f} s): pre-flight {wall:7.1f} s wall, {cpu:7.1f} s CPU "
        f"= {report.patients / cpu:5.0f} patients per CPU second; {planned} records planned, "
        f"{len(report.problems)} problems; peak RSS {rss:.0f} MB{flags}",
        flush=True,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    plan = Plan(project, m, {t.name: t.id for t in snapshot.activity_types}, journal=Journal(project.store),
                catalog=catalog)  # fmt: skip
    ops = sum(1 for phase in PHASES for _ in plan.ops(phase))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{patients:>7} patients: planning {wall:7.1f} s wall, {cpu:7.1f} s CPU = {patients / cpu:5.0f} patients per "
        f"CPU second; {ops} ops; peak RSS {rss:.0f} MB",
        flush=True,
    )
    project.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-analyze", action="store_true")
    ap.add_argument("--invoice-index", action="store_true", help="add the (object, invoice_id) index first")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.patients:
            bench(n, args.seed, not args.no_analyze, args.invoice_index, Path(tmp))


if __name__ == "__main__":
    main()
