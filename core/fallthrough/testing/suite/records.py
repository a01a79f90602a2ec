"""Conformance tests for batches and records.

Each test states one rule of the hook specification. Every call goes to the
backend and the reference model (see :class:`~fallthrough.testing.twin.Twin`),
which must agree; the test then asserts the rule itself.
"""

from __future__ import annotations

import collections
import itertools
import threading
import uuid
from datetime import datetime

import pytest

from ...errors import NotFound
from ...ordering import content_tiebreak
from ...types import Progress, Record, RecordUpdate, Status
from ..compare import assert_same
from ..twin import Twin, at
from ._base import ConformanceSuite, needs

# JSON values that a store must give back exactly as given: ``1``, ``1.0`` and
# ``True`` apart, extreme floats and ints, awkward strings, nesting.
TRICKY_RESULTS: tuple[object, ...] = (
    None,
    0,
    1,
    1.0,
    True,
    False,
    -0.5,
    0.1,
    1e308,
    5e-324,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    "",
    'Цемент М-500\u2028\U0001f600 "quoted" \\back',
    [1, 1.0, True, None, "1"],
    {"": {"nested": [[], {}]}, "ключ": "значение", "n": None},
    [],
    {},
)

# Error texts a store must give back exactly as given: empty is not None, and
# look-alike strings (decomposed and composed é, spaces at the ends) stay apart.
ERRORS_THAT_MUST_ROUND_TRIP = (
    "",
    "Ошибка: line 1\nline 2 \U0001f600",
    "cafe\u0301",
    "caf\u00e9",
    "  spaces at both ends  ",
    "NUL-free \u2028 separators \t and 'quotes\"",
)

KEYS_THAT_MUST_ROUND_TRIP = (
    "Цемент М-500",
    "ПВХ/PVC, 2.5мм",
    "tab\there",
    "new\nline",
    "'quote\"s\\",
    "%_*?[]",
    "\U0001f600",
    "x" * 512,
)


class RecordsConformance(ConformanceSuite):
    """Batches, records, the monotonic merge, retries, listing and progress."""

    # -- creating ----------------------------------------------------------

    @needs("records")
    def test_new_batch_holds_one_pending_record_per_key(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b"], created_at=at(7), metadata={"source": "test"})
        batch = twin.batch(batch_id)
        assert batch is not None and (batch.total, batch.metadata, batch.created_at) == (2, {"source": "test"}, at(7))
        for key in ("a", "b"):
            record = twin.record(batch_id, key)
            assert (record.status, record.attempt, record.result, record.error) == (Status.PENDING, 0, None, None)
            assert record.updated_at == at(7)

    @needs("records")
    def test_records_and_batches_read_are_the_callers_to_change(self, twin: Twin) -> None:
        """A store that handed out what it holds (an in-memory dict, a cache) would let a caller change it."""
        batch_id = twin.new_batch(["a"], metadata={"source": {"rows": [1]}})
        twin.update(RecordUpdate(batch_id, "a", "completed", result={"rows": [1, 2]}, attempt=0), at_time=at(5))
        batch = twin.batch(batch_id)
        assert batch is not None
        batch.metadata["source"]["rows"].append(2)
        for record in [twin.record(batch_id, "a"), *twin.records(batch_id), *twin.get_records(batch_id, "a")]:
            record.result["rows"].append(3)
        assert twin.record(batch_id, "a").result == {"rows": [1, 2]}
        assert twin.batch(batch_id).metadata == {"source": {"rows": [1]}}  # type: ignore[union-attr]

    @needs("records")
    def test_records_and_batches_kept_are_not_the_callers_to_change(self, twin: Twin) -> None:
        """A store that kept the objects it was given (an in-memory dict) would change when the caller changes them."""
        metadata = {"source": {"rows": [1]}}
        batch_id = twin.new_batch(["updated", "merged"], metadata=metadata)
        metadata["source"]["rows"].append(2)
        result: dict[str, list[int]] = {"rows": [1]}
        twin.update(RecordUpdate(batch_id, "updated", "completed", result=result, attempt=0), at_time=at(5))
        result["rows"].append(2)
        merged_result: dict[str, list[int]] = {"rows": [1]}
        seq = twin.record(batch_id, "merged").seq
        twin.merge(batch_id, Record(batch_id, "merged", seq, Status.COMPLETED, 0, merged_result, None, at(6)))
        merged_result["rows"].append(2)
        assert twin.record(batch_id, "updated").result == {"rows": [1]}
        assert twin.record(batch_id, "merged").result == {"rows": [1]}
        assert twin.batch(batch_id).metadata == {"source": {"rows": [1]}}  # type: ignore[union-attr]

    @needs("records")
    def test_seq_is_first_seq_plus_input_position(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["z", "a", "m"], first_seq=100)
        assert [(record.seq, record.key) for record in twin.records(batch_id)] == [(100, "z"), (101, "a"), (102, "m")]

    @needs("records")
    def test_create_with_an_existing_id_adds_only_new_keys_and_keeps_the_batch(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b"], created_at=at(0), metadata={"v": 1})
        twin.update(RecordUpdate(batch_id, "a", "completed", result=1), at_time=at(1))
        batch = twin.call(
            "fallthrough_create_batch",
            batch_id=batch_id,
            keys=("a", "new"),
            first_seq=50,
            metadata={"v": 2},
            created_at=at(5),
        )
        assert (batch.total, batch.metadata, batch.created_at) == (3, {"v": 1}, at(0))
        assert twin.record(batch_id, "a").status is Status.COMPLETED
        assert (twin.record(batch_id, "new").seq, twin.record(batch_id, "new").updated_at) == (51, at(5))

    @needs("records")
    def test_batch_without_keys_is_empty(self, twin: Twin) -> None:
        batch_id = twin.new_batch([])
        assert twin.call("fallthrough_progress", batch_id=batch_id) == Progress(0, 0, 0, 0, 0)
        assert twin.records(batch_id) == []

    @needs("records")
    def test_keys_round_trip_exactly(self, twin: Twin) -> None:
        batch_id = twin.new_batch(KEYS_THAT_MUST_ROUND_TRIP)
        assert [record.key for record in twin.records(batch_id)] == list(KEYS_THAT_MUST_ROUND_TRIP)

    @needs("records")
    def test_batch_metadata_round_trips_exactly(self, twin: Twin) -> None:
        metadata = {f"k{index}": value for index, value in enumerate(TRICKY_RESULTS)}
        batch = twin.batch(twin.new_batch(["a"], metadata=metadata))
        assert batch is not None
        assert_same(batch.metadata, metadata, "metadata")

    @needs("records")
    def test_add_records_skips_existing_keys_and_leaves_a_seq_gap(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"], first_seq=10)
        added = twin.call("fallthrough_add_records", batch_id=batch_id, keys=("a", "b"), first_seq=20, created_at=at(3))
        assert added == 1
        assert [(record.seq, record.key) for record in twin.records(batch_id)] == [(10, "a"), (21, "b")]

    @needs("records")
    def test_add_records_to_a_missing_batch_raises_not_found(self, twin: Twin) -> None:
        with pytest.raises(NotFound):
            twin.call("fallthrough_add_records", batch_id=uuid.uuid4(), keys=("a",), first_seq=1, created_at=at(0))

    # -- taking back what an add wrote ----------------------------------------

    @needs("records")
    def test_delete_records_removes_a_key_only_at_the_seq_given(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["old", "done"], first_seq=10, created_at=at(0), metadata={"m": 1})
        twin.call("fallthrough_add_records", batch_id=batch_id, keys=("old", "a", "b"), first_seq=20, created_at=at(1))
        twin.update(RecordUpdate(batch_id, "a", "completed", result=1), at_time=at(2))
        twin.update(RecordUpdate(batch_id, "done", "failed", error="x"), at_time=at(2))
        # "old" was there before the add (seq 10, not 20): it stays; "a" goes whatever its state.
        deleted = twin.call("fallthrough_delete_records", batch_id=batch_id, keys=("old", "a", "b"), seqs=(20, 21, 22))
        assert deleted == 2
        assert [(record.seq, record.key) for record in twin.records(batch_id)] == [(10, "old"), (11, "done")]
        assert twin.call("fallthrough_progress", batch_id=batch_id) == Progress(2, 1, 0, 0, 1)
        batch = twin.batch(batch_id)
        assert batch is not None and (batch.total, batch.metadata, batch.created_at) == (2, {"m": 1}, at(0))
        # Idempotent: a replay deletes nothing more.
        again = twin.call("fallthrough_delete_records", batch_id=batch_id, keys=("old", "a", "b"), seqs=(20, 21, 22))
        assert again == 0

    @needs("records")
    def test_delete_records_of_an_unknown_batch_or_keys_deletes_nothing(self, twin: Twin) -> None:
        assert twin.call("fallthrough_delete_records", batch_id=uuid.uuid4(), keys=("a",), seqs=(1,)) == 0
        batch_id = twin.new_batch(["a"], first_seq=5)
        assert twin.call("fallthrough_delete_records", batch_id=batch_id, keys=("zz", "a"), seqs=(6, 6)) == 0
        assert twin.call("fallthrough_delete_records", batch_id=batch_id, keys=(), seqs=()) == 0
        assert [record.key for record in twin.records(batch_id)] == ["a"]

    # -- the monotonic merge -----------------------------------------------

    @needs("records")
    def test_update_to_a_later_status_applies(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        assert twin.update(RecordUpdate(batch_id, "a", "completed", result={"ok": True}), at_time=at(1)) == 1
        record = twin.record(batch_id, "a")
        assert (record.status, record.result, record.updated_at) == (Status.COMPLETED, {"ok": True}, at(1))

    @needs("records")
    def test_update_to_an_earlier_status_is_refused_even_when_later_in_time(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "completed"), at_time=at(1))
        assert twin.update(RecordUpdate(batch_id, "a", "processing"), at_time=at(9)) == 0
        assert twin.record(batch_id, "a").status is Status.COMPLETED

    @needs("records")
    def test_update_stamped_earlier_is_refused(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "processing", result="late"), at_time=at(5))
        assert twin.update(RecordUpdate(batch_id, "a", "processing", result="early"), at_time=at(3)) == 0
        assert twin.record(batch_id, "a").result == "late"

    @needs("records")
    def test_replayed_update_is_not_applied_again(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        update = RecordUpdate(batch_id, "a", "failed", error="boom")
        assert twin.update(update, at_time=at(2)) == 1
        assert twin.update(update, at_time=at(2)) == 0

    @needs("records")
    def test_equal_stamps_are_settled_by_the_content_tiebreak_whatever_the_order(self, twin: Twin) -> None:
        first, second = twin.new_batch(["a"]), twin.new_batch(["a"])
        for batch_id, results in ((first, ("x", "y")), (second, ("y", "x"))):
            for result in results:
                twin.update(RecordUpdate(batch_id, "a", "completed", result=result), at_time=at(4))
        winner = max(("x", "y"), key=lambda result: content_tiebreak(Status.COMPLETED, result, None))
        assert twin.record(first, "a").result == twin.record(second, "a").result == winner

    @needs("records")
    def test_update_pinned_to_an_older_attempt_is_refused(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "failed"), at_time=at(1))
        twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(2))
        assert twin.update(RecordUpdate(batch_id, "a", "completed", attempt=0), at_time=at(3)) == 0
        assert (twin.record(batch_id, "a").status, twin.record(batch_id, "a").attempt) == (Status.PENDING, 1)

    @needs("records")
    def test_update_pinned_to_a_newer_attempt_applies_even_with_a_lower_status(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "completed"), at_time=at(5))
        assert twin.update(RecordUpdate(batch_id, "a", "processing", attempt=1), at_time=at(1)) == 1
        assert (twin.record(batch_id, "a").status, twin.record(batch_id, "a").attempt) == (Status.PROCESSING, 1)

    @needs("records")
    def test_an_update_stamped_like_the_retry_is_ordered_by_the_retried_state(self, twin: Twin) -> None:
        """A retry leaves a bare pending state: an update with the retry's stamp compares with that, not the failure.

        A backend that keeps the failed state's tiebreak on retry orders such an
        update differently from every other store.
        """
        for error, result in (("boom", None), ("", 0), ("z" * 40, [1]), (None, {"k": "v"})):
            batch_id = twin.new_batch(["a"])
            twin.update(RecordUpdate(batch_id, "a", "failed", result=result, error=error), at_time=at(1))
            twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(2))
            for status, content in (("pending", "late"), ("pending", None), ("processing", None)):
                twin.update(RecordUpdate(batch_id, "a", status, result=content, attempt=1), at_time=at(2))
            twin.record(batch_id, "a")

    @needs("records")
    def test_listing_by_status_keeps_statuses_that_share_a_rank_apart(self, twin: Twin) -> None:
        """completed and failed share a rank in the merge order, never a listing."""
        batch_id = twin.new_batch(["c", "f", "p", "c2", "f2"])
        twin.update(
            RecordUpdate(batch_id, "c", "completed"),
            RecordUpdate(batch_id, "f", "failed"),
            RecordUpdate(batch_id, "c2", "completed", result=1),
            RecordUpdate(batch_id, "f2", "failed", error="x"),
            at_time=at(1),
        )
        for status, keys in ((Status.COMPLETED, ["c", "c2"]), (Status.FAILED, ["f", "f2"]), (Status.PENDING, ["p"])):
            assert [record.key for record in twin.records(batch_id, status=status)] == keys

    @needs("records")
    def test_update_without_attempt_keeps_the_stored_attempt(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "failed"), at_time=at(1))
        twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(2))
        assert twin.update(RecordUpdate(batch_id, "a", "completed"), at_time=at(3)) == 1
        assert twin.record(batch_id, "a").attempt == 1

    @needs("records")
    def test_update_naming_a_missing_key_raises_not_found_and_applies_nothing(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        with pytest.raises(NotFound):
            twin.update(
                RecordUpdate(batch_id, "a", "completed"), RecordUpdate(batch_id, "nope", "completed"), at_time=at(1)
            )
        assert twin.record(batch_id, "a").status is Status.PENDING
        assert twin.call("fallthrough_get_record", batch_id=batch_id, key="nope") is None

    @needs("records")
    def test_update_naming_a_missing_batch_raises_not_found_and_applies_nothing(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        with pytest.raises(NotFound):
            twin.update(
                RecordUpdate(uuid.uuid4(), "a", "completed"), RecordUpdate(batch_id, "a", "completed"), at_time=at(1)
            )
        assert twin.record(batch_id, "a").status is Status.PENDING

    @needs("records")
    def test_results_and_errors_round_trip_exactly(self, twin: Twin) -> None:
        keys = [f"r{index}" for index in range(len(TRICKY_RESULTS))]
        batch_id = twin.new_batch(keys)
        errors = itertools.cycle(ERRORS_THAT_MUST_ROUND_TRIP)
        sent = {key: (value, next(errors)) for key, value in zip(keys, TRICKY_RESULTS, strict=True)}
        updates = [
            RecordUpdate(batch_id, key, "failed", result=value, error=error) for key, (value, error) in sent.items()
        ]
        assert twin.update(*updates, at_time=at(1)) == len(keys)
        stored = {record.key: (record.result, record.error) for record in twin.records(batch_id)}
        assert_same(stored, sent, "records")

    # -- retry, delete, read -----------------------------------------------

    @needs("records")
    def test_retry_moves_only_failed_records_back_to_pending_at_the_next_attempt(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["failed", "completed", "pending"])
        twin.update(
            RecordUpdate(batch_id, "failed", "failed", result=[1], error="boom"),
            RecordUpdate(batch_id, "completed", "completed", result=2),
            at_time=at(1),
        )
        assert len(twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(2))) == 1
        retried = twin.record(batch_id, "failed")
        assert (retried.status, retried.attempt, retried.result, retried.error) == (Status.PENDING, 1, None, None)
        assert retried.updated_at == at(2)
        assert twin.record(batch_id, "completed").updated_at == at(1)

    @needs("records")
    def test_an_applied_update_or_retry_clears_the_lease_and_a_refused_one_keeps_it(self, twin: Twin) -> None:
        """A backend that does not claim holds leases all the same: claims reach it by merge, from one that does."""
        batch_id = twin.new_batch(["updated", "retried", "refused"])
        seqs = {record.key: record.seq for record in twin.records(batch_id)}
        held = [
            Record(batch_id, "updated", seqs["updated"], Status.PROCESSING, 0, None, None, at(5), "w1", at(90)),
            # A failure waiting out its backoff: the runner holds it, its lease cut to the delay.
            Record(batch_id, "retried", seqs["retried"], Status.FAILED, 0, None, "boom", at(5), "w1", at(60)),
            Record(batch_id, "refused", seqs["refused"], Status.PROCESSING, 2, None, None, at(5), "w1", at(90)),
        ]
        assert twin.merge(batch_id, *held) == 3
        twin.update(
            RecordUpdate(batch_id, "updated", "completed", result="ok", attempt=0),
            RecordUpdate(batch_id, "refused", "completed", result="late", attempt=1),  # an older attempt's answer
            at_time=at(6),
        )
        assert len(twin.call("fallthrough_retry_failed", batch_id=batch_id, updated_at=at(7))) == 1
        leases = {record.key: (record.lease_owner, record.lease_expires) for record in twin.records(batch_id)}
        assert leases == {"updated": (None, None), "retried": (None, None), "refused": ("w1", at(90))}

    @needs("records")
    def test_retry_of_a_missing_batch_raises_not_found(self, twin: Twin) -> None:
        with pytest.raises(NotFound):
            twin.call("fallthrough_retry_failed", batch_id=uuid.uuid4(), updated_at=at(0))

    @needs("records")
    def test_delete_batch_removes_the_batch_and_its_records(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        assert twin.call("fallthrough_delete_batch", batch_id=batch_id) is True
        assert twin.batch(batch_id) is None
        assert twin.call("fallthrough_get_record", batch_id=batch_id, key="a") is None
        assert twin.call("fallthrough_delete_batch", batch_id=batch_id) is False

    @needs("records")
    def test_missing_batch_and_record_read_as_none(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        assert twin.batch(uuid.uuid4()) is None
        assert twin.call("fallthrough_get_record", batch_id=batch_id, key="b") is None

    @needs("records")
    def test_records_are_listed_by_seq_then_key(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["b", "a"], first_seq=5)
        twin.call("fallthrough_add_records", batch_id=batch_id, keys=("c", "Б", "B"), first_seq=5, created_at=at(1))
        listed = [(record.seq, record.key) for record in twin.records(batch_id)]
        assert listed == [(5, "b"), (5, "c"), (6, "a"), (6, "Б"), (7, "B")]

    @needs("records")
    def test_pages_continue_strictly_after_the_keyset_cursor(self, twin: Twin) -> None:
        keys = ["d", "c", "b", "a", "e"]
        batch_id = twin.new_batch(keys)
        pages, after = [], None
        while True:
            page = twin.records(batch_id, after=after, limit=2)
            pages.append([record.key for record in page])
            if len(page) < 2:
                break
            after = (page[-1].seq, page[-1].key)
        assert pages == [["d", "c"], ["b", "a"], ["e"]]

    @needs("records")
    def test_listing_by_status_keeps_only_that_status(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b", "c"])
        twin.update(RecordUpdate(batch_id, "b", "completed"), at_time=at(1))
        assert [record.key for record in twin.records(batch_id, status=Status.PENDING)] == ["a", "c"]
        assert [record.key for record in twin.records(batch_id, status=Status.COMPLETED)] == ["b"]

    @needs("records")
    def test_listing_a_missing_batch_raises_not_found(self, twin: Twin) -> None:
        with pytest.raises(NotFound):
            twin.records(uuid.uuid4(), limit=1)

    @needs("records")
    def test_progress_counts_records_by_status(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b", "c", "d", "e"])
        twin.update(
            RecordUpdate(batch_id, "a", "processing"),
            RecordUpdate(batch_id, "b", "completed"),
            RecordUpdate(batch_id, "c", "completed"),
            RecordUpdate(batch_id, "d", "failed"),
            at_time=at(1),
        )
        progress = twin.call("fallthrough_progress", batch_id=batch_id)
        assert progress == Progress(total=5, pending=1, processing=1, completed=2, failed=1)

    @needs("records")
    def test_progress_of_a_missing_batch_raises_not_found(self, twin: Twin) -> None:
        with pytest.raises(NotFound):
            twin.call("fallthrough_progress", batch_id=uuid.uuid4())

    # -- workers sharing one backend ---------------------------------------

    @needs("records")
    def test_eight_threads_updating_one_batch_end_with_exact_progress(self, twin: Twin) -> None:
        """A Store's workers share one backend object: no update may be lost, and progress stays exact.

        Eight threads move their own keys of one batch to processing, then on
        to completed or failed (or leave them processing), while a ninth reads
        progress. Every update must apply, every progress read must count the
        whole batch, and the end state must be the reference model's.
        """
        threads, keys_per_thread = 8, 25
        finals = {
            f"t{thread}-k{index}": (Status.COMPLETED, Status.FAILED, Status.PROCESSING)[(thread + index) % 3]
            for thread in range(threads)
            for index in range(keys_per_thread)
        }
        batch_id = twin.new_batch(list(finals))
        stamps = itertools.count(1)
        stamp_lock = threading.Lock()
        sent: list[tuple[RecordUpdate, datetime]] = []
        errors: list[BaseException] = []
        observed: list[Progress] = []
        start = threading.Barrier(threads + 1)

        def work(thread: int) -> None:
            start.wait()
            try:
                for index in range(keys_per_thread):
                    key = f"t{thread}-k{index}"
                    for status in dict.fromkeys((Status.PROCESSING, finals[key])):
                        update = RecordUpdate(batch_id, key, status)
                        with stamp_lock:
                            stamped = at(next(stamps))
                            sent.append((update, stamped))
                        applied = twin.backend.call("fallthrough_update_records", updates=(update,), updated_at=stamped)
                        assert list(applied) == [update.pinned(0)], f"{key} -> {status} did not apply"
            except BaseException as error:
                errors.append(error)

        def watch() -> None:
            start.wait()
            try:
                for _ in range(20):
                    observed.append(twin.backend.call("fallthrough_progress", batch_id=batch_id))
            except BaseException as error:
                errors.append(error)

        workers = [threading.Thread(target=work, args=(thread,)) for thread in range(threads)]
        workers.append(threading.Thread(target=watch))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == [], errors
        # Each key had one writer, so the model reaches the same state sent in stamp order.
        for update, stamped in sorted(sent, key=lambda item: item[1]):
            twin.reference.call("fallthrough_update_records", updates=(update,), updated_at=stamped)
        finished = collections.Counter(finals.values())
        assert twin.call("fallthrough_progress", batch_id=batch_id) == Progress.from_counts(finished)
        assert [progress.total for progress in observed] == [len(finals)] * len(observed)
        assert len(twin.records(batch_id)) == len(finals)


__all__ = ["KEYS_THAT_MUST_ROUND_TRIP", "TRICKY_RESULTS", "RecordsConformance"]
