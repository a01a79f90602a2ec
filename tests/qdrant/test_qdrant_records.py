"""Records beyond the suite: the merge filter on the wide keys, equal seqs across pages, threads, replays."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient, models

from fallthrough.testing.model import ReferenceBackend
from fallthrough.testing.twin import Twin, at
from fallthrough.types import RecordUpdate, Status
from fallthrough_qdrant.records import Records, _lower_than
from fallthrough_qdrant.schema import CollectionNames, ensure_records_schema, halves

# Keys as they really are: small attempts and ranks, a µs stamp, a 56-bit tiebreak. Values that differ
# only in the lowest bits of a wide field are where a float bound would round and decide wrong.
_WIDE = st.one_of(st.integers(0, 2**56 - 1), st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 2**56 - 2, 2**56 - 1]))
_MERGE_KEYS = st.tuples(st.integers(0, 3), st.integers(0, 2), _WIDE, _WIDE)


def _wide(key: tuple[int, int, int, int]) -> tuple[int, ...]:
    attempt, rank, micros, tiebreak = key
    return (attempt, rank, *halves(micros), *halves(tiebreak))


@settings(max_examples=60, deadline=None)
@given(stored=_MERGE_KEYS, new=_MERGE_KEYS, nudge=st.sampled_from([None, 2, 3]))
def test_the_conditional_upsert_lands_exactly_when_the_stored_key_is_lower(
    stored: tuple[int, int, int, int], new: tuple[int, int, int, int], nudge: int | None
) -> None:
    """The lexicographic filter, on a real local client, against Python's tuple order."""
    if nudge is not None:  # make the keys share a prefix, so the later fields decide
        new = (*stored[:nudge], *new[nudge:])  # type: ignore[assignment]
    client = QdrantClient(location=":memory:")
    client.create_collection("r", vectors_config={})
    fields = ("attempt", "rank", "us_hi", "us_lo", "tb_hi", "tb_lo")
    client.upsert(
        "r",
        [models.PointStruct(id=1, vector={}, payload={**dict(zip(fields, _wide(stored), strict=True)), "v": "old"})],
    )
    client.upsert(
        "r",
        [models.PointStruct(id=1, vector={}, payload={**dict(zip(fields, _wide(new), strict=True)), "v": "new"})],
        update_filter=_lower_than(_wide(new)),
        update_mode=models.UpdateMode.UPDATE_ONLY,
    )
    landed = client.retrieve("r", [1])[0].payload
    assert landed is not None
    assert landed["v"] == ("new" if stored < new else "old")
    client.close()


def test_records_sharing_a_seq_page_in_key_order(twin: Twin) -> None:
    """Two calls stamping the same seqs (two Stores at once): every page size gives (seq, key) order."""
    batch_id = uuid.uuid4()
    first = [f"a{i}" for i in range(7)]
    twin.call("fallthrough_create_batch", batch_id=batch_id, keys=first, first_seq=100, metadata={}, created_at=at(0))
    for offset, keys in ((0, ["z", "m", "b"]), (3, ["c", "y", "e", "d"]), (1, ["q"])):
        twin.call("fallthrough_add_records", batch_id=batch_id, keys=keys, first_seq=100 + offset, created_at=at(1))
    for limit in range(1, 6):
        for status in (None, Status.PENDING):
            after = None
            while True:
                page = twin.call("fallthrough_list_records", batch_id=batch_id, status=status, after=after, limit=limit)
                if len(page) < limit:
                    break
                after = (page[-1].seq, page[-1].key)


def test_a_replayed_update_reports_that_it_did_not_apply(twin: Twin) -> None:
    batch_id = twin.new_batch(["a", "b"])
    updates = (RecordUpdate(batch_id, "a", "completed", result={"x": 1.0}), RecordUpdate(batch_id, "b", "processing"))
    assert len(twin.call("fallthrough_update_records", updates=updates, updated_at=at(5))) == 2
    assert twin.call("fallthrough_update_records", updates=updates, updated_at=at(5)) == []
    stale = (RecordUpdate(batch_id, "b", "pending"),)
    assert twin.call("fallthrough_update_records", updates=stale, updated_at=at(4)) == []
    record = twin.call("fallthrough_get_record", batch_id=batch_id, key="a")
    assert record.result == {"x": 1.0} and isinstance(record.result["x"], float)


def test_an_unknown_record_voids_the_whole_call(twin: Twin) -> None:
    batch_id = twin.new_batch(["a"])
    updates = (RecordUpdate(batch_id, "a", "completed"), RecordUpdate(batch_id, "missing", "completed"))
    try:
        twin.call("fallthrough_update_records", updates=updates, updated_at=at(1))
    except LookupError:
        pass
    else:
        raise AssertionError("an unknown record must raise NotFound")
    assert twin.record(batch_id, "a").status is Status.PENDING


def test_results_keep_their_exact_json_types(twin: Twin) -> None:
    batch_id = twin.new_batch(["a"])
    result = {"int": 2**62, "float": 1.0, "neg_zero": -0.0, "big": 1e300, "nested": [True, None, "М-500"]}
    twin.call(
        "fallthrough_update_records", updates=(RecordUpdate(batch_id, "a", "completed", result),), updated_at=at(1)
    )
    stored = twin.record(batch_id, "a").result
    assert repr(stored) == repr(result)


def test_the_read_back_a_server_needs_reports_the_same_as_the_model() -> None:
    """Against a server the plugin reads the records back after writing; run that path on a local client."""
    client = QdrantClient(location=":memory:")
    names = CollectionNames("verify_")
    ensure_records_schema(client, names)
    records = Records(names, verify_writes=True)
    model = ReferenceBackend()
    batch_id = uuid.uuid4()
    keys = ["a", "b", "c"]
    records.create_batch(client, batch_id, keys, 1, {}, at(0))
    model.fallthrough_create_batch(batch_id, keys, 1, {}, at(0))
    calls = [
        ((RecordUpdate(batch_id, "a", "failed"), RecordUpdate(batch_id, "b", "processing")), at(2)),
        ((RecordUpdate(batch_id, "a", "failed"), RecordUpdate(batch_id, "b", "processing")), at(2)),  # replay
        ((RecordUpdate(batch_id, "b", "pending"), RecordUpdate(batch_id, "c", "completed", attempt=0)), at(1)),
    ]
    for updates, when in calls:
        assert records.update_records(client, updates, when) == model.fallthrough_update_records(updates, when)
    assert records.retry_failed(client, batch_id, at(3)) == model.fallthrough_retry_failed(batch_id, at(3))
    late = (RecordUpdate(batch_id, "a", "completed", attempt=0),)  # a worker of the old attempt
    assert records.update_records(client, late, at(4)) == model.fallthrough_update_records(late, at(4)) == []
    assert records.list_records(client, batch_id, None, None, 10) == model.fallthrough_list_records(
        batch_id, None, None, 10
    )
    client.close()
