"""The runner against the in-memory Nutshell: order, idempotency, policies, conflicts, faults and recovery."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cliniko2nutshell.engine import events as ev
from cliniko2nutshell.engine.destination import Entity, FileSpec
from cliniko2nutshell.engine.estimate import estimate
from cliniko2nutshell.engine.journal import Action, Journal, Outcome, RunKind, RunStatus, State
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD
from cliniko2nutshell.engine.ops import Op, Phase, RecordRef
from cliniko2nutshell.engine.runner import (
    ConflictInfo,
    ConflictPolicy,
    ExistingPersonPolicy,
    Runner,
    RunSettings,
)
from tests.fakes.destination import FakeNutshell, Fault


class ListPlan:
    def __init__(self, ops: list[Op]) -> None:
        self._ops = ops

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self._ops:
            out[op.object] = out.get(op.object, 0) + 1
        return out

    def ops(self, phase: Phase) -> Iterator[Op]:
        return (op for op in self._ops if op.phase is phase)

    def prepare_file(self, op: Op) -> None:
        pass

    def person_emails(self) -> set[str]:
        return {op.email for op in self._ops if op.email}


def person(pid: str, email: str | None = None, **extra: Any) -> Op:
    payload: dict[str, Any] = {"name": f"Patient {pid}", "customFields": {PATIENT_ID_FIELD: pid}}
    if email:
        payload["emails"] = [{"isPrimary": True, "name": "home", "value": email}]
    payload.update(extra)
    return Op("person", pid, patient_id=pid, payload=payload, email=email)


def appointment(aid: str, pid: str, **extra: Any) -> Op:
    payload = {"name": "Consult", "startTime": 1700000000, "links": {"participants": [RecordRef("person", pid)]}}
    return Op("appointment", aid, patient_id=pid, payload=payload | extra)


def note(nid: str, pid: str, body: str = "Treatment note") -> Op:
    return Op("treatment_note", nid, patient_id=pid, payload={"body": body}, parent=RecordRef("person", pid))


def company(cid: str) -> Op:
    return Op("company", cid, payload={"name": f"Insurer {cid}"})


def standard_plan(tmp_path: Path) -> list[Op]:
    blob = tmp_path / "scan.pdf"
    blob.write_bytes(b"%PDF-1.4 scan")
    return [
        company("c1"),
        person("p1", "p1@example.com", links={"accounts": [RecordRef("company", "c1")]}),
        person("p2"),
        appointment("a1", "p1"),
        appointment("a2", "p2"),
        Op("attachment_activity", "p1", patient_id="p1",
           payload={"name": "Documents", "isLogged": True, "links": {"participants": [RecordRef("person", "p1")]}}),
        note("n1", "p1"),
        Op("attachment_file", "f1", patient_id="p1", host=RecordRef("attachment_activity", "p1"),
           file=FileSpec(blob, "scan.pdf", blob.stat().st_size, "abc")),
    ]  # fmt: skip


@pytest.fixture
def journal(project) -> Journal:
    return Journal(project.store)


async def run(
    journal: Journal,
    dest: FakeNutshell,
    ops: list[Op],
    kind: RunKind = RunKind.FULL,
    events: list | None = None,
    **settings: Any,
):
    r = journal.start_run(kind, map_version=1)
    sink = events.append if events is not None else (lambda e: None)
    runner = Runner(journal, dest, r, ListPlan(ops), RunSettings(**settings), sink)
    return await runner.execute()


async def test_full_run_writes_in_dependency_order_and_resolves_references(journal, tmp_path) -> None:
    dest = FakeNutshell()
    events: list = []
    summary = await run(journal, dest, standard_plan(tmp_path), events=events)
    assert summary.outcome is Outcome.SUCCESS
    creates = [e for op, e in dest.calls if op in ("create", "upload")]
    assert creates == ["accounts", "contacts", "contacts", "activities", "activities", "activities", "notes", "files"]
    p1 = journal.mapped("person", "p1")
    c1 = journal.mapped("company", "c1")
    a1 = dest.records[journal.mapped("appointment", "a1").nutshell_id]
    assert a1.fields["links"]["participants"] == [p1.nutshell_id]
    assert a1.fields["description"] == "cliniko:appointment:a1"  # the marker that finds it after a crash
    assert dest.records[p1.nutshell_id].fields["links"]["accounts"] == [c1.nutshell_id]
    n1 = dest.records[journal.mapped("treatment_note", "n1").nutshell_id]
    assert n1.fields["parent"] == p1.nutshell_id and n1.fields["body"].endswith("cliniko:treatment_note:n1")
    doc = dest.records[journal.mapped("attachment_activity", "p1").nutshell_id]
    assert [f["name"] for f in doc.files] == ["scan.pdf"]
    assert all(e.state is State.DONE for e in journal.entries())
    assert any(isinstance(e, ev.RunFinished) and e.outcome == "success" for e in events)
    assert {e.phase for e in events if isinstance(e, ev.PhaseStarted)} == set(Phase)


async def test_second_run_changes_nothing(journal, tmp_path) -> None:
    dest = FakeNutshell()
    estimator = functools.partial(estimate, latency_ms=1000, workers=1, service_ms=0)
    first = await run(journal, dest, standard_plan(tmp_path), estimator=lambda t: estimator(t).as_dict())
    before, writes = dest.state(), dest.writes()
    summary = await run(journal, dest, standard_plan(tmp_path), estimator=lambda t: estimator(t).as_dict())
    assert dest.writes() == writes and dest.state() == before
    assert summary.writes == 0 and sum(c.unchanged for c in summary.counts.values()) == 8
    # Expected beforehand: 10 requests at a second each the first time (a file takes three); nothing the second.
    assert first.estimate is not None and first.estimate["seconds"] == pytest.approx(10)
    assert summary.estimate is not None and summary.estimate["seconds"] == 0


async def test_existing_person_is_linked_and_only_empty_fields_are_filled(journal) -> None:
    dest = FakeNutshell()
    theirs = dest.seed(Entity.CONTACTS, {"name": "Their Name", "emails": [{"value": "p1@example.com"}]})
    summary = await run(journal, dest, [person("p1", "P1@example.com", phones=[{"value": "+61400"}])])
    assert summary.counts["person"].linked == 1
    rec = dest.records[theirs]
    assert rec.fields["name"] == "Their Name"  # theirs is kept
    assert rec.fields["phones"] == [{"value": "+61400"}] and rec.fields["customFields"][PATIENT_ID_FIELD] == "p1"
    (entry,) = journal.entries()
    assert entry.action is Action.LINK and entry.pre_image["before"]["phones"] is None
    assert len(dest.live(Entity.CONTACTS)) == 1


@pytest.mark.parametrize(
    ("policy", "people", "counted"),
    [(ExistingPersonPolicy.SKIP, 1, "skipped"), (ExistingPersonPolicy.CREATE, 2, "created")],
)
async def test_existing_person_policies(journal, policy, people, counted) -> None:
    dest = FakeNutshell()
    dest.seed(Entity.CONTACTS, {"name": "Theirs", "emails": [{"value": "p1@example.com"}]})
    summary = await run(journal, dest, [person("p1", "p1@example.com"), appointment("a1", "p1")],
                        existing_person=policy)  # fmt: skip
    assert len(dest.live(Entity.CONTACTS)) == people
    assert getattr(summary.counts["person"], counted) == 1
    # a skipped patient's history is skipped with it, not failed
    assert summary.outcome is Outcome.SUCCESS and journal.quarantine_list() == []


async def test_patients_sharing_an_email_get_a_person_each(journal) -> None:
    dest = FakeNutshell()
    await run(journal, dest, [person("p1", "same@example.com"), person("p2", "same@example.com")], workers=4)
    assert len(dest.live(Entity.CONTACTS)) == 2
    assert journal.mapped("person", "p1").nutshell_id != journal.mapped("person", "p2").nutshell_id


async def test_a_rejected_record_is_quarantined_with_its_dependents_and_retry_reruns_only_those(journal) -> None:
    dest = FakeNutshell()
    ops = [person("p1"), person("p2", occupation="REJECT ME"), appointment("a1", "p1"), appointment("a2", "p2")]
    events: list = []
    summary = await run(journal, dest, ops, events=events)
    assert summary.outcome is Outcome.PARTIAL and summary.quarantined == 2
    reasons = {(q.object, q.source_id): (q.category, q.reason) for q in journal.quarantine_list()}
    assert reasons[("person", "p2")] == ("rejected", "Invalid value")
    assert reasons[("appointment", "a2")][0] == "dependency"
    assert [e.source_id for e in events if isinstance(e, ev.RecordFailed)] == ["p2", "a2"]

    # A full run leaves quarantined records for `retry`; the retry (map fixed) does just those.
    fixed = [person("p1"), person("p2"), appointment("a1", "p1"), appointment("a2", "p2")]
    again = await run(journal, dest, fixed)
    assert again.counts["person"].skipped == 1 and len(dest.live(Entity.CONTACTS)) == 1
    writes = dest.writes()
    retry = await run(journal, dest, fixed, kind=RunKind.RETRY, retry_quarantined=True,
                      only={("person", "p2"), ("appointment", "a2")})  # fmt: skip
    assert retry.outcome is Outcome.SUCCESS and dest.writes() == writes + 2
    assert journal.quarantine_list() == []


async def test_a_create_whose_answer_is_lost_is_found_not_sent_twice(journal) -> None:
    dest = FakeNutshell()
    dest.faults.append(Fault("create", Entity.CONTACTS, after=True))
    summary = await run(journal, dest, [person("p1"), appointment("a1", "p1")])
    assert summary.outcome is Outcome.SUCCESS and summary.recovered == 1
    assert len(dest.live(Entity.CONTACTS)) == 1 and len(dest.live(Entity.ACTIVITIES)) == 1
    states = [(e.action, e.state) for e in journal.entries(object_="person")]
    assert states == [(Action.CREATE, State.DONE)]


async def test_a_create_that_never_happened_is_sent_again_after_looking(journal) -> None:
    dest = FakeNutshell()
    dest.faults.append(Fault("create", Entity.ACTIVITIES, after=False))
    await run(journal, dest, [person("p1"), appointment("a1", "p1")])
    assert len(dest.live(Entity.ACTIVITIES)) == 1
    states = [e.state for e in journal.entries(object_="appointment")]
    assert states == [State.VOID, State.DONE]
    assert ("find", "activities") in dest.calls  # it looked before sending again


async def test_an_intent_left_open_by_a_crash_is_adopted_on_resume(journal) -> None:
    dest = FakeNutshell()
    await run(journal, dest, [person("p1")])
    # A crash right after Nutshell created a2's activity, before the outcome was journaled:
    r = journal.start_run(RunKind.FULL, 1)
    pid = journal.mapped("person", "p1").nutshell_id
    seq = journal.intent(r.id, "appointment", "a2", "activities", Action.CREATE, payload_hash="h",
                         marker="cliniko:appointment:a2", parent_id=pid, patient_id="p1")  # fmt: skip
    dest.seed(Entity.ACTIVITIES, {"name": "Consult", "description": "cliniko:appointment:a2"})
    journal.mark_stale_runs_interrupted()
    summary = await run(journal, dest, [person("p1"), appointment("a2", "p1")])
    assert journal.entry(seq).state is State.DONE and summary.recovered == 1
    assert len(dest.live(Entity.ACTIVITIES)) == 1
    # adopted with the crashed intent's hash, so the plan's hash differs: the record is brought up to date
    assert journal.mapped("appointment", "a2").payload_hash != "h"


async def test_nutshell_unreachable_stops_the_run_resumably(journal) -> None:
    dest = FakeNutshell()
    dest.faults.append(Fault("create", Entity.ACTIVITIES, kind="unavailable", after=False))
    ops = [person("p1"), appointment("a1", "p1"), appointment("a2", "p1")]
    summary = await run(journal, dest, ops, workers=1)
    assert summary.outcome is Outcome.FAILURE and summary.status is RunStatus.INTERRUPTED
    assert journal.run(summary.run_id).status is RunStatus.INTERRUPTED
    done = await run(journal, dest, ops)
    assert done.outcome is Outcome.SUCCESS and len(dest.live(Entity.ACTIVITIES)) == 2
    assert journal.open_entries() == []


async def test_a_change_in_cliniko_updates_and_a_nutshell_edit_is_a_conflict(journal) -> None:
    dest = FakeNutshell()
    await run(journal, dest, [person("p1", occupation="Nurse"), person("p2", occupation="Chef")])
    pid2 = journal.mapped("person", "p2").nutshell_id
    dest.edit(pid2, occupation="Edited in Nutshell")
    events: list = []
    summary = await run(journal, dest, [person("p1", occupation="Doctor"), person("p2", occupation="Baker")],
                        kind=RunKind.DELTA, events=events)  # fmt: skip
    assert summary.counts["person"].updated == 1 and summary.counts["person"].conflicts == 1
    assert summary.outcome is Outcome.PARTIAL
    assert dest.records[pid2].fields["occupation"] == "Edited in Nutshell"
    p1 = dest.records[journal.mapped("person", "p1").nutshell_id]
    assert p1.fields["occupation"] == "Doctor"
    (conflict,) = journal.conflicts(summary.run_id)
    assert conflict.decision == "skip" and conflict.fields == ["occupation"]
    assert any(isinstance(e, ev.ConflictFound) for e in events)
    update = journal.entries(summary.run_id)[0]
    assert update.action is Action.UPDATE and update.pre_image["before"] == {"occupation": "Nurse"}

    asked: list[ConflictInfo] = []

    async def ask(info: ConflictInfo) -> ConflictPolicy:
        asked.append(info)
        return ConflictPolicy.OVERWRITE

    await run(journal, dest, [person("p1", occupation="Doctor"), person("p2", occupation="Baker")],
              kind=RunKind.DELTA, conflicts=ConflictPolicy.ASK, ask=ask)  # fmt: skip
    assert [i.fields for i in asked] == [("occupation",)]
    assert dest.records[pid2].fields["occupation"] == "Baker"


async def test_a_related_change_is_not_a_conflict(journal) -> None:
    """Our own later writes (a note on the person) may bump its rev; only content edits are conflicts."""
    dest = FakeNutshell()
    await run(journal, dest, [person("p1", occupation="Nurse")])
    dest.records[journal.mapped("person", "p1").nutshell_id].rev += 3
    summary = await run(journal, dest, [person("p1", occupation="Doctor")], kind=RunKind.DELTA)
    assert summary.counts["person"].updated == 1 and summary.conflicts == 0


async def test_a_changed_note_is_replaced(journal) -> None:
    dest = FakeNutshell()
    await run(journal, dest, [person("p1"), note("n1", "p1", "v1")])
    old = journal.mapped("treatment_note", "n1").nutshell_id
    await run(journal, dest, [person("p1"), note("n1", "p1", "v2")], kind=RunKind.DELTA)
    new = journal.mapped("treatment_note", "n1").nutshell_id
    assert new != old and dest.records[old].deleted
    assert [n.fields["body"] for n in dest.live(Entity.NOTES)] == ["v2\n\ncliniko:treatment_note:n1"]


async def test_an_upload_whose_answer_is_lost_is_found_by_name(journal, tmp_path) -> None:
    dest = FakeNutshell()
    dest.faults.append(Fault("upload", Entity.FILES, after=True))
    await run(journal, dest, standard_plan(tmp_path))
    doc = dest.records[journal.mapped("attachment_activity", "p1").nutshell_id]
    assert [f["name"] for f in doc.files] == ["scan.pdf"]


async def test_pause_holds_new_work_until_resume(journal) -> None:
    dest = FakeNutshell()
    ops = [person(f"p{i}") for i in range(20)]
    r = journal.start_run(RunKind.FULL, 1)
    events: list = []
    runner = Runner(journal, dest, r, ListPlan(ops), RunSettings(workers=1), events.append)
    runner.pause()
    task = asyncio.create_task(runner.execute())
    await asyncio.sleep(0.05)
    assert dest.writes() == 0 and journal.run(r.id).status is RunStatus.PAUSED
    runner.resume()
    summary = await task
    assert summary.outcome is Outcome.SUCCESS and dest.writes() == 20
    assert [type(e) for e in events if isinstance(e, ev.RunPaused | ev.RunResumed)] == [ev.RunPaused, ev.RunResumed]


async def test_stop_leaves_a_resumable_run(journal) -> None:
    dest = FakeNutshell()
    ops = [person(f"p{i}") for i in range(30)]
    r = journal.start_run(RunKind.FULL, 1)

    def sink(event: object) -> None:
        if isinstance(event, ev.ObjectProgress) and event.done >= 5:
            runner.stop()

    runner = Runner(journal, dest, r, ListPlan(ops), RunSettings(workers=1, progress_interval=0), sink)
    summary = await runner.execute()
    assert summary.status is RunStatus.PAUSED and 5 <= dest.writes() < 30
    await run(journal, dest, ops)
    assert len(dest.live(Entity.CONTACTS)) == 30


async def test_a_failing_sink_does_not_stop_the_run(journal) -> None:
    dest = FakeNutshell()

    def broken(_event: object) -> None:
        raise RuntimeError("the screen went away")

    r = journal.start_run(RunKind.FULL, 1)
    summary = await Runner(journal, dest, r, ListPlan([person("p1")]), RunSettings(), broken).execute()
    assert summary.outcome is Outcome.SUCCESS


async def test_the_dashboard_gets_throughput_eta_and_both_budgets(journal) -> None:
    dest = FakeNutshell()
    events: list = []
    ops = [person(f"p{i}") for i in range(40)]
    summary = await run(journal, dest, ops, events=events, tick_interval=0.001, cliniko_budget=lambda: (150, 200))
    assert summary.outcome is Outcome.SUCCESS
    rates = [e for e in events if isinstance(e, ev.Throughput)]
    budgets = [e for e in events if isinstance(e, ev.Budgets)]
    assert rates and rates[-1].total == 40 and all(e.ops_per_second >= 0 for e in rates)
    assert any(e.eta_seconds is not None for e in rates)
    assert budgets and (budgets[-1].nutshell_concurrency, budgets[-1].cliniko_remaining) == (4, 150)
    progress = [e for e in events if isinstance(e, ev.ObjectProgress) and e.object == "person"]
    assert progress[-1].done == progress[-1].total == 40 and progress[-1].created == 40
