"""The floor the APIs allow and the estimate shown before a run: pure arithmetic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cliniko2nutshell.cli_text import duration_lines
from cliniko2nutshell.engine.counts import RunSummary
from cliniko2nutshell.engine.estimate import (
    DEFAULT_LATENCY_MS,
    duration_text,
    estimate,
    estimate_for_project,
    floor_seconds,
    versus_actual,
)
from cliniko2nutshell.engine.journal import Outcome, RunStatus
from cliniko2nutshell.engine.run_report import write_run_report


def test_the_floor_is_the_rate_limits_or_the_round_trips_whichever_is_slower() -> None:
    assert floor_seconds(0, rate_per_min=200, latency_ms=50, concurrency=8) == 0
    # Round trips: 800 requests, 8 at a time, 50 ms each.
    assert floor_seconds(800, rate_per_min=None, latency_ms=50, concurrency=8) == pytest.approx(5.0)
    # A rolling window of 600 a minute: the first 600 at once, the next 600 a minute later, ...
    assert floor_seconds(600, rate_per_min=600, latency_ms=50, concurrency=8) == pytest.approx(3.75)
    assert floor_seconds(601, rate_per_min=600, latency_ms=50, concurrency=8) == pytest.approx(60.05)
    assert floor_seconds(1800, rate_per_min=600, latency_ms=0, concurrency=8) == pytest.approx(120)


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (0.2, 42, 61, 59 * 60, 3 * 3600 + 20 * 60 + 40, 2 * 3600 + 57 * 60)] == [
        "1 s", "42 s", "1 min", "59 min", "3 h 20 min", "3 h"
    ]  # fmt: skip


def test_the_estimate_costs_each_write_its_minimum_and_names_what_takes_the_time() -> None:
    counts = {
        "company": {"create": 20, "skip": 5},
        "person": {"create": 1000, "link": 10, "unmappable": 3},
        "appointment": 6000,
        "attachment_file": {"create": 100},
        "not_an_object": 7,
    }
    e = estimate(counts, latency_ms=1000, workers=10, service_ms=0)
    assert e.requests == {"companies": 20, "people": 1020, "activities": 6000, "files": 300}
    assert e.seconds == pytest.approx(734)  # 7,340 requests, 10 at a time, a second each
    assert e.phases["activities"] == pytest.approx(600)
    assert e.summary == "about 12 min, most of it appointments"
    slow = estimate(counts, latency_ms=100, workers=10, nutshell_rate_per_min=600, service_ms=0)
    assert slow.seconds == pytest.approx(12 * 60 + 0.1)  # 7,340 requests through a 600-a-minute window
    unmeasured = estimate(counts)
    assert unmeasured.inputs["latency_ms"] == DEFAULT_LATENCY_MS and not unmeasured.inputs["latency_measured"]
    assert estimate({}).summary == "nothing to move"


def test_extraction_is_estimated_from_pages_at_clinikos_rate() -> None:
    e = estimate({}, cliniko_records={"patients": 1000, "invoices": 50}, cliniko_files=190, cliniko_rate_per_min=200)
    assert e.requests["extraction"] == 1 + 10 + 1 + 190
    assert e.phases["extraction"] == pytest.approx(60 + DEFAULT_LATENCY_MS / 1000 + 0.004)
    assert e.summary.endswith("most of it reading Cliniko")


def _project(milestone: dict[str, Any] | None) -> Any:
    found = None if milestone is None else SimpleNamespace(detail=milestone)
    return SimpleNamespace(store=SimpleNamespace(milestone=lambda name: found if name == "connected" else None))


def test_a_projects_estimate_uses_the_latency_measured_while_connecting() -> None:
    counts = {"person": {"create": 800, "skip": 3}, "appointment": {"create": 3200}}
    measured = estimate_for_project(_project({"nutshell_latency_ms": 100.0, "cliniko_latency_ms": 80}), counts)
    assert measured.inputs["latency_ms"] == 100.0 and measured.inputs["latency_measured"]
    assert measured.requests == {"people": 800, "activities": 3200}
    assert str(measured) == measured.summary == "about 52 s, most of it appointments"  # 4,000 / 8 x 104 ms
    for absent in (None, {}, {"nutshell_latency_ms": None}):
        guessed = estimate_for_project(_project(absent), counts, workers=4)
        assert guessed.inputs["latency_ms"] == DEFAULT_LATENCY_MS and not guessed.inputs["latency_measured"]
        assert guessed.inputs["workers"] == 4


def test_expected_and_actual_side_by_side_in_run_order() -> None:
    expected = estimate({"appointment": 100, "person": 50}, latency_ms=100, workers=1, service_ms=0).as_dict()
    rows = versus_actual(expected, {"activities": 12.0, "people": 4.5, "notes": 0.2})
    assert rows == [("people", 5.0, 4.5), ("activities", 10.0, 12.0), ("notes", None, 0.2)]
    assert versus_actual(None, {"people": 1.0}) == [("people", None, 1.0)]


def test_the_run_report_and_the_run_summary_show_expected_beside_actual(tmp_path: Path) -> None:
    expected = estimate({"person": 80, "appointment": 400}, latency_ms=100, workers=4, service_ms=0).as_dict()
    summary = RunSummary(1, "full", Outcome.SUCCESS, RunStatus.FINISHED, elapsed_seconds=75.0,
                         phase_seconds={"people": 2.5, "activities": 70.0}, estimate=expected)  # fmt: skip
    assert duration_lines(summary) == [
        "Expected about 12 s, most of it appointments; took 1 min:",
        "  people      expected       2 s  took       2 s",
        "  activities  expected      10 s  took     1 min",
    ]
    journal = SimpleNamespace(quarantine_list=lambda: [])
    _, page = write_run_report(summary, journal, tmp_path)  # type: ignore[arg-type]
    text = page.read_text()
    assert "<h2>Duration</h2>" in text and "Expected before the run: about 12 s, most of it appointments." in text
    assert "<td>whole run</td><td>12 s</td><td>1 min</td>" in text.replace("\n", "")
    assert duration_lines(RunSummary(2, "full", Outcome.SUCCESS, RunStatus.FINISHED)) == []
