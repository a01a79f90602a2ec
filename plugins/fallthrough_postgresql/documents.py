"""Documents: the SQL behind upsert, delete and get, and each collection's vector index.

All collections share ``fallthrough_documents``; ``fallthrough_collections``
holds each one's vector dimension, fixed by the first vector stored. With
pgvector, the moment a collection's dimension is fixed it gets its own
partial HNSW index, on ``embedding::vector(<dimension>)`` for its rows only
(pgvector's recipe for vectors of several dimensions in one column), so a
collection is searched through its own index; up to
:data:`HNSW_MAX_DIMENSION` dimensions, beyond which it has none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection

from fallthrough.errors import InvalidInput
from fallthrough.types import Document

from . import json_text, vectors
from .connection import driver_connection
from .schema import ServerFeatures
from .vectors import Float4Array

# The collection's row is locked by this upsert (ON CONFLICT DO UPDATE), so
# writers to one collection agree on its dimension; coalesce keeps the
# first dimension ever stored.
_FIX_DIMENSION = """
    INSERT INTO fallthrough_collections AS c (name, dimension) VALUES (%s, %s)
    ON CONFLICT (name) DO UPDATE SET dimension = coalesce(c.dimension, excluded.dimension)
    RETURNING dimension, vector_index
"""
_UPSERT = """
    INSERT INTO fallthrough_documents (collection, id, text, tokens, embedding, metadata, metadata_jsonb)
    VALUES (%s, %s, %s, %b, %b, %s::json, %s::jsonb)
    ON CONFLICT (collection, id) DO UPDATE SET text = excluded.text, tokens = excluded.tokens,
        embedding = excluded.embedding, metadata = excluded.metadata, metadata_jsonb = excluded.metadata_jsonb
"""
_DOCUMENT_COLUMNS = "id, text, embedding, metadata::text"

HNSW_MAX_DIMENSION = 2000
"""pgvector's limit for an HNSW index on ``vector``; a collection of longer vectors is searched exactly."""

VECTOR_MAX_DIMENSION = 16_000
"""pgvector's limit for the ``vector`` type; longer vectors (the core allows 65,536) are compared as ``real[]``."""


LONG_TOKEN_BYTES = 256
"""A token longer than this (in UTF-8) is stored and queried as its digest (see :func:`stored_tokens`)."""


def stored_tokens(tokens: Iterable[str]) -> list[str]:
    """Tokens as the ``tokens`` column holds them: sorted, long ones replaced by a digest.

    A GIN index entry holds at most about 2.7 kB, so a document with one long
    run of letters (a hash, a sequence) could not be stored. A digest keeps
    containment exact; it starts with ``#``, which no token holds.
    """
    return sorted(
        token
        if len(token.encode()) <= LONG_TOKEN_BYTES
        else "#" + hashlib.blake2b(token.encode(), digest_size=20).hexdigest()
        for token in tokens
    )


def _cursor(conn: Connection) -> psycopg.Cursor[Any]:
    cursor = driver_connection(conn).cursor()
    vectors.register(cursor)
    return cursor


def index_name(collection: str) -> str:
    """The HNSW index of a collection: a digest of its name, which may be 63 characters and hold '-'."""
    return "fallthrough_hnsw_" + hashlib.blake2b(collection.encode(), digest_size=12).hexdigest()


def literal(value: str) -> str:
    """A SQL string literal; collection names are ASCII letters, digits, '_' and '-' only."""
    return "'" + value.replace("'", "''") + "'"


def upsert_documents(conn: Connection, collection: str, docs: Sequence[Document], features: ServerFeatures) -> None:
    cursor = _cursor(conn)
    dimensions = {len(document.vector) for document in docs if document.vector is not None}
    if len(dimensions) > 1:
        raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
    wanted = next(iter(dimensions), None)
    row = cursor.execute(_FIX_DIMENSION, (collection, wanted)).fetchone()
    assert row is not None
    dimension, vector_index = row
    # Checked before any document is written; the raise rolls the collection row back too.
    if wanted is not None and dimension != wanted:
        raise InvalidInput(f"collection {collection!r} holds vectors of dimension {dimension}, got {wanted}")
    will_index = (
        dimension is not None and vector_index is None and features.vector_search and dimension <= HNSW_MAX_DIMENSION
    )
    if will_index:
        # CREATE INDEX below takes a SHARE lock on the table. Taken after this
        # call's own INSERT (ROW EXCLUSIVE), two calls indexing two new
        # collections at once would each wait for the other's insert: a
        # deadlock. Taking the stronger, self-exclusive lock before writing
        # makes them run one after the other.
        cursor.execute("LOCK TABLE fallthrough_documents IN SHARE ROW EXCLUSIVE MODE")
    rows = []
    for document in docs:
        metadata = json_text.dump(document.metadata)
        tokens = stored_tokens(document.tokens)
        vector = None if document.vector is None else Float4Array.of(document.vector)
        rows.append((collection, document.id, document.text, tokens, vector, metadata, metadata))
    if rows:
        cursor.executemany(_UPSERT, rows)
    # The index is built after the collection's first documents are in:
    # one bulk build is far faster than growing the graph row by row.
    if will_index:
        assert dimension is not None
        create_vector_index(cursor, collection, dimension)


def create_vector_index(cursor: psycopg.Cursor[Any], collection: str, dimension: int) -> None:
    name = index_name(collection)
    # Building the graph of a big first upsert can outlast statement_timeout,
    # which would roll the whole upsert back; the build is bounded work.
    cursor.execute("SET LOCAL statement_timeout = 0")
    cursor.execute(
        f"CREATE INDEX IF NOT EXISTS {name} ON fallthrough_documents "
        f"USING hnsw ((embedding::vector({int(dimension)})) vector_cosine_ops) "
        f"WHERE collection = {literal(collection)} AND embedding IS NOT NULL"
    )
    cursor.execute("UPDATE fallthrough_collections SET vector_index = %s WHERE name = %s", (name, collection))


def delete_documents(conn: Connection, collection: str, ids: Sequence[str]) -> int:
    statement = "DELETE FROM fallthrough_documents WHERE collection = %s AND id = ANY(%s::text[])"
    return _cursor(conn).execute(statement, (collection, list(ids))).rowcount


def get_documents(conn: Connection, collection: str, ids: Sequence[str]) -> list[Document]:
    statement = f"SELECT {_DOCUMENT_COLUMNS} FROM fallthrough_documents WHERE collection = %s AND id = ANY(%s::text[])"
    found = {row[0]: document_from_row(row) for row in _cursor(conn).execute(statement, (collection, list(ids)))}
    return [found[document_id] for document_id in ids if document_id in found]


def document_from_row(row: Sequence[Any]) -> Document:
    document_id, text, embedding, metadata = row
    loaded = json_text.load(metadata)
    assert isinstance(loaded, dict)
    return Document(id=document_id, text=text, vector=embedding, metadata=loaded)


__all__ = [
    "HNSW_MAX_DIMENSION",
    "LONG_TOKEN_BYTES",
    "VECTOR_MAX_DIMENSION",
    "create_vector_index",
    "delete_documents",
    "document_from_row",
    "get_documents",
    "index_name",
    "stored_tokens",
    "upsert_documents",
]
