"""Conformance tests for versions, tombstones, listing everything, and merging full states.

These are the hooks a repair reads and writes through (see
:mod:`fallthrough.repair`): document writes carry the core's version and
leave tombstones, a store can be read whole page by page, and batch headers
and record states, leases included, can be merged in. Each test states one
rule; every call also goes to the reference model, which must agree.
Listings whose order is the backend's own are compared as sets.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from ...errors import InvalidInput, NotFound
from ...ordering import content_tiebreak
from ...types import JSON, Document, Record, RecordUpdate, Status, StoredDocument
from ..compare import assert_same
from ..strategies import DOCUMENT_IDS
from ..twin import Twin, at
from ._base import ConformanceSuite, needs

# Any page size must page through everything: 1 and 2 split every run of
# entries, 7 ends exactly on the last page boundary of 7 entries, 100 takes all.
PAGE_SIZES = (1, 2, 3, 7, 100)


def _record(
    batch_id: uuid.UUID,
    key: str,
    seq: int,
    status: Status | str,
    *,
    attempt: int = 0,
    result: JSON = None,
    error: str | None = None,
    updated_at: datetime | None = None,
) -> Record:
    """A full record state, as a repair sends it; attempt 0, no result or error, at(0) unless given."""
    return Record(batch_id, key, seq, Status.coerce(status), attempt, result, error, updated_at or at(0))


class RepairConformance(ConformanceSuite):
    """Document versions and tombstones; listing collections, entries and batches; repairing batches and records."""

    # -- versions and tombstones -------------------------------------------

    @needs("documents")
    def test_an_older_upsert_after_a_newer_delete_does_nothing(self, twin: Twin) -> None:
        collection = twin.new_collection()
        first = twin.next_version()
        twin.upsert(collection, Document("a", "first"), version=first)
        delete = twin.next_version() + 10
        assert twin.delete(collection, "a", version=delete) == 1
        twin.upsert(collection, Document("a", "late"), version=first + 5)
        assert twin.get(collection, "a") == []
        assert twin.entries(collection, "a") == [StoredDocument("a", delete, None)]

    @needs("documents")
    def test_an_older_upsert_leaves_a_newer_document_alone(self, twin: Twin) -> None:
        collection = twin.new_collection()
        newer = twin.next_version() + 10
        twin.upsert(collection, Document("a", "new"), version=newer)
        twin.upsert(collection, Document("a", "old"), Document("b", "fresh"), version=newer - 1)
        assert twin.get(collection, "a", "b") == [Document("a", "new"), Document("b", "fresh")]
        assert [entry.version for entry in twin.entries(collection, "a", "b")] == [newer, newer - 1]

    @needs("documents")
    def test_an_older_delete_leaves_a_newer_document_alone_and_is_not_counted(self, twin: Twin) -> None:
        collection = twin.new_collection()
        newer = twin.next_version() + 10
        twin.upsert(collection, Document("a", "kept"), version=newer)
        assert twin.delete(collection, "a", version=newer - 1) == 0
        assert twin.entries(collection, "a") == [StoredDocument("a", newer, Document("a", "kept"))]

    @needs("documents")
    def test_a_delete_of_an_unknown_id_in_an_unknown_collection_leaves_a_tombstone_that_blocks_older_upserts(
        self, twin: Twin
    ) -> None:
        collection = twin.new_collection()
        version = twin.next_version() + 10
        assert twin.delete(collection, "never-seen", version=version) == 0
        assert collection in twin.collections()
        assert twin.entries(collection, "never-seen") == [StoredDocument("never-seen", version, None)]
        twin.upsert(collection, Document("never-seen", "copied back"), version=version - 1)
        assert twin.get(collection, "never-seen") == []

    @needs("documents")
    def test_a_write_at_the_stored_version_replaces_the_entry(self, twin: Twin) -> None:
        """Equal counts as older: a replay applies again, and a repair can settle a same-microsecond tie."""
        collection = twin.new_collection()
        version = twin.next_version()
        twin.upsert(collection, Document("a", "one"), version=version)
        twin.upsert(collection, Document("a", "two"), version=version)
        assert twin.get(collection, "a") == [Document("a", "two")]
        assert twin.delete(collection, "a", version=version) == 1
        twin.upsert(collection, Document("a", "three"), version=version)
        assert twin.entries(collection, "a") == [StoredDocument("a", version, Document("a", "three"))]

    @needs("documents")
    def test_replaying_the_same_upsert_or_delete_is_idempotent(self, twin: Twin) -> None:
        collection = twin.new_collection()
        documents = (Document("a", "alpha", vector=[1, 0], metadata={"n": 1}), Document("b", "beta"))
        version = twin.next_version()
        for _ in range(2):
            twin.upsert(collection, *documents, version=version)
            assert twin.get(collection, "a", "b") == list(documents)
        delete = twin.next_version()
        assert twin.delete(collection, "b", version=delete) == 1
        assert twin.delete(collection, "b", version=delete) == 0
        assert twin.entries(collection, "a", "b") == [
            StoredDocument("a", version, documents[0]),
            StoredDocument("b", delete, None),
        ]

    @needs("documents")
    def test_tombstones_are_invisible_to_get_search_and_delete_counts(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("a", "cement bag", metadata={"k": 1}),
            Document("b", "cement mixer", metadata={"k": 1}),
            Document("c", "sand", metadata={"k": 2}),
        )
        assert twin.delete(collection, "b") == 1
        assert [document.id for document in twin.get(collection, "a", "b", "c")] == ["a", "c"]
        assert [hit.id for hit in twin.search(collection, text="cement")] == ["a"]
        assert [hit.id for hit in twin.search(collection, filter={"k": 1})] == ["a"]
        assert [hit.id for hit in twin.search(collection)] == ["a", "c"]
        assert twin.delete(collection, "b") == 0
        assert twin.delete(collection, "b", "c") == 1

    @needs("documents", "vector_search")
    def test_a_tombstone_is_not_a_vector_hit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0]), Document("b", vector=[0, 1]))
        twin.delete(collection, "a")
        assert [hit.id for hit in twin.search(collection, vector=[1, 0])] == ["b"]

    # -- a collection's dimension, alone (optional hooks) -------------------

    @needs("documents")
    def test_a_dimension_is_fixed_by_the_first_vector_and_outlives_deletes_and_drops(self, twin: Twin) -> None:
        collection = twin.new_collection()
        assert twin.dimension(collection) is None
        twin.upsert(collection, Document("plain", "no vector"))
        assert twin.dimension(collection) is None
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        assert twin.dimension(collection) == 3
        twin.delete(collection, "a", "plain")
        assert twin.dimension(collection) == 3
        twin.drop(collection)
        assert twin.dimension(collection) == 3

    @needs("documents")
    def test_a_dimension_fixed_alone_makes_an_unknown_collection_refuse_other_vectors_and_lists_nothing(
        self, twin: Twin
    ) -> None:
        collection = twin.new_collection()
        twin.fix_dimension(collection, 3)
        assert twin.dimension(collection) == 3
        assert collection not in twin.collections()
        assert collection not in twin.live_collections()
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("a", vector=[1, 0]))
        assert twin.entries(collection, "a") == []
        twin.upsert(collection, Document("a", vector=[0, 1, 0]))
        assert twin.get(collection, "a") == [Document("a", vector=[0, 1, 0])]

    @needs("documents")
    def test_fixing_a_dimension_again_does_nothing_and_another_one_is_refused(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("plain", "no vector"))
        twin.fix_dimension(collection, 2)
        twin.fix_dimension(collection, 2)
        with pytest.raises(InvalidInput):
            twin.fix_dimension(collection, 5)
        assert twin.dimension(collection) == 2
        assert twin.get(collection, "plain") == [Document("plain", "no vector")]
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("b", vector=[1, 0, 0, 0, 0]))

    @needs("documents")
    def test_a_dimension_fixed_on_a_dropped_collection_keeps_the_drop(self, twin: Twin) -> None:
        collection = twin.new_collection()
        drop = twin.next_version()
        twin.drop(collection, version=drop)
        twin.fix_dimension(collection, 2)
        assert twin.entries(collection, "a") == [StoredDocument("a", drop, None)]
        assert collection in twin.collections()
        twin.upsert(collection, Document("a", vector=[1, 0]), version=drop - 1)
        assert twin.get(collection, "a") == []

    @needs("documents", "vector_search")
    def test_a_dimension_fixed_alone_refuses_a_query_vector_of_another(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.fix_dimension(collection, 2)
        with pytest.raises(InvalidInput):
            twin.search(collection, vector=[1, 0, 0])
        assert twin.search(collection, vector=[1, 0]) == []

    # -- purging tombstones -------------------------------------------------

    @needs("documents")
    def test_purge_removes_only_tombstones_older_than_before(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a"), Document("b"), Document("live"))
        old = twin.next_version()
        twin.delete(collection, "a", "never-stored", version=old)
        cutoff = twin.next_version()
        twin.delete(collection, "b", version=cutoff)  # at the cutoff: not older, kept
        assert twin.purge(collection, before=cutoff) == 2
        assert twin.entries(collection, "a", "never-stored", "b", "live") == [
            StoredDocument("b", cutoff, None),
            twin.entries(collection, "live")[0],
        ]
        assert twin.get(collection, "live") == [Document("live")]
        assert twin.purge(collection, before=cutoff) == 0

    @needs("documents")
    def test_purge_removes_at_most_limit_tombstones_a_call(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.delete(collection, "a", "b", "c", "d", "e")
        before = twin.next_version()
        assert [twin.purge(collection, before=before, limit=2) for _ in range(4)] == [2, 2, 1, 0]
        assert twin.entries(collection, "a", "b", "c", "d", "e") == []

    @needs("documents")
    def test_a_purged_tombstone_no_longer_blocks_an_older_upsert(self, twin: Twin) -> None:
        """The price of a purge: a write older than the purged delete is written, as if the delete never was."""
        collection = twin.new_collection()
        late = twin.next_version()
        delete = twin.next_version() + 10
        twin.delete(collection, "a", version=delete)
        twin.purge(collection, before=delete + 1)
        twin.upsert(collection, Document("a", "late"), version=late)
        assert twin.get(collection, "a") == [Document("a", "late")]

    @needs("documents")
    def test_purge_keeps_the_drop_version_and_the_dimension(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        before_drop = twin.next_version()
        drop = twin.next_version()
        twin.drop(collection, version=drop)
        twin.delete(collection, "b")
        assert twin.purge(collection, before=twin.next_version()) == 1
        # In the dropped collection an id without an entry reads as a tombstone at the drop again.
        assert twin.entries(collection, "b") == [StoredDocument("b", drop, None)]
        twin.upsert(collection, Document("a", "older than the drop"), version=before_drop)
        assert twin.get(collection, "a") == []
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("c", vector=[1, 0]))
        assert collection in twin.collections()

    @needs("documents")
    def test_purge_of_an_unknown_collection_removes_nothing(self, twin: Twin) -> None:
        assert twin.purge(twin.new_collection(), before=twin.next_version()) == 0

    # -- reading every entry -----------------------------------------------

    @needs("documents")
    def test_list_collections_is_sorted_and_includes_collections_holding_only_tombstones(self, twin: Twin) -> None:
        live, tombstones_only, emptied = twin.new_collection(), twin.new_collection(), twin.new_collection()
        never_written = twin.new_collection()
        twin.upsert(live, Document("a"))
        twin.delete(tombstones_only, "x", "y")
        twin.upsert(emptied, Document("a"))
        twin.delete(emptied, "a")
        listed = twin.collections()
        assert listed == sorted([live, tombstones_only, emptied])
        assert never_written not in listed

    @needs("documents")
    @pytest.mark.parametrize("limit", PAGE_SIZES)
    def test_scan_documents_pages_through_every_entry_with_its_version(self, twin: Twin, limit: int) -> None:
        collection = twin.new_collection()
        ids = DOCUMENT_IDS[:7]
        twin.upsert(collection, *(Document(i, f"text {i}", metadata={"i": n}) for n, i in enumerate(ids)))
        stale = twin.next_version()
        twin.upsert(collection, Document(ids[1], "newer", vector=[0.5, 1]))
        twin.delete(collection, ids[2], ids[3], "gone-before-it-came")
        twin.upsert(collection, Document(ids[2], "stale"), version=stale)
        entries = twin.scan(collection, limit)
        assert len(entries) == 8
        assert sum(entry.document is None for entry in entries) == 3
        assert twin.scan(twin.new_collection(), limit) == []

    @needs("documents")
    def test_document_versions_come_in_the_order_asked_and_skip_missing_ids(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a"), Document("b"), Document("c"))
        twin.delete(collection, "b", "t")
        asked = ("t", "missing", "c", "b", "a")
        assert [entry.id for entry in twin.entries(collection, *asked)] == ["t", "c", "b", "a"]
        assert twin.entries(twin.new_collection(), "a") == []

    # -- batches and records -----------------------------------------------

    @needs("records")
    @pytest.mark.parametrize("limit", PAGE_SIZES)
    def test_list_batches_pages_through_every_batch(self, twin: Twin, limit: int) -> None:
        made = [twin.new_batch([f"k{i}" for i in range(n)], metadata={"n": n}) for n in range(6)]
        twin.call("fallthrough_delete_batch", batch_id=made[3])
        listed = {batch.id for batch in twin.all_batches(limit)}
        assert listed == set(made) - {made[3]}

    @needs("records")
    def test_get_records_come_in_the_order_asked_and_skip_missing_keys(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b", "c"])
        assert [record.key for record in twin.get_records(batch_id, "c", "missing", "a")] == ["c", "a"]
        assert twin.get_records(uuid.uuid4(), "a") == []

    @needs("records")
    def test_repair_batch_creates_an_absent_batch_with_no_records(self, twin: Twin) -> None:
        batch_id = uuid.uuid4()
        twin.repair_batch(batch_id, {"source": "repair", "n": [1, 1.0]}, at(7))
        batch = twin.batch(batch_id)
        assert batch is not None
        assert_same((batch.total, batch.metadata, batch.created_at), (0, {"source": "repair", "n": [1, 1.0]}, at(7)))

    @needs("records")
    def test_repair_batch_overwrites_the_header_of_a_present_batch_and_leaves_its_records(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b"], metadata={"first": True}, created_at=at(5))
        twin.update(RecordUpdate(batch_id, "a", "completed", result=1), at_time=at(6))
        before = twin.records(batch_id)
        twin.repair_batch(batch_id, {"winner": 1}, at(1))
        batch = twin.batch(batch_id)
        assert batch is not None
        assert_same((batch.total, batch.metadata, batch.created_at), (2, {"winner": 1}, at(1)))
        assert_same(twin.records(batch_id), before)

    @needs("records")
    def test_merge_records_inserts_absent_records_with_exactly_their_state(self, twin: Twin) -> None:
        batch_id = twin.new_batch([])
        records = (
            _record(batch_id, "done", 30, "completed", attempt=2, result={"n": 1.0, "b": True}, updated_at=at(9)),
            _record(batch_id, "broke", 10, "failed", attempt=1, error="Цемент: timeout", updated_at=at(8)),
            _record(batch_id, "waiting", 20, "pending"),
        )
        assert twin.merge(batch_id, *records) == 3
        assert_same(twin.get_records(batch_id, "done", "broke", "waiting"), list(records))
        assert [record.key for record in twin.records(batch_id)] == ["broke", "waiting", "done"]

    @needs("records")
    def test_merged_records_carry_the_content_tiebreak(self, twin: Twin) -> None:
        """An update equal in (attempt, status, updated_at) applies only when its content digest is greater."""
        batch_id = twin.new_batch([])
        results = sorted(range(8), key=lambda n: content_tiebreak(Status.COMPLETED, n, None))
        middle = results[4]
        twin.merge(batch_id, _record(batch_id, "k", 1, "completed", result=middle, updated_at=at(3)))
        for result in results:
            twin.update(RecordUpdate(batch_id, "k", "completed", result=result, attempt=0), at_time=at(3))
        assert twin.record(batch_id, "k").result == results[-1]

    @needs("records")
    def test_merged_records_carry_their_lease(self, twin: Twin) -> None:
        """A backend that does not claim stores leases too: beside one that does, claims reach it by merge."""
        batch_id = twin.new_batch(["a", "b"])
        record = twin.record(batch_id, "a")
        held = Record(batch_id, "a", record.seq, Status.PROCESSING, 3, None, None, at(9), "w9", at(99))
        assert twin.merge(batch_id, held) == 1
        assert twin.record(batch_id, "a") == held
        # A greater state without a lease clears it, as an applied update does.
        done = Record(batch_id, "a", record.seq, Status.COMPLETED, 3, "ok", None, at(10))
        assert twin.merge(batch_id, done) == 1
        assert twin.record(batch_id, "a") == done
        # Equal stamps, two holders: the lease-including tiebreak picks one on every store.
        other = twin.record(batch_id, "b")
        first = Record(batch_id, "b", other.seq, Status.PROCESSING, 0, None, None, at(5), "x", at(50))
        second = Record(batch_id, "b", other.seq, Status.PROCESSING, 0, None, None, at(5), "y", at(50))
        twin.merge(batch_id, first)
        twin.merge(batch_id, second)
        twin.merge(batch_id, first)
        assert twin.record(batch_id, "b").lease_owner in ("x", "y")

    @needs("records")
    def test_equal_claims_merged_in_either_order_leave_one_holder(self, twin: Twin) -> None:
        """Two stores that each granted a claim in the same microsecond converge on one holder.

        The tiebreak of a claimed state digests its lease (``record_tiebreak``),
        for a record the merge inserts as for one it replaces; a tiebreak of
        the content alone would keep whichever claim came first.
        """
        batch_id = twin.new_batch(["present-1", "present-2"])

        seqs = {record.key: record.seq for record in twin.records(batch_id)}

        def claim(key: str, owner: str) -> Record:
            return Record(batch_id, key, seqs.get(key, 7), Status.PROCESSING, 0, None, None, at(5), owner, at(50))

        for one, other in (("present-1", "present-2"), ("absent-1", "absent-2")):
            twin.merge(batch_id, claim(one, "x"))
            twin.merge(batch_id, claim(one, "y"))
            twin.merge(batch_id, claim(other, "y"))
            twin.merge(batch_id, claim(other, "x"))
            assert twin.record(batch_id, one).lease_owner == twin.record(batch_id, other).lease_owner

    @needs("records")
    def test_merge_records_lowers_seq_but_never_raises_it(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"], first_seq=100, created_at=at(0))
        same_state = twin.record(batch_id, "a")
        assert twin.merge(batch_id, _record(batch_id, "a", 50, "pending", updated_at=same_state.updated_at)) == 1
        assert twin.record(batch_id, "a").seq == 50
        assert twin.merge(batch_id, _record(batch_id, "a", 70, "pending", updated_at=same_state.updated_at)) == 0
        assert twin.record(batch_id, "a").seq == 50

    @needs("records")
    def test_merge_records_replaces_a_state_only_under_a_greater_merge_key(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a"], first_seq=100, created_at=at(0))
        twin.update(RecordUpdate(batch_id, "a", "completed", result="v1", attempt=0), at_time=at(5))
        kept = twin.record(batch_id, "a")
        older = (
            _record(batch_id, "a", 100, "processing", updated_at=at(9)),
            _record(batch_id, "a", 100, "completed", result="v0", updated_at=at(4)),
        )
        for record in older:
            assert twin.merge(batch_id, record) == 0
        assert_same(twin.record(batch_id, "a"), kept)
        assert twin.merge(batch_id, kept) == 0
        newer = _record(batch_id, "a", 100, "pending", attempt=1, updated_at=at(6))
        assert twin.merge(batch_id, newer) == 1
        assert_same(twin.record(batch_id, "a"), newer)

    @needs("records")
    def test_merge_records_counts_each_changed_record_once(self, twin: Twin) -> None:
        batch_id = twin.new_batch(["a", "b", "c"], first_seq=100, created_at=at(0))
        changed = twin.merge(
            batch_id,
            _record(batch_id, "a", 1, "completed", updated_at=at(1)),  # seq lowered and state replaced
            _record(batch_id, "b", 500, "pending", updated_at=at(0)),  # nothing new
            _record(batch_id, "d", 7, "failed", error="x", updated_at=at(2)),  # inserted
        )
        assert changed == 2
        assert twin.merge(batch_id, *twin.records(batch_id)) == 0

    @needs("records")
    def test_merge_records_into_an_unknown_batch_raises_not_found_and_writes_nothing(self, twin: Twin) -> None:
        batch_id = uuid.uuid4()
        with pytest.raises(NotFound):
            twin.merge(batch_id, _record(batch_id, "a", 1, "pending"))
        assert twin.batch(batch_id) is None
        assert twin.get_records(batch_id, "a") == []


__all__ = ["RepairConformance"]
