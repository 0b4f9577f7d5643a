"""Benchmark: generating synthetic clinics of 1,000, 10,000 and 100,000 patients.

    .venv/bin/python tests/benchmarks/bench_generate.py [--sizes 1000 10000 100000] [--seed 1] [--keep DIR] [--split]

Each size runs in a fresh child process, so its peak RSS is its own. Prints, per size: wall time, CPU time (the
SQLite writer plus, from 2,000 patients, the generator's own process that builds the records), how many cores that
CPU amounts to over the wall time, records per resource, file size, peak RSS of the writer and of the generator
process, and the machine's load average before the run. Target (issue 2): 100,000 patients in under a minute.

With --split it also times the generator alone (bodies built, nothing written) in another child, which shows how
the CPU divides between building records and SQLite (inserts plus the index build at the end). The two processes
overlap only when a second core is free: on a busy machine wall time gets closer to the CPU total.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import json, resource, sys, time
from pathlib import Path
from cliniko2nutshell.sandbox.clinic import generate_clinic
path, patients, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def cpu():
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the generator's child process, once it has exited
    return time.process_time() + kids.ru_utime + kids.ru_stime
cpu0 = cpu()
summary = generate_clinic(path, patients, seed)
print(json.dumps({
    "wall": summary.seconds,
    "cpu": cpu() - cpu0,
    "counts": summary.counts,
    "bytes": path.stat().st_size,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "child_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""

GENERATE_ONLY = """
import json, sys, time
from collections import Counter
from cliniko2nutshell.sandbox import clinic
class CountingSink:  # stands in for the SQLite writer
    def __init__(self): self.counts = Counter()
    def record(self, resource, *_): self.counts[resource] += 1
    def add(self, *_): pass
    def close(self): pass
cpu0 = time.process_time()
clinic._Generator(CountingSink(), int(sys.argv[1]), int(sys.argv[2]), "au2", 1793491200).run()
print(json.dumps({"cpu": time.process_time() - cpu0}))
"""


@dataclass
class Result:
    wall: float
    cpu: float
    counts: dict[str, int]
    bytes: int
    peak_rss_mb: float
    child_peak_rss_mb: float


def run(size: int, seed: int, folder: Path, keep: bool) -> Result:
    path = folder / f"clinic-{size}-s{seed}.db"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(size), str(seed)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    result = Result(**json.loads(out.stdout))
    if not keep:
        path.unlink()  # 100,000 patients make a file of a few GB
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1000,10000,100000"], help="patient counts (spaces or commas)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the clinics here and keep them (default: a temp folder)")
    parser.add_argument("--split", action="store_true", help="also time the generator alone (no SQLite)")
    args = parser.parse_args()
    sizes = [int(s) for group in args.sizes for s in group.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            load = os.getloadavg()[0]
            r = run(size, args.seed, folder, keep=args.keep is not None)
            total = sum(r.counts.values())
            print(f"\n== {size:,} patients (seed {args.seed}); load average before: {load:.1f}, {os.cpu_count()} cores")
            share = r.cpu / r.wall
            print(f"wall {r.wall:.1f} s   cpu {r.cpu:.1f} s ({share:.2f} cores)   {total / r.wall:,.0f} records/s")
            child = f" + generator process {r.child_peak_rss_mb:.0f} MiB" if r.child_peak_rss_mb else ""
            print(f"records {total:,}   file {r.bytes / 2**20:,.0f} MiB   peak RSS {r.peak_rss_mb:.0f} MiB{child}")
            for resource, n in sorted(r.counts.items(), key=lambda kv: -kv[1]):
                print(f"  {resource:<26}{n:>10,}")
            if args.split:
                out = subprocess.run(
                    [sys.executable, "-c", GENERATE_ONLY, str(size), str(args.seed)],
                    cwd=REPO,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                alone = float(json.loads(out.stdout)["cpu"])
                print(
                    f"split: building records {alone:.1f} s cpu, SQLite (inserts + indexes) ~{r.cpu - alone:.1f} s cpu"
                )
            if size >= 100_000:
                verdict = "MET" if r.wall < 60 else "NOT MET"
                print(f"target: 100,000 patients in under 60 s: {verdict} ({r.wall:.1f} s wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
