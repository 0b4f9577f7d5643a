"""The engine over a synthetic clinic (loaded straight into the store) and the in-memory Nutshell: the plan's
order and references, idempotency, sample and diff, delta, reconcile and rollback end to end, without HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cliniko2nutshell.engine.api import Engine, EngineError, RunOptions, SampleOptions, status
from cliniko2nutshell.engine.destination import Entity
from cliniko2nutshell.engine.diff import Status
from cliniko2nutshell.engine.journal import Outcome, RunKind
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD
from cliniko2nutshell.engine.ops import PHASES
from cliniko2nutshell.engine.plan import activity_type_ids
from cliniko2nutshell.engine.reconcile import SAVED_ITEMS, ObjectLine, Reconciliation, from_saved, saved
from cliniko2nutshell.engine.rollback import RollbackScope, ScopeKind, Step
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.defaults import default_map
from cliniko2nutshell.mapping.model import MigrationMap, PractitionerChoice, PractitionerDecision
from cliniko2nutshell.mapping.names import is_valid_email
from cliniko2nutshell.project.store import RecordRow
from tests.fakes.clinic_store import load_clinic, nutshell_seed
from tests.fakes.destination import FakeNutshell

FALLBACK = "1-users"


def clinic_map(project, types: list[str]) -> MigrationMap:
    catalog = Catalog.from_store(project.store)
    choices = {pid: PractitionerChoice(decision=PractitionerDecision.FALLBACK) for pid in catalog.practitioners}
    m = default_map(catalog, activity_types=types)
    return m.model_copy(update={"fallback_owner": FALLBACK, "practitioners": choices, "confirmed": True})


@pytest.fixture
def clinic(project, small_clinic_db: Path):
    load_clinic(project, small_clinic_db)
    types = nutshell_seed(small_clinic_db)["activity_types"]
    dest = FakeNutshell()
    # Someone already in Nutshell shares an e-mail with a patient: the default policy links to them.
    patient = next(
        r for r in project.store.iter_records("patients") if is_valid_email(r.get("email")) and not r.get("merged_at")
    )
    theirs = dest.seed(Entity.CONTACTS, {"name": "Already There", "emails": [{"value": patient["email"]}]})
    events: list = []
    engine = Engine(project, dest, clinic_map(project, types),
                    activity_type_ids((t, f"{i + 1}-activityTypes") for i, t in enumerate(types)),
                    sink=events.append, durable=False)  # fmt: skip
    return engine, dest, theirs, patient, events


def planned(engine: Engine) -> dict[tuple[str, str], object]:
    plan = engine.plan()
    return {op.key: op for phase in PHASES for op in plan.ops(phase) if op.payload is not None or op.file}


def unmappable(engine: Engine) -> set[tuple[str, str]]:
    plan = engine.plan()
    return {op.key for phase in PHASES for op in plan.ops(phase) if op.unmappable}


async def test_full_run_writes_every_planned_record_once_and_again_nothing(clinic) -> None:
    engine, dest, theirs, patient, _ = clinic
    summary = await engine.full()
    # the clinic has records that cannot be mapped (an upload Cliniko never finished processing): reported
    assert summary.outcome is Outcome.PARTIAL, summary.as_dict()
    assert {(q.object, q.source_id) for q in engine.journal.quarantine_list()} == unmappable(engine) != set()
    assert {q.category for q in engine.journal.quarantine_list()} == {"unmappable"}
    expected = planned(engine)
    mapped = {(m.object, m.source_id): m for m in engine.journal.iter_mapped()}
    assert set(expected) == set(mapped)
    # every person carries its Cliniko id; the colliding patient was linked to the existing person
    people = dest.live(Entity.CONTACTS)
    ids = sorted((p.fields.get("customFields") or {}).get(PATIENT_ID_FIELD) for p in people)
    assert ids == sorted(s for o, s in expected if o == "person")
    assert mapped[("person", patient["id"])].nutshell_id == theirs
    assert dest.records[theirs].fields["name"] == "Already There"
    # every activity names its person, every file sits on its activity
    for (obj, sid), m in mapped.items():
        rec = dest.records.get(m.nutshell_id)
        if obj in ("appointment", "attendance", "communication"):
            person = mapped[("person", expected[(obj, sid)].patient_id)].nutshell_id
            assert person in rec.fields["links"]["participants"]
        if obj.endswith("_file"):
            host = dest.records[m.parent_id]
            assert [f["name"] for f in host.files] == [expected[(obj, sid)].file.name]
    before, writes = dest.state(), dest.writes()
    again = await engine.full()
    assert dest.writes() == writes and dest.state() == before
    assert sum(c.unchanged for c in again.counts.values()) == len(expected)


async def test_sample_covers_every_stratum_and_diffs_field_by_field(clinic) -> None:
    engine, _, _, _, _ = clinic
    result = await engine.sample(SampleOptions(size=100))
    sel = result.selection
    assert all(sel.strata[s] for s in sel.strata), "every stratum has a sampled patient"
    assert {m.patient_id for m in engine.journal.iter_mapped() if m.patient_id} <= set(sel.patients)
    counts = result.diff.counts()
    assert counts["mismatch"] == len([r for r in result.diff.rows if r.status is Status.MISMATCH])
    # the only problems: the linked person's own values (link-and-fill-empty keeps them), and records that
    # cannot be mapped (missing, with the reason)
    linked = {m.source_id for m in engine.journal.iter_mapped() if m.origin.value == "linked"}
    cannot = {k[1] for k in unmappable(engine)}
    assert {r.source_id for r in result.diff.problems} <= linked | cannot
    assert all(r.note for r in result.diff.problems if r.source_id in cannot)
    assert counts["match"] > 100 and counts["transformed"] > 0
    assert all(Path(p).exists() for p in result.reports)
    # the sample can be undone and run again
    again = await engine.sample(SampleOptions(size=100, rollback_previous=True))
    assert again.rollback is not None and again.rollback.verification.ok
    assert again.rollback.outcome is Outcome.SUCCESS


async def test_reconcile_counts_what_nutshell_holds(clinic) -> None:
    engine, dest, _, _, _ = clinic
    await engine.full()
    result = await engine.reconcile()
    assert result.reconciliation.balanced, result.reconciliation.as_dict()
    assert result.outcome is Outcome.PARTIAL  # the unmappable records are listed with their reasons
    assert {q.category for q in result.reconciliation.quarantine} == {"unmappable"}
    milestone = engine.project.store.milestone("reconciled")  # what the wizard's step bar shows
    assert milestone is not None
    saved_rec = milestone.detail.pop("reconciliation")
    assert milestone.detail == {
        "run_id": engine.journal.last_run().id,  # type: ignore[union-attr]
        "balanced": True,
        "missing": 0,
        "duplicates": 0,
        "quarantined": len(result.reconciliation.quarantine),
        "reports": result.reports,
    }
    # the wizard shows it again without reading Nutshell: the same rows, today's failures
    again = from_saved(saved_rec, engine.journal.quarantine_list())
    assert again.as_dict() == result.reconciliation.as_dict()
    # a record deleted in Nutshell behind our back, and a duplicate, are found
    victim = next(m for m in engine.journal.iter_mapped() if m.object == "appointment")
    dest.records[victim.nutshell_id].deleted = True
    copy = next(m for m in engine.journal.iter_mapped() if m.object == "medical_alert")
    twin = dest.seed(Entity.NOTES, dict(dest.records[copy.nutshell_id].fields))
    stray = dest.seed(Entity.ACCOUNTS, {"name": "x", "description": "cliniko:company:424242"})
    rec = (await engine.reconcile()).reconciliation
    assert rec.missing == [("appointment", victim.source_id, victim.nutshell_id)]
    assert rec.duplicates == [("medical_alert", copy.source_id, sorted([copy.nutshell_id, twin]))]
    assert rec.orphans == [("company", "424242", stray)]
    detail = engine.project.store.milestone("reconciled").detail  # type: ignore[union-attr]
    assert (detail["balanced"], detail["missing"], detail["duplicates"]) == (False, 1, 1)
    kept = from_saved(detail["reconciliation"], [])
    assert (kept.missing, kept.duplicates, kept.orphans) == (rec.missing, rec.duplicates, rec.orphans)
    assert detail["reconciliation"]["totals"] == {"missing": 1, "duplicates": 1, "orphans": 1}
    assert not kept.balanced and kept.lines["appointment"].missing == 1


def test_a_saved_reconciliation_keeps_the_first_items_and_every_count() -> None:
    line = ObjectLine("appointment", planned=500, journal=500, nutshell=0, missing=500)
    rec = Reconciliation(lines={"appointment": line}, missing=[("appointment", str(i), "x") for i in range(500)])
    data = json.loads(json.dumps(saved(rec)))  # as the milestone stores it
    kept = from_saved(data, [])
    assert len(kept.missing) == SAVED_ITEMS and kept.missing[0] == ("appointment", "0", "x")
    assert data["totals"]["missing"] == 500 and kept.lines["appointment"].missing == 500


async def test_delta_updates_changes_and_leaves_nutshell_edits(clinic, project) -> None:
    engine, dest, _, _, _ = clinic
    await engine.full()
    store = project.store
    people = [r for r in store.iter_records("patients") if not r.get("merged_at") and r.get("first_name")]
    changed, edited = people[1], people[2]
    # as an incremental extraction would leave them: changed records, extracted after the full run
    with store.transaction() as tx:
        for raw in (changed, edited):
            raw = dict(raw, occupation="Astronaut")
            store.upsert_records([RecordRow("patients", raw["id"], raw)], tx)
        tx.execute("UPDATE cliniko_records SET extracted_at = '2999-01-01T00:00:00Z' WHERE object = 'patients' "
                   "AND id IN (?, ?)", (changed["id"], edited["id"]))  # fmt: skip
    theirs = engine.journal.mapped("person", edited["id"]).nutshell_id
    dest.edit(theirs, description="Edited by the clinic in Nutshell")
    result = await engine.apply_changes("2999-01-01T00:00:00Z", RunOptions())
    assert result.patients == 2 and result.outcome is Outcome.PARTIAL
    assert result.summary.counts["person"].updated == 1 and result.summary.counts["person"].conflicts == 1
    ours = dest.records[engine.journal.mapped("person", changed["id"]).nutshell_id]
    assert "Occupation: Astronaut" in ours.fields["description"]
    assert dest.records[theirs].fields["description"] == "Edited by the clinic in Nutshell"
    (conflict,) = engine.journal.conflicts(result.summary.run_id)
    assert conflict.fields == ["description"]


async def test_rollback_everything_returns_nutshell_to_where_it_was(clinic) -> None:
    engine, dest, theirs, _, _ = clinic
    start = dest.state()
    await engine.full()
    engine.journal.record_schema_change("contacts", "Total Invoiced", "Currency", None)
    pv = await engine.rollback_preview(RollbackScope())
    assert pv.checked and not pv.edited_since
    assert [i.nutshell_id for i in pv.by_step(Step.RESTORE)] == [theirs]
    assert "custom field contacts/Total Invoiced" in pv.cannot_undo[0]
    result = await engine.rollback(RollbackScope())
    assert result.outcome is Outcome.SUCCESS and result.verification.ok
    assert result.verification.gone == result.verification.checked > 0
    assert dest.state() == start
    assert engine.journal.count_mapped() == {}


async def test_rollback_of_one_object_type_takes_its_dependents_along(clinic) -> None:
    engine, dest, _, _, _ = clinic
    await engine.full()
    people_before = len(dest.live(Entity.CONTACTS))
    result = await engine.rollback(RollbackScope(ScopeKind.OBJECTS, objects=("activities",)))
    assert result.outcome is Outcome.SUCCESS
    assert dest.live(Entity.ACTIVITIES) == [] and len(dest.live(Entity.CONTACTS)) == people_before
    left = engine.journal.count_mapped()
    assert set(left) == {"company", "person", "treatment_note", "patient_note", "appointment_note", "medical_alert"}
    # running again brings the activities and files back
    await engine.full()
    assert set(engine.journal.count_mapped()) >= {"appointment", "attachment_file", "treatment_note_file"}


async def test_rollback_skips_what_was_edited_since_and_reports_it(clinic) -> None:
    engine, dest, theirs, _, _ = clinic
    await engine.full()
    victim = next(m for m in engine.journal.iter_mapped() if m.object == "company")
    dest.edit(victim.nutshell_id, name="Renamed by the clinic")
    pv = await engine.rollback_preview(RollbackScope())
    assert [(i.source_id, i.edited) for i in pv.edited_since] == [(victim.source_id, ("name",))]
    result = await engine.rollback(RollbackScope())
    assert result.outcome is Outcome.PARTIAL and result.verification.ok
    assert result.verification.reported == 1
    # the edited company stays (with its edit); everything else we created is gone
    assert {r.id for r in dest.live()} == {victim.nutshell_id, theirs}
    assert dest.records[victim.nutshell_id].fields["name"] == "Renamed by the clinic"
    # the report names what it left and why; the run's stored summary names the report
    assert {Path(p).suffix for p in result.reports} == {".csv", ".html"}
    assert "skip (edited since)" in Path(next(p for p in result.reports if p.endswith(".csv"))).read_text()
    assert engine.journal.run(result.summary.run_id).summary["reports"] == result.reports  # type: ignore[index]


async def test_a_steered_rollback_writes_its_report_and_shows_where_every_object_ended(clinic) -> None:
    engine, _, _, _, events = clinic
    await engine.full()
    runner = engine.rollback_runner(RollbackScope())  # as the wizard runs it: pausable, stoppable
    summary, verification = await runner.execute()
    assert verification.ok and {Path(p).suffix for p in summary.reports} == {".csv", ".html"}
    last = {e.object: e for e in events if type(e).__name__ == "ObjectProgress" and e.run_id == summary.run_id}
    # files go with their activities without a write of their own: their rows end complete all the same
    for obj in ("attachment_file", "treatment_note_file"):
        assert last[obj].done == last[obj].total == summary.counts[obj].planned > 0


async def test_unresolved_practitioners_block_the_run(clinic) -> None:
    engine, _, _, _, _ = clinic
    pid = next(iter(engine.mapping.practitioners))
    choices = dict(engine.mapping.practitioners)
    choices[pid] = PractitionerChoice(decision=PractitionerDecision.UNRESOLVED)
    engine.mapping = engine.mapping.model_copy(update={"practitioners": choices})
    with pytest.raises(EngineError, match="practitioner"):
        await engine.full()


async def test_status_needs_no_network(clinic, project) -> None:
    engine, _, _, _, _ = clinic
    await engine.full()
    report = status(project)
    assert report.runs[-1].kind is RunKind.FULL and report.mapped["person"] > 0
    assert json.dumps(report.as_dict())


async def test_a_patient_merged_after_the_full_run_hands_its_history_to_the_survivor(clinic, project) -> None:
    engine, dest, _, _, _ = clinic
    await engine.full()
    store, journal = project.store, engine.journal
    mapped_people = {m.source_id for m in journal.iter_mapped(objects=["person"])}
    busy = [
        pid for pid in sorted(mapped_people)
        if any(m.object == "appointment" for m in journal.iter_mapped(patient_ids=[pid]))
        and any(m.object == "treatment_note" for m in journal.iter_mapped(patient_ids=[pid]))
    ]  # fmt: skip
    loser, survivor = busy[0], busy[1]
    loser_person = journal.mapped("person", loser).nutshell_id
    survivor_person = journal.mapped("person", survivor).nutshell_id
    history = [m for m in journal.iter_mapped(patient_ids=[loser]) if m.object != "person"]
    raw = store.get_record("patients", loser)
    raw |= {"merged_at": "2026-11-20T00:00:00Z", "archived_at": "2026-11-20T00:00:00Z",
            "merged_with_patient": {"links": {"self": f"http://x/v1/patients/{survivor}"}}}  # fmt: skip
    with store.transaction() as tx:
        store.upsert_records([RecordRow("patients", loser, raw, archived=True)], tx)
        tx.execute("UPDATE cliniko_records SET extracted_at = '2999-01-01T00:00:00Z' WHERE object = 'patients' "
                   "AND id = ?", (loser,))  # fmt: skip
    before = dest.state()
    result = await engine.apply_changes("2999-01-01T00:00:00Z")
    assert result.summary.counts["person"].deleted == 1  # the merged patient's person is retired
    assert dest.records[loser_person].deleted
    for m in history:
        now = journal.mapped(m.object, m.source_id)
        assert now is not None and now.patient_id == survivor
        rec = dest.records.get(now.nutshell_id)
        if m.object == "appointment":
            assert survivor_person in rec.fields["links"]["participants"]
        if m.object == "treatment_note":
            assert rec.fields["parent"] == survivor_person and dest.records[m.nutshell_id].deleted
    # and rolling that delta back puts everything where it was
    undo = await engine.rollback(RollbackScope(ScopeKind.RUN, result.summary.run_id))
    assert undo.outcome is Outcome.SUCCESS and undo.verification.ok
    assert dest.state() == before


async def test_the_skip_policy_journals_what_it_leaves_out_so_reconcile_balances(clinic) -> None:
    from cliniko2nutshell.engine.audit import AuditFilter, audit_entries
    from cliniko2nutshell.mapping.model import ExistingPerson

    engine, _dest, theirs, patient, _ = clinic
    policies = engine.mapping.policies.model_copy(update={"existing_person": ExistingPerson.SKIP})
    engine.mapping = engine.mapping.model_copy(update={"policies": policies})
    await engine.full()
    skips = audit_entries(engine.project.store, AuditFilter(action="skip"))
    person = [e for e in skips if e.object == "person"]
    assert [(e.cliniko_id, e.nutshell_id, e.status) for e in person] == [(patient["id"], theirs, "skipped")]
    assert "existing-person policy" in (person[0].error or "")
    assert len(skips) > 1  # the patient's appointments, notes... depend on the person: skipped with it
    rec = (await engine.reconcile()).reconciliation
    assert rec.balanced, rec.as_dict()
    assert rec.lines["person"].skipped >= 1 and not rec.missing
    await engine.full()  # nothing changed: the same skips are not journaled again
    assert len(audit_entries(engine.project.store, AuditFilter(action="skip"))) == len(skips)


async def test_the_sample_diff_reads_as_a_person_reads_it_and_is_kept_in_the_project(clinic) -> None:
    import re

    from cliniko2nutshell.engine.api import last_sample

    engine, _, _, _, _ = clinic

    async def users() -> dict[str, str]:
        return {FALLBACK: "Fallback Owner"}

    engine.user_names = users
    result = await engine.sample(SampleOptions(size=100))
    rows = result.diff.rows
    # times are read in the clinic's zone: never Unix seconds or UTC text, and a change of notation is a match
    times = [r for r in rows if r.field in ("startTime", "endTime")]
    assert times and all(r.status is not Status.TRANSFORMED for r in times)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? [A-Z+\-0-9]+", r.expected or "") for r in times)
    assert any(r.reformatted for r in times)
    assert not [r for r in rows if re.fullmatch(r"1[5-9]\d{8}", r.expected or "")]
    assert not [r for r in rows if (r.stored or "").endswith("-activityTypes") or (r.stored or "") == FALLBACK]
    # every transformation says why
    assert all(r.note for r in rows if r.status is Status.TRANSFORMED)
    # per record, problems first; the records with problems first
    records = result.diff.records()
    flags = [bool(r.problems) for r in records]
    assert flags == sorted(flags, reverse=True) and flags[0]
    for rec in records:
        order = [r.problem for r in rec.fields]
        assert order == sorted(order, reverse=True)
    # the HTML report has the same layout and no API encodings
    html = Path(next(p for p in result.reports if p.endswith(".html"))).read_text()
    assert html.index("Records with problems") < html.index("Records the map changed")
    assert not re.search(r">1[5-9]\d{8}<", html)
    # readable after a restart: the project keeps the last sample's diff
    info = last_sample(engine.project)
    assert info.run is not None and info.run.id == result.summary.run_id and info.undone_by is None
    assert info.diff is not None and info.diff.rows == rows
    assert any(r.stored == "Fallback Owner" for r in rows if r.field == "links.owner")


async def test_a_stopped_sample_resumes_and_is_diffed_then_undone(clinic) -> None:
    from cliniko2nutshell.engine.api import last_sample

    engine, dest, _, _, _ = clinic
    before = dest.state()
    runner = engine.sample_runner(SampleOptions(size=100))
    runner.stop()  # at once: nothing written, the run resumable
    stopped = await runner.execute()
    assert not stopped.finished and stopped.diff.rows == []
    assert last_sample(engine.project).diff is None
    resumed = await engine.sample_runner(resume=stopped.summary.run_id).execute()
    assert resumed.finished and resumed.summary.run_id == stopped.summary.run_id and resumed.diff.rows
    assert last_sample(engine.project).diff.run_id == stopped.summary.run_id  # type: ignore[union-attr]
    with pytest.raises(EngineError, match="nothing to resume"):
        engine.sample_runner(resume=stopped.summary.run_id)
    # the diff can be taken again while the map is the same; not once it changed
    again, _ = await engine.diff_sample_run()
    assert again.counts() == resumed.diff.counts()
    engine.mapping = engine.mapping.model_copy(update={"version": engine.mapping.version + 1})
    with pytest.raises(EngineError, match="the map changed"):
        await engine.diff_sample_run()
    # undone: the sample knows it, and running it again does not undo it twice
    undo = await engine.rollback(RollbackScope(ScopeKind.RUN, resumed.summary.run_id))
    assert last_sample(engine.project).undone_by == undo.summary.run_id
    assert dest.state() == before
    again_result = await engine.sample(last_sample(engine.project).options)
    assert again_result.rollback is None and again_result.finished
    assert set(again_result.selection.patients) == set(resumed.selection.patients)


async def test_a_patient_record_that_does_not_parse_is_quarantined_with_its_fields_not_dropped(clinic) -> None:
    """It used to be left out of the plan with a log line, so the run neither wrote nor quarantined it."""
    engine, _dest, _theirs, patient, _ = clinic
    victim = next(r["id"] for r in engine.project.store.iter_records("patients")
                  if r["id"] != patient["id"] and not r.get("merged_at"))  # fmt: skip
    engine.project.store.conn.execute(
        "UPDATE cliniko_records SET raw = json_set(raw, '$.date_of_birth', 'the 31st of February') "
        "WHERE object = 'patients' AND id = ?",
        (victim,),
    )
    await engine.full()
    reasons = {(q.object, q.source_id): q.reason for q in engine.journal.quarantine_list()}
    reason = reasons[("person", victim)]
    assert "date_of_birth" in reason and "February" not in reason  # the field, never the patient's value
    assert engine.journal.mapped("person", victim) is None


async def test_a_sample_diffs_a_patient_whose_phone_number_came_as_a_json_number(clinic) -> None:
    """The models read a phone number sent as a JSON number; the diff's Cliniko side read the raw record and
    crashed on it, which stopped the whole sample's diff (found in the wizard on the hostile clinic)."""
    engine, _dest, _theirs, patient, _ = clinic
    patients = engine.project.store.iter_records("patients")
    victim = next(r for r in patients if r["id"] != patient["id"] and r.get("patient_phone_numbers")
                  and not r.get("merged_at") and not r.get("archived_at"))  # fmt: skip
    engine.project.store.conn.execute(
        "UPDATE cliniko_records SET raw = json_set(raw, '$.patient_phone_numbers[0].number', 61412555666) "
        "WHERE object = 'patients' AND id = ?",
        (victim["id"],),
    )
    result = await engine.sample(SampleOptions(patients=[victim["id"]]))
    phones = [r for r in result.diff.rows if r.source_id == victim["id"] and r.field == "phones"]
    assert phones and "61412555666" in (phones[0].source or "")
    assert not [r for r in result.diff.rows if "could not be compared" in r.note]


async def test_connect_plans_files_against_the_size_limit_the_preflight_uses(project) -> None:
    """An attachment over the limit was planned, sent and refused by Nutshell: the pre-flight had warned of it, but
    the run's plan knew no limit, so reconcile could never balance. Both now judge by the same limit."""
    from cliniko2nutshell.mapping.snapshot import DEFAULT_FILE_SIZE_LIMIT
    from cliniko2nutshell.retry import RetryPolicy

    class Client:
        read_revs = True
        policy = RetryPolicy()

        async def list_activity_types(self) -> list:
            return []

    engine = await Engine.connect(project, Client(), mapping=clinic_map(project, []))
    assert engine.file_size_limit == DEFAULT_FILE_SIZE_LIMIT
    engine = await Engine.connect(project, Client(), mapping=clinic_map(project, []), file_size_limit=1000)
    assert engine.file_size_limit == 1000
