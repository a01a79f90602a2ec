"""The asyncio API under load and under cancellation, on SQLite and PostgreSQL behind a fault gate.

No test here measures time: the loop's freedom is shown by a watchdog that
wakes while store calls are in flight, and by calls held in the gate while
others go on; the stall in milliseconds is benchmarks/async_stall.py's.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import fallthrough
from fallthrough import AsyncStore, Document
from fallthrough.testing.watchdog import LoopWatchdog
from tests.aio.conftest import collection_name
from tests.core.helpers import eventually, gate

CALLS = 200
MAX_CONCURRENCY = 8


async def _open(url: str, registry: fallthrough.Registry) -> tuple[AsyncStore, uuid.UUID, str]:
    """An AsyncStore with a batch of CALLS keys and a collection of CALLS documents."""
    store = await fallthrough.connect_async(url, registry=registry, max_concurrency=MAX_CONCURRENCY)
    batch = await store.create_batch(f"k{i:03}" for i in range(CALLS))
    collection = collection_name()
    documents = [Document(f"d{i:03}", f"word{i:03} common", vector=[1.0, i / CALLS]) for i in range(CALLS)]
    await store.upsert_documents(collection, documents)
    return store, batch.id, collection


async def _search(store: AsyncStore, collection: str, i: int) -> str:
    result = await store.search(collection, text=f"word{i:03}")
    return result[0].id


def test_200_searches_and_200_updates_leave_the_loop_running(gated_url: str, registry: fallthrough.Registry) -> None:
    async def main() -> None:
        store, batch_id, collection = await _open(gated_url, registry)
        async with store:
            watchdog = LoopWatchdog()
            watching = asyncio.ensure_future(watchdog.run())
            searches = [watchdog.track(_search(store, collection, i)) for i in range(CALLS)]
            updates = [watchdog.track(store.update(batch_id, f"k{i:03}", "completed")) for i in range(CALLS)]
            results = await asyncio.gather(*searches, *updates)
            watchdog.stop()
            await watching
            assert results[:CALLS] == [f"d{i:03}" for i in range(CALLS)]
            assert results[CALLS:] == [True] * CALLS
            assert (await store.progress(batch_id)).completed == CALLS
            # A call that held the loop would start and end between two wake-ups: never seen in flight.
            assert watchdog.ticks_in_flight > 0
            print(f"largest stall {watchdog.largest_stall * 1000:.1f} ms over {watchdog.ticks} wake-ups")

    asyncio.run(main())


def test_calls_held_in_the_store_do_not_stop_the_loop_or_other_calls(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """Half the pool waits in a held search; 200 updates and the watchdog go on meanwhile."""

    async def main() -> None:
        store, batch_id, collection = await _open(gated_url, registry)
        async with store:
            flaky = gate(store.store, "flaky")
            flaky.hold("fallthrough_search")
            held = [asyncio.ensure_future(_search(store, collection, i)) for i in range(MAX_CONCURRENCY // 2)]
            assert await asyncio.to_thread(flaky.wait_held, len(held))
            watchdog = LoopWatchdog()
            watching = asyncio.ensure_future(watchdog.run())
            updates = [watchdog.track(store.update(batch_id, f"k{i:03}", "completed")) for i in range(CALLS)]
            assert await asyncio.gather(*updates) == [True] * CALLS
            watchdog.stop()
            await watching
            assert watchdog.ticks_in_flight > 0
            assert not any(search.done() for search in held) and flaky.held == len(held)
            flaky.release()
            assert await asyncio.gather(*held) == [f"d{i:03}" for i in range(len(held))]

    asyncio.run(main())


def test_cancelled_calls_leave_the_store_working_and_every_slot_free(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """Cancel calls held in the store and calls waiting for a slot; the threads finish, the pool is whole."""

    async def main() -> None:
        store, batch_id, collection = await _open(gated_url, registry)
        async with store:
            flaky = gate(store.store, "flaky")
            flaky.hold("fallthrough_search")
            running = [asyncio.ensure_future(_search(store, collection, i)) for i in range(MAX_CONCURRENCY)]
            assert await asyncio.to_thread(flaky.wait_held, MAX_CONCURRENCY)  # every slot taken
            waiting = [asyncio.ensure_future(store.update(batch_id, f"k{i:03}", "completed")) for i in range(20)]
            await asyncio.sleep(0)  # the updates are submitted, and wait for a slot
            for task in running + waiting:
                task.cancel()
            outcomes = await asyncio.gather(*running, *waiting, return_exceptions=True)
            assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
            assert flaky.held == MAX_CONCURRENCY  # cancelling the callers did not interrupt the calls
            flaky.release()
            # The updates never started, so they never ran; the searches ran to their end in their threads.
            assert (await store.progress(batch_id)).completed == 0
            # Released searches leave the gate in their own threads, which the progress read need not wait for.
            assert await asyncio.to_thread(eventually, lambda: flaky.held == 0)
            # Every slot is free again: MAX_CONCURRENCY new calls can all be held at once.
            flaky.hold("fallthrough_search")
            again = [asyncio.ensure_future(_search(store, collection, i)) for i in range(MAX_CONCURRENCY)]
            assert await asyncio.to_thread(flaky.wait_held, MAX_CONCURRENCY)
            flaky.release()
            assert await asyncio.gather(*again) == [f"d{i:03}" for i in range(MAX_CONCURRENCY)]
            assert await store.update(batch_id, "k000", "completed")
            assert (await store.progress(batch_id)).completed == 1
        assert not [thread for thread in threading.enumerate() if thread.name.startswith("fallthrough-aio_")]

    asyncio.run(main())


def test_ordinary_calls_cancelled_mid_flight_leave_consistent_records(
    gated_url: str, registry: fallthrough.Registry
) -> None:
    """Cancel every other of 200 updates and 200 searches as they run: a cancelled write applied whole or not at all."""

    async def main() -> None:
        store, batch_id, collection = await _open(gated_url, registry)
        async with store:
            flaky = gate(store.store, "flaky")
            updates = [
                asyncio.ensure_future(store.update(batch_id, f"k{i:03}", "completed", result={"i": i}))
                for i in range(CALLS)
            ]
            searches = [asyncio.ensure_future(_search(store, collection, i)) for i in range(CALLS)]
            while flaky.calls["fallthrough_update_records"] < CALLS // 10:  # let some run, then cancel mid-flight
                await asyncio.sleep(0.001)
            for task in (updates + searches)[::2]:
                task.cancel()
            outcomes = await asyncio.gather(*updates, *searches, return_exceptions=True)
            finished = [i for i, outcome in enumerate(outcomes[:CALLS]) if outcome is True]
            assert len(finished) >= CALLS // 2  # none that was not cancelled failed
            assert all(o == f"d{i:03}" for i, o in enumerate(outcomes[CALLS:]) if not isinstance(o, BaseException))
            records = {record.key: record async for record in store.records(batch_id)}
            assert len(records) == CALLS
            for i in range(CALLS):
                record = records[f"k{i:03}"]
                # Applied whole (status and result together) or not at all.
                assert (record.status, record.result) in [
                    (fallthrough.Status.PENDING, None),
                    (fallthrough.Status.COMPLETED, {"i": i}),
                ]
                if i in finished:
                    assert record.status is fallthrough.Status.COMPLETED
            # The store goes on: finish the rest, and find every document.
            left = [key for key, record in records.items() if record.status is fallthrough.Status.PENDING]
            await asyncio.gather(*(store.update(batch_id, key, "completed") for key in left))
            assert (await store.progress(batch_id)).completed == CALLS
            assert await asyncio.gather(*(_search(store, collection, i) for i in range(0, CALLS, 20))) == [
                f"d{i:03}" for i in range(0, CALLS, 20)
            ]
            assert flaky.held == 0

    asyncio.run(main())


def test_a_cancelled_page_read_is_not_lost(gated_url: str, registry: fallthrough.Registry) -> None:
    async def main() -> None:
        store, batch_id, _ = await _open(gated_url, registry)
        async with store:
            flaky = gate(store.store, "flaky")
            pages = store.records(batch_id, page_size=50)
            keys = [(await pages.__anext__()).key for _ in range(50)]  # the first page
            flaky.hold("fallthrough_list_records")
            step = asyncio.ensure_future(pages.__anext__())  # the second page's read, held
            assert await asyncio.to_thread(flaky.wait_held, 1)
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
            assert step.cancelled()
            flaky.release()
            keys += [record.key async for record in pages]
            assert keys == [f"k{i:03}" for i in range(CALLS)]  # nothing skipped, nothing twice

    asyncio.run(main())


def test_close_waits_for_the_calls_it_accepted(gated_url: str, registry: fallthrough.Registry) -> None:
    async def main() -> None:
        store, _, collection = await _open(gated_url, registry)
        flaky = gate(store.store, "flaky")
        flaky.hold("fallthrough_search")
        search = asyncio.ensure_future(_search(store, collection, 7))
        assert await asyncio.to_thread(flaky.wait_held, 1)
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0)
        try:
            await store.progress(uuid.uuid4())
        except fallthrough.FallthroughError as error:
            assert "AsyncStore is closed" in str(error)
        else:
            raise AssertionError("a call after close() was accepted")
        assert not closing.done() and not search.done()
        flaky.release()
        await closing
        assert await search == "d007"  # the call it accepted ran to its end

    asyncio.run(main())
