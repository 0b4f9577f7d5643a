"""The synthetic clinic generator: determinism, completeness, the planted hard cases, OAS23 validity, fk, blobs.

Most checks read a generated file back with plain SQL and json, independently of the generator's own bookkeeping:
a hard case listed in `meta.hard_cases` must really have its property in the stored body, and (where the
property is checkable) every record that has the property must be listed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cliniko2nutshell.sandbox import clinic as clinic_module
from cliniko2nutshell.sandbox import cliniko_db
from cliniko2nutshell.sandbox.clinic import HARD_CASE_RESOURCES, _Sink, generate_clinic
from cliniko2nutshell.sandbox.nutshell_seed import validate_seed

SPEC = Path(__file__).resolve().parent.parent.parent / "shared" / "specs" / "cliniko-openapi.json"
LOCAL_BASE = "http://127.0.0.1:9/v1"

RESOURCES = (
    "patients",
    "practitioners",
    "users",
    "businesses",
    "appointment_types",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "invoices",
    "invoice_items",
    "billable_items",
    "products",
    "taxes",
    "contacts",
    "concession_types",
    "referral_sources",
    "medical_alerts",
    "communications",
    "patient_attachments",
    "treatment_notes",
    "treatment_note_templates",
    "unavailable_blocks",
    "patient_cases",
)
SCHEMA_OF = {
    "patients": "Patient",
    "practitioners": "Practitioner",
    "users": "User",
    "businesses": "Business",
    "appointment_types": "AppointmentType",
    "individual_appointments": "IndividualAppointment",
    "group_appointments": "GroupAppointment",
    "attendees": "Attendee",
    "invoices": "Invoice",
    "invoice_items": "InvoiceItem",
    "billable_items": "BillableItem",
    "products": "Product",
    "taxes": "Tax",
    "contacts": "Contact",
    "concession_types": "ConcessionType",
    "referral_sources": "ReferralSource",
    "medical_alerts": "MedicalAlert",
    "communications": "Communication",
    "patient_attachments": "PatientAttachment",
    "treatment_notes": "TreatmentNote",
    "treatment_note_templates": "TreatmentNoteTemplate",
    "unavailable_blocks": "UnavailableBlock",
    "patient_cases": "PatientCase",
}
REQUIRED_HARD_CASES = (
    "archived_patients",
    "merged_patients",
    "unicode_names",
    "rtl_names",
    "missing_first_name",
    "missing_email",
    "invalid_emails",
    "duplicate_emails",
    "long_notes",
    "large_files",
    "inactive_practitioners",
    "practitioner_email_mismatch",
    "practitioner_no_user",
    "nutshell_email_collisions",
    "archived_appointments",
    "cancelled_appointments",
    "no_show_appointments",
    "group_appointments",
    "draft_treatment_notes",
)
# Links whose target the sandbox does not store as records: bookings are derived from appointments and blocks,
# `appointments/{id}` is the legacy alias of a booking, and Cliniko has no payments or referral source type
# resources in our list.
DERIVED_TARGETS = {"bookings", "appointments", "payments", "referral_source_types"}
ARRAY_FK = {"patient_ids", "appointment_type_ids", "attendee_ids"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
LINK = re.compile(r"^\{\{base\}\}/([a-z_]+)/(\d+)$")
RTL = re.compile(r"[\u0590-\u05ff\u0600-\u06ff]")


class Clinic:
    """A generated file read back: bodies (links under {{base}}), row columns, meta, singletons, blobs."""

    def __init__(self, path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        self.rows: dict[str, list[sqlite3.Row]] = {}
        self.bodies: dict[str, dict[str, dict[str, Any]]] = {}
        for row in conn.execute("SELECT * FROM records ORDER BY seq"):
            self.rows.setdefault(row["resource"], []).append(row)
            self.bodies.setdefault(row["resource"], {})[row["id"]] = json.loads(row["body"])
        self.meta = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}
        self.singletons = {r["name"]: json.loads(r["body"]) for r in conn.execute("SELECT name, body FROM singletons")}
        self.blobs = {r["attachment_id"]: dict(r) for r in conn.execute("SELECT * FROM blobs")}
        self.hard: dict[str, list[str]] = json.loads(self.meta["hard_cases"])
        self.seed: dict[str, Any] = json.loads(self.meta["nutshell_seed"])
        self.journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        self.objects = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        conn.close()

    def body(self, resource: str, rid: str) -> dict[str, Any]:
        return self.bodies[resource][rid]

    def all_bodies(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for resource, bodies in self.bodies.items():
            for body in bodies.values():
                yield resource, body


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    path = tmp_path_factory.mktemp("tiny") / "clinic-10.db"
    generate_clinic(path, 10, seed=11)
    return Clinic(path)


@pytest.fixture(scope="module")
def clinic(clinic_db: Path) -> Clinic:
    return Clinic(clinic_db)


@pytest.fixture(params=["tiny", "clinic"])
def any_clinic(request: pytest.FixtureRequest) -> Clinic:
    return request.getfixturevalue(request.param)


def _link_id(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and set(value) == {"links"}:
        m = LINK.match(value["links"]["self"])
        if m:
            return m.group(1), m.group(2)
    return None


def _strictly_valid_email(email: str) -> bool:
    """Deliverable-looking: dot-atom local part, domain labels without edge hyphens, an alphabetic TLD."""
    local, _, domain = email.partition("@")
    if not local or not domain or "@" in domain:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not labels[-1].isalpha() or len(labels[-1]) < 2:
        return False
    return all(lab and not lab.startswith("-") and not lab.endswith("-") for lab in labels)


# --- determinism and shape of the file --------------------------------------------------------------------------


def _dump(path: Path) -> tuple[list[tuple[Any, ...]], ...]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("SELECT * FROM records ORDER BY seq").fetchall(),
            conn.execute("SELECT * FROM meta ORDER BY key").fetchall(),
            conn.execute("SELECT * FROM singletons ORDER BY name").fetchall(),
            conn.execute("SELECT * FROM blobs ORDER BY attachment_id").fetchall(),
        )
    finally:
        conn.close()


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    generate_clinic(a, 40, seed=5)
    # another process with another string-hash seed: nothing may depend on set or dict-hash order
    code = "import sys; from pathlib import Path; from cliniko2nutshell.sandbox.clinic import generate_clinic; "
    code += "generate_clinic(Path(sys.argv[1]), 40, seed=5)"
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code, str(b)], check=True, env=env, cwd=Path(__file__).parent.parent)
    generate_clinic(c, 40, seed=6)
    dump_a, dump_b, dump_c = _dump(a), _dump(b), _dump(c)
    assert dump_a == dump_b
    bodies_a = {r[9] for r in dump_a[0]}
    bodies_c = {r[9] for r in dump_c[0]}
    assert len(bodies_a & bodies_c) < len(bodies_a) // 10  # a few catalogue rows may coincide, patients do not
    assert dict(dump_a[1])["api_key"] != dict(dump_c[1])["api_key"]


def _digest(path: Path) -> str:
    """sha256 of every row the file holds, in a stable order."""
    digest = hashlib.sha256()
    for table in _dump(path):
        for row in table:
            digest.update(json.dumps(list(row), ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


# The generator's exact output, pinned: a refactoring must leave these unchanged. A deliberate change of the
# output updates them together with GENERATOR_VERSION (run.py caches clinics by that version).
PINNED_DIGESTS = {
    (40, 5, "au2"): ("3", "a3a2852ec5c47e49b96987ae474a2723bb9d8c83409d78aabf067e10e736e0f4"),
    (12, 2, "uk1"): ("3", "d96c051b637f77a08947775040bf8fceb00c168e555482b2a44dc145768a7dc3"),
}


@pytest.mark.parametrize(("size", "seed", "shard"), sorted(PINNED_DIGESTS))
def test_the_output_is_pinned_byte_for_byte(tmp_path: Path, size: int, seed: int, shard: str) -> None:
    version, expected = PINNED_DIGESTS[(size, seed, shard)]
    generate_clinic(tmp_path / "pinned.db", size, seed=seed, shard=shard)
    assert (clinic_module.GENERATOR_VERSION, _digest(tmp_path / "pinned.db")) == (version, expected)


def test_summary_matches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    summary = generate_clinic(path, 12, seed=2, shard="uk1")
    clinic = Clinic(path)
    assert summary.counts == {r: len(rows) for r, rows in sorted(clinic.rows.items())}
    assert summary.hard_cases == clinic.hard
    assert summary.api_key == clinic.meta["api_key"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{20,}-uk1", summary.api_key)
    assert clinic.meta["shard"] == "uk1"


def test_file_has_the_shared_schema_and_is_left_in_wal_mode(tiny: Clinic, tmp_path: Path) -> None:
    assert tiny.journal_mode == "wal"
    fresh = cliniko_db.connect(tmp_path / "fresh.db")
    expected = {r[0] for r in fresh.execute("SELECT name FROM sqlite_master")}
    fresh.close()
    assert tiny.objects == expected  # every table and index of cliniko_db.SCHEMA, nothing else


def test_bad_input_is_refused_and_loses_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        generate_clinic(existing, 10)
    assert existing.read_bytes() == b"precious"
    for kwargs in ({"patients": 9}, {"patients": 100_001}, {"patients": 10, "shard": "AU-2"}):
        with pytest.raises(ValueError):
            generate_clinic(tmp_path / "new.db", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_time"):
        generate_clinic(tmp_path / "new.db", 10, reference_time="yesterday")
    assert not (tmp_path / "new.db").exists()


def test_the_sink_hands_over_full_batches_in_order_and_the_rest_on_close() -> None:
    batches: list[tuple[str, list[tuple[Any, ...]]]] = []
    sink = _Sink(lambda sql, rows: batches.append((sql, rows)), batch=10)
    for i in range(25):
        sink.record("patients", str(i), "t", "t", None, None, None, "{}", "{}")
    sink.add("INSERT INTO meta (key, value) VALUES (?, ?)", ("k", "v"))
    assert [len(rows) for _, rows in batches] == [10, 10]
    sink.close()
    assert [len(rows) for _, rows in batches] == [10, 10, 5, 1]
    assert [row[1] for _, rows in batches[:3] for row in rows] == [str(i) for i in range(25)]
    assert batches[3] == ("INSERT INTO meta (key, value) VALUES (?, ?)", [("k", "v")])
    assert sink.counts == {"patients": 25}


def test_the_generator_process_writes_what_the_in_process_generator_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = generate_clinic(tmp_path / "here.db", 40, seed=5)
    monkeypatch.setattr(clinic_module, "_PROCESS_MIN_PATIENTS", 10)  # large clinics are built in a child process
    child = generate_clinic(tmp_path / "child.db", 40, seed=5)
    assert _dump(tmp_path / "here.db") == _dump(tmp_path / "child.db")
    assert (here.counts, here.hard_cases, here.api_key) == (child.counts, child.hard_cases, child.api_key)


@pytest.mark.parametrize(
    ("child_code", "error", "message"),
    [
        ("raise SystemExit(3)", RuntimeError, "died .exit code 3"),  # dies without a word
        (  # fails while generating: its traceback reaches the caller
            "from cliniko2nutshell.sandbox import clinic; clinic._Generator._write_meta = None; clinic._produce()",
            RuntimeError,
            "failed:.*TypeError",
        ),
        (  # an insert fails here: the child is stopped
            "from cliniko2nutshell.sandbox import clinic; clinic._INSERT_RECORD = 'INSERT INTO nowhere VALUES (?)';"
            " clinic._produce()",
            sqlite3.OperationalError,
            "nowhere",
        ),
    ],
)
def test_a_failing_generator_process_reaches_the_caller_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child_code: str, error: type[Exception], message: str
) -> None:
    monkeypatch.setattr(clinic_module, "_PROCESS_MIN_PATIENTS", 10)
    monkeypatch.setattr(clinic_module, "_CHILD_CODE", child_code)
    with pytest.raises(error, match=re.compile(message, re.S)):
        generate_clinic(tmp_path / "broken.db", 10, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_generation_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(clinic_module._Generator, "_write_meta", explode)
    target = tmp_path / "half.db"
    with pytest.raises(RuntimeError, match="boom"):
        generate_clinic(target, 10)
    assert list(tmp_path.iterdir()) == []


def test_meta_describes_the_clinic(any_clinic: Clinic) -> None:
    meta = any_clinic.meta
    assert set(meta) >= {
        "seed",
        "patients",
        "shard",
        "api_key",
        "generator_version",
        "reference_time",
        "hard_cases",
        "nutshell_seed",
    }
    assert int(meta["patients"]) == len(any_clinic.rows["patients"])
    assert meta["api_key"].endswith("-" + meta["shard"])
    assert TIMESTAMP.match(meta["reference_time"])


# --- completeness and validity -----------------------------------------------------------------------------------


def test_every_resource_is_present_and_no_bookings_are_stored(any_clinic: Clinic) -> None:
    assert set(any_clinic.rows) == set(RESOURCES)
    for resource in RESOURCES:
        assert any_clinic.rows[resource], resource


def test_ids_are_unique_int64_strings_mixing_legacy_and_large_and_unordered(clinic: Clinic) -> None:
    ids = [row["id"] for rows in clinic.rows.values() for row in rows]
    assert len(ids) == len(set(ids))
    assert all(i.isdigit() and int(i) < 2**63 for i in ids)
    legacy = sum(int(i) < 10**8 for i in ids) / len(ids)
    assert 0.03 < legacy < 0.3, legacy
    assert all(int(i) < 10**8 or int(i) > 7 * 10**17 for i in ids)
    for resource in ("patients", "individual_appointments", "invoices"):
        rows = sorted(clinic.rows[resource], key=lambda r: (r["created_at"], r["seq"]))
        by_time = [int(r["id"]) for r in rows]
        assert by_time != sorted(by_time), resource


def test_bodies_match_their_row_and_conventions(any_clinic: Clinic) -> None:
    for resource, rows in any_clinic.rows.items():
        for row in rows:
            body = any_clinic.body(resource, row["id"])
            assert body["id"] == row["id"]
            assert body["created_at"] == row["created_at"] and body["updated_at"] == row["updated_at"]
            assert row["created_at"] <= row["updated_at"], (resource, row["id"])
            for col in ("archived_at", "cancelled_at", "deleted_at"):
                assert body.get(col) == row[col], (resource, row["id"], col)
            for key, value in body.items():
                if key.endswith("_at") and value is not None:
                    assert TIMESTAMP.match(value), (resource, key, value)
            if resource == "referral_sources":
                assert (
                    body["links"]["self"]
                    == f"{cliniko_db.BASE}/patients/{json.loads(row['fk'])['patient_id']}/referral_source"
                )
            else:
                assert body["links"]["self"] == f"{cliniko_db.BASE}/{resource}/{row['id']}"


def test_fk_holds_exactly_the_to_one_links(any_clinic: Clinic) -> None:
    ids = {rid for rows in any_clinic.rows.values() for rid in (r["id"] for r in rows)}
    booking_ids = {
        r["id"]
        for res in ("individual_appointments", "group_appointments", "unavailable_blocks")
        for r in any_clinic.rows[res]
    }
    for resource, rows in any_clinic.rows.items():
        for row in rows:
            body = any_clinic.body(resource, row["id"])
            fk = json.loads(row["fk"])
            expected: dict[str, Any] = {}
            for key, value in body.items():
                target = _link_id(value)
                if target and key != "links":
                    expected[f"{key}_id"] = target[1]
                    plural, rid = target
                    if plural == "bookings" or plural == "appointments":
                        assert rid in booking_ids, (resource, key)
                    elif plural not in DERIVED_TARGETS:
                        assert rid in any_clinic.bodies[plural], (resource, key, rid)
            scalar_fk = {k: v for k, v in fk.items() if k not in ARRAY_FK}
            if resource == "attendees":
                assert scalar_fk.pop("appointment_id") == fk["booking_id"]
            assert scalar_fk == expected, (resource, row["id"])
            for key in ARRAY_FK & set(fk):
                assert all(i in ids for i in fk[key])
            if "patient_ids" in body:
                assert fk["patient_ids"] == body["patient_ids"]
            if "appointment_type_ids" in body:
                assert fk["appointment_type_ids"] == body["appointment_type_ids"]
            if resource == "patient_cases":
                assert fk["attendee_ids"] == body["attendee_ids"]


# --- OAS23 -------------------------------------------------------------------------------------------------------


def _patched_schemas() -> dict[str, Any]:
    """OAS23's schemas with the two known spec bugs fixed where they are, as the contract tests do.

    - the e-mail patterns are upper case only (meant case-insensitively);
    - `nullable: true` enums do not list null (OAS 3.0.3 wants it listed; the authors meant null allowed).
    """
    schemas = copy.deepcopy(json.loads(SPEC.read_text())["components"]["schemas"])
    upper = r"^[A-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Z0-9.-]+\.[A-Z]{2,63}$"

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("pattern") == upper:
                node["pattern"] = upper.replace("A-Z", "A-Za-z")
            if node.get("nullable") is True and "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(schemas)

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(schemas[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {name: inline(schema) for name, schema in schemas.items()}


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    if not SPEC.is_file():
        pytest.skip(f"Cliniko's OpenAPI document is not here ({SPEC})")
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    schemas = _patched_schemas()
    return {name: OAS30Validator(schema, format_checker=oas30_format_checker) for name, schema in schemas.items()}


def _errors(validator: Any, body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in validator.iter_errors(body)]


def test_every_body_validates_against_oas23(any_clinic: Clinic, validators: dict[str, Any]) -> None:
    validated: Counter[str] = Counter()
    for resource, body in any_clinic.all_bodies():
        served = json.loads(json.dumps(body).replace(cliniko_db.BASE, LOCAL_BASE))
        errors = _errors(validators[SCHEMA_OF[resource]], served)
        assert not errors, (resource, body["id"], errors[:5])
        validated[resource] += 1
    assert set(validated) == set(RESOURCES)
    for name, schema in (("settings", "Settings"), ("public_settings", "PublicSettings")):
        assert not _errors(validators[schema], any_clinic.singletons[name])


def test_bodies_carry_every_field_of_their_schema(clinic: Clinic, validators: dict[str, Any]) -> None:
    """Every OAS23 property appears, except to-one links that are absent (omitted: OAS23 forbids null there)."""
    for resource, schema_name in SCHEMA_OF.items():
        schema = validators[schema_name].schema
        props: set[str] = set()
        for alternative in schema.get("anyOf", [schema]):
            props |= set(alternative["properties"])
        seen = set().union(*(set(b) for b in clinic.bodies[resource].values()))
        missing = props - seen
        link_like = {
            p
            for alternative in schema.get("anyOf", [schema])
            for p, s in alternative["properties"].items()
            if set(s.get("properties", {})) == {"links"}
        }
        assert missing <= link_like, (resource, missing - link_like)
        assert seen - props <= {"description", "time_zone"}, (resource, seen - props)


# --- the hard cases ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "clinic"])
def test_every_hard_case_is_planted_and_true(name: str, request: pytest.FixtureRequest) -> None:
    c: Clinic = request.getfixturevalue(name)
    hard = c.hard
    for key in REQUIRED_HARD_CASES:
        assert hard.get(key), f"{name}: no {key}"
    for key, ids in hard.items():
        resources = HARD_CASE_RESOURCES[key]
        for rid in ids:
            assert any(rid in c.bodies[r] for r in resources), (key, rid)

    patients = c.bodies["patients"]
    for pid in hard["archived_patients"]:
        assert patients[pid]["archived_at"] and patients[pid]["merged_at"] is None
    for pid in hard["merged_patients"]:
        p = patients[pid]
        assert p["archived_at"] and p["merged_at"]
        survivor = _link_id(p["merged_with_patient"])
        assert survivor and survivor[1] in patients and patients[survivor[1]]["archived_at"] is None
        assert any(
            b["patient"]["links"]["self"].endswith(f"/patients/{pid}")
            for b in c.bodies["individual_appointments"].values()
        ) or any(  # a merged patient's history still points at them
            b["patient"]["links"]["self"].endswith(f"/patients/{pid}") for b in c.bodies["attendees"].values()
        )
    for pid in hard["unicode_names"]:
        assert not (patients[pid]["first_name"] + patients[pid]["last_name"]).isascii()
    for pid in hard["rtl_names"]:
        assert RTL.search(patients[pid]["first_name"] + patients[pid]["last_name"])
    for pid in hard["missing_first_name"]:
        assert patients[pid]["first_name"] == "" and patients[pid]["label"] == patients[pid]["last_name"]
    for pid in hard["missing_email"]:
        assert patients[pid]["email"] is None
    for pid in hard["invalid_emails"]:
        assert not _strictly_valid_email(patients[pid]["email"])
    dup = Counter(patients[pid]["email"] for pid in hard["duplicate_emails"])
    assert all(n >= 2 for n in dup.values())
    notes = c.bodies["treatment_notes"]
    for rid in hard["long_notes"]:
        text = patients[rid]["notes"] if rid in patients else json.dumps(notes[rid]["content"], ensure_ascii=False)
        assert len(text) > 20_000
    assert any(r in patients for r in hard["long_notes"]) and any(r in notes for r in hard["long_notes"])
    for aid in hard["large_files"]:
        assert c.body("patient_attachments", aid)["size"] >= 3 * 2**20
    practitioners = c.bodies["practitioners"]
    for pid in hard["inactive_practitioners"]:
        assert practitioners[pid]["active"] is False
    for aid in hard["archived_appointments"]:
        assert c.body("individual_appointments", aid)["archived_at"]
    for aid in hard["cancelled_appointments"]:
        appt = c.body("individual_appointments", aid)
        assert appt["cancelled_at"] and appt["cancellation_reason"] in (10, 20, 30, 31, 40, 50, 60)
    for aid in hard["no_show_appointments"]:
        assert c.body("individual_appointments", aid)["did_not_arrive"] is True
    for nid in hard["draft_treatment_notes"]:
        assert notes[nid]["draft"] is True and notes[nid]["finalized_at"] is None


@pytest.mark.parametrize("name", ["tiny", "clinic"])
def test_hard_case_lists_are_exhaustive(name: str, request: pytest.FixtureRequest) -> None:
    """Every record with a hard case's property is listed, so a pre-flight can be checked in both directions."""
    c: Clinic = request.getfixturevalue(name)
    hard = {k: set(v) for k, v in c.hard.items()}
    patients = c.bodies["patients"]
    emails = Counter(p["email"] for p in patients.values() if p["email"])
    for pid, p in patients.items():
        name_text = p["first_name"] + p["last_name"]
        assert (not name_text.isascii()) == (pid in hard["unicode_names"] | hard["rtl_names"]), pid
        assert (p["first_name"] == "") == (pid in hard["missing_first_name"])
        assert (p["email"] is None) == (pid in hard["missing_email"])
        assert (p["email"] is not None and not _strictly_valid_email(p["email"])) == (pid in hard["invalid_emails"])
        assert (p["email"] is not None and emails[p["email"]] > 1) == (pid in hard["duplicate_emails"])
        assert (p["merged_at"] is not None) == (pid in hard["merged_patients"])
        assert (p["archived_at"] is not None and p["merged_at"] is None) == (pid in hard["archived_patients"])
        assert (len(p["notes"] or "") > 20_000) == (pid in hard["long_notes"])
    for aid, a in c.bodies["individual_appointments"].items():
        assert (a["archived_at"] is not None) == (aid in hard["archived_appointments"])
        assert (a["cancelled_at"] is not None) == (aid in hard["cancelled_appointments"])
        assert a["did_not_arrive"] == (aid in hard["no_show_appointments"])
    assert set(c.bodies["group_appointments"]) == hard["group_appointments"]
    for nid, n in c.bodies["treatment_notes"].items():
        assert n["draft"] == (nid in hard["draft_treatment_notes"])
        assert (len(json.dumps(n["content"], ensure_ascii=False)) > 20_000) == (nid in hard["long_notes"])
    for aid, a in c.bodies["patient_attachments"].items():
        assert ((a["size"] or 0) >= 3 * 2**20) == (aid in hard["large_files"])
        assert (not a["processing_completed"]) == (aid in hard["unprocessed_attachments"])
    for pid, p in c.bodies["practitioners"].items():
        assert (not p["active"]) == (pid in hard["inactive_practitioners"])


def _user_email(c: Clinic, practitioner: dict[str, Any]) -> str:
    _, uid = _link_id(practitioner["user"])  # type: ignore[misc]
    return c.body("users", uid)["email"]


@pytest.mark.parametrize("name", ["tiny", "clinic"])
def test_practitioners_and_their_future_nutshell_users(name: str, request: pytest.FixtureRequest) -> None:
    c: Clinic = request.getfixturevalue(name)
    users = c.seed["users"]
    by_email = {e.strip().lower(): u for u in users for e in u["emails"]}
    mismatch = set(c.hard["practitioner_email_mismatch"])
    no_user = set(c.hard["practitioner_no_user"])
    exact = 0
    for pid, p in c.bodies["practitioners"].items():
        email = _user_email(c, p).lower()
        if pid in mismatch or pid in no_user:
            assert email not in by_email, p["label"]
        else:
            assert email in by_email, p["label"]
            exact += 1
        if pid in mismatch:
            # a Nutshell user exists under another e-mail and a variant of the name
            assert any(u["last_name"].lower() in (p["last_name"].lower(), "alvarez") for u in users)
        if pid in no_user:
            assert not any(u["last_name"] == p["last_name"] for u in users)
    assert exact >= 2
    assert any(e != e.strip() for u in users for e in u["emails"])  # typed with stray spaces
    assert any(e.strip() != e.strip().lower() for u in users for e in u["emails"])  # typed in another case
    if len(c.hard["inactive_practitioners"]) > 1:  # the second one to leave kept a disabled Nutshell user
        assert any(not u["is_enabled"] for u in users)
    api = c.seed["api_user"]
    assert any(api["email"] in u["emails"] and u["is_administrator"] for u in users)
    assert re.fullmatch(r"[0-9a-f]{40}", api["api_key"])


def test_nutshell_seed_people_collide_with_the_listed_patients(any_clinic: Clinic) -> None:
    c = any_clinic
    people_emails = {e.lower() for person in c.seed["people"] for e in person["emails"]}
    listed = set(c.hard["nutshell_email_collisions"])
    for pid, p in c.bodies["patients"].items():
        assert (p["email"] is not None and p["email"].lower() in people_emails) == (pid in listed), pid
    fields = {f["name"]: f["type"] for f in c.seed["custom_fields"]["Contacts"]}
    assert fields["Cliniko Patient ID"] == "Text" and fields["Date of Birth"] == "Date"
    assert fields["Total Invoiced"] == "Text"  # the wrongly typed one the schema check must find
    assert set(c.seed) == {
        "company_domain",
        "api_user",
        "users",
        "activity_types",
        "people",
        "accounts",
        "custom_fields",
        "custom_field_cap",
    }
    assert "Phone Call / Meeting" in c.seed["activity_types"]
    validate_seed(c.seed)  # what the Nutshell sandbox checks before it starts from this seed


# --- realism -------------------------------------------------------------------------------------------------------


def test_settings_define_the_custom_fields_patients_use(any_clinic: Clinic) -> None:
    settings = any_clinic.singletons["settings"]
    assert settings["account"]["email_from"]
    sections = settings["patient_custom_fields_definition"]["sections"]
    assert [s["name"] for s in sections] == ["Insurance", "Intake"]
    types = {f["type"] for s in sections for f in s["fields"]}
    assert types == {"text", "radiobuttons", "checkboxes", "date", "paragraph"}
    assert sum(f["archived"] for s in sections for f in s["fields"]) == 1
    tokens = {s["token"] for s in sections} | {f["token"] for s in sections for f in s["fields"]}
    tokens |= {o["token"] for s in sections for f in s["fields"] for o in f.get("options", [])}
    used = 0
    for p in any_clinic.bodies["patients"].values():
        for s in (p["custom_fields"] or {}).get("sections", []):
            assert s["token"] in tokens
            for f in s["fields"]:
                used += 1
                assert f["token"] in tokens and all(o["token"] in tokens for o in f.get("options", []))
    assert used
    admin = any_clinic.body("users", any_clinic.singletons["current_user_id"])
    assert admin["role"] == "administrator"


def test_blobs_match_the_attachments(any_clinic: Clinic) -> None:
    attachments = any_clinic.bodies["patient_attachments"]
    assert set(any_clinic.blobs) == set(attachments)
    for aid, a in attachments.items():
        blob = any_clinic.blobs[aid]
        if a["processing_completed"]:
            assert a["size"] == blob["size"] and a["content_type"] == blob["content_type"]
        else:
            assert a["size"] is None and a["filename"] is None and a["content"] is None
    first = next(iter(any_clinic.blobs.values()))
    chunks = b"".join(cliniko_db.blob_chunks(first["seed"], first["size"], first["content_type"]))
    assert len(chunks) == first["size"]


def test_proportions_are_sane(clinic: Clinic) -> None:
    c = clinic
    n_patients = len(c.bodies["patients"])
    per_patient: Counter[str] = Counter()
    for fk in (json.loads(r["fk"]) for r in c.rows["attendees"]):
        per_patient[fk["patient_id"]] += 1
    counts = [per_patient[pid] for pid in c.bodies["patients"]]
    assert min(counts) >= 1 and max(counts) <= 30
    assert 2 <= statistics.mean(counts) <= 7
    assert statistics.median(counts) < statistics.mean(counts)  # skewed: most have few, some many
    appts = list(c.bodies["individual_appointments"].values())
    cancelled = sum(a["cancelled_at"] is not None for a in appts) / len(appts)
    no_show = sum(a["did_not_arrive"] for a in appts) / len(appts)
    future = sum(a["starts_at"] > c.meta["reference_time"] for a in appts)
    assert 0.03 < cancelled < 0.15 and 0.01 < no_show < 0.08 and future > 0
    group_attendees = sum(
        1 for r in c.rows["attendees"] if json.loads(r["fk"])["booking_id"] in c.bodies["group_appointments"]
    )
    assert 0.02 < group_attendees / len(c.rows["attendees"]) < 0.3
    statuses = Counter(i["status"] for i in c.bodies["invoices"].values())
    assert set(statuses) == {10, 20, 30, 40} and statuses[20] > statuses[10]
    for inv in c.bodies["invoices"].values():
        assert (inv["closed_at"] is not None) == (inv["status"] in (20, 30))
    items = Counter(json.loads(r["fk"])["invoice_id"] for r in c.rows["invoice_items"])
    assert set(items) == set(c.bodies["invoices"]) and max(items.values()) <= 3
    types = Counter(b["type_code"] for b in c.bodies["contacts"].values())
    assert types[0] and types[1] and types[2]
    comms = {(b["type"], b["category_code"], b["direction_code"]) for b in c.bodies["communications"].values()}
    assert {t for t, _, _ in comms} == {"SMS", "Email", "Phone call", "Other"}
    assert (("Phone call", 12, 2) in comms) and (("SMS", 1, 1) in comms)
    phone_types = {n["phone_type"] for p in c.bodies["patients"].values() for n in p["patient_phone_numbers"]}
    assert phone_types == {"Mobile", "Home", "Work", "Fax", "Other"}
    assert 2 <= len(c.bodies["businesses"]) <= 4
    assert len({b["time_zone_identifier"] for b in c.bodies["businesses"].values()}) == len(c.bodies["businesses"])
    active = [p for p in c.bodies["practitioners"].values() if p["active"]]
    assert 4 <= len(active) <= 12 and 1 <= len(c.bodies["practitioners"]) - len(active) <= 2
    assert 5 <= len(c.bodies["appointment_types"]) <= 12
    assert any(t["max_attendees"] > 1 for t in c.bodies["appointment_types"].values())
    roles = Counter(u["role"] for u in c.bodies["users"].values())
    assert roles["administrator"] and roles["receptionist"] and roles["practitioner"]
    assert len(c.bodies["patient_cases"]) < n_patients // 10 + 2
    drafts = [n for n in c.bodies["treatment_notes"].values() if n["draft"]]
    assert drafts and len(drafts) < len(c.bodies["treatment_notes"]) // 10
    questions = [
        q for n in c.bodies["treatment_notes"].values() for s in n["content"]["sections"] for q in s["questions"]
    ]
    assert {q["type"] for q in questions} == {"paragraph", "text", "date", "radiobuttons", "checkboxes", "bodycharts"}
    assert any("<" in q.get("answer", "") for q in questions)
    assert any(a.get("selected") for q in questions for a in q.get("answers", []))
    small = [a for a in c.bodies["patient_attachments"].values() if a["size"] and a["size"] < 2**20]
    assert len(small) > len(c.bodies["patient_attachments"]) // 2
    hard_patients = set().union(*(set(c.hard[k]) for k, v in HARD_CASE_RESOURCES.items() if v == ("patients",)))
    assert len(hard_patients) < n_patients * 0.2


def test_the_hostile_switch_plants_every_case_and_leaves_the_ordinary_patients_alone(tmp_path: Path) -> None:
    from cliniko2nutshell.sandbox.clinic_hostile import HOSTILE_CASES, OVERSIZED_FILE
    from cliniko2nutshell.sandbox.run import cached_clinic

    plain = generate_clinic(tmp_path / "plain.db", 12, seed=2)
    summary = generate_clinic(tmp_path / "hostile.db", 12, seed=2, hostile=True)
    conn = sqlite3.connect(tmp_path / "hostile.db")
    rows = {(r, i): json.loads(b) for r, i, b in conn.execute("SELECT resource, id, body FROM records")}
    blobs = dict(conn.execute("SELECT attachment_id, size FROM blobs").fetchall())
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    before = sqlite3.connect(tmp_path / "plain.db")
    ordinary = {i: json.loads(b) for i, b in before.execute("SELECT id, body FROM records WHERE resource = 'patients'")}
    assert json.loads(before.execute("SELECT value FROM meta WHERE key = 'hard_case_resources'").fetchone()[0]) == {
        k: list(v) for k, v in HARD_CASE_RESOURCES.items()}  # fmt: skip
    before.close()
    assert all(rows[("patients", i)] == body for i, body in ordinary.items())
    assert summary.counts["patients"] > plain.counts["patients"] and meta["hostile"] == "1" and plain.hostile is False

    cases = {k.removeprefix("hostile_"): v for k, v in summary.hard_cases.items() if k.startswith("hostile_")}
    assert set(cases) == set(HOSTILE_CASES) and len(cases) >= 40
    assert set(json.loads(meta["hard_case_resources"])) >= {f"hostile_{c}" for c in cases}
    get = {case: rows[(HOSTILE_CASES[case][0], ids[0])] for case, ids in cases.items()}  # each is really there
    assert len(get["name_500_chars"]["first_name"]) == len(get["name_500_chars"]["last_name"]) == 500
    assert "\x1b[31m" in get["name_control_chars"]["last_name"] and "\\u0000" not in json.dumps(list(rows.values()))
    assert {get[c]["date_of_birth"] for c in ("dob_future", "dob_far_future", "dob_before_1900", "dob_year_one")} == {
        "2031-05-04", "9999-12-31", "1899-12-31", "0001-01-01"}  # fmt: skip
    twins = [rows[("patients", i)]["email"] for i in cases["email_duplicate_case"]]
    assert len(twins) == 2 and twins[0].lower() == twins[1] and twins[0] != twins[1]
    assert "loyalty_tier" in get["unknown_fields"] and get["wrong_types_patient"]["pronouns"] == "she/her"
    inverted, zero = get["appt_ends_before_start"], get["appt_zero_length"]
    assert inverted["ends_at"] < inverted["starts_at"] and zero["ends_at"] == zero["starts_at"]
    gone = get["appt_deleted_practitioner"]["practitioner"]["links"]["self"].rsplit("/", 1)[1]
    assert ("practitioners", gone) not in rows
    archived = get["appt_archived_type"]["appointment_type"]["links"]["self"].rsplit("/", 1)[1]
    assert rows[("appointment_types", archived)]["archived_at"]
    assert [get[c]["total_amount"] for c in ("invoice_negative", "invoice_huge", "invoice_zero")] == [
        "-120.0", "99999999.99", "0.0"]  # fmt: skip
    assert isinstance(get["wrong_types_invoice"]["total_amount"], float)
    for case, mark in (
        ("note_script", "<script"),
        ("note_event_handlers", "onerror="),
        ("note_iframe_style", "<iframe"),
    ):
        assert mark in json.dumps(get[case]["content"]), case
    assert get["file_traversal"]["filename"] == "../../x" and get["file_reserved_con"]["filename"] == "CON"
    assert blobs[get["file_zero_bytes"]["id"]] == get["file_zero_bytes"]["size"] == 0
    assert blobs[get["file_oversized"]["id"]] == OVERSIZED_FILE > 25 * 2**20
    assert get["wrong_types_attachment"]["size"] == str(blobs[get["wrong_types_attachment"]["id"]])
    # the cache keeps the two clinics apart
    assert cached_clinic(12, 2, tmp_path / "cache") != cached_clinic(12, 2, tmp_path / "cache", hostile=True)
