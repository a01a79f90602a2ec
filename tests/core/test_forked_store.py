"""A Store serves only the process that connected it: a forked child is refused every call, and nothing is written.

The child of a fork holds copies of its parent's connections and locks but
none of its threads (``fallthrough.ownership``); these tests fork the test
process itself, as a gunicorn master or a ``multiprocessing`` pool would.
"""

from __future__ import annotations

import copy
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate, Status
from tests.forking import run_in_fork

CALLS: dict[str, Callable[[fallthrough.Store, uuid.UUID], Any]] = {
    "create_batch": lambda store, _: store.create_batch(["x", "y"]),
    "add_records": lambda store, batch: store.add_records(batch, ["c"]),
    "update": lambda store, batch: store.update(batch, "a", Status.COMPLETED, result={"n": 1}),
    "update_many": lambda store, batch: store.update_many([RecordUpdate(batch, "b", Status.FAILED, error="e")]),
    "retry": lambda store, batch: store.retry(batch),
    "delete_batch": lambda store, batch: store.delete_batch(batch),
    "progress": lambda store, batch: store.progress(batch),
    "records": lambda store, batch: list(store.records(batch)),
    "claim": lambda store, batch: store.claim(batch, worker="child", limit=1),
    "upsert_documents": lambda store, _: store.upsert_documents("docs", [Document("d2", "child text")]),
    "search": lambda store, _: store.search("docs", text="parent"),
    "health": lambda store, _: store.health(),
    "drain": lambda store, _: store.drain(1.0),
    "repair": lambda store, _: store.repair(),
}


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store.db'}"


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_in_a_forked_child_raises_wrong_process_and_writes_nothing(url: str, call: str) -> None:
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["a", "b"])
        store.upsert_documents("docs", [Document("d1", "parent text")])
        before = (store.progress(batch.id), list(store.records(batch.id)), list(store.batches()))

        outcome = run_in_fork(lambda: CALLS[call](store, batch.id))

        assert outcome.raised == "WrongProcess", outcome
        assert "fork" in outcome.message
        after = (store.progress(batch.id), list(store.records(batch.id)), list(store.batches()))
        assert after == before
        assert [d.id for d in store.get_documents("docs", ["d1", "d2"])] == ["d1"]


def test_a_forked_child_may_close_the_store_and_the_parent_goes_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["a", "b"])

        def close_then_read() -> object:
            store.close()
            return store.progress(batch.id)

        outcome = run_in_fork(close_then_read)

        # close() did nothing in the child, and the call after it is refused as a fork's, not as closed.
        assert (outcome.raised, "fork" in outcome.message) == ("WrongProcess", True), outcome
        store.update(batch.id, "a", Status.COMPLETED)
        assert store.progress(batch.id).completed == 1


def test_a_store_connected_in_the_child_serves_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["a", "b"])

        def child() -> int:
            with fallthrough.connect(url) as own:
                own.update(batch.id, "b", Status.COMPLETED)
                return own.progress(batch.id).completed

        outcome = run_in_fork(child)

        assert outcome.returned == "1", outcome
        assert store.get_record(batch.id, "b").status is Status.COMPLETED  # type: ignore[union-attr]


def test_a_store_does_not_pickle_and_says_to_connect_in_each_process() -> None:
    """multiprocessing pickles what it sends to a spawned process; the error says what to do, not which lock failed."""
    with fallthrough.connect("sqlite://") as store:
        for send in (pickle.dumps, copy.copy):
            with pytest.raises(TypeError, match="Connect in each process"):
                send(store)
