"""Reads and writes of many records, a few at a time: `workers` tasks take items from one queue until it is empty.
The first failure cancels the rest and is raised as itself (not as an ExceptionGroup)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def pool(items: Iterable[T], fn: Callable[[T], Awaitable[None]], workers: int) -> None:
    queue: asyncio.Queue[T] = asyncio.Queue()
    for i in items:
        queue.put_nowait(i)

    async def work() -> None:
        while not queue.empty():
            await fn(queue.get_nowait())

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, workers)):
                group.create_task(work())
    except* Exception as failed:
        raise failed.exceptions[0] from None
