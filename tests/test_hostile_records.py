"""Hostile records end to end: a small sandbox clinic with the generator's hostile corpus planted
(sandbox/clinic_hostile.py), taken through the journey as a user types it (extract, map, fields, plan, sample, run,
reconcile, log --csv, rollback) over real HTTP.

Each hostile record ends migrated as the map says (its person or activity in the Nutshell sandbox's state dump,
field by field as the plan's payload, and the payload itself checked against the Cliniko value) or quarantined with
a reason; nothing crashes, nothing is there twice, nothing is lost (reconcile balances). The reports escape every
value, CSV cells cannot start a formula, no file is written outside the project's files/ folder whatever an
attachment is called, and the logs carry no patient names.

With C2N_HOSTILE_TABLE=<file> set, the outcome of every planted case is written to that file as JSON lines: the
table of the issue's closing note.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cliniko2nutshell.engine.journal import Journal
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD, markers_in
from cliniko2nutshell.engine.ops import Op
from cliniko2nutshell.mapping.documents import WINDOWS_RESERVED, nutshell_file_name
from cliniko2nutshell.mapping.names import is_valid_email
from cliniko2nutshell.project import open_project
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.clinic import HOSTILE_CASES, generate_clinic
from tests.scenarios import World, cli, cli_env, make_world
from tests.test_migration_e2e import Template, canonical, check_against_map, dump, run_engine

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Journey:
    world: World
    root: Path
    env: dict[str, str]
    clinic: dict[str, dict[str, dict[str, Any]]]  # resource -> id -> the body Cliniko serves
    cases: dict[str, list[str]]  # hostile case -> ids
    outputs: dict[str, Any]  # command -> its output
    pristine: dict[str, Any]  # Nutshell before anything (canonical)
    migrated: dict[str, Any]  # the state dump after the run
    ops: list[Op]
    quarantine: dict[tuple[str, str], str]
    tree_before: set[str]
    tree_after: set[str]
    rolled_back: dict[str, Any]  # canonical, after the rollback
    passwd_mtime: float


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _clinic_bodies(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    conn = cliniko_db.connect(path)
    try:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for resource, rid, body in conn.execute("SELECT resource, id, body FROM records"):
            out.setdefault(resource, {})[rid] = json.loads(body)
        return out
    finally:
        conn.close()


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Journey:
    root = tmp_path_factory.mktemp("hostile")
    clinic_db = root / "generated.db"
    summary = generate_clinic(clinic_db, 30, seed=3, hostile=True)
    conn = cliniko_db.connect(clinic_db)
    seed = cliniko_db.get_meta_json(conn, "nutshell_seed")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    cases = {k.removeprefix("hostile_"): v for k, v in summary.hard_cases.items() if k.startswith("hostile_")}
    world = make_world(Template(root, clinic_db, seed), root / "world", mapping="")
    (world.project / "mapping.toml").unlink()  # the map is made the way a user makes it, below
    env = cli_env(world, root / "home")
    outputs: dict[str, Any] = {}

    def step(name: str, *args: str) -> None:
        done = cli(world, env, *args)
        assert done.returncode in (0, 3), f"{args}: {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        outputs[name] = done

    try:
        pristine = canonical(dump(world.nutshell))
        before = _tree(root / "world")
        passwd = Path("/etc/passwd").stat().st_mtime  # "/etc/passwd" is an attachment's name: it stays untouched
        step("extract", "extract")
        step("map", "map", "--accept-suggestions", "--fallback-owner", "1-users", "--confirm")
        step("fields", "fields", "--create", "--yes")
        step("plan", "plan")
        hosts = ",".join(sorted({cases[c][0] for c in ("name_html", "name_formula_equals", "email_script")}))
        step("sample", "sample", "--patients", hosts, "--yes")
        step("run", "run", "--yes")
        migrated = dump(world.nutshell)
        step("reconcile", "reconcile", "--json")
        step("log", "log", "--csv", str(world.project / "reports" / "audit.csv"))
        ops = asyncio.run(run_engine(world.project, world.nutshell, "plan"))
        project = open_project(world.project, write=False)
        try:
            quarantine = {(q.object, q.source_id): q.reason for q in Journal(project.store).quarantine_list()}
        finally:
            project.close()
        after = _tree(root / "world")
        step("rollback", "rollback", "--yes")
        rolled_back = canonical(dump(world.nutshell))
        return Journey(world, root, env, _clinic_bodies(clinic_db), cases, outputs, pristine, migrated, ops,
                       quarantine, before, after, rolled_back, passwd)  # fmt: skip
    finally:
        world.stop()


# -- what became of each case -------------------------------------------------------------------------------------


def _outcome(j: Journey, case: str, rid: str) -> tuple[str, str]:
    """("migrated" | "quarantined" | "skipped", what Nutshell holds or why) for the record `rid` of `case`."""
    resource = HOSTILE_CASES[case][0]
    objects = {"patients": ("person",), "individual_appointments": ("appointment",), "invoices": ("person",),
               "treatment_notes": ("treatment_note_activity", "treatment_note", "treatment_note_file"),
               "patient_attachments": ("attachment_activity", "attachment_file")}[resource]  # fmt: skip
    if resource == "invoices":  # invoices add up into the patient's Total Invoiced
        rid = j.clinic["invoices"][rid]["patient"]["links"]["self"].rsplit("/", 1)[1]
    held = [(o, j.quarantine[(o, rid)]) for o in objects if (o, rid) in j.quarantine]
    skipped = [(op.object, op.skip) for op in j.ops if op.source_id == rid and op.object in objects and op.skip]
    done = [op for op in j.ops if op.source_id == rid and op.object in objects and (op.payload or op.file)]
    parts = []
    for op in done:
        if op.file is not None:
            parts.append(f"{op.object} {op.file.name!r} ({op.file.size} bytes)")
        elif op.object == "person":
            p = op.payload or {}
            emails = [e["value"] for e in p.get("emails") or []]
            phones = [e["value"] for e in p.get("phones") or []]
            custom = {
                k: v for k, v in (p.get("customFields") or {}).items() if k in ("Date of Birth", "Total Invoiced")
            }
            lines = [ln for ln in (p.get("description") or "").splitlines() if "in Cliniko" in ln]
            parts.append(f"person name={p.get('name')!r} emails={emails} phones={phones} {custom} {lines}")
        else:
            p = op.payload or {}
            parts.append(f"{op.object} {p.get('name') or ''!r} start={p.get('startTime')} end={p.get('endTime')}"[:300])
    if held:
        return "quarantined", "; ".join(f"{o}: {r}" for o, r in held) + (
            " | migrated: " + "; ".join(parts) if parts else ""
        )
    if skipped and not done:
        return "skipped", "; ".join(f"{o}: {r}" for o, r in skipped)
    return "migrated", "; ".join(parts)


def test_every_hostile_case_is_migrated_or_quarantined_with_a_reason(journey: Journey) -> None:
    rows = []
    for case in HOSTILE_CASES:
        for rid in journey.cases[case]:
            how, what = _outcome(journey, case, rid)
            rows.append({"case": case, "resource": HOSTILE_CASES[case][0], "id": rid, "outcome": how, "detail": what})
    table = os.environ.get("C2N_HOSTILE_TABLE")
    if table:
        with open(table, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    assert len(journey.cases) == len(HOSTILE_CASES) >= 40
    bad = [row for row in rows if row["outcome"] not in ("migrated", "quarantined") or not row["detail"].strip()]
    assert bad == [], "\n".join(map(str, bad))


def test_nutshell_holds_what_the_map_says_once_and_reconcile_balances(journey: Journey) -> None:
    existing = {e["value"].lower() for c in journey.pristine.get("contacts", {}).values() for x in c
                for e in x.get("emails") or []}  # fmt: skip
    linked = {op.source_id for op in journey.ops if op.object == "person" and (op.email or "").lower() in existing}
    written = [op for op in journey.ops if (op.object, op.source_id) not in journey.quarantine]
    problems = check_against_map(written, journey.migrated, linked)
    assert problems == [], "\n".join(problems[:40])
    result = json.loads(journey.outputs["reconcile"].stdout)
    assert result["balanced"] and result["objects"], result
    for name, line in result["objects"].items():
        assert line["missing"] == line["duplicates"] == line["orphans"] == 0, (name, line)
    assert result["missing"] == result["duplicates"] == result["orphans"] == []
    # every quarantined record of the run is in reconcile's quarantine, with its reason
    held = {(q["object"], q["source_id"]): q["reason"] for q in result["quarantine"]}
    assert held == journey.quarantine
    # the rollback leaves Nutshell as it was before the migration
    assert journey.rolled_back == journey.pristine


def _people(j: Journey) -> dict[str, dict[str, Any]]:
    out = {}
    for c in j.migrated["live"]["contacts"]:
        pid = (c.get("custom") or {}).get(PATIENT_ID_FIELD)
        if pid:
            assert pid not in out, f"patient {pid} is in Nutshell twice"
            out[pid] = c
    return out


def _activity(j: Journey, kind: str, rid: str) -> dict[str, Any]:
    found = [a for a in j.migrated["live"]["activities"] if (kind, rid) in markers_in(a.get("description"))]
    assert len(found) == 1, (kind, rid, len(found))
    return found[0]


def test_hostile_patients_hold_their_cliniko_values(journey: Journey) -> None:
    """Checked against Cliniko's own values, not the plan's: names keep every character they had (only spacing
    is tidied), valid e-mails and phone numbers are the person's, invalid ones are in the description, birth
    dates are the custom field's value, invoices add up in Total Invoiced."""
    people = _people(journey)
    patients = journey.clinic["patients"]
    for case, (resource, _what) in HOSTILE_CASES.items():
        if resource != "patients":
            continue
        for pid in journey.cases[case]:
            c, p = people[pid], patients[pid]
            assert "".join(c["name"].split()) == "".join(f"{p['first_name']}{p['last_name']}".split()), case
            email = (p.get("email") or "").strip()
            emails = [e["value"] for e in c.get("emails") or []]
            description = c.get("description") or ""
            if email and is_valid_email(email):
                assert emails == [email], case
            elif email:
                assert emails == [] and f"E-mail in Cliniko (not a valid address): {email}" in description, case
            phones = {e["value"] for e in c.get("phones") or []}
            for ph in p.get("patient_phone_numbers") or []:
                number = str(ph["number"]).strip()
                wanted = ph.get("normalized_number") or number
                assert wanted in phones or f"Phone in Cliniko (not a number): {number}" in description, (case, ph)
            if p.get("date_of_birth"):
                assert (c.get("custom") or {}).get("Date of Birth") == p["date_of_birth"], case
    host = journey.clinic["invoices"][journey.cases["invoice_huge"][0]]["patient"]["links"]["self"].rsplit("/")[-1]
    total = sum(Decimal(str(i["total_amount"])) for i in journey.clinic["invoices"].values()
                if i["patient"]["links"]["self"].endswith(f"/{host}"))  # fmt: skip
    shown = str((people[host].get("custom") or {}).get("Total Invoiced"))
    assert total > Decimal("99999999") and f"{total:.2f}" in shown.replace(",", ""), (total, shown)


def test_hostile_appointments_notes_and_files_hold_their_cliniko_values(journey: Journey) -> None:
    j = journey
    appts = j.clinic["individual_appointments"]
    inverted = appts[j.cases["appt_ends_before_start"][0]]
    a = _activity(j, "appointment", inverted["id"])
    assert a["start"] == _unix(inverted["starts_at"]) and a["end"] > a["start"]
    assert "Ends before it starts in Cliniko" in a["description"]
    zero = appts[j.cases["appt_zero_length"][0]]
    a = _activity(j, "appointment", zero["id"])
    assert a["start"] == a["end"] == _unix(zero["starts_at"])
    assert _activity(j, "appointment", j.cases["appt_deleted_practitioner"][0])["start"]
    assert _activity(j, "appointment", j.cases["appt_archived_type"][0])["name"] == "Retired assessment"
    notes = _activity(j, "appointment", j.cases["appt_hostile_notes"][0])
    assert "<script>alert('hostile')</script>" in notes["description"]  # as text: Nutshell holds what Cliniko did
    for case, (resource, _what) in HOSTILE_CASES.items():
        if resource == "treatment_notes":
            assert _activity(j, "treatment_note_activity", j.cases[case][0])
        if resource != "patient_attachments":
            continue
        att = j.clinic["patient_attachments"][j.cases[case][0]]
        if ("attachment_activity", att["id"]) in j.quarantine:  # held whole (a file over Nutshell's limit)
            assert not [a for a in j.migrated["live"]["activities"]
                        if ("attachment_activity", att["id"]) in markers_in(a.get("description"))], case  # fmt: skip
            continue
        activity = _activity(j, "attachment_activity", att["id"])
        name = nutshell_file_name(att["filename"], att["id"], att["content_type"])
        assert activity["name"] == f"Attachment: {name}", case
        if att["filename"] and att["filename"] != name:
            assert f"File name in Cliniko: {att['filename']}" in activity["description"], case
        files = [f for f in j.migrated["live"]["files"] if f.get("note") == activity.get("log_note")]
        if ("attachment_file", att["id"]) in j.quarantine:
            assert files == [], case
        else:
            assert [(f["name"], f["size"]) for f in files] == [(name, int(att["size"]))], case


def _unix(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


def _files(root: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)


def test_reports_escape_everything_and_csv_cells_start_no_formula(journey: Journey) -> None:
    project = journey.world.project
    pages = _files(project, ".html")
    kinds = {p.name.split("-")[0] for p in pages if p.parent.name == "reports"}
    assert {"preflight", "sample", "run", "reconcile", "rollback"} <= kinds, kinds
    for page in pages:  # the reports, and the treatment notes rendered for Nutshell
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<img" not in text.lower() and "<iframe" not in text.lower(), page
    escaped = [p.name for p in pages if "&lt;script" in p.read_text(encoding="utf-8")]
    assert any(n.startswith("sample-diff") for n in escaped) and any(n.startswith("treatment-note") for n in escaped)
    sheets = _files(project, ".csv")
    assert any(p.name == "audit.csv" for p in sheets) and len(sheets) >= 5, sheets
    neutralised = 0
    for sheet in sheets:
        with sheet.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    assert not cell.startswith(FORMULA_STARTS), (sheet.name, cell[:80])
                    neutralised += cell.startswith(("'=", "'+", "'-", "'@"))
    assert neutralised, "the hostile names and values reach some CSV, neutralised"


def test_no_file_lands_outside_the_project_files_folder_and_stored_names_are_windows_safe(journey: Journey) -> None:
    j = journey
    new = j.tree_after - j.tree_before
    outside = {p for p in new if not p.startswith("project/") and not p.startswith("clinic.db-")}
    assert outside == set()
    hostile_names = {"x", "passwd", "hosts", "CON", "NUL.txt", "evil.pdf"}
    assert not {p for p in j.tree_after if Path(p).name in hostile_names}
    assert not Path("/x").exists() and not (j.root / "x").exists()
    assert j.passwd_mtime == Path("/etc/passwd").stat().st_mtime
    stored = [p for p in (j.world.project / "files").rglob("*") if p.is_file()]
    assert stored
    for path in stored:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,120}", path.name), path
        assert path.name.split(".")[0].upper() not in WINDOWS_RESERVED, path


def test_logs_name_no_patient(journey: Journey) -> None:
    logs = [p for p in journey.world.project.rglob("*.log") if p.is_file()]
    assert logs
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    text += "\n".join(done.stderr for done in journey.outputs.values())  # what the commands printed as they went
    hostile = {journey.cases[c][0] for c, (r, _) in HOSTILE_CASES.items() if r == "patients"}
    for pid, p in journey.clinic["patients"].items():
        names = [p["first_name"].strip(), p["last_name"].strip()] if pid in hostile else [p["label"]]
        for name in names:
            if len(name) >= 4:
                assert name not in text, (pid, name)
