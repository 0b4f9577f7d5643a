"""Is a project folder sound? Each finding names the file and says what to do; nothing here writes anything.

    report = verify_project(project_or_path)        # everything: `cliniko2nutshell check`
    report = verify_project(project, deep=False)    # before the first write of sample/run/delta/rollback
    if not report.ok: print(report.describe())

Checked: project.toml and mapping.toml (readable, valid, not from a newer version), migration.db (a SQLite file,
not truncated, SQLite's own integrity check, the schema version, the tables), the journal's consistency (every id
map row backed by a completed journal row, runs and states known, nothing created twice), the downloaded files
against their recorded size and sha256 (deep only: it reads every byte), and the private modes.

The store is read through its own query-only connection, so a damaged file is never "repaired" by opening it and
a project held open by another process (the wizard) can be checked while it runs.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cliniko2nutshell.project.folder import MAPPING_FILE, SETTINGS_FILE, STORE_FILE, Project
from cliniko2nutshell.project.lock import ProjectLock
from cliniko2nutshell.project.private import file_sha256, private_umask
from cliniko2nutshell.project.settings import ProjectSettings, SettingsError
from cliniko2nutshell.project.store import MIGRATIONS, SCHEMA_VERSION, SQLITE_HEADER

# Tables the engine and the extraction cannot work without (later migrations add to this, never take away).
REQUIRED_TABLES = (
    "cliniko_records",
    "extract_state",
    "attachment_files",
    "runs",
    "journal",
    "id_map",
    "quarantine",
    "conflicts",
    "schema_changes",
)
RUN_KINDS = ("sample", "full", "delta", "retry", "rollback")
RUN_STATUSES = ("running", "paused", "finished", "interrupted")
JOURNAL_ACTIONS = ("create", "link", "update", "replace", "upload", "delete", "restore", "undelete")
JOURNAL_STATES = ("intent", "done", "failed", "unknown", "void")
_RESTORE_STORE = (
    "Do not delete it: it records what was written to Nutshell. Restore migration.db (and its -wal file) from a "
    "backup of the project folder, or keep the folder as it is and ask for support."
)
_MAX_LISTED = 5  # per kind of problem, so a badly damaged store gives a readable report


class Severity(StrEnum):
    ERROR = "error"  # the project cannot be trusted: commands that write refuse to start
    WARNING = "warning"  # something to put right; runs may go on (the engine re-checks what it depends on)
    NOTE = "note"  # worth knowing (an interrupted run, outcomes to settle); nothing is wrong


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    file: str  # relative to the project folder ("migration.db", "files/attachments/123")
    problem: str
    action: str  # what to do about it

    def line(self) -> str:
        return f"{self.severity.value.upper()}: {self.file}: {self.problem} {self.action}".rstrip()


@dataclass(slots=True)
class IntegrityReport:
    project: Path
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # what was looked at: tables, journal rows, files, ...
    deep: bool = True

    @property
    def ok(self) -> bool:
        """No errors (warnings and notes may remain)."""
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def add(self, severity: Severity, file: str, problem: str, action: str = "") -> None:
        self.findings.append(Finding(severity, file, problem, action))

    def describe(self) -> str:
        """The report as a person reads it: a verdict, then one line per finding, errors first."""
        order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}
        if self.errors:
            head = f"{self.project}: {len(self.errors)} problem(s) found; commands that write will refuse to start."
        elif self.warnings:
            head = f"{self.project}: sound, with {len(self.warnings)} warning(s)."
        else:
            head = f"{self.project}: sound."
        checked = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        lines = [head] + ([f"  checked: {checked}"] if checked else [])
        lines += [f"  {f.line()}" for f in sorted(self.findings, key=lambda f: order[f.severity])]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "ok": self.ok,
            "deep": self.deep,
            "checked": dict(self.checked),
            "findings": [
                {"severity": f.severity.value, "file": f.file, "problem": f.problem, "action": f.action}
                for f in self.findings
            ],
        }


def verify_project(project: Project | Path, *, deep: bool = True) -> IntegrityReport:
    """Check a project folder (open or not). `deep` adds SQLite's full integrity check and the sha256 of every
    downloaded file; without it (the check before a run's first write) the cost is a quick check and a few
    queries, whatever the project's size."""
    path = project.path if isinstance(project, Project) else Path(project)
    report = IntegrityReport(path, deep=deep)
    if not (path / SETTINGS_FILE).exists():
        report.add(
            Severity.ERROR,
            SETTINGS_FILE,
            "is missing: this is not a project folder.",
            "Give the folder that holds project.toml, or create a project with `init`.",
        )
        return report
    _check_settings(path, report)
    runs = _check_store(path, report, deep=deep)
    _check_mapping(path, report, has_runs=runs > 0)
    _check_modes(path, report)
    _check_lock(path, report, project if isinstance(project, Project) else None)
    return report


def verify_store(project: Project | Path, *, deep: bool = False) -> IntegrityReport:
    """migration.db alone: SQLite's check, the schema, the journal's consistency (and with `deep` the files).
    The engine calls it before the first write of a run; it costs a quick check and a few indexed queries."""
    path = project.path if isinstance(project, Project) else Path(project)
    report = IntegrityReport(path, deep=deep)
    _check_store(path, report, deep=deep)
    return report


# -- project.toml and mapping.toml ------------------------------------------------------------------------------


def _check_settings(path: Path, report: IntegrityReport) -> None:
    try:
        ProjectSettings.load(path / SETTINGS_FILE)
    except SettingsError as exc:
        problem, _, action = str(exc).removeprefix(f"{path / SETTINGS_FILE} ").rpartition("\n")
        report.add(Severity.ERROR, SETTINGS_FILE, problem or str(exc), action)
    if (path / f".{SETTINGS_FILE}.tmp").exists():
        report.add(
            Severity.NOTE,
            f".{SETTINGS_FILE}.tmp",
            "a save of project.toml was cut short.",
            "project.toml itself is whole (saves replace it at once); the leftover can be deleted.",
        )


def _check_mapping(path: Path, report: IntegrityReport, *, has_runs: bool) -> None:
    from cliniko2nutshell.mapping.mapfile import HISTORY_DIR, MapError, load_map, parse_map

    target = path / MAPPING_FILE
    if not target.exists():
        if has_runs:
            report.add(
                Severity.ERROR,
                MAPPING_FILE,
                "is missing, but runs have written to Nutshell with it.",
                f"Copy the last version back from {HISTORY_DIR}/ (or restore it from a backup).",
            )
        else:
            report.add(Severity.NOTE, MAPPING_FILE, "does not exist yet.", "Build and confirm the map with `map`.")
        return
    try:
        load_map(target)
    except MapError as exc:
        text = str(exc).removeprefix(f"{target} ")
        problem, _, action = text.rpartition("\n") if "\n" in text else (text, "", "")
        report.add(Severity.ERROR, MAPPING_FILE, problem, action)
    history = path / HISTORY_DIR
    if history.is_dir():
        for old in sorted(history.glob("mapping.v*.toml")):
            try:
                parse_map(old.read_text(encoding="utf-8"), old)
            except (MapError, UnicodeDecodeError):
                report.add(
                    Severity.WARNING,
                    f"{HISTORY_DIR}/{old.name}",
                    "is not a valid map.",
                    "Runs made with this version cannot be shown with their map; restore it from a backup.",
                )
        report.checked["map versions"] = len(list(history.glob("mapping.v*.toml"))) + 1


# -- migration.db ----------------------------------------------------------------------------------------------


def _check_store(path: Path, report: IntegrityReport, *, deep: bool) -> int:
    """Check the store; returns the number of runs it holds (0 when unreadable)."""
    db = path / STORE_FILE
    if not db.exists():
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "is missing.",
            "Restore it from a backup of the project folder: it records what was written to Nutshell, and "
            "starting over with an empty one would write every record again.",
        )
        return 0
    size = db.stat().st_size
    with db.open("rb") as fh:
        header = fh.read(100)
    if size and header[: len(SQLITE_HEADER)] != SQLITE_HEADER:
        report.add(Severity.ERROR, STORE_FILE, "is not a SQLite database (damaged or replaced).", _RESTORE_STORE)
        return 0
    if len(header) == 100:
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        wal = Path(f"{db}-wal")
        # The header's page count is only trusted without a WAL holding newer pages (SQLite's own rule).
        if pages and page_size and size < pages * page_size and not (wal.exists() and wal.stat().st_size):
            report.add(
                Severity.ERROR, STORE_FILE, f"is cut short ({size} of {pages * page_size} bytes).", _RESTORE_STORE
            )
            return 0
    # Reading a WAL store may create its -shm (and -wal) beside it: private from the first byte.
    with private_umask():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            report.add(
                Severity.ERROR,
                STORE_FILE,
                f"cannot be opened ({exc}).",
                "Check the folder's permissions and free disk space; " + _RESTORE_STORE,
            )
            return 0
        conn.row_factory = sqlite3.Row
        try:
            return _check_store_contents(conn, report, deep=deep)
        except sqlite3.DatabaseError as exc:
            report.add(Severity.ERROR, STORE_FILE, f"is damaged ({exc}).", _RESTORE_STORE)
            return 0
        finally:
            conn.close()


def _check_store_contents(conn: sqlite3.Connection, report: IntegrityReport, *, deep: bool) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            f"was written by a newer cliniko2nutshell (schema {version}, this one knows {SCHEMA_VERSION}).",
            "Upgrade cliniko2nutshell to open this project; nothing was changed.",
        )
        return 0
    rows = conn.execute(f"PRAGMA {'integrity_check' if deep else 'quick_check'}").fetchall()
    problems = [r[0] for r in rows if r[0] != "ok"]
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED]) + (
            f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        )
        report.add(Severity.ERROR, STORE_FILE, f"fails SQLite's integrity check: {shown}.", _RESTORE_STORE)
        return 0
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and not tables:
        report.add(Severity.ERROR, STORE_FILE, "is empty: it holds no schema and no records.", _RESTORE_STORE)
        return 0
    needed = _tables_at(version)
    missing = [t for t in REQUIRED_TABLES if t in needed and t not in tables]
    if missing:
        report.add(Severity.ERROR, STORE_FILE, f"lacks the table(s) {', '.join(missing)}.", _RESTORE_STORE)
        return 0
    if version < SCHEMA_VERSION:
        report.add(
            Severity.NOTE,
            STORE_FILE,
            f"has schema {version}, from an earlier cliniko2nutshell (this one writes {SCHEMA_VERSION}).",
            "It is brought up to date, keeping its data, the next time a command opens it.",
        )
    report.checked["tables"] = len(tables)
    if "journal" not in tables or "id_map" not in tables:
        return 0
    runs = _check_journal(conn, report, tables)
    if "attachment_files" in tables:
        _check_files(conn, report, deep=deep)
    return runs


def _tables_at(version: int) -> set[str]:
    """The tables the first `version` migrations create (so an old store is not blamed for a newer table)."""
    text = " ".join(MIGRATIONS[:version]).lower()
    return {t for t in REQUIRED_TABLES if f"create table {t} " in text or f"create table {t}(" in text}


def _listing(rows: list[Any], fmt: str) -> str:
    shown = ", ".join(fmt.format(**dict(r)) for r in rows[:_MAX_LISTED])
    return shown + (f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else "")


def _check_journal(conn: sqlite3.Connection, report: IntegrityReport, tables: set[str]) -> int:
    """The journal, the id map and the runs agree with each other. Returns the number of runs."""
    q = conn.execute
    runs = q("SELECT COUNT(*) FROM runs").fetchone()[0]
    entries = q("SELECT COUNT(*) FROM journal").fetchone()[0]
    mapped = q("SELECT COUNT(*) FROM id_map").fetchone()[0]
    report.checked.update({"runs": runs, "journal rows": entries, "mapped records": mapped})
    fix = "The store was edited or damaged: " + _RESTORE_STORE

    kinds, statuses = ", ".join(f"'{k}'" for k in RUN_KINDS), ", ".join(f"'{s}'" for s in RUN_STATUSES)
    bad = q(f"SELECT id, kind, status FROM runs WHERE kind NOT IN ({kinds}) OR status NOT IN ({statuses})").fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "runs of an unknown kind or status: " + _listing(bad, "run {id} ({kind}, {status})") + ".",
            fix,
        )
    actions, states = ", ".join(f"'{a}'" for a in JOURNAL_ACTIONS), ", ".join(f"'{s}'" for s in JOURNAL_STATES)
    bad = q(
        f"SELECT seq, action, state FROM journal WHERE action NOT IN ({actions}) OR state NOT IN ({states}) LIMIT 50"
    ).fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "journal rows with an unknown action or state: " + _listing(bad, "row {seq} ({action}, {state})") + ".",
            fix,
        )
    bad = q(
        "SELECT j.seq, j.run_id FROM journal j LEFT JOIN runs r ON r.id = j.run_id WHERE r.id IS NULL LIMIT 50"
    ).fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "journal rows of runs that do not exist: " + _listing(bad, "row {seq} (run {run_id})") + ".",
            fix,
        )
    bad = q(
        "SELECT seq, object, source_id FROM journal WHERE state = 'done' AND action IN ('create', 'upload') "
        "AND (nutshell_id IS NULL OR nutshell_id = '') LIMIT 50"
    ).fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "completed creates without the Nutshell id they made: "
            + _listing(bad, "row {seq} ({object} {source_id})")
            + ".",
            fix,
        )
    # Every id map row is the outcome of a completed journal row about the same record and Nutshell id.
    bad = q(
        "SELECT m.object, m.source_id, m.journal_seq FROM id_map m LEFT JOIN journal j ON j.seq = m.journal_seq "
        "WHERE j.seq IS NULL OR j.state != 'done' OR j.object != m.object OR j.source_id != m.source_id "
        "OR j.nutshell_id IS NOT m.nutshell_id LIMIT 50"
    ).fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "id map rows that no completed journal row backs: "
            + _listing(bad, "{object} {source_id} (row {journal_seq})")
            + ".",
            fix,
        )
    # Two source records created as one Nutshell record cannot happen: one of them would be lost in a rollback.
    bad = q(
        "SELECT entity, nutshell_id, COUNT(*) AS n FROM id_map WHERE origin = 'created' "
        "GROUP BY entity, nutshell_id HAVING COUNT(*) > 1 LIMIT 50"
    ).fetchall()
    if bad:
        report.add(
            Severity.ERROR,
            STORE_FILE,
            "Nutshell records claimed by several source records: " + _listing(bad, "{nutshell_id} ({n} times)") + ".",
            fix,
        )

    running = [r[0] for r in q("SELECT id FROM runs WHERE status IN ('running', 'interrupted', 'paused')")]
    if running:
        report.add(
            Severity.NOTE,
            STORE_FILE,
            f"run(s) {', '.join(map(str, running))} did not finish.",
            "`run --resume` carries on the last one.",
        )
    open_rows = q("SELECT COUNT(*) FROM journal WHERE state IN ('intent', 'unknown')").fetchone()[0]
    if open_rows:
        report.add(
            Severity.NOTE,
            STORE_FILE,
            f"{open_rows} write(s) to Nutshell have an unknown outcome.",
            "The next run looks each one up in Nutshell before sending anything again.",
        )
    held = q("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    if held:
        report.add(
            Severity.NOTE,
            STORE_FILE,
            f"{held} record(s) are quarantined with their reasons.",
            "`reconcile` lists them; `run --retry-failed` tries them again.",
        )
    return int(runs)


# -- files/ ------------------------------------------------------------------------------------------------------


def _check_files(conn: sqlite3.Connection, report: IntegrityReport, *, deep: bool) -> None:
    root = report.project.resolve()
    files_dir = root / "files"
    rows = conn.execute("SELECT attachment_id, path, size, sha256 FROM attachment_files ORDER BY path").fetchall()
    report.checked["downloaded files"] = len(rows)
    again = "Run `extract` again: it downloads the file anew."
    for row in rows:
        rel = str(row["path"])
        target = (root / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(files_dir):
            report.add(
                Severity.ERROR,
                STORE_FILE,
                f"attachment {row['attachment_id']} points outside files/ ({rel!r}).",
                "The store was edited: " + _RESTORE_STORE,
            )
            continue
        if not target.is_file():
            report.add(Severity.WARNING, rel, f"(attachment {row['attachment_id']}) is missing.", again)
            continue
        size = target.stat().st_size
        if size != row["size"]:
            report.add(
                Severity.WARNING,
                rel,
                f"(attachment {row['attachment_id']}) has {size} bytes; {row['size']} were downloaded.",
                again,
            )
        elif deep and file_sha256(target) != row["sha256"]:
            report.add(
                Severity.WARNING,
                rel,
                f"(attachment {row['attachment_id']}) does not match its sha256: it changed since download.",
                again,
            )


# -- modes and the lock ------------------------------------------------------------------------------------------


def _check_modes(path: Path, report: IntegrityReport) -> None:
    """Nothing in the folder may be open to group or others (folders 0700, files 0600)."""
    if sys.platform == "win32":  # pragma: no cover - POSIX modes only
        return
    loose = [
        str(p.relative_to(path)) or "."
        for p in (path, *path.rglob("*"))
        if not p.is_symlink() and p.stat().st_mode & 0o077
    ]
    if loose:
        shown = ", ".join(loose[:_MAX_LISTED]) + (
            f" and {len(loose) - _MAX_LISTED} more" if len(loose) > _MAX_LISTED else ""
        )
        report.add(
            Severity.WARNING,
            shown,
            "can be read by other users of this computer (the project holds health data).",
            f"Run `chmod -R go-rwx {path}`.",
        )


def _check_lock(path: Path, report: IntegrityReport, project: Project | None) -> None:
    if project is not None and project.lock is not None and project.lock.held:
        return  # we are the writer
    if not (path / ".lock").exists():
        return
    probe = ProjectLock(path, "check")
    try:
        probe.acquire()
    except Exception as exc:  # ProjectLocked names the holder; an unreadable lock file is reported the same way
        report.add(
            Severity.NOTE,
            ".lock",
            str(exc).replace(f"The project at {path} is", "The project is"),
            "What is shown is what that process had committed when it was checked.",
        )
        return
    probe.release()
