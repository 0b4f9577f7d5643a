"""`cliniko2nutshell log`: the audit log (every journal entry) filtered, as a table, JSON lines or a CSV file.

It opens the project read-only, so it can be read while a run is going."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cliniko2nutshell.engine.audit import (
    AuditEntry,
    AuditFilter,
    count_audit_entries,
    iter_audit_entries,
    write_audit_csv,
)
from cliniko2nutshell.project import Project

ERROR_WIDTH = 60  # characters of an error shown in the table (the CSV and JSON carry it whole)


def add_parser(sub: Any, project_args: Any) -> argparse.ArgumentParser:
    sp = sub.add_parser("log", help="the audit log: every write to Nutshell, filtered")
    project_args(sp)
    sp.add_argument("--run", type=int, metavar="N", help="only run N (see `status`)")
    sp.add_argument("--object", metavar="O", help="only this record kind: person, company, appointment, ...")
    sp.add_argument("--action", metavar="A", help="only this action: create, link, update, delete, skip, ...")
    sp.add_argument("--status", metavar="S", help="only this status: done, failed, unknown, skipped, ...")
    sp.add_argument("--search", metavar="TEXT", help="a Cliniko id, a Nutshell id, or words of an error")
    sp.add_argument("--limit", type=int, metavar="N", help="at most N entries (the first N, in journal order)")
    out = sp.add_mutually_exclusive_group()
    out.add_argument("--csv", type=Path, metavar="FILE", help="write the entries to a CSV file (mode 0600)")
    out.add_argument("--json", action="store_true", help="one JSON object per entry, one per line")
    return sp


def log_command(args: argparse.Namespace, project: Project) -> int:
    if args.limit is not None and args.limit < 0:
        print("--limit must not be negative", file=sys.stderr)
        return 2
    flt = AuditFilter(run=args.run, object=args.object, action=args.action, status=args.status, text=args.search)
    store = project.store
    if args.csv is not None:
        try:
            written = write_audit_csv(store, flt, args.csv.expanduser().resolve())
        except OSError as exc:
            print(f"Could not write {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"{written} entries written to {args.csv.expanduser().resolve()}")
        return 0
    entries = _limited(iter_audit_entries(store, flt), args.limit)
    if args.json:
        for entry in entries:
            print(json.dumps(asdict(entry), ensure_ascii=False))
        return 0
    total = count_audit_entries(store, flt)
    if not total:
        print("No journal entries" + (" match these filters." if flt != AuditFilter() else " yet: nothing written."))
        return 0
    print(_row("time", "run", "record", "action", "Cliniko id", "Nutshell id", "status", "error"))
    shown = 0
    for entry in entries:
        print(_entry_row(entry))
        shown += 1
    print(f"{shown} of {total} entries" + ("" if shown == total else "; --limit shows fewer, --csv writes them all"))
    return 0


def _limited(entries: Any, limit: int | None) -> Any:
    for i, entry in enumerate(entries):
        if limit is not None and i >= limit:
            return
        yield entry


def _row(at: str, run: str, obj: str, action: str, cliniko: str, nutshell: str, status: str, error: str) -> str:
    return f"{at:<20}  {run:>4}  {obj:<24}  {action:<8}  {cliniko:<20}  {nutshell:<18}  {status:<8}  {error}".rstrip()


def _entry_row(e: AuditEntry) -> str:
    error = (e.error or "").replace("\n", " ")
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 3] + "..."
    return _row(e.at, f"{e.run_id}", e.object, e.action, e.cliniko_id, e.nutshell_id or "-", e.status, error)
