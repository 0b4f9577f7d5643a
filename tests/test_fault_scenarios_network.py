"""Whole migrations under faults, the network misbehaving: extraction, full run, delta and rollback of a small
seeded clinic with the sandboxes' knobs set to one fault each (tests/scenarios.py runs the journey, checks each step).

With C2N_SCENARIO_TABLE=<file> set, each scenario appends its row (records attempted, migrated, quarantined,
duplicated, lost, how each step ended) to that file as one JSON line: the table of the issue's closing note.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios import Reference, Scenario, clean, journey_under_faults, small
from tests.test_migration_e2e import Template

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["clean", "small"]  # the module's fixtures

SCENARIOS = [
    Scenario("5xx", both={"fault_rate": 0.05, "faults": ["500", "502", "503"], "seed": 11}),
    Scenario("dropped connections", both={"fault_rate": 0.05, "faults": ["drop"], "seed": 12}),
    Scenario("slower than the timeout", both={"fault_rate": 0.03, "faults": ["slow"], "slow_seconds": 1.6, "seed": 13}),
    Scenario("429 storms, reset headers", both={"storm_every": 4.0, "storm_length": 1.0, "storm_fault": "429"}),
    Scenario("429 storms, no headers", both={"storm_every": 4.0, "storm_length": 1.0, "storm_fault": "429-bare"}),
    Scenario("truncated JSON", both={"fault_rate": 0.05, "faults": ["truncated"], "seed": 14}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_journey_under_faults(scenario: Scenario, small: Template, clean: Reference, tmp_path: Path) -> None:
    journey_under_faults(scenario, small, clean, tmp_path)
