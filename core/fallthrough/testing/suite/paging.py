"""Conformance tests for counting, paging through, listing and dropping collections, and vectors in hits."""

from __future__ import annotations

import pytest

from ...errors import InvalidInput
from ...types import Document, StoredDocument
from ..twin import Twin
from ._base import ConformanceSuite, needs

# Ids whose code-point order differs from a collation's, a byte order of UTF-16, and a case-blind order.
AWKWARD_IDS = ["b", "B", "a", "ä", "Д", "a-1", "a_1", "a1", "\U0001f600", "\uff21", "Z", "z0", "é", "e\u0301"]


def _documents(ids: list[str]) -> list[Document]:
    return [
        Document(document_id, text=f"text {n}", vector=[1.0, float(n)] if n % 2 else None, metadata={"n": n})
        for n, document_id in enumerate(ids)
    ]


class PagingConformance(ConformanceSuite):
    """Counts, id-ordered pages, live collection names, drops and vectors in hits."""

    @needs("documents")
    def test_count_counts_live_documents_and_an_unknown_collection_holds_none(self, twin: Twin) -> None:
        collection = twin.new_collection()
        assert twin.count(collection) == 0
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        twin.delete(collection, "a", "missing")
        assert twin.count(collection) == len(AWKWARD_IDS) - 1

    @needs("documents", "filter_search")
    def test_count_evaluates_the_filter(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        assert twin.count(collection, {"n": {"gte": 5}}) == len(AWKWARD_IDS) - 5
        assert twin.count(collection, {"n": {"in": [0, 2, 99]}}) == 2
        assert twin.count(collection, {"missing": {"exists": True}}) == 0

    @needs("documents")
    @pytest.mark.parametrize("page_size", [1, 3, 7, 14, 100])
    def test_documents_come_in_code_point_order_one_keyset_page_at_a_time(self, twin: Twin, page_size: int) -> None:
        collection = twin.new_collection()
        written = _documents(AWKWARD_IDS)
        twin.upsert(collection, *written)
        twin.delete(collection, "Д")
        listed = twin.documents(collection, page_size=page_size)
        expected = sorted((document for document in written if document.id != "Д"), key=lambda d: d.id)
        assert listed == expected

    @needs("documents")
    def test_a_page_starts_after_any_id_even_one_not_stored(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        for after in ("a0", "ä", "\U0001f600", "\U0010ffff", "A"):
            page = twin.call("fallthrough_list_documents", collection=collection, filter=None, after=after, limit=4)
            assert [document.id for document in page] == sorted(i for i in AWKWARD_IDS if i > after)[:4]

    @needs("documents", "filter_search")
    def test_documents_evaluates_the_filter(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        listed = twin.documents(collection, {"n": {"lt": 6}}, page_size=2)
        assert [document.id for document in listed] == sorted(AWKWARD_IDS[:6])

    @needs("documents")
    def test_live_collections_leave_out_tombstone_only_and_dropped_ones(self, twin: Twin) -> None:
        kept, emptied, tombstones_only, dropped = (twin.new_collection() for _ in range(4))
        twin.upsert(kept, Document("a"))
        twin.upsert(emptied, Document("a"))
        twin.delete(emptied, "a")
        twin.delete(tombstones_only, "x")
        twin.upsert(dropped, Document("a"))
        twin.drop(dropped)
        assert twin.live_collections() == [kept]
        # A repair still finds every one that holds an entry or a drop.
        assert set(twin.collections()) >= {emptied, tombstones_only, dropped}

    @needs("documents")
    def test_drop_removes_every_document_and_says_whether_there_was_one(self, twin: Twin) -> None:
        collection = twin.new_collection()
        assert twin.drop(collection) is False
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        assert twin.drop(collection) is True
        assert twin.count(collection) == 0
        assert twin.get(collection, *AWKWARD_IDS) == []
        assert twin.documents(collection, page_size=5) == []
        assert twin.drop(collection) is False

    @needs("documents")
    def test_no_older_write_comes_back_after_a_drop(self, twin: Twin) -> None:
        collection = twin.new_collection()
        older = twin.next_version()
        drop = twin.next_version()
        twin.upsert(collection, Document("kept-out", text="before"), version=older)
        twin.drop(collection, version=drop)
        # A replayed or repaired write stamped before the drop, of a known id or a new one.
        twin.upsert(collection, Document("kept-out", text="late"), Document("new", text="late"), version=older)
        twin.upsert(collection, Document("same-stamp"), version=drop)
        assert twin.delete(collection, "kept-out", version=older) == 0
        assert twin.count(collection) == 0
        # Every id now reads as a tombstone at the drop, so a repair sends the drop's effect on.
        assert twin.entries(collection, "kept-out", "never") == [
            StoredDocument("kept-out", drop, None),
            StoredDocument("never", drop, None),
        ]

    @needs("documents")
    def test_an_upsert_that_loses_to_a_drop_still_fixes_the_dimension(self, twin: Twin) -> None:
        collection = twin.new_collection()
        older = twin.next_version()
        twin.drop(collection)
        # Like one that loses to newer entries: whether a call is refused never depends on versions.
        twin.upsert(collection, Document("late", vector=[1, 0, 0]), version=older)
        assert twin.get(collection, "late") == []
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("b", vector=[1, 0]))

    @needs("documents")
    def test_a_newer_upsert_starts_the_collection_again(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        twin.drop(collection)
        twin.upsert(collection, Document("b", text="after"))
        assert twin.documents(collection, page_size=10) == [Document("b", text="after")]
        assert twin.live_collections() == [collection]
        # The dimension stays: a new embedding size takes a new collection.
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("c", vector=[1, 0]))

    @needs("documents")
    def test_entries_newer_than_a_late_drop_stay(self, twin: Twin) -> None:
        collection = twin.new_collection()
        drop = twin.next_version()
        newer = twin.next_version()
        twin.upsert(collection, Document("old"), version=drop - 1)
        twin.upsert(collection, Document("new", text="written after the drop"), version=newer)
        twin.delete(collection, "gone", version=newer)
        # The drop arrives last, as a replay would bring it.
        assert twin.drop(collection, version=drop) is True
        assert [document.id for document in twin.documents(collection, page_size=10)] == ["new"]
        assert twin.entries(collection, "gone", "old") == [
            StoredDocument("gone", newer, None),
            StoredDocument("old", drop, None),
        ]
        # Replaying the drop again, or an older one, changes nothing.
        assert twin.drop(collection, version=drop) is False
        assert twin.drop(collection, version=drop - 5) is False
        assert twin.count(collection) == 1

    @needs("documents", "vector_search")
    def test_vector_hits_carry_their_vectors_only_when_asked(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0.5]), Document("b", vector=[-0.25, 3]))
        asked = twin.search(collection, vector=[1, 0], limit=2, with_vectors=True)
        assert {hit.id: hit.vector for hit in asked} == {"a": (1.0, 0.5), "b": (-0.25, 3.0)}
        assert {hit.vector for hit in twin.search(collection, vector=[1, 0], limit=2)} == {None}

    @needs("documents")
    def test_listing_and_text_hits_carry_vectors_when_asked(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *_documents(AWKWARD_IDS))
        listed = twin.search(collection, limit=len(AWKWARD_IDS), with_vectors=True)
        expected = {document.id: document.vector for document in _documents(AWKWARD_IDS)}
        assert {hit.id: hit.vector for hit in listed} == expected
        if twin.capabilities.text_search:
            texts = twin.search(collection, text="text", limit=3, with_vectors=True)
            assert all(hit.vector == expected[hit.id] for hit in texts)


__all__ = ["AWKWARD_IDS", "PagingConformance"]
