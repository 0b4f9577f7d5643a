"""Secrets and patient data, after a whole journey under faults typed as a user types it: no API key (nor the
Basic credential made from it) in any file of the project (store, logs, reports, exports), in the terminal output
or in the user's data and cache folders; the logs (the operational log, and its --verbose mirror on the terminal)
hold none of the clinic's patient names, e-mails, phones, birth dates or Medicare numbers; the project folder is
0700 folders and 0600 files; the attachments came from the file host, which refuses any request carrying an
Authorization header (as S3 does), so the key never reached it. Also: the wizard's snapshot pictures and
screenshots/ hold no key of the sandboxes they were taken from, and every server the tool starts listens on
127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import stat
from pathlib import Path

import pytest

from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.cliniko_app import ClinikoSandbox, start_cliniko_sandbox
from cliniko2nutshell.sandbox.nutshell_app import default_seed, start_nutshell_sandbox
from tests.scenarios import cli_env, make_world, small, until_finished
from tests.test_migration_e2e import Template

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["small"]  # the module's fixture

REPO = Path(__file__).resolve().parent.parent
JOURNEY = [
    ("extract", "--verbose"),
    ("map", "--accept-suggestions", "--fallback-owner", "1-users", "--confirm", "--verbose"),
    ("fields", "--create", "--yes", "--verbose"),
    ("plan", "--verbose"),
    ("sample", "--size", "100", "--yes", "--verbose"),
    ("run", "--yes", "--verbose"),
    ("delta", "--yes", "--verbose"),
    ("reconcile", "--verbose"),
    ("check",),
    ("status",),
]


def credentials(cliniko: ClinikoSandbox, nutshell_user: str, nutshell_key: str) -> dict[str, bytes]:
    """Each key as it is typed (the clinic's other users' keys too), and the Basic credentials made of them."""
    found = {
        "Nutshell key": nutshell_key.encode(),
        "Nutshell Basic credential": base64.b64encode(f"{nutshell_user}:{nutshell_key}".encode()),
    }
    for role, key in {"administrator": cliniko.api_key, **cliniko.staff_keys}.items():
        found[f"Cliniko key ({role})"] = key.encode()
        found[f"Cliniko Basic credential ({role})"] = base64.b64encode(f"{key}:".encode())
    return found


def patient_values(clinic: Path) -> set[str]:
    """The clinic's patient data a log must never carry: names, e-mails, phones, birth dates, Medicare."""
    conn = sqlite3.connect(f"file:{clinic}?mode=ro", uri=True)
    try:
        bodies = [json.loads(r[0]) for r in conn.execute("SELECT body FROM records WHERE resource = 'patients'")]
    finally:
        conn.close()
    values: set[str] = set()
    for p in bodies:
        first, last = (p.get("first_name") or "").strip(), (p.get("last_name") or "").strip()
        values |= {f"{first} {last}", p.get("label") or ""}
        values.add(last if len(last) >= 4 else "")  # shorter surnames also spell ordinary words
        values |= {p.get("email") or "", p.get("date_of_birth") or "", p.get("medicare") or ""}
        for phone in p.get("patient_phone_numbers") or []:
            values |= {phone.get("number") or "", phone.get("normalized_number") or ""}
    return {v for v in values if len(v.strip()) >= 4}


def found_in(text: str, value: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def test_a_journey_under_faults_leaks_no_key_and_logs_no_patient(small: Template, tmp_path: Path) -> None:
    world = make_world(small, tmp_path)
    (world.project / "mapping.toml").unlink()  # the map is made the way a user makes it
    env = cli_env(world, tmp_path)
    said: list[str] = []
    try:
        world.cliniko.knobs.update({"fault_rate": 0.05, "faults": ["502", "drop"], "seed": 11})
        world.nutshell.knobs.update({"fault_rate": 0.05, "faults": ["500", "drop", "truncated"], "seed": 11})
        for args in JOURNEY:
            done = until_finished(world, env, *args)
            assert "refuse" not in done.stdout + done.stderr, (args, done.stdout[-2000:], done.stderr[-2000:])
            said += [done.stdout, done.stderr]
        done = until_finished(world, env, "log", "--csv", str(world.project / "reports" / "audit.csv"))
        said += [done.stdout, done.stderr]
        secrets = credentials(world.cliniko, world.nutshell.username, world.nutshell.api_key)
        # The attachments were fetched from the file host (it answers 400 to a request with Authorization).
        conn = sqlite3.connect(f"file:{world.project / 'migration.db'}?mode=ro", uri=True)
        try:
            fetched = conn.execute("SELECT count(*) FROM attachment_files").fetchone()[0]
        finally:
            conn.close()
        assert fetched > 0
    finally:
        world.stop()

    files = [p for p in world.project.rglob("*") if p.is_file()]
    assert any(p.parent.name == "logs" for p in files) and any(p.parent.name == "reports" for p in files)
    elsewhere = [p for where in (tmp_path / "data", tmp_path / "cache") if where.exists() for p in where.rglob("*")]
    for path in files + [p for p in elsewhere if p.is_file()]:
        data = path.read_bytes()
        leaked = [name for name, secret in secrets.items() if secret in data]
        assert leaked == [], f"{path}: {leaked}"
    terminal = "\n".join(said).encode()
    assert [name for name, secret in secrets.items() if secret in terminal] == []

    logs = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files if p.parent.name == "logs")
    mirrored = "\n".join(said[1::2])  # stderr: where --verbose mirrors the operational log
    assert "command extract started" in logs and "command run started" in logs  # the scan reads the real log
    values = patient_values(world.clinic)
    assert len(values) > 100
    store = (world.project / "migration.db").read_bytes().decode("utf-8", errors="replace")
    assert sum(found_in(store, v) for v in values) > len(values) // 2  # the values are spelt as the data has them
    assert sorted(v for v in values if found_in(logs, v)) == []
    assert sorted(v for v in values if found_in(mirrored, v)) == []

    for path in [world.project, *world.project.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {oct(mode)}"


def test_snapshots_and_screenshots_hold_no_key(tmp_path: Path) -> None:
    """Whatever the wizard's snapshot tests and screenshots/ hold now (the lead fills them): none carries a key of
    the sandboxes they are taken from (the wizard world's clinic, the default Nutshell account)."""
    from tests.wizard_world import make_clinic

    clinic = make_clinic(tmp_path)
    conn = cliniko_db.connect(clinic)
    try:
        nutshell_seed = cliniko_db.get_meta_json(conn, "nutshell_seed") or default_seed()
    finally:
        conn.close()
    cliniko = start_cliniko_sandbox(clinic, rate_limit=None)
    cliniko.stop()
    api_user = nutshell_seed["api_user"]
    secrets = credentials(cliniko, api_user["email"], api_user["api_key"])
    assert cliniko.api_key and api_user["api_key"]
    pictures = [p for where in ("tests/__snapshots__", "screenshots") for p in (REPO / where).rglob("*")]
    pictures = [p for p in pictures if p.is_file()]
    assert any(p.suffix == ".svg" for p in pictures)  # the scan reaches the pictures
    for path in pictures:
        data = path.read_bytes()
        assert [name for name, secret in secrets.items() if secret in data] == [], path


def test_every_server_the_tool_starts_listens_on_loopback(small_clinic_db: Path, tmp_path: Path) -> None:
    """The only servers are the sandboxes (sandbox/server.py binds them); each socket is on 127.0.0.1."""
    clinic = tmp_path / "clinic.db"
    clinic.write_bytes(small_clinic_db.read_bytes())
    cliniko = start_cliniko_sandbox(clinic, rate_limit=None)
    nutshell = start_nutshell_sandbox(default_seed())
    try:
        servers = [*cliniko.server.sockets, *nutshell.server.sockets]  # the API, the file host, Nutshell
        assert len(servers) >= 3
        for sock in servers:
            assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        cliniko.stop()
        nutshell.stop()
    # No other code binds or serves: a new server would have to show itself here.
    binding = re.compile(r"\.bind\(|\.listen\(|uvicorn\.(?:run|Config)\(|HTTPServer\(|start_server\(|0\.0\.0\.0")
    places = sorted(
        f"{p.relative_to(REPO)}:{n}"
        for p in (REPO / "cliniko2nutshell").rglob("*.py")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if binding.search(line)
    )
    assert [p.split(":")[0] for p in places] == ["cliniko2nutshell/sandbox/server.py"] * len(places), places
