"""An AsyncStore in a forked child refuses its calls at once instead of queueing them on a pool with no threads."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest

import fallthrough
from tests.forking import run_in_fork


def test_a_call_in_a_forked_child_raises_wrong_process_instead_of_hanging(tmp_path: Path) -> None:
    async def opened() -> tuple[fallthrough.AsyncStore, fallthrough.Batch]:
        store = await fallthrough.connect_async(f"sqlite:///{tmp_path / 'aio.db'}")
        # Calls in flight at once start the pool's threads, which the child will not have.
        batches = await asyncio.gather(*(store.create_batch([f"k{n}"]) for n in range(8)))
        return store, batches[0]

    store, batch = asyncio.run(opened())
    try:
        outcome = run_in_fork(lambda: asyncio.run(store.progress(batch.id)), timeout=20)
        assert (outcome.raised, "fork" in outcome.message) == ("WrongProcess", True), outcome

        # close() in the child neither hangs on the parent's pool nor closes the parent's Store.
        closed = run_in_fork(lambda: asyncio.run(store.close()), timeout=20)
        assert closed.returned == "None", closed
        assert asyncio.run(store.progress(batch.id)).pending == 1
    finally:
        asyncio.run(store.close())


def test_an_async_store_does_not_pickle() -> None:
    store = asyncio.run(fallthrough.connect_async("sqlite://"))
    try:
        with pytest.raises(TypeError, match="AsyncStore cannot be pickled"):
            pickle.dumps(store)
    finally:
        asyncio.run(store.close())
