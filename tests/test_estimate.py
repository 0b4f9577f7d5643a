"""The floor the APIs allow and the estimate shown before a run: pure arithmetic."""

from __future__ import annotations

import pytest

from cliniko2nutshell.engine.estimate import DEFAULT_LATENCY_MS, duration_text, estimate, floor_seconds


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
