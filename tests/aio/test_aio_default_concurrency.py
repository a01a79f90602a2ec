"""AsyncStore's default bound follows the backends' ``parallel_calls``; a bound the caller gives wins.

SQLite declares 2, PostgreSQL nothing (docs/benchmarks.md, "The asyncio API",
has the stalls behind those numbers). A backend declares its capabilities
when it opens, at its first call, so each test makes one call first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import fallthrough
from fallthrough import AsyncStore
from fallthrough.aio import DEFAULT_MAX_CONCURRENCY
from tests.aio.conftest import collection_name
from tests.core.helpers import gate, gated


def _open_all(store: fallthrough.Store) -> None:
    """One write, which every backend takes: each opens and declares its capabilities."""
    store.create_batch(["k"])


def test_the_default_on_a_sqlite_file_is_two_once_it_opened(tmp_path: Path) -> None:
    with fallthrough.connect(f"sqlite:///{tmp_path}/a.db") as store:
        twin = AsyncStore(store)
        assert store.capabilities == {"sqlite": None}  # nothing opened yet: no hint known
        assert twin.max_concurrency == DEFAULT_MAX_CONCURRENCY
        _open_all(store)
        assert twin.capabilities == store.capabilities
        assert store.capabilities["sqlite"] is not None and store.capabilities["sqlite"].parallel_calls == 2
        assert twin.max_concurrency == 2
        assert "max_concurrency=2" in repr(twin)
        assert twin.chunk_writes_in_flight == store.chunk_writes_in_flight == 0  # a streamed create: one at a time
        asyncio.run(twin.close())


def test_connect_async_follows_the_hint_and_an_explicit_bound_wins(tmp_path: Path) -> None:
    async def main() -> None:
        async with await fallthrough.connect_async(f"sqlite:///{tmp_path}/a.db") as store:
            await store.create_batch(["k"])
            assert store.max_concurrency == 2
        async with await fallthrough.connect_async(f"sqlite:///{tmp_path}/b.db", max_concurrency=5) as store:
            await store.create_batch(["k"])
            assert store.max_concurrency == 5
            assert "max_concurrency=5" in repr(store)

    asyncio.run(main())


def test_an_explicit_bound_wins_over_the_hint_either_way(tmp_path: Path) -> None:
    with fallthrough.connect(f"sqlite:///{tmp_path}/a.db") as store:
        _open_all(store)
        hint = store.capabilities["sqlite"]
        assert hint is not None and hint.parallel_calls == 2
        above, below = AsyncStore(store, max_concurrency=8), AsyncStore(store, max_concurrency=1)
        assert (above.max_concurrency, below.max_concurrency) == (8, 1)
        asyncio.run(above.close())
        asyncio.run(below.close())


def test_the_default_runs_no_more_calls_at_once_than_sqlite_declares(
    tmp_path: Path, registry: fallthrough.Registry
) -> None:
    """Six searches held in the store: two get in, the other four wait at the gate, and all end once released."""

    async def main() -> None:
        async with await fallthrough.connect_async(gated(f"sqlite:///{tmp_path}/a.db"), registry=registry) as store:
            collection = collection_name()
            await store.upsert_documents(collection, [fallthrough.Document("d", "word")])
            flaky = gate(store.store, "flaky")
            flaky.hold("fallthrough_search")
            searches = [asyncio.ensure_future(store.search(collection, text="word")) for _ in range(6)]
            try:
                assert await asyncio.to_thread(flaky.wait_held, 2)
                assert not await asyncio.to_thread(flaky.wait_held, 3, 0.3)  # a third never gets past the gate
            finally:
                flaky.release()  # else closing the store would wait for the held calls forever
            assert [len(result) for result in await asyncio.gather(*searches)] == [1] * 6
            assert flaky.calls["fallthrough_search"] == 6

    asyncio.run(main())


def test_the_default_on_postgresql_alone_is_eight(pgvector_database: str) -> None:
    with fallthrough.connect(pgvector_database) as store:
        twin = AsyncStore(store)
        _open_all(store)
        capabilities = store.capabilities["postgresql"]
        assert capabilities is not None and capabilities.parallel_calls is None
        assert twin.max_concurrency == DEFAULT_MAX_CONCURRENCY == 8
        assert AsyncStore(store, max_concurrency=3).max_concurrency == 3
        assert twin.chunk_writes_in_flight == store.chunk_writes_in_flight == 2
        asyncio.run(twin.close())


def test_the_default_on_postgresql_and_sqlite_is_the_smallest_hint(pgvector_database: str, tmp_path: Path) -> None:
    with fallthrough.connect(pgvector_database, f"sqlite:///{tmp_path}/a.db") as store:
        twin = AsyncStore(store)
        _open_all(store)
        assert list(store.capabilities) == ["postgresql", "sqlite"]
        assert all(capabilities is not None for capabilities in store.capabilities.values())
        assert twin.max_concurrency == 2
        asyncio.run(twin.close())


@pytest.mark.parametrize("bad", [0, 65, -1, True, 1.5, "2"])
def test_a_bad_parallel_calls_is_refused(bad: object) -> None:
    with pytest.raises(fallthrough.InvalidInput, match="parallel_calls"):
        fallthrough.Capabilities(records=True, parallel_calls=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("good", [None, 1, 64])
def test_parallel_calls_takes_none_or_1_to_64(good: int | None) -> None:
    assert fallthrough.Capabilities(records=True, parallel_calls=good).parallel_calls == good
