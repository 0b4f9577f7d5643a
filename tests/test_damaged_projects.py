"""Damaged projects: each damage is found by `check` with the file named and what to do, the commands that write
refuse before their first write, and the damaged file is left exactly as it was (nothing silently trusted or
overwritten). The commands run in-process through `cli.main`, as a user types them."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from cliniko2nutshell.cli import main
from cliniko2nutshell.engine.api import Engine, EngineError
from cliniko2nutshell.engine.plan import activity_type_ids
from cliniko2nutshell.mapping.mapfile import save_map
from cliniko2nutshell.project import create_project, open_project
from cliniko2nutshell.project.integrity import Severity, verify_project, verify_store
from cliniko2nutshell.project.store import SCHEMA_VERSION
from tests.fakes.clinic_store import load_clinic, nutshell_seed
from tests.fakes.destination import FakeNutshell
from tests.test_engine_clinic import clinic_map

WRITING = ("sample", "run", "delta", "rollback")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, small_clinic_db: Path) -> Path:
    """A project the small clinic was migrated from (to the in-memory Nutshell): store, map, files, journal."""
    root = tmp_path_factory.mktemp("migrated")
    project = create_project("Damaged", path=root / "project")
    try:
        load_clinic(project, small_clinic_db)
        types = nutshell_seed(small_clinic_db)["activity_types"]
        save_map(clinic_map(project, types), project.mapping_path)
        project.settings.nutshell.base_url = "http://127.0.0.1:9/rest"  # never the real service
        project.settings.cliniko.base_url = "http://127.0.0.1:9/v1"
        project.save_settings()
        ids = activity_type_ids((t, f"{i + 1}-activityTypes") for i, t in enumerate(types))
        engine = Engine(project, FakeNutshell(), clinic_map(project, types), ids, durable=False)
        asyncio.run(engine.full())
    finally:
        project.close()
    return root / "project"


@pytest.fixture
def proj(migrated: Path, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(migrated, target, ignore=shutil.ignore_patterns(".lock"))
    return target


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys from the environment, as on a machine without a keychain (the commands must fail before using them)."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setenv("CLINIKO_API_KEY", "sandbox-key-au1")
    monkeypatch.setenv("NUTSHELL_USERNAME", "admin@example.com")
    monkeypatch.setenv("NUTSHELL_API_KEY", "sandbox-key")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


# Files a command may touch without changing anything: the lock (who holds the project), the log, and SQLite's
# -wal/-shm companions that reading a WAL store creates.
INCIDENTAL = {".lock", "logs/cliniko2nutshell.log", "migration.db-wal", "migration.db-shm"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, apart from the incidental ones."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {name: p.read_bytes() for p in files if (name := str(p.relative_to(folder))) not in INCIDENTAL}


def assert_refused_untouched(capsys: pytest.CaptureFixture[str], proj: Path, file: str, *words: str) -> None:
    """`check` names `file` and `words`; every writing command refuses with the same; no file changes."""
    before = snapshot(proj)
    code, text = cli(capsys, "check", "--project", str(proj))
    assert code == 1, text
    assert file in text and all(w in text for w in words), text
    for command in WRITING:
        code, text = cli(capsys, command, "--project", str(proj), "--yes")
        assert code == 2, (command, text)
        assert file in text and "Traceback" not in text, (command, text)
    code, text = cli(capsys, "status", "--project", str(proj))
    assert code == 2 and file in text, text
    assert snapshot(proj) == before


def test_a_sound_project_checks_clean(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    code, text = cli(capsys, "check", "--project", str(proj))
    assert code == 0, text
    assert "sound" in text and "journal rows" in text and "downloaded files" in text
    report = verify_project(proj)
    assert report.ok and not report.warnings
    assert report.checked["downloaded files"] > 0 and report.checked["mapped records"] > 0


def test_truncated_store(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    db = proj / "migration.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    assert_refused_untouched(capsys, proj, "migration.db", "cut short", "backup")


def test_corrupted_store_pages(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    db = proj / "migration.db"
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(3 * page, len(data) - page, 7 * page):  # scribble over every seventh page
        data[start + 100 : start + 400] = os.urandom(300)
    db.write_bytes(bytes(data))
    assert_refused_untouched(capsys, proj, "migration.db", "integrity check", "Do not delete")


def test_store_replaced_by_something_else(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    (proj / "migration.db").write_text("these are not the records you are looking for\n")
    assert_refused_untouched(capsys, proj, "migration.db", "not a SQLite database")


def test_missing_store_is_not_silently_recreated(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    (proj / "migration.db").unlink()
    assert_refused_untouched(capsys, proj, "migration.db", "missing", "every record")
    assert not (proj / "migration.db").exists()


def test_store_from_a_newer_version(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    conn = sqlite3.connect(proj / "migration.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    assert_refused_untouched(capsys, proj, "migration.db", "newer cliniko2nutshell", "Upgrade")


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda text: text[: len(text) // 2], ("mapping.toml", "not valid TOML", "mapping-history")),
        (lambda text: text.replace("confirmed = true", 'confirmed = "yes please"'), ("confirmed", "boolean")),
        (lambda text: text.replace("format = 1", "format = 99"), ("newer cliniko2nutshell", "Upgrade")),
        (lambda text: text + "\n[surprise]\nkey = 1\n", ("surprise", "unknown key")),
    ],
    ids=["half-written", "wrong-type", "newer", "unknown-key"],
)
def test_damaged_mapping(capsys: pytest.CaptureFixture[str], proj: Path, damage, words: tuple[str, ...]) -> None:
    path = proj / "mapping.toml"
    damaged = damage(path.read_text())
    assert damaged != path.read_text()
    path.write_text(damaged)
    before = snapshot(proj)
    code, text = cli(capsys, "check", "--project", str(proj))
    assert code == 1 and "mapping.toml" in text and all(w in text for w in words), text
    for command in WRITING:
        code, text = cli(capsys, command, "--project", str(proj), "--yes")
        assert code == 2 and "mapping.toml" in text and "Traceback" not in text, (command, text)
    for command in ("plan", "map"):  # the commands that read the map to show it
        code, text = cli(capsys, command, "--project", str(proj))
        assert code == 2 and "mapping.toml" in text, (command, text)
    assert snapshot(proj) == before


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda text: text[: text.index("[")] + "[cliniko", ("not valid TOML", "backup")),
        (lambda text: text.replace('name = "Damaged"', "name = 5"), ("name", "valid string")),
        (lambda text: text.replace("format = 1", "format = 7"), ("newer cliniko2nutshell", "Upgrade")),
    ],
    ids=["half-written", "wrong-type", "newer"],
)
def test_damaged_project_file(capsys: pytest.CaptureFixture[str], proj: Path, damage, words: tuple[str, ...]) -> None:
    path = proj / "project.toml"
    path.write_text(damage(path.read_text()))
    assert_refused_untouched(capsys, proj, "project.toml", *words)


def test_journal_edited_behind_our_back(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    conn = sqlite3.connect(proj / "migration.db")
    seq = conn.execute("SELECT journal_seq FROM id_map WHERE object = 'person' LIMIT 1").fetchone()[0]
    conn.execute("DELETE FROM journal WHERE seq = ?", (seq,))
    conn.execute("UPDATE id_map SET nutshell_id = (SELECT nutshell_id FROM id_map WHERE object = 'person' "
                 "ORDER BY source_id LIMIT 1) WHERE object = 'person' AND origin = 'created'")  # fmt: skip
    conn.commit()
    conn.close()
    report = verify_store(proj)
    problems = " ".join(f.problem for f in report.errors)
    assert "no completed journal row backs" in problems and "claimed by several source records" in problems
    code, text = cli(capsys, "check", "--project", str(proj))
    assert code == 1 and "migration.db" in text, text
    # the engine refuses before writing anything, to Nutshell or to the store
    project = open_project(proj)
    try:
        before = project.store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        with pytest.raises(EngineError, match="no completed journal row backs"):
            Engine(project, FakeNutshell(), clinic_map(project, []), {}, durable=False)
        assert project.store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == before
    finally:
        project.close()


def test_downloaded_file_changed_since_download(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    target = sorted((proj / "files" / "attachments").iterdir())[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content: only the sha256 tells
    target.write_bytes(bytes(data))
    code, text = cli(capsys, "check", "--project", str(proj))
    assert code == 3, text  # a warning: the run quarantines that file rather than upload it (see below)
    assert f"files/attachments/{target.name}" in text and "sha256" in text and "extract" in text
    assert verify_project(proj, deep=False).warnings == []  # the quick check does not read every byte
    target.unlink()
    report = verify_project(proj, deep=False)
    assert [f.file for f in report.warnings] == [f"files/attachments/{target.name}"]


def test_files_open_to_other_users(proj: Path) -> None:
    (proj / "reports").chmod(0o755)
    (proj / "mapping.toml").chmod(0o644)
    report = verify_project(proj)
    assert report.ok
    [finding] = report.warnings
    assert "reports" in finding.file and "mapping.toml" in finding.file and "chmod" in finding.action


def test_two_processes_on_one_project(capsys: pytest.CaptureFixture[str], proj: Path) -> None:
    holder = open_project(proj, command="cliniko2nutshell run")
    try:
        for command in WRITING:
            code, text = cli(capsys, command, "--project", str(proj), "--yes")
            assert code == 2 and "open for writing by process" in text and "cliniko2nutshell run" in text, text
        code, text = cli(capsys, "check", "--project", str(proj))
        assert code == 0 and "open for writing by process" in text, text  # checking needs no lock
    finally:
        holder.close()


def test_a_damaged_attachment_is_quarantined_not_uploaded(project, small_clinic_db: Path) -> None:
    """A downloaded file that changed on disk since its download is not sent: its record is quarantined with a
    reason that says what to do, and every other file goes up."""
    load_clinic(project, small_clinic_db)
    types = nutshell_seed(small_clinic_db)["activity_types"]
    row = project.store.conn.execute("SELECT attachment_id, path FROM attachment_files ORDER BY path").fetchone()
    path = project.path / row["path"]
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = FakeNutshell()
    ids = activity_type_ids((t, f"{i + 1}-activityTypes") for i, t in enumerate(types))
    engine = Engine(project, dest, clinic_map(project, types), ids, durable=False)
    asyncio.run(engine.full())
    held = engine.journal.quarantined("attachment_file", row["attachment_id"])
    assert held is not None and "sha256" in held.reason and "extract" in held.reason, held
    assert engine.journal.mapped("attachment_file", row["attachment_id"]) is None
    uploaded = [f for r in dest.live() for f in r.files]
    files = list(engine.journal.iter_mapped(objects=["attachment_file", "treatment_note_file"]))
    assert uploaded and len(uploaded) == len(files)  # every other file went up


def test_check_names_no_project(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, text = cli(capsys, "check", "--project", str(tmp_path / "nowhere"))
    assert code == 2 and "No project" in text
    code, text = cli(capsys, "check", "--project", str(tmp_path))
    assert code == 1 and "project.toml" in text and "is missing" in text


def test_severities_are_ordered_errors_first(proj: Path) -> None:
    (proj / "mapping.toml").chmod(0o644)
    (proj / "mapping.toml").write_text("format = 99\n")
    text = verify_project(proj).describe()
    assert text.index("ERROR") < text.index("WARNING")
    assert {f.severity for f in verify_project(proj).findings} >= {Severity.ERROR, Severity.WARNING}
