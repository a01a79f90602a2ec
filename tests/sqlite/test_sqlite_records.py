"""Batches and records on the SQLite backend, checked against the reference model."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fallthrough.errors import NotFound
from fallthrough.types import RecordUpdate, Status
from tests.sqlite.helpers import Twin

# -- batches -----------------------------------------------------------------


def test_create_batch_stores_metadata_only_when_new(twin: Twin) -> None:
    batch_id = twin.create(["a", "b"], metadata={"source": "import.csv", "rows": 2, "ratio": 0.5, "ok": True})
    twin.call("fallthrough_update_records", updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=twin.now())
    # Same id again: new keys are added with their own seq, "a" keeps its state and seq,
    # and the metadata and created_at stay those of the first call.
    twin.call(
        "fallthrough_create_batch",
        batch_id=batch_id,
        keys=["c", "a", "d"],
        first_seq=twin.seq(3),
        metadata={"source": "other"},
        created_at=twin.now(),
    )
    twin.call("fallthrough_get_batch", batch_id=batch_id)
    twin.all_records(batch_id)


def test_empty_batch_and_unknown_batch(twin: Twin) -> None:
    batch_id = twin.create([])
    twin.call("fallthrough_get_batch", batch_id=batch_id)
    twin.call("fallthrough_progress", batch_id=batch_id)
    assert twin.call("fallthrough_get_batch", batch_id=uuid.uuid4()) is None
    with pytest.raises(NotFound):
        twin.call("fallthrough_progress", batch_id=uuid.uuid4())
    with pytest.raises(NotFound):
        twin.call("fallthrough_list_records", batch_id=uuid.uuid4(), status=None, after=None, limit=10)


def test_add_records_skips_present_keys_and_leaves_a_gap(twin: Twin) -> None:
    batch_id = twin.create(["k1", "k2"])
    added = twin.call(
        "fallthrough_add_records",
        batch_id=batch_id,
        keys=["k0", "k2", "k3"],
        first_seq=twin.seq(3),
        created_at=twin.now(),
    )
    assert added == 2
    assert (
        twin.call("fallthrough_add_records", batch_id=batch_id, keys=[], first_seq=twin.seq(0), created_at=twin.now())
        == 0
    )
    twin.all_records(batch_id)
    with pytest.raises(NotFound):
        twin.call(
            "fallthrough_add_records", batch_id=uuid.uuid4(), keys=["x"], first_seq=twin.seq(1), created_at=twin.now()
        )


def test_json_results_and_metadata_keep_their_types(twin: Twin) -> None:
    metadata: dict[str, Any] = {"nested": {"list": [1, 1.0, True, None, "1"]}, "big": 2**70, "neg": -0.0}
    batch_id = twin.create(["a", "b", "c", "d", "e"], metadata=metadata)
    results: list[Any] = [
        {"rows": 3, "ratio": 0.1, "flags": [True, False], "none": None, "text": "Цемент «М-500»\n\u2028😀"},
        [1, 2.5, -0.0, 1e-300, 1.7976931348623157e308, 2**63 - 1, -(2**63)],
        "just a string",
        0,
        None,
    ]
    updates = [
        RecordUpdate(batch_id, key, "completed", result=result) for key, result in zip("abcde", results, strict=True)
    ]
    assert len(twin.call("fallthrough_update_records", updates=updates, updated_at=twin.now())) == 5
    twin.call("fallthrough_get_batch", batch_id=batch_id)
    for key in "abcde":
        twin.call("fallthrough_get_record", batch_id=batch_id, key=key)
    assert twin.call("fallthrough_get_record", batch_id=batch_id, key="zz") is None
    assert twin.call("fallthrough_get_record", batch_id=uuid.uuid4(), key="a") is None


def test_delete_batch(twin: Twin) -> None:
    batch_id = twin.create(["a"])
    other = twin.create(["a"])
    assert twin.call("fallthrough_delete_batch", batch_id=batch_id) is True
    assert twin.call("fallthrough_delete_batch", batch_id=batch_id) is False
    assert twin.call("fallthrough_get_record", batch_id=batch_id, key="a") is None
    twin.all_records(other)
    # The id can be used again, as a new batch.
    twin.create(["b"], batch_id=batch_id, metadata={"second": True})
    twin.call("fallthrough_get_batch", batch_id=batch_id)
    twin.all_records(batch_id)


# -- the monotonic merge -----------------------------------------------------


def update(twin: Twin, batch_id: uuid.UUID, key: str, status: str, **fields: Any) -> int:
    applied = twin.call(
        "fallthrough_update_records", updates=[RecordUpdate(batch_id, key, status, **fields)], updated_at=twin.now()
    )
    return len(applied)


def test_forward_moves_apply_and_backward_moves_do_not(twin: Twin) -> None:
    batch_id = twin.create(["a"])
    assert update(twin, batch_id, "a", "processing") == 1
    assert update(twin, batch_id, "a", "pending") == 0  # lower rank, later time: still a no-op
    assert update(twin, batch_id, "a", "failed", error="boom") == 1
    assert update(twin, batch_id, "a", "processing") == 0
    assert update(twin, batch_id, "a", "completed", result={"n": 1}) == 1  # same rank, later: wins
    twin.call("fallthrough_get_record", batch_id=batch_id, key="a")


def test_stale_replayed_and_out_of_order_updates_are_no_ops(twin: Twin) -> None:
    batch_id = twin.create(["a", "b"])
    early, late = twin.now(), twin.now()
    finished = [RecordUpdate(batch_id, "a", "completed", result=1), RecordUpdate(batch_id, "b", "failed", error="x")]
    started = [RecordUpdate(batch_id, "a", "processing"), RecordUpdate(batch_id, "b", "processing")]
    # The later call arrives first; the earlier one, arriving next, changes nothing.
    assert len(twin.call("fallthrough_update_records", updates=finished, updated_at=late)) == 2
    assert len(twin.call("fallthrough_update_records", updates=started, updated_at=early)) == 0
    # Replaying the same call is a no-op too: its key equals the stored one.
    assert len(twin.call("fallthrough_update_records", updates=finished, updated_at=late)) == 0
    # A final status stamped earlier than the stored one loses, whatever its content.
    stale = [RecordUpdate(batch_id, "a", "failed", error="late news")]
    assert len(twin.call("fallthrough_update_records", updates=stale, updated_at=early)) == 0
    twin.all_records(batch_id)


def test_equal_stamps_are_settled_by_the_content_tiebreak(twin: Twin) -> None:
    batch_id = twin.create(["a"])
    moment = twin.now()
    one = RecordUpdate(batch_id, "a", "completed", result="one")
    two = RecordUpdate(batch_id, "a", "completed", result="two")
    # Whichever order they arrive in, the larger tiebreak ends up stored.
    twin.call("fallthrough_update_records", updates=[one], updated_at=moment)
    twin.call("fallthrough_update_records", updates=[two], updated_at=moment)
    twin.call("fallthrough_update_records", updates=[one], updated_at=moment)
    twin.call("fallthrough_get_record", batch_id=batch_id, key="a")


def test_attempt_pinning_and_retry(twin: Twin) -> None:
    batch_id = twin.create(["a", "b", "c"])
    update(twin, batch_id, "a", "failed", error="first try")
    update(twin, batch_id, "b", "failed", error="first try")
    update(twin, batch_id, "c", "completed")
    assert len(twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=twin.now())) == 2
    assert len(twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=twin.now())) == 0
    # A slow worker still on attempt 0 cannot overwrite attempt 1.
    assert update(twin, batch_id, "a", "completed", result="stale", attempt=0) == 0
    assert update(twin, batch_id, "a", "processing", attempt=1) == 1
    # Without an attempt, an update applies to whatever attempt the record is on.
    assert update(twin, batch_id, "a", "completed", result="fresh") == 1
    # An update for a later attempt than the stored one moves the record to it.
    assert update(twin, batch_id, "b", "processing", attempt=3) == 1
    assert update(twin, batch_id, "b", "completed", attempt=2) == 0
    twin.all_records(batch_id)
    twin.call("fallthrough_progress", batch_id=batch_id)
    with pytest.raises(NotFound):
        twin.call("fallthrough_retry_failed", batch_id=uuid.uuid4(), updated_at=twin.now())


def test_an_unknown_record_voids_the_whole_call(twin: Twin) -> None:
    batch_id = twin.create(["a", "b"])
    update(twin, batch_id, "b", "processing")
    before = twin.all_records(batch_id)
    for unknown in (RecordUpdate(batch_id, "nope", "completed"), RecordUpdate(uuid.uuid4(), "a", "completed")):
        updates = [
            RecordUpdate(batch_id, "a", "completed", result="would apply"),
            unknown,
            RecordUpdate(batch_id, "b", "pending"),  # a no-op: the check must not rely on counts alone
        ]
        with pytest.raises(NotFound):
            twin.call("fallthrough_update_records", updates=updates, updated_at=twin.now())
    assert twin.all_records(batch_id) == before
    # Nothing was created either.
    assert twin.call("fallthrough_get_record", batch_id=batch_id, key="nope") is None


def test_an_unknown_record_among_no_ops_is_still_found(twin: Twin) -> None:
    batch_id = twin.create(["a"])
    update(twin, batch_id, "a", "completed")
    with pytest.raises(NotFound):
        twin.call(
            "fallthrough_update_records",
            updates=[RecordUpdate(batch_id, "a", "pending"), RecordUpdate(batch_id, "b", "pending")],
            updated_at=twin.now(),
        )


_statuses = st.sampled_from(list(Status))
_update_specs = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    _statuses,
    st.none() | st.integers(0, 2),
    st.none() | st.integers(0, 3) | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(
        st.tuples(st.lists(_update_specs, max_size=3, unique_by=lambda spec: spec[0]), st.integers(0, 4)),
        max_size=12,
    ),
    retries=st.lists(st.integers(0, 11), max_size=2),
)
def test_random_update_sequences_end_where_the_model_does(twin: Twin, calls: Any, retries: list[int]) -> None:
    """Updates with repeated and out-of-order stamps, attempts and retries, in random order."""
    batch_id = twin.create(["a", "b", "c"])
    base = twin.now()
    for index, (specs, offset) in enumerate(calls):
        updates = [
            RecordUpdate(batch_id, key, status, result=result, attempt=attempt)
            for key, status, attempt, result in specs
        ]
        # Stamps collide and go backwards on purpose: the merge must not care.
        stamp = base.replace(microsecond=offset)
        twin.call("fallthrough_update_records", updates=updates, updated_at=stamp)
        if index in retries:
            twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=base.replace(microsecond=offset + 1))
    twin.all_records(batch_id)
    twin.call("fallthrough_progress", batch_id=batch_id)


# -- listing and progress ----------------------------------------------------


def test_keyset_pages_walk_the_batch_in_seq_then_key_order(twin: Twin) -> None:
    batch_id = twin.create([f"k{i:02d}" for i in range(10)])
    twin.call(
        "fallthrough_add_records",
        batch_id=batch_id,
        keys=["k03", "x", "k05", "y"],
        first_seq=twin.seq(4),
        created_at=twin.now(),
    )
    # Two writers that stamped the same seq: the key settles the order.
    shared = twin.seq(2)
    twin.call("fallthrough_add_records", batch_id=batch_id, keys=["zz", "m"], first_seq=shared, created_at=twin.now())
    twin.call("fallthrough_add_records", batch_id=batch_id, keys=["aa"], first_seq=shared, created_at=twin.now())
    for key in ("k01", "k04", "x", "m"):
        update(twin, batch_id, key, "completed")
    update(twin, batch_id, "k07", "failed")
    total = len(twin.all_records(batch_id))
    for status in (None, Status.PENDING, Status.COMPLETED, Status.FAILED, Status.PROCESSING):
        for limit in (1, 3, 7, 100):
            after = None
            seen = 0
            while True:
                page = twin.call("fallthrough_list_records", batch_id=batch_id, status=status, after=after, limit=limit)
                seen += len(page)
                if len(page) < limit:
                    break
                after = (page[-1].seq, page[-1].key)
            if status is None:
                assert seen == total


def test_progress_counts_by_status(twin: Twin) -> None:
    batch_id = twin.create([f"k{i}" for i in range(12)])
    twin.create(["k0", "k1"])  # another batch, not counted
    updates = [
        RecordUpdate(batch_id, f"k{i}", status)
        for i, status in enumerate(["processing"] * 3 + ["completed"] * 4 + ["failed"] * 2)
    ]
    twin.call("fallthrough_update_records", updates=updates, updated_at=twin.now())
    progress = twin.call("fallthrough_progress", batch_id=batch_id)
    assert (progress.total, progress.done) == (12, 6)
    twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=twin.now())
    twin.call("fallthrough_progress", batch_id=batch_id)
