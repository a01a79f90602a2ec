"""Conformance tests for claims, leases and the newest-first batch listing.

Each test states one rule of ``fallthrough_claim_records``,
``fallthrough_extend_leases`` or ``fallthrough_list_batch_progress``. Calls
go to the backend and the reference model together, except in the test of
exclusivity, where threads claim from the backend alone and the answers are
checked against each other.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from ...errors import NotFound
from ...types import BatchProgress, Progress, Record, RecordUpdate, Status, from_micros, to_micros
from ..twin import Twin, at
from ._base import ConformanceSuite, needs

CLAIMERS = 8
"""Threads that claim from one batch at once in the exclusivity test."""

_FUTURE = to_micros(datetime(2200, 1, 1, tzinfo=UTC))


def _claim(twin: Twin, batch_id: uuid.UUID, worker: str, limit: int, now: int, lease: int = 100) -> list[Record]:
    return list(
        twin.call(
            "fallthrough_claim_records",
            batch_id=batch_id,
            worker=worker,
            limit=limit,
            claimed_at=at(now),
            lease_until=at(now + lease),
        )
    )


def _extend(twin: Twin, batch_id: uuid.UUID, keys: tuple[str, ...], worker: str, now: int, lease: int) -> list[Record]:
    return list(
        twin.call(
            "fallthrough_extend_leases",
            batch_id=batch_id,
            keys=keys,
            worker=worker,
            now=at(now),
            lease_until=at(now + lease),
        )
    )


class ClaimsConformance(ConformanceSuite):
    """Claims in batch order, exclusive under threads, leases that expire and extend; batches newest first."""

    # -- claiming ------------------------------------------------------------

    @needs("claims")
    def test_claims_take_pending_records_in_batch_order(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["c", "a", "d", "b", "e"], first_seq=10)
        twin.update(RecordUpdate(batch_id, "a", "completed"), at_time=at(1))
        first = _claim(twin, batch_id, "w1", 2, now=5)
        assert [record.key for record in first] == ["c", "d"]
        second = _claim(twin, batch_id, "w2", 10, now=6)
        assert [record.key for record in second] == ["b", "e"]
        assert _claim(twin, batch_id, "w3", 10, now=7) == []

    @needs("claims")
    def test_a_claimed_record_is_processing_under_the_workers_lease(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        twin.update(RecordUpdate(batch_id, "a", "pending", result={"hint": 1}, error="x", attempt=2), at_time=at(1))
        (claimed,) = _claim(twin, batch_id, "worker-1", 1, now=5, lease=30)
        expected = Record(batch_id, "a", claimed.seq, Status.PROCESSING, 2, None, None, at(5), "worker-1", at(35))
        assert claimed == expected
        assert twin.record(batch_id, "a") == expected
        assert twin.call("fallthrough_progress", batch_id=batch_id) == Progress(1, 0, 1, 0, 0)

    @needs("claims")
    def test_held_finished_and_unleased_records_are_not_claimed(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["done", "failed", "manual", "held", "free"])
        twin.update(
            RecordUpdate(batch_id, "done", "completed"),
            RecordUpdate(batch_id, "failed", "failed", error="boom"),
            RecordUpdate(batch_id, "manual", "processing"),
            at_time=at(1),
        )
        assert [record.key for record in _claim(twin, batch_id, "w1", 1, now=2, lease=1000)] == ["held"]
        # Long after: the held lease is still running, and "manual" has no lease to expire.
        assert [record.key for record in _claim(twin, batch_id, "w2", 10, now=500)] == ["free"]
        assert _claim(twin, batch_id, "w3", 10, now=550) == []

    @needs("claims")
    def test_claiming_from_an_unknown_batch_is_not_found(self, twin: Twin) -> None:
        try:
            _claim(twin, uuid.uuid4(), "w", 1, now=1)
        except NotFound:
            pass
        else:
            raise AssertionError("claiming from a batch that does not exist must raise NotFound")
        try:
            _extend(twin, uuid.uuid4(), ("a",), "w", now=1, lease=5)
        except NotFound:
            pass
        else:
            raise AssertionError("extending leases in a batch that does not exist must raise NotFound")

    # -- leases ----------------------------------------------------------------

    @needs("claims")
    def test_an_expired_lease_is_taken_at_attempt_plus_one(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b"])
        _claim(twin, batch_id, "old", 2, now=10, lease=10)
        assert _claim(twin, batch_id, "new", 2, now=19) == [], "a lease still running was taken"
        # Expired means lease_expires <= now.
        taken = _claim(twin, batch_id, "new", 1, now=20, lease=50)
        assert [(record.key, record.attempt, record.lease_owner) for record in taken] == [("a", 1, "new")]
        assert taken[0].lease_expires == at(70) and taken[0].updated_at == at(20)

    @needs("claims")
    def test_the_late_answer_of_an_expired_lease_changes_nothing(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        _claim(twin, batch_id, "old", 1, now=10, lease=10)
        (taken,) = _claim(twin, batch_id, "new", 1, now=30, lease=100)
        # The old holder answers late, pinned to the attempt it was given.
        assert twin.update(RecordUpdate(batch_id, "a", "completed", result="stale", attempt=0), at_time=at(40)) == 0
        assert twin.record(batch_id, "a") == taken
        assert twin.update(RecordUpdate(batch_id, "a", "completed", result="fresh", attempt=1), at_time=at(41)) == 1
        final = twin.record(batch_id, "a")
        assert (final.status, final.result, final.attempt) == (Status.COMPLETED, "fresh", 1)
        assert (final.lease_owner, final.lease_expires) == (None, None), "an applied update must clear the lease"

    @needs("claims")
    def test_a_released_record_is_claimed_again(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        _claim(twin, batch_id, "w1", 1, now=10)
        assert twin.update(RecordUpdate(batch_id, "a", "pending", attempt=1), at_time=at(11)) == 1
        released = twin.record(batch_id, "a")
        assert (released.status, released.lease_owner, released.lease_expires) == (Status.PENDING, None, None)
        (again,) = _claim(twin, batch_id, "w2", 1, now=12)
        assert (again.attempt, again.lease_owner) == (1, "w2")

    @needs("claims")
    def test_only_the_holder_extends_and_only_before_expiry(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b", "c"])
        _claim(twin, batch_id, "w1", 2, now=10, lease=10)
        assert _extend(twin, batch_id, ("a", "b", "c"), "w2", now=12, lease=10) == []
        extended = _extend(twin, batch_id, ("b", "a", "c", "missing"), "w1", now=15, lease=10)
        assert [(record.key, record.lease_expires, record.updated_at) for record in extended] == [
            ("a", at(25), at(15)),
            ("b", at(25), at(15)),
        ]
        assert _claim(twin, batch_id, "w2", 5, now=22) == [twin.record(batch_id, "c")]
        # Expired: the holder has lost it, whether or not someone claimed it since.
        assert _extend(twin, batch_id, ("a",), "w1", now=25, lease=10) == []
        assert twin.record(batch_id, "a").lease_expires == at(25)

    @needs("claims")
    def test_a_lease_an_extension_shortened_ends_when_the_extension_says(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b"])
        _claim(twin, batch_id, "w1", 1, now=10, lease=1_000)  # "a", until 1,010
        _claim(twin, batch_id, "w2", 1, now=20, lease=1_000)  # passes "a" over, takes "b"
        (shortened,) = _extend(twin, batch_id, ("a",), "w1", now=30, lease=10)
        assert shortened.lease_expires == at(40)
        # At 50 the lease has ended, however long it was when a claim last passed the record over.
        assert [(record.key, record.attempt) for record in _claim(twin, batch_id, "w3", 5, now=50)] == [("a", 1)]

    @needs("claims")
    def test_an_extension_moves_the_state_forward_even_behind_the_claim(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"])
        _claim(twin, batch_id, "w1", 1, now=50, lease=100)
        # A Store whose clock runs behind extends: updated_at still moves forward.
        (extended,) = _extend(twin, batch_id, ("a",), "w1", now=40, lease=100)
        assert (extended.updated_at, extended.lease_expires) == (at(51), at(140))

    @needs("claims")
    def test_claims_are_exclusive_under_threads(self, twin: Twin) -> None:
        """Threads claim one batch on one backend at once: no record is ever handed out twice."""
        keys = [f"k{index:03d}" for index in range(120)]
        batch_id = twin.new_batch(keys)
        taken: dict[str, list[str]] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(CLAIMERS)

        def claimer(worker: str) -> None:
            mine = taken.setdefault(worker, [])
            try:
                start.wait()
                for step in range(len(keys)):
                    now = from_micros(to_micros(at(1000)) + step)
                    claimed = twin.backend.call(
                        "fallthrough_claim_records",
                        batch_id=batch_id,
                        worker=worker,
                        limit=3,
                        claimed_at=now,
                        lease_until=now + timedelta(hours=1),
                    )
                    if not claimed:
                        return
                    assert all(record.lease_owner == worker for record in claimed)
                    mine.extend(record.key for record in claimed)
            except BaseException as error:  # reported from the main thread
                errors.append(error)

        threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(CLAIMERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, f"a claimer failed: {errors[0]!r}"
        counts = Counter(key for claimed in taken.values() for key in claimed)
        twice = sorted(key for key, count in counts.items() if count > 1)
        assert not twice, f"records claimed by two workers at once: {twice[:10]}"
        assert sorted(counts) == keys, "some records were never claimed"
        stored = twin.backend.call("fallthrough_list_records", batch_id=batch_id, status=None, after=None, limit=1000)
        owners = {record.key: record.lease_owner for record in stored}
        for worker, claimed in taken.items():
            assert all(owners[key] == worker for key in claimed), "a record is stored under another holder"
            # Claims take the smallest claimable records, so each worker's come in batch order.
            assert claimed == sorted(claimed), f"{worker} claimed out of batch order: {claimed}"

    # -- listing batches ---------------------------------------------------------

    @needs("records")
    def test_batches_are_listed_newest_first_with_their_progress(self, twin: Twin) -> None:
        base = _FUTURE + uuid.uuid4().int % 10**9 * 1000
        created = [from_micros(base + offset) for offset in (5, 1, 9, 5, 3)]
        ids = [
            twin.new_batch([f"k{n}" for n in range(index + 1)], created_at=moment)
            for index, moment in enumerate(created)
        ]
        twin.update(RecordUpdate(ids[0], "k0", "completed"), RecordUpdate(ids[2], "k1", "failed"), at_time=at(3))
        for limit in (1, 2, 100):
            listed = self._walk_batches(twin, set(ids), limit)
            expected = [
                item
                for item in twin.reference.call("fallthrough_list_batch_progress", before=None, limit=100)
                if item.batch.id in set(ids)
            ]
            assert [item.batch.id for item in listed] == [item.batch.id for item in expected]
            for got, want in zip(listed, expected, strict=True):
                assert got == want, f"batch listing with limit {limit}: got {got!r}, expected {want!r}"
        ordered = sorted(zip(created, ids, strict=True), key=lambda pair: (pair[0], pair[1].int), reverse=True)
        assert [item.batch.id for item in listed] == [batch_id for _, batch_id in ordered]
        assert listed[[item.batch.id for item in listed].index(ids[2])].progress == Progress(3, 2, 0, 0, 1)

    @needs("records")
    def test_the_batch_listing_starts_strictly_before_its_cursor(self, twin: Twin) -> None:
        base = _FUTURE + uuid.uuid4().int % 10**9 * 1000
        moment = from_micros(base)
        ids = sorted((twin.new_batch(["a"], created_at=moment) for _ in range(3)), key=lambda i: i.int)
        # The cursor is the middle batch: only the one with the smaller id, at the same time, comes after it.
        page = twin.call("fallthrough_list_batch_progress", before=(moment, ids[1]), limit=1)
        assert [item.batch.id for item in page] == [ids[0]]
        batch = twin.batch(ids[0])
        assert batch is not None and page[0] == BatchProgress(batch, Progress(1, 1, 0, 0, 0))

    @staticmethod
    def _walk_batches(twin: Twin, mine: set[uuid.UUID], limit: int) -> list[BatchProgress]:
        """Page through the backend's listing until all of ``mine`` came; the store may hold others."""
        listed: list[BatchProgress] = []
        seen: set[uuid.UUID] = set()
        before: tuple[datetime, uuid.UUID] | None = None
        while True:
            page = list(twin.backend.call("fallthrough_list_batch_progress", before=before, limit=limit))
            assert len(page) <= limit, f"a page of {len(page)} batches, more than the limit {limit}"
            for item in page:
                assert isinstance(item, BatchProgress), f"listed {item!r}, not a BatchProgress"
                assert item.batch.id not in seen, f"batch {item.batch.id} listed twice"
                seen.add(item.batch.id)
                if item.batch.id in mine:
                    listed.append(item)
            if len(page) < limit or mine <= seen:
                return listed
            before = (page[-1].batch.created_at, page[-1].batch.id)


__all__ = ["ClaimsConformance"]
