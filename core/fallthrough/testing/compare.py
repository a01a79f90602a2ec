"""Comparing a backend's answers with the reference model's.

Everything a backend returns must equal what :class:`~fallthrough.testing.model.ReferenceBackend`
returns, with types kept apart: ``1``, ``1.0`` and ``True`` are three
different JSON values, a status is a :class:`~fallthrough.types.Status`, a
timestamp is an aware datetime. Python's ``==`` would let ``{"a": 1}`` equal
``{"a": True}``, so :func:`assert_same` compares type by type.

Search answers are compared by what the spec fixes and no more:

* **vector** queries: every score within :data:`SCORE_TOLERANCE` of the exact
  cosine (vectors are float32 in every store, and a store may compute in
  float32); the order may differ from the reference only among hits whose
  scores are that close; and which ids make the cut may differ only among
  ids scored that close to the last one that made it.
* **text** queries without a vector: a backend ranks by its own relevance,
  so only the set is checked: the ids are matches, there are
  ``min(limit, matches)`` of them, and scores never increase, ties in id order.
* queries with only a **filter**, or nothing: exact ids in id order, score 0.0.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import attrs

from ..types import Hit, SearchQuery, Status
from .drivers import Outcome

SCORE_TOLERANCE = 1e-4
"""How far a vector score may be from the exact float64 cosine of the float32 vectors."""


class Mismatch(AssertionError):
    """A backend's answer differs from the reference model's."""


def describe_difference(actual: object, expected: object, where: str = "value") -> str | None:
    """Say where ``actual`` first differs from ``expected``, comparing types strictly; None when equal."""
    if expected is None or isinstance(expected, bool | Status | uuid.UUID):
        # Identity-like types: bool is not int, a Status is not its string value.
        same = type(actual) is type(expected) and actual == expected
        return None if same else f"{where}: got {actual!r}, expected {expected!r}"
    if isinstance(expected, int | float | str):
        same_type = isinstance(actual, type(expected)) and not isinstance(actual, bool | Status)
        return None if same_type and actual == expected else f"{where}: got {actual!r}, expected {expected!r}"
    if isinstance(expected, datetime):
        if not isinstance(actual, datetime) or actual.tzinfo is None or actual != expected:
            return f"{where}: got {actual!r}, expected the aware datetime {expected!r}"
        return None
    if isinstance(expected, dict):
        return _mapping_difference(actual, expected, where)
    if isinstance(expected, list | tuple):
        return _sequence_difference(actual, expected, where, type(expected))
    if attrs.has(type(expected)):
        if type(actual) is not type(expected):
            return f"{where}: got {actual!r}, expected a {type(expected).__name__}: {expected!r}"
        for field in attrs.fields(cast("type[attrs.AttrsInstance]", type(expected))):
            difference = describe_difference(
                getattr(actual, field.name), getattr(expected, field.name), f"{where}.{field.name}"
            )
            if difference is not None:
                return difference
        return None
    return None if actual == expected else f"{where}: got {actual!r}, expected {expected!r}"


def _mapping_difference(actual: object, expected: dict[Any, Any], where: str) -> str | None:
    if not isinstance(actual, dict):
        return f"{where}: got {actual!r}, expected the dict {expected!r}"
    if set(actual) != set(expected):
        return f"{where}: keys {sorted(actual)} differ from the expected {sorted(expected)}"
    for key, value in expected.items():
        difference = describe_difference(actual[key], value, f"{where}[{key!r}]")
        if difference is not None:
            return difference
    return None


def _sequence_difference(actual: object, expected: Sequence[Any], where: str, kind: type) -> str | None:
    if not isinstance(actual, kind):
        return f"{where}: got {actual!r}, expected the {kind.__name__} {expected!r}"
    assert isinstance(actual, Sequence)
    if len(actual) != len(expected):
        return f"{where}: {len(actual)} items, expected {len(expected)}: got {actual!r}, expected {expected!r}"
    for index, (got, wanted) in enumerate(zip(actual, expected, strict=True)):
        difference = describe_difference(got, wanted, f"{where}[{index}]")
        if difference is not None:
            return difference
    return None


def assert_same(actual: object, expected: object, where: str = "value") -> None:
    """Fail with :class:`Mismatch` unless ``actual`` equals ``expected``, type for type."""
    difference = describe_difference(actual, expected, where)
    if difference is not None:
        raise Mismatch(difference)


def assert_same_outcome(actual: Outcome, expected: Outcome, where: str) -> None:
    """Both raised the same error class, or both returned the same value.

    A hook may return any sequence where the reference returns a list, so a
    top-level tuple is compared as a list; nested values are compared strictly.
    """
    if expected.error is not None:
        if actual.error is None:
            raise Mismatch(
                f"{where}: expected {type(expected.error).__name__} ({expected.error}), got {actual.value!r}"
            )
        if not isinstance(actual.error, type(expected.error)):
            raise Mismatch(
                f"{where}: raised {type(actual.error).__name__} ({actual.error}), "
                f"expected {type(expected.error).__name__} ({expected.error})"
            )
        return
    if actual.error is not None:
        raise Mismatch(
            f"{where}: raised {type(actual.error).__name__} ({actual.error}), expected the result {expected.value!r}"
        )
    value = actual.value
    if isinstance(expected.value, list) and isinstance(value, Sequence) and not isinstance(value, str):
        value = list(value)
    assert_same(value, expected.value, where)


def assert_same_set(actual: Sequence[Any], expected: Sequence[Any], key: Any, where: str) -> None:
    """The same items in any order: no key twice in ``actual``, the same keys, and equal items per key.

    For answers whose order is the backend's own, such as a scan of a
    collection's entries or a listing of batches. ``key`` names an item
    (``lambda entry: entry.id``).
    """
    seen: dict[Any, Any] = {}
    for item in actual:
        name = key(item)
        if name in seen:
            raise Mismatch(f"{where}: {name!r} came twice")
        seen[name] = item
    wanted = {key(item): item for item in expected}
    if set(seen) != set(wanted):
        missing = sorted(map(repr, set(wanted) - set(seen)))
        extra = sorted(map(repr, set(seen) - set(wanted)))
        raise Mismatch(f"{where}: missing {missing}, unexpected {extra}")
    for name, item in wanted.items():
        assert_same(seen[name], item, f"{where}[{name!r}]")


# --------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------


def assert_search_agrees(
    actual: object,
    query: SearchQuery,
    all_matches: Sequence[Hit],
    *,
    tolerance: float = SCORE_TOLERANCE,
    where: str = "search",
) -> None:
    """Check a backend's hits for ``query`` against the reference's.

    :param actual: what the backend's ``fallthrough_search`` returned.
    :param query: the query, with its ``limit``.
    :param all_matches: the reference's answer to the same query with no
        effective limit: every match, best first, with exact scores.
    """
    hits = _checked_hits(actual, where)
    reference = {hit.id: hit for hit in all_matches}
    for position, hit in enumerate(hits):
        if hit.id not in reference:
            raise Mismatch(f"{where}: hit {position} is {hit.id!r}, which does not match the query")
        expected = reference[hit.id]
        assert_same(hit.text, expected.text, f"{where}: hit {hit.id!r} text")
        assert_same(hit.metadata, expected.metadata, f"{where}: hit {hit.id!r} metadata")
        # The reference fills a hit's vector exactly when the query asks for vectors.
        assert_same(hit.vector, expected.vector if query.with_vectors else None, f"{where}: hit {hit.id!r} vector")
    expected_count = min(query.limit, len(all_matches))
    if len(hits) != expected_count:
        raise Mismatch(
            f"{where}: {len(hits)} hits, expected min(limit={query.limit}, matches={len(all_matches)}) = "
            f"{expected_count}; got {[hit.id for hit in hits]}, matches are {[hit.id for hit in all_matches]}"
        )
    if query.vector is not None:
        assert_vector_ranking(hits, all_matches, query.limit, tolerance=tolerance, where=where)
    elif query.text is not None:
        assert_relevance_order(hits, where=where)
    else:
        assert_listing(hits, all_matches[: query.limit], where=where)


def _checked_hits(actual: object, where: str) -> list[Hit]:
    if not isinstance(actual, Sequence) or isinstance(actual, str):
        raise Mismatch(f"{where}: returned {actual!r}, not a sequence of Hit")
    hits = list(actual)
    for position, hit in enumerate(hits):
        if not isinstance(hit, Hit):
            raise Mismatch(f"{where}: hit {position} is {hit!r}, not a fallthrough.Hit")
        if not isinstance(hit.score, float) or not math.isfinite(hit.score):
            raise Mismatch(f"{where}: hit {hit.id!r} has score {hit.score!r}, not a finite float")
    ids = [hit.id for hit in hits]
    if len(set(ids)) != len(ids):
        raise Mismatch(f"{where}: an id is returned twice: {ids}")
    return hits


def assert_vector_ranking(
    hits: Sequence[Hit], all_matches: Sequence[Hit], limit: int, *, tolerance: float, where: str
) -> None:
    """Scores near the exact cosine; order and cut-off differ only among near-ties."""
    exact = {hit.id: hit.score for hit in all_matches}
    for hit in hits:
        if abs(hit.score - exact[hit.id]) > tolerance:
            raise Mismatch(f"{where}: hit {hit.id!r} scored {hit.score!r}, the cosine is {exact[hit.id]!r}")
    assert_relevance_order(hits, where=where)
    for higher, lower in _ordered_pairs(hits):
        if exact[higher.id] < exact[lower.id] - tolerance:
            raise Mismatch(
                f"{where}: {higher.id!r} (cosine {exact[higher.id]!r}) is ranked above "
                f"{lower.id!r} (cosine {exact[lower.id]!r})"
            )
    if len(all_matches) <= limit:
        return
    cutoff = all_matches[limit - 1].score
    expected_ids = {hit.id for hit in all_matches[:limit]}
    returned_ids = {hit.id for hit in hits}
    for extra in sorted(returned_ids - expected_ids):
        if exact[extra] < cutoff - tolerance:
            raise Mismatch(f"{where}: {extra!r} (cosine {exact[extra]!r}) is below the cut-off {cutoff!r}")
    for missing in sorted(expected_ids - returned_ids):
        if exact[missing] > cutoff + tolerance:
            raise Mismatch(f"{where}: {missing!r} (cosine {exact[missing]!r}) is above the cut-off {cutoff!r}")


def assert_relevance_order(hits: Sequence[Hit], *, where: str) -> None:
    """Scores never increase down the list, and equal scores are in id order."""
    for upper, lower in itertools.pairwise(hits):
        if upper.score < lower.score or (upper.score == lower.score and upper.id > lower.id):
            raise Mismatch(
                f"{where}: {upper.id!r} (score {upper.score!r}) is ranked above "
                f"{lower.id!r} (score {lower.score!r}); expected score descending, then id ascending"
            )


def assert_listing(hits: Sequence[Hit], expected: Sequence[Hit], *, where: str) -> None:
    """A query with no vector and no text lists matches in id order with score 0.0."""
    assert_same([hit.id for hit in hits], [hit.id for hit in expected], f"{where}: ids in id order")
    for hit in hits:
        assert_same(hit.score, 0.0, f"{where}: hit {hit.id!r} score")


def _ordered_pairs(hits: Sequence[Hit]) -> list[tuple[Hit, Hit]]:
    return [(hits[i], hits[j]) for i in range(len(hits)) for j in range(i + 1, len(hits))]


__all__ = [
    "SCORE_TOLERANCE",
    "Mismatch",
    "assert_listing",
    "assert_relevance_order",
    "assert_same",
    "assert_same_outcome",
    "assert_same_set",
    "assert_search_agrees",
    "assert_vector_ranking",
    "describe_difference",
]
