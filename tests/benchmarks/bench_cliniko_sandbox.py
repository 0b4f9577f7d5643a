"""Benchmark: how fast the Cliniko sandbox answers typical list queries on a clinic of a given size.

    .venv/bin/python tests/benchmarks/bench_cliniko_sandbox.py [--patients 5000] [--seed 11] [--keep DIR]

Generates the clinic (or reuses it from --keep), starts the sandbox without a rate limit, and prints for each
query the best of three latencies over real HTTP on loopback, plus the sandbox's start time (the first start on a
file builds the `records_scope` index). A client at 600 requests per minute needs answers well under 100 ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cliniko2nutshell.sandbox.clinic import generate_clinic  # noqa: E402
from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox  # noqa: E402

EVERYTHING = ["archived_at:*", "cancelled_at:*", "deleted_at:*"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", type=Path, help="a folder to keep (and reuse) the generated clinic in")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"clinic-p{args.patients}-s{args.seed}.db"
        if not path.exists():
            started = time.perf_counter()
            generate_clinic(path, args.patients, args.seed)
            print(f"generated {args.patients} patients in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        sandbox = start_cliniko_sandbox(path, rate_limit=None)
        print(f"sandbox start: {(time.perf_counter() - started) * 1000:.0f} ms")
        try:
            run(sandbox.base_url, sandbox.api_key)
        finally:
            sandbox.stop()


def run(base_url: str, key: str) -> None:
    headers = {"User-Agent": "cliniko2nutshell bench (bench@example.com)", "Accept": "application/json"}
    with httpx.Client(base_url=base_url, auth=(key, ""), headers=headers, timeout=120) as http:

        def total(path: str, q: list[str]) -> int:
            return int(http.get(path, params={"per_page": 1, "q[]": q}).json()["total_entries"])

        attendees = total("/attendees", EVERYTHING[:2])
        bookings = total("/bookings", [])
        queries = [
            ("patients, page 1", "/patients", {}),
            ("attendees (all scopes), page 1", "/attendees", {"q[]": EVERYTHING[:2]}),
            ("attendees (all scopes), last page", "/attendees", {"q[]": EVERYTHING[:2], "page": attendees // 100}),
            ("attendees updated since, by updated_at", "/attendees",
             {"q[]": ["updated_at:>=2026-10-01T00:00:00Z"], "sort": "updated_at:asc"}),
            ("bookings, page 1", "/bookings", {}),
            ("bookings, last page", "/bookings", {"page": max(1, bookings // 100)}),
            ("patients last_name contains", "/patients", {"q[]": "last_name:~son"}),
            ("individual appointments of a patient id", "/individual_appointments", {"q[]": "patient_id:=1"}),
            ("GET /user", "/user", {}),
        ]  # fmt: skip
        for label, path, params in queries:
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                r = http.get(path, params={"per_page": 100, **params})
                best = min(best, time.perf_counter() - started)
                r.raise_for_status()
            print(f"{label:45s} {best * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
