"""Which patients' e-mails Nutshell already holds, for the fewest requests.

Two ways to know: one look-up per e-mail (`GET /contacts?email=`), or reading the account's people page by page
(`GET /contacts?page[...]`) and matching here. A 100,000-patient clinic moving into a small account reads a handful
of pages instead of 100,000 look-ups; a small sample moving into a big account does the look-ups. Either way the
cost is at most min(distinct e-mails, pages of people), plus one request when nothing is known about the account:
the first page is then read to learn its size (REST lists carry `meta.total`), and counts as a page when the
pages win. Callers pass the size learned last time (`total`) to skip that probe.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cliniko2nutshell.mapping.names import normalize_email  # Nutshell's own matching is unconfirmed: we compare
from cliniko2nutshell.nutshell.many import PAGE, rest_page
from cliniko2nutshell.nutshell.models import Person

# People per page (many.PAGE); we follow what the answer says if it serves fewer.
LOOKUPS_AT_ONCE = 8


@dataclass
class PeopleByEmail:
    found: dict[str, list[Person]] = field(default_factory=dict)  # normalised e-mail -> people holding it
    total: int | None = None  # people in the account, when Nutshell said
    requests: int = 0
    strategy: str = "none"  # none | lookups | pages


async def people_by_email(client: Any, emails: Iterable[str | None], *, total: int | None = None) -> PeopleByEmail:
    """The people of `client`'s Nutshell account holding any of `emails`, by the cheaper way (module doc).
    `client` is a NutshellClient."""
    wanted = {normalize_email(e) for e in emails if e and "@" in e} - {""}
    out = PeopleByEmail(total=total)
    if not wanted:
        return out
    before = client.stats.requests
    try:
        if total is None and len(wanted) > 1:
            await _probe_then_choose(client, wanted, out)
        elif total is not None and _pages(total, PAGE) <= len(wanted):
            out.strategy = "pages"
            await _read_pages(client, wanted, out, first=0, page=PAGE, count=_pages(total, PAGE))
        else:
            await _look_up(client, wanted, out)
    finally:
        out.requests = client.stats.requests - before
    return out


def _pages(total: int, page: int) -> int:
    return max(1, math.ceil(total / page))


async def _probe_then_choose(client: Any, wanted: set[str], out: PeopleByEmail) -> None:
    items, total = await rest_page(client, "contacts", 0, PAGE)
    _match(items, wanted, out)
    page = len(items) if total is not None and len(items) < min(PAGE, total) else PAGE  # the server's own cap
    if total is not None:
        out.total = total
    if len(items) < page or (total is not None and total <= len(items)):
        out.strategy = "pages"
        out.total = len(items) if total is None else total
        return
    left = _pages(total, page) - 1 if total is not None else None
    if left is not None and left >= len(wanted):
        out.found.clear()  # the look-ups answer for every e-mail, page 0's matches included
        await _look_up(client, wanted, out)
        return
    out.strategy = "pages"
    # Unknown size: read on while that stays cheaper than the look-ups would have been.
    budget = left if left is not None else len(wanted) - 1
    if not await _read_pages(client, wanted, out, first=1, page=page, count=left, budget=budget):
        out.found.clear()
        await _look_up(client, wanted, out)


async def _read_pages(
    client: Any,
    wanted: set[str],
    out: PeopleByEmail,
    *,
    first: int,
    page: int,
    count: int | None,
    budget: int | None = None,
) -> bool:
    """Read pages from `first` on (`count` of them when the size is known); True once a short page ended the
    list (False: `budget` pages were read and the list went on)."""
    index = first
    if count is not None and count > 0:
        # The size is known: the pages go out together (the client's limiter paces them).
        last = first + count - 1
        batch = await asyncio.gather(*(rest_page(client, "contacts", i, page) for i in range(first, last + 1)))
        for items, total in batch:
            _match(items, wanted, out)
            if total is not None:
                out.total = total
        if len(batch[-1][0]) < page:
            return True
        index = last + 1  # the account grew since its size was learned: carry on one page at a time
    read = 0
    while budget is None or read < budget:
        items, total = await rest_page(client, "contacts", index, page)
        read += 1
        _match(items, wanted, out)
        if total is not None:
            out.total = total
        if len(items) < page:
            if out.total is None:
                out.total = index * page + len(items)
            return True
        index += 1
    return False


def _match(items: list[dict[str, Any]], wanted: set[str], out: PeopleByEmail) -> None:
    for raw in items:
        person = Person.from_api(raw)
        if person.deleted_time is not None:
            continue
        for email in {normalize_email(e.value) for e in person.emails}:
            if email in wanted and all(p.id != person.id for p in out.found.get(email, [])):
                out.found.setdefault(email, []).append(person)


async def _look_up(client: Any, wanted: set[str], out: PeopleByEmail) -> None:
    out.strategy = "lookups"
    gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def one(email: str) -> None:
        async with gate:
            people = await client.find_people_by_email(email)
        for person in people:
            if any(normalize_email(e.value) == email for e in person.emails) and person.deleted_time is None:
                out.found.setdefault(email, []).append(person)

    await asyncio.gather(*(one(e) for e in sorted(wanted)))
