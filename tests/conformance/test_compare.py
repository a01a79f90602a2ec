"""The comparison helpers accept what the spec allows and reject the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from fallthrough.errors import InvalidInput, NotFound
from fallthrough.testing.compare import Mismatch, assert_same, assert_same_outcome, assert_search_agrees
from fallthrough.testing.drivers import Outcome
from fallthrough.types import Hit, SearchQuery, Status

VECTOR = (1.0, 0.0, 0.0)


def hit(document_id: str, score: float) -> Hit:
    return Hit(document_id, score, "", {})


def vector_query(limit: int) -> SearchQuery:
    return SearchQuery(vector=VECTOR, text=None, filter=None, limit=limit)


# -- values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (True, 1),
        (1, True),
        (1.0, 1),
        (1, 1.0),
        ("1", 1),
        ("pending", Status.PENDING),
        ({"a": 1}, {"a": True}),
        ([1, 2], (1, 2)),
        ({"a": 1, "b": 2}, {"a": 1}),
        (datetime(2025, 1, 1), datetime(2025, 1, 1, tzinfo=UTC)),
        (str(uuid.UUID(int=1)), uuid.UUID(int=1)),
        (Hit("a", 0.0, "", {"n": 1}), Hit("a", 0.0, "", {"n": 1.0})),
    ],
)
def test_values_that_equal_only_under_python_equality_differ(actual: object, expected: object) -> None:
    with pytest.raises(Mismatch):
        assert_same(actual, expected)


def test_equal_values_of_equal_types_are_the_same() -> None:
    value = {"a": [1, 1.0, True, None, "x", {"b": []}], "t": datetime(2025, 1, 1, tzinfo=UTC)}
    assert_same({"a": [1, 1.0, True, None, "x", {"b": []}], "t": datetime(2025, 1, 1, tzinfo=UTC)}, value)


def test_outcomes_must_raise_the_same_error_class() -> None:
    assert_same_outcome(Outcome(error=NotFound("x")), Outcome(error=NotFound("y")), "call")
    with pytest.raises(Mismatch, match="expected NotFound"):
        assert_same_outcome(Outcome(error=InvalidInput("x")), Outcome(error=NotFound("y")), "call")
    with pytest.raises(Mismatch, match="expected NotFound"):
        assert_same_outcome(Outcome(value=0), Outcome(error=NotFound("y")), "call")


def test_a_returned_tuple_stands_for_the_reference_list() -> None:
    assert_same_outcome(Outcome(value=(1, 2)), Outcome(value=[1, 2]), "call")


# -- vector search ---------------------------------------------------------

REFERENCE = [hit("a", 0.9), hit("b", 0.89999), hit("c", 0.5), hit("d", 0.49995), hit("e", 0.1)]


def test_vector_scores_within_tolerance_and_near_ties_in_either_order_agree() -> None:
    actual = [hit("b", 0.90001), hit("a", 0.9), hit("c", 0.50002)]
    assert_search_agrees(actual, vector_query(3), REFERENCE)


def test_an_id_scored_as_close_to_the_cut_off_may_take_the_last_place() -> None:
    assert_search_agrees([hit("a", 0.9), hit("b", 0.9), hit("d", 0.49995)], vector_query(3), REFERENCE)


@pytest.mark.parametrize(
    ("actual", "reason"),
    [
        ([hit("a", 0.9), hit("b", 0.9), hit("c", 0.52)], "scored"),
        ([hit("c", 0.5), hit("a", 0.9), hit("b", 0.9)], "ranked above"),
        ([hit("a", 0.9), hit("b", 0.9), hit("e", 0.1)], "below the cut-off"),
        ([hit("a", 0.9), hit("b", 0.9)], "2 hits"),
        ([hit("a", 0.9), hit("b", 0.9), hit("x", 0.5)], "does not match"),
        ([hit("a", 0.9), hit("a", 0.9), hit("c", 0.5)], "twice"),
    ],
)
def test_vector_answers_outside_the_tolerance_are_rejected(actual: list[Hit], reason: str) -> None:
    with pytest.raises(Mismatch, match=reason):
        assert_search_agrees(actual, vector_query(3), REFERENCE)


def test_hit_content_must_be_the_stored_document() -> None:
    with pytest.raises(Mismatch, match="metadata"):
        assert_search_agrees([Hit("a", 0.9, "", {"n": 1})], vector_query(1), REFERENCE)


# -- text and filter-only search -------------------------------------------

TEXT_QUERY = SearchQuery(vector=None, text="pvc", filter=None, limit=2)
TEXT_MATCHES = [hit("a", 1.0), hit("b", 0.5), hit("c", 0.25)]


def test_text_hits_may_rank_any_matches_by_the_backends_own_relevance() -> None:
    assert_search_agrees([hit("c", 7.0), hit("a", 3.0)], TEXT_QUERY, TEXT_MATCHES)
    assert_search_agrees([hit("b", 2.0), hit("c", 2.0)], TEXT_QUERY, TEXT_MATCHES)


@pytest.mark.parametrize(
    ("actual", "reason"),
    [
        ([hit("a", 1.0), hit("b", 2.0)], "ranked above"),
        ([hit("c", 2.0), hit("b", 2.0)], "ranked above"),
        ([hit("a", 1.0)], "1 hits"),
        ([hit("a", 1.0), hit("z", 0.5)], "does not match"),
    ],
)
def test_text_hits_outside_the_match_set_or_out_of_order_are_rejected(actual: list[Hit], reason: str) -> None:
    with pytest.raises(Mismatch, match=reason):
        assert_search_agrees(actual, TEXT_QUERY, TEXT_MATCHES)


def test_filter_only_hits_must_be_exactly_the_first_ids_with_score_zero() -> None:
    query = SearchQuery(vector=None, text=None, filter=None, limit=2)
    listing = [hit("A", 0.0), hit("a", 0.0), hit("b", 0.0)]
    assert_search_agrees([hit("A", 0.0), hit("a", 0.0)], query, listing)
    with pytest.raises(Mismatch, match="id order"):
        assert_search_agrees([hit("a", 0.0), hit("A", 0.0)], query, listing)
    with pytest.raises(Mismatch, match="score"):
        assert_search_agrees([hit("A", 0.0), hit("a", 1.0)], query, listing)
