"""Documents: the SQL behind upsert, delete, get, and the scans a repair reads.

One table holds the entries of every collection: one row per (collection,
id), a live document or a tombstone, each with the version (the core's
stamp) of the write that left it. The collections table holds each
collection's vector dimension, fixed by the first vector stored, and a
generation number that every write of live documents bumps (see
:mod:`.vectors`).

Every versioned write is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
stored.version <= new.version`` (or an ``UPDATE ... WHERE``), so the check
and the write are one statement: no read decides what is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, select, text, update
from sqlalchemy.dialects.sqlite import insert

from fallthrough.kit import (
    check_dimensions,
    check_fixed_dimension,
    chunked,
    decode_document,
    dump_metadata,
    load_metadata,
)
from fallthrough.text import tokenize
from fallthrough.types import Document, StoredDocument

from .schema import collection_drops, collections, documents
from .vectors import encode

_CHUNK = 500

# What a tombstone holds in the columns a live document fills: nothing any
# index or search can find (no tokens, no vector, an empty metadata object).
_TOMBSTONE = {"text": "", "tokens": "", "vector": None, "metadata": "{}", "tombstone": 1}

_LIVE = documents.c.tombstone == 0


def upsert_documents(conn: Connection, collection: str, docs: Sequence[Document], version: int) -> None:
    """Write each document unless its stored entry is newer than ``version``."""
    dimension = collection_dimension(conn, collection)
    # Checked before anything is written, and over every document, the ones
    # about to lose to a newer entry too, so a mismatch writes nothing and
    # never depends on the versions stored.
    new_dimension = check_dimensions(collection, dimension, docs)
    statement = insert(collections).values(name=collection, dimension=new_dimension, generation=1)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[collections.c.name],
            set_={
                # The first vector fixes the dimension; it never changes after.
                "dimension": func.coalesce(collections.c.dimension, statement.excluded.dimension),
                "generation": collections.c.generation + 1,
            },
        )
    )
    if not docs:
        return
    # After the dimension is fixed: a call that loses to a drop still fixes it, as one losing to newer entries does.
    if dropped_at(conn, collection) >= version:
        return  # the collection was dropped after this write: it lost, like to a newer entry
    rows = [
        {
            "collection": collection,
            "id": document.id,
            "text": document.text,
            "tokens": " ".join(tokenize(document.text)),
            "vector": encode(document.vector),
            "metadata": dump_metadata(document.metadata),
            "version": version,
            "tombstone": 0,
        }
        for document in docs
    ]
    upsert = insert(documents)
    # ON CONFLICT DO UPDATE keeps the row_id and fires the FTS update
    # trigger; INSERT OR REPLACE would do neither. The WHERE makes it the
    # conditional write: an entry stamped later than this call stays.
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[documents.c.collection, documents.c.id],
            set_={
                name: upsert.excluded[name] for name in ("text", "tokens", "vector", "metadata", "version", "tombstone")
            },
            where=documents.c.version <= upsert.excluded.version,
        ),
        rows,
    )


def delete_documents(conn: Connection, collection: str, ids: Sequence[str], version: int) -> int:
    """Leave a tombstone at ``version`` for each id not stored newer; count the live documents it replaced.

    Two conditional writes per chunk, no read: an UPDATE turns the live
    documents that are not newer into tombstones (its row count is the
    answer), then an upsert writes tombstones for the ids with no entry
    and moves older tombstones up to ``version``.
    """
    turned = 0
    if dropped_at(conn, collection) >= version:
        return 0  # the drop already left a newer tombstone for every id
    for chunk in chunked(ids, _CHUNK):
        turned += conn.execute(
            update(documents)
            .where(
                documents.c.collection == collection,
                documents.c.id.in_(chunk),
                _LIVE,
                documents.c.version <= version,
            )
            .values(version=version, **_TOMBSTONE)
        ).rowcount
        upsert = insert(documents)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[documents.c.collection, documents.c.id],
                set_={"version": upsert.excluded.version},
                # Only tombstones are left at or below the version now.
                where=(documents.c.tombstone == 1) & (documents.c.version < upsert.excluded.version),
            ),
            [{"collection": collection, "id": document_id, "version": version, **_TOMBSTONE} for document_id in chunk],
        )
    if turned:
        bump_generation(conn, collection)
    return turned


def dropped_at(conn: Connection, collection: str) -> int:
    """The version of the collection's latest drop, or -1 when it was never dropped.

    Read in the write's own ``BEGIN IMMEDIATE`` transaction, so no drop can
    come between this read and the write it decides.
    """
    found = conn.execute(
        select(collection_drops.c.version).where(collection_drops.c.name == collection)
    ).scalar_one_or_none()
    return -1 if found is None else int(found)


def drop_collection(conn: Connection, collection: str, version: int) -> bool:
    """Remove every entry at or below ``version`` and remember the drop; whether a live document went.

    Entries newer than the drop stay (in replay order they were written
    before it arrived). The FTS and datetime triggers follow the DELETE.
    The collection's dimension stays (see the hook spec).
    """
    older = (documents.c.collection == collection) & (documents.c.version <= version)
    removed = conn.execute(select(func.count()).where(older, _LIVE)).scalar_one() > 0
    conn.execute(documents.delete().where(older))
    statement = insert(collection_drops).values(name=collection, version=version)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[collection_drops.c.name],
            set_={"version": func.max(collection_drops.c.version, statement.excluded.version)},
        )
    )
    bump_generation(conn, collection)
    return bool(removed)


def purge_tombstones(conn: Connection, collection: str, before: int, limit: int) -> int:
    """Remove up to ``limit`` tombstones older than ``before``; how many went.

    The statement that picks them deletes them, in the write's own
    transaction, so a tombstone a newer write replaced is never touched.
    Tombstones have no tokens and no datetimes: the FTS and datetime
    triggers find nothing to follow.
    """
    old = (
        select(documents.c.row_id)
        .where(documents.c.collection == collection, documents.c.tombstone == 1, documents.c.version < before)
        .limit(limit)
    )
    return int(conn.execute(documents.delete().where(documents.c.row_id.in_(old.scalar_subquery()))).rowcount)


def count_documents(conn: Connection, conditions: Sequence[Any]) -> int:
    """How many rows ``conditions`` (a collection's live documents, maybe filtered) select."""
    return int(conn.execute(select(func.count()).select_from(documents).where(*conditions)).scalar_one())


def list_documents(conn: Connection, conditions: Sequence[Any], after: str | None, limit: int) -> list[Document]:
    """One page by id (BINARY: code points) after ``after``: a keyset on the (collection, id) index."""
    query = select(documents.c.id, documents.c.text, documents.c.vector, documents.c.metadata).where(*conditions)
    if after is not None:
        query = query.where(documents.c.id > after)
    query = query.order_by(documents.c.id).limit(limit)
    return [document_from_row(row) for row in conn.execute(query).all()]


def list_live_collections(conn: Connection) -> list[str]:
    """The collections with a live document, in code point order: one indexed probe per collection."""
    live = select(documents.c.id).where(documents.c.collection == collections.c.name, _LIVE).exists()
    return list(conn.execute(select(collections.c.name).where(live).order_by(collections.c.name)).scalars())


def collection_dimension(conn: Connection, collection: str) -> int | None:
    """The collection's vector dimension; None for an unknown collection or one that never held a vector."""
    dimension: int | None = conn.execute(
        select(collections.c.dimension).where(collections.c.name == collection)
    ).scalar_one_or_none()
    return dimension


def fix_collection_dimension(conn: Connection, collection: str, dimension: int) -> None:
    """Fix the dimension of a collection that has none (making an unknown one known); refuse another one."""
    check_fixed_dimension(collection, collection_dimension(conn, collection), dimension)
    # No document changes, so the generation (the search matrix's) stays.
    statement = insert(collections).values(name=collection, dimension=dimension, generation=1)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[collections.c.name],
            set_={"dimension": func.coalesce(collections.c.dimension, statement.excluded.dimension)},
        )
    )


def bump_generation(conn: Connection, collection: str) -> None:
    conn.execute(
        collections.update().where(collections.c.name == collection).values(generation=collections.c.generation + 1)
    )


def get_documents(conn: Connection, collection: str, ids: Sequence[str]) -> list[Document]:
    found: dict[str, Document] = {}
    for chunk in chunked(ids, _CHUNK):
        query = select(documents.c.id, documents.c.text, documents.c.vector, documents.c.metadata).where(
            documents.c.collection == collection, documents.c.id.in_(chunk), _LIVE
        )
        for row in conn.execute(query).all():
            found[row.id] = document_from_row(row)
    return [found[document_id] for document_id in ids if document_id in found]


# A loose index scan: each step seeks the (collection, id) index to the next
# collection name, so listing costs one seek per collection, not one step
# per entry as SELECT DISTINCT (a full scan of the index) would.
_LIST_COLLECTIONS = text(
    """
    WITH RECURSIVE names(name) AS (
        SELECT min(collection) FROM documents
        UNION ALL
        SELECT (SELECT min(collection) FROM documents WHERE collection > names.name)
        FROM names WHERE names.name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
    """
)


def list_collections(conn: Connection) -> list[str]:
    """Every collection with an entry or a drop, in code point order.

    SQLite's BINARY collation compares the UTF-8 bytes, and UTF-8 byte order
    is code point order, which is Python's ``str`` order.
    """
    names = set(conn.execute(_LIST_COLLECTIONS).scalars())
    names.update(conn.execute(select(collection_drops.c.name)).scalars())
    return sorted(names)


_ENTRY_COLUMNS = (
    documents.c.id,
    documents.c.version,
    documents.c.tombstone,
    documents.c.text,
    documents.c.vector,
    documents.c.metadata,
)


def scan_documents(conn: Connection, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
    """One page of entries in id (code point) order: a keyset on the (collection, id) index, never OFFSET."""
    query = select(*_ENTRY_COLUMNS).where(documents.c.collection == collection)
    if after is not None:
        query = query.where(documents.c.id > after)
    query = query.order_by(documents.c.id).limit(limit)
    return [_entry(row) for row in conn.execute(query).all()]


def document_versions(conn: Connection, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
    """The stored entries; in a dropped collection an id without one reads as a tombstone at the drop."""
    found: dict[str, StoredDocument] = {}
    for chunk in chunked(ids, _CHUNK):
        query = select(*_ENTRY_COLUMNS).where(documents.c.collection == collection, documents.c.id.in_(chunk))
        for row in conn.execute(query).all():
            found[row.id] = _entry(row)
    dropped = dropped_at(conn, collection)
    if dropped >= 0:
        return [found.get(document_id) or StoredDocument(document_id, dropped, None) for document_id in ids]
    return [found[document_id] for document_id in ids if document_id in found]


def document_from_row(row: Row[*tuple[Any, ...]]) -> Document:
    return decode_document(row.id, row.text, row.vector, load_metadata(row.metadata))


def _entry(row: Row[*tuple[Any, ...]]) -> StoredDocument:
    return StoredDocument(row.id, row.version, None if row.tombstone else document_from_row(row))


__all__ = [
    "collection_dimension",
    "count_documents",
    "delete_documents",
    "drop_collection",
    "fix_collection_dimension",
    "list_documents",
    "list_live_collections",
    "document_from_row",
    "document_versions",
    "get_documents",
    "list_collections",
    "scan_documents",
    "upsert_documents",
]
