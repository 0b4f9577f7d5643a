"""Settling operations whose outcome is unknown: look in Nutshell, adopt or void, never send blindly."""

from __future__ import annotations

from pathlib import Path

import pytest

from cliniko2nutshell.engine.destination import Entity, FileSpec
from cliniko2nutshell.engine.journal import Action, Journal, MapWrite, Origin, RunKind, State
from cliniko2nutshell.engine.markers import PATIENT_ID_FIELD, fingerprint
from cliniko2nutshell.engine.recovery import settle_open
from cliniko2nutshell.project.store import Store
from tests.fakes.destination import FakeNutshell


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(Store(tmp_path / "m.db"))


def mapped_person(journal: Journal, dest: FakeNutshell, run_id: int) -> str:
    nid = dest.seed(Entity.CONTACTS, {"name": "P", "customFields": {PATIENT_ID_FIELD: "p1"}})
    seq = journal.intent(run_id, "person", "p1", "contacts", Action.CREATE, payload_hash="h1", marker="p1")
    remote = dest._remote(dest.records[nid])
    journal.complete(seq, nutshell_id=nid, fingerprint=fingerprint(remote.fields),
                     map_to=MapWrite("person", "p1", "contacts", nid, "h1", Origin.CREATED, run_id))  # fmt: skip
    return nid


async def test_an_update_that_landed_is_recorded_and_one_that_did_not_is_void(journal: Journal) -> None:
    dest = FakeNutshell()
    run = journal.start_run(RunKind.DELTA, 1)
    nid = mapped_person(journal, dest, run.id)
    pre = {"before": {"occupation": None}, "after": {"occupation": "Nurse"}}
    landed = journal.intent(run.id, "person", "p1", "contacts", Action.UPDATE, payload_hash="h2", target_id=nid,
                            pre_image=pre)  # fmt: skip
    dest.records[nid].fields["occupation"] = "Nurse"  # the update reached Nutshell; then the process died
    assert await settle_open(journal, dest) == 1
    assert journal.entry(landed).state is State.DONE and journal.mapped("person", "p1").payload_hash == "h2"
    lost = journal.intent(run.id, "person", "p1", "contacts", Action.UPDATE, payload_hash="h3", target_id=nid,
                          pre_image={"before": {}, "after": {"occupation": "Chef"}})  # fmt: skip
    await settle_open(journal, dest)
    assert journal.entry(lost).state is State.VOID and journal.mapped("person", "p1").payload_hash == "h2"
    assert dest.writes() == 0  # settling only reads


async def test_a_delete_cut_off_is_finished(journal: Journal) -> None:
    dest = FakeNutshell()
    run = journal.start_run(RunKind.ROLLBACK, 1)
    nid = mapped_person(journal, dest, run.id)
    seq = journal.intent(run.id, "person", "p1", "contacts", Action.DELETE, target_id=nid)
    await settle_open(journal, dest)
    assert journal.entry(seq).state is State.DONE and dest.records[nid].deleted
    assert journal.mapped("person", "p1") is None


async def test_an_upload_is_found_by_its_name_on_its_activity(journal: Journal, tmp_path: Path) -> None:
    dest = FakeNutshell()
    run = journal.start_run(RunKind.FULL, 1)
    host = dest.seed(Entity.ACTIVITIES, {"name": "Attachment"})
    blob = tmp_path / "x.pdf"
    blob.write_bytes(b"%PDF")
    await dest.upload_file(host, FileSpec(blob, "x.pdf", 4, "s"))
    found = journal.intent(run.id, "attachment_file", "a1", "files", Action.UPLOAD, payload_hash="h",
                           marker="x.pdf", target_id=host, parent_id=host)  # fmt: skip
    missing = journal.intent(run.id, "attachment_file", "a2", "files", Action.UPLOAD, payload_hash="h",
                             marker="y.pdf", target_id=host, parent_id=host)  # fmt: skip
    await settle_open(journal, dest)
    assert journal.entry(found).state is State.DONE and journal.mapped("attachment_file", "a1").parent_id == host
    assert journal.entry(missing).state is State.VOID and journal.mapped("attachment_file", "a2") is None


async def test_a_replacement_cut_off_after_its_new_note_deletes_the_old_one(journal: Journal) -> None:
    dest = FakeNutshell()
    run = journal.start_run(RunKind.DELTA, 1)
    parent = mapped_person(journal, dest, run.id)
    old = dest.seed(Entity.NOTES, {"body": "v1\n\ncliniko:treatment_note:n1", "parent": parent})
    seq = journal.intent(run.id, "treatment_note", "n1", "notes", Action.CREATE, payload_hash="h2",
                         marker="cliniko:treatment_note:n1", parent_id=parent,
                         pre_image={"replaces": old, "old_hash": "h1"})  # fmt: skip
    new = dest.seed(Entity.NOTES, {"body": "v2\n\ncliniko:treatment_note:n1", "parent": parent})
    await settle_open(journal, dest)
    # both carry the marker: the new one is adopted, the old one deleted (journaled), nothing sent twice
    assert journal.entry(seq).state is State.DONE
    assert journal.mapped("treatment_note", "n1").nutshell_id == new
    assert dest.records[old].deleted and not dest.records[new].deleted
    assert [e.action for e in journal.entries(run.id) if e.object == "treatment_note"] == [Action.CREATE, Action.DELETE]
