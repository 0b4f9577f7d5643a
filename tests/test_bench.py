"""`cliniko2nutshell bench` as a user runs it (a subprocess), on a 30-patient clinic: the figures it promises are
there, and the request counts, taken on the sandboxes' side of the wire, are exactly the fewest each phase needs:
one request per create, three per file, the existing-people check at min(e-mails, pages)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PHASE_KEYS = {"wall_floor_ratio", "requests", "minimum_requests", "peak_rss_mb", "throttled", "records"}


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "cliniko2nutshell", "bench", "--patients", "30", "--cliniko-rate", "0", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *table, last = done.stdout.strip().splitlines()
    assert any(line.startswith("migration") for line in table)  # the table comes first, readable
    return json.loads(last)


def test_the_last_line_holds_every_phase_with_its_figures(bench: dict[str, Any]) -> None:
    assert list(bench["phases"]) == ["extraction", "pre-flight", "migration", "second run", "reconcile", "rollback"]
    for name, phase in bench["phases"].items():
        assert set(phase) >= PHASE_KEYS, name
        assert phase["peak_rss_mb"] > 10 and phase["wall_seconds"] > 0, name
        assert phase["throttled"] == 0, name
    assert bench["estimate"]["summary"].startswith("about")


def test_writes_take_one_request_each_and_files_the_apis_three(bench: dict[str, Any]) -> None:
    per = bench["requests_per_write"]
    for kind in ("accounts", "activities", "notes"):
        assert per[kind]["writes"] > 0 and per[kind]["requests"] == per[kind]["writes"], kind
    # People: one POST each, and a read and a PATCH for each existing person linked.
    migration = bench["phases"]["migration"]["by_label"]
    linked = migration.get("PATCH /rest/contacts/{id}", 0)
    assert migration["POST /rest/contacts"] + linked == per["contacts"]["writes"]
    assert per["contacts"]["requests"] == migration["POST /rest/contacts"] + 2 * linked
    assert migration.get("rpc getContact", 0) == linked
    # Files: read the activity (rev and files), reserve, POST the bytes.
    files = per["files"]["writes"]
    assert files > 0 and per["files"]["requests"] == 3 * files
    assert migration["rpc getActivity"] == migration["rpc editActivity"] == migration["POST /file/api/{id}"] == files
    # The existing-people check: one page of the account's people after counting them (the pre-flight's snapshot;
    # `run` takes one to re-check the blockers), and the run's own check, which knows the count by then.
    assert bench["phases"]["pre-flight"]["by_label"]["GET /rest/contacts"] == 2
    assert migration["GET /rest/contacts"] == 3


def test_every_phase_but_the_rollback_makes_exactly_the_fewest_requests(bench: dict[str, Any]) -> None:
    for name in ("extraction", "pre-flight", "migration", "second run", "reconcile"):
        phase = bench["phases"][name]
        assert phase["requests"] == phase["minimum_requests"], (name, phase["by_label"])
    # The blocker check's snapshot and the activity types: nothing is written, nor read back.
    assert set(bench["phases"]["second run"]["by_label"]) == {
        "GET /rest/users", "GET /rest/activitytypes", "GET /rest/contacts/customfields/attributes",
        "GET /rest/accounts/customfields/attributes", "GET /rest/contacts", "GET /rest/accounts",
    }  # fmt: skip


def test_the_rollback_deletes_with_one_request_each_and_reads_pages_not_records(bench: dict[str, Any]) -> None:
    rollback = bench["phases"]["rollback"]
    labels = rollback["by_label"]
    # No read of one record before its delete: the look is by pages, each delete carries the rev it read there.
    assert not {k for k in labels if k.startswith("GET /rest/") and k.endswith("/{id}")}, labels
    assert "rpc getActivity" not in labels, labels
    deletes = sum(n for k, n in labels.items() if "delete" in k.lower())
    assert deletes == rollback["records"] - labels.get("PATCH /rest/contacts/{id}", 0)
    # The pages are read three times (preview, the look before deleting, the verification) where the minimum
    # counts two: within 10% at this size, and less as the clinic grows.
    assert rollback["requests"] <= 1.1 * rollback["minimum_requests"], labels
