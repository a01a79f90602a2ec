"""Conformance tests for storing documents and listing a collection."""

from __future__ import annotations

import pytest

from ...errors import InvalidInput
from ...types import Document
from ...validation import MAX_SAFE_INTEGER
from ..compare import assert_same
from ..twin import Twin
from ._base import ConformanceSuite, needs

# Metadata whose values ``==`` would confuse, and the extremes every store must hold exactly.
TRICKY_METADATA: dict[str, object] = {
    "int": 1,
    "float": 1.0,
    "bool": True,
    "str": "1",
    "none": None,
    "list": [1, "a", None, 2.5, False],
    "empty": [],
    "max": MAX_SAFE_INTEGER,
    "min": -MAX_SAFE_INTEGER,
    "tiny": 5e-324,
    "цвет": "Серый \U0001f600",
}


class DocumentsConformance(ConformanceSuite):
    """Upsert, read and delete documents; the collection's vector dimension."""

    @needs("documents")
    def test_documents_round_trip_exactly(self, twin: Twin) -> None:
        collection = twin.new_collection()
        document = Document("a", text="Цемент e\u0301 ПВХ/PVC", vector=[0.1, -2.5, 1e-3], metadata=TRICKY_METADATA)
        twin.upsert(collection, document)
        (stored,) = twin.get(collection, "a")
        assert_same(stored, document, "document")

    @needs("documents")
    def test_documents_and_hits_read_are_the_callers_to_change(self, twin: Twin) -> None:
        """A store that handed out what it holds (an in-memory dict, a cache) would let a caller change it."""
        collection = twin.new_collection()
        kept = Document("a", text="kept", metadata={"tags": ["x"], "dims": {"w": 1}})
        twin.upsert(collection, kept)
        handed_out = [document.metadata for document in twin.get(collection, "a")]
        handed_out += [hit.metadata for hit in twin.search(collection, filter={"tags": "x"})]
        for metadata in handed_out:
            tags, dims = metadata["tags"], metadata["dims"]
            assert isinstance(tags, list) and isinstance(dims, dict)
            tags.append("y")
            dims["w"] = 999
            metadata["added"] = True
        assert_same(twin.get(collection, "a"), [kept], "document")

    @needs("documents")
    def test_documents_kept_are_not_the_callers_to_change(self, twin: Twin) -> None:
        """A store that kept the objects it was given (an in-memory dict) would change when the caller changes them."""
        collection = twin.new_collection()
        given = Document("a", text="kept", metadata={"tags": ["x"], "dims": {"w": 1}})
        twin.upsert(collection, given)
        tags, dims = given.metadata["tags"], given.metadata["dims"]
        assert isinstance(tags, list) and isinstance(dims, dict)
        tags.append("y")
        dims["w"] = 999
        assert_same(
            twin.get(collection, "a"),
            [Document("a", text="kept", metadata={"tags": ["x"], "dims": {"w": 1}})],
            "document",
        )

    @needs("documents")
    def test_get_returns_documents_in_the_order_asked_and_skips_missing_ones(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a"), Document("b"), Document("c"))
        assert [document.id for document in twin.get(collection, "c", "missing", "a")] == ["c", "a"]

    @needs("documents")
    def test_upsert_replaces_the_whole_document(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", text="old", vector=[1, 0, 0], metadata={"gone": 1, "kept": 1}))
        twin.upsert(collection, Document("a", text="new", metadata={"kept": 2}))
        assert twin.get(collection, "a") == [Document("a", text="new", metadata={"kept": 2})]

    @needs("documents")
    def test_unknown_collection_holds_no_documents(self, twin: Twin) -> None:
        collection = twin.new_collection()
        assert twin.get(collection, "a") == []
        assert twin.delete(collection, "a") == 0

    @needs("documents")
    def test_delete_counts_only_documents_that_existed(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a"), Document("b"))
        assert twin.delete(collection, "a", "missing") == 1
        assert [document.id for document in twin.get(collection, "a", "b")] == ["b"]

    @needs("documents")
    def test_first_vector_fixes_the_dimension_and_a_mismatch_writes_nothing(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("plain"), Document("b", vector=[1, 0]))
        assert twin.get(collection, "plain", "b") == []

    @needs("documents")
    def test_documents_without_vectors_leave_the_dimension_open(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("plain", text="no vector"))
        twin.upsert(collection, Document("b", vector=[1, 0]))
        assert [document.id for document in twin.get(collection, "plain", "b")] == ["plain", "b"]

    @needs("documents")
    def test_dimension_stays_fixed_after_every_document_is_deleted(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        twin.delete(collection, "a")
        with pytest.raises(InvalidInput):
            twin.upsert(collection, Document("b", vector=[1, 0]))

    @needs("documents")
    def test_collections_are_separate(self, twin: Twin) -> None:
        first, second = twin.new_collection(), twin.new_collection()
        twin.upsert(first, Document("same", text="first", vector=[1, 0, 0]))
        twin.upsert(second, Document("same", text="second", vector=[1, 0]))
        assert [document.text for document in twin.get(first, "same") + twin.get(second, "same")] == ["first", "second"]

    @needs("documents")
    def test_a_query_with_no_parts_lists_the_collection_in_id_order_with_score_zero(self, twin: Twin) -> None:
        collection = twin.new_collection()
        ids = ["b", "B", "a", "ä", "Д", "a-1", "a_1", "a1", "\U0001f600", "\uff21"]
        twin.upsert(collection, *(Document(document_id) for document_id in ids))
        hits = twin.search(collection, limit=len(ids))
        assert [hit.id for hit in hits] == sorted(ids)
        assert {hit.score for hit in hits} == {0.0}
        assert [hit.id for hit in twin.search(collection, limit=3)] == sorted(ids)[:3]


__all__ = ["TRICKY_METADATA", "DocumentsConformance"]
