"""Many records by id for the fewest requests (nutshell/many.py), against the Nutshell sandbox over real HTTP (its
own tally counts the requests; JSON-RPC's endpoint discovery, once per process, is left out): a read each when
they are few, the type's pages when those cost less, and the activities' revs from JSON-RPC stubs so that their
deletes take one request."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cliniko2nutshell.nutshell.client import NutshellClient
from cliniko2nutshell.nutshell.errors import ConflictError
from cliniko2nutshell.nutshell.many import PAGE, records_by_id
from cliniko2nutshell.sandbox.nutshell_app import NutshellSandbox, default_seed, start_nutshell_sandbox

pytestmark = pytest.mark.e2e

PEOPLE = 2 * PAGE + 30  # three pages of people
ACTIVITIES = PAGE + 20  # two pages of activities


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[NutshellSandbox, list[str], list[str]]]:
    """An account of PEOPLE people and ACTIVITIES activities; the ids of both."""
    seed: dict[str, Any] = copy.deepcopy(default_seed())
    seed["people"] = [{"name": f"Person {i}"} for i in range(PEOPLE - len(seed["people"]))] + seed["people"]
    sandbox = start_nutshell_sandbox(seed)

    async def fill() -> tuple[list[str], list[str]]:
        async with client_of(sandbox) as client:
            people = [p.id.rest async for p in client.iter_people()]
            made = await asyncio.gather(*(
                client.create_activity({"name": f"Visit {i}", "startTime": 1767607200,
                                        "endTime": 1767609000, "links": {"participants": [people[i]]}})
                for i in range(ACTIVITIES)
            ))  # fmt: skip
        return people, [w.id.rest for w in made]

    try:
        people, activities = asyncio.run(fill())
        yield sandbox, people, activities
    finally:
        sandbox.stop()


def client_of(sandbox: NutshellSandbox) -> NutshellClient:
    return NutshellClient(sandbox.username, sandbox.api_key, sandbox.rest_url, read_revs=False)


def served(sandbox: NutshellSandbox) -> dict[str, int]:
    tally = httpx.get(f"{sandbox.base_url}/_sandbox/requests", timeout=10).json()
    httpx.post(f"{sandbox.base_url}/_sandbox/requests", timeout=10)  # reset
    return {k: v for k, v in tally["by_label"].items() if k != "POST /v1/json"}  # JSON-RPC discovery, once a client


async def by_id(sandbox: NutshellSandbox, family: Any, ids: list[str], **kw: Any) -> tuple[Any, dict[str, int]]:
    served(sandbox)
    async with client_of(sandbox) as client:
        got = await records_by_id(client, family, ids, **kw)
    return got, served(sandbox)


async def test_a_few_records_of_a_big_account_are_read_one_by_one(account: Any) -> None:
    sandbox, people, _ = account
    got, tally = await by_id(sandbox, "contacts", people[:2])
    assert got.strategy == "reads" and tally == {"rpc getContact": 2}
    assert [got.found[i].id.rest for i in people[:2]] == people[:2] and all(got.found[i].rev for i in people[:2])
    # Three of three pages' worth: the first page tells the size; the pages would cost no less than a read each.
    got, tally = await by_id(sandbox, "contacts", people[:3])
    assert got.strategy == "reads" and tally == {"GET /rest/contacts": 1, "rpc getContact": 3}


async def test_most_of_an_account_is_read_page_by_page_with_revs(account: Any) -> None:
    sandbox, people, _ = account
    wanted = [*people[:100], "999999-contacts"]  # one that does not exist
    got, tally = await by_id(sandbox, "contacts", wanted)
    pages = -(-PEOPLE // PAGE)
    assert got.strategy == "pages"
    assert tally == {"GET /rest/contacts": 1, "rpc findContacts": pages, "rpc getContact": 1}, tally
    assert got.requests == sum(tally.values())
    # The one the pages did not show is read on its own (paging may skip one), and is gone.
    assert got.found["999999-contacts"] is None
    assert all(got.found[i] is not None and got.found[i].rev for i in people[:100])


async def test_the_verification_takes_absent_from_the_pages_as_gone_without_reading_it(account: Any) -> None:
    sandbox, people, _ = account
    wanted = people[:100] + [f"{900000 + i}-contacts" for i in range(50)]
    got, tally = await by_id(sandbox, "contacts", wanted, confirm_missing=False)
    assert "rpc getContact" not in tally and got.strategy == "pages"
    assert sum(r is None for r in got.found.values()) == 50


async def test_activities_come_from_rest_pages_with_revs_from_json_rpc_stubs(account: Any) -> None:
    sandbox, _, activities = account
    pages = -(-ACTIVITIES // PAGE)
    got, tally = await by_id(sandbox, "activities", activities, revs=True)
    assert got.strategy == "pages"
    assert tally == {"GET /rest/activities": pages, "rpc findActivities": pages}, tally
    async with client_of(sandbox) as client:
        for id_ in activities[:5]:
            assert got.revs[id_] == (await client.current_rev(id_)).rev
    assert {got.found[i].name for i in activities} == {f"Visit {i}" for i in range(ACTIVITIES)}
    # Without revs, the stubs are not read.
    got, tally = await by_id(sandbox, "activities", activities)
    assert tally == {"GET /rest/activities": pages} and not got.revs


async def test_a_rev_read_before_an_edit_fails_the_delete_so_the_edit_is_never_lost(account: Any) -> None:
    sandbox, _, activities = account
    got, _ = await by_id(sandbox, "activities", activities, revs=True)
    target = activities[-1]
    async with client_of(sandbox) as client:
        await client.update_activity(target, {"name": "Edited in Nutshell"})
        with pytest.raises(ConflictError):
            await client.delete_activity(target, rev=got.revs[target])
        assert (await client.get_activity(target)).name == "Edited in Nutshell"
