"""Conformance tests for search: filters, text tokens and vector ranking.

:meth:`~fallthrough.testing.twin.Twin.search` already compares every answer
with the reference model (see :mod:`fallthrough.testing.compare`); each test
then asserts the one rule it is about.
"""

from __future__ import annotations

import math

import pytest

from ...errors import InvalidInput
from ...types import Document, Hit
from ...validation import MAX_SAFE_INTEGER
from ..compare import assert_relevance_order
from ..twin import Twin
from ._base import ConformanceSuite, needs


def _ids(hits: list[Hit]) -> list[str]:
    return [hit.id for hit in hits]


def _matching(twin: Twin, filter: dict[str, object], *documents: Document) -> list[str]:
    collection = twin.new_collection()
    twin.upsert(collection, *documents)
    return _ids(twin.search(collection, filter=filter, limit=100))


def _text_matches(twin: Twin, text: str, *documents: Document) -> set[str]:
    collection = twin.new_collection()
    twin.upsert(collection, *documents)
    return set(_ids(twin.search(collection, text=text, limit=100)))


def _doc(document_id: str, **metadata: object) -> Document:
    return Document(document_id, metadata=metadata)


class SearchConformance(ConformanceSuite):
    """Filters exactly as :func:`fallthrough.filters.matches`, tokens as :mod:`fallthrough.text`, cosine ranking."""

    # -- filters -----------------------------------------------------------

    @needs("filter_search")
    def test_equality_keeps_bools_strings_and_numbers_apart(self, twin: Twin) -> None:
        documents = (_doc("int", v=1), _doc("float", v=1.0), _doc("bool", v=True), _doc("str", v="1"))
        assert _matching(twin, {"v": 1}, *documents) == ["float", "int"]
        assert _matching(twin, {"v": True}, *documents) == ["bool"]
        assert _matching(twin, {"v": "1"}, *documents) == ["str"]

    @needs("filter_search")
    def test_equality_on_a_list_field_means_contains(self, twin: Twin) -> None:
        documents = (_doc("ab", tags=["a", "b"]), _doc("c", tags=["c"]), _doc("scalar", tags="a"))
        assert _matching(twin, {"tags": "a"}, *documents) == ["ab", "scalar"]

    @needs("filter_search")
    def test_ne_matches_documents_whose_field_is_missing_or_none(self, twin: Twin) -> None:
        documents = (_doc("red", colour="red"), _doc("blue", colour="blue"), _doc("none", colour=None), _doc("missing"))
        assert _matching(twin, {"colour": {"ne": "red"}}, *documents) == ["blue", "missing", "none"]

    @needs("filter_search")
    def test_nin_on_a_list_field_holds_when_no_element_is_listed(self, twin: Twin) -> None:
        documents = (_doc("ab", tags=["a", "b"]), _doc("c", tags=["c"]), _doc("empty", tags=[]), _doc("missing"))
        assert _matching(twin, {"tags": {"nin": ["b", "x"]}}, *documents) == ["c", "empty", "missing"]

    @needs("filter_search")
    def test_in_matches_any_listed_value_with_typed_equality(self, twin: Twin) -> None:
        documents = (_doc("float", v=1.0), _doc("bool", v=True), _doc("a", v="a"), _doc("str", v="1"))
        assert _matching(twin, {"v": {"in": [1, "a"]}}, *documents) == ["a", "float"]

    @needs("filter_search")
    def test_range_compares_ints_and_floats_numerically_and_skips_other_types(self, twin: Twin) -> None:
        documents = (
            _doc("one", qty=1),
            _doc("one-and-half", qty=1.5),
            _doc("two", qty=2),
            _doc("string", qty="3"),
            _doc("bool", qty=True),
            _doc("none", qty=None),
            _doc("missing"),
        )
        assert _matching(twin, {"qty": {"gt": 1}}, *documents) == ["one-and-half", "two"]
        assert _matching(twin, {"qty": {"gte": 1.0}}, *documents) == ["one", "one-and-half", "two"]
        assert _matching(twin, {"qty": {"lt": 1.5}}, *documents) == ["one"]
        assert _matching(twin, {"qty": {"lte": 1.5}}, *documents) == ["one", "one-and-half"]

    @needs("filter_search")
    def test_several_operators_on_one_field_must_all_hold(self, twin: Twin) -> None:
        documents = (_doc("one", qty=1), _doc("one-and-half", qty=1.5), _doc("two", qty=2))
        assert _matching(twin, {"qty": {"gt": 1, "lt": 2}}, *documents) == ["one-and-half"]

    @needs("filter_search")
    def test_range_on_a_list_field_holds_for_some_element(self, twin: Twin) -> None:
        documents = (_doc("low-high", sizes=[1, 10]), _doc("low", sizes=[1, 2]), _doc("text", sizes=["20"]))
        assert _matching(twin, {"sizes": {"gt": 5}}, *documents) == ["low-high"]

    @needs("filter_search")
    def test_largest_safe_integers_compare_exactly(self, twin: Twin) -> None:
        documents = (_doc("max", n=MAX_SAFE_INTEGER), _doc("below", n=MAX_SAFE_INTEGER - 1))
        assert _matching(twin, {"n": MAX_SAFE_INTEGER}, *documents) == ["max"]
        assert _matching(twin, {"n": {"lt": MAX_SAFE_INTEGER}}, *documents) == ["below"]

    @needs("filter_search")
    def test_and_or_not_and_sibling_keys_combine(self, twin: Twin) -> None:
        documents = (
            _doc("cheap-red", price=5, colour="red"),
            _doc("cheap-blue", price=5, colour="blue"),
            _doc("dear-red", price=50, colour="red"),
            _doc("no-price", colour="red"),
        )
        spec: dict[str, object] = {"or": [{"price": {"lt": 10}}, {"colour": "blue"}], "not": {"colour": "blue"}}
        assert _matching(twin, spec, *documents) == ["cheap-red"]
        assert _matching(twin, {"and": [{"colour": "red"}, {"price": {"gte": 5}}]}, *documents) == [
            "cheap-red",
            "dear-red",
        ]

    @needs("filter_search")
    def test_not_of_a_comparison_matches_documents_missing_the_field(self, twin: Twin) -> None:
        documents = (_doc("positive", price=5), _doc("zero", price=0), _doc("missing"))
        assert _matching(twin, {"not": {"price": {"gt": 0}}}, *documents) == ["missing", "zero"]

    @needs("filter_search")
    def test_filter_hits_come_in_id_order_with_score_zero_up_to_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection, *(_doc(document_id, kind="x") for document_id in ("c", "a", "B", "b")), _doc("y", kind="y")
        )
        hits = twin.search(collection, filter={"kind": "x"}, limit=3)
        assert _ids(hits) == ["B", "a", "b"]
        assert [hit.score for hit in hits] == [0.0, 0.0, 0.0]

    # -- text --------------------------------------------------------------

    @needs("text_search")
    def test_text_matches_regardless_of_case_in_any_script(self, twin: Twin) -> None:
        documents = (Document("cement", text="ЦЕМЕНТ М-500"), Document("pipe", text="Труба ПВХ"))
        assert _text_matches(twin, "цемент", *documents) == {"cement"}
        assert _text_matches(twin, "трУБА", *documents) == {"pipe"}

    @needs("text_search")
    def test_text_casefolds_rather_than_lowercases(self, twin: Twin) -> None:
        documents = (Document("street", text="Hauptstraße 5"), Document("file", text="ﬁle"))
        assert _text_matches(twin, "HAUPTSTRASSE", *documents) == {"street"}
        assert _text_matches(twin, "FILE", *documents) == {"file"}

    @needs("text_search")
    def test_text_is_compared_in_nfc(self, twin: Twin) -> None:
        documents = (Document("decomposed", text="cafe\u0301"), Document("composed", text="caf\u00e9"))
        assert _text_matches(twin, "CAF\u00c9", *documents) == {"decomposed", "composed"}

    @needs("text_search")
    def test_tokens_split_at_every_character_that_is_not_a_letter_or_digit(self, twin: Twin) -> None:
        documents = (Document("spec", text="Цемент М-500, 2.5мм ПВХ/PVC x_y"),)
        assert _text_matches(twin, "pvc 500 м", *documents) == {"spec"}
        assert _text_matches(twin, "5мм y", *documents) == {"spec"}
        assert _text_matches(twin, "2.5", *documents) == set(), "'5' is not a token of '2.5мм'"
        assert _text_matches(twin, "М500", *documents) == set()

    @needs("text_search")
    def test_text_needs_every_query_token_and_matches_whole_tokens_only(self, twin: Twin) -> None:
        documents = (
            Document("both", text="цемент труба"),
            Document("one", text="цемент"),
            Document("longer", text="цемента"),
        )
        assert _text_matches(twin, "труба цемент", *documents) == {"both"}
        assert _text_matches(twin, "цемент", *documents) == {"both", "one"}

    @needs("text_search")
    def test_text_hits_are_ranked_by_score_then_id_up_to_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        texts = ("pvc", "pvc pvc", "pvc pipe", "pvc pipe cement", "PVC", "pipe")
        twin.upsert(collection, *(Document(f"d{index}", text=text) for index, text in enumerate(texts)))
        hits = twin.search(collection, text="pvc", limit=4)
        assert len(hits) == 4 and {hit.id for hit in hits} <= {"d0", "d1", "d2", "d3", "d4"}
        assert_relevance_order(hits, where="text hits")

    @needs("text_search", "filter_search")
    def test_text_with_a_filter_keeps_documents_matching_both(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("match", text="pvc", metadata={"ok": True}),
            Document("text-only", text="pvc", metadata={"ok": False}),
            Document("filter-only", text="pipe", metadata={"ok": True}),
        )
        assert _ids(twin.search(collection, text="PVC", filter={"ok": True})) == ["match"]

    # -- vectors -----------------------------------------------------------

    @needs("vector_search")
    def test_vector_hits_are_ranked_by_cosine_similarity(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("opposite", vector=[-1, 0, 0]),
            Document("orthogonal", vector=[0, 1, 0]),
            Document("diagonal", vector=[1, 1, 0]),
            Document("same", vector=[1, 0, 0]),
        )
        hits = twin.search(collection, vector=[3, 0, 0])
        assert _ids(hits) == ["same", "diagonal", "orthogonal", "opposite"]
        expected = [1.0, math.sqrt(0.5), 0.0, -1.0]
        assert all(math.isclose(hit.score, score, abs_tol=1e-4) for hit, score in zip(hits, expected, strict=True))

    @needs("vector_search")
    def test_vector_ties_are_ordered_by_id(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *(Document(document_id, vector=[0.5, 0.25, 1]) for document_id in ("b", "a", "B")))
        assert _ids(twin.search(collection, vector=[0.5, 0.25, 1])) == ["B", "a", "b"]

    @needs("vector_search")
    def test_documents_without_a_vector_are_not_vector_hits(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("plain", text="pvc"), Document("vector", vector=[0, 0, 1]))
        assert _ids(twin.search(collection, vector=[1, 0, 0])) == ["vector"]

    @needs("vector_search")
    def test_vector_hits_stop_at_the_limit(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, *(Document(f"d{index}", vector=[1, index, 0]) for index in range(5)))
        assert _ids(twin.search(collection, vector=[1, 0, 0], limit=2)) == ["d0", "d1"]

    @needs("vector_search")
    def test_query_vector_of_another_dimension_raises_invalid_input(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(collection, Document("a", vector=[1, 0, 0]))
        with pytest.raises(InvalidInput):
            twin.search(collection, vector=[1, 0])

    @needs("vector_search")
    def test_vector_search_of_an_unknown_collection_is_empty(self, twin: Twin) -> None:
        assert twin.search(twin.new_collection(), vector=[1, 0]) == []

    @needs("vector_search", "filter_search")
    def test_vector_with_a_filter_ranks_only_matching_documents(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("best-excluded", vector=[1, 0, 0], metadata={"ok": False}),
            Document("worse-kept", vector=[0, 1, 0], metadata={"ok": True}),
            Document("middle-kept", vector=[1, 1, 0], metadata={"ok": True}),
        )
        assert _ids(twin.search(collection, vector=[1, 0, 0], filter={"ok": True})) == ["middle-kept", "worse-kept"]

    @needs("vector_search", "text_search")
    def test_vector_with_text_ranks_only_text_matches_by_cosine(self, twin: Twin) -> None:
        collection = twin.new_collection()
        twin.upsert(
            collection,
            Document("best-no-text", text="pipe", vector=[1, 0, 0]),
            Document("worse", text="PVC pipe", vector=[0, 1, 0]),
            Document("better", text="pvc", vector=[1, 1, 0]),
        )
        assert _ids(twin.search(collection, vector=[1, 0, 0], text="pvc")) == ["better", "worse"]


__all__ = ["SearchConformance"]
