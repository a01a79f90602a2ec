"""On local mode, a batch's progress is counted once and then follows the writes: no read of the whole collection.

qdrant-client's local mode answers a ``facet`` or ``count`` by visiting every
point of the collection, so progress that asks one costs the collection each
time. After the first count, ``progress``, ``get_batch`` and the batch
listing must make no such call on the records collection, whatever claims,
updates, retries, adds and expired leases did to the batch, and must still
agree with a count of the stored points made by raw qdrant-client. No
timings: the calls are the measure.
"""

from __future__ import annotations

import collections
import uuid
from typing import cast

import pytest
from qdrant_client import QdrantClient, models

from fallthrough.errors import NotFound
from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.twin import at
from fallthrough.types import Batch, BatchProgress, Progress, Record, RecordUpdate, Status
from fallthrough_qdrant import QdrantBackend
from tests.qdrant.hooks import claim, update
from tests.qdrant.recording import InjectedFault, RecordingClient

RECORDS = "cnt_processing_results"
# Calls that make local mode visit every point of the collection.
WHOLE_COLLECTION = {"scroll", "count", "facet"}


def _recorded() -> tuple[HookDriver, RecordingClient, QdrantBackend]:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=cnt_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(backend, "qdrant")
    driver.open()
    return driver, client, backend


def _stored_counts(client: RecordingClient, batch_id: uuid.UUID) -> Progress:
    """The truth, from raw qdrant-client: every point of the batch, counted by its status."""
    raw = cast(QdrantClient, client._client)
    batch = models.Filter(must=[models.FieldCondition(key="batch_id", match=models.MatchValue(value=str(batch_id)))])
    points, _ = raw.scroll(RECORDS, scroll_filter=batch, limit=1_000_000, with_payload=["status"])
    return Progress.from_counts(dict(collections.Counter(str((point.payload or {})["status"]) for point in points)))


def _visits_of_the_records(client: RecordingClient) -> list[str]:
    return [name for name, args, _ in client.calls if name in WHOLE_COLLECTION and args and args[0] == RECORDS]


def _check(driver: HookDriver, client: RecordingClient, batch_id: uuid.UUID) -> Progress:
    """Progress, the batch's total and its listed progress agree with the stored points, and none counted them."""
    truth = _stored_counts(client, batch_id)
    client.calls.clear()
    progress: Progress = driver.call("fallthrough_progress", batch_id=batch_id)
    batch: Batch = driver.call("fallthrough_get_batch", batch_id=batch_id)
    listed: list[BatchProgress] = driver.call("fallthrough_list_batch_progress", before=None, limit=10)
    batches: list[Batch] = driver.call("fallthrough_list_batches", after=None, limit=10)
    assert _visits_of_the_records(client) == []
    assert {entry.id: entry.total for entry in batches}[batch_id] == truth.total
    assert progress == truth
    assert batch.total == truth.total
    assert {entry.batch.id: entry.progress for entry in listed}[batch_id] == truth
    return progress


def test_progress_follows_every_write_that_moves_a_status_without_counting_the_collection() -> None:
    driver, client, _ = _recorded()
    batch_id, other_id = uuid.uuid4(), uuid.uuid4()
    keys = [f"sku-{i:04d}" for i in range(400)]
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    driver.call(
        "fallthrough_create_batch", batch_id=other_id, keys=keys[:50], first_seq=1, metadata={}, created_at=at(1)
    )
    assert _check(driver, client, batch_id).pending == 400

    first = claim(driver, batch_id, "w1", 120, 10, 100)
    assert _check(driver, client, batch_id).processing == 120
    update(driver, first[:60], Status.COMPLETED, 11)
    update(driver, first[60:90], Status.FAILED, 12)
    update(driver, first[:10], Status.FAILED, 13)  # failed ranks with completed: the later one stands
    update(driver, first[10:20], Status.PROCESSING, 13)  # lower than completed: refused, moves nothing
    assert _check(driver, client, batch_id) == Progress(400, 280, 30, 50, 40)

    # An update that names no attempt takes the stored one; one at a later attempt sends a record back.
    driver.call(
        "fallthrough_update_records",
        updates=[RecordUpdate(batch_id, first[90].key, Status.COMPLETED)],
        updated_at=at(14),
    )
    handed_back = RecordUpdate(batch_id, first[91].key, Status.PENDING, attempt=first[91].attempt + 1)
    driver.call("fallthrough_update_records", updates=[handed_back], updated_at=at(15))
    assert _check(driver, client, batch_id) == Progress(400, 281, 28, 51, 40)

    driver.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(16))
    added = driver.call(
        "fallthrough_add_records",
        batch_id=batch_id,
        keys=[*keys[:5], "new-1", "new-2"],
        first_seq=500,
        created_at=at(17),
    )
    assert added == 2
    assert _check(driver, client, batch_id) == Progress(402, 323, 28, 51, 0)

    # The 28 still held by w1 run out at 110: a claim then takes them again, from processing to processing.
    extended = driver.call(
        "fallthrough_extend_leases",
        batch_id=batch_id,
        keys=[record.key for record in first[92:]],
        worker="w1",
        now=at(20),
        lease_until=at(110),
    )
    assert len(extended) == 28
    late = claim(driver, batch_id, "w2", 400, 110, 100)
    assert len(late) == 351
    assert _check(driver, client, batch_id) == Progress(402, 0, 351, 51, 0)
    assert _check(driver, client, other_id) == Progress(50, 50, 0, 0, 0)
    driver.close()


def test_writes_that_change_counts_by_what_they_did_not_read_drop_them_and_the_next_read_counts_again() -> None:
    driver, client, backend = _recorded()
    counts = backend._records.local_counts
    assert counts is not None
    batch_id = uuid.uuid4()
    keys = [f"k{i}" for i in range(20)]
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    assert counts.counted == 1  # create answers the batch's total: that counted it

    claimed = claim(driver, batch_id, "w", 5, 10, 100)
    driver.call("fallthrough_delete_records", batch_id=batch_id, keys=[claimed[0].key], seqs=[claimed[0].seq])
    assert counts.counted == 0
    client.calls.clear()
    assert driver.call("fallthrough_progress", batch_id=batch_id) == Progress(19, 15, 4, 0, 0)
    assert _visits_of_the_records(client) == ["facet"]

    merged = [*driver.call("fallthrough_get_records", batch_id=batch_id, keys=keys[5:7])]
    done = [Record(batch_id, record.key, record.seq, Status.COMPLETED, 0, None, None, at(20)) for record in merged]
    driver.call("fallthrough_merge_records", batch_id=batch_id, records=done)
    assert counts.counted == 0
    assert _check_after_recount(driver, client, batch_id) == Progress(19, 13, 4, 2, 0)

    # NotFound comes from a check before any write: the kept counts stay (a worker polling a deleted batch).
    with pytest.raises(NotFound):
        driver.call(
            "fallthrough_update_records",
            updates=[
                RecordUpdate(batch_id, claimed[1].key, Status.COMPLETED),
                RecordUpdate(batch_id, "ghost", Status.FAILED),
            ],
            updated_at=at(30),
        )
    with pytest.raises(NotFound):
        claim(driver, uuid.uuid4(), "w", 5, 30, 100)
    assert counts.counted == 1
    assert _check(driver, client, batch_id) == Progress(19, 13, 4, 2, 0)

    # A write that fails part way (here the second of its two upserts) may have landed in part: every
    # kept count goes, not only this batch's.
    client.fail_after["upsert"] = 1
    with pytest.raises(InjectedFault):
        driver.call(
            "fallthrough_update_records",
            updates=[
                RecordUpdate(batch_id, claimed[1].key, Status.COMPLETED),
                RecordUpdate(batch_id, claimed[2].key, Status.FAILED, error="x"),
            ],
            updated_at=at(31),
        )
    assert counts.counted == 0
    assert _check_after_recount(driver, client, batch_id) == Progress(19, 13, 3, 3, 0)

    # Out of the hooks' contract, and still counted right: a key added twice, a record updated twice in one call.
    added = driver.call(
        "fallthrough_add_records", batch_id=batch_id, keys=["new", "new"], first_seq=50, created_at=at(40)
    )
    assert added == 1
    assert _check(driver, client, batch_id) == Progress(20, 14, 3, 3, 0)
    twice = [RecordUpdate(batch_id, "new", Status.COMPLETED), RecordUpdate(batch_id, "new", Status.FAILED, error="x")]
    driver.call("fallthrough_update_records", updates=twice, updated_at=at(41))
    assert _check_after_recount(driver, client, batch_id).total == 20

    driver.call("fallthrough_delete_batch", batch_id=batch_id)
    assert counts.counted == 0
    driver.close()


def _check_after_recount(driver: HookDriver, client: RecordingClient, batch_id: uuid.UUID) -> Progress:
    """One facet counts the batch again; after it, reads count nothing."""
    client.calls.clear()
    driver.call("fallthrough_progress", batch_id=batch_id)
    assert _visits_of_the_records(client) == ["facet"]
    return _check(driver, client, batch_id)
