"""Whole migrations under faults, the data and the accounts changing: extraction, full run, delta and rollback of a
small seeded clinic with the sandboxes' knobs set to one fault each (tests/scenarios.py runs and checks each step).

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
    Scenario("people edited in Nutshell", writes_only={"edit_every": 25, "seed": 15}),
    Scenario("Cliniko edits during extraction", extract_only={"edit_every": 6, "seed": 16}),
    Scenario("custom-field cap reached", custom_field_cap=3),
    Scenario("file over the size limit", file_size_limit=200_000),
    Scenario("Nutshell key revoked", revoke=True),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_journey_under_faults(scenario: Scenario, small: Template, clean: Reference, tmp_path: Path) -> None:
    journey_under_faults(scenario, small, clean, tmp_path)
