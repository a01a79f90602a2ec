"""Search: vector ranking by Qdrant, text and filters as payload conditions.

**Text.** Qdrant's ``MatchText`` is not the core's token rule: without a
text index it splits on non-alphanumerics and lower-cases (no NFC, no
casefold: ``"Straße"`` does not match ``"STRASSE"``), and with a full-text
index it uses the index's tokenizer (the default ``word`` tokenizer, or
``multilingual`` with its own segmentation, stemming and stop words, all
configurable per server). Rather than chase those, each document stores the
core's tokens (:func:`fallthrough.text.tokenize`) as a keyword array, and a
query requires every query token with one ``MatchValue`` each. That is an
exact inverted index with the core's tokens, Cyrillic, ``"М-500"``,
``"2.5мм"`` and ``"ПВХ/PVC"`` included.

**Relevance** of a text-only query, this backend's own: the share of a
document's distinct tokens that the query names (a short document that is
mostly the query ranks first), ties by id. Qdrant has no such score for a
payload match, so the matches are scrolled and ranked here.

**Vector ties** at the ``limit`` cut are settled by document id: the
query fetches past the cut until the first point left out scores lower.

**Tombstones** live only in ``<prefix>docs_<name>``, whose scrolls leave
them out with ``must_not tombstone == true``; a vector search reads only
``<prefix>vecs_<name>``, which never holds one.

**Listings** (filter only, or nothing) are in document id order. Points are
ordered by their UUID, and ``order_by`` takes numbers only, so the matching
ids are scrolled and sorted here, then only the page is fetched whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import QdrantClient, models

from fallthrough.errors import InvalidInput
from fallthrough.filters import Filter
from fallthrough.kit import clamp_cosine, decode_hit
from fallthrough.types import Hit, SearchQuery

from .documents import TOMBSTONE, Documents, decode_metadata, decode_vector
from .filters import compile_filter
from .schema import scroll_all

_PAGE = 5_000
_RANKING_FIELDS = ["id", "token_count"]
_HIT_FIELDS = ["id", "text", "metadata"]
"""What a hit reads: not the tokens or filter copies (local mode copies them per hit, a server sends them)."""
_HIT_FIELDS_WITH_VECTOR = [*_HIT_FIELDS, "vector"]
"""And the stored vector, read only when the query asks for it (``with_vectors``)."""


def search(client: QdrantClient, documents: Documents, collection: str, query: SearchQuery) -> list[Hit]:
    conditions = _conditions(query)
    if query.vector is not None:
        dimension = documents.dimension(client, collection)
        if dimension is None:
            return []  # no document of this collection has a vector
        if dimension != len(query.vector):
            raise InvalidInput(
                f"query vector has dimension {len(query.vector)}, collection {collection!r} holds {dimension}"
            )
        return _nearest(client, documents.names.vector_documents(collection), query, conditions)
    names = [documents.names.plain_documents(collection), documents.names.vector_documents(collection)]
    existing = [name for name in names if documents.exists(client, name)]
    candidates: list[tuple[float, str, str, str]] = []  # (-score, document id, collection, point id)
    for name in existing:
        # Tombstones live only among the documents without vectors.
        scoped = _live_only(conditions) if name == names[0] else conditions
        for point in scroll_all(client, name, scoped, with_payload=_RANKING_FIELDS, page_size=_PAGE):
            payload = point.payload or {}
            score = len(query.tokens) / payload["token_count"] if query.text is not None else 0.0
            candidates.append((-score, payload["id"], name, str(point.id)))
    candidates.sort()
    chosen = candidates[: query.limit]
    payloads: dict[str, Mapping[str, Any]] = {}
    for name in existing:
        wanted = [point_id for _, _, owner, point_id in chosen if owner == name]
        if wanted:
            for point in client.retrieve(name, wanted, with_payload=True):
                payloads[str(point.id)] = point.payload or {}
    return [_hit(payloads[point_id], -negative, query.with_vectors) for negative, _, _, point_id in chosen]


def _nearest(client: QdrantClient, name: str, query: SearchQuery, conditions: models.Filter | None) -> list[Hit]:
    """The ``limit`` nearest, ties by document id.

    Qdrant breaks equal scores by point id (a server) or storage order
    (local mode), so the points at the cut need not be the lowest document
    ids. One more point than asked is fetched, and more while the first one
    left out scores as high as the last one kept, so no tie is split.
    """
    assert query.vector is not None
    fetch = query.limit + 1
    while True:
        response = client.query_points(
            name,
            query=list(query.vector),
            query_filter=conditions,
            limit=fetch,
            with_payload=_HIT_FIELDS_WITH_VECTOR if query.with_vectors else _HIT_FIELDS,
        )
        points = response.points
        if len(points) < fetch or points[query.limit].score < points[query.limit - 1].score:
            break
        fetch *= 4
    hits = [_hit(point.payload or {}, clamp_cosine(point.score), query.with_vectors) for point in points]
    hits.sort(key=lambda hit: (-hit.score, hit.id))
    return hits[: query.limit]


def filter_conditions(filter: Filter | None) -> models.Filter | None:
    """A filter tree as Qdrant conditions, with the search's compiler (for counts and listings)."""
    return None if filter is None else compile_filter(filter)


def _conditions(query: SearchQuery) -> models.Filter | None:
    must: list[models.Condition] = []
    if query.filter is not None:
        must.extend(_conjuncts(compile_filter(query.filter)))
    for token in sorted(query.tokens):
        must.append(models.FieldCondition(key="tokens", match=models.MatchValue(value=token)))
    return models.Filter(must=must) if must else None


def _conjuncts(compiled: models.Filter) -> list[models.Condition]:
    """The conditions that must all hold, without a level of nesting where ``compiled`` is one plain ``must``.

    Local mode evaluates a filter in Python on every point of the collection,
    and each nested ``Filter`` is a few more calls per point: a one-condition
    filter (``{"category": 3}``) nested twice cost a filtered search about a
    fifth more than the same condition at the top. A server answers alike.
    """
    plain_must = compiled.should is None and compiled.must_not is None and compiled.min_should is None
    if plain_must and isinstance(compiled.must, list):
        return list(compiled.must)
    return [compiled]


def _live_only(conditions: models.Filter | None) -> models.Filter:
    """``conditions``, and not a tombstone."""
    return models.Filter(must=[conditions] if conditions is not None else [], must_not=[TOMBSTONE])


def _hit(payload: Mapping[str, Any], score: float, with_vectors: bool) -> Hit:
    # The payload keeps the vector exactly as written (Qdrant's own copy is normalised).
    vector = decode_vector(payload) if with_vectors else None
    return decode_hit(payload["id"], score, payload["text"], decode_metadata(payload), vector)


__all__ = ["filter_conditions", "search"]
