"""Failover under concurrent calls: bounds that hold while the replayer works, writes that reach stores in order.

Real SQLite files behind the fault gate from the public registry; the faults
are the gate's (an outage, a slow hook, a held hook). Nothing in the router is
mocked.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate
from fallthrough.errors import AllBackendsFailed, BackendUnavailable
from fallthrough.journal import MemoryJournal
from fallthrough.router import CATCH_UP_WAIT

from .helpers import eventually, gate, health, sqlite_file

SLOW_REPLAY_HINTS = 200
SLOW_REPLAY_CALL = 0.05  # seconds a hint's call takes: a slow store, answering well within any timeout


def _connect_two_files(tmp_path: Path, registry: fallthrough.Registry, **breaker: Any) -> fallthrough.Store:
    """SQLite files "a" and "b", in that order, behind fault gates; a breaker that tries again after 10 ms."""
    return fallthrough.connect(
        a=sqlite_file(tmp_path, "a"),
        b=sqlite_file(tmp_path, "b"),
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.01, **breaker),
    )


@pytest.fixture
def slow_to_catch_up(tmp_path: Path, registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    """Two stores; "b" missed 200 writes and is being caught up by the replayer, 50 ms a write (10 s in all)."""
    store = _connect_two_files(tmp_path, registry)
    gate(store, "b").outage = True
    for index in range(SLOW_REPLAY_HINTS):
        store.upsert_documents("c", [Document(f"d{index}", text=f"text {index}")])
    assert health(store, "b").pending_hints == SLOW_REPLAY_HINTS
    gate(store, "b").delays["fallthrough_upsert_documents"] = SLOW_REPLAY_CALL
    gate(store, "b").outage = False
    # An outage fails at the gate of the open, so every upsert "b" gets from here on is a replayed hint.
    assert eventually(lambda: gate(store, "b").calls["fallthrough_upsert_documents"] >= 2)
    yield store
    store.close(timeout=0.1)  # the rest of the replay is not this test's business


def test_a_read_waits_at_most_catch_up_wait_for_a_store_the_replayer_is_catching_up(
    slow_to_catch_up: fallthrough.Store,
) -> None:
    """It waited for the replayer's whole catch-up (the replay lock), which grows with the hints: 22 s for 400."""
    store = slow_to_catch_up
    gate(store, "a").outage = True  # the one store up to date fails: only "b", still behind, is left
    started = time.monotonic()
    with pytest.raises(AllBackendsFailed, match="behind by"):
        store.get_documents("c", ["d0"])
    waited = time.monotonic() - started
    assert health(store, "b").pending_hints > 0  # the replay was still going: the bound was what ended it
    assert CATCH_UP_WAIT - 0.5 <= waited <= CATCH_UP_WAIT + 2


def test_drain_returns_at_its_timeout_while_the_replayer_catches_a_store_up(
    slow_to_catch_up: fallthrough.Store,
) -> None:
    store = slow_to_catch_up
    started = time.monotonic()
    assert store.drain(timeout=0.5) is False
    waited = time.monotonic() - started
    assert health(store, "b").pending_hints > 0
    assert waited < 2


@pytest.fixture
def two_files(tmp_path: Path, registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    """Two SQLite files behind fault gates, "a" first."""
    store = _connect_two_files(tmp_path, registry)
    store.health(ping=True)
    yield store
    for name in ("a", "b"):
        gate(store, name).release()  # a test that failed while holding a call must not hang the close
    store.close()


def _holds(store: fallthrough.Store, name: str, batch_id: uuid.UUID) -> bool:
    return gate(store, name).inner.fallthrough_get_batch(batch_id) is not None


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:  # the test reads it
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_delete_made_while_a_create_reaches_the_second_store_is_applied_after_it_there(
    two_files: fallthrough.Store,
) -> None:
    """The delete went straight to "b" before the create got there: "b" kept the batch "a" had deleted.

    Nothing said so (no hint, no repair mark), and with "a" down the deleted
    batch was read back; a repair then copied it back to "a".
    """
    store, batch_id = two_files, uuid.uuid4()
    gate(store, "b").hold("fallthrough_create_batch")
    creating, created = _in_thread(lambda: store.create_batch(["k1", "k2"], batch_id=batch_id))
    assert gate(store, "b").wait_held(1)
    deleting, deleted = _in_thread(lambda: store.delete_batch(batch_id))
    time.sleep(0.2)
    assert deleting.is_alive()  # it waits for the create's turn
    gate(store, "b").release()
    creating.join(10)
    deleting.join(10)
    assert "error" not in created and deleted == {"value": True}
    assert not _holds(store, "a", batch_id) and not _holds(store, "b", batch_id)
    gate(store, "a").outage = True
    assert store.get_batch(batch_id) is None


def test_a_delete_made_while_a_create_misses_the_second_store_is_journaled_after_it(
    two_files: fallthrough.Store,
) -> None:
    """The create's copy failed after the delete went straight to "b": its replay brought the batch back there."""
    store, batch_id = two_files, uuid.uuid4()
    gate(store, "b").fail_next("fallthrough_create_batch")
    gate(store, "b").hold("fallthrough_create_batch")
    creating, created = _in_thread(lambda: store.create_batch(["k1"], batch_id=batch_id))
    assert gate(store, "b").wait_held(1)
    deleting, deleted = _in_thread(lambda: store.delete_batch(batch_id))
    time.sleep(0.2)
    gate(store, "b").release()
    creating.join(10)
    deleting.join(10)
    assert "error" not in created and deleted == {"value": True}
    assert store.drain(10)
    assert not _holds(store, "a", batch_id) and not _holds(store, "b", batch_id)
    assert not any(entry.needs_repair for entry in store.health())


def test_a_delete_made_while_a_repair_sends_the_batch_header_comes_after_it(two_files: fallthrough.Store) -> None:
    """The repair read the header where the create had landed, and sent it to "b" after the delete: "b" kept it."""
    store, batch_id = two_files, uuid.uuid4()
    gate(store, "b").hold("fallthrough_create_batch")
    creating, created = _in_thread(lambda: store.create_batch(["k1"], batch_id=batch_id))
    assert gate(store, "b").wait_held(1)
    gate(store, "b").hold("fallthrough_create_batch", "fallthrough_repair_batch")
    repairing, repaired = _in_thread(store.repair)
    assert gate(store, "b").wait_held(2)  # the repair saw the header on "a" only, and is sending it to "b"
    gate(store, "b").hold("fallthrough_repair_batch")
    creating.join(10)  # the create lands on "b"
    deleting, deleted = _in_thread(lambda: store.delete_batch(batch_id))
    time.sleep(0.2)
    assert deleting.is_alive()  # it waits for the repair of the batch
    gate(store, "b").release()
    repairing.join(10)
    deleting.join(10)
    assert "error" not in created and "error" not in repaired and deleted == {"value": True}
    assert not _holds(store, "a", batch_id) and not _holds(store, "b", batch_id)


def test_a_delete_made_while_a_repair_merges_the_batch_s_records_does_not_end_the_repair(
    two_files: fallthrough.Store,
) -> None:
    """The delete landed between the repair's reads of one page: the repair raised NotFound and stopped."""
    store = two_files
    batch = store.create_batch(["k1", "k2"])
    gate(store, "b").hold("fallthrough_get_records")
    repairing, repaired = _in_thread(store.repair)
    assert gate(store, "b").wait_held(1)
    deleting, deleted = _in_thread(lambda: store.delete_batch(batch.id))
    time.sleep(0.2)
    gate(store, "b").release()
    repairing.join(10)
    deleting.join(10)
    assert "error" not in repaired and deleted == {"value": True}
    assert not _holds(store, "a", batch.id) and not _holds(store, "b", batch.id)


def test_turns_are_dropped_once_nobody_holds_them(two_files: fallthrough.Store) -> None:
    store = two_files
    batch = store.create_batch(["k1"])
    store.add_records(batch.id, ["k2"])
    store.delete_batch(batch.id)
    store.repair()
    assert len(store._router.batch_turns) == 0


def test_a_repair_does_not_copy_back_a_batch_whose_delete_a_store_has_only_in_the_journal(
    tmp_path: Path, registry: fallthrough.Registry
) -> None:
    """The delete reached "a" and was journaled for "b" after the repair had caught "b" up.

    The repair then read the batch on "b" and copied it back to "a"; the
    replayed delete removed it from "b" only: "a" kept a batch deleted, with
    no mark. Now the repair catches "b" up again before the batch, and, as
    "b" cannot take the delete yet, stops and says so.
    """
    with _connect_two_files(tmp_path, registry, failure_threshold=1000) as store:
        batch = store.create_batch(["k1", "k2"])
        gate(store, "a").hold("fallthrough_list_batches")
        repairing, repaired = _in_thread(store.repair)
        assert gate(store, "a").wait_held(1)  # the repair is past its catch-up, about to list "a"
        gate(store, "b").failing.add("fallthrough_delete_batch")
        assert store.delete_batch(batch.id)
        assert health(store, "b").pending_hints == 1
        gate(store, "a").release()
        repairing.join(10)
        assert isinstance(repaired.get("error"), BackendUnavailable), repaired
        assert "b missed writes during the repair" in str(repaired["error"])
        gate(store, "b").failing.clear()
        assert store.drain(10)
        assert not _holds(store, "a", batch.id) and not _holds(store, "b", batch.id)
        assert store.get_batch(batch.id) is None


@pytest.mark.parametrize("call", ["update", "claim"])
def test_a_worker_s_write_that_reaches_a_store_after_its_batch_was_deleted_there_marks_nothing(
    two_files: fallthrough.Store, call: str
) -> None:
    """Workers updating a batch as it is cancelled: "b" refused the late copy with NotFound, and was marked.

    Marked, it served no reads until a whole repair, though every store
    agreed the batch was gone.
    """
    store = two_files
    batch = store.create_batch(["k1"])
    copy_hook = "fallthrough_update_records" if call == "update" else "fallthrough_merge_records"
    gate(store, "b").hold(copy_hook)
    if call == "update":
        working, worked = _in_thread(lambda: store.update(batch.id, "k1", "completed", attempt=0))
    else:
        working, worked = _in_thread(lambda: store.claim(batch.id, worker="w1"))
    assert gate(store, "b").wait_held(1)  # applied on "a", its copy on its way to "b"
    assert store.delete_batch(batch.id)
    gate(store, "b").release()
    working.join(10)
    assert "error" not in worked, worked
    assert gate(store, "b").calls[copy_hook] == 1  # the copy did reach "b", after the delete
    assert not any(entry.needs_repair for entry in store.health())
    assert not _holds(store, "a", batch.id) and not _holds(store, "b", batch.id)


def test_a_write_refused_for_a_batch_another_store_still_holds_still_marks(two_files: fallthrough.Store) -> None:
    """The other side of the rule above: "b" lost the batch while "a" kept it, and that is a difference to repair."""
    store = two_files
    batch = store.create_batch(["k1"])
    gate(store, "b").inner.fallthrough_delete_batch(batch.id)  # behind the Store's back
    store.update(batch.id, "k1", "completed", attempt=0)
    assert [entry.name for entry in store.health() if entry.needs_repair] == ["b"]


def test_a_replayed_update_that_comes_after_its_batch_s_replayed_delete_marks_nothing(
    tmp_path: Path, registry: fallthrough.Registry
) -> None:
    """A worker's update applied on "a" just before the batch was deleted there, both journaled for "b", delete first.

    Replayed in that order, the update found no batch on "b", and "b" was
    marked for repair though "a" had no batch either.
    """
    journal = MemoryJournal()
    store = fallthrough.connect(
        a=sqlite_file(tmp_path, "a"), b=sqlite_file(tmp_path, "b"), registry=registry, journal=journal
    )
    with store:
        batch = store.create_batch(["k1"])
        update = RecordUpdate(batch.id, "k1", "completed", attempt=0).pinned(0)
        gate(store, "a").inner.fallthrough_delete_batch(batch.id)  # the delete, as it reached "a"
        journal.record("b", "fallthrough_delete_batch", {"batch_id": batch.id}, "records")
        arguments = {"updates": (update,), "updated_at": datetime.now(UTC)}
        journal.record("b", "fallthrough_update_records", arguments, "records")
        assert store.drain(10)
        assert not any(entry.needs_repair for entry in store.health())
        assert not _holds(store, "a", batch.id) and not _holds(store, "b", batch.id)


def test_an_observer_writing_to_the_batch_it_is_told_about_gets_an_error_not_a_deadlock(
    registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """The create holds its batch's turn while it tells observers of a miss; a delete from there would wait for it."""

    class DeletesWhatWasMissed:
        store: fallthrough.Store

        @fallthrough.hookimpl
        def fallthrough_missed_write(self, operation: str, arguments: dict[str, Any]) -> None:
            if operation == "fallthrough_create_batch":
                self.store.delete_batch(arguments["batch_id"])

    observer = DeletesWhatWasMissed()
    store = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, plugins=[observer])
    observer.store = store
    gate(store, "b").outage = True
    created: list[fallthrough.Batch] = []
    creating = threading.Thread(target=lambda: created.append(store.create_batch(["k"])), daemon=True)
    creating.start()
    creating.join(10)
    assert created, "the create waited for the observer's delete, which waited for the create"
    assert "an observer of fallthrough_missed_write failed: TurnHeld: a write to batch" in caplog.text
    assert store.get_batch(created[0].id) is not None  # the delete was refused, not half made
    store.close(timeout=0.1)  # "b" is still down: nothing to wait for
