"""Tasks sharing one AsyncStore iterator each get distinct items, and every item exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import fallthrough
from fallthrough import Document

T = TypeVar("T")


async def _drain(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


def test_concurrent_steps_on_one_pending_page_take_distinct_items() -> None:
    async def main() -> None:
        async with await fallthrough.connect_async(max_concurrency=4) as store:
            await store.upsert_documents("c", [Document(f"d{i:03}", "text") for i in range(12)])
            pages = store.documents("c", page_size=4)
            first = await asyncio.gather(*(pages.__anext__() for _ in range(5)))  # all wait for the first page
            assert [d.id for d in first] == [f"d{i:03}" for i in range(5)]
            rest = [d.id async for d in pages]
            assert rest == [f"d{i:03}" for i in range(5, 12)]

    asyncio.run(main())


def test_worker_tasks_over_one_iterator_see_every_item_once() -> None:
    async def main() -> None:
        async with await fallthrough.connect_async(max_concurrency=4) as store:
            await store.upsert_documents("c", [Document(f"d{i:03}", "text") for i in range(100)])
            batch = await store.create_batch(f"k{i:03}" for i in range(100))
            documents = store.documents("c", page_size=7)
            records = store.records(batch.id, page_size=9)
            seen_documents = await asyncio.gather(*(_drain(documents) for _ in range(3)))
            seen_records = await asyncio.gather(*(_drain(records) for _ in range(3)))
            ids = sorted(d.id for part in seen_documents for d in part)
            keys = sorted(r.key for part in seen_records for r in part)
            assert ids == [f"d{i:03}" for i in range(100)]
            assert keys == [f"k{i:03}" for i in range(100)]
            for _ in range(3):
                await store.create_batch(["x"])
            batches = store.batches(page_size=1)
            seen_batches = await asyncio.gather(*(_drain(batches) for _ in range(3)))
            assert len({item.batch.id for part in seen_batches for item in part}) == 4
            assert sum(len(part) for part in seen_batches) == 4

    asyncio.run(main())
