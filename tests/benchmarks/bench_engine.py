"""Engine figures (printed, never asserted): planning speed, the runner's own cost per record (journal commits
with and without fsync) against the in-memory Nutshell, and a full migration over HTTP against both sandboxes.

    .venv/bin/python tests/benchmarks/bench_engine.py [--patients 300] [--skip-http]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cliniko2nutshell.cliniko.client import ClinikoClient  # noqa: E402
from cliniko2nutshell.cliniko.extract import extract  # noqa: E402
from cliniko2nutshell.engine.api import Engine  # noqa: E402
from cliniko2nutshell.engine.ops import PHASES  # noqa: E402
from cliniko2nutshell.engine.plan import activity_type_ids  # noqa: E402
from cliniko2nutshell.mapping.catalog import Catalog  # noqa: E402
from cliniko2nutshell.mapping.defaults import default_map  # noqa: E402
from cliniko2nutshell.mapping.mapfile import save_map  # noqa: E402
from cliniko2nutshell.mapping.model import PractitionerChoice, PractitionerDecision  # noqa: E402
from cliniko2nutshell.nutshell.client import NutshellClient  # noqa: E402
from cliniko2nutshell.project import create_project  # noqa: E402
from cliniko2nutshell.sandbox.clinic import generate_clinic  # noqa: E402
from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox  # noqa: E402
from cliniko2nutshell.sandbox.nutshell_app import start_nutshell_sandbox  # noqa: E402
from tests.fakes.clinic_store import load_clinic, nutshell_seed  # noqa: E402
from tests.fakes.destination import FakeNutshell  # noqa: E402


def _map(project, types):  # type: ignore[no-untyped-def]
    catalog = Catalog.from_store(project.store)
    choices = {pid: PractitionerChoice(decision=PractitionerDecision.FALLBACK) for pid in catalog.practitioners}
    m = default_map(catalog, activity_types=types)
    return m.model_copy(update={"fallback_owner": "1-users", "practitioners": choices, "confirmed": True})


def bench_local(root: Path, clinic: Path, patients: int) -> None:
    types = nutshell_seed(clinic)["activity_types"]
    ids = activity_type_ids((t, f"{i + 1}-activityTypes") for i, t in enumerate(types))
    for durable in (False, True):
        project = create_project("bench", path=root / f"local-{durable}")
        load_clinic(project, clinic)
        engine = Engine(project, FakeNutshell(), _map(project, types), ids, durable=durable)
        start = time.perf_counter()
        plan = engine.plan()
        ops = sum(1 for phase in PHASES for _ in plan.ops(phase))
        cold = time.perf_counter() - start  # right after loading the store
        start = time.perf_counter()
        plan = engine.plan()
        sum(1 for phase in PHASES for _ in plan.ops(phase))
        planning = time.perf_counter() - start
        start = time.perf_counter()
        summary = asyncio.run(engine.full())
        run = time.perf_counter() - start
        start = time.perf_counter()
        asyncio.run(engine.full())
        again = time.perf_counter() - start
        print(f"in-memory Nutshell, fsync {'on ' if durable else 'off'}: {patients} patients, {ops} records; "
              f"plan {planning:.1f} s ({patients / planning:.0f} patients/s; first {cold:.1f} s); full run {run:.1f} s "
              f"({summary.writes / run:.0f} writes/s); second run {again:.1f} s")  # fmt: skip
        project.close()


def bench_http(root: Path, clinic: Path, patients: int) -> None:
    seed = nutshell_seed(clinic)
    served = root / "served.db"
    shutil.copyfile(clinic, served)
    cliniko = start_cliniko_sandbox(served, rate_limit=100_000)
    nutshell = start_nutshell_sandbox(seed)
    project = create_project("bench", path=root / "http")
    try:

        async def go() -> None:
            async with ClinikoClient(cliniko.api_key, base_url=cliniko.base_url, rate_limit=100_000) as c:
                await extract(project, c)
            save_map(_map(project, seed["activity_types"]), project.mapping_path)
            async with NutshellClient(nutshell.username, nutshell.api_key, nutshell.rest_url) as client:
                engine = await Engine.connect(project, client)
                await engine.ensure_custom_fields(client)
                for durable in (True,):
                    engine.durable = durable
                    before = client.stats.requests
                    start = time.perf_counter()
                    summary = await engine.full()
                    took = time.perf_counter() - start
                    requests = client.stats.requests - before
                    print(f"over HTTP (both sandboxes in this process), fsync on: {patients} patients, "
                          f"{summary.writes} writes in {took:.1f} s ({summary.writes / took:.1f} writes/s), "
                          f"{requests} requests ({requests / max(1, summary.writes):.2f} per write)")  # fmt: skip
                start = time.perf_counter()
                again = await engine.full()
                print(f"second run: {again.writes} writes, {time.perf_counter() - start:.1f} s")
                start = time.perf_counter()
                rec = await engine.reconcile()
                print(f"reconcile: balanced={rec.reconciliation.balanced}, {time.perf_counter() - start:.1f} s")

        asyncio.run(go())
    finally:
        project.close()
        nutshell.stop()
        cliniko.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clinic = root / "clinic.db"
        generate_clinic(clinic, args.patients, seed=7)
        bench_local(root, clinic, args.patients)
        if not args.skip_http:
            bench_http(root, clinic, args.patients)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
