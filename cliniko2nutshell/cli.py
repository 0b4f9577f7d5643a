"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

# The commands in the order of a migration (--help lists them so); commands not named here follow, as registered.
JOURNEY = ("init", "connect", "extract", "map", "fields", "plan", "sample", "run", "delta", "reconcile", "rollback",
           "log", "status", "check", "projects", "open", "demo", "sandbox")  # fmt: skip


class _JourneyHelp(argparse.HelpFormatter):
    """One line per command: argparse measures subcommands without their indent, so "reconcile" would wrap."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=18)
        self._action_max_length = 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliniko2nutshell",
        description="Move a clinic from Cliniko to Nutshell. Without a command: the wizard.",
        epilog="A migration: init, connect, extract, map, fields, plan, sample, run, then reconcile "
        "(delta during cutover; rollback to undo). `cliniko2nutshell COMMAND --help` for each.",
    )
    parser.add_argument("--project", type=Path, dest="wizard_project", help="open the wizard on this project")
    parser.add_argument(
        "--screen-share", action="store_true", help="start with patient names, birth dates, e-mails and phones masked"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands, in the order of a migration")
    parser.formatter_class = _JourneyHelp
    sp = sub.add_parser("open", help="the wizard on one project folder")
    sp.add_argument("path", type=Path, help="the project folder")
    _screen_share_arg(sp)
    sp.set_defaults(handler=_cmd_open)
    for name, text in (
        ("sandbox", "serve both sandboxes (a synthetic clinic)"),
        ("demo", "the whole wizard against the sandbox (a synthetic clinic)"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--patients", type=int, default=300, help="size of the synthetic clinic (10-100000)")
        sp.add_argument("--seed", type=int, default=1, help="seed of the synthetic clinic")
        sp.add_argument(
            "--rate-limit", type=int, default=200, help="Cliniko sandbox requests per rolling minute per key"
        )
        if name == "sandbox":
            sp.add_argument("--json", action="store_true", help="print one JSON line with URLs and keys first")
            sp.add_argument(
                "--cliniko-port", type=int, default=0, help="the Cliniko sandbox's port (default: any free)"
            )
            sp.add_argument(
                "--nutshell-port", type=int, default=0, help="the Nutshell sandbox's port (default: any free)"
            )
        else:
            _screen_share_arg(sp)
        _hostile_arg(sp)
        sp.set_defaults(handler=_cmd_sandbox if name == "sandbox" else _cmd_demo)
    _add_project_parsers(sub)
    from cliniko2nutshell import cli_connect, cli_log

    cli_connect.add_parser(sub, _project_args).set_defaults(handler=_cmd_connect)
    cli_log.add_parser(sub, _project_args).set_defaults(handler=_cmd_log)
    sp = sub.add_parser("bench", help="time a whole migration of a synthetic clinic against the sandboxes")
    sp.add_argument("--patients", type=int, required=True, help="size of the synthetic clinic (10-100000)")
    sp.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer of both sandboxes")
    sp.add_argument("--cliniko-rate", type=int, default=200, help="Cliniko requests per minute (0: no limit)")
    sp.add_argument("--nutshell-rate", type=int, default=0, help="Nutshell requests per minute (0: no limit)")
    sp.add_argument("--workers", type=int, default=8, help="writes to Nutshell in flight at most")
    sp.add_argument("--seed", type=int, default=1, help="seed of the synthetic clinic")
    sp.add_argument("--keep", type=Path, help="create the project here and keep it (default: a deleted temp folder)")
    sp.add_argument("--json", action="store_true", help="end with one JSON line holding every figure")
    _hostile_arg(sp)
    sp.set_defaults(handler=_cmd_bench)
    order = {name: i for i, name in enumerate(JOURNEY)}
    sub._choices_actions.sort(key=lambda a: order.get(a.dest, len(order)))  # help lists them in journey order
    return parser


def _cmd_bench(args: argparse.Namespace) -> int:
    from cliniko2nutshell.benchmark import BenchError, BenchOptions, format_result, run_bench

    options = BenchOptions(
        patients=args.patients,
        seed=args.seed,
        latency_ms=args.latency_ms,
        cliniko_rate=args.cliniko_rate or None,
        nutshell_rate=args.nutshell_rate or None,
        workers=args.workers,
        keep=args.keep,
        hostile=args.hostile,
    )
    try:
        result = run_bench(options, say=lambda line: print(line, file=sys.stderr, flush=True))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    if args.json:
        print(json.dumps(result))
    return 0


def _hostile_arg(sp: argparse.ArgumentParser) -> None:
    what = "odd names, e-mails, dates, amounts, HTML, file names"
    sp.add_argument("--hostile", action="store_true", help=f"plant the hostile records too ({what})")


def _screen_share_arg(sp: argparse.ArgumentParser) -> None:
    # SUPPRESS: given before the command (top level) or after it, either way it counts.
    sp.add_argument("--screen-share", action="store_true", default=argparse.SUPPRESS, help="mask patient data")


def _cmd_open(args: argparse.Namespace) -> int:
    from cliniko2nutshell.tui.run import run_wizard

    if not (args.path / "project.toml").exists():
        print(f"No project at {args.path} (no project.toml). `cliniko2nutshell` alone lists and creates projects.",
              file=sys.stderr)  # fmt: skip
        return 2
    return run_wizard(args.path, screen_share=args.screen_share)


def _cmd_demo(args: argparse.Namespace) -> int:
    from cliniko2nutshell.tui.run import run_demo

    if not 10 <= args.patients <= 100_000:
        print("--patients must be between 10 and 100000", file=sys.stderr)
        return 2
    return run_demo(
        args.patients, args.seed, rate_limit=args.rate_limit, screen_share=args.screen_share, hostile=args.hostile
    )


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
    sandbox = start_sandbox(
        args.patients,
        args.seed,
        cliniko_rate_limit=args.rate_limit,
        cliniko_port=args.cliniko_port,
        nutshell_port=args.nutshell_port,
        hostile=args.hostile,
    )
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
                + "".join(
                    f"  A {role}'s Cliniko key (not an administrator): {key}\n"
                    for role, key in info["cliniko"]["staff_keys"].items()
                    if role == "receptionist"
                )
                + "Press Ctrl+C to stop.",
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
    sp = sub.add_parser("init", help="create a migration project (a private folder)")
    sp.add_argument("name", help="a name for the project, e.g. the clinic's")
    sp.add_argument("--path", type=Path, help="the folder to create (default: under the user data folder)")
    sp.set_defaults(handler=_cmd_init)
    sp = sub.add_parser("projects", help="the projects: clinic, last step, last run's outcome")
    sp.set_defaults(handler=_cmd_projects)

    sp = sub.add_parser("extract", help="read everything from Cliniko into the project")
    _project_args(sp, cliniko=True)
    sp.add_argument("--incremental", action="store_true", help="fetch only what changed since the last extraction")
    sp.add_argument("--rate-limit", type=int, default=200, help="Cliniko requests per rolling minute (default 200)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(handler=_cmd_extract)

    sp = sub.add_parser("map", help="the field map, its open decisions; decide and confirm")
    _project_args(sp, nutshell=True)
    sp.add_argument(
        "--accept-suggestions",
        action="store_true",
        help="accept every shown proposal: practitioner name suggestions and custom-field decisions",
    )
    sp.add_argument(
        "--fallback-owner",
        metavar="USER",
        help="send practitioners still unresolved to this Nutshell user (an e-mail, or an id such as 5-users)",
    )
    sp.add_argument("--currency", metavar="CODE", help="the currency of money fields (AUD, NZD, GBP, ...)")
    sp.add_argument("--confirm", action="store_true", help="confirm the map (refused while decisions are open)")
    sp.set_defaults(handler=_cmd_map)

    _add_engine_parsers(sub)

    sp = sub.add_parser("plan", help="pre-flight: what will be created, linked, skipped")
    _project_args(sp, nutshell=True)
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(handler=_cmd_plan)


def _project_args(sp: argparse.ArgumentParser, *, cliniko: bool = False, nutshell: bool = False) -> None:
    sp.add_argument("--project", required=True, type=Path, help="the project folder")
    sp.add_argument("--verbose", action="store_true", help="also show the operational log on the terminal")
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
    _start_log(project, command, args)
    remember_endpoints(
        project, cliniko_url=getattr(args, "cliniko_url", None), nutshell_url=getattr(args, "nutshell_url", None)
    )
    return project


def _start_log(project, command: str, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    from cliniko2nutshell.oplog import COMMAND_LOG

    COMMAND_LOG.start(
        project.logs_dir, command, verbose=getattr(args, "verbose", False), project_id=project.settings.id
    )


def _log_error(exc: BaseException) -> None:
    """A command stopped on an error it explains to the user: the operational log records it too."""
    from cliniko2nutshell.oplog import COMMAND_LOG

    COMMAND_LOG.error(exc)


def _cmd_init(args: argparse.Namespace) -> int:
    from cliniko2nutshell.project import ProjectError, create_project

    try:
        project = create_project(args.name, path=args.path, command="cliniko2nutshell init")
    except ProjectError as exc:
        print(exc, file=sys.stderr)
        return 2
    with project:
        _start_log(project, "init", args)
        where = project.path.resolve()
        print(f"Created the project {project.settings.name!r} in {where}")
        print(f"Next: cliniko2nutshell connect --project {where}")
    return 0


def _cmd_projects(args: argparse.Namespace) -> int:
    from cliniko2nutshell.cli_text import format_projects
    from cliniko2nutshell.journey import project_summary
    from cliniko2nutshell.project import default_projects_root, list_projects

    summaries = [project_summary(info.path) for info in list_projects()]
    print(format_projects(summaries, default_projects_root()))
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
    from cliniko2nutshell.oplog import log_event, tee

    if args.rate_limit < 1:
        print("--rate-limit must be at least 1", file=sys.stderr)
        return 2
    project = _open(args, "extract")
    if project is None:
        return 2
    with project:
        progress = ExtractProgress(sys.stderr)
        sink = tee(progress, log_event)
        try:
            client = cliniko_client(project, project_secrets(project), rate_limit=args.rate_limit, sink=sink)
        except MissingCredentials as exc:
            _log_error(exc)
            print(exc, file=sys.stderr)
            return 2

        async def run() -> ExtractSummary:
            async with client:
                return await extract(project, client, ExtractOptions(incremental=args.incremental), sink=sink)

        try:
            with progress:
                summary = asyncio.run(run())
        except ClinikoError as exc:
            _log_error(exc)
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

    from cliniko2nutshell.connections import (
        MissingCredentials,
        contact_limit,
        nutshell_client,
        project_secrets,
        read_snapshot,
    )
    from cliniko2nutshell.mapping.mapfile import MapError, load_map
    from cliniko2nutshell.nutshell.errors import NutshellError

    project = _open(args, command)
    if project is None:
        return 2
    with project:
        if not project.store.count_records("patients"):
            print("Nothing extracted yet: run `cliniko2nutshell extract` first.", file=sys.stderr)
            return 2
        try:  # a damaged map is reported before anything is fetched, and never overwritten
            if project.mapping_path.exists():
                load_map(project.mapping_path)
        except MapError as exc:
            print(exc, file=sys.stderr)
            return 2
        emails = [r.get("email") for r in project.store.iter_records("patients")]

        async def read():  # type: ignore[no-untyped-def]
            async with nutshell_client(project, project_secrets(project)) as client:
                return await read_snapshot(client, emails, contact_limit=contact_limit(project), project=project)

        try:
            snapshot = asyncio.run(read())
        except MissingCredentials as exc:
            _log_error(exc)
            print(exc, file=sys.stderr)
            return 2
        except NutshellError as exc:
            _log_error(exc)
            print(f"Nutshell: {exc}", file=sys.stderr)
            return 1
        return int(body(project, snapshot))


def _cmd_map(args: argparse.Namespace) -> int:
    from cliniko2nutshell.mapping.catalog import Catalog
    from cliniko2nutshell.mapping.currency import normalize_currency
    from cliniko2nutshell.mapping.mapfile import save_map
    from cliniko2nutshell.mapping.practitioners import accept_suggestions, fallback_unresolved, find_user
    from cliniko2nutshell.mapping.proposer import accept_all, confirm_map
    from cliniko2nutshell.mapping.workflow import describe_map, propose_map

    def body(project, snapshot) -> int:  # type: ignore[no-untyped-def]
        mapping = propose_map(project, snapshot)
        catalog = Catalog.from_store(project.store)
        decided = mapping
        if args.currency:
            try:
                decided = decided.model_copy(update={"currency": normalize_currency(args.currency)})
            except ValueError as exc:
                print(f"--currency: {exc}", file=sys.stderr)
                return 2
        if args.accept_suggestions:
            decided = accept_all(accept_suggestions(decided))
        if args.fallback_owner:
            owner = find_user(snapshot.users, args.fallback_owner)
            if owner is None:
                print(
                    f"{args.fallback_owner} is neither the e-mail nor the id of a Nutshell user "
                    "(the `map` output names each user with both).",
                    file=sys.stderr,
                )
                return 2
            decided = fallback_unresolved(decided, owner.id)
        if args.confirm:
            try:
                decided = confirm_map(decided, catalog)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 3
        if decided is not mapping:
            mapping = save_map(decided, project.mapping_path, note="decided on the command line")
        print(describe_map(mapping, catalog, snapshot.users), end="")
        return 0

    return _with_snapshot(args, "map", body)


def _cmd_plan(args: argparse.Namespace) -> int:
    from cliniko2nutshell.cli_text import format_plan
    from cliniko2nutshell.engine.estimate import estimate_for_project
    from cliniko2nutshell.mapping.mapfile import load_map
    from cliniko2nutshell.mapping.workflow import plan, propose_map

    def body(project, snapshot) -> int:  # type: ignore[no-untyped-def]
        mapping = load_map(project.mapping_path) if project.mapping_path.exists() else propose_map(project, snapshot)
        report, paths = plan(project, mapping, snapshot)
        summary = report.summary()
        summary["estimate"] = estimate_for_project(project, report.counts).as_dict()
        if paths:
            summary["files"] = [str(p) for p in paths]
        print(json.dumps(summary) if args.json else format_plan(summary, report.blockers))
        return 0 if summary.get("ready") else 3

    return _with_snapshot(args, "plan", body)


# -- the engine's commands ------------------------------------------------------------------------------------
# Exit codes: 0 success, 3 partial (records quarantined, conflicts skipped, items left) or not ready,
# 1 failure (the run stopped; it resumes with `run --resume`), 2 could not start (usage, project, credentials).
EXIT = {"success": 0, "partial": 3, "failure": 1}
RESUME_HINT = "Nothing is lost: every write is journaled. Put the cause above right, then `run --resume` carries on."


def _add_engine_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def add(name: str, text: str, handler, *, network: bool = True):  # type: ignore[no-untyped-def]
        sp = sub.add_parser(name, help=text)
        _project_args(sp, nutshell=network, cliniko=name == "delta")
        sp.add_argument("--json", action="store_true", help="print a machine-readable summary")
        if network:
            sp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            sp.add_argument("--workers", type=int, default=8, help="writes to Nutshell in flight at most")
        sp.set_defaults(handler=handler)
        return sp

    sp = add("fields", "Nutshell's custom fields vs the map; create missing", _cmd_fields)
    sp.add_argument("--create", action="store_true", help="create the missing custom fields (cannot be undone)")
    sp.add_argument("--cap", type=int, help="your Nutshell plan's custom-field cap, if you know it")
    sp = add("sample", "migrate a representative slice, diff it field by field", _cmd_sample)
    sp.add_argument("--size", type=int, default=200, help="patients in the sample (100-500 recommended)")
    sp.add_argument("--patients", help="comma-separated Cliniko patient ids instead of a stratified sample")
    sp.add_argument("--again", action="store_true", help="roll the previous sample back first, then run it anew")
    sp = add("run", "migrate everything not yet migrated", _cmd_run)
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--retry-failed", action="store_true", help="re-run only the quarantined records")
    group.add_argument("--resume", action="store_true", help="carry on the last paused or interrupted run")
    sp = add("delta", "apply what changed in Cliniko since the full run", _cmd_delta)
    sp.add_argument(
        "--conflicts",
        choices=["skip", "overwrite", "ask"],
        default="skip",
        help="records edited in Nutshell since we wrote them: skip (default), overwrite, or ask for each",
    )
    add("reconcile", "Cliniko vs Nutshell counts per record kind; failures", _cmd_reconcile)
    sp = add("rollback", "undo what the migration wrote (preview first)", _cmd_rollback)
    sp.add_argument("--scope", default="everything", help="everything (default), run:N, or objects:a,b")
    sp.add_argument("--force", action="store_true", help="also undo records edited in Nutshell since we wrote them")
    add("status", "what the project holds (no network)", _cmd_status, network=False)
    sp = add("check", "verify a project: store, journal, files", _cmd_check, network=False)
    sp.add_argument("--quick", action="store_true", help="skip the full integrity check and the files' sha256")


def _confirm(args: argparse.Namespace, question: str, typed: str | None = None) -> bool:
    """Ask on the terminal unless --yes; with no terminal and no --yes, refuse rather than guess."""
    if getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        print("Not a terminal: pass --yes to go ahead without a prompt.", file=sys.stderr)
        return False
    if typed:
        return input(f"{question} Type {typed} to go ahead: ").strip() == typed
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _print_result(args: argparse.Namespace, result, text: str):  # type: ignore[no-untyped-def]
    """The summary printer, called once the live display has stopped (so the summary comes last)."""
    outcome = result.outcome.value

    def emit() -> int:
        if args.json:
            data = result.as_dict() if hasattr(result, "as_dict") else {}
            print(json.dumps({**data, "outcome": outcome}, default=str))
        else:
            hint = f"\n{RESUME_HINT}" if outcome == "failure" else ""
            print(f"{text}\nOutcome: {outcome}{hint}")
        return EXIT[outcome]

    return emit


def _engine_command(args: argparse.Namespace, command: str, work) -> int:  # type: ignore[no-untyped-def]
    """Open the project, connect to Nutshell (and Cliniko for a delta), run `work(engine, clients)`."""
    import asyncio

    from cliniko2nutshell.cli_text import format_refusal
    from cliniko2nutshell.connections import MissingCredentials, cliniko_client, nutshell_client, project_secrets
    from cliniko2nutshell.engine.api import Engine, EngineError
    from cliniko2nutshell.engine.progress import RunProgress
    from cliniko2nutshell.mapping.mapfile import MapError
    from cliniko2nutshell.mapping.workflow import check_blockers
    from cliniko2nutshell.nutshell.errors import NutshellError
    from cliniko2nutshell.oplog import COMMAND_LOG, log_event, tee

    project = _open(args, command)
    if project is None:
        return 2
    with project:
        if not project.mapping_path.exists():
            print("No map yet: run `cliniko2nutshell map` (and confirm it) first.", file=sys.stderr)
            return 2
        progress = RunProgress(sys.stderr)
        sink = tee(progress, log_event)
        secrets = project_secrets(project)
        try:
            nutshell = nutshell_client(project, secrets, sink=sink)
            cliniko = cliniko_client(project, secrets, sink=sink) if command == "delta" else None
        except MissingCredentials as exc:
            _log_error(exc)
            print(exc, file=sys.stderr)
            return 2

        async def go():  # type: ignore[no-untyped-def]  # an exit code, or a printer of the summary
            async with nutshell:
                if command in ("sample", "run"):
                    # A blocker blocks: the pre-flight again, against what Nutshell holds now.
                    blockers = await check_blockers(project, nutshell)
                    if blockers:
                        print(format_refusal(command, blockers), file=sys.stderr)
                        kinds = ", ".join(sorted({b.kind for b in blockers}))
                        COMMAND_LOG.warning(f"refused: {len(blockers)} blocker(s) ({kinds})")
                        return 3
                engine = await Engine.connect(project, nutshell, sink=sink)
                if cliniko is None:
                    return await work(engine, nutshell)
                async with cliniko:
                    return await work(engine, cliniko)

        try:
            with progress:
                done = asyncio.run(go())
            return done() if callable(done) else done
        except (EngineError, MapError, ValueError) as exc:  # ValueError: options the engine refuses
            _log_error(exc)
            print(exc, file=sys.stderr)
            return 2
        except NutshellError as exc:
            _log_error(exc)
            print(
                f"Nutshell: {exc}. Nothing is lost: the journal has every write; run again to resume.", file=sys.stderr
            )
            return 1
        except KeyboardInterrupt:
            print("Interrupted. Nothing is lost: `run --resume` carries on where this stopped.", file=sys.stderr)
            return 130


def _cmd_fields(args: argparse.Namespace) -> int:
    async def work(engine, nutshell) -> int:  # type: ignore[no-untyped-def]
        from cliniko2nutshell.nutshell.models import Entity
        from cliniko2nutshell.nutshell.schema_check import RequiredField, SchemaNeeds, check_schema

        needs = SchemaNeeds(
            custom_fields=[
                RequiredField(Entity(f.entity.lower()), f.name, f.type, tuple(f.choices))
                for f in engine.mapping.custom_fields
            ]
        )
        report = await check_schema(nutshell, needs, custom_field_cap=args.cap)
        for check in report.fields:
            req = check.required
            extra = f", Nutshell has {check.existing.type}" if check.existing and check.state.value != "present" else ""
            print(f"  {req.entity.value:<9} {req.name} ({req.type}): {check.state.value}{extra}")
        cap = report.cap
        print(f"  custom-field cap: {cap.cap if cap.cap is not None else 'unknown'}; {cap.to_create} to create")
        if not args.create:
            return 0
        if not _confirm(args, "Create the missing custom fields? Nutshell's API cannot delete them afterwards."):
            return 2
        result = await engine.ensure_custom_fields(nutshell, custom_field_cap=args.cap)
        for c in result.created:
            print(f"created {c.entity.value} custom field {c.name!r} ({c.type})")
        for failure in getattr(result, "failures", []):
            print(f"not created: {failure}", file=sys.stderr)
        return 3 if getattr(result, "failures", None) else 0

    return _engine_command(args, "fields", work)


def _cmd_sample(args: argparse.Namespace) -> int:
    from cliniko2nutshell.engine.api import SampleOptions

    patients = [p.strip() for p in args.patients.split(",") if p.strip()] if args.patients else None

    async def work(engine, _client):  # type: ignore[no-untyped-def]
        what = f"{len(patients)} named patients" if patients else f"a sample of about {args.size} patients"
        if not _confirm(args, f"Migrate {what} to Nutshell (undo with `rollback --scope run:N`)?"):
            return 2
        result = await engine.sample(
            SampleOptions(size=args.size, patients=patients, rollback_previous=args.again, workers=args.workers)
        )
        from cliniko2nutshell.cli_text import format_run

        diff = f"Diff: {result.diff.describe()}" if result.finished else "The sample stopped before its diff."
        return _print_result(args, result.summary if args.json else result, format_run(result.summary, [diff]))

    return _engine_command(args, "sample", work)


def _cmd_run(args: argparse.Namespace) -> int:
    from cliniko2nutshell.engine.api import RunOptions

    async def work(engine, _client):  # type: ignore[no-untyped-def]
        options = RunOptions(workers=args.workers)
        if args.resume:
            summary = await engine.resume(options=options)
        elif args.retry_failed:
            summary = await engine.retry(options)
        else:
            if not _confirm(args, "Migrate everything not yet migrated to Nutshell?"):
                return 2
            summary = await engine.full(options)
        from cliniko2nutshell.cli_text import format_run

        _add_run_report(engine, summary)
        return _print_result(args, summary, format_run(summary))

    return _engine_command(args, "run", work)


def _add_run_report(engine: Any, summary: Any) -> None:
    """The run report the wizard writes after a run (reports/run-<id>-...): a headless run leaves the same."""
    from cliniko2nutshell.engine.run_report import write_run_report

    summary.reports += [str(p) for p in write_run_report(summary, engine.journal, engine.project.reports_dir)]


def _cmd_delta(args: argparse.Namespace) -> int:
    from cliniko2nutshell.engine.api import RunOptions
    from cliniko2nutshell.engine.runner import ConflictPolicy

    def ask(conflict) -> ConflictPolicy:  # type: ignore[no-untyped-def]
        fields = ", ".join(getattr(conflict, "fields", ()) or ())
        question = f"{getattr(conflict, 'object', 'record')} {getattr(conflict, 'source_id', '')} was edited in "
        question += f"Nutshell since we wrote it ({fields}). Overwrite it?"
        return ConflictPolicy.OVERWRITE if _confirm(args, question) else ConflictPolicy.SKIP

    async def work(engine, cliniko):  # type: ignore[no-untyped-def]
        policy = ConflictPolicy(args.conflicts)
        if policy is ConflictPolicy.ASK and not sys.stdin.isatty():
            print("--conflicts ask needs a terminal; choose skip or overwrite.", file=sys.stderr)
            return 2
        if not _confirm(args, "Fetch Cliniko's changes since the last extraction and apply them to Nutshell?"):
            return 2
        result = await engine.delta(cliniko, RunOptions(conflicts=policy, ask=ask, workers=args.workers))
        from cliniko2nutshell.cli_text import format_run

        _add_run_report(engine, result.summary)
        changed = f"Changed in Cliniko: {result.patients} patients, {result.companies} companies"
        return _print_result(args, result.summary if args.json else result, format_run(result.summary, [changed]))

    return _engine_command(args, "delta", work)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    async def work(engine, _client):  # type: ignore[no-untyped-def]
        from cliniko2nutshell.cli_text import format_reconcile

        result = await engine.reconcile()
        rec = result.reconciliation
        if args.json:

            def emit() -> int:
                data = {**rec.as_dict(), "reports": result.reports, "outcome": result.outcome.value}
                print(json.dumps(data, default=str))
                return EXIT[result.outcome.value]

            return emit
        return _print_result(args, result, format_reconcile(rec, result.reports))

    return _engine_command(args, "reconcile", work)


def _parse_scope(text: str):  # type: ignore[no-untyped-def]
    from cliniko2nutshell.engine.rollback import RollbackScope, ScopeKind

    kind, _, rest = text.partition(":")
    if kind == "everything" and not rest:
        return RollbackScope()
    if kind == "run" and rest.isdigit():
        return RollbackScope(ScopeKind.RUN, int(rest))
    if kind == "objects" and rest:
        return RollbackScope(ScopeKind.OBJECTS, objects=tuple(o.strip() for o in rest.split(",") if o.strip()))
    raise ValueError(f"--scope {text!r}: use everything, run:N or objects:a,b")


def _cmd_rollback(args: argparse.Namespace) -> int:
    try:
        scope = _parse_scope(args.scope)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    async def work(engine, _client):  # type: ignore[no-untyped-def]
        from cliniko2nutshell.cli_text import format_rollback_preview, format_run

        preview = await engine.rollback_preview(scope)
        if not args.json:
            print(format_rollback_preview(preview, args.force))
        if not preview.items:
            print("Nothing to roll back.", file=sys.stderr)
            return 0
        if not _confirm(args, "Roll back as previewed?", typed="ROLLBACK"):
            return 2
        result = await engine.rollback(scope, force=args.force)
        v = result.verification
        checked = [f"Verification: {v.gone} of {v.checked} gone, {v.reported} left as previewed"]
        checked += [f"  STILL THERE: {o} {s} -> {n}" for o, s, n in v.still_there]
        return _print_result(args, result.summary if args.json else result, format_run(result.summary, checked))

    return _engine_command(args, "rollback", work)


def _open_read_only(args: argparse.Namespace, command: str):  # type: ignore[no-untyped-def]
    """The project for a command that only reads (no lock: it can run beside a run); None on error."""
    from cliniko2nutshell.project import ProjectError, open_project

    try:
        project = open_project(args.project, write=False)
    except ProjectError as exc:
        print(exc, file=sys.stderr)
        return None
    _start_log(project, command, args)
    return project


def _cmd_status(args: argparse.Namespace) -> int:
    from cliniko2nutshell.cli_text import format_status
    from cliniko2nutshell.engine.api import status

    project = _open_read_only(args, "status")
    if project is None:
        return 2
    with project:
        report = status(project)
    data = report.as_dict()
    print(json.dumps(data) if args.json else format_status(data))
    return EXIT[report.outcome.value]


def _cmd_check(args: argparse.Namespace) -> int:
    """Exit 0: sound; 3: warnings; 1: problems found (commands that write refuse); 2: not a project."""
    from cliniko2nutshell.project.integrity import verify_project

    if not args.project.is_dir():
        print(f"No project at {args.project}.", file=sys.stderr)
        return 2
    report = verify_project(args.project, deep=not args.quick)
    print(json.dumps(report.as_dict()) if args.json else report.describe())
    return 1 if report.errors else 3 if report.warnings else 0


def _cmd_connect(args: argparse.Namespace) -> int:
    from cliniko2nutshell.cli_connect import connect_command

    project = _open(args, "connect")
    if project is None:
        return 2
    with project:
        return connect_command(args, project)


def _cmd_log(args: argparse.Namespace) -> int:
    from cliniko2nutshell.cli_log import log_command

    project = _open_read_only(args, "log")
    if project is None:
        return 2
    with project:
        return log_command(args, project)


def main(argv: list[str] | None = None) -> int:
    from cliniko2nutshell.oplog import COMMAND_LOG

    args = build_parser().parse_args(argv)
    if args.command is None:
        from cliniko2nutshell.tui.run import run_wizard

        return run_wizard(args.wizard_project, screen_share=args.screen_share)
    code = 1
    try:
        code = int(args.handler(args))
    except BaseException as exc:
        COMMAND_LOG.error(exc)
        failed = _project_failure(args, exc) if isinstance(exc, Exception) else None
        if failed is None:
            raise
        code = failed
    finally:
        COMMAND_LOG.finish(code)
    return code


def _project_failure(args: argparse.Namespace, exc: Exception) -> int | None:
    """A command stopped by the project folder itself: the disk refused a write (exit 1: free some space and run
    it again) or the store is damaged (exit 2). Says which, and what to do; None for anything else."""
    from cliniko2nutshell.project.store import damaged_message, is_write_failure, write_failure_message

    folder = getattr(args, "project", None)
    if folder is None:
        return None
    found: list[BaseException] = [exc]
    while found and isinstance(found[0], BaseExceptionGroup):  # a failure inside a task group
        found = [*found[0].exceptions, *found[1:]]
    cause = next((e for e in found if is_write_failure(e)), None)
    if cause is not None:
        print(write_failure_message(folder, cause), file=sys.stderr)
        return 1
    damaged = next((e for e in found if isinstance(e, sqlite3.DatabaseError)), None)
    if damaged is not None:
        print(damaged_message(folder / "migration.db", str(damaged)), file=sys.stderr)
        return 2
    return None


if __name__ == "__main__":
    sys.exit(main())
