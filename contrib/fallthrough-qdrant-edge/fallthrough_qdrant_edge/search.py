"""Search: the engine filters, matches tokens and ranks by cosine with HNSW.

* The filter compiles to an engine filter (:mod:`.filters`); where that is
  inexact, hits are checked again with :func:`fallthrough.filters.matches`.
* Text is one ``MatchValue`` per query token on the keyword-indexed
  ``tokens`` array, so the matches are exactly those of
  :mod:`fallthrough.text`. Without a vector, text hits are ranked by the
  share of a document's distinct tokens that the query names, then by id.
* A vector query is the engine's nearest-neighbour query on the cosine
  vector: exact over segments without an HNSW graph, approximate (HNSW)
  once :meth:`EdgeShard.optimize` built one. The optimiser runs before a
  search once ``optimize_after`` documents were written since its last run.
  Ties are ordered by id, fetching more until the cut at ``limit`` does not
  split a tie.
* Tombstones (see :mod:`.documents`) have no vector and no tokens, and every
  query also selects kind ``document``, so no search finds one.
* A filter-only query lists matching documents in id order with score 0.0;
  the engine cannot order by a string, so the ids are sorted here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fallthrough.errors import InvalidInput
from fallthrough.filters import matches
from fallthrough.kit import clamp_cosine, decode_hit
from fallthrough.types import Hit, SearchQuery
from qdrant_edge import (
    FieldCondition,
    Filter,
    MatchValue,
    PayloadSelector,
    Query,
    QueryRequest,
    SearchParams,
)

from .connection import Collection, Options
from .documents import decode_vector, metadata, scroll_payloads, unit
from .filters import META_JSON, compile_filter
from .schema import DENSE_VECTOR, KIND, KIND_DOCUMENT

if TYPE_CHECKING:
    from qdrant_edge import ConditionType

_PAGE = 1000
_HIT_FIELDS = ["id", "text", META_JSON]


def search(collection: Collection | None, query: SearchQuery, options: Options) -> list[Hit]:
    if collection is None:
        return []  # an unknown collection holds no documents
    # Documents only: not the tombstones deletes leave, nor the collection's bookkeeping point.
    conditions: list[ConditionType] = [FieldCondition(KIND, match=MatchValue(KIND_DOCUMENT))]
    conditions.extend(FieldCondition("tokens", match=MatchValue(token)) for token in sorted(query.tokens))
    exact = True
    if query.filter is not None:
        compiled = compile_filter(query.filter, legacy=collection.legacy_metadata)
        exact = compiled.exact
        if compiled.condition is not None:
            conditions.append(compiled.condition)
    engine_filter = Filter(must=conditions)

    def keep(payload: Mapping[str, Any]) -> bool:
        return exact or matches(query.filter, metadata(payload))

    if query.vector is not None:
        if collection.dimension is None:
            return []  # no document of the collection has a vector
        if collection.dimension != len(query.vector):
            raise InvalidInput(
                f"query vector has dimension {len(query.vector)}, the collection holds {collection.dimension}"
            )
        return _nearest(collection, query, engine_filter, keep, options)
    hit_fields = [*_HIT_FIELDS, "vector"] if query.with_vectors else _HIT_FIELDS
    fields = [*hit_fields, "tokens"] if query.text is not None else hit_fields
    scrolled = scroll_payloads(collection, engine_filter, fields, page_size=_PAGE)
    payloads = [payload for payload in scrolled if keep(payload)]
    if query.text is not None:
        wanted = len(query.tokens)
        scored = [(wanted / len(payload["tokens"]) if payload["tokens"] else 1.0, payload) for payload in payloads]
        scored.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
        return [_hit(payload, clamp_cosine(score)) for score, payload in scored[: query.limit]]
    payloads.sort(key=lambda payload: payload["id"])
    return [_hit(payload, 0.0) for payload in payloads[: query.limit]]


def _nearest(
    collection: Collection, query: SearchQuery, engine_filter: Filter, keep: Any, options: Options
) -> list[Hit]:
    assert query.vector is not None
    if options.optimize_after and collection.unoptimized_writes >= options.optimize_after:
        collection.shard.optimize()
        collection.unoptimized_writes = 0
    vector = unit(query.vector)
    params = SearchParams(hnsw_ef=options.hnsw_ef) if options.hnsw_ef else None
    fetch = query.limit + 1
    while True:
        request = QueryRequest(
            limit=fetch,
            query=Query.Nearest(vector, using=DENSE_VECTOR),
            filter=engine_filter,
            with_payload=PayloadSelector.Include([*_HIT_FIELDS, "vector"] if query.with_vectors else _HIT_FIELDS),
            with_vector=False,
            params=params,
        )
        points = collection.shard.query(request)
        scored = [(point.score, point.payload) for point in points if point.payload and keep(point.payload)]
        exhausted = len(points) < fetch
        # Done once the first hit left out scores strictly below the last one kept.
        if exhausted or (len(scored) > query.limit and scored[query.limit][0] < scored[query.limit - 1][0]):
            break
        fetch *= 4
    scored.sort(key=lambda pair: (-pair[0], pair[1]["id"]))
    return [_hit(payload, clamp_cosine(score)) for score, payload in scored[: query.limit]]


def _hit(payload: Mapping[str, Any], score: float) -> Hit:
    # The payload's float32 copy is the vector as written (the engine's is normalised); present when asked for.
    vector = decode_vector(payload["vector"]) if "vector" in payload else None
    return decode_hit(payload["id"], float(score), payload["text"], metadata(payload), vector)


__all__ = ["search"]
