"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliniko2nutshell", description=__doc__)
    parser.add_argument("--project", type=Path, dest="wizard_project", help="open the wizard on this project")
    parser.add_argument(
        "--screen-share", action="store_true", help="start with patient names, birth dates, e-mails and phones masked"
    )
    sub = parser.add_subparsers(dest="command")
    sp = sub.add_parser("open", help="the wizard on one project folder")
    sp.add_argument("path", type=Path, help="the project folder")
    _screen_share_arg(sp)
    sp.set_defaults(handler=_cmd_open)
    for name, text in (
        ("sandbox", "serve the Cliniko and Nutshell sandboxes until interrupted"),
        ("demo", "the whole wizard against the sandbox (synthetic clinic, keys in memory only)"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--patients", type=int, default=300, help="size of the synthetic clinic (10-100000)")
        sp.add_argument("--seed", type=int, default=1, help="seed of the synthetic clinic")
        sp.add_argument(
            "--rate-limit", type=int, default=200, help="Cliniko sandbox requests per rolling minute per key"
        )
        if name == "sandbox":
            sp.add_argument("--json", action="store_true", help="print one JSON line with URLs and keys first")
        else:
            _screen_share_arg(sp)
        sp.set_defaults(handler=_cmd_sandbox if name == "sandbox" else _cmd_demo)
    _add_project_parsers(sub)
    return parser


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
    return run_demo(args.patients, args.seed, rate_limit=args.rate_limit, screen_share=args.screen_share)


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

    _add_engine_parsers(sub)

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


# -- the engine's commands ------------------------------------------------------------------------------------
# Exit codes: 0 success, 3 partial (records quarantined, conflicts skipped, items left) or not ready,
# 1 failure (the run stopped; it resumes with `run --resume`), 2 could not start (usage, project, credentials).
EXIT = {"success": 0, "partial": 3, "failure": 1}


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

    sp = add("fields", "check Nutshell's custom fields against the map; --create makes the missing ones", _cmd_fields)
    sp.add_argument("--create", action="store_true", help="create the missing custom fields (cannot be undone)")
    sp.add_argument("--cap", type=int, help="your Nutshell plan's custom-field cap, if you know it")
    sp = add("sample", "migrate a representative slice and diff it field by field", _cmd_sample)
    sp.add_argument("--size", type=int, default=200, help="patients in the sample (100-500 recommended)")
    sp.add_argument("--patients", help="comma-separated Cliniko patient ids instead of a stratified sample")
    sp.add_argument("--again", action="store_true", help="roll the previous sample back first, then run it anew")
    sp = add("run", "the full migration of everything not yet migrated", _cmd_run)
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--retry-failed", action="store_true", help="re-run only the quarantined records")
    group.add_argument("--resume", action="store_true", help="carry on the last paused or interrupted run")
    sp = add("delta", "pick up what changed in Cliniko since the full run, and apply it", _cmd_delta)
    sp.add_argument(
        "--conflicts",
        choices=["skip", "overwrite", "ask"],
        default="skip",
        help="records edited in Nutshell since we wrote them: skip (default), overwrite, or ask for each",
    )
    add("reconcile", "count source vs Nutshell per object; list failed records", _cmd_reconcile)
    sp = add("rollback", "undo what the migration wrote (preview first)", _cmd_rollback)
    sp.add_argument("--scope", default="everything", help="everything (default), run:N, or objects:a,b")
    sp.add_argument("--force", action="store_true", help="also undo records edited in Nutshell since we wrote them")
    add("status", "what the project holds: runs, mapped records, quarantine (no network)", _cmd_status, network=False)
    sp = add("check", "verify a project: store integrity, journal consistency, files against their sha256", _cmd_check,
             network=False)  # fmt: skip
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


def _print_result(args: argparse.Namespace, result, lines: list[str]):  # type: ignore[no-untyped-def]
    """The summary printer, called once the live display has stopped (so the summary comes last)."""
    outcome = result.outcome.value

    def emit() -> int:
        if args.json:
            data = result.as_dict() if hasattr(result, "as_dict") else {}
            print(json.dumps({**data, "outcome": outcome}, default=str))
        else:
            print("\n".join([*lines, f"Outcome: {outcome}"]))
        return EXIT[outcome]

    return emit


def _engine_command(args: argparse.Namespace, command: str, work) -> int:  # type: ignore[no-untyped-def]
    """Open the project, connect to Nutshell (and Cliniko for a delta), run `work(engine, clients)`."""
    import asyncio

    from cliniko2nutshell.connections import MissingCredentials, cliniko_client, nutshell_client, project_secrets
    from cliniko2nutshell.engine.api import Engine, EngineError
    from cliniko2nutshell.engine.progress import RunProgress
    from cliniko2nutshell.mapping.mapfile import MapError
    from cliniko2nutshell.nutshell.errors import NutshellError
    from cliniko2nutshell.project.logs import attach_project_log, detach_project_log

    project = _open(args, command)
    if project is None:
        return 2
    with project:
        if not project.mapping_path.exists():
            print("No map yet: run `cliniko2nutshell map` (and confirm it) first.", file=sys.stderr)
            return 2
        progress = RunProgress(sys.stderr)
        secrets = project_secrets(project)
        try:
            nutshell = nutshell_client(project, secrets)
            cliniko = cliniko_client(project, secrets, sink=progress) if command == "delta" else None
        except MissingCredentials as exc:
            print(exc, file=sys.stderr)
            return 2
        log = attach_project_log(project.logs_dir)

        async def go():  # type: ignore[no-untyped-def]  # an exit code, or a printer of the summary
            async with nutshell:
                engine = await Engine.connect(project, nutshell, sink=progress)
                if cliniko is None:
                    return await work(engine, nutshell)
                async with cliniko:
                    return await work(engine, cliniko)

        try:
            with progress:
                done = asyncio.run(go())
            return done() if callable(done) else done
        except (EngineError, MapError, ValueError) as exc:  # ValueError: options the engine refuses
            print(exc, file=sys.stderr)
            return 2
        except NutshellError as exc:
            print(
                f"Nutshell: {exc}. Nothing is lost: the journal has every write; run again to resume.", file=sys.stderr
            )
            return 1
        except KeyboardInterrupt:
            print("Interrupted. Nothing is lost: `run --resume` carries on where this stopped.", file=sys.stderr)
            return 130
        finally:
            detach_project_log(log)


def _summary_lines(summary) -> list[str]:  # type: ignore[no-untyped-def]
    lines = [f"{name:<28} {c.as_dict()}" for name, c in sorted(summary.counts.items())]
    if summary.message:
        lines.append(summary.message)
    lines += [f"report: {p}" for p in summary.reports]
    return lines


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
        lines = _summary_lines(result.summary)
        lines.append(f"diff: {len(result.diff.problems)} field(s) differ from what the map expects")
        return _print_result(args, result.summary if args.json else result, lines)

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
        return _print_result(args, summary, _summary_lines(summary))

    return _engine_command(args, "run", work)


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
        lines = [f"changed: {result.patients} patients, {result.companies} companies", *_summary_lines(result.summary)]
        return _print_result(args, result.summary if args.json else result, lines)

    return _engine_command(args, "delta", work)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    async def work(engine, _client):  # type: ignore[no-untyped-def]
        result = await engine.reconcile()
        rec = result.reconciliation
        lines = [json.dumps(rec.as_dict(), indent=1, default=str)] + [f"report: {p}" for p in result.reports]
        if args.json:

            def emit() -> int:
                data = {**rec.as_dict(), "reports": result.reports, "outcome": result.outcome.value}
                print(json.dumps(data, default=str))
                return EXIT[result.outcome.value]

            return emit
        return _print_result(args, result, lines)

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
        preview = await engine.rollback_preview(scope)
        if not args.json:
            print(f"Rollback preview ({scope.describe()}):")
            for obj, counts in sorted(preview.counts().items()):
                print(f"  {obj:<28} {counts}")
            for line in preview.cannot_undo:
                print(f"  left in place: {line}")
            if preview.edited_since and not args.force:
                print(f"  {len(preview.edited_since)} record(s) edited in Nutshell since we wrote them are skipped.")
        if not preview.items:
            print("Nothing to roll back.", file=sys.stderr)
            return 0
        if not _confirm(args, "Roll back as previewed?", typed="ROLLBACK"):
            return 2
        result = await engine.rollback(scope, force=args.force)
        v = result.verification
        lines = _summary_lines(result.summary)
        lines.append(f"verification: {v.gone} of {v.checked} gone, {v.reported} left as previewed")
        lines += [f"  STILL THERE: {o} {s} -> {n}" for o, s, n in v.still_there]
        return _print_result(args, result.summary if args.json else result, lines)

    return _engine_command(args, "rollback", work)


def _cmd_status(args: argparse.Namespace) -> int:
    from cliniko2nutshell.engine.api import status
    from cliniko2nutshell.project import ProjectError, open_project

    try:
        project = open_project(args.project, write=False)
    except ProjectError as exc:
        print(exc, file=sys.stderr)
        return 2
    with project:
        report = status(project)
    data = report.as_dict()
    if args.json:
        print(json.dumps(data))
    else:
        for r in data["runs"]:
            print(f"run {r['id']:>3} {r['kind']:<9} {r['status']:<12} {r['outcome'] or '-':<8} map v{r['map_version']}")
        print(f"extracted: {data['source']}")
        print(f"in Nutshell: {data['mapped']}")
        print(
            f"quarantined: {data['quarantined']}; unknown outcomes: {data['open_operations']}; "
            f"resumable runs: {data['resumable']}"
        )
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
        from cliniko2nutshell.tui.run import run_wizard

        return run_wizard(args.wizard_project, screen_share=args.screen_share)
    try:
        return int(args.handler(args))
    except sqlite3.DatabaseError as exc:  # the store failed under a command: say which file, and what to do
        if getattr(args, "project", None) is None:
            raise
        from cliniko2nutshell.project.store import damaged_message

        print(damaged_message(args.project / "migration.db", str(exc)), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
