"""Benchmark: a full extraction of a synthetic clinic through the Cliniko sandbox at a realistic rate limit.

    .venv/bin/python tests/benchmarks/bench_extract.py [--patients 5000] [--rate-limit 600] [--seed 3]

Prints requests made vs the minimum possible (GET /settings + one request per page of every list query + one per
attachment file), the achieved request rate against the allowed one, 429s, retries, wall time and the peak RSS
of the extracting process. The sandbox runs in a child process so that it does not share the client's GIL.
Target (issue 2): rate ratio >= 0.95, zero 429s, requests within a handful of the minimum.

"requests per 30 s" shows how the budget was used over time: a limiter that saturates a rolling 60 s window
without crossing it shows pairs of buckets summing to the per-minute limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cliniko2nutshell.cliniko.client import ClinikoClient  # noqa: E402
from cliniko2nutshell.cliniko.events import ExtractSummary, ObjectFinished  # noqa: E402
from cliniko2nutshell.cliniko.extract import ExtractOptions, extract  # noqa: E402
from cliniko2nutshell.cliniko.resources import BY_OBJECT  # noqa: E402
from cliniko2nutshell.events import Event  # noqa: E402
from cliniko2nutshell.project import Project, create_project  # noqa: E402

SERVE = """
import json, shutil, sys
from pathlib import Path
from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox
from cliniko2nutshell.sandbox.run import cached_clinic
clinic = cached_clinic(int(sys.argv[1]), int(sys.argv[4]))
db = Path(sys.argv[2]); shutil.copyfile(clinic, db)
sb = start_cliniko_sandbox(db, rate_limit=int(sys.argv[3]))
print(json.dumps({"base_url": sb.base_url, "api_key": sb.api_key}), flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
sb.stop()
"""


def minimum_requests(project: Project) -> tuple[int, int, int]:
    """(minimum requests, list pages, attachment files)."""
    pages = 0
    for obj in BY_OBJECT:
        for p in project.store.extract_passes(obj):
            pages += max(1, math.ceil((p.total or 0) / 100))
    files = project.store.conn.execute("SELECT COUNT(*) FROM attachment_files").fetchone()[0]
    return 1 + pages + files, pages, files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rate-limit", type=int, default=600, help="sandbox and client requests per minute")
    parser.add_argument("--concurrency", type=int, default=ExtractOptions.concurrency)
    args = parser.parse_args()

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        # The child generates (or loads the cached) clinic and serves it: our RSS is the extractor's alone.
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVE,
                str(args.patients),
                str(Path(tmp) / "cliniko.db"),
                str(args.rate_limit),
                str(args.seed),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            print(
                f"clinic: {args.patients} patients, seed {args.seed} (sandbox up after {time.monotonic() - t0:.1f} s)"
            )
            project = create_project("bench", path=Path(tmp) / "project")
            finished: list[str] = []

            def sink(event: Event) -> None:
                if isinstance(event, ObjectFinished):
                    finished.append(event.object)
                    print(f"  {time.monotonic() - start:7.1f} s  {event.object}: {event.records} records", flush=True)

            answered: list[float] = []  # when each API response arrived: the timeline of budget use

            async def run() -> ExtractSummary:
                async with ClinikoClient(
                    info["api_key"], base_url=info["base_url"], rate_limit=args.rate_limit
                ) as client:
                    release = client.limiter.release

                    def timed_release() -> None:
                        answered.append(time.monotonic() - start)
                        release()

                    client.limiter.release = timed_release  # type: ignore[method-assign]
                    return await extract(project, client, ExtractOptions(concurrency=args.concurrency), sink=sink)

            start = time.monotonic()
            summary = asyncio.run(run())
            wall = time.monotonic() - start
            minimum, pages, files = minimum_requests(project)
            project.close()
        finally:
            if server.stdin:
                server.stdin.close()
            server.wait(timeout=30)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    achieved = summary.requests / (wall / 60)
    print()
    print(f"records stored:        {sum(summary.stored.values())} in {len(summary.stored)} objects")
    print(f"requests made:         {summary.requests}")
    print(f"minimum possible:      {minimum}  (1 settings + {pages} list pages + {files} attachment files)")
    print(f"extra requests:        {summary.requests - minimum}")
    print(f"allowed rate:          {args.rate_limit}/min")
    print(f"achieved rate:         {achieved:.1f}/min")
    print(f"rate ratio:            {achieved / args.rate_limit:.3f}")
    print(f"429 responses:         {summary.rate_limited}")
    print(f"retries:               {summary.retries}")
    print(f"attachment bytes:      {summary.attachment_bytes}")
    print(f"wall time:             {wall:.1f} s")
    print(f"peak RSS (extractor):  {rss_mb:.1f} MiB")
    buckets = [0] * (int(wall // 30) + 1)
    for t in answered:
        buckets[int(t // 30)] += 1
    print("requests per 30 s:     " + " ".join(str(b) for b in buckets) + f"  (budget {args.rate_limit // 2})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
