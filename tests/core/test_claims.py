"""Store.claim, Store.extend_leases and Store.batches through the router, over real (model and SQLite) backends.

Claims are decided by the first serving store that can claim and reach the
others as merges of the claimed records' whole states, journaled as hints
while a store is down; bad input is refused before anything is written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fallthrough
from fallthrough.breaker import BreakerPolicy
from fallthrough.errors import InvalidInput, NotFound, Unsupported
from fallthrough.testing.model import ReferenceBackend
from tests.core.conftest import FakeClock
from tests.core.helpers import gate, gated, health


def _inner(store: fallthrough.Store, name: str) -> ReferenceBackend:
    return gate(store, name).inner


@pytest.fixture
def sqlite_pair(registry: fallthrough.Registry, breaker: BreakerPolicy, tmp_path: Path) -> Iterator[fallthrough.Store]:
    store = fallthrough.connect(
        primary=gated(f"sqlite:///{tmp_path}/a.db"),
        secondary=gated(f"sqlite:///{tmp_path}/b.db"),
        registry=registry,
        breaker=breaker,
    )
    yield store
    store.close()


def test_a_claim_is_decided_once_and_reaches_every_store_whole(sqlite_pair: fallthrough.Store) -> None:
    batch = sqlite_pair.create_batch(["a", "b", "c"])
    claimed = sqlite_pair.claim(batch.id, worker="w1", limit=2, lease=30)
    assert [record.key for record in claimed] == ["a", "b"]
    assert all(record.lease_owner == "w1" and record.lease_expires is not None for record in claimed)
    assert gate(sqlite_pair, "primary").calls["fallthrough_claim_records"] == 1
    assert gate(sqlite_pair, "secondary").calls["fallthrough_claim_records"] == 0
    for name in ("primary", "secondary"):
        held = gate(sqlite_pair, name).inner.fallthrough_get_records(batch.id, ["a", "b"])
        assert held == claimed, f"{name} does not hold the claimed states"


def test_a_claim_while_a_store_is_down_is_journaled_and_replayed(
    sqlite_pair: fallthrough.Store, clock: FakeClock
) -> None:
    batch = sqlite_pair.create_batch(["a", "b"])
    gate(sqlite_pair, "secondary").outage = True
    (claimed,) = sqlite_pair.claim(batch.id, worker="w1")
    assert health(sqlite_pair, "secondary").pending_hints == 1
    gate(sqlite_pair, "secondary").outage = False
    clock.advance(31)
    assert sqlite_pair.drain(timeout=10)
    assert gate(sqlite_pair, "secondary").inner.fallthrough_get_record(batch.id, "a") == claimed
    assert sqlite_pair.extend_leases(batch.id, ["a"], worker="w1", lease=90) == 1
    for name in ("primary", "secondary"):
        record = gate(sqlite_pair, name).inner.fallthrough_get_record(batch.id, "a")
        assert record is not None and record.lease_owner == "w1"
        assert record.lease_expires is not None and claimed.lease_expires is not None
        assert record.lease_expires > claimed.lease_expires


def test_a_durable_journal_carries_claimed_states(
    registry: fallthrough.Registry, breaker: BreakerPolicy, tmp_path: Path
) -> None:
    urls = {"primary": gated(f"sqlite:///{tmp_path}/a.db"), "secondary": gated(f"sqlite:///{tmp_path}/b.db")}
    journal = f"sqlite:///{tmp_path}/hints.db"
    store = fallthrough.connect(**urls, registry=registry, breaker=breaker, journal=journal)
    batch = store.create_batch(["a"])
    gate(store, "secondary").outage = True
    (claimed,) = store.claim(batch.id, worker="w1", lease=120)
    store.close(timeout=0)
    # A new process: the hint is read back from the file and replayed.
    reopened = fallthrough.connect(**urls, registry=registry, journal=journal)
    try:
        assert reopened.drain(timeout=10)
        assert gate(reopened, "secondary").inner.fallthrough_get_record(batch.id, "a") == claimed
    finally:
        reopened.close()


def test_failover_claims_on_the_next_store_and_the_attempt_pin_settles_the_late_answer(
    pair: fallthrough.Store, clock: FakeClock
) -> None:
    batch = pair.create_batch(["a"])
    (first,) = pair.claim(batch.id, worker="old", lease=0.05)
    # The primary goes down; the lease ends; another worker claims from the secondary.
    gate(pair, "primary").outage = True
    time.sleep(0.06)
    (second,) = pair.claim(batch.id, worker="new", lease=60)
    assert (second.attempt, second.lease_owner) == (first.attempt + 1, "new")
    # The old holder's late answer, pinned to its attempt, changes nothing once the stores converge.
    pair.update(batch.id, "a", "completed", result="late", attempt=first.attempt)
    pair.update(batch.id, "a", "completed", result="fresh", attempt=second.attempt)
    gate(pair, "primary").outage = False
    clock.advance(31)
    assert pair.drain(timeout=10)
    for name in ("primary", "secondary"):
        record = _inner(pair, name).fallthrough_get_record(batch.id, "a")
        assert record is not None
        assert (record.result, record.attempt, record.lease_owner) == ("fresh", 1, None), name


def test_bad_claims_are_refused_before_anything_is_written(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    for arguments in (
        {"worker": ""},
        {"worker": 7},
        {"worker": "w\x00"},
        {"worker": "w", "limit": 0},
        {"worker": "w", "limit": True},
        {"worker": "w", "lease": 0},
        {"worker": "w", "lease": -1.0},
        {"worker": "w", "lease": float("nan")},
        {"worker": "w", "lease": float("inf")},
        {"worker": "w", "lease": "60"},
    ):
        with pytest.raises(InvalidInput):
            pair.claim(batch.id, **arguments)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        pair.extend_leases(batch.id, ["a", "a"], worker="w")
    with pytest.raises(InvalidInput):
        pair.claim("not a uuid", worker="w")
    assert gate(pair, "primary").calls["fallthrough_claim_records"] == 0
    record = pair.get_record(batch.id, "a")
    assert record is not None and record.status is fallthrough.Status.PENDING
    with pytest.raises(NotFound):
        pair.claim(uuid.uuid4(), worker="w")
    with pytest.raises(NotFound):
        pair.extend_leases(uuid.uuid4(), ["a"], worker="w")


def test_a_store_without_a_claiming_backend_says_so(registry: fallthrough.Registry) -> None:
    with fallthrough.connect("flaky://?records_only=1", registry=registry) as store:
        batch = store.create_batch(["a"])
        with pytest.raises(Unsupported):
            store.claim(batch.id, worker="w")
        assert [item.batch.id for item in store.batches()] == [batch.id]


def test_claims_are_decided_by_a_claiming_backend_and_reach_one_that_cannot_claim(
    registry: fallthrough.Registry,
) -> None:
    with fallthrough.connect(plain="flaky://?no_claims=1", claiming="flaky://", registry=registry) as store:
        batch = store.create_batch(["a"])
        (claimed,) = store.claim(batch.id, worker="w")
        assert gate(store, "plain").calls["fallthrough_claim_records"] == 0
        assert _inner(store, "plain").fallthrough_get_record(batch.id, "a") == claimed


def test_batches_are_listed_newest_first_across_pages(pair: fallthrough.Store) -> None:
    made = [pair.create_batch([f"k{n}" for n in range(index)]) for index in range(7)]
    pair.update(made[3].id, "k0", "completed")
    listed = list(pair.batches(page_size=2))
    assert [item.batch.id for item in listed] == [batch.id for batch in reversed(made)]
    assert [item.progress.total for item in listed] == [6, 5, 4, 3, 2, 1, 0]
    assert listed[3].progress.completed == 1
    assert [item.batch.id for item in pair.batches(limit=3, page_size=2)] == [batch.id for batch in made[:-4:-1]]
    with pytest.raises(InvalidInput):
        pair.batches(page_size=0)
    with pytest.raises(InvalidInput):
        pair.batches(limit=0)
