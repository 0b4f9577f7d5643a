"""Which patients Nutshell already holds, by e-mail, for at most min(distinct e-mails, pages of people) requests,
against the Nutshell sandbox over real HTTP (its own tally counts the requests)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.existing import PAGE, people_by_email
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, default_seed, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

PEOPLE = 2 * PAGE + 30  # three pages of people


@pytest.fixture(scope="module")
def crowded() -> Iterator[NutshellSandbox]:
    """An account already holding PEOPLE people (person i has e-mail person<i>@example.org), two of them with
    mixed-case e-mails and one deleted."""
    seed: dict[str, Any] = copy.deepcopy(default_seed())
    seed["people"] = [
        {"name": f"Person {i}", "emails": [f"person{i}@example.org" if i % 50 else f"Person{i}@Example.ORG"]}
        for i in range(PEOPLE - len(seed["people"]))
    ] + seed["people"]
    sandbox = start_nutshell_sandbox(seed)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def requests_served(sandbox: NutshellSandbox) -> dict[str, int]:
    tally = httpx.get(f"{sandbox.base_url}/_sandbox/requests", timeout=10).json()
    httpx.post(f"{sandbox.base_url}/_sandbox/requests", timeout=10)  # reset
    return tally["by_label"]


async def look(sandbox: NutshellSandbox, emails: list[str], total: int | None = None) -> Any:
    requests_served(sandbox)
    async with NutshellClient(sandbox.username, sandbox.api_key, sandbox.rest_url, read_revs=False) as client:
        found = await people_by_email(client, emails, total=total)
    return found, requests_served(sandbox)


async def test_few_emails_in_a_big_account_are_looked_up_one_by_one(crowded: NutshellSandbox) -> None:
    found, served = await look(crowded, ["person7@example.org"])
    assert served == {"GET /rest/contacts": 1} and found.requests == 1 and found.strategy == "lookups"
    assert [p.name for p in found.found["person7@example.org"]] == ["Person 7"]
    # Two e-mails, nothing known of the account: the first page tells its size (one request more, at most).
    found, served = await look(crowded, ["PERSON100@example.org", "nobody@example.org"])
    assert found.strategy == "lookups" and found.total == PEOPLE
    assert served == {"GET /rest/contacts": 3} and found.requests == 3
    assert set(found.found) == {"person100@example.org"}  # compared trimmed and case-folded, both sides
    # With the size known from last time, exactly min(e-mails, pages).
    found, served = await look(crowded, ["person1@example.org", "person2@example.org"], total=PEOPLE)
    assert served == {"GET /rest/contacts": 2} and found.strategy == "lookups"


async def test_many_emails_read_the_pages_instead(crowded: NutshellSandbox) -> None:
    emails = [f"person{i}@example.org" for i in range(0, 40)] + ["nobody@example.org"]
    found, served = await look(crowded, emails)
    pages = -(-PEOPLE // PAGE)
    assert found.strategy == "pages" and served == {"GET /rest/contacts": pages} and found.requests == pages
    assert set(found.found) == {f"person{i}@example.org" for i in range(40)}  # Person0@Example.ORG included
    found, served = await look(crowded, emails, total=PEOPLE)
    assert served == {"GET /rest/contacts": pages}
    assert len(found.found) == 40


async def test_an_account_that_grew_since_its_size_was_learned_is_read_to_its_end(crowded: NutshellSandbox) -> None:
    emails = [f"person{i}@example.org" for i in range(PEOPLE - 10, PEOPLE - 3)]
    found, served = await look(crowded, emails, total=PAGE - 5)  # it held under a page then
    assert found.strategy == "pages" and set(found.found) == set(emails)
    assert served == {"GET /rest/contacts": -(-PEOPLE // PAGE)} and found.total == PEOPLE


async def test_no_emails_cost_nothing(crowded: NutshellSandbox) -> None:
    found, served = await look(crowded, ["", "not-an-email", None])  # type: ignore[list-item]
    assert served == {} and found.requests == 0 and not found.found
