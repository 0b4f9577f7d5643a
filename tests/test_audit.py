"""The audit log query (engine/audit.py) over a real journal: filters, paging in journal order, counts, facets
for the menus, and the CSV export (formula cells neutralised, private file)."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from cliniko2nutshell.engine.audit import (
    AuditEntry,
    AuditFilter,
    audit_entries,
    audit_facets,
    count_audit_entries,
    write_audit_csv,
)
from cliniko2nutshell.engine.journal import Action, Journal, RunKind, State
from cliniko2nutshell.project import Project


@pytest.fixture
def journal(project: Project) -> Journal:
    """Two runs: a sample (3 people created, one failed with a formula-looking error) and a rollback."""
    j = Journal(project.store)
    sample = j.start_run(RunKind.SAMPLE, 1)
    for i, pid in enumerate(("101", "102", "103")):
        seq = j.intent(sample.id, "person", pid, "contacts", Action.CREATE)
        if i == 2:
            j.settle(seq, State.FAILED, '=HYPERLINK("x") Invalid phone number (POST /contacts)')
        else:
            j.complete(seq, nutshell_id=f"{i + 1}-contacts")
    seq = j.intent(sample.id, "appointment", "555", "activities", Action.CREATE)
    j.complete(seq, nutshell_id="9-activities")
    undo = j.start_run(RunKind.ROLLBACK, 1)
    seq = j.intent(undo.id, "person", "101", "contacts", Action.DELETE, target_id="1-contacts")
    j.complete(seq, nutshell_id=None)
    return j


def test_entries_come_in_journal_order_with_their_run_and_ids(project: Project, journal: Journal) -> None:
    entries = audit_entries(project.store, AuditFilter())
    assert [(e.run_kind, e.object, e.action, e.cliniko_id, e.status) for e in entries] == [
        ("sample", "person", "create", "101", "done"),
        ("sample", "person", "create", "102", "done"),
        ("sample", "person", "create", "103", "failed"),
        ("sample", "appointment", "create", "555", "done"),
        ("rollback", "person", "delete", "101", "done"),
    ]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert entries[0].nutshell_id == "1-contacts" and entries[2].nutshell_id is None
    assert entries[4].nutshell_id == "1-contacts"  # a delete names the record it acted on
    assert "Invalid phone number" in (entries[2].error or "")
    assert all(e.at.endswith("Z") for e in entries) and isinstance(entries[0], AuditEntry)


def test_filters_narrow_and_combine(project: Project, journal: Journal) -> None:
    store = project.store
    rollback = journal.last_run(RunKind.ROLLBACK)
    assert rollback is not None
    cases = {
        AuditFilter(run=rollback.id): ["101"],
        AuditFilter(object="appointment"): ["555"],
        AuditFilter(action="delete"): ["101"],
        AuditFilter(status="failed"): ["103"],
        AuditFilter(object="person", status="done"): ["101", "102", "101"],
        AuditFilter(text="phone"): ["103"],  # in the error, any case
        AuditFilter(text="9-ACT"): ["555"],  # in the Nutshell id
        AuditFilter(text="10"): ["101", "102", "103", "101"],  # in the Cliniko id
        AuditFilter(text="%"): [],  # LIKE's wildcards are taken literally
        AuditFilter(object="nothing"): [],
    }
    for flt, ids in cases.items():
        assert [e.cliniko_id for e in audit_entries(store, flt)] == ids, flt
        assert count_audit_entries(store, flt) == len(ids), flt


def test_paging_returns_consecutive_slices(project: Project, journal: Journal) -> None:
    store = project.store
    everything = audit_entries(store, AuditFilter())
    pages = [audit_entries(store, AuditFilter(), limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [e for p in pages for e in p] == everything
    with pytest.raises(ValueError):
        audit_entries(store, AuditFilter(), offset=-1)


def test_facets_list_what_occurs(project: Project, journal: Journal) -> None:
    facets = audit_facets(project.store)
    assert [r["kind"] for r in facets["runs"]] == ["rollback", "sample"]  # newest first
    assert facets["objects"] == ["appointment", "person"]
    assert facets["actions"] == ["create", "delete"]
    assert facets["statuses"] == ["done", "failed"]


def test_the_csv_export_is_private_and_safe_in_a_spreadsheet(
    project: Project, journal: Journal, tmp_path: Path
) -> None:
    out = tmp_path / "audit.csv"
    assert write_audit_csv(project.store, AuditFilter(object="person"), out) == 4
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["cliniko_id"] for r in rows] == ["101", "102", "103", "101"]
    assert rows[2]["error"].startswith("'=HYPERLINK")  # a formula would run when opened
    assert set(rows[0]) >= {"at", "run_id", "run_kind", "object", "action", "cliniko_id", "nutshell_id", "status"}
    with pytest.raises(FileNotFoundError):
        write_audit_csv(project.store, AuditFilter(), tmp_path / "no-such-folder" / "a.csv")


def test_an_empty_journal_has_no_entries_and_empty_menus(project: Project) -> None:
    assert audit_entries(project.store, AuditFilter()) == []
    assert count_audit_entries(project.store, AuditFilter(status="failed")) == 0
    assert audit_facets(project.store) == {"runs": [], "objects": [], "actions": [], "statuses": []}


def test_filters_and_menus_read_indexes_not_the_whole_journal(project: Project, journal: Journal) -> None:
    """At 100,000 patients the journal has millions of rows (tests/benchmarks/bench_audit.py): a filter on a rare
    status or the menus must seek in an index (store migration 6), not scan the table."""
    from cliniko2nutshell.engine.audit import _SELECT, _where

    conn = project.store.conn
    for flt, index in (
        (AuditFilter(status="unknown"), "journal_audit_state"),
        (AuditFilter(action="undelete"), "journal_audit_action"),
        (AuditFilter(object="company"), "journal_audit_object"),
    ):
        where, args = _where(flt)
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {_SELECT}{where} ORDER BY j.seq", args))
        assert index in plan and "TEMP B-TREE" not in plan, plan
    plan = " ".join(
        r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT MIN(state) FROM journal WHERE state > 'done'")
    )
    assert "journal_audit_state" in plan, plan
