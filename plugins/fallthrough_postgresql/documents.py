"""Documents: the SQL behind upsert, delete, get and a repair's reads, and each collection's vector index.

All collections share ``fallthrough_documents``, which holds each id's
entry with the version the core stamped on the write that left it: a live
document, or a tombstone (NULL content) left by a delete. Writes are
conditional (an entry is replaced only by a write of an equal or greater
version), made in the statement that locks the row, never read first.
``fallthrough_collections`` holds each collection's vector dimension,
fixed by the first vector stored, and its row serializes the collection's
writers. With
pgvector, the moment a collection's dimension is fixed it gets its own
partial HNSW index, on ``embedding_vector::vector(<dimension>)`` (the
``vector`` copy of ``embedding``, see :data:`.schema.VECTOR_COLUMN`) for its
rows only (pgvector's recipe for vectors of several dimensions in one column), so a
collection is searched through its own index; up to
:data:`HNSW_MAX_DIMENSION` dimensions, beyond which it has none.

Metadata datetimes are stored as ``{"$dt": micros}`` (see :mod:`.metadata`).
The moment a metadata field first holds a datetime, in any collection, it
gets a GiST index on the span from its earliest to its latest datetime
(``int8range`` of the summary :mod:`.metadata` keeps), partial (rows where
the field holds a datetime), which serves that field's datetime ranges (see
:mod:`.filters`), and a statistics object on the same expression; up to
:data:`MAX_DATETIME_FIELDS` fields, beyond which a field's ranges scan.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection

from fallthrough.filters import Filter
from fallthrough.kit import check_dimensions, check_fixed_dimension, decode_document, dump_metadata, load_metadata
from fallthrough.types import Document, StoredDocument

from . import metadata as stored_metadata
from .connection import driver_connection
from .filters import compile_filter, datetime_expression, summary_expression
from .schema import (
    HNSW_MAX_DIMENSION,
    VECTOR_MAX_DIMENSION,
    ServerFeatures,
    hnsw_index_ddl,
    hnsw_index_name,
)
from .vectors import Float4Array

LIVE = "text IS NOT NULL"
"""The condition of a live document (not a tombstone), for every read that must not see tombstones."""

# The collection's row is locked by this upsert (ON CONFLICT DO UPDATE), so
# writers to one collection agree on its dimension; coalesce keeps the
# first dimension ever stored.
_FIX_DIMENSION = """
    INSERT INTO fallthrough_collections AS c (name, dimension) VALUES (%s, %s)
    ON CONFLICT (name) DO UPDATE SET dimension = coalesce(c.dimension, excluded.dimension)
    RETURNING dimension, vector_index, dropped
"""
# The conditional write: a document replaces the stored entry (live or a
# tombstone) only where that entry's version is not newer. The WHERE is
# checked against the row as locked by the upsert, so two writers of one id
# cannot both win: whichever runs second compares with the first's version.
_UPSERT = """
    INSERT INTO fallthrough_documents AS d
        (collection, id, version, text, tokens, embedding, metadata, metadata_jsonb)
    VALUES (%s, %s, %s, %s, %b, %b, %s::json, %s::jsonb)
    ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, text = excluded.text,
        tokens = excluded.tokens, embedding = excluded.embedding, metadata = excluded.metadata,
        metadata_jsonb = excluded.metadata_jsonb
    WHERE d.version <= excluded.version
"""
# A delete locks the collection's row first, as an upsert does (creating
# the row where the collection is new), so the writes of one collection run
# one after the other: a delete's two steps below lock rows in two passes,
# and would otherwise deadlock with an upsert of the same ids, which locks
# them in one pass.
_LOCK_COLLECTION = """
    INSERT INTO fallthrough_collections AS c (name) VALUES (%s)
    ON CONFLICT (name) DO UPDATE SET dimension = c.dimension
    RETURNING dropped
"""
# A drop locks the collection's row like every write of it (so no upsert or
# delete of the collection runs between its steps) and keeps the greater
# drop version (greatest() skips NULL).
_LOCK_FOR_DROP = """
    INSERT INTO fallthrough_collections AS c (name, dropped) VALUES (%(collection)s, %(version)s)
    ON CONFLICT (name) DO UPDATE SET dropped = greatest(c.dropped, excluded.dropped)
"""
_DROP = """
    WITH gone AS (
        DELETE FROM fallthrough_documents WHERE collection = %(collection)s AND version <= %(version)s
        RETURNING text IS NOT NULL AS live
    )
    SELECT coalesce(bool_or(live), false) FROM gone
"""
_DROPPED = "SELECT dropped FROM fallthrough_collections WHERE name = %s"
DIMENSION = "SELECT dimension FROM fallthrough_collections WHERE name = %s"
"""A collection's row and its dimension (no row: an unknown collection; NULL: no vector yet)."""
# A purge locks the collection's row like every write of it, so it never
# waits on a delete's row locks in another order. An unknown collection has
# no row, and nothing to purge.
_LOCK_FOR_PURGE = "SELECT 1 FROM fallthrough_collections WHERE name = %s FOR UPDATE"
# The outer WHERE repeats the conditions: in READ COMMITTED, a row that a
# write replaced after the subquery read it is checked again as it is now,
# and a live document (or a newer tombstone) is left alone.
_PURGE = f"""
    DELETE FROM fallthrough_documents
    WHERE collection = %(collection)s AND NOT ({LIVE}) AND version < %(before)s
      AND id IN (
        SELECT id FROM fallthrough_documents
        WHERE collection = %(collection)s AND NOT ({LIVE}) AND version < %(before)s
        LIMIT %(limit)s
      )
"""
# The collections with a live document: one probe of the primary key per collection row.
LIST_LIVE_COLLECTIONS = f"""
    SELECT c.name FROM fallthrough_collections c
    WHERE EXISTS (SELECT 1 FROM fallthrough_documents d WHERE d.collection = c.name AND d.{LIVE})
    ORDER BY c.name
"""
# A delete, first step: ids with no entry at all get a tombstone. DO NOTHING
# waits for a concurrent insert of the same id to commit or roll back, so
# every id not inserted here has a committed entry the second step sees.
_TOMBSTONE_ABSENT = """
    INSERT INTO fallthrough_documents (collection, id, version)
    SELECT %(collection)s, i.id, %(version)s FROM unnest(%(ids)s::text[]) AS i(id) ORDER BY i.id COLLATE "C"
    ON CONFLICT (collection, id) DO NOTHING
    RETURNING id
"""
# Second step: entries not newer than the delete become tombstones. The
# subquery locks them (FOR UPDATE, in id order) and, in READ COMMITTED,
# reads the version it locked, the latest, so "old.live" is what this UPDATE
# replaced (RETURNING cannot show the old row before PostgreSQL 18), even
# against a writer that does not lock the collection (SQL of one's own).
_TOMBSTONE_PRESENT = """
    UPDATE fallthrough_documents AS d
    SET version = %(version)s, text = NULL, tokens = NULL, embedding = NULL, metadata = NULL, metadata_jsonb = NULL
    FROM (
        SELECT id, text IS NOT NULL AS live FROM fallthrough_documents
        WHERE collection = %(collection)s AND id = ANY(%(ids)s::text[]) AND version <= %(version)s
        ORDER BY id FOR UPDATE
    ) AS old
    WHERE d.collection = %(collection)s AND d.id = old.id
    RETURNING old.live
"""

_DOCUMENT_COLUMNS = "id, text, embedding, metadata::text"
_ENTRY_COLUMNS = "id, version, text, embedding, metadata::text"
SCAN_FIRST = (
    f"SELECT {_ENTRY_COLUMNS} FROM fallthrough_documents WHERE collection = %(collection)s ORDER BY id LIMIT %(limit)s"
)
"""The first page of a collection's entries: the start of its range of the primary key."""
SCAN_AFTER = (
    f"SELECT {_ENTRY_COLUMNS} FROM fallthrough_documents WHERE collection = %(collection)s AND id > %(after)s "
    "ORDER BY id LIMIT %(limit)s"
)
"""A later page: the primary key read on from ``after``, whatever the page's position."""
# The distinct collections, one index probe each on the primary key (a "skip
# scan"): no scan of the documents, however many a collection holds.
LIST_COLLECTIONS = """
    WITH RECURSIVE names AS (
        (SELECT collection FROM fallthrough_documents ORDER BY collection LIMIT 1)
        UNION ALL
        SELECT (SELECT d.collection FROM fallthrough_documents d WHERE d.collection > names.collection
                ORDER BY d.collection LIMIT 1)
        FROM names WHERE names.collection IS NOT NULL
    )
    SELECT collection FROM names WHERE collection IS NOT NULL
"""

MAX_DATETIME_FIELDS = 32
"""At most this many metadata fields get a datetime index: each costs every document write a check of its predicate."""

DATETIME_INDEX_PREFIX = "fallthrough_dt_"
"""The name of every datetime index (and statistics object) starts with this, then a digest of its field."""


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
    return driver_connection(conn).cursor()


def _vectors_cursor(conn: Connection) -> psycopg.Cursor[Any]:
    """A cursor of binary results, for reads of ``embedding``: a vector loads as packed float32 bytes (see .vectors)."""
    return driver_connection(conn).cursor(binary=True)


index_name = hnsw_index_name


class DatetimeIndexes:
    """The fields known to have their datetime indexes (or to be past the limit), so that writes skip the lookup."""

    def __init__(self) -> None:
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def unknown(self, fields: Iterable[str]) -> list[str]:
        with self._lock:
            return sorted(set(fields) - self._known)

    def learn(self, fields: Iterable[str]) -> None:
        with self._lock:
            self._known.update(fields)


def datetime_index_name(field: str) -> str:
    """The GiST index (and statistics) of a field's datetime spans: a digest of the name (up to 256 characters)."""
    return DATETIME_INDEX_PREFIX + hashlib.blake2b(field.encode(), digest_size=12).hexdigest()


def _missing_datetime_indexes(cursor: psycopg.Cursor[Any], fields: Sequence[str]) -> list[str]:
    """Of ``fields``, those to index now: without an index, up to :data:`MAX_DATETIME_FIELDS` indexed in all."""
    names = [datetime_index_name(field) for field in fields]
    found = cursor.execute("SELECT to_regclass(name) IS NOT NULL FROM unnest(%s::text[]) AS n(name)", (names,))
    missing = [field for field, (exists,) in zip(fields, found.fetchall(), strict=True) if not exists]
    if not missing:
        return []
    row = cursor.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'fallthrough_documents' "
        "AND starts_with(indexname, %s)",
        (DATETIME_INDEX_PREFIX,),
    ).fetchone()
    assert row is not None
    return missing[: max(0, MAX_DATETIME_FIELDS - int(row[0]))]


def create_datetime_index(cursor: psycopg.Cursor[Any], field: str) -> None:
    """The GiST index that serves ``field``'s datetime ranges, and statistics to estimate them (see :mod:`.filters`).

    Partial (rows where the field holds a datetime), so documents without
    one cost it nothing. The planner takes no statistics from a partial
    index's expression, hence the statistics object (PostgreSQL 14+), which
    ANALYZE fills: without it, every range would be guessed at 1% of rows.
    """
    # Like the vector index: bounded work that must not roll the write back.
    cursor.execute("SET LOCAL statement_timeout = 0")
    name = datetime_index_name(field)
    span = datetime_expression("metadata_jsonb", field)
    cursor.execute(
        f"CREATE INDEX IF NOT EXISTS {name} ON fallthrough_documents USING gist ({span}) "
        f"WHERE {summary_expression('metadata_jsonb', field)} IS NOT NULL"
    )
    cursor.execute(f"CREATE STATISTICS IF NOT EXISTS {name} ON ({span}) FROM fallthrough_documents")


def upsert_documents(
    conn: Connection,
    collection: str,
    docs: Sequence[Document],
    version: int,
    features: ServerFeatures,
    datetime_indexes: DatetimeIndexes | None = None,
) -> list[str]:
    """Write ``docs``; returns the datetime fields whose indexes now exist (or never will: past the limit)."""
    cursor = _cursor(conn)
    wanted = check_dimensions(collection, None, docs)
    row = cursor.execute(_FIX_DIMENSION, (collection, wanted)).fetchone()
    assert row is not None
    dimension, vector_index, dropped = row
    # Checked before any document is written; the raise rolls the collection row back too.
    check_dimensions(collection, dimension, docs)
    if dropped is not None and version <= dropped:
        return []  # the collection was dropped after this write: it lost, like to a newer entry
    # Only a call that brings vectors builds the index: a dimension fixed alone (a repair's) and later
    # text-only writes would otherwise build it empty, and the vectors would then grow it row by row.
    will_index = wanted is not None and vector_index is None and features.vector_search and wanted <= HNSW_MAX_DIMENSION
    # Every (dotted) path that finds a datetime gets its index, as a top-level field does.
    datetime_fields = sorted({path for document in docs for path in stored_metadata.datetime_paths(document.metadata)})
    to_index: list[str] = []
    if datetime_indexes is not None:
        datetime_fields = datetime_indexes.unknown(datetime_fields)
    if datetime_fields:
        to_index = _missing_datetime_indexes(cursor, datetime_fields)
    if will_index or to_index:
        # CREATE INDEX below takes a SHARE lock on the table. Taken after this
        # call's own INSERT (ROW EXCLUSIVE), two calls indexing two new
        # collections at once would each wait for the other's insert: a
        # deadlock. Taking the stronger, self-exclusive lock before writing
        # makes them run one after the other.
        cursor.execute("LOCK TABLE fallthrough_documents IN SHARE ROW EXCLUSIVE MODE")
    rows = []
    # Written in id order (a stable sort keeps the call's order for equal
    # ids), so two upserts of overlapping ids lock them in the same order.
    for document in sorted(docs, key=lambda document: document.id):
        metadata = dump_metadata(document.metadata)
        for_filters = stored_metadata.dump_for_filters(document.metadata)
        tokens = stored_tokens(document.tokens)
        vector = None if document.vector is None else Float4Array.of(document.vector)
        rows.append((collection, document.id, version, document.text, tokens, vector, metadata, for_filters))
    if rows:
        cursor.executemany(_UPSERT, rows)
    # The index is built after the collection's first documents are in:
    # one bulk build is far faster than growing the graph row by row.
    if will_index:
        assert dimension is not None
        create_vector_index(cursor, collection, dimension)
    for field in to_index:
        create_datetime_index(cursor, field)
    # The caller learns them once this transaction commits (a rollback drops the new indexes).
    return datetime_fields


def create_vector_index(cursor: psycopg.Cursor[Any], collection: str, dimension: int) -> None:
    name = index_name(collection)
    # Building the graph of a big first upsert can outlast statement_timeout,
    # which would roll the whole upsert back; the build is bounded work.
    cursor.execute("SET LOCAL statement_timeout = 0")
    cursor.execute(hnsw_index_ddl(collection, dimension))
    cursor.execute("UPDATE fallthrough_collections SET vector_index = %s WHERE name = %s", (name, collection))


def delete_documents(conn: Connection, collection: str, ids: Sequence[str], version: int) -> int:
    """Leave a tombstone at ``version`` for every id whose entry is not newer; count the live ones it replaced."""
    if not ids:
        return 0
    cursor = _cursor(conn)
    locked = cursor.execute(_LOCK_COLLECTION, (collection,)).fetchone()
    if locked is not None and locked[0] is not None and version <= locked[0]:
        return 0  # the drop already stands for a newer tombstone of every id
    parameters: dict[str, Any] = {"collection": collection, "version": version, "ids": sorted(set(ids))}
    inserted = {row[0] for row in cursor.execute(_TOMBSTONE_ABSENT, parameters)}
    rest = [document_id for document_id in parameters["ids"] if document_id not in inserted]
    if not rest:
        return 0
    return sum(bool(row[0]) for row in cursor.execute(_TOMBSTONE_PRESENT, {**parameters, "ids": rest}))


def get_documents(conn: Connection, collection: str, ids: Sequence[str]) -> list[Document]:
    statement = (
        f"SELECT {_DOCUMENT_COLUMNS} FROM fallthrough_documents "
        f"WHERE collection = %s AND id = ANY(%s::text[]) AND {LIVE}"
    )
    found = {
        row[0]: document_from_row(row) for row in _vectors_cursor(conn).execute(statement, (collection, list(ids)))
    }
    return [found[document_id] for document_id in ids if document_id in found]


def list_collections(conn: Connection) -> list[str]:
    """Every collection with an entry, or dropped; COLLATE "C" orders by code point, as Python orders str."""
    names = {row[0] for row in _cursor(conn).execute(LIST_COLLECTIONS)}
    names.update(
        row[0] for row in _cursor(conn).execute("SELECT name FROM fallthrough_collections WHERE dropped IS NOT NULL")
    )
    return sorted(names)


def collection_dimension(conn: Connection, collection: str) -> int | None:
    """The collection's vector dimension; None for an unknown collection or one that never held a vector."""
    row = _cursor(conn).execute(DIMENSION, (collection,)).fetchone()
    return None if row is None else row[0]


def fix_collection_dimension(conn: Connection, collection: str, dimension: int) -> None:
    """Fix the dimension of a collection that has none (making an unknown one known); refuse another one.

    The HNSW index is left to the collection's first upsert of vectors, which
    builds it after writing them (see :func:`upsert_documents`).
    """
    row = _cursor(conn).execute(_FIX_DIMENSION, (collection, dimension)).fetchone()
    assert row is not None
    # The raise rolls the collection row's upsert back.
    check_fixed_dimension(collection, row[0], dimension)


def list_live_collections(conn: Connection) -> list[str]:
    return [row[0] for row in _cursor(conn).execute(LIST_LIVE_COLLECTIONS)]


def drop_collection(conn: Connection, collection: str, version: int) -> bool:
    """Remove every entry at or below ``version`` and remember the drop; whether a live document went.

    The HNSW and datetime indexes stay: the dimension is kept (see the hook spec).
    """
    cursor = _cursor(conn)
    parameters = {"collection": collection, "version": version}
    cursor.execute(_LOCK_FOR_DROP, parameters)
    row = cursor.execute(_DROP, parameters).fetchone()
    return bool(row is not None and row[0])


def purge_tombstones(conn: Connection, collection: str, before: int, limit: int) -> int:
    """Remove up to ``limit`` tombstones older than ``before``; how many went."""
    cursor = _cursor(conn)
    if cursor.execute(_LOCK_FOR_PURGE, (collection,)).fetchone() is None:
        return 0
    cursor.execute(_PURGE, {"collection": collection, "before": before, "limit": limit})
    return cursor.rowcount


def _dropped(cursor: psycopg.Cursor[Any], collection: str) -> int | None:
    row = cursor.execute(_DROPPED, (collection,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def count_documents(conn: Connection, collection: str, filter: Filter | None) -> int:
    where, parameters = _live_matching(collection, filter)
    row = _cursor(conn).execute(f"SELECT count(*) FROM fallthrough_documents WHERE {where}", parameters).fetchone()
    assert row is not None
    return int(row[0])


def list_documents(
    conn: Connection, collection: str, filter: Filter | None, after: str | None, limit: int
) -> list[Document]:
    """One page by id (COLLATE "C": code points) after ``after``: a keyset on the primary key, never OFFSET."""
    statement, parameters = list_documents_statement(collection, filter, after, limit)
    return [document_from_row(row) for row in _vectors_cursor(conn).execute(statement, parameters)]


def list_documents_statement(
    collection: str, filter: Filter | None, after: str | None, limit: int
) -> tuple[str, dict[str, Any]]:
    """The SQL of one page of :func:`list_documents`, and its parameters (also for the plan tests)."""
    where, parameters = _live_matching(collection, filter)
    if after is not None:
        where += " AND id > %(after)s"
        parameters["after"] = after
    parameters["limit"] = limit
    statement = f"SELECT {_DOCUMENT_COLUMNS} FROM fallthrough_documents WHERE {where} ORDER BY id LIMIT %(limit)s"
    return statement, parameters


def _live_matching(collection: str, filter: Filter | None) -> tuple[str, dict[str, Any]]:
    """The WHERE of a collection's live documents ``filter`` matches, with the search's filter compiler."""
    conditions = ["collection = %(collection)s", LIVE]
    parameters: dict[str, Any] = {"collection": collection}
    if filter is not None:
        condition, filter_parameters = compile_filter(filter, "metadata_jsonb")
        conditions.append(condition)
        parameters.update(filter_parameters)
    return " AND ".join(conditions), parameters


def scan_documents(conn: Connection, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
    """One page of entries in id order (code points): a keyset on the primary key, never OFFSET."""
    parameters = {"collection": collection, "after": after, "limit": limit}
    rows = _vectors_cursor(conn).execute(SCAN_FIRST if after is None else SCAN_AFTER, parameters)
    return [entry_from_row(row) for row in rows]


def document_versions(conn: Connection, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
    """The stored entries; in a dropped collection an id without one reads as a tombstone at the drop."""
    statement = f"SELECT {_ENTRY_COLUMNS} FROM fallthrough_documents WHERE collection = %s AND id = ANY(%s::text[])"
    cursor = _vectors_cursor(conn)
    found = {row[0]: entry_from_row(row) for row in cursor.execute(statement, (collection, list(ids)))}
    dropped = _dropped(cursor, collection)
    if dropped is not None:
        return [found.get(document_id) or StoredDocument(document_id, dropped, None) for document_id in ids]
    return [found[document_id] for document_id in ids if document_id in found]


def entry_from_row(row: Sequence[Any]) -> StoredDocument:
    """An (id, version, text, embedding, metadata) row: a tombstone where text is NULL."""
    document_id, version, text, embedding, metadata = row
    if text is None:
        return StoredDocument(document_id, int(version), None)
    return StoredDocument(document_id, int(version), document_from_row((document_id, text, embedding, metadata)))


def document_from_row(row: Sequence[Any]) -> Document:
    document_id, text, embedding, metadata = row
    return decode_document(document_id, text, embedding, load_metadata(metadata))


__all__ = [
    "DATETIME_INDEX_PREFIX",
    "MAX_DATETIME_FIELDS",
    "DatetimeIndexes",
    "DIMENSION",
    "HNSW_MAX_DIMENSION",
    "LIVE",
    "LIST_COLLECTIONS",
    "LIST_LIVE_COLLECTIONS",
    "LONG_TOKEN_BYTES",
    "SCAN_AFTER",
    "SCAN_FIRST",
    "VECTOR_MAX_DIMENSION",
    "create_datetime_index",
    "collection_dimension",
    "count_documents",
    "create_vector_index",
    "datetime_index_name",
    "delete_documents",
    "document_from_row",
    "document_versions",
    "drop_collection",
    "fix_collection_dimension",
    "entry_from_row",
    "get_documents",
    "index_name",
    "list_collections",
    "list_documents",
    "list_documents_statement",
    "list_live_collections",
    "scan_documents",
    "stored_tokens",
    "upsert_documents",
]
