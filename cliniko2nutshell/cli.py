"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    _add_extract_parser(sub)
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


def _add_extract_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("extract", help="extract everything from Cliniko into a project, headless")
    sp.add_argument("--project", required=True, type=Path, help="the project folder")
    sp.add_argument("--cliniko-url", help="Cliniko API base URL, e.g. a sandbox's http://127.0.0.1:PORT/v1 (saved)")
    sp.add_argument("--incremental", action="store_true", help="fetch only what changed since the last extraction")
    sp.add_argument("--rate-limit", type=int, default=200, help="Cliniko requests per rolling minute (default 200)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(handler=_cmd_extract)


def _cmd_extract(args: argparse.Namespace) -> int:
    """Headless extraction: progress on stderr, the summary on stdout. Exit 2: no key or no project."""
    import asyncio
    import json

    from cliniko2nutshell.cliniko.client import ClinikoClient
    from cliniko2nutshell.cliniko.errors import ClinikoError
    from cliniko2nutshell.cliniko.events import ExtractSummary
    from cliniko2nutshell.cliniko.extract import ExtractOptions, extract
    from cliniko2nutshell.cliniko.progress import ExtractProgress, format_summary
    from cliniko2nutshell.project import ProjectError, ProjectLocked, open_project
    from cliniko2nutshell.project.secrets import Secret, Secrets

    if args.rate_limit < 1:
        print("--rate-limit must be at least 1", file=sys.stderr)
        return 2
    try:
        project = open_project(args.project, command="cliniko2nutshell extract")
    except (ProjectError, ProjectLocked) as exc:
        print(exc, file=sys.stderr)
        return 2
    with project:
        if args.cliniko_url:
            project.settings.cliniko.base_url = args.cliniko_url.rstrip("/")
            project.save_settings()
        secrets = Secrets(project.settings.id)
        key = secrets.get(Secret.CLINIKO_API_KEY)
        if not key:
            print(
                f"No Cliniko API key for this project: connect it in the wizard, or set {Secret.CLINIKO_API_KEY.value} "
                f"in the environment. {secrets.explain()}",
                file=sys.stderr,
            )
            return 2
        progress = ExtractProgress(sys.stderr)

        async def run() -> ExtractSummary:
            async with ClinikoClient(
                key, base_url=project.settings.cliniko.base_url, rate_limit=args.rate_limit, sink=progress
            ) as client:
                return await extract(project, client, ExtractOptions(incremental=args.incremental), sink=progress)

        try:
            with progress:
                summary = asyncio.run(run())
        except ClinikoError as exc:
            print(f"Extraction stopped: {exc} Progress is saved; run the same command to resume.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("Interrupted. Progress so far is saved; run the same command to resume.", file=sys.stderr)
            return 130
    print(json.dumps(summary.as_dict()) if args.json else format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
