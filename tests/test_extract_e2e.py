"""Extraction end to end, over real HTTP against the Cliniko sandbox serving a 500-patient synthetic clinic.

The sandbox's own SQLite file is the oracle: after an extraction the store must hold every record of every object
(archived, cancelled and deleted included) exactly as the sandbox serves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import shutil
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import pytest

from cliniko2nutshell import cli
from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.cliniko.events import ObjectProgress
from cliniko2nutshell.cliniko.extract import ExtractOptions, extract
from cliniko2nutshell.cliniko.resources import BY_OBJECT, SETTINGS_OBJECT
from cliniko2nutshell.events import Event
from cliniko2nutshell.project import Project, create_project, open_project
from cliniko2nutshell.project.secrets import MemoryKeyring
from cliniko2nutshell.retry import RetryPolicy
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.run import cached_clinic

pytestmark = pytest.mark.e2e

PATIENTS = 500
SEED = 11
FAST = 100_000  # sandbox requests per minute: the limiter must not slow the tests down
BOOKING_SOURCES = ("individual_appointments", "group_appointments", "unavailable_blocks")
UA = {"User-Agent": "cliniko2nutshell tests (tests@example.com)", "Accept": "application/json"}


@pytest.fixture(scope="module")
def clinic500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_clinic(PATIENTS, SEED, cache_dir=tmp_path_factory.mktemp("clinic500"))


@pytest.fixture
def sandbox(clinic500: Path, tmp_path: Path) -> Iterator[ClinikoSandbox]:
    db = tmp_path / "cliniko.db"
    shutil.copyfile(clinic500, db)
    served = start_cliniko_sandbox(db, rate_limit=FAST)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def sandbox_db(sandbox: ClinikoSandbox, tmp_path: Path) -> Path:
    return tmp_path / "cliniko.db"


def run_extract(
    project: Project, sandbox: ClinikoSandbox, sink: Any = None, retry: RetryPolicy | None = None, **options: Any
) -> Any:
    async def go() -> Any:
        async with ClinikoClient(sandbox.api_key, base_url=sandbox.base_url, rate_limit=FAST, retry=retry) as client:
            return await extract(project, client, ExtractOptions(**options), sink=sink or (lambda _e: None))

    return asyncio.run(go())


# -- the oracle ---------------------------------------------------------------------------------------------------


def sandbox_bodies(db: Path, base: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every record the sandbox serves, per object and id, with its links made absolute as the server does."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    conn = sqlite3.connect(db)
    try:
        for resource, rid, body in conn.execute("SELECT resource, id, body FROM records"):
            out[resource][rid] = json.loads(body.replace(cliniko_db.BASE, base))
            if resource in BOOKING_SOURCES:
                # /bookings serves the appointment or block itself under its /bookings/{id} self link.
                own = f'"{cliniko_db.BASE}/{resource}/{rid}"'
                booking = body.replace(own, f'"{cliniko_db.BASE}/bookings/{rid}"')
                out["bookings"][rid] = json.loads(booking.replace(cliniko_db.BASE, base))
        (settings,) = conn.execute("SELECT body FROM singletons WHERE name = 'settings'").fetchone()
        out[SETTINGS_OBJECT]["settings"] = json.loads(settings.replace(cliniko_db.BASE, base))
    finally:
        conn.close()
    return out


def stored_bodies(project: Project) -> dict[str, dict[str, dict[str, Any]]]:
    rows = project.store.conn.execute("SELECT object, id, raw FROM cliniko_records")
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for obj, rid, raw in rows:
        out[obj][rid] = json.loads(raw)
    return out


def assert_store_matches_sandbox(project: Project, db: Path, base: str) -> dict[str, dict[str, dict[str, Any]]]:
    expected = sandbox_bodies(db, base)
    got = stored_bodies(project)
    assert set(got) == set(expected), "objects differ"
    for obj, records in expected.items():
        assert set(got[obj]) == set(records), f"{obj}: ids differ"
        for rid, body in records.items():
            assert got[obj][rid] == body, f"{obj} {rid} differs"
    return expected


def blob_digest(db: Path, attachment_id: str) -> tuple[int, str]:
    conn = sqlite3.connect(db)
    try:
        size, content_type, seed = conn.execute(
            "SELECT size, content_type, seed FROM blobs WHERE attachment_id = ?", (attachment_id,)
        ).fetchone()
    finally:
        conn.close()
    digest = hashlib.sha256()
    for chunk in cliniko_db.blob_chunks(seed, size, content_type):
        digest.update(chunk)
    return size, digest.hexdigest()


def minimum_requests(project: Project) -> int:
    """GET /settings, one request per page of every pass (an empty result is still one page), one per file."""
    pages = 0
    for obj in BY_OBJECT:
        for p in project.store.extract_passes(obj):
            assert p.total is not None
            pages += max(1, math.ceil(p.total / 100))
    files = project.store.conn.execute("SELECT COUNT(*) FROM attachment_files").fetchone()[0]
    return 1 + pages + files


# -- full extraction ------------------------------------------------------------------------------------------------


def test_full_extraction_holds_every_record_of_every_object(
    sandbox: ClinikoSandbox, sandbox_db: Path, project: Project
) -> None:
    summary = run_extract(project, sandbox)
    expected = assert_store_matches_sandbox(project, sandbox_db, sandbox.base_url)

    # The hard cases are really there, and flagged.
    conn = project.store.conn
    flags = {
        (obj, archived, cancelled): n
        for obj, archived, cancelled, n in conn.execute(
            "SELECT object, archived, cancelled, COUNT(*) FROM cliniko_records GROUP BY 1, 2, 3"
        )
    }
    assert flags.get(("patients", 1, 0), 0) > 0, "archived patients"
    assert flags.get(("individual_appointments", 0, 1), 0) + flags.get(("individual_appointments", 1, 1), 0) > 0
    assert flags.get(("attendees", 0, 1), 0) + flags.get(("attendees", 1, 1), 0) > 0
    assert flags.get(("practitioners", 1, 0), 0) > 0, "inactive practitioners"
    for obj, records in expected.items():
        for rid, body in records.items():
            archived, cancelled = conn.execute(
                "SELECT archived, cancelled FROM cliniko_records WHERE object = ? AND id = ?", (obj, rid)
            ).fetchone()
            hidden = bool(body.get("archived_at") or body.get("deleted_at")) or (
                obj == "practitioners" and body.get("active") is False
            )
            assert bool(archived) == hidden, (obj, rid)
            assert bool(cancelled) == bool(body.get("cancelled_at")), (obj, rid)

    # Foreign-id columns agree with the links.
    for obj, column, link in (
        ("individual_appointments", "patient_id", "patient"),
        ("attendees", "booking_id", "booking"),
        ("invoice_items", "invoice_id", "invoice"),
        ("practitioners", "user_id", "user"),
        ("treatment_notes", "practitioner_id", "practitioner"),
    ):
        for rid, stored in conn.execute(f"SELECT id, {column} FROM cliniko_records WHERE object = ?", (obj,)):
            target = expected[obj][rid].get(link)
            want = target["links"]["self"].rsplit("/", 1)[-1] if target else None
            assert stored == want, (obj, rid, column)

    # Every processed attachment is on disk, private, with the sandbox's bytes.
    processed = [rid for rid, a in expected["patient_attachments"].items() if a.get("processing_completed")]
    assert processed, "the clinic has attachments"
    assert summary.attachments_downloaded == len(processed) and not summary.attachments_failed
    for rid in processed:
        row = project.store.attachment_file(rid)
        assert row is not None
        size, sha = blob_digest(sandbox_db, rid)
        assert (row.size, row.sha256) == (size, sha)
        path = project.path / row.path
        assert path.stat().st_size == size and (path.stat().st_mode & 0o077) == 0
    unprocessed = set(expected["patient_attachments"]) - set(processed)
    assert all(project.store.attachment_file(rid) is None for rid in unprocessed)

    # Nothing wasted: exactly one request per page, per file, and the settings.
    assert summary.requests == minimum_requests(project)
    assert summary.rate_limited == 0 and summary.retries == 0
    assert summary.records["patients"] == len(expected["patients"])
    assert summary.stored == {obj: len(records) for obj, records in expected.items()}

    # The planner's statistics are gathered at the end, so the first `plan` of a fresh project is fast.
    assert conn.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'cliniko_records'").fetchone()[0]

    # A second full run downloads nothing again: the files on disk still match.
    again = run_extract(project, sandbox)
    assert again.attachments_downloaded == 0 and again.attachments_skipped == len(processed)


def test_transient_faults_are_retried_against_the_real_server(
    sandbox: ClinikoSandbox, sandbox_db: Path, project: Project
) -> None:
    sandbox.knobs.update({"fail_next": ["500", "drop", "503", "502"]})
    quick = RetryPolicy(base=0.05, cap=0.2)
    summary = run_extract(
        project, sandbox, retry=quick, objects=["patients", "practitioners"], download_attachments=False
    )
    assert summary.retries == 4
    expected = sandbox_bodies(sandbox_db, sandbox.base_url)
    got = stored_bodies(project)
    assert got["patients"] == expected["patients"]
    assert got["practitioners"] == expected["practitioners"]


# -- incremental ------------------------------------------------------------------------------------------------------


def _changes(sandbox: ClinikoSandbox, db: Path) -> dict[str, set[str]]:
    """Edit the sandbox over HTTP as a clinic would: patients patched, created, archived; appointments too."""
    conn = sqlite3.connect(db)
    live = [r[0] for r in conn.execute("SELECT id FROM records WHERE resource = 'patients' AND archived_at IS NULL")]
    appts = [
        (rid, json.loads(fk))
        for rid, fk in conn.execute(
            "SELECT id, fk FROM records WHERE resource = 'individual_appointments' "
            "AND archived_at IS NULL AND cancelled_at IS NULL AND deleted_at IS NULL ORDER BY seq"
        )
    ]
    conn.close()
    changed: dict[str, set[str]] = defaultdict(set)
    with httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), headers=UA, timeout=10) as http:
        for pid in live[:3]:
            http.patch(f"/patients/{pid}", json={"notes": "Moved to the new CRM"}).raise_for_status()
            changed["patients"].add(pid)
        new = http.post("/patients", json={"first_name": "Nova", "last_name": "Newcomer"})
        new.raise_for_status()
        changed["patients"].add(new.json()["id"])
        http.post(f"/patients/{live[3]}/archive").raise_for_status()
        changed["patients"].add(live[3])
        _, fk = appts[0]
        created = http.post(
            "/individual_appointments",
            json={
                "starts_at": "2031-03-04T01:00:00Z",
                "patient_id": live[5],
                "practitioner_id": fk["practitioner_id"],
                "appointment_type_id": fk["appointment_type_id"],
                "business_id": fk["business_id"],
            },
        )
        created.raise_for_status()
        changed["individual_appointments"].add(created.json()["id"])
        http.patch(
            f"/individual_appointments/{appts[1][0]}/cancel", json={"cancellation_reason": 50}
        ).raise_for_status()
        changed["individual_appointments"].add(appts[1][0])
        http.post(f"/individual_appointments/{appts[2][0]}/archive").raise_for_status()
        changed["individual_appointments"].add(appts[2][0])
    return changed


def _expected_pass_counts(db: Path, obj: str, watermark: str) -> list[int]:
    """What each incremental pass of `obj` must return, counted in the sandbox's own file."""
    spec = BY_OBJECT[obj]
    sources = BOOKING_SOURCES if obj == "bookings" else (obj,)
    marks = ", ".join("?" * len(sources))
    conn = sqlite3.connect(db)
    counts = []
    try:
        columns = ["updated_at"] + [c for c in ("archived_at", "cancelled_at") if c in spec.scope]
        for path in spec.paths:
            for column in columns:
                sql = f"SELECT COUNT(*) FROM records WHERE resource IN ({marks}) AND {column} >= ?"
                args: list[Any] = [*sources, watermark]
                if path.endswith("/inactive"):
                    sql += " AND COALESCE(json_extract(body, '$.active'), 1) = 0"
                elif obj == "practitioners":
                    sql += " AND COALESCE(json_extract(body, '$.active'), 1) = 1"
                counts.append(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()
    return counts


def test_incremental_run_fetches_only_what_changed(sandbox: ClinikoSandbox, sandbox_db: Path, project: Project) -> None:
    # Attachment files are the full test's business (and its second run checks they are not fetched again).
    run_extract(project, sandbox, download_attachments=False)
    # Mark what the full run stored, so that rows the incremental run writes stand out.
    with project.store.transaction() as conn:
        conn.execute("UPDATE cliniko_records SET extracted_at = '2000-01-01T00:00:00Z'")
    changed = _changes(sandbox, sandbox_db)
    summary = run_extract(project, sandbox, incremental=True, download_attachments=False)

    assert_store_matches_sandbox(project, sandbox_db, sandbox.base_url)
    expected_requests = 1  # settings
    for obj in BY_OBJECT:
        state = project.store.extract_state(obj)
        assert state is not None and state.mode == "incremental" and state.watermark is not None
        counts = _expected_pass_counts(sandbox_db, obj, state.watermark)
        assert summary.records[obj] == sum(counts), obj
        expected_requests += sum(max(1, math.ceil(n / 100)) for n in counts)
    assert summary.requests == expected_requests

    # Concretely: the patients fetched are exactly the ones edited (the unchanged 500 were not asked for).
    fetched_patients = {
        rid
        for (rid,) in project.store.conn.execute(
            "SELECT id FROM cliniko_records WHERE object = 'patients' AND extracted_at > '2000-01-01T00:00:00Z'"
        )
    }
    assert fetched_patients == changed["patients"]
    assert summary.records["patients"] <= 2 * len(changed["patients"])  # updated + archived passes overlap
    appointments = project.store.conn.execute(
        "SELECT id, archived, cancelled FROM cliniko_records WHERE object = 'individual_appointments' AND id IN "
        f"({', '.join('?' * len(changed['individual_appointments']))})",
        sorted(changed["individual_appointments"]),
    ).fetchall()
    assert sorted((a, c) for _, a, c in appointments) == [(0, 0), (0, 1), (1, 0)]

    # Nothing changed since: the next incremental run asks every question once and gets the overlap back at most.
    quiet = run_extract(project, sandbox, incremental=True, download_attachments=False)
    assert quiet.requests <= expected_requests


# -- crash and resume ----------------------------------------------------------------------------------------


class Crash(Exception):
    pass


def test_a_crash_mid_object_resumes_from_the_last_committed_page(
    sandbox: ClinikoSandbox, sandbox_db: Path, project: Project
) -> None:
    pages_seen = {"patients": 0}

    def crash_after_two_pages(event: Event) -> None:
        if isinstance(event, ObjectProgress) and event.object == "patients":
            pages_seen["patients"] += 1
            if pages_seen["patients"] == 2:
                raise Crash("power cut")

    with pytest.raises(Crash):
        run_extract(project, sandbox, sink=crash_after_two_pages, download_attachments=False)

    (patients_pass,) = project.store.extract_passes("patients")
    assert patients_pass.pages == 2 and patients_pass.next_url and patients_pass.completed_at is None
    committed = sum(p.pages for obj in BY_OBJECT for p in project.store.extract_passes(obj))
    files_before = project.store.conn.execute("SELECT COUNT(*) FROM attachment_files").fetchone()[0]
    stored_patients = project.store.count_records("patients")["patients"]
    assert stored_patients == 200

    # The process dies; a new one opens the project and runs the same command.
    path = project.path
    project.close()
    with open_project(path) as reopened:
        summary = run_extract(reopened, sandbox, download_attachments=False)
        assert_store_matches_sandbox(reopened, sandbox_db, sandbox.base_url)
        (patients_pass,) = reopened.store.extract_passes("patients")
        total_patients = patients_pass.total or 0
        # Each page was fetched once over both processes: the resumed run started at page 3.
        assert patients_pass.pages == math.ceil(total_patients / 100)
        assert summary.records["patients"] == total_patients - 200
        assert files_before == 0
        assert summary.requests == minimum_requests(reopened) - committed
        state = reopened.store.extract_state("patients")
        assert state is not None and state.completed_at is not None


# -- the command line ----------------------------------------------------------------------------------------


def test_extract_command(
    sandbox: ClinikoSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keyring, "get_keyring", lambda: MemoryKeyring())
    create_project("CLI clinic", path=tmp_path / "cli").close()
    monkeypatch.delenv("CLINIKO_API_KEY", raising=False)
    assert cli.main(["extract", "--project", str(tmp_path / "cli"), "--cliniko-url", sandbox.base_url]) == 2
    assert "No Cliniko API key" in capsys.readouterr().err

    monkeypatch.setenv("CLINIKO_API_KEY", sandbox.api_key)
    code = cli.main(["extract", "--project", str(tmp_path / "cli"), "--json", "--rate-limit", str(FAST)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["records"]["patients"] > PATIENTS * 0.9 and summary["rate_limited"] == 0
    assert sandbox.api_key not in out + err
    with open_project(tmp_path / "cli", write=False) as p:
        assert p.settings.cliniko.base_url == sandbox.base_url  # remembered from the first call
        assert sandbox.api_key not in p.settings_path.read_text()

    code = cli.main(["extract", "--project", str(tmp_path / "cli"), "--incremental"])
    out, _ = capsys.readouterr()
    assert code == 0 and "Incremental extraction finished" in out


def test_extract_command_refuses_a_missing_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["extract", "--project", str(tmp_path / "nowhere")]) == 2
    assert "No project" in capsys.readouterr().err
