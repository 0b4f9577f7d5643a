"""Benchmark: the Nutshell client against the Nutshell sandbox. Prints figures; asserts nothing.

The sandbox runs in a child process, so the figures are not skewed by client and server sharing one GIL.

1. Rate limited: the sandbox allows R requests per rolling minute (429 + Retry-After beyond). N reads are
   started together through the client; we print the achieved request rate against the allowed one, the 429s
   seen, and how the adaptive concurrency limit moved.
2. Unlimited with latency: N person creates (each a REST POST plus the JSON-RPC rev read-back) from W workers,
   with L seconds of sandbox latency per request; we print creates per second and the concurrency limit.

Run: .venv/bin/python tests/benchmarks/bench_nutshell_client.py [--rate 120] [--reads 300] [--creates 400]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.concurrency import AdaptiveLimiter
from cliniko2nutshell.nutshell.events import NutshellConcurrencyChanged
from cliniko2nutshell.nutshell.rpc import DiscoveryCache
from cliniko2nutshell.sandbox.knobs import Knobs
from cliniko2nutshell.sandbox.nutshell_app import default_seed, start_nutshell_sandbox


@dataclass(frozen=True)
class Remote:
    rest_url: str
    username: str
    api_key: str


def _serve(knobs: dict[str, Any], conn: Connection) -> None:
    sandbox = start_nutshell_sandbox(default_seed(), knobs=Knobs(**knobs))
    conn.send((sandbox.rest_url, sandbox.username, sandbox.api_key))
    conn.recv()  # until told to stop
    sandbox.stop()


@contextmanager
def sandbox_process(**knobs: Any) -> Iterator[Remote]:
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(knobs, child), daemon=True)
    process.start()
    try:
        yield Remote(*parent.recv())
    finally:
        parent.send("stop")
        process.join(timeout=15)


async def rate_limited(rate: int, reads: int) -> None:
    with sandbox_process(rate_limit=rate) as sandbox:
        await _rate_limited(sandbox, rate, reads)


async def _rate_limited(sandbox: Remote, rate: int, reads: int) -> None:
    limits: list[int] = []

    def on_event(event: Any) -> None:
        if isinstance(event, NutshellConcurrencyChanged):
            limits.append(event.limit)

    client = NutshellClient(
        sandbox.username,
        sandbox.api_key,
        sandbox.rest_url,
        discovery_cache=DiscoveryCache(),
        limiter=AdaptiveLimiter(8, maximum=32, increase_after=20),
        events=on_event,
    )
    async with client:
        started = time.monotonic()
        await asyncio.gather(*(client.list_activity_types() for _ in range(reads)))
        elapsed = time.monotonic() - started
    sent = client.stats.requests
    # A rolling 60 s window lets `rate` through at once; each burst's slots free together a minute later, so the
    # fastest any client can finish is one minute per further burst.
    ideal = ((reads - 1) // rate) * 60
    print(f"[rate limited] allowed {rate}/min, {reads} reads")
    print(f"  wall time            {elapsed:7.1f} s (the fastest possible: {ideal:.0f} s)")
    if elapsed > 0 and ideal:
        print(f"  efficiency           {ideal / elapsed:7.2f} (fastest possible / achieved)")
    print(f"  requests sent        {sent} (429 answers: {client.stats.rate_limited})")
    print(f"  concurrency limit    8 -> {client.concurrency_limit} (changes: {limits})")


async def creates(count: int, workers: int, latency: float) -> None:
    with sandbox_process(latency=latency) as sandbox:
        client = NutshellClient(
            sandbox.username,
            sandbox.api_key,
            sandbox.rest_url,
            discovery_cache=DiscoveryCache(),
            limiter=AdaptiveLimiter(8, maximum=32, increase_after=20),
        )
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await client.create_person(
                    {
                        "name": f"Bench Patient {i}",
                        "emails": [{"isPrimary": True, "name": "home", "value": f"bench{i}@example.org"}],
                        "customFields": {"Cliniko Patient ID": str(100000 + i)},
                    }
                )

        async with client:
            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(workers)))
            elapsed = time.monotonic() - started
        print(f"[creates] {count} people, {workers} workers, {latency * 1000:.0f} ms sandbox latency")
        print(f"  wall time            {elapsed:7.1f} s")
        print(f"  creates per second   {count / elapsed:7.1f} ({client.stats.requests} requests)")
        print(f"  concurrency limit    8 -> {client.concurrency_limit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=120, help="sandbox requests per rolling minute")
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    for workers in sorted({1, args.workers}):
        asyncio.run(creates(args.creates, workers, args.latency))
    if args.reads:
        asyncio.run(rate_limited(args.rate, args.reads))


if __name__ == "__main__":
    main()
