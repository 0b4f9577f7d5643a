"""The migration end to end over real HTTP: Cliniko sandbox -> extraction -> map -> engine -> Nutshell sandbox.

Every check reads the Nutshell sandbox's state dump, never our journal: records are recognised by their
markers (people by the Cliniko Patient ID custom field) and compared field by field with what the map says.
Kill-and-resume tests run the engine in a subprocess that SIGKILLs itself at a chosen point
(CLINIKO2NUTSHELL_TEST_KILL) and compare the final state with an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cliniko2nutshell.cliniko.client import ClinikoClient
from cliniko2nutshell.cliniko.extract import extract
from cliniko2nutshell.engine.api import Engine, RunOptions, SampleOptions
from cliniko2nutshell.engine.journal import Outcome
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD, markers_in
from cliniko2nutshell.engine.ops import PHASES, Op, RecordRef
from cliniko2nutshell.engine.rollback import RollbackScope, ScopeKind, Step
from cliniko2nutshell.engine.runner import KILL_ENV
from cliniko2nutshell.mapping.field_types import accept_type_fixes
from cliniko2nutshell.mapping.mapfile import save_map
from cliniko2nutshell.mapping.model import PractitionerChoice, PractitionerDecision
from cliniko2nutshell.mapping.snapshot import NutshellSnapshot
from cliniko2nutshell.mapping.workflow import propose_map
from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.project import create_project, open_project
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.cliniko_app import start_cliniko_sandbox
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
API_USER = "1-users"  # the sandbox numbers the API user first: the fallback owner


# -- a project extracted once per clinic ---------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    project: Path  # extracted, mapped, closed: tests copy it
    clinic: Path  # a pristine copy of the clinic the extraction read (a delta serves a copy of it)
    seed: dict[str, Any]


def _make_template(root: Path, clinic_db: Path) -> Template:
    clinic = root / "clinic.db"
    shutil.copyfile(clinic_db, clinic)
    conn = cliniko_db.connect(clinic)
    seed = cliniko_db.get_meta_json(conn, "nutshell_seed")
    conn.close()
    pristine = root / "pristine.db"
    shutil.copyfile(clinic, pristine)
    sandbox = start_cliniko_sandbox(clinic, rate_limit=100_000)
    project = create_project("e2e", path=root / "project")
    try:

        async def pull() -> None:
            async with ClinikoClient(sandbox.api_key, base_url=sandbox.base_url, rate_limit=100_000) as client:
                await extract(project, client)

        asyncio.run(pull())
        # The seeded Nutshell has "Total Invoiced" as Text where the map writes Currency: take the proposed fix
        # (the amounts go into it as text, "123.45 AUD"), as `map --accept-suggestions` does.
        mapping = accept_type_fixes(propose_map(project, NutshellSnapshot.from_seed(seed), save=False))
        choices = {
            pid: c if c.decision is PractitionerDecision.MATCHED
            else PractitionerChoice(decision=PractitionerDecision.FALLBACK, label=c.label)
            for pid, c in mapping.practitioners.items()
        }  # fmt: skip
        mapping = mapping.model_copy(update={"practitioners": choices, "fallback_owner": API_USER, "confirmed": True})
        save_map(mapping, project.mapping_path)
    finally:
        project.close()
        sandbox.stop()
    return Template(root / "project", pristine, seed)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, clinic_db: Path) -> Template:
    """The 300-patient clinic, extracted over HTTP."""
    return _make_template(tmp_path_factory.mktemp("big"), clinic_db)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, small_clinic_db: Path) -> Template:
    """The 30-patient clinic, for the tests that run the migration several times."""
    return _make_template(tmp_path_factory.mktemp("small"), small_clinic_db)


def fresh(template: Template, where: Path) -> Path:
    target = where / "project"
    shutil.copytree(template.project, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def start_nutshell(template: Template) -> NutshellSandbox:
    return start_nutshell_sandbox(template.seed)


def dump(ns: NutshellSandbox) -> dict[str, Any]:
    return httpx.get(ns.state_url, timeout=30).json()


def client_for(ns: NutshellSandbox) -> NutshellClient:
    return NutshellClient(ns.username, ns.api_key, ns.rest_url, read_revs=False)


async def run_engine(project_dir: Path, ns: NutshellSandbox, action: str, **kw: Any) -> Any:
    """Open the project, connect, do `action` (full, resume, rollback, delta, fields), close."""
    project = open_project(project_dir, command="e2e")
    try:
        async with client_for(ns) as client:
            engine = await Engine.connect(project, client)
            engine.durable = False  # SIGKILL needs no fsync: the OS keeps what was written
            if action == "fields":
                return await engine.ensure_custom_fields(client)
            if action == "full":
                return await engine.full()
            if action == "resume":
                return await engine.resume()
            if action == "rollback":
                return await engine.rollback(kw.get("scope") or RollbackScope())
            if action == "preview":
                return await engine.rollback_preview(kw.get("scope") or RollbackScope())
            if action == "sample":
                return await engine.sample(kw.get("options") or SampleOptions())
            if action == "reconcile":
                return await engine.reconcile()
            if action == "delta":
                async with ClinikoClient(kw["cliniko"].api_key, base_url=kw["cliniko"].base_url,
                                         rate_limit=100_000) as cliniko:  # fmt: skip
                    return await engine.delta(cliniko, kw.get("options") or RunOptions())
            if action == "plan":
                plan = engine.plan()
                return [op for phase in PHASES for op in plan.ops(phase)]
            raise ValueError(action)
    finally:
        project.close()


def run(project_dir: Path, ns: NutshellSandbox, action: str, **kw: Any) -> Any:
    return asyncio.run(run_engine(project_dir, ns, action, **kw))


def killed_run(project_dir: Path, ns: NutshellSandbox, action: str, kill: str, **extra: str) -> None:
    """Run `action` in a subprocess that SIGKILLs itself at `kill` ("<object>:<n>:<point>")."""
    args = {"project": str(project_dir), "rest_url": ns.rest_url, "username": ns.username, "api_key": ns.api_key,
            "action": action, **extra}  # fmt: skip
    env = {**os.environ, KILL_ENV: kill, "PYTHONPATH": str(REPO)}
    code = "import sys, json; from tests.test_migration_e2e import worker; worker(json.loads(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=env, cwd=REPO, timeout=600,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, f"the worker was not killed at {kill}:\n{proc.stderr[-3000:]}"


def worker(args: dict[str, Any]) -> None:
    """The subprocess side of `killed_run`."""

    @dataclass
    class _Ns:
        rest_url: str
        username: str
        api_key: str

    ns = _Ns(args["rest_url"], args["username"], args["api_key"])
    kw: dict[str, Any] = {}
    if args.get("cliniko_url"):

        @dataclass
        class _Cl:
            base_url: str
            api_key: str

        kw["cliniko"] = _Cl(args["cliniko_url"], args["cliniko_key"])
    asyncio.run(run_engine(Path(args["project"]), ns, args["action"], **kw))  # type: ignore[arg-type]


# -- reading the state dump by markers -------------------------------------------------------------------------


def canonical(state: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The live state keyed by marker instead of id, ids inside replaced by markers, times dropped: two
    migrations of the same clinic compare equal however their ids and timing differ; a duplicate shows up as
    a second entry under its marker."""
    live = state["live"]
    names: dict[tuple[str, int], str] = {}
    for c in live["contacts"]:
        pid = (c.get("custom") or {}).get(PATIENT_ID_FIELD)
        names[("contacts", c["id"])] = f"person:{pid}" if pid else "seed:" + ",".join(sorted(
            e["value"] for e in c.get("emails") or []) or [c.get("name") or ""])  # fmt: skip
    for kind in ("accounts", "activities"):
        for e in live[kind]:
            found = markers_in(e.get("description"))
            names[(kind, e["id"])] = ":".join(found[0]) if found else f"seed:{e.get('name')}"
    for n in live["notes"]:
        found = markers_in(n.get("body"))
        if found:
            names[("notes", n["id"])] = ":".join(found[0])
    for n in live["notes"]:
        if ("notes", n["id"]) not in names:  # a log note: named after its activity
            parent = n.get("parent") or {}
            names[("notes", n["id"])] = "log:" + names.get((parent.get("kind"), parent.get("id")), "?")
    for f in live.get("files", []):
        names[("files", f["id"])] = f"{names.get(('notes', f.get('note')), '?')}/{f['name']}"

    def ref(kind: str, value: Any) -> Any:
        if isinstance(value, dict) and "id" in value:
            kind = value.get("kind", kind)
            return names.get((kind, value["id"]), f"{kind}:{value['id']}")
        return names.get((kind, value), f"{kind}:{value}") if isinstance(value, int) else value

    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind, entities in live.items():
        if kind in ("users", "activityTypes"):
            continue
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in entities:
            body = {k: v for k, v in e.items() if k not in ("id", "created", "logged_time", "log_note", "note")}
            if "participants" in body:
                body["participants"] = sorted(ref("?", p) for p in body["participants"])
            if "accounts" in body:
                body["accounts"] = sorted(ref("accounts", a) for a in body["accounts"])
            if "parent" in body:
                body["parent"] = ref("?", body["parent"])
            if "files" in body and kind == "notes":
                body["files"] = sorted(ref("files", f) for f in body["files"])
            by[names.get((kind, e["id"]), f"{kind}:{e['id']}")].append(body)
        out[kind] = dict(sorted(by.items()))
    return out


def differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Readable differences of two canonical states: which records differ, and in which fields."""
    out = []
    for kind in sorted(set(got) | set(want)):
        g, w = got.get(kind, {}), want.get(kind, {})
        for mark in sorted(set(g) | set(w)):
            a, b = g.get(mark, []), w.get(mark, [])
            if a == b:
                continue
            if len(a) != len(b):
                out.append(f"{kind} {mark}: {len(a)} record(s), expected {len(b)}")
                continue
            for x, y in zip(a, b, strict=True):
                fields = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
                out.append(f"{kind} {mark}: " + "; ".join(f"{f}: {x.get(f)!r} != {y.get(f)!r}" for f in fields))
    return out


def _sendable(value: Any, ids: dict[tuple[str, str], str]) -> Any:
    if isinstance(value, RecordRef):
        return ids.get((value.object, value.source_id), f"(missing {value.object} {value.source_id})")
    if isinstance(value, dict):
        return {k: _sendable(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_sendable(v, ids) for v in value]
    return value


def _participants(payload: dict[str, Any]) -> list[str]:
    return sorted(
        p if p.startswith("person:") else f"users:{p.split('-')[0]}" for p in payload["links"]["participants"]
    )


def check_against_map(ops: list[Op], state: dict[str, Any], linked: set[str]) -> list[str]:
    """Every record the map plans is in Nutshell exactly once, field by field as the map says."""
    can = canonical(state)
    problems: list[str] = []
    kind_of = {"company": "accounts", "business_company": "accounts", "person": "contacts"}
    marker_of = {op.key: (f"person:{op.source_id}" if op.object == "person" else f"{op.object}:{op.source_id}")
                 for op in ops}  # fmt: skip
    for op in ops:
        if op.payload is None and op.file is None:
            continue
        mark = marker_of[op.key]
        if op.file is not None:
            host = marker_of.get((op.host.object, op.host.source_id)) if op.host else None
            files = can.get("files", {}).get(f"log:{host}/{op.file.name}", [])
            if len(files) != 1 or files[0]["size"] != op.file.size or files[0]["sha256"] != op.file.sha256:
                problems.append(f"{mark}: file {op.file.name} found {len(files)} times, {files[:1]}")
            continue
        kind = kind_of.get(op.object) or ("notes" if op.parent is not None else "activities")
        found = can[kind].get(mark, [])
        if len(found) != 1:
            problems.append(f"{mark}: in Nutshell {len(found)} times")
            continue
        got, want = found[0], _sendable(op.payload, marker_of)
        checks: list[tuple[str, Any, Any]] = []
        if kind == "notes":
            checks.append(("body", want["body"], got["body"]))
            checks.append(("parent", marker_of[(op.parent.object, op.parent.source_id)], got["parent"]))
        elif kind == "activities":
            status = 1 if want.get("isLogged") else 0
            checks += [("name", want["name"], got["name"]), ("description", want.get("description"),
                       got.get("description")), ("start", want["startTime"], got["start"]),
                       ("end", want["endTime"], got["end"]), ("status", status, got["status"]),
                       ("type", int(str(want["activityType"]).split("-")[0]), got["type"]),
                       ("location", want.get("location"), got.get("location")),
                       ("participants", _participants(want), got["participants"])]  # fmt: skip
        elif op.source_id in linked:
            checks.append(("Cliniko Patient ID", op.source_id, (got.get("custom") or {}).get(PATIENT_ID_FIELD)))
        else:
            checks += [("name", want["name"], got["name"]), ("description", want.get("description"),
                       got.get("description") or None)]  # fmt: skip
            for field in ("emails", "phones"):
                checks.append((field, [e["value"] for e in want.get(field, [])],
                               [e["value"] for e in got.get(field) or []]))  # fmt: skip
            for name, value in (want.get("customFields") or {}).items():
                stored = (got.get("custom") or {}).get(name)
                if isinstance(stored, dict) and not isinstance(value, dict):
                    stored = stored.get("amount")  # a bare amount sent: compare the amount
                # money is sent with its currency ({"currency": "AUD", "amount": ...}): Nutshell keeps both
                checks.append((f"custom {name}", value, stored))
            if kind == "contacts":
                links = want.get("links") or {}
                checks.append(("accounts", sorted(links.get("accounts") or []), got.get("accounts") or []))
                if links.get("owner"):
                    checks.append(("owner", int(links["owner"].split("-")[0]), got.get("owner")))
        problems += [f"{mark}.{f}: expected {e!r}, Nutshell has {g!r}" for f, e, g in checks if e != g]
    return problems


# -- the tests ---------------------------------------------------------------------------------------------------


def test_full_run_puts_every_record_in_nutshell_as_the_map_says(big: Template, tmp_path: Path) -> None:
    project = fresh(big, tmp_path)
    ns = start_nutshell(big)
    try:
        run(project, ns, "fields")
        before = dump(ns)
        existing = {e for c in before["live"]["contacts"] for e in (x["value"].lower() for x in c["emails"])}
        summary = run(project, ns, "full")
        assert summary.status.value == "finished" and summary.outcome is not Outcome.FAILURE
        after = dump(ns)
        ops = run(project, ns, "plan")
        linked = {op.source_id for op in ops if op.object == "person" and (op.email or "").lower() in existing}
        assert linked, "the clinic plants patients whose e-mail a Nutshell person already has"
        problems = check_against_map(ops, after, linked)
        assert problems == [], "\n".join(problems[:40])
        # nothing we did not plan carries our markers; the people already there are still there
        can = canonical(after)
        planned = {f"person:{op.source_id}" if op.object == "person" else f"{op.object}:{op.source_id}"
                   for op in ops if op.payload is not None}  # fmt: skip
        ours = {m for kind in ("contacts", "accounts", "activities") for m in can[kind] if not m.startswith("seed:")}
        assert ours <= planned
        assert len(after["live"]["contacts"]) == len(before["live"]["contacts"]) + len(
            {op.source_id for op in ops if op.object == "person" and op.payload is not None} - linked
        )
        # a second run changes nothing
        again = run(project, ns, "full")
        assert again.writes == 0
        assert dump(ns)["live"] == after["live"]
    finally:
        ns.stop()


@pytest.fixture(scope="module")
def reference(small: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The small clinic migrated without interruption: what every interrupted migration must end as."""
    project = fresh(small, tmp_path_factory.mktemp("reference"))
    ns = start_nutshell(small)
    try:
        run(project, ns, "fields")
        run(project, ns, "full")
        return canonical(dump(ns))
    finally:
        ns.stop()


@pytest.mark.parametrize(
    "kill",
    [
        "person:4:sent",  # people: created in Nutshell, the outcome not journaled
        "appointment:25:intent",  # activities: journaled, not sent
        "attachment_file:3:sent",  # files: uploaded, not journaled
    ],
)
def test_killed_full_run_resumes_to_the_same_state(kill: str, small: Template, reference: dict, tmp_path: Path) -> None:
    project = fresh(small, tmp_path)
    ns = start_nutshell(small)
    try:
        run(project, ns, "fields")
        killed_run(project, ns, "full", kill)
        summary = run(project, ns, "resume")
        assert summary.status.value == "finished"
        assert differences(canonical(dump(ns)), reference) == []
        assert run(project, ns, "reconcile").reconciliation.balanced
    finally:
        ns.stop()


def _cliniko_changes(sandbox: Any, store_project: Path) -> dict[str, str]:
    """Changes made in Cliniko after the full run: a patient edited, an appointment booked, one cancelled."""
    project = open_project(store_project, write=False)
    try:
        patients = [r for r in project.store.iter_records("patients") if not r.get("archived_at")]
        appointments = [r for r in project.store.iter_records("individual_appointments")
                        if not r.get("cancelled_at") and not r.get("archived_at")]  # fmt: skip
    finally:
        project.close()
    edited, booked_for = patients[3], patients[4]
    cancel = next(a for a in appointments if a["starts_at"] < "2026-01-01")
    template = next(a for a in appointments if a["starts_at"] < "2026-01-01" and a is not cancel)
    headers = {"User-Agent": "e2e (e2e@example.org)", "Accept": "application/json"}
    with httpx.Client(base_url=sandbox.base_url, auth=(sandbox.api_key, ""), headers=headers, timeout=30) as http:
        http.patch(f"/patients/{edited['id']}", json={"occupation": "Lighthouse keeper"}).raise_for_status()
        made = http.post("/individual_appointments", json={
            "patient_id": booked_for["id"],
            "practitioner_id": template["practitioner"]["links"]["self"].rsplit("/", 1)[1],
            "appointment_type_id": template["appointment_type"]["links"]["self"].rsplit("/", 1)[1],
            "business_id": template["business"]["links"]["self"].rsplit("/", 1)[1],
            "starts_at": "2025-06-02T01:00:00Z", "ends_at": "2025-06-02T01:30:00Z"})  # fmt: skip
        made.raise_for_status()
        http.patch(f"/individual_appointments/{cancel['id']}/cancel",
                   json={"cancellation_reason": 10, "cancellation_note": "Unwell"}).raise_for_status()  # fmt: skip
    return {"edited": edited["id"], "booked": made.json()["id"], "cancelled": cancel["id"], "spare": patients[5]["id"]}


def test_delta_brings_cliniko_changes_and_keeps_nutshell_edits_then_rollback_restores(
    small: Template, tmp_path: Path
) -> None:
    project = fresh(small, tmp_path)
    clinic = tmp_path / "clinic.db"
    shutil.copyfile(small.clinic, clinic)
    cliniko = start_cliniko_sandbox(clinic, rate_limit=100_000)
    ns = start_nutshell(small)
    try:
        pristine = dump(ns)
        run(project, ns, "fields")
        run(project, ns, "full")
        changes = _cliniko_changes(cliniko, project)
        # someone edits a person in Nutshell meanwhile; the same patient changes in Cliniko
        target = f"person:{changes['spare']}"
        state = dump(ns)
        theirs = next(c["id"] for c in state["live"]["contacts"]
                      if (c.get("custom") or {}).get(PATIENT_ID_FIELD) == target.split(":")[1])  # fmt: skip

        async def edit() -> None:
            async with client_for(ns) as client:
                await client.update_person(f"{theirs}-contacts", {"description": "Edited by the front desk"})

        asyncio.run(edit())
        # the same patient changes in Cliniko too: a conflict, skipped under the default policy
        headers = {"User-Agent": "e2e (e2e@example.org)", "Accept": "application/json"}
        httpx.patch(f"{cliniko.base_url}/patients/{target.split(':')[1]}", json={"occupation": "Sculptor"},
                    auth=(cliniko.api_key, ""), headers=headers, timeout=30).raise_for_status()  # fmt: skip
        result = run(project, ns, "delta", cliniko=cliniko)
        assert result.outcome is Outcome.PARTIAL  # the conflict is reported
        after = canonical(dump(ns))
        assert "Occupation: Lighthouse keeper" in after["contacts"][f"person:{changes['edited']}"][0]["description"]
        assert len(after["activities"][f"appointment:{changes['booked']}"]) == 1
        assert after["activities"][f"appointment:{changes['cancelled']}"][0]["name"].startswith("Cancelled")
        assert after["contacts"][target][0]["description"] == "Edited by the front desk"
        assert result.summary.conflicts == 1
        # the delta is repeatable: nothing new, nothing written
        again = run(project, ns, "delta", cliniko=cliniko)
        assert again.summary.writes == 0

        # rollback everything: back to the pre-migration state, apart from what the preview said it leaves
        preview = run(project, ns, "preview")
        skipped = {i.source_id for i in preview.edited_since}
        assert skipped == {target.split(":")[1]}
        assert any("custom field" in c for c in preview.cannot_undo)
        assert not [i for i in preview.items if i.step is Step.KEEP]
        undo = run(project, ns, "rollback")
        assert undo.outcome is Outcome.PARTIAL and undo.verification.ok
        left = canonical(dump(ns))
        expected = canonical(pristine)
        for kind in expected:
            extra = {m for m in left[kind] if m not in expected[kind]}
            assert extra <= {target}, (kind, extra)
            assert {m: v for m, v in left[kind].items() if m != target} == expected[kind], kind
    finally:
        ns.stop()
        cliniko.stop()


@pytest.mark.parametrize("kill", ["person:1:sent"])  # the edited patient's update sent, not journaled
def test_killed_delta_resumes(kill: str, small: Template, tmp_path: Path) -> None:
    project = fresh(small, tmp_path)
    clinic = tmp_path / "clinic.db"
    shutil.copyfile(small.clinic, clinic)
    cliniko = start_cliniko_sandbox(clinic, rate_limit=100_000)
    ns = start_nutshell(small)
    try:
        run(project, ns, "fields")
        run(project, ns, "full")
        changes = _cliniko_changes(cliniko, project)
        killed_run(project, ns, "delta", kill, cliniko_url=cliniko.base_url, cliniko_key=cliniko.api_key)
        run(project, ns, "resume")
        after = canonical(dump(ns))
        assert "Occupation: Lighthouse keeper" in after["contacts"][f"person:{changes['edited']}"][0]["description"]
        assert len(after["activities"][f"appointment:{changes['booked']}"]) == 1
        rec = run(project, ns, "reconcile").reconciliation
        assert rec.balanced and not rec.duplicates and not rec.orphans
    finally:
        ns.stop()
        cliniko.stop()


@pytest.mark.parametrize("kill", ["appointment:30:sent"])  # deleted in Nutshell, not journaled
def test_killed_rollback_resumes_to_the_pre_migration_state(kill: str, small: Template, tmp_path: Path) -> None:
    project = fresh(small, tmp_path)
    ns = start_nutshell(small)
    try:
        pristine = canonical(dump(ns))
        run(project, ns, "fields")
        run(project, ns, "full")
        killed_run(project, ns, "rollback", kill)
        summary = run(project, ns, "resume")
        assert summary.status.value == "finished" and summary.outcome is Outcome.SUCCESS
        assert differences(canonical(dump(ns)), pristine) == []
    finally:
        ns.stop()


def test_sample_reads_every_record_back_and_can_be_undone(small: Template, tmp_path: Path) -> None:
    project = fresh(small, tmp_path)
    ns = start_nutshell(small)
    try:
        pristine = canonical(dump(ns))
        run(project, ns, "fields")
        result = run(project, ns, "sample")
        counts = result.diff.counts()
        assert counts["match"] > 500 and counts["transformed"] > 50
        # what is not as the map says: the people we linked to keep their own values; uploads Cliniko never
        # finished processing cannot be migrated (reported with the reason)
        for row in result.diff.problems:
            assert row.note, row
        assert {Path(p).suffix for p in result.reports} == {".csv", ".html"}
        undone = run(project, ns, "rollback", scope=RollbackScope(ScopeKind.RUN, result.summary.run_id))
        assert undone.outcome is Outcome.SUCCESS and undone.verification.ok
        assert differences(canonical(dump(ns)), pristine) == []
    finally:
        ns.stop()
