"""Many records by id, for the fewest requests: read each one, or read the whole list page by page and pick ours.

A rollback (its preview, its look before deleting, its verification) must know how thousands of records stand
now. One read per record costs one request each; the list of that type costs one request per page of 100,
whatever the number of ours among them. So when we hold most of an account (a clinic moved into a fresh one), the
pages win by a hundred to one; when we hold a few records of a big account, the reads win. `records_by_id`
learns the type's size from the first page (REST lists carry `meta.total`), then takes the cheaper way; the
other pages go out together and the client's limiter paces them.

The forms read are the ones `get` reads, so fingerprints compare like with like: people and companies come from
JSON-RPC `find*` with full entities (REST lists leave out custom field values) and carry their rev; activities
and notes from the REST lists. REST carries no rev, and `deleteActivity` needs one: activities' revs come from
JSON-RPC `findActivities` stubs, read *before* the REST pages, so a rev is never newer than the fields it goes
with (an edit between the two reads makes the delete's rev check fail, and the caller reads again). Where a page
leaves a rev out, the record is returned without one and the delete reads it (one more request, as before).

Unconfirmed: whether the live lists hold still while paged. A record the pages did not show is read on its own
when `confirm_missing` (paging may have skipped it); the verification after a rollback passes False, as a
record absent from the list is what it is looking for.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cliniko2nutshell.nutshell.errors import NotFoundError
from cliniko2nutshell.nutshell.models import Activity, Company, Note, Person
from cliniko2nutshell.nutshell.sending import Safety

# Records per page. Unconfirmed: the largest page REST serves (one integrator reports 10,000 accepted); we ask for
# 100, what JSON-RPC is said to serve with full records.
PAGE = 100
READS_AT_ONCE = 8

Family = Literal["contacts", "accounts", "activities", "notes"]
Record = Person | Company | Activity | Note
_MODEL: dict[str, type[Record]] = {"contacts": Person, "accounts": Company, "activities": Activity, "notes": Note}
_FIND = {"contacts": "findContacts", "accounts": "findAccounts"}


@dataclass
class ByIds:
    found: dict[str, Record | None] = field(default_factory=dict)  # REST id -> the record, None when gone
    revs: dict[str, str] = field(default_factory=dict)  # activities: REST id -> rev (from JSON-RPC stubs)
    strategy: str = "none"  # none | reads | pages
    requests: int = 0


async def records_by_id(
    client: Any, family: Family, ids: Iterable[str], *, revs: bool = False, confirm_missing: bool = True
) -> ByIds:
    """How the records `ids` (REST ids of one `family`) stand now, by the cheaper way (module doc). `revs`: also
    each activity's rev (for its delete). `client` is a NutshellClient."""
    out = ByIds()
    before = client.stats.requests
    try:
        await _choose(client, family, set(ids), out, revs=revs and family == "activities", confirm=confirm_missing)
    finally:
        out.requests = client.stats.requests - before
    return out


async def _choose(client: Any, family: Family, wanted: set[str], out: ByIds, *, revs: bool, confirm: bool) -> None:
    if len(wanted) <= 2:
        await _read_each(client, family, wanted, out)
        return
    first, total = await rest_page(client, family, 0)
    if total is None or len(first) < min(PAGE, total):
        await _read_each(client, family, wanted, out)  # no size, or pages smaller than asked: read each
        return
    pages = max(1, math.ceil(total / PAGE))
    # What is left to pay either way. Pages: people's and companies' come again over JSON-RPC (the REST page was
    # only the probe), and activities' revs take their own pages of stubs. Reads: one each, and an activity
    # read over REST takes another for its rev when the rev is wanted.
    cost = (pages if family in _FIND else pages - 1) + (pages if revs else 0)
    if cost >= len(wanted) * (2 if revs else 1):
        await _read_each(client, family, wanted, out)
        return
    out.strategy = "pages"
    listed = await _list(client, family, total, first, out, revs=revs)
    missing = wanted - listed.keys()
    out.found.update({i: listed[i] for i in wanted & listed.keys()})
    if confirm and missing:
        await _read_each(client, family, missing, out)
    else:
        out.found.update(dict.fromkeys(missing))


async def _list(
    client: Any, family: Family, total: int, first: list[dict[str, Any]], out: ByIds, *, revs: bool
) -> dict[str, Record]:
    pages = max(1, math.ceil(total / PAGE))
    if revs:
        stubs = await _rpc_pages(client, "findActivities", total, stubs=True)
        out.revs = {r.id.rest: r.rev for r in map(Activity.from_api, stubs) if r.rev is not None}
    if family in _FIND:
        raws = await _rpc_pages(client, _FIND[family], total, stubs=False)
    else:
        rest = await asyncio.gather(*(rest_page(client, family, p) for p in range(1, pages)))
        raws = [*first, *(r for items, _ in rest for r in items)]
    listed: dict[str, Record] = {}
    for raw in raws:
        record = _MODEL[family].from_api(raw)
        if getattr(record, "deleted_time", None) is None:
            listed[record.id.rest] = record
    return listed


async def rest_page(
    client: Any, family: Family, index: int, size: int = PAGE
) -> tuple[list[dict[str, Any]], int | None]:
    """One REST list page (0-based) of `size` records, and the type's size when the answer carries `meta.total`."""
    # Activities declare `limit` where the others declare `page[limit]` (nutshell/rest.py `pages`).
    limit = {"limit": size} if family == "activities" else {"page[limit]": size}
    body = await client.rest.request("GET", family, safety=Safety.READ, params={**limit, "page[page]": index})
    items = body.get(family, []) if isinstance(body, dict) else []
    meta = body.get("meta") if isinstance(body, dict) else None
    total = meta.get("total") if isinstance(meta, dict) else None
    ok = isinstance(total, int) and not isinstance(total, bool) and total >= 0
    return [i for i in items if isinstance(i, dict)], total if ok else None


async def _rpc_pages(client: Any, method: str, total: int, *, stubs: bool) -> list[dict[str, Any]]:
    """Every record of a JSON-RPC find (`total` of them, as REST counted), its pages of PAGE asked together.
    Unconfirmed: the largest page JSON-RPC serves; one that serves fewer than asked is asked for the pages that
    makes up."""
    pages = max(1, math.ceil(total / PAGE))
    got = await asyncio.gather(*(_find_page(client, method, p, stubs=stubs) for p in range(1, pages + 1)))
    size = len(got[0])
    if 0 < size < min(PAGE, total) and len(got[-1]) == size:
        more = math.ceil(total / size)
        got += await asyncio.gather(*(_find_page(client, method, p, stubs=stubs) for p in range(pages + 1, more + 1)))
    return [r for page in got for r in page]


async def _find_page(client: Any, method: str, page: int, *, stubs: bool) -> list[dict[str, Any]]:
    found = await client.rpc.call(
        method, {"query": {}, "limit": PAGE, "page": page, "stubResponses": stubs}, safety=Safety.READ
    )
    return [r for r in found or [] if isinstance(r, dict)]


async def _read_each(client: Any, family: Family, ids: Collection[str], out: ByIds) -> None:
    if out.strategy == "none":
        out.strategy = "reads"
    gate = asyncio.Semaphore(READS_AT_ONCE)
    read = {
        "contacts": lambda i: client.get_person(i, via="rpc"),
        "accounts": lambda i: client.get_company(i, via="rpc"),
        "activities": client.get_activity,
        "notes": client.get_note,
    }[family]

    async def one(id_: str) -> None:
        async with gate:
            try:
                record = await read(id_)
            except NotFoundError:
                record = None
        out.found[id_] = None if record is None or getattr(record, "deleted_time", None) is not None else record

    await asyncio.gather(*(one(i) for i in sorted(ids)))
