"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import json
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
    _add_project_parsers(sub)
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


def _add_project_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("init", help="create a migration project (a private local folder)")
    sp.add_argument("name", help="a name for the project, e.g. the clinic's")
    sp.add_argument("--path", type=Path, help="the folder to create (default: under the user data folder)")
    sp.set_defaults(handler=_cmd_init)
    sp = sub.add_parser("projects", help="list the projects under the user data folder")
    sp.set_defaults(handler=_cmd_projects)

    sp = sub.add_parser("extract", help="extract everything from Cliniko into a project, headless")
    _project_args(sp, cliniko=True)
    sp.add_argument("--incremental", action="store_true", help="fetch only what changed since the last extraction")
    sp.add_argument("--rate-limit", type=int, default=200, help="Cliniko requests per rolling minute (default 200)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(handler=_cmd_extract)

    sp = sub.add_parser("map", help="print the proposed field map and its open decisions")
    _project_args(sp, nutshell=True)
    sp.add_argument(
        "--accept-suggestions",
        action="store_true",
        help="accept every shown proposal: practitioner name suggestions and custom-field decisions",
    )
    sp.add_argument("--fallback-owner", metavar="USER_ID", help="send practitioners still unresolved to this user")
    sp.add_argument("--confirm", action="store_true", help="confirm the map (refused while decisions are open)")
    sp.set_defaults(handler=_cmd_map)

    sp = sub.add_parser("plan", help="write the pre-flight report to reports/ and print its summary")
    _project_args(sp, nutshell=True)
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(handler=_cmd_plan)


def _project_args(sp: argparse.ArgumentParser, *, cliniko: bool = False, nutshell: bool = False) -> None:
    sp.add_argument("--project", required=True, type=Path, help="the project folder")
    if cliniko:
        sp.add_argument("--cliniko-url", help="Cliniko API base URL (default: the real service, from the key's shard)")
    if nutshell:
        sp.add_argument(
            "--nutshell-url",
            help="Nutshell REST base URL (default: the real service; a sandbox's http://127.0.0.1:PORT/rest). "
            "The JSON-RPC endpoint is found from it.",
        )


def _open(args: argparse.Namespace, command: str):  # type: ignore[no-untyped-def]
    """The project named by --project, open for writing, with any endpoint overrides saved; None on error."""
    from cliniko2nutshell.connections import remember_endpoints
    from cliniko2nutshell.project import ProjectError, ProjectLocked, open_project

    try:
        project = open_project(args.project, command=f"cliniko2nutshell {command}")
    except (ProjectError, ProjectLocked) as exc:
        print(exc, file=sys.stderr)
        return None
    remember_endpoints(
        project, cliniko_url=getattr(args, "cliniko_url", None), nutshell_url=getattr(args, "nutshell_url", None)
    )
    return project


def _cmd_init(args: argparse.Namespace) -> int:
    from cliniko2nutshell.project import ProjectError, create_project

    try:
        project = create_project(args.name, path=args.path, command="cliniko2nutshell init")
    except ProjectError as exc:
        print(exc, file=sys.stderr)
        return 2
    with project:
        print(project.path)
    return 0


def _cmd_projects(args: argparse.Namespace) -> int:
    from cliniko2nutshell.project import list_projects

    for info in list_projects():
        print(f"{info.created_at}  {info.name}  {info.path}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    """Headless extraction: progress on stderr, the summary on stdout. Exit 2: no key or no project."""
    import asyncio
    import json

    from cliniko2nutshell.cliniko.errors import ClinikoError
    from cliniko2nutshell.cliniko.events import ExtractSummary
    from cliniko2nutshell.cliniko.extract import ExtractOptions, extract
    from cliniko2nutshell.cliniko.progress import ExtractProgress, format_summary
    from cliniko2nutshell.connections import MissingCredentials, cliniko_client, project_secrets

    if args.rate_limit < 1:
        print("--rate-limit must be at least 1", file=sys.stderr)
        return 2
    project = _open(args, "extract")
    if project is None:
        return 2
    with project:
        progress = ExtractProgress(sys.stderr)
        try:
            client = cliniko_client(project, project_secrets(project), rate_limit=args.rate_limit, sink=progress)
        except MissingCredentials as exc:
            print(exc, file=sys.stderr)
            return 2

        async def run() -> ExtractSummary:
            async with client:
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


def _with_snapshot(args: argparse.Namespace, command: str, body) -> int:  # type: ignore[no-untyped-def]
    """Open the project, check something was extracted, read what Nutshell holds, then `body(project, snapshot)`."""
    import asyncio

    from cliniko2nutshell.connections import MissingCredentials, nutshell_client, project_secrets, read_snapshot
    from cliniko2nutshell.nutshell.errors import NutshellError

    project = _open(args, command)
    if project is None:
        return 2
    with project:
        if not project.store.count_records("patients"):
            print("Nothing extracted yet: run `cliniko2nutshell extract` first.", file=sys.stderr)
            return 2
        emails = [r.get("email") for r in project.store.iter_records("patients")]

        async def read():  # type: ignore[no-untyped-def]
            async with nutshell_client(project, project_secrets(project)) as client:
                return await read_snapshot(client, emails)

        try:
            snapshot = asyncio.run(read())
        except MissingCredentials as exc:
            print(exc, file=sys.stderr)
            return 2
        except NutshellError as exc:
            print(f"Nutshell: {exc}", file=sys.stderr)
            return 1
        return int(body(project, snapshot))


def _cmd_map(args: argparse.Namespace) -> int:
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.mapfile import save_map
    from cliniko2nutshell.mapping.practitioners import accept_suggestions, fallback_unresolved
    from cliniko2nutshell.mapping.proposer import accept_all, confirm_map
    from cliniko2nutshell.mapping.workflow import describe_map, propose_map

    def body(project, snapshot) -> int:  # type: ignore[no-untyped-def]
        mapping = propose_map(project, snapshot)
        catalog = Catalog.from_store(project.store)
        decided = mapping
        if args.accept_suggestions:
            decided = accept_all(accept_suggestions(decided))
        if args.fallback_owner:
            if args.fallback_owner not in {u.id for u in snapshot.users}:
                print(f"{args.fallback_owner} is not a Nutshell user id (see `suggested:` lines).", file=sys.stderr)
                return 2
            decided = fallback_unresolved(decided, args.fallback_owner)
        if args.confirm:
            try:
                decided = confirm_map(decided, catalog)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 3
        if decided is not mapping:
            mapping = save_map(decided, project.mapping_path, note="decided on the command line")
        print(describe_map(mapping, catalog), end="")
        return 0

    return _with_snapshot(args, "map", body)


def _cmd_plan(args: argparse.Namespace) -> int:
    from cliniko2nutshell.mapping.mapfile import load_map
    from cliniko2nutshell.mapping.workflow import plan, propose_map

    def body(project, snapshot) -> int:  # type: ignore[no-untyped-def]
        mapping = load_map(project.mapping_path) if project.mapping_path.exists() else propose_map(project, snapshot)
        report, paths = plan(project, mapping, snapshot)
        summary = report.summary()
        if paths:
            summary["files"] = [str(p) for p in paths]
        print(json.dumps(summary) if args.json else _format_plan(summary))
        return 0 if summary.get("ready") else 3

    return _with_snapshot(args, "plan", body)


def _format_plan(summary: dict) -> str:  # type: ignore[type-arg]
    lines = [
        f"Pre-flight for map version {summary.get('map_version')}: "
        + ("ready" if summary.get("ready") else "NOT ready (blocking problems below)")
    ]
    for key, value in summary.items():
        if key in ("generated_at", "map_version", "ready", "files"):
            continue
        lines.append(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    for f in summary.get("files", []):
        lines.append(f"  written: {f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
