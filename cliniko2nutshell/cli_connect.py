"""`cliniko2nutshell connect`: enter (or take from the environment) both services' keys, test them live, keep them
in the OS keychain, and record what the later steps need (connect.py does the work; this is the conversation)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import Any

from cliniko2nutshell.connect import (
    ClinikoAccess,
    ConnectError,
    ConnectProblem,
    NutshellAccess,
    check_cliniko,
    check_nutshell,
    record_connection,
    store_keys,
)
from cliniko2nutshell.connections import CONTACT_LIMIT_OPTION
from cliniko2nutshell.project import Project
from cliniko2nutshell.project.secrets import Secret

# Problems a later try cannot fix without new input (exit 2); the others are worth another try (exit 1).
_RETRYABLE = {ConnectProblem.UNREACHABLE, ConnectProblem.TIMEOUT, ConnectProblem.RATE_LIMITED,
              ConnectProblem.SERVICE_ERROR}  # fmt: skip


def add_parser(sub: Any, project_args: Any) -> argparse.ArgumentParser:
    sp = sub.add_parser("connect", help="enter and test both services' keys; keep them safely")
    project_args(sp, cliniko=True, nutshell=True)
    sp.add_argument(
        "--from-env",
        action="store_true",
        help=f"take the keys from {', '.join(s.value for s in Secret)} instead of asking",
    )
    sp.add_argument(
        "--contact-limit",
        type=int,
        metavar="N",
        help="your Nutshell plan's contact limit, if it has one (0: none); the pre-flight blocks a run beyond it",
    )
    return sp


def _ask(prompt: str, *, secret: bool, default: str | None = None) -> str:
    shown = f"{prompt} [{default}]: " if default else f"{prompt}: "
    answer = getpass.getpass(shown) if secret else input(shown)
    return answer.strip() or (default or "")


def _keys(args: argparse.Namespace, project: Project) -> tuple[str, str, str] | str:
    """(Cliniko key, Nutshell e-mail, Nutshell key), or why they could not be had."""
    if args.from_env:
        values = [os.environ.get(s.value, "").strip() for s in Secret]
        missing = [s.value for s, v in zip(Secret, values, strict=True) if not v]
        if missing:
            return f"--from-env: {', '.join(missing)} not set in the environment."
        return values[0], values[1], values[2]
    if not sys.stdin.isatty():
        return "Not a terminal, so the keys cannot be asked for without showing them: use --from-env."
    print("Keys are typed without being shown, and kept in your OS keychain (never in the project folder).")
    cliniko = _ask("Cliniko API key (My info > Manage API keys)", secret=True)
    email = _ask("Nutshell user e-mail", secret=False, default=project.settings.nutshell.username)
    nutshell = _ask("Nutshell API key (Settings > API keys)", secret=True)
    return cliniko, email, nutshell


def _contact_limit(args: argparse.Namespace, project: Project) -> int | str | None:
    """The plan's contact limit to record (None: no limit), or an error text."""
    if args.contact_limit is not None:
        if args.contact_limit < 0:
            return "--contact-limit must be 0 (no limit) or more."
        return args.contact_limit or None
    current = project.settings.options.get(CONTACT_LIMIT_OPTION)
    if args.from_env or not sys.stdin.isatty():
        return int(current) if isinstance(current, int) else None
    answer = _ask(
        "Does your Nutshell plan limit how many contacts it holds? Enter the limit, or leave empty for none",
        secret=False,
        default=str(current) if current else None,
    )
    if not answer:
        return None
    if not answer.isdigit():
        return f"{answer!r} is not a number of contacts."
    return int(answer) or None


async def _test(cliniko_key: str, email: str, nutshell_key: str, project: Project, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    cliniko_url = args.cliniko_url or project.settings.cliniko.base_url
    nutshell_url = args.nutshell_url or project.settings.nutshell.base_url
    return await asyncio.gather(
        check_cliniko(cliniko_key, cliniko_url),
        check_nutshell(email, nutshell_key, nutshell_url),
        return_exceptions=True,
    )


def _report(name: str, result: ClinikoAccess | NutshellAccess | BaseException) -> ConnectError | None:
    """Print what one service's test found; return the problem that stops the connection, if any."""
    if isinstance(result, ConnectError):
        print(f"{name}: {result.message}\n  what to do: {result.action}", file=sys.stderr)
        return result
    if isinstance(result, BaseException):
        raise result
    for line in result.describe():
        print(line)
    if result.problem is not None:
        print(f"{name}: {result.problem.message}\n  what to do: {result.problem.action}", file=sys.stderr)
    return result.problem


def connect_command(args: argparse.Namespace, project: Project) -> int:
    keys = _keys(args, project)
    if isinstance(keys, str):
        print(keys, file=sys.stderr)
        return 2
    limit = _contact_limit(args, project)
    if isinstance(limit, str):
        print(limit, file=sys.stderr)
        return 2
    cliniko_key, email, nutshell_key = keys
    print("Testing both connections...", file=sys.stderr)
    cliniko, nutshell = asyncio.run(_test(cliniko_key, email, nutshell_key, project, args))
    problems = [p for p in (_report("Cliniko", cliniko), _report("Nutshell", nutshell)) if p is not None]
    if problems:
        print("Not connected: nothing was stored.", file=sys.stderr)
        return 1 if all(p.kind in _RETRYABLE for p in problems) else 2
    assert isinstance(cliniko, ClinikoAccess) and isinstance(nutshell, NutshellAccess)
    try:
        where = store_keys(project, cliniko_key=cliniko_key, nutshell_username=email, nutshell_key=nutshell_key)
    except ConnectError as exc:
        if not args.from_env:
            print(f"{exc.message}\n  what to do: {exc.action}", file=sys.stderr)
            return 2
        where = f"Keys not saved ({exc.message}): they are read from the environment each time, as now."
    if limit is None:
        project.settings.options.pop(CONTACT_LIMIT_OPTION, None)
    else:
        project.settings.options[CONTACT_LIMIT_OPTION] = limit
    record_connection(project, cliniko, nutshell)  # saves project.toml (the options too)
    print(where)
    if limit:
        print(f"Contact limit of your Nutshell plan: {limit} (the pre-flight checks the run stays under it).")
    print(f"Connected. Next: cliniko2nutshell extract --project {project.path.resolve()}")
    return 0
