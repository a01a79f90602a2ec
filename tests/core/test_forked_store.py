"""A Store serves only the process that connected it: a forked child is refused every call, and nothing is written.

The child of a fork holds copies of its parent's connections and locks but
none of its threads (``fallthrough.ownership``); these tests fork the test
process itself, as a gunicorn master or a ``multiprocessing`` pool would.
"""

from __future__ import annotations

import copy
import pickle
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate, Status
from fallthrough.clock import Stamper
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
    "update_many of nothing": lambda store, _: store.update_many([]),
    "upsert_documents of nothing": lambda store, _: store.upsert_documents("docs", []),
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


def test_an_iterator_made_before_the_fork_is_refused_at_its_next_page() -> None:
    with fallthrough.connect("sqlite://") as store:
        batch = store.create_batch(["a", "b", "c"])
        records = store.records(batch.id, page_size=1)

        outcome = run_in_fork(lambda: [record.key for record in records])

        assert outcome.raised == "WrongProcess", outcome


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


def test_a_child_forked_while_another_thread_holds_the_stores_clock_is_refused_not_stuck() -> None:
    """A lock held at the fork stays held in the child: the process is checked before any lock is taken."""
    stamper = Stamper()
    with fallthrough.Store([("sqlite", "sqlite://")], stamper=stamper) as store:
        batch = store.create_batch(["a"])
        held, release = threading.Event(), threading.Event()

        def hold_the_clock() -> None:
            with stamper._lock:  # as a thread inside Stamper.now() holds it
                held.set()
                release.wait()

        holder = threading.Thread(target=hold_the_clock)
        holder.start()
        held.wait()
        try:
            outcome = run_in_fork(lambda: store.update(batch.id, "a", Status.COMPLETED), timeout=10)
        finally:
            release.set()
            holder.join()
        assert (outcome.raised, "fork" in outcome.message) == ("WrongProcess", True), outcome


_CRASHING_PARENT = """
import os, sys
import fallthrough

directory, child = sys.argv[1], sys.argv[2]
store = fallthrough.connect(
    f"sqlite:///{directory}/store.db",
    down="postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=2",  # refused: every write becomes a hint
    journal=f"sqlite:///{directory}/hints.db",
)
store.create_batch(["a"])
if child != "no child":
    pid = os.fork()
    if pid == 0:
        if child == "leaves":
            sys.exit(0)  # never used the Store, and leaves as a gunicorn worker does: finalisers run
        store = fallthrough.connect("sqlite://")  # connects its own, as docs/workers.md says; the old one is let go
        import gc
        gc.collect()
        os._exit(0)
    os.waitpid(pid, 0)
store.create_batch(["b"])
store.create_batch(["c"])
print(store.health()[-1].pending_hints, flush=True)
os._exit(0)  # the parent crashes: a durable journal keeps its hints across that
"""


@pytest.mark.parametrize("child", ["no child", "leaves", "connects its own"])
def test_a_forked_child_letting_go_of_the_store_leaves_the_parents_journal_whole(tmp_path: Path, child: str) -> None:
    """Freed in the child, the journal's SQLite connection (exclusive locking mode) would delete the parent's WAL."""
    done = subprocess.run(
        [sys.executable, "-c", _CRASHING_PARENT, str(tmp_path), child], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "3", done.stderr
    with sqlite3.connect(tmp_path / "hints.db") as journal:
        (kept,) = journal.execute("SELECT count(*) FROM hints").fetchone()
    assert kept == 3
