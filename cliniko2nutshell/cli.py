"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliniko2nutshell", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    for name, text in (
        ("sandbox", "serve the Cliniko and Nutshell sandboxes until interrupted"),
        ("demo", "the wizard against the sandbox (until the wizard lands: serves the sandbox)"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--patients", type=int, default=300, help="size of the synthetic clinic (10-100000)")
        sp.add_argument("--seed", type=int, default=1, help="seed of the synthetic clinic")
        sp.add_argument(
            "--rate-limit", type=int, default=200, help="Cliniko sandbox requests per rolling minute per key"
        )
        sp.add_argument("--json", action="store_true", help="print one JSON line with URLs and keys first")
        sp.set_defaults(handler=_cmd_sandbox)
    return parser


def _cmd_sandbox(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from cliniko2nutshell.sandbox.run import start_sandbox

    if not 10 <= args.patients <= 100_000:
        print("--patients must be between 10 and 100000", file=sys.stderr)
        return 2
    if not args.json:
        print(
            f"Generating or loading a {args.patients}-patient synthetic clinic (seed {args.seed})...",
            file=sys.stderr,
        )
    sandbox = start_sandbox(args.patients, args.seed, cliniko_rate_limit=args.rate_limit)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        info = sandbox.describe()
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            print(
                "Sandbox running (synthetic data only; these are sandbox credentials):\n"
                f"  Cliniko   {info['cliniko']['base_url']}  key {info['cliniko']['api_key']}\n"
                f"  Nutshell  {info['nutshell']['base_url']}  user {info['nutshell']['username']}"
                f"  key {info['nutshell']['api_key']}\n"
                f"  JSON-RPC  {info['nutshell']['rpc_url']}\n"
                "Press Ctrl+C to stop.",
                flush=True,
            )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
