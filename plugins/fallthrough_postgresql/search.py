"""Search: filter-only listing, text matches by token containment, and kNN with pgvector.

* **Filter**: :mod:`.filters` compiles the tree to jsonb predicates.
* **Text**: documents store their token set (:func:`fallthrough.text.tokenize`)
  in ``tokens text[]`` with a GIN index; a query needs ``tokens @> query
  tokens``, which is exactly the reference's "every query token present".
  The relevance is the share of the document's distinct tokens that the
  query names (shorter matching documents first), ties by id.
* **Vector**: cosine distance on ``embedding_vector::vector(d)`` (the stored
  ``vector`` copy of ``embedding``, so no row is converted), served by the
  collection's partial HNSW index. The index is approximate; with a filter
  or text, pgvector 0.8's iterative scan (``relaxed_order``) keeps reading
  the index until ``limit`` rows pass, and the rows are re-ordered here by their
  exact distance. Should the index still give fewer rows than ``limit``
  (the scan stops after ``hnsw.max_scan_tuples``), the query runs again as
  an exact scan, so a search never silently returns fewer hits than exist.
  It runs exactly too when equal scores straddle the ``limit`` cut, since
  only an exact scan knows which of the equals have the lowest ids.
  A collection of vectors too long for an HNSW index (see
  :data:`.schema.HNSW_MAX_DIMENSION`) has none and is searched exactly.
"""

from __future__ import annotations

import functools
import operator
import threading
from typing import Any

import psycopg

from fallthrough.errors import InvalidInput, UnsupportedQuery
from fallthrough.kit import decode_hit, load_metadata_all
from fallthrough.types import Hit, Metadata, SearchQuery

from .documents import DIMENSION, LIVE, stored_tokens
from .filters import compile_filter
from .schema import VECTOR_COLUMN, VECTOR_MAX_DIMENSION, ServerFeatures, literal, vector_expression
from .vectors import Float4Array, PgVector

MAX_EF_SEARCH = 1000
"""pgvector's upper bound for ``hnsw.ef_search``."""


class VectorSettings:
    """How vector queries run, and the dimensions of collections already fixed.

    A collection's dimension never changes once its first vector is stored
    (by any process), so it is remembered after the first lookup, saving a
    round trip on every later vector query.
    """

    def __init__(self, ef_search: int) -> None:
        self.ef_search = ef_search
        self._dimensions: dict[str, int] = {}
        self._lock = threading.Lock()
        # The same statement object for the same shape of query: psycopg keeps a cursor's
        # adapters (its Transformer) only while it executes the very object it executed
        # last, and building the text anew each call cost a kNN search 4-10 µs more.
        self.nearest_statements = functools.lru_cache(maxsize=256)(nearest_statements)

    def dimension(self, cursor: psycopg.Cursor[Any], collection: str) -> tuple[bool, int | None]:
        """Whether the collection exists, and its dimension (None while it holds no vector)."""
        with self._lock:
            known = self._dimensions.get(collection)
        if known is not None:
            return True, known
        found = cursor.execute(DIMENSION, (collection,)).fetchone()
        if found is None:
            return False, None
        if found[0] is not None:
            with self._lock:
                self._dimensions[collection] = found[0]
        return True, found[0]


def search(
    cursor: psycopg.Cursor[Any],
    collection: str,
    query: SearchQuery,
    features: ServerFeatures,
    settings: VectorSettings,
) -> list[Hit]:
    """The hits of ``query``, sent on ``cursor`` (the connection's kept one, see :meth:`.Database.querying`)."""
    # The hit's vector is read in the same statement as the hit, or NULL when not asked for. Results
    # come in binary, where a vector loads as packed float32 bytes (vectors.Float4ArrayBinaryLoader).
    embedding = "embedding" if query.with_vectors else "NULL::real[]"
    # Tombstones are never searched (nor is their NULL content compared).
    conditions = ["collection = %(collection)s", LIVE]
    parameters: dict[str, Any] = {"collection": collection, "limit": query.limit}
    if query.filter is not None:
        condition, filter_parameters = compile_filter(query.filter, "metadata_jsonb")
        conditions.append(condition)
        parameters.update(filter_parameters)
    if query.text is not None:
        conditions.append("tokens @> %(tokens)s::text[]")
        parameters["tokens"] = stored_tokens(query.tokens)
    if query.vector is not None:
        exists, dimension = settings.dimension(cursor, collection)
        if not exists or dimension is None:
            return []  # an unknown collection holds no documents; this one has no vector yet
        if dimension != len(query.vector):
            raise InvalidInput(
                f"query vector has dimension {len(query.vector)}, collection {collection!r} holds {dimension}"
            )
        if not features.vector_search:
            raise UnsupportedQuery("this PostgreSQL server has no pgvector; vector search is not declared")
        parameters["vector"] = (
            PgVector.of(query.vector) if dimension <= VECTOR_MAX_DIMENSION else Float4Array.of(query.vector)
        )
        return _nearest(cursor, collection, dimension, conditions, parameters, query, settings, embedding)
    where = " AND ".join(conditions)
    if query.text is not None:
        parameters["count"] = len(query.tokens)
        statement = (
            f"SELECT id, text, metadata::text, %(count)s::float8 / cardinality(tokens) AS score, {embedding} "
            f"FROM fallthrough_documents WHERE {where} ORDER BY score DESC, id LIMIT %(limit)s"
        )
        return _hits(cursor.execute(statement, parameters, binary=True).fetchall())
    statement = (
        f"SELECT id, text, metadata::text, 0.0::float8, {embedding} FROM fallthrough_documents "
        f"WHERE {where} ORDER BY id "
    )
    return _hits(cursor.execute(statement + "LIMIT %(limit)s", parameters, binary=True).fetchall())


def _nearest(
    cursor: psycopg.Cursor[Any],
    collection: str,
    dimension: int,
    conditions: list[str],
    parameters: dict[str, Any],
    query: SearchQuery,
    settings: VectorSettings,
    embedding: str,
) -> list[Hit]:
    limit = operator.index(query.limit)
    approximate, exact = settings.nearest_statements(collection, dimension, limit, embedding, tuple(conditions[1:]))
    # hnsw.ef_search and hnsw.iterative_scan are session settings of every
    # connection (see connection.py); a limit beyond ef_search raises it for
    # this transaction only (the caller opened one, see needs_transaction).
    if needs_transaction(query, settings):
        ef_search = min(limit, MAX_EF_SEARCH)
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
    rows = cursor.execute(approximate, parameters, binary=True).fetchall()
    rows.sort(key=_nearest_first)
    # One row more than asked shows whether equal scores straddle the cut:
    # the index picks among equals in its own order, and the spec wants the
    # lowest ids, which only an exact scan can tell (duplicate vectors, mostly).
    tie_at_the_cut = len(rows) > limit and 1 - rows[limit][3] == 1 - rows[limit - 1][3]
    if len(rows) < limit or tie_at_the_cut:
        rows = cursor.execute(exact, parameters, binary=True).fetchall()
    rows = rows[:limit]
    # The fourth column is the cosine distance, not the score.
    return [
        decode_hit(document_id, 1 - row_distance, text, metadata, vector)
        for (document_id, text, _, row_distance, vector), metadata in zip(rows, _metadata(rows), strict=True)
    ]


def nearest_statements(
    collection: str, dimension: int, limit: int, embedding: str, conditions: tuple[str, ...]
) -> tuple[str, str]:
    """A kNN query's statement, and its exact scan for when the index cannot settle the answer.

    :param collection: the collection's name (``[A-Za-z0-9_-]``, written as a literal).
    :param dimension: its vectors' dimension.
    :param limit: how many hits the query asks for, an exact int.
    :param embedding: the column (or NULL) each hit's vector is read from.
    :param conditions: the filter's and the text's conditions besides the collection.
    """
    # The collection is a literal so that the planner can match the collection's
    # partial index, also in a generic plan. The vector column is NULL exactly where
    # embedding is, up to VECTOR_MAX_DIMENSION; the HNSW index's predicate names it.
    present = f"{VECTOR_COLUMN} IS NOT NULL" if dimension <= VECTOR_MAX_DIMENSION else "embedding IS NOT NULL"
    where = " AND ".join([f"collection = {literal(collection)}", present, *conditions])
    distance = cosine_distance(dimension)
    # The distance is computed once a row, under an alias the ORDER BY names:
    # "1 - (distance)" in the select list computed it a second time, and a
    # MATERIALIZED CTE that re-sorted the rows cost as much again (together about
    # a tenth of a query over 10,000 vectors). relaxed_order may hand the rows over
    # slightly out of order; they are sorted by the caller instead, as the spec wants:
    # best first, ties by id (code point order, which is "C" collation's).
    # The limit is a literal too: with a parameter there, the server's generic plan
    # could not tell how many rows the index scan must give, so every execution was
    # planned anew (0.1 ms of a 0.4 ms query over 10,000 vectors). One row more than
    # asked shows whether equal scores straddle the cut.
    approximate = (
        f"SELECT id, text, metadata::text, {distance} AS distance, {embedding} "
        f"FROM fallthrough_documents WHERE {where} ORDER BY distance LIMIT {limit + 1}"
    )
    # "+ 0" keeps the planner off the index: an exact scan of the matches.
    exact = (
        f"SELECT id, text, metadata::text, {distance}, {embedding} FROM fallthrough_documents WHERE {where} "
        f"ORDER BY ({distance}) + 0, id LIMIT {limit}"
    )
    return approximate, exact


def _nearest_first(row: tuple[Any, ...]) -> tuple[float, str]:
    return row[3], row[0]


def cosine_distance(dimension: int) -> str:
    """The cosine distance of the stored vector to the query's, as SQL."""
    if dimension <= VECTOR_MAX_DIMENSION:
        # The stored vector column: no per-row conversion from real[] (see schema.VECTOR_COLUMN).
        return f"{vector_expression(dimension)} <=> %(vector)b::vector({dimension})"
    # Longer than pgvector's type takes: computed over the arrays, in float8.
    return (
        "(SELECT 1 - sum(a::float8 * b) / sqrt(sum(a::float8 * a) * sum(b::float8 * b)) "
        "FROM unnest(embedding, %(vector)b) AS pair(a, b))"
    )


def needs_transaction(query: SearchQuery, settings: VectorSettings) -> bool:
    """A vector query whose limit exceeds ``hnsw_ef_search`` sets a larger one, for its transaction only."""
    return query.vector is not None and query.limit > settings.ef_search


def _hits(rows: list[tuple[Any, ...]]) -> list[Hit]:
    return [
        decode_hit(document_id, float(score), text, metadata, vector)
        for (document_id, text, _, score, vector), metadata in zip(rows, _metadata(rows), strict=True)
    ]


def _metadata(rows: list[tuple[Any, ...]]) -> list[Metadata]:
    """The third column of every row (metadata as JSON text), parsed in one go."""
    return load_metadata_all([row[2] for row in rows])


__all__ = ["MAX_EF_SEARCH", "VectorSettings", "cosine_distance", "nearest_statements", "needs_transaction", "search"]
