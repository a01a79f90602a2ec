"""A claim hands out its whole lease, however long the call waited before a store applied it.

A claim's lease is stamped before the call. A wait in the call (another
writer holding a SQLite file's lock, a primary that fails slowly before the
next store serves) came off the lease, and a wait longer than the lease
handed a worker records whose lease had already run out, which a second
worker could claim at once. Now a claim that answers after more than
``LATE_CLAIM_SHARE`` of its lease extends the leases first, and hands out no
record whose lease ran out meanwhile.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import fallthrough
from fallthrough.store import LATE_CLAIM_SHARE
from tests.core.helpers import eventually, gate


def _left(record: fallthrough.Record) -> float:
    assert record.lease_expires is not None
    return (record.lease_expires - datetime.now(UTC)).total_seconds()


def _release_after(store: fallthrough.Store, name: str, seconds: float, *, then_outage: bool = False) -> None:
    """Let the held call through ``seconds`` after it arrives; with ``then_outage``, it fails instead."""
    flaky = gate(store, name)

    def later() -> None:
        assert flaky.wait_held(1)
        time.sleep(seconds)
        flaky.outage = then_outage
        flaky.release()

    threading.Thread(target=later, daemon=True).start()


@pytest.fixture
def single(registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    store = fallthrough.connect(only="flaky://", registry=registry)
    yield store
    store.close()


def test_a_prompt_claim_is_one_write(single: fallthrough.Store) -> None:
    batch = single.create_batch(["a", "b"])
    (claimed,) = single.claim(batch.id, worker="w", lease=60)
    assert claimed.key == "a"
    assert gate(single, "only").calls["fallthrough_extend_leases"] == 0


def test_a_claim_that_waited_hands_out_its_whole_lease(single: fallthrough.Store) -> None:
    batch = single.create_batch(["a"])
    gate(single, "only").hold("fallthrough_claim_records")
    _release_after(single, "only", 0.6)
    assert LATE_CLAIM_SHARE < 0.6 / 2.0  # a wait long enough to make amends for
    (claimed,) = single.claim(batch.id, worker="w", lease=2.0)
    assert _left(claimed) > 1.8  # stamped before the wait, it had 1.4 s left
    assert single.get_record(batch.id, "a") == claimed  # the store holds the lease handed out


def test_a_claim_that_waited_out_its_lease_hands_out_nothing(single: fallthrough.Store) -> None:
    batch = single.create_batch(["a"])
    gate(single, "only").hold("fallthrough_claim_records")
    _release_after(single, "only", 0.8)
    assert single.claim(batch.id, worker="late", lease=0.5) == []
    # Nobody holds "a" under a live lease: the next worker takes it, at the next attempt.
    (taken,) = single.claim(batch.id, worker="next", lease=60)
    assert (taken.key, taken.attempt, taken.lease_owner) == ("a", 1, "next")


def test_a_claim_that_fell_through_after_a_slow_failure_hands_out_its_whole_lease(
    registry: fallthrough.Registry,
) -> None:
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry)
    try:
        batch = store.create_batch(["a"])
        gate(store, "primary").hold("fallthrough_claim_records")
        _release_after(store, "primary", 1.0, then_outage=True)
        (claimed,) = store.claim(batch.id, worker="w", lease=3.0)
        assert _left(claimed) > 2.7  # stamped before the primary was tried, it had 2.0 s left
        assert gate(store, "secondary").inner.fallthrough_get_record(batch.id, "a") == claimed
    finally:
        store.close(timeout=0)  # the primary stays down: no replay to wait for


def test_a_claim_behind_another_writer_on_a_sqlite_file_hands_out_its_whole_lease(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with fallthrough.connect(f"sqlite:///{path}") as store:
        batch = store.create_batch(["a"])
        other_writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            other_writer.execute("BEGIN IMMEDIATE")
            threading.Timer(0.6, other_writer.execute, ["COMMIT"]).start()
            (claimed,) = store.claim(batch.id, worker="w", lease=2.0)
            assert _left(claimed) > 1.8  # stamped before the wait, it had 1.4 s left
        finally:
            time.sleep(0.7)  # the other writer's COMMIT has run
            other_writer.close()
        assert store.get_record(batch.id, "a") == claimed
        # Another Store on the file (another worker) finds nothing to claim.
        with fallthrough.connect(f"sqlite:///{path}") as second:
            assert second.claim(batch.id, worker="other", lease=2.0) == []


def test_a_late_claim_does_not_hand_out_what_the_same_worker_claimed_again_meanwhile(
    single: fallthrough.Store,
) -> None:
    """An extension holds for the worker's name at any attempt: the late claim keeps only the attempt it claimed."""
    batch = single.create_batch(["a"])
    flaky = gate(single, "only")
    flaky.hold("fallthrough_claim_records", "fallthrough_extend_leases")
    late: list[fallthrough.Record] = []
    claiming = threading.Thread(target=lambda: late.extend(single.claim(batch.id, worker="host-1", lease=0.5)))
    claiming.start()
    assert flaky.wait_held(1)
    time.sleep(0.7)  # the lease it was stamped with runs out while it waits
    flaky.hold("fallthrough_extend_leases")  # the claim lands; its extension waits
    assert eventually(lambda: flaky.calls["fallthrough_extend_leases"] == 1 and flaky.held == 1)
    # Meanwhile another thread of the same worker claims "a" again, its lease having run out.
    again = single.claim(batch.id, worker="host-1", lease=60)
    assert [(record.key, record.attempt) for record in again] == [("a", 1)]
    flaky.release()
    claiming.join(10)
    assert not claiming.is_alive()
    assert late == []


def test_a_late_claim_whose_extension_failed_slowly_hands_out_no_lease_that_ran_out(
    single: fallthrough.Store,
) -> None:
    batch = single.create_batch(["a"])
    flaky = gate(single, "only")
    flaky.hold("fallthrough_claim_records", "fallthrough_extend_leases")

    def later() -> None:
        assert flaky.wait_held(1)
        time.sleep(0.3)  # the claim waits: more than a tenth of its 1 s lease
        flaky.hold("fallthrough_extend_leases")
        assert eventually(lambda: flaky.calls["fallthrough_extend_leases"] == 1 and flaky.held == 1)
        time.sleep(1.0)  # the extension waits, then fails: the claim's lease has run out by then
        flaky.outage = True
        flaky.release()

    threading.Thread(target=later, daemon=True).start()
    assert single.claim(batch.id, worker="w", lease=1.0) == []
