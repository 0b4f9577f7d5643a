"""The journal, the id map, markers, field comparison and sample selection: the engine's pure parts."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from cliniko2nutshell.engine.destination import AfterJournal, Entity, Remote
from cliniko2nutshell.engine.fields import before_of, changes_needed, fill_empty, holds, restrict, same
from cliniko2nutshell.engine.journal import Action, Journal, MapWrite, Origin, RunKind, RunStatus, State
from cliniko2nutshell.engine.markers import (
    PATIENT_ID_FIELD,
    edited_fields,
    fingerprint,
    marker,
    markers_in,
    remote_markers,
    with_marker,
)
from cliniko2nutshell.engine.ops import GROUPS, OBJECTS, Op, RecordRef, dependents
from cliniko2nutshell.engine.sample import select_sample
from cliniko2nutshell.mapping.catalog import Catalog
from cliniko2nutshell.mapping.outputs import KINDS
from cliniko2nutshell.nutshell.concurrency import AdaptiveLimiter, Slot
from cliniko2nutshell.project.store import Store
from tests.fakes.clinic_store import load_clinic


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(Store(tmp_path / "m.db"))


def test_an_intent_is_durable_before_its_outcome_and_completes_with_the_id_map(journal: Journal) -> None:
    run = journal.start_run(RunKind.FULL, map_version=3, options={"x": 1})
    seq = journal.intent(run.id, "person", "p1", "contacts", Action.CREATE, payload_hash="h", marker="p1")
    # a second connection (another process after a crash) sees the open intent
    other = Journal(Store(journal.store.path))
    assert [e.seq for e in other.open_entries()] == [seq] and other.mapped("person", "p1") is None
    row = MapWrite("person", "p1", "contacts", "5-contacts", "h", Origin.CREATED, run.id)
    journal.complete(seq, nutshell_id="5-contacts", rev="2", fingerprint="{}", map_to=row)
    assert other.open_entries() == []
    m = other.mapped("person", "p1")
    assert (m.nutshell_id, m.payload_hash, m.origin, m.created_run_id) == ("5-contacts", "h", Origin.CREATED, run.id)
    assert other.run(run.id).map_version == 3 and other.run(run.id).options == {"x": 1}


def test_a_later_write_keeps_the_records_first_run_and_origin(journal: Journal) -> None:
    r1 = journal.start_run(RunKind.FULL, 1)
    r2 = journal.start_run(RunKind.DELTA, 2)
    for run, h in ((r1, "a"), (r2, "b")):
        seq = journal.intent(run.id, "person", "p1", "contacts", Action.CREATE, payload_hash=h)
        row = MapWrite("person", "p1", "contacts", "5-contacts", h, Origin.CREATED, run.id)
        journal.complete(seq, nutshell_id="5-contacts", map_to=row)
    m = journal.mapped("person", "p1")
    assert (m.created_run_id, m.run_id, m.payload_hash) == (r1.id, r2.id, "b")


def test_unmap_only_removes_the_record_it_names(journal: Journal) -> None:
    run = journal.start_run(RunKind.FULL, 1)
    seq = journal.intent(run.id, "treatment_note", "n1", "notes", Action.CREATE)
    journal.complete(
        seq,
        nutshell_id="9-notes",
        map_to=MapWrite("treatment_note", "n1", "notes", "9-notes", "h", Origin.CREATED, run.id),
    )
    seq = journal.intent(run.id, "treatment_note", "n1", "notes", Action.DELETE, target_id="8-notes")
    journal.complete(seq, nutshell_id="8-notes", unmap=("treatment_note", "n1", "8-notes"))  # an older note
    assert journal.mapped("treatment_note", "n1").nutshell_id == "9-notes"


def test_quarantine_counts_attempts_and_clears(journal: Journal) -> None:
    run = journal.start_run(RunKind.FULL, 1)
    journal.quarantine(run.id, "person", "p1", "rejected", "Invalid phone number", "p1")
    journal.quarantine(run.id, "person", "p1", "rejected", "Invalid phone number", "p1")
    (q,) = journal.quarantine_list()
    assert (q.attempts, q.reason, q.patient_id) == (2, "Invalid phone number", "p1")
    journal.unquarantine("person", "p1")
    assert journal.quarantine_list() == []


def test_runs_left_running_by_a_dead_process_are_interrupted(journal: Journal) -> None:
    run = journal.start_run(RunKind.FULL, 1)
    assert journal.mark_stale_runs_interrupted() == [run.id]
    assert journal.run(run.id).status is RunStatus.INTERRUPTED
    journal.settle(journal.intent(run.id, "person", "p", "contacts", Action.CREATE), State.VOID)
    assert journal.open_entries() == []


def test_markers_round_trip_and_are_added_once() -> None:
    m = marker("appointment", "836447129235883061")
    assert m == "cliniko:appointment:836447129235883061"
    text = with_marker("Agenda", m)
    assert text == f"Agenda\n\n{m}" and with_marker(text, m) == text and with_marker(None, m) == m
    assert markers_in(f"Migrated from Cliniko ({m})") == [("appointment", "836447129235883061")]
    assert remote_markers("contacts", {"customFields": {PATIENT_ID_FIELD: "42"}}) == [("person", "42")]
    assert remote_markers("contacts", {"customFields": {}}) == []


def test_ops_carry_their_marker_and_hash_what_they_would_send() -> None:
    a = Op("appointment", "1", payload={"name": "x", "links": {"participants": [RecordRef("person", "p")]}})
    assert a.payload["description"] == "cliniko:appointment:1"
    b = Op("appointment", "1", payload={"name": "x", "links": {"participants": [RecordRef("person", "q")]}})
    assert a.hash != b.hash and a.hash == Op("appointment", "1", payload=dict(a.payload)).hash
    p = Op("person", "7", payload={"name": "P"})
    assert p.payload["customFields"] == {PATIENT_ID_FIELD: "7"} and p.marker == "7"
    with pytest.raises(ValueError, match="unknown migration object"):
        Op("invoice", "1", payload={})


def test_engine_objects_are_the_mapping_kinds() -> None:
    assert set(OBJECTS) == set(KINDS)
    assert {o for objs in GROUPS.values() for o in objs} == set(OBJECTS)
    assert dependents({"person"}) == set(OBJECTS) - {"company", "business_company"}
    assert dependents({"attachment_activity"}) == {"attachment_activity", "attachment_file"}


def test_fingerprints_name_the_fields_someone_edited() -> None:
    before = {"name": "A", "customFields": {"Date of Birth": "2000-01-01", "X": "1"}, "files": [1]}
    taken = fingerprint(before)
    assert edited_fields(taken, before | {"files": [1, 2]}) == []  # our own uploads are not edits
    after = {"name": "B", "customFields": {"Date of Birth": "2000-01-01"}}
    assert edited_fields(taken, after) == ["customFields.X", "name"]
    assert edited_fields(taken, {**before, "description": ""}) == []  # empty is empty


def test_fingerprints_taken_from_what_we_sent_survive_nutshells_rewriting() -> None:
    sent = {
        "name": "Zoë Ångström",
        "emails": [{"isPrimary": True, "name": "home", "value": "Zoe@Example.org"}],
        "phones": [{"isPrimary": True, "name": "mobile", "value": "0412 000 111"}],
        "addresses": [{"isPrimary": True, "name": "home", "address_1": "1 Beach Rd", "city": "Hampton"}],
        "customFields": {"Balance Due": "60.5", "Date of Birth": "1980-02-29", "Cliniko Patient ID": "42"},
        "links": {"owner": "5-users", "accounts": ["2-accounts", "1-accounts"]},
    }
    read = {
        "name": " Zoë Ångström",
        "emails": [{"isPrimary": True, "name": None, "value": "zoe@example.org"}],
        "phones": [{"isPrimary": True, "name": "Mobile", "value": "+61412000111"}],
        "addresses": [{"isPrimary": True, "name": "Home", "address_1": "1 Beach Rd", "city": "Hampton"}],
        "customFields": {"Balance Due": {"currency": "AUD", "amount": "60.50"},
                         "Date of Birth": "1980-02-29T00:00:00+0000", "Cliniko Patient ID": 42, "Empty": ""},
        "links": {"owner": "5-users", "accounts": ["1-accounts", "2-accounts"]},
    }  # fmt: skip
    taken = fingerprint(sent)
    assert edited_fields(taken, read) == []
    edited = {**read, "phones": [{"isPrimary": True, "value": "+61412999888"}], "links": {"owner": "6-users"}}
    edited["customFields"] = {**read["customFields"], "Date of Birth": "1980-03-01"}
    assert edited_fields(taken, edited) == ["customFields.Date of Birth", "links.accounts", "links.owner", "phones"]


def test_field_comparison() -> None:
    assert same([{"isPrimary": True, "value": "a@b.c"}], [{"isPrimary": True, "name": "x", "value": "a@b.c"}])
    assert same("60.00", {"currency": "USD", "amount": "60.00"}) and same(60, "60.00")
    assert same(["1-contacts", "2-users"], ["2-users", "1-contacts"]) and not same(["1"], ["1", "2"])
    assert same(None, "") and not same("x", None) and not same(True, 1)
    stored = {"name": "Theirs", "phones": [], "customFields": {"A": "1"}}
    payload = {"name": "Ours", "phones": [{"value": "+61"}], "customFields": {"A": "2", "B": "3"}}
    assert fill_empty(payload, stored) == {"phones": [{"value": "+61"}], "customFields": {"B": "3"}}
    assert changes_needed(payload, stored) == payload
    assert before_of({"phones": [], "customFields": {"B": "3"}}, stored) == {"phones": [], "customFields": {"B": None}}
    assert restrict(payload, {"customFields.B", "name"}) == {"name": "Ours", "customFields": {"B": "3"}}
    assert holds(stored, {"customFields": {"A": "1"}}) and not holds(stored, {"name": "Ours"})


def test_the_stratified_sample_represents_every_type_status_and_practitioner(project, clinic_db: Path) -> None:
    load_clinic(project, clinic_db)
    catalog = Catalog.from_store(project.store)
    sel = select_sample(project.store, catalog, 100, seed=4)
    assert len(sel.patients) == 100 and not sel.uncovered
    kinds = {s.split(":")[0] for s in sel.strata}
    assert kinds == {"appointment_type", "practitioner", "invoice_status"}
    assert all(sel.strata[s] for s in sel.strata), [s for s in sel.strata if not sel.strata[s]]
    statuses = {s for s in sel.strata if s.startswith("invoice_status:")}
    assert statuses == {"invoice_status:10", "invoice_status:20", "invoice_status:30", "invoice_status:40"}
    assert sel == select_sample(project.store, catalog, 100, seed=4)  # deterministic
    assert set(sel.patients) <= {catalog.survivor(p) for p in sel.patients}  # no merged patient on its own
    named = select_sample(project.store, catalog, patients=[sel.patients[0]])
    assert named.patients == (sel.patients[0],) and named.named
    with pytest.raises(ValueError, match="100 to 500"):
        select_sample(project.store, catalog, 50)
    with pytest.raises(ValueError, match="no such patient"):
        select_sample(project.store, catalog, patients=["nope"])
    assert json.dumps(sel.strata)


async def test_every_write_waits_for_its_intent_on_disk_and_concurrent_writes_share_the_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "m.db")
    flushed: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.02)
        real_fsync(fd)
        flushed.append(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    journal = Journal(store)
    run = journal.start_run(RunKind.FULL, 1)
    sent: list[int] = []

    class Nutshell:
        async def create(self, entity: Entity, payload: dict[str, Any]) -> Remote:
            sent.append(len(flushed))  # fsyncs done when the call goes out
            return Remote(f"{len(sent)}-contacts")

        async def get(self, entity: Entity, id_: str) -> None:
            return None

    dest = AfterJournal(Nutshell(), journal.barrier)  # type: ignore[arg-type]

    async def write(i: int) -> None:
        journal.intent(run.id, "person", str(i), "contacts", Action.CREATE)
        await dest.create(Entity.CONTACTS, {"name": str(i)})

    await write(0)  # not durable (tests, or --no-fsync): no wait at all
    assert flushed == [] and sent == [0]
    journal.durable()
    await asyncio.gather(*(write(i) for i in range(1, 9)))
    assert all(n >= 1 for n in sent[1:])  # none went out before an fsync that followed its intent
    assert len(flushed) == 2  # the first intent's, then one for the seven committed while it ran
    assert await dest.get(Entity.CONTACTS, "1-contacts") is None and len(flushed) == 2  # reads never wait
    store.close()


def test_a_cap_on_concurrency_holds_the_limit_below_it() -> None:
    limiter = AdaptiveLimiter(initial=8, maximum=32)
    limiter.cap(4)
    assert (limiter.limit, limiter.maximum) == (4, 4)
    limiter.cap(12)  # nothing throttled yet: start at the cap
    assert limiter.limit == 12
    limiter.record_rate_limited(Slot(limiter._epoch))
    limiter.cap(16)  # throttled since: it recovers towards the new cap on its own, not at once
    assert limiter.limit == 6 and limiter.maximum == 16
