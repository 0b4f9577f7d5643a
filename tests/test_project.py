"""The project folder: layout, private modes, settings, store schema, the single-writer lock, secrets."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import keyring.backend
import pytest

from cliniko2nutshell.project import (
    ProjectError,
    ProjectLocked,
    create_project,
    list_projects,
    open_project,
)
from cliniko2nutshell.project.secrets import MemoryKeyring, Secret, Secrets, Where, backend_refusal
from cliniko2nutshell.project.store import SCHEMA_VERSION, RecordRow, Store, StoreError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_lays_out_a_private_project(tmp_path: Path) -> None:
    project = create_project("Harbour Physio", root=tmp_path)
    try:
        assert project.path == tmp_path / "Harbour-Physio"
        for sub in ("files", "reports", "logs"):
            assert _mode(project.path / sub) == 0o700
        assert _mode(project.path) == 0o700
        assert _mode(project.settings_path) == 0o600
        assert _mode(project.store_path) == 0o600
        assert project.store.schema_version == SCHEMA_VERSION
        assert project.store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        project.close()


def test_modes_hold_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        project = create_project("Loose Umask", path=tmp_path / "p")
        project.store.upsert_records([RecordRow("patients", "1", {"id": "1"})])
        project.close()
    finally:
        os.umask(old)
    for p in (tmp_path / "p").rglob("*"):
        assert _mode(p) & 0o077 == 0, p


def test_open_and_list(tmp_path: Path) -> None:
    create_project("One", root=tmp_path).close()
    create_project("Two", root=tmp_path).close()
    names = {p.name for p in list_projects(tmp_path)}
    assert names == {"One", "Two"}
    with open_project(tmp_path / "One") as p:
        assert p.settings.name == "One"
    with pytest.raises(ProjectError, match="No project"):
        open_project(tmp_path / "missing")
    with pytest.raises(ProjectError, match="already exists"):
        create_project("One", root=tmp_path)


def test_settings_never_hold_secrets(tmp_path: Path) -> None:
    project = create_project("S", path=tmp_path / "s")
    project.settings.nutshell.username = "admin@clinic.example"
    project.settings.cliniko.base_url = "http://127.0.0.1:9/v1"
    project.save_settings()
    project.close()
    text = (tmp_path / "s" / "project.toml").read_text()
    assert "api_key" not in text.lower()
    with open_project(tmp_path / "s") as p:
        assert p.settings.cliniko.base_url == "http://127.0.0.1:9/v1"


def test_second_writer_gets_a_clear_error_naming_the_holder(tmp_path: Path) -> None:
    project = create_project("Locked", path=tmp_path / "l", command="extract")
    try:
        code = (
            "import sys; from pathlib import Path\n"
            "from cliniko2nutshell.project import open_project, ProjectLocked\n"
            "try:\n    open_project(Path(sys.argv[1]))\nexcept ProjectLocked as e:\n    print(e); sys.exit(3)\n"
        )
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "l")], capture_output=True, text=True)
        assert result.returncode == 3, result.stderr
        assert f"process {os.getpid()}" in result.stdout
        assert "extract" in result.stdout
        # Read-only opening is allowed while another process writes.
        open_project(tmp_path / "l", write=False).close()
    finally:
        project.close()
    open_project(tmp_path / "l").close()  # released: the next writer gets in


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    create_project("K", path=tmp_path / "k").close()
    code = (
        "import sys, time; from pathlib import Path\n"
        "from cliniko2nutshell.project import open_project\n"
        "open_project(Path(sys.argv[1])); print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "k")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(ProjectLocked):
            open_project(tmp_path / "k")
    finally:
        proc.kill()
        proc.wait()
    open_project(tmp_path / "k").close()


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    store.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "m.db")


def test_store_records_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.db")
    rows = [
        RecordRow("patients", "836447129235883061", {"id": "836447129235883061", "first_name": "Zoë"}, archived=True),
        RecordRow("invoices", "7", {"id": "7"}, foreign={"patient_id": "836447129235883061"}),
    ]
    with store.transaction() as conn:
        store.upsert_records(rows, conn)
    assert store.get_record("patients", "836447129235883061")["first_name"] == "Zoë"
    assert store.count_records() == {"patients": 1, "invoices": 1}
    assert list(store.iter_records("patients", include_archived=False)) == []
    assert [r["id"] for r in store.iter_records("invoices", where={"patient_id": "836447129235883061"})] == ["7"]
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.upsert_records([RecordRow("patients", "2", {"id": "2"})], conn)
        raise RuntimeError("crash mid-transaction")
    assert store.get_record("patients", "2") is None  # rolled back whole


def test_per_patient_and_per_invoice_look_ups_use_their_index_without_statistics(tmp_path: Path) -> None:
    """A fresh project has no planner statistics: each look-up must still be an index search, not a walk over
    the whole object (what made the first `plan` of a 5,000-patient project take 346 s)."""
    store = Store(tmp_path / "m.db")
    rows = [RecordRow("invoice_items", str(i), {"id": str(i)}, foreign={"invoice_id": str(i % 7)}) for i in range(50)]
    rows += [
        RecordRow("treatment_notes", str(i), {"id": str(i)}, foreign={"patient_id": str(i % 5)}) for i in range(50)
    ]
    with store.transaction() as conn:
        store.upsert_records(rows, conn)
    assert store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() is None
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    items = [r["id"] for r in store.iter_records("invoice_items", where={"invoice_id": "3"})]
    notes = [r["id"] for r in store.iter_records("treatment_notes", where={"patient_id": "2"})]
    store.conn.set_trace_callback(None)
    assert items == sorted(str(i) for i in range(50) if i % 7 == 3)
    assert notes == sorted(str(i) for i in range(50) if i % 5 == 2)
    # The trace shows each statement with its values in place: explain exactly those.
    plans = [" ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql)) for sql in seen]
    assert len(plans) == 2
    assert "USING INDEX cliniko_records_invoice_id (object=? AND invoice_id=?)" in plans[0]
    assert "USING INDEX cliniko_records_patient_id (object=? AND patient_id=?)" in plans[1]
    assert all("TEMP B-TREE" not in p for p in plans)  # already in id order
    store.ensure_statistics()
    assert store.conn.execute("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'cliniko_records'").fetchone()[0]


class _PlaintextKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise AssertionError("a plaintext backend must never be read")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a plaintext backend must never be written")

    def delete_password(self, service: str, username: str) -> None:
        raise AssertionError


_PlaintextKeyring.__name__ = "PlaintextKeyring"


def test_secrets_prefer_the_keychain_then_env_then_memory(memory_keyring: MemoryKeyring) -> None:
    secrets = Secrets("p1", memory_keyring, env={"CLINIKO_API_KEY": "from-env-au1"})
    assert secrets.locate(Secret.CLINIKO_API_KEY) == ("from-env-au1", Where.ENVIRONMENT)
    assert secrets.set(Secret.CLINIKO_API_KEY, "from-keychain-au2") is Where.KEYCHAIN
    assert secrets.locate(Secret.CLINIKO_API_KEY) == ("from-keychain-au2", Where.KEYCHAIN)
    assert secrets.set(Secret.NUTSHELL_API_KEY, "session-only", remember=False) is Where.MEMORY
    assert secrets.get(Secret.NUTSHELL_API_KEY) == "session-only"
    assert memory_keyring.get_password("cliniko2nutshell:p1", "NUTSHELL_API_KEY") is None
    secrets.forget(Secret.CLINIKO_API_KEY)
    assert secrets.locate(Secret.CLINIKO_API_KEY) == ("from-env-au1", Where.ENVIRONMENT)
    # Secrets are per project.
    assert Secrets("p2", memory_keyring, env={}).get(Secret.NUTSHELL_API_KEY) is None


def test_plaintext_keyring_is_refused_with_a_clear_message() -> None:
    backend = _PlaintextKeyring()
    assert "plain file" in (backend_refusal(backend) or "")
    secrets = Secrets("p", backend, env={})
    assert secrets.set(Secret.CLINIKO_API_KEY, "k-au1") is Where.MEMORY
    assert secrets.get(Secret.CLINIKO_API_KEY) == "k-au1"
    assert "not saved" in secrets.explain() and "CLINIKO_API_KEY" in secrets.explain()


def test_no_secret_reaches_a_project_file(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    project = create_project("Secretive", path=tmp_path / "x")
    secrets = Secrets(project.settings.id, memory_keyring, env={})
    secrets.set(Secret.CLINIKO_API_KEY, "SUPERSECRETKEY-au2")
    secrets.set(Secret.NUTSHELL_API_KEY, "ANOTHERSECRET", remember=False)
    project.save_settings()
    project.close()
    for p in (tmp_path / "x").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"SUPERSECRETKEY" not in data and b"ANOTHERSECRET" not in data, p


def test_project_log_is_private_and_masks_emails_and_credentials(tmp_path: Path) -> None:
    import logging

    from cliniko2nutshell.project.logs import attach_project_log, detach_project_log

    handler = attach_project_log(tmp_path)
    try:
        log = logging.getLogger("cliniko2nutshell.test")
        log.warning("patient 836447129235883061 failed: e-mail jane.doe@example.com invalid")
        log.warning("request headers Authorization: Basic c2VjcmV0OmtleQ==")
    finally:
        detach_project_log(handler)
    path = tmp_path / "cliniko2nutshell.log"
    text = path.read_text()
    assert "836447129235883061" in text
    assert "jane.doe@example.com" not in text and "c2VjcmV0OmtleQ==" not in text
    assert _mode(path) == 0o600


def test_store_migrates_an_older_project_forward(tmp_path: Path) -> None:
    import sqlite3

    from cliniko2nutshell.project.store import MIGRATIONS, _split_sql

    conn = sqlite3.connect(tmp_path / "old.db")
    for statement in _split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("INSERT INTO cliniko_records (object, id, raw, extracted_at) VALUES ('patients', '1', '{}', 'x')")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = Store(tmp_path / "old.db")
    assert store.schema_version == SCHEMA_VERSION > 1
    assert store.get_record("patients", "1") == {}  # data kept across the upgrade
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
    assert {"journal", "id_map", "cliniko_records_invoice_id"} <= names


def test_milestones_are_replaced_and_survive_reopening(tmp_path: Path) -> None:
    from cliniko2nutshell.project.store import Store

    store = Store(tmp_path / "m.db")
    assert store.milestone("preflight") is None
    store.set_milestone("preflight", {"map_version": 1, "blockers": 2})
    store.set_milestone("preflight", {"map_version": 2, "blockers": 0})
    store.close()
    again = Store(tmp_path / "m.db")
    got = again.milestone("preflight")
    assert got is not None and got.detail == {"map_version": 2, "blockers": 0} and got.at.endswith("Z")
    again.clear_milestone("preflight")
    assert again.milestone("preflight") is None
