"""`cliniko2nutshell bench`: a whole migration of a synthetic clinic, headless, against both sandboxes over real
HTTP, each phase timed against its floor.

The sandboxes run in a child process (`cliniko2nutshell sandbox`) with the latency and rate limits asked for; each
phase is the real command run as a child process (`extract`, `plan`, `run`, `run` again, `reconcile`, `rollback`),
so its peak RSS is its own. Requests are counted on the servers' side of the wire (the sandboxes' tally), and
compared with the fewest the phase could make (`minimum_requests`), from which the floor follows (engine/
estimate.py): wall/floor says how close to the services' limits the tool runs. Prints a table per phase, then
requests per write per Nutshell record type; with `--json` the last line is one JSON object holding it all.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cliniko2nutshell.cliniko.extract import ExtractOptions
from cliniko2nutshell.engine.estimate import estimate, floor_seconds, minimum_requests, versus_actual
from cliniko2nutshell.mapping.names import is_valid_email, normalize_email
from cliniko2nutshell.nutshell.many import PAGE  # what our scans and look-ups ask for per page

FALLBACK_OWNER = "1-users"  # the sandbox numbers the API user first
# A snapshot of Nutshell (connections.read_snapshot: `plan`, and the blocker check `sample` and `run` begin with):
# users, activity types, the two custom-field lists, how many people and companies; then the existing people.
SNAPSHOT_READS = 6
EXTRACT_CONCURRENCY = ExtractOptions.concurrency + ExtractOptions.attachment_concurrency


@dataclass
class BenchOptions:
    patients: int
    seed: int = 1
    latency_ms: float = 0.0
    cliniko_rate: int | None = 200  # requests per rolling minute; None: no limit
    nutshell_rate: int | None = None  # Nutshell publishes none: by default the sandbox imposes none either
    workers: int = 8
    keep: Path | None = None  # leave the project there instead of in a deleted temporary folder
    hostile: bool = False  # the clinic with its hostile records planted (sandbox/clinic_hostile.py)


@dataclass
class Phase:
    name: str
    command: str
    records: int = 0
    requests: int = 0
    minimum_requests: int = 0
    wall_seconds: float = 0.0
    floor_seconds: float = 0.0
    throttled: int = 0
    peak_rss_mb: float = 0.0
    exit_code: int = 0
    estimate_seconds: float | None = None
    by_label: dict[str, int] = field(default_factory=dict)

    @property
    def requests_per_record(self) -> float | None:
        return self.requests / self.records if self.records else None

    @property
    def wall_floor_ratio(self) -> float | None:
        return self.wall_seconds / self.floor_seconds if self.floor_seconds > 0 else None

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 3) -> float | None:
            return None if v is None else round(v, n)

        return {
            "command": self.command,
            "records": self.records,
            "requests": self.requests,
            "minimum_requests": self.minimum_requests,
            "requests_per_record": r(self.requests_per_record),
            "wall_seconds": r(self.wall_seconds, 2),
            "floor_seconds": r(self.floor_seconds, 2),
            "wall_floor_ratio": r(self.wall_floor_ratio),
            "estimate_seconds": r(self.estimate_seconds, 1),
            "throttled": self.throttled,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "exit_code": self.exit_code,
            "by_label": dict(sorted(self.by_label.items())),
        }


class BenchError(RuntimeError):
    pass


# -- the sandboxes, in a child process -------------------------------------------------------------------------


class _Sandboxes:
    def __init__(self, options: BenchOptions, workdir: Path) -> None:
        log = (workdir / "sandbox.log").open("w")
        args = ["sandbox", "--patients", str(options.patients), "--seed", str(options.seed), "--json"]
        args += ["--rate-limit", str(options.cliniko_rate or 0), *(["--hostile"] if options.hostile else [])]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cliniko2nutshell", *args], stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise BenchError(f"the sandbox did not start; see {workdir / 'sandbox.log'}")
        info = json.loads(line)
        self.cliniko_url = info["cliniko"]["base_url"]
        self.cliniko_key = info["cliniko"]["api_key"]
        self.nutshell_url = info["nutshell"]["base_url"]
        self.nutshell_user = info["nutshell"]["username"]
        self.nutshell_key = info["nutshell"]["api_key"]
        self.http = httpx.Client(timeout=60)
        seconds = options.latency_ms / 1000
        self._post(self.cliniko_root, "knobs", {"latency": seconds})
        self._post(self.nutshell_root, "knobs", {"latency": seconds, "rate_limit": options.nutshell_rate or None})

    @property
    def cliniko_root(self) -> str:
        return self.cliniko_url.rsplit("/v1", 1)[0]

    @property
    def nutshell_root(self) -> str:
        return self.nutshell_url.rsplit("/rest", 1)[0]

    def _post(self, root: str, what: str, body: Any = None) -> Any:
        answer = self.http.post(f"{root}/_sandbox/{what}", json=body)
        answer.raise_for_status()
        return answer.json()

    def reset_tallies(self) -> None:
        self._post(self.cliniko_root, "requests")
        self._post(self.nutshell_root, "requests")

    def tallies(self) -> tuple[dict[str, Any], dict[str, Any]]:
        get = self.http.get
        return (
            get(f"{self.cliniko_root}/_sandbox/requests").json(),
            get(f"{self.nutshell_root}/_sandbox/requests").json(),
        )

    def nutshell_count(self, kind: str) -> int:
        """Live records of a type in the Nutshell sandbox (`meta.total` of a one-record page). Asked between
        phases: the tally is reset before each phase, so this request counts in none."""
        answer = self.http.get(
            f"{self.nutshell_url}/{kind}", params={"page[limit]": 1}, auth=(self.nutshell_user, self.nutshell_key)
        )
        answer.raise_for_status()
        return int(answer.json()["meta"]["total"])

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CLINIKO_API_KEY": self.cliniko_key,
            "NUTSHELL_USERNAME": self.nutshell_user,
            "NUTSHELL_API_KEY": self.nutshell_key,
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "http"):
            self.http.close()


# -- one command, as a child process ---------------------------------------------------------------------------


def _run_command(args: list[str], env: dict[str, str], workdir: Path, name: str) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, stdout) of `cliniko2nutshell <args>`."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cliniko2nutshell", *args], stdout=out, stderr=err, env=env)
        # The child's own high-water mark, read while it runs. Not wait4's ru_maxrss: Linux starts a child's count
        # at the RSS of the process it was forked from, and this one holds the generated clinic.
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _high_water_kb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
    if not peak:  # no /proc (macOS): the largest child so far, an upper bound
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // (1 if sys.platform == "linux" else 1024)
    return proc.returncode, wall, peak / 1024, out_path.read_text()


def _high_water_kb(pid: int) -> int:
    """A live process's peak resident set (VmHWM), in kB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- what each phase could have done with the fewest requests ------------------------------------------------


def _store(project: Path) -> Any:
    import sqlite3

    conn = sqlite3.connect(f"file:{project / 'migration.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _extraction_minimum(project: Path) -> tuple[int, int]:
    """(fewest requests, records): GET /settings, one per page of every list query, one per attachment file."""
    conn = _store(project)
    try:
        pages = sum(max(1, math.ceil((r[0] or 0) / 100)) for r in conn.execute("SELECT total FROM extract_passes"))
        files = conn.execute("SELECT COUNT(*) FROM attachment_files").fetchone()[0]
        records = conn.execute("SELECT COUNT(*) FROM cliniko_records").fetchone()[0]
    finally:
        conn.close()
    return 1 + pages + files, records


def _emails(project: Path, unmapped_only: bool) -> int:
    """Distinct valid patient e-mails (of patients not yet in Nutshell)."""
    conn = _store(project)
    try:
        sql = "SELECT json_extract(raw, '$.email') FROM cliniko_records WHERE object = 'patients'"
        if unmapped_only:
            sql += " AND id NOT IN (SELECT source_id FROM id_map WHERE object = 'person')"
        return len({normalize_email(e) for (e,) in conn.execute(sql) if is_valid_email(e)})
    finally:
        conn.close()


def _people_check(emails: int, people: int) -> int:
    """The existing-people check's fewest requests: one look-up per e-mail or one read per page of people."""
    return 0 if not emails else min(emails, max(1, math.ceil(people / PAGE)))


def _last_run(project: Path) -> tuple[int, dict[tuple[str, str], int], dict[str, Any]]:
    """(run id, done writes by (entity, action), summary) of the project's last run."""
    conn = _store(project)
    try:
        row = conn.execute("SELECT id, summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return 0, {}, {}
        writes = {
            (r["entity"], r["action"]): r["n"]
            for r in conn.execute(
                "SELECT entity, action, COUNT(*) AS n FROM journal WHERE run_id = ? AND state = 'done' "
                "AND json_extract(pre_image, '$.with_activity') IS NULL GROUP BY entity, action",
                (row["id"],),
            )
        }
        return row["id"], writes, json.loads(row["summary"] or "{}")
    finally:
        conn.close()


def _files_hosts(project: Path) -> int:
    conn = _store(project)
    try:
        return conn.execute(
            "SELECT COUNT(DISTINCT parent_id) FROM id_map WHERE entity = 'files' AND parent_id IS NOT NULL"
        ).fetchone()[0]
    finally:
        conn.close()


def _mapped(project: Path) -> int:
    conn = _store(project)
    try:
        return conn.execute("SELECT COUNT(*) FROM id_map").fetchone()[0]
    finally:
        conn.close()


# Which Nutshell record type a request served (by the tally's labels), for requests per write per type. Lists
# (a GET on a collection) are reads of their own: the snapshot, the existing-people check, counts.
def _entity_of(label: str) -> str:
    method, _, path = label.partition(" ")
    if method == "rpc":
        if path in ("getActivity", "editActivity"):
            return "files"  # the engine reads activities over REST; over JSON-RPC only to put files on them
        for word, entity in (("Contact", "contacts"), ("Account", "accounts"), ("Activit", "activities")):
            if word in path:
                return entity
        return "notes" if "Note" in path else "reads"
    if path.startswith("/file/"):
        return "files"
    if method == "GET" and path == "/rest/contacts":
        return "people look-up"
    for entity in ("contacts", "accounts", "activities", "notes"):
        if path.startswith(f"/rest/{entity}/{{id}}") or (path == f"/rest/{entity}" and method != "GET"):
            return entity
    return "reads"


# -- the bench -------------------------------------------------------------------------------------------------


def run_bench(options: BenchOptions, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every phase and return the figures (printing a line per phase as it ends)."""
    if not 10 <= options.patients <= 100_000:
        raise BenchError("--patients must be between 10 and 100000")
    from cliniko2nutshell.sandbox.run import cached_clinic

    started = time.perf_counter()
    cached_clinic(
        options.patients, options.seed, hostile=options.hostile
    )  # generated once per size and seed, then reused
    say(f"clinic of {options.patients} patients (seed {options.seed}) ready in {time.perf_counter() - started:.0f} s")
    tmp = tempfile.mkdtemp(prefix="cliniko2nutshell-bench-")
    workdir = Path(tmp)
    project = options.keep or workdir / "project"
    sandboxes = _Sandboxes(options, workdir)
    phases: list[Phase] = []
    try:
        env = sandboxes.env()
        nutshell = ["--nutshell-url", sandboxes.nutshell_url]
        p = str(project)
        setup: list[tuple[str, list[str]]] = [
            ("init", ["init", "bench", "--path", p]),
        ]
        for name, args in setup:
            code, *_ = _run_command(args, env, workdir, name)
            if code:
                raise BenchError(f"`{' '.join(args)}` failed ({code}); see {workdir / (name + '.err')}")

        def phase(name: str, args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[Phase, str]:
            sandboxes.reset_tallies()
            code, wall, rss, out = _run_command(args, env, workdir, name.replace(" ", "-"))
            cliniko, nut = sandboxes.tallies()
            tally = cliniko if name == "extraction" else nut
            labels = {k: v for k, v in tally["by_label"].items() if not k.startswith("GET /blobs/")}
            result = Phase(name, " ".join(["cliniko2nutshell", *args[:1]]), exit_code=code, wall_seconds=wall)
            result.peak_rss_mb = rss
            result.requests = sum(labels.values())
            result.throttled = tally["throttled"]
            result.by_label = labels
            if code not in ok:
                raise BenchError(f"{name}: `{' '.join(args)}` exited {code}; see {workdir / (name + '.err')}")
            phases.append(result)
            return result, out

        rate = options.cliniko_rate
        cliniko_rate_arg = ["--rate-limit", str(rate if rate else 1_000_000)]
        ext, _ = phase("extraction", ["extract", "--project", p, "--cliniko-url", sandboxes.cliniko_url,
                                      *cliniko_rate_arg, "--json"])  # fmt: skip
        ext.minimum_requests, ext.records = _extraction_minimum(project)
        ext.floor_seconds = floor_seconds(
            ext.minimum_requests, rate_per_min=rate, latency_ms=options.latency_ms, concurrency=EXTRACT_CONCURRENCY
        )
        say(_line(ext))

        for name, args in (
            ("map", ["map", "--project", p, *nutshell, "--accept-suggestions", "--fallback-owner", FALLBACK_OWNER,
                     "--confirm"]),
            ("fields", ["fields", "--project", p, "--create", "--yes"]),
        ):  # fmt: skip
            code, *_ = _run_command(args, env, workdir, name)
            if code not in (0, 3):
                raise BenchError(f"`{' '.join(args)}` failed ({code}); see {workdir / (name + '.err')}")

        people = sandboxes.nutshell_count("contacts")
        emails = _emails(project, unmapped_only=False)
        pre, out = phase("pre-flight", ["plan", "--project", p, "--json"], ok=(0, 3))
        pre.records = options.patients
        pre.minimum_requests = SNAPSHOT_READS + _people_check(emails, people)
        pre.floor_seconds = _nutshell_floor(pre.minimum_requests, options)
        plan_summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        say(_line(pre))

        counts = _counts(plan_summary)
        forecast = estimate(
            counts,
            nutshell_rate_per_min=options.nutshell_rate,
            latency_ms=options.latency_ms,
            workers=options.workers,
        )

        _emails_before = _emails(project, unmapped_only=False)
        emails = _emails(project, unmapped_only=True)
        people = sandboxes.nutshell_count("contacts")
        run, _ = phase("migration", ["run", "--project", p, "--yes", "--workers", str(options.workers), "--json"],
                       ok=(0, 3))  # fmt: skip
        _, writes, run_summary = _last_run(project)
        run.records = sum(writes.values())
        # `run` first checks the pre-flight's blockers against Nutshell (a snapshot), then runs.
        blockers = SNAPSHOT_READS + _people_check(_emails_before, people)
        run.minimum_requests = (
            blockers + _writes_minimum(writes) + _people_check(emails, people) + _connect_reads(writes)
        )
        run.floor_seconds = _nutshell_floor(run.minimum_requests, options)
        run.estimate_seconds = forecast.seconds
        say(_line(run))

        again, _ = phase("second run", ["run", "--project", p, "--yes", "--workers", str(options.workers), "--json"],
                         ok=(0, 3))  # fmt: skip
        _, writes2, summary2 = _last_run(project)
        again.records = sum(int(c.get("planned", 0)) for c in (summary2.get("counts") or {}).values())
        again.minimum_requests = (
            SNAPSHOT_READS + _people_check(_emails_before, sandboxes.nutshell_count("contacts"))
            + _writes_minimum(writes2) + _connect_reads(writes2)
        )  # fmt: skip
        again.floor_seconds = _nutshell_floor(again.minimum_requests, options)
        say(_line(again))

        counts_before = {k: sandboxes.nutshell_count(k) for k in ("contacts", "accounts", "activities", "notes")}
        rec, _ = phase("reconcile", ["reconcile", "--project", p, "--json"], ok=(0, 3))
        rec.records = _mapped(project)
        rec.minimum_requests = 2 + _files_hosts(project) + sum(_pages(n) for n in counts_before.values())
        rec.floor_seconds = _nutshell_floor(rec.minimum_requests, options)
        say(_line(rec))

        back, _ = phase("rollback", ["rollback", "--project", p, "--yes", "--json"], ok=(0, 3))
        _, undo, _ = _last_run(project)
        back.records = sum(undo.values())
        counts_after = {k: sandboxes.nutshell_count(k) for k in counts_before}
        back.minimum_requests = _rollback_minimum(undo, counts_before, counts_after)
        back.floor_seconds = _nutshell_floor(back.minimum_requests, options)
        say(_line(back))

        per_kind = _per_kind(run, writes)
        result = {
            "patients": options.patients,
            "seed": options.seed,
            "latency_ms": options.latency_ms,
            "cliniko_rate": options.cliniko_rate,
            "nutshell_rate": options.nutshell_rate,
            "workers": options.workers,
            "load_average": list(os.getloadavg()),
            "phases": {ph.name: ph.as_dict() for ph in phases},
            "requests_per_write": per_kind,
            "estimate": forecast.as_dict(),
            # Where the migration's time went, beside where the estimate put it (the run's own phase clocks).
            "migration_phases": {
                name: {"estimate_seconds": None if est is None else round(est, 1), "wall_seconds": round(actual, 1)}
                for name, est, actual in versus_actual(forecast.as_dict(), run_summary.get("phase_seconds") or {})
            },
            "project": str(project) if options.keep else None,
        }
        return result
    finally:
        sandboxes.stop()
        if options.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


def _nutshell_floor(requests: int, options: BenchOptions) -> float:
    return floor_seconds(
        requests, rate_per_min=options.nutshell_rate, latency_ms=options.latency_ms, concurrency=options.workers
    )


def _writes_minimum(writes: dict[tuple[str, str], int]) -> int:
    return sum(n * minimum_requests(entity, action) for (entity, action), n in writes.items())


def _connect_reads(writes: dict[tuple[str, str], int]) -> int:
    """Reads any run makes: the activity types (Engine.connect), and JSON-RPC's endpoint discovery when a write
    needs JSON-RPC (files)."""
    return 1 + (1 if any(entity == "files" for entity, _ in writes) else 0)


def _rollback_minimum(undo: dict[tuple[str, str], int], before: dict[str, int], after: dict[str, int]) -> int:
    """One request per delete or restore, plus reading each record type page by page before (what was edited
    since we wrote it?) and after (the verification), and the activity types at connect."""
    writes = sum(n for (_, action), n in undo.items() if action in ("delete", "restore", "undelete"))
    reads = sum(_pages(before[k]) + _pages(after[k]) for k in before if before[k] != after[k])
    return 1 + writes + reads


def _counts(plan_summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    counts = plan_summary.get("counts") or {}
    return {k: v for k, v in counts.items() if isinstance(v, dict)}


def _per_kind(run: Phase, writes: dict[tuple[str, str], int]) -> dict[str, dict[str, Any]]:
    by_entity: dict[str, int] = {}
    for label, n in run.by_label.items():
        entity = _entity_of(label)
        by_entity[entity] = by_entity.get(entity, 0) + n
    out: dict[str, dict[str, Any]] = {}
    for entity in ("accounts", "contacts", "activities", "notes", "files"):
        done = sum(n for (e, _), n in writes.items() if e == entity)
        minimum = sum(n * minimum_requests(e, a) for (e, a), n in writes.items() if e == entity)
        if done or by_entity.get(entity):
            requests = by_entity.get(entity, 0)
            out[entity] = {
                "writes": done,
                "requests": requests,
                "minimum_requests": minimum,
                "requests_per_write": round(requests / done, 3) if done else None,
            }
    for extra in ("people look-up", "reads"):
        if by_entity.get(extra):
            out[extra] = {"requests": by_entity[extra]}
    return out


def _line(ph: Phase) -> str:
    ratio = f"{ph.wall_floor_ratio:5.2f}" if ph.wall_floor_ratio is not None else "    -"
    per = f"{ph.requests_per_record:5.2f}" if ph.requests_per_record is not None else "    -"
    return (
        f"{ph.name:<11} {ph.records:>8} records {ph.requests:>8} requests (min {ph.minimum_requests:>8}, "
        f"{per}/record)  wall {ph.wall_seconds:8.1f} s  floor {ph.floor_seconds:8.1f} s  wall/floor {ratio}  "
        f"429s {ph.throttled:>4}  peak RSS {ph.peak_rss_mb:6.0f} MB"
    )


def format_result(result: dict[str, Any]) -> str:
    """The table of a bench result (what `bench` prints before its JSON line)."""
    lines = [
        f"{result['patients']} patients, latency {result['latency_ms']:g} ms, Cliniko "
        f"{result['cliniko_rate'] or 'no limit'}/min, Nutshell {result['nutshell_rate'] or 'no limit'}/min, "
        f"{result['workers']} workers; load average {' '.join(f'{x:.2f}' for x in result['load_average'])}",
        f"{'phase':<11} {'records':>8} {'requests':>8} {'minimum':>8} {'req/rec':>7} {'wall s':>8} {'floor s':>8} "
        f"{'wall/floor':>10} {'429s':>5} {'RSS MB':>7}",
    ]
    for name, ph in result["phases"].items():
        ratio = ph["wall_floor_ratio"]
        per = ph["requests_per_record"]
        lines.append(
            f"{name:<11} {ph['records']:>8} {ph['requests']:>8} {ph['minimum_requests']:>8} "
            f"{(f'{per:.2f}' if per is not None else '-'):>7} {ph['wall_seconds']:>8.1f} {ph['floor_seconds']:>8.1f} "
            f"{(f'{ratio:.3f}' if ratio is not None else '-'):>10} {ph['throttled']:>5} {ph['peak_rss_mb']:>7.0f}"
        )
    lines.append("requests per write, migration:")
    for kind, k in result["requests_per_write"].items():
        if "writes" in k:
            lines.append(
                f"  {kind:<15} {k['writes']:>8} writes {k['requests']:>8} requests (minimum {k['minimum_requests']})"
                f"  {k['requests_per_write'] if k['requests_per_write'] is not None else '-'} per write"
            )
        else:
            lines.append(f"  {kind:<15} {k['requests']:>8} requests")
    est = result["estimate"]
    actual = result["phases"].get("migration", {}).get("wall_seconds")
    if actual:
        lines.append(
            f"estimate before the run: {est['seconds']:.0f} s ({est['summary']}); actual {actual:.0f} s "
            f"(estimate/actual {est['seconds'] / actual:.2f})"
        )
    for name, ph in (result.get("migration_phases") or {}).items():
        guess = ph["estimate_seconds"]
        lines.append(f"  {name:<15} estimate {'-' if guess is None else f'{guess:.1f}':>7} s  "
                     f"actual {ph['wall_seconds']:>7.1f} s")  # fmt: skip
    return "\n".join(lines)
