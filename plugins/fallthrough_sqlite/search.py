"""Search: filter-only listing, text ranking with FTS5 bm25, and vector ranking.

The filter is always compiled to SQL (:mod:`.filters`). Text narrows the
candidates with FTS5 and is then checked in Python against the core's
token sets (:mod:`.fts` explains why). A vector ranks the candidates with
numpy (:mod:`.vectors`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, func, literal_column, select

from fallthrough.errors import InvalidInput
from fallthrough.filters import Filter
from fallthrough.kit import decode_hit, load_metadata
from fallthrough.types import Hit, SearchQuery

from .filters import compile_filter
from .fts import Unicode61Probe, match_expression
from .schema import collections, documents, documents_fts
from .vectors import Matrix, MatrixCache

_FTS: ColumnElement[Any] = literal_column("documents_fts")
_CHUNK = 500


def search(
    conn: Connection, collection: str, query: SearchQuery, matrices: MatrixCache, probe: Unicode61Probe
) -> list[Hit]:
    hits = _search(conn, collection, query, matrices, probe)
    return _with_vectors(conn, collection, hits) if query.with_vectors else hits


def _with_vectors(conn: Connection, collection: str, hits: list[Hit]) -> list[Hit]:
    """The hits with their documents' vectors, read in the search's own transaction (one snapshot)."""
    vectors: dict[str, Any] = {}
    ids = [hit.id for hit in hits]
    for start in range(0, len(ids), _CHUNK):
        statement = select(documents.c.id, documents.c.vector).where(
            documents.c.collection == collection, documents.c.id.in_(ids[start : start + _CHUNK])
        )
        for row in conn.execute(statement).all():
            vectors[row.id] = row.vector
    return [decode_hit(hit.id, hit.score, hit.text, hit.metadata, vectors.get(hit.id)) for hit in hits]


def _search(
    conn: Connection, collection: str, query: SearchQuery, matrices: MatrixCache, probe: Unicode61Probe
) -> list[Hit]:
    found = conn.execute(
        select(collections.c.dimension, collections.c.generation).where(collections.c.name == collection)
    ).first()
    if found is None:
        return []  # an unknown collection holds no documents
    dimension, generation = found
    if query.vector is not None:
        if dimension is not None and dimension != len(query.vector):
            raise InvalidInput(
                f"query vector has dimension {len(query.vector)}, collection {collection!r} holds {dimension}"
            )
        return _vector_search(conn, collection, query, matrices.get(conn, collection, generation), probe)
    if query.text is not None:
        return _text_search(conn, collection, query, probe)
    return _listing(conn, collection, query)


def live_matching(collection: str, filter: Filter | None) -> list[ColumnElement[bool]]:
    """The WHERE of a collection's live documents that ``filter`` matches, compiled to SQL (for counts and listings)."""
    conditions = [documents.c.collection == collection, documents.c.tombstone == 0]
    if filter is not None:
        conditions.append(compile_filter(filter, documents.c.metadata, documents.c.row_id, collection))
    return conditions


def _conditions(collection: str, query: SearchQuery) -> list[ColumnElement[bool]]:
    # Tombstones hold no tokens, vector or metadata to match, but a filter
    # such as "not" or an absent key could still select one: say it outright.
    conditions = [documents.c.collection == collection, documents.c.tombstone == 0]
    if query.filter is not None:
        conditions.append(compile_filter(query.filter, documents.c.metadata, documents.c.row_id, collection))
    return conditions


def _listing(conn: Connection, collection: str, query: SearchQuery) -> list[Hit]:
    """A filter-only query: documents in id order, score 0.0."""
    statement = (
        select(documents.c.id, documents.c.text, documents.c.metadata)
        .where(*_conditions(collection, query))
        .order_by(documents.c.id)
        .limit(query.limit)
    )
    return [decode_hit(row.id, 0.0, row.text, load_metadata(row.metadata)) for row in conn.execute(statement).all()]


def _text_search(conn: Connection, collection: str, query: SearchQuery, probe: Unicode61Probe) -> list[Hit]:
    """Text matches ranked by bm25, best first, ties by id."""
    columns = (documents.c.id, documents.c.text, documents.c.metadata, documents.c.tokens)
    statement = select(*columns).where(*_conditions(collection, query))
    match = _match(query, probe)
    if match is not None:
        # SQLite's bm25 is lower-is-better; the hit score is its negation.
        rank = func.bm25(_FTS)
        statement = (
            statement.add_columns((-rank).label("score"))
            .join(documents_fts, documents_fts.c.rowid == documents.c.row_id)
            .where(_FTS.op("MATCH")(match))
            .order_by(rank, documents.c.id)
        )
        hits: list[Hit] = []
        # Rows come best first; stop reading once ``limit`` verified hits are in.
        with conn.execute(statement) as result:
            for row in _verified(iter(result), query):
                hits.append(decode_hit(row.id, float(row.score), row.text, load_metadata(row.metadata)))
                if len(hits) == query.limit:
                    break
        return hits
    # No query token is visible to FTS5 (see fts.py): check every document.
    # The relevance is then the share of the document's tokens the query names.
    scored = [
        (len(query.tokens) / len(set(row.tokens.split())), row)
        for row in _verified(iter(conn.execute(statement)), query)
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1].id))
    return [decode_hit(row.id, score, row.text, load_metadata(row.metadata)) for score, row in scored[: query.limit]]


def _vector_search(
    conn: Connection, collection: str, query: SearchQuery, matrix: Matrix, probe: Unicode61Probe
) -> list[Hit]:
    """Documents with a vector, ranked by cosine similarity, ties by id."""
    assert query.vector is not None
    if query.filter is None and query.text is None:
        candidates = None  # every vector of the collection
    else:
        statement = select(documents.c.row_id, documents.c.tokens).where(
            *_conditions(collection, query), documents.c.vector.is_not(None)
        )
        match = _match(query, probe)
        if match is not None:
            statement = statement.join(documents_fts, documents_fts.c.rowid == documents.c.row_id).where(
                _FTS.op("MATCH")(match)
            )
        row_ids = [row.row_id for row in _verified(iter(conn.execute(statement)), query)]
        candidates = matrix.positions(row_ids)
    ranked = matrix.rank(query.vector, candidates, query.limit)
    details = _details(conn, [row_id for _, row_id, _ in ranked])
    return [decode_hit(document_id, score, *details[row_id]) for score, row_id, document_id in ranked]


def _details(conn: Connection, row_ids: Sequence[int]) -> dict[int, tuple[str, Any]]:
    details: dict[int, tuple[str, Any]] = {}
    for start in range(0, len(row_ids), _CHUNK):
        statement = select(documents.c.row_id, documents.c.text, documents.c.metadata).where(
            documents.c.row_id.in_(row_ids[start : start + _CHUNK])
        )
        for row in conn.execute(statement).all():
            details[row.row_id] = (row.text, load_metadata(row.metadata))
    return details


def _match(query: SearchQuery, probe: Unicode61Probe) -> str | None:
    """The MATCH expression for the query's tokens FTS5 can see, or None when it sees none."""
    if query.text is None:
        return None
    visible = [token for token in query.tokens if probe.indexed(token)]
    return match_expression(visible) if visible else None


def _verified(rows: Iterator[Row[*tuple[Any, ...]]], query: SearchQuery) -> Iterator[Row[*tuple[Any, ...]]]:
    """The rows whose tokens include every query token: the exact text semantics."""
    if query.text is None:
        yield from rows
        return
    for row in rows:
        # Tokens are alphanumeric, so whitespace only ever separates them.
        if query.tokens <= frozenset(row.tokens.split()):
            yield row


__all__ = ["live_matching", "search"]
