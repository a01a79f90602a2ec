"""Documents as points: the payload layout, and upsert, delete and get.

A document point's id is :func:`~.schema.document_point_id` of the document
id, and its payload::

    id, text, tokens, token_count, metadata (JSON text), vector (base64 float32 or null),
    s, n, b (the metadata split by type, see filters.py)

A document with a vector lives in ``<prefix>vecs_<name>``, one without in
``<prefix>docs_<name>`` (see schema.py). The vector is kept in the payload
too: Qdrant normalises vectors stored under cosine, and a document must come
back exactly as it was written.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from fallthrough.errors import InvalidInput
from fallthrough.text import tokenize
from fallthrough.types import Document

from .filters import typed_fields
from .schema import DOCUMENT_INDEXES, CollectionNames, document_point_id, ensure_collection, vector_dimension

_CHUNK = 1_000


class Documents:
    """The document hooks over one client; remembers each collection's dimension once fixed."""

    def __init__(self, names: CollectionNames) -> None:
        self.names = names
        self._dimensions: dict[str, int] = {}
        # Qdrant collections known to exist with their indexes; fallthrough never drops one.
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def exists(self, client: QdrantClient, name: str) -> bool:
        """Whether the Qdrant collection ``name`` exists; a yes is remembered, a no asked again."""
        with self._lock:
            if name in self._ready:
                return True
        return client.collection_exists(name)

    def _ensure(
        self, client: QdrantClient, name: str, vectors: models.VectorParams | dict[str, models.VectorParams]
    ) -> None:
        with self._lock:
            if name in self._ready:
                return
        ensure_collection(client, name, vectors, DOCUMENT_INDEXES)
        with self._lock:
            self._ready.add(name)

    def dimension(self, client: QdrantClient, collection: str) -> int | None:
        """The collection's vector dimension, or None while it has had no vector."""
        with self._lock:
            known = self._dimensions.get(collection)
        if known is not None:
            return known
        found = vector_dimension(client, self.names.vector_documents(collection))
        if found is not None:
            # A collection's dimension never changes once set, so it can be kept.
            with self._lock:
                self._dimensions[collection] = found
        return found

    def forget(self) -> None:
        """Drop what is remembered: a closed in-memory store is gone, and a reopened one may be another."""
        with self._lock:
            self._dimensions.clear()
            self._ready.clear()

    def upsert(self, client: QdrantClient, collection: str, documents: Sequence[Document]) -> None:
        with_vector = [document for document in documents if document.vector is not None]
        without_vector = [document for document in documents if document.vector is None]
        dimensions = {len(document.vector) for document in with_vector if document.vector is not None}
        fixed = self.dimension(client, collection) if with_vector else None
        if len(dimensions | ({fixed} if fixed is not None else set())) > 1:
            raise InvalidInput(
                f"collection {collection!r} takes one vector dimension ({fixed or 'not fixed yet'}), "
                f"got {sorted(dimensions)}"
            )
        # Everything is checked; from here on the call writes.
        plain, vectors = self.names.plain_documents(collection), self.names.vector_documents(collection)
        if with_vector:
            if fixed is None:
                (size,) = dimensions
                self._ensure(client, vectors, models.VectorParams(size=size, distance=models.Distance.COSINE))
            _upsert(client, vectors, with_vector)
            # A document that had no vector before moves; drop its old point.
            if self.exists(client, plain):
                _delete(client, plain, [document.id for document in with_vector])
        if without_vector:
            self._ensure(client, plain, {})
            _upsert(client, plain, without_vector)
            if self.exists(client, vectors):
                _delete(client, vectors, [document.id for document in without_vector])

    def delete(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> int:
        deleted = 0
        for name in (self.names.plain_documents(collection), self.names.vector_documents(collection)):
            if not self.exists(client, name):
                continue
            found = [str(point.id) for point in _retrieve(client, name, ids, with_payload=False)]
            if found:
                client.delete(name, models.PointIdsList(points=found))  # type: ignore[arg-type]
                deleted += len(found)
        return deleted

    def get(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> list[Document]:
        found: dict[str, Document] = {}
        for name in (self.names.plain_documents(collection), self.names.vector_documents(collection)):
            if not self.exists(client, name):
                continue
            for point in _retrieve(client, name, ids, with_payload=True):
                document = decode(point.payload or {})
                found[document.id] = document
        return [found[document_id] for document_id in ids if document_id in found]


def encode(document: Document) -> dict[str, Any]:
    tokens = sorted(set(tokenize(document.text)))
    vector = None
    if document.vector is not None:
        vector = base64.b64encode(np.asarray(document.vector, dtype="<f4").tobytes()).decode("ascii")
    return {
        "id": document.id,
        "text": document.text,
        "tokens": tokens,
        "token_count": len(tokens),
        "metadata": json.dumps(document.metadata, ensure_ascii=False, separators=(",", ":")),
        "vector": vector,
        **typed_fields(document.metadata),
    }


def decode(payload: Mapping[str, Any]) -> Document:
    vector = None
    if payload.get("vector") is not None:
        vector = tuple(float(x) for x in np.frombuffer(base64.b64decode(payload["vector"]), dtype="<f4"))
    return Document(payload["id"], payload["text"], vector, json.loads(payload["metadata"]))


def decode_metadata(payload: Mapping[str, Any]) -> Any:
    return json.loads(payload["metadata"])


def _upsert(client: QdrantClient, collection: str, documents: Sequence[Document]) -> None:
    points = [
        models.PointStruct(
            id=document_point_id(document.id),
            vector=list(document.vector) if document.vector is not None else {},
            payload=encode(document),
        )
        for document in documents
    ]
    for start in range(0, len(points), _CHUNK):
        client.upsert(collection, points[start : start + _CHUNK])


def _delete(client: QdrantClient, collection: str, ids: Sequence[str]) -> None:
    if ids:
        client.delete(collection, models.PointIdsList(points=[document_point_id(i) for i in ids]))


def _retrieve(
    client: QdrantClient, collection: str, ids: Sequence[str], with_payload: bool | list[str]
) -> Iterable[models.Record]:
    if not ids:
        return []
    found: list[models.Record] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = [document_point_id(i) for i in ids[start : start + _CHUNK]]
        found.extend(client.retrieve(collection, chunk, with_payload=with_payload))
    return found


__all__ = ["Documents", "decode", "decode_metadata", "encode"]
