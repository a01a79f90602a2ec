"""Rules of the router that a mutation review found no test held to.

Each test states one rule of ``docs/semantics.md`` ("Failover guarantees")
or ``docs/architecture.md`` and fails when the router breaks it: a review
changed the router one comparison or branch at a time, and each of these
failed on its change while the rest of the tests passed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough.errors import AllBackendsFailed
from fallthrough.inflight import WritesInFlight
from fallthrough.journal import JournalPolicy, MemoryJournal
from fallthrough.types import Document, Status

from .conftest import FakeClock
from .helpers import eventually, gate, health


@pytest.fixture
def store(registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy) -> Iterator[fallthrough.Store]:
    """Two fault-gated reference stores, ``a`` first; a breaker that opens at the first failure, on the test's clock."""
    opened = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=breaker)
    yield opened
    opened.close()


def test_a_backend_that_comes_back_catches_up_in_the_background_without_a_drain(
    registry: fallthrough.Registry,
) -> None:
    """The replayer runs from the first miss, even when that miss opened the backend's breaker."""
    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=fallthrough.BreakerPolicy(cooldown=0.01)
    )
    try:
        batch = store.create_batch(["k"])
        b = gate(store, "b")
        b.outage = True
        store.update(batch.id, "k", "completed")
        b.outage = False
        assert eventually(lambda: health(store, "b").pending_hints == 0, timeout=5)
        assert health(store, "b").serves_reads
        record = b.inner.fallthrough_get_record(batch.id, "k")
        assert record is not None and record.status is Status.COMPLETED
    finally:
        store.close()


def test_writes_deferred_by_the_first_concern_reach_the_others_without_a_drain(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=breaker, write_concern="first")
    try:
        batch = store.create_batch(["k"])
        assert eventually(lambda: health(store, "b").pending_hints == 0)
        assert gate(store, "b").inner.fallthrough_get_batch(batch.id) is not None
    finally:
        store.close()


def test_a_backend_marked_for_repair_without_hints_serves_no_reads(store: fallthrough.Store) -> None:
    batch = store.create_batch(["k"])
    gate(store, "b").inner.fallthrough_delete_batch(batch.id)  # b diverges behind the Store's back
    store.update(batch.id, "k", "completed")  # a applies it; b refuses: a repair mark, no hint
    entry = health(store, "b")
    assert (entry.pending_hints, entry.needs_repair, entry.serves_reads) == (0, True, False)
    gate(store, "a").outage = True
    with pytest.raises(AllBackendsFailed):
        store.get_record(batch.id, "k")  # b would answer None: stale


def test_the_early_trial_goes_to_the_backend_whose_cooldown_ends_first(
    store: fallthrough.Store, clock: FakeClock
) -> None:
    batch = store.create_batch(["k"])
    a, b = gate(store, "a"), gate(store, "b")
    a.outage = True
    store.progress(batch.id)  # a's breaker opens at t; b serves
    clock.advance(10.0)
    b.outage = True
    with pytest.raises(AllBackendsFailed):
        store.progress(batch.id)  # b's opens at t + 10: 30 s left, a has 20
    a.outage = b.outage = False
    assert store.progress(batch.id).total == 1
    assert (health(store, "a").state, health(store, "b").state) == ("closed", "open")


def test_no_early_trial_when_another_backend_was_really_tried(store: fallthrough.Store) -> None:
    batch = store.create_batch(["k"])
    a, b = gate(store, "a"), gate(store, "b")
    a.outage = True
    store.progress(batch.id)  # a's breaker opens
    a.outage, b.outage = False, True
    calls = a.calls["fallthrough_progress"]
    with pytest.raises(AllBackendsFailed):
        store.progress(batch.id)  # b was tried and failed: a stays in its cooldown
    assert a.calls["fallthrough_progress"] == calls


def test_a_backend_that_failed_while_deciding_is_not_called_again_to_replicate(
    registry: fallthrough.Registry, clock: FakeClock
) -> None:
    """A threshold above 1 keeps the breaker closed after a failure: a dead store costs one timeout a write, not two."""
    policy = fallthrough.BreakerPolicy(failure_threshold=3, cooldown=30.0, clock=clock)
    store = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=policy)
    try:
        a = gate(store, "a")
        store.create_batch(["opened"])
        a.outage = True
        store.create_batch(["k"])
        assert a.calls["fallthrough_create_batch"] == 2, "a dead backend was called twice for one write"
        assert health(store, "a").pending_hints == 1
    finally:
        store.close()


def test_a_write_to_a_backend_with_hints_waits_behind_them(store: fallthrough.Store, clock: FakeClock) -> None:
    b = gate(store, "b")
    b.outage = True
    batch = store.create_batch(["k"])  # b gets the creation as a hint
    b.outage = False
    clock.advance(30.0)  # b's breaker would let a call through; its hint is not replayed yet
    store.update(batch.id, "k", "completed")
    assert store.drain(timeout=10)
    assert not health(store, "b").needs_repair
    record = b.inner.fallthrough_get_record(batch.id, "k")
    assert record is not None and record.status is Status.COMPLETED


def test_a_merged_replay_that_finds_a_record_missing_marks_the_backend_for_repair(
    store: fallthrough.Store, clock: FakeClock
) -> None:
    batch = store.create_batch(["k1", "k2"])
    b = gate(store, "b")
    record = store.get_record(batch.id, "k1")
    assert record is not None
    b.inner.fallthrough_delete_records(batch.id, ["k1"], [record.seq])  # b lost k1 behind the Store's back
    b.outage = True
    store.update(batch.id, "k1", "completed")
    store.update(batch.id, "k2", "completed")  # two update hints: one merged replay
    b.outage = False
    clock.advance(30.0)
    store.drain(timeout=10)
    assert health(store, "b").needs_repair, "b serves reads without k1"


def test_a_hint_is_never_replayed_to_a_backend_without_its_capability(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(a="flaky://", b="flaky://?records_only=1", registry=registry, breaker=breaker)
    try:
        b = gate(store, "b")
        b.outage = True  # down before it was ever opened: its capabilities are unknown
        store.upsert_documents("c", [Document("d", "text")])  # so b gets a hint
        b.outage = False
        clock.advance(30.0)
        assert store.drain(timeout=10)
        assert b.calls["fallthrough_upsert_documents"] == 0
    finally:
        store.close()


def test_a_repair_mark_made_while_a_repair_runs_outlives_that_repair(store: fallthrough.Store) -> None:
    batch = store.create_batch(["k"])
    a, b = gate(store, "a"), gate(store, "b")
    a.hold("fallthrough_list_batches")
    repairing = threading.Thread(target=store.repair)
    repairing.start()
    try:
        assert a.wait_held(1)
        b.inner.fallthrough_delete_batch(batch.id)
        store.update(batch.id, "k", "completed")  # b refuses: a mark newer than the repair's start
        assert health(store, "b").needs_repair
    finally:
        a.release()
        repairing.join()
    assert health(store, "b").needs_repair, "a repair that began before the mark cleared it"


def test_lag_counts_from_the_oldest_hint_still_waiting(clock: FakeClock) -> None:
    journal = MemoryJournal(JournalPolicy(clock=clock))
    journal.record("b", "fallthrough_delete_batch", {"batch_id": uuid.uuid4()}, "records")
    clock.advance(100.0)
    journal.record("b", "fallthrough_delete_batch", {"batch_id": uuid.uuid4()}, "records")
    (first_id, _), _ = journal.peek("b", 2)
    journal.remove_through("b", first_id)
    assert journal.lag("b") == 0.0  # the hint left was recorded just now


def test_writes_in_flight_take_no_more_than_their_limit() -> None:
    writes: WritesInFlight[int] = WritesInFlight(2)
    go = threading.Event()
    third = threading.Thread(target=writes.submit, args=(lambda: 1, 2))
    try:
        writes.submit(lambda: go.wait() and 1, 0)
        writes.submit(lambda: go.wait() and 1, 1)
        third.start()
        third.join(0.3)
        assert third.is_alive(), "a third write was taken while two were running"
    finally:
        go.set()
        if third.ident is not None:
            third.join()
    assert writes.wait() == 3
    assert writes.close() is None


def test_a_hint_exactly_max_age_old_is_kept_and_one_older_gives_up(clock: FakeClock) -> None:
    """``max_age`` is how long the oldest hint *may* wait: giving up starts past it."""
    journal = MemoryJournal(JournalPolicy(max_age=60.0, clock=clock))
    journal.record("b", "fallthrough_delete_batch", {"batch_id": uuid.uuid4()}, "records")
    journal.record("b", "fallthrough_update_records", {"updates": (), "updated_at": None}, "records")
    clock.advance(60.0)
    assert len(journal.peek("b", 10)) == 2 and not journal.needs_repair("b")
    clock.advance(0.001)
    assert [hint.operation for _, hint in journal.peek("b", 10)] == ["fallthrough_delete_batch"]
    assert journal.needs_repair("b")


def test_under_the_first_concern_a_caller_waits_only_once_more_than_max_lag_writes_wait(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=breaker, write_concern="first", max_lag=2
    )
    b = gate(store, "b")
    batch = store.create_batch(["k1", "k2", "k3"])
    assert eventually(lambda: health(store, "b").pending_hints == 0)
    b.hold("fallthrough_update_records")
    writers = [
        threading.Thread(target=store.update, args=(batch.id, key, "completed"), daemon=True)
        for key in ("k1", "k2", "k3")
    ]
    try:
        writers[0].start()
        writers[0].join(10)
        assert b.wait_held(1)  # the replayer is sending k1's update to b, and waits there with its hint
        writers[1].start()
        writers[1].join(10)
        assert not writers[1].is_alive(), "a write waited with no more than max_lag writes waiting"
        assert health(store, "b").pending_hints == 2
        writers[2].start()
        writers[2].join(0.5)
        assert writers[2].is_alive(), "a write returned with more than max_lag writes waiting for a reachable store"
    finally:
        b.release()
        for writer in writers:
            if writer.ident is not None:
                writer.join()
        store.close()
