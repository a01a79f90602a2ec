"""Documents: one point each in the collection's shard.

The payload keeps what the engine cannot give back as it was given: the
text, the metadata under ``meta`` (for filters) and as JSON text (exact),
the tokens of :func:`fallthrough.text.tokenize` (a keyword array, for text
search), and the vector itself as float32 bytes.
The engine stores cosine vectors normalised, and normalises in float32,
which leaves a very short vector unnormalised; so the dense vector handed to
it is normalised here, in float64.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from fallthrough.errors import InvalidInput
from fallthrough.text import tokenize
from fallthrough.types import Document
from qdrant_edge import Point, UpdateOperation

from .connection import Collection, Shards
from .filters import META, META_JSON
from .schema import DENSE_VECTOR, KIND, KIND_DOCUMENT, document_point_id

if TYPE_CHECKING:
    from qdrant_edge import PointId

_CHUNK = 1000


def unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(component * component for component in vector))
    return [component / norm for component in vector]


def _encode(vector: tuple[float, ...] | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    return tuple(float(component) for component in np.frombuffer(base64.b64decode(text), dtype="<f4"))


def document_from_payload(payload: Mapping[str, Any]) -> Document:
    return Document(
        id=payload["id"], text=payload["text"], vector=_decode(payload["vector"]), metadata=metadata(payload)
    )


def metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The document's metadata exactly as written."""
    loaded: dict[str, Any] = json.loads(payload[META_JSON])
    return loaded


def check_dimensions(collection: str, stored: int | None, documents: Sequence[Document]) -> int | None:
    """The one dimension of the call's vectors, after checking it against the collection's."""
    dimensions = {len(document.vector) for document in documents if document.vector is not None}
    if len(dimensions) > 1:
        raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
    if dimensions and stored is not None and dimensions != {stored}:
        raise InvalidInput(f"collection {collection!r} holds vectors of dimension {stored}, got {sorted(dimensions)}")
    return next(iter(dimensions), None)


def upsert_documents(shards: Shards, collection: Collection, documents: Sequence[Document]) -> None:
    """Write documents whose dimension :func:`check_dimensions` accepted."""
    dimension = next((len(document.vector) for document in documents if document.vector is not None), None)
    if dimension is not None and collection.dimension is None:
        shards.fix_dimension(collection, dimension)
    points = [
        Point(
            document_point_id(document.id),
            {} if document.vector is None else {DENSE_VECTOR: unit(document.vector)},
            {
                KIND: KIND_DOCUMENT,
                "id": document.id,
                "text": document.text,
                "tokens": sorted(set(tokenize(document.text))),
                "vector": _encode(document.vector),
                META: document.metadata,
                # The engine's float parsing is not exact (see filters.py); this text is.
                META_JSON: json.dumps(document.metadata, ensure_ascii=False, separators=(",", ":")),
            },
        )
        for document in documents
    ]
    for start in range(0, len(points), _CHUNK):
        collection.shard.update(UpdateOperation.upsert_points(points[start : start + _CHUNK]))
    collection.unoptimized_writes += len(points)


def delete_documents(collection: Collection, ids: Sequence[str]) -> int:
    point_ids: list[PointId] = [document_point_id(document_id) for document_id in ids]
    deleted = 0
    for start in range(0, len(point_ids), _CHUNK):
        chunk = point_ids[start : start + _CHUNK]
        present = [point.id for point in collection.shard.retrieve(chunk, False, False)]
        if present:
            collection.shard.update(UpdateOperation.delete_points(present))
            deleted += len(present)
    return deleted


def get_documents(collection: Collection, ids: Sequence[str]) -> list[Document]:
    found: dict[str, Document] = {}
    point_ids: list[PointId] = [document_point_id(document_id) for document_id in ids]
    for start in range(0, len(point_ids), _CHUNK):
        for point in collection.shard.retrieve(point_ids[start : start + _CHUNK], True, False):
            if point.payload:
                document = document_from_payload(point.payload)
                found[document.id] = document
    return [found[document_id] for document_id in ids if document_id in found]


__all__ = [
    "check_dimensions",
    "delete_documents",
    "document_from_payload",
    "get_documents",
    "metadata",
    "unit",
    "upsert_documents",
]
