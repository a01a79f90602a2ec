"""Documents: the SQL behind upsert, delete and get.

One table holds the documents of every collection; the collections table
holds each collection's vector dimension, fixed by the first vector stored,
and a generation number that every write bumps (see :mod:`.vectors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, select
from sqlalchemy.dialects.sqlite import insert

from fallthrough.errors import InvalidInput
from fallthrough.text import tokenize
from fallthrough.types import Document

from . import json_text
from .schema import collections, documents
from .vectors import decode, encode

_CHUNK = 500


def upsert_documents(conn: Connection, collection: str, docs: Sequence[Document]) -> None:
    dimension = conn.execute(
        select(collections.c.dimension).where(collections.c.name == collection)
    ).scalar_one_or_none()
    dimensions = {len(document.vector) for document in docs if document.vector is not None}
    # Checked before anything is written, so a mismatch writes nothing.
    if len(dimensions) > 1:
        raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
    if dimensions and dimension is not None and dimensions != {dimension}:
        raise InvalidInput(
            f"collection {collection!r} holds vectors of dimension {dimension}, got {sorted(dimensions)}"
        )
    new_dimension = next(iter(dimensions), None)
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
    rows = [
        {
            "collection": collection,
            "id": document.id,
            "text": document.text,
            "tokens": " ".join(tokenize(document.text)),
            "vector": encode(document.vector),
            "metadata": json_text.dump(document.metadata),
        }
        for document in docs
    ]
    upsert = insert(documents)
    # ON CONFLICT DO UPDATE keeps the row_id and fires the FTS update
    # trigger; INSERT OR REPLACE would do neither.
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[documents.c.collection, documents.c.id],
            set_={name: upsert.excluded[name] for name in ("text", "tokens", "vector", "metadata")},
        ),
        rows,
    )


def delete_documents(conn: Connection, collection: str, ids: Sequence[str]) -> int:
    deleted = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        statement = delete(documents).where(documents.c.collection == collection, documents.c.id.in_(chunk))
        deleted += conn.execute(statement).rowcount
    if deleted:
        bump_generation(conn, collection)
    return deleted


def bump_generation(conn: Connection, collection: str) -> None:
    conn.execute(
        collections.update().where(collections.c.name == collection).values(generation=collections.c.generation + 1)
    )


def get_documents(conn: Connection, collection: str, ids: Sequence[str]) -> list[Document]:
    found: dict[str, Document] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(documents.c.id, documents.c.text, documents.c.vector, documents.c.metadata).where(
            documents.c.collection == collection, documents.c.id.in_(chunk)
        )
        for row in conn.execute(query):
            found[row.id] = document_from_row(row)
    return [found[document_id] for document_id in ids if document_id in found]


def document_from_row(row: Row[*tuple[Any, ...]]) -> Document:
    return Document(id=row.id, text=row.text, vector=decode(row.vector), metadata=json_text.load(row.metadata))


__all__ = ["delete_documents", "document_from_row", "get_documents", "upsert_documents"]
