"""Documents: one point each in the collection's shard, live or a tombstone.

The payload keeps what the engine cannot give back as it was given: the
text, the metadata under ``meta`` and ``meta_dt`` (for filters, see
:func:`.filters.filter_views`) and as JSON text (exact), its layout (``meta_layout``),
the tokens of :func:`fallthrough.text.tokenize` (a keyword array, for text
search), and the vector itself as float32 bytes.
The engine stores cosine vectors normalised, and normalises in float32,
which leaves a very short vector unnormalised; so the dense vector handed to
it is normalised here, in float64.

Every entry carries the version of the write that left it (see
``fallthrough_upsert_documents``). A delete leaves a tombstone: kind
``tombstone``, the id and version, no vector and no text, so that an older
write replayed later cannot bring the document back. Reads of documents
select kind ``document``; only the scans a repair makes see tombstones.

A write of a datetime to a field (a plain identifier, see :mod:`.filters`)
first gives ``meta_dt.<field>`` a datetime payload index, if the shard has
none, so a datetime range or equality is served by the index; a datetime
under a dotted path gives its ``meta_ndt.k<hex>`` key one likewise.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from fallthrough.filters import Filter as FallthroughFilter
from fallthrough.filters import matches
from fallthrough.kit import decode_document, dump_metadata, float32_vector, from_rfc3339, load_metadata, rfc3339
from fallthrough.text import tokenize
from fallthrough.types import Document, MetadataValue, StoredDocument
from qdrant_edge import (
    CountRequest,
    FieldCondition,
    Filter,
    IsEmptyCondition,
    MatchAny,
    MatchValue,
    PayloadSchemaType,
    PayloadSelector,
    Point,
    RangeFloat,
    ScrollRequest,
    UpdateOperation,
)

from .connection import Collection, Database
from .filters import (
    LAYOUT,
    META,
    META_DT,
    META_JSON,
    META_LAYOUT,
    compile_filter,
    datetime_paths,
    filter_views,
    nested_views,
)
from .schema import (
    DENSE_VECTOR,
    DROP_POINT_ID,
    KIND,
    KIND_DOCUMENT,
    KIND_DROP,
    KIND_TOMBSTONE,
    document_point_id,
    split_version,
)

if TYPE_CHECKING:
    from qdrant_edge import ConditionType, NamedVector, PointId

# Payload keys of an entry's version: whole, and in halves for the engine's conditions (see schema.py).
VERSION = "version"
VERSION_HIGH = "version_high"
VERSION_LOW = "version_low"

_CHUNK = 1000


def unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(component * component for component in vector))
    return [component / norm for component in vector]


def _encode(vector: tuple[float, ...] | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str | None) -> tuple[float, ...] | None:
    """A payload's float32 vector text as the vector written; None for none."""
    return None if text is None else float32_vector(base64.b64decode(text))


def document_from_payload(payload: Mapping[str, Any]) -> Document:
    text = payload["vector"]
    vector = None if text is None else base64.b64decode(text)
    return decode_document(payload["id"], payload["text"], vector, metadata(payload))


def metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The document's metadata exactly as written."""
    loaded: dict[str, Any] = load_metadata(payload[META_JSON], from_rfc3339)
    return loaded


def _versioned(document_id: str, version: int) -> dict[str, Any]:
    high, low = split_version(version)
    return {"id": document_id, VERSION: version, VERSION_HIGH: high, VERSION_LOW: low}


def _stored_version_at_most(version: int) -> Filter:
    """Holds where the stored version is <= ``version``; a point without one (written before versions) is 0.

    The engine checks it against each target point's own payload, and
    inserts a point that is not there, which is what a versioned write wants:
    an absent id takes any version. The halves (see :mod:`.schema`) keep the
    comparison exact above 2**53, where floats are not.
    """
    high, low = split_version(version)
    newer = Filter(
        should=[
            FieldCondition(VERSION_HIGH, range=RangeFloat(gt=high)),
            Filter(
                must=[
                    FieldCondition(VERSION_HIGH, match=MatchValue(high)),
                    FieldCondition(VERSION_LOW, range=RangeFloat(gt=low)),
                ]
            ),
        ]
    )
    # must_not of a condition on a missing field holds, so an unversioned point passes: version 0 >= any
    # version >= 0. Below 0, it must have a version to pass.
    unversioned: list[ConditionType] = [IsEmptyCondition(VERSION_HIGH)] if version < 0 else []
    return Filter(must_not=[newer, *unversioned])


def stored_version(payload: Mapping[str, Any]) -> int:
    """The version of a stored entry; a document written before versions existed is version 0."""
    version: int = payload.get(VERSION, 0)
    return version


def is_live(payload: Mapping[str, Any]) -> bool:
    return payload.get(KIND) == KIND_DOCUMENT


def _write(collection: Collection, points: list[Point], version: int) -> None:
    condition = _stored_version_at_most(version)
    for start in range(0, len(points), _CHUNK):
        collection.shard.update(UpdateOperation.upsert_points(points[start : start + _CHUNK], condition=condition))


def upsert_documents(database: Database, collection: Collection, documents: Sequence[Document], version: int) -> None:
    """Write documents whose dimension the kit's check_dimensions accepted, where no newer entry is stored.

    One conditional upsert per chunk: the engine writes each point only while
    its stored version is <= ``version`` (a tombstone's included), and
    inserts the ids it does not hold.
    """
    dimension = next((len(document.vector) for document in documents if document.vector is not None), None)
    if dimension is not None and collection.dimension is None:
        database.fix_dimension(collection, dimension)
    if collection.dropped is not None and version <= collection.dropped:
        return  # the collection was dropped after this write: it lost, like to a newer entry
    points = []
    for document in documents:
        values, moments = filter_views(document.metadata)
        _index_datetimes(collection, document.metadata)
        payload = {
            KIND: KIND_DOCUMENT,
            **_versioned(document.id, version),
            "text": document.text,
            "tokens": sorted(set(tokenize(document.text))),
            "vector": _encode(document.vector),
            META: values,
            META_DT: moments,
            **nested_views(document.metadata),
            META_LAYOUT: LAYOUT,
            # The engine's float parsing is not exact (see filters.py); this text is.
            META_JSON: dump_metadata(document.metadata, rfc3339),
        }
        vector: dict[str, NamedVector] = {} if document.vector is None else {DENSE_VECTOR: unit(document.vector)}
        points.append(Point(document_point_id(document.id), vector, payload))
    _write(collection, points, version)
    collection.unoptimized_writes += len(points)


def _index_datetimes(collection: Collection, metadata: Mapping[str, MetadataValue]) -> None:
    """A datetime payload index on each key ``metadata`` writes a datetime to (``meta_dt.<field>`` of a plain
    field, ``meta_ndt.k<hex>`` of a dotted path) that the shard has none for."""
    wanted = set(datetime_paths(metadata)) - collection.datetime_indexes
    if not wanted:
        return
    existing = collection.shard.info().payload_schema
    for path in sorted(wanted):
        if path not in existing:
            collection.shard.update(UpdateOperation.create_field_index(path, PayloadSchemaType.Datetime))
        collection.datetime_indexes.add(path)


def delete_documents(collection: Collection, ids: Sequence[str], version: int) -> int:
    """Leave a tombstone at ``version`` for every id whose stored entry is not newer; how many were live.

    A tombstone is a point of kind ``tombstone`` with the id and version and
    no vector, so no search can reach it. The engine does not say which points
    a conditional upsert wrote, so the live ones it replaces are counted from a
    read of the targets first; the backend's lock keeps anyone from writing in
    between (see :mod:`.connection`).
    """
    if collection.dropped is not None and version <= collection.dropped:
        return 0  # the drop already stands for a newer tombstone of every id
    unique = list(dict.fromkeys(ids))
    replaced = 0
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        point_ids: list[PointId] = [document_point_id(document_id) for document_id in chunk]
        for point in collection.shard.retrieve(point_ids, _VERSION_STATE, False):
            payload = point.payload or {}
            if is_live(payload) and stored_version(payload) <= version:
                replaced += 1
        points = [
            Point(point_id, {}, {KIND: KIND_TOMBSTONE, **_versioned(document_id, version)})
            for document_id, point_id in zip(chunk, point_ids, strict=True)
        ]
        _write(collection, points, version)
    return replaced


def get_documents(collection: Collection, ids: Sequence[str]) -> list[Document]:
    found: dict[str, Document] = {}
    point_ids: list[PointId] = [document_point_id(document_id) for document_id in ids]
    for start in range(0, len(point_ids), _CHUNK):
        for point in collection.shard.retrieve(point_ids[start : start + _CHUNK], True, False):
            if point.payload and is_live(point.payload):
                document = document_from_payload(point.payload)
                found[document.id] = document
    return [found[document_id] for document_id in ids if document_id in found]


def _stored(payload: Mapping[str, Any]) -> StoredDocument:
    document = document_from_payload(payload) if is_live(payload) else None
    return StoredDocument(id=payload["id"], version=stored_version(payload), document=document)


def document_versions(collection: Collection, ids: Sequence[str]) -> list[StoredDocument]:
    """The stored entries, live or tombstone, of these ids, in their order; ids without an entry left out."""
    found: dict[str, StoredDocument] = {}
    point_ids: list[PointId] = [document_point_id(document_id) for document_id in ids]
    for start in range(0, len(point_ids), _CHUNK):
        for point in collection.shard.retrieve(point_ids[start : start + _CHUNK], True, False):
            if point.payload and point.payload.get(KIND) in _ENTRY_KINDS:
                entry = _stored(point.payload)
                found[entry.id] = entry
    if collection.dropped is not None:
        # In a dropped collection an id without an entry reads as a tombstone at the drop.
        dropped = collection.dropped
        return [found.get(document_id) or StoredDocument(document_id, dropped, None) for document_id in ids]
    return [found[document_id] for document_id in ids if document_id in found]


def drop_collection(collection: Collection, version: int) -> bool:
    """Remember the drop (the greater version stays), then remove every entry at or below it; whether one was live.

    Under the backend's lock, like every write, so nothing comes between the
    count and the delete.
    """
    dropped = version if collection.dropped is None else max(collection.dropped, version)
    payload = {KIND: KIND_DROP, VERSION: dropped}
    collection.shard.update(UpdateOperation.upsert_points([Point(DROP_POINT_ID, {}, payload)]))
    collection.dropped = dropped
    older = Filter(must=[_ENTRIES, _stored_version_at_most(version)])
    live_older = Filter(must=[_LIVE, _stored_version_at_most(version)])
    removed = collection.shard.count(CountRequest(exact=True, filter=live_older)) > 0
    collection.shard.update(UpdateOperation.delete_points_by_filter(older))
    return removed


def purge_tombstones(collection: Collection, before: int, limit: int) -> int:
    """Remove up to ``limit`` tombstones older than ``before``; how many went.

    Under the backend's lock, like every write, so the tombstones the scroll
    found are still tombstones when they are deleted.
    """
    older = Filter(must=[_TOMBSTONE, _stored_version_at_most(before - 1)])
    points, _ = collection.shard.scroll(ScrollRequest(limit=limit, filter=older, with_payload=False))
    if points:
        collection.shard.update(UpdateOperation.delete_points([point.id for point in points]))
    return len(points)


def live_documents(collection: Collection, filter: FallthroughFilter | None) -> tuple[Filter, bool]:
    """The engine filter of the live documents ``filter`` matches, and whether it is exact (see search.py)."""
    conditions: list[ConditionType] = [_LIVE]
    exact = True
    if filter is not None:
        compiled = compile_filter(filter, legacy=collection.legacy_metadata)
        exact = compiled.exact
        if compiled.condition is not None:
            conditions.append(compiled.condition)
    return Filter(must=conditions), exact


def count_documents(collection: Collection, filter: FallthroughFilter | None) -> int:
    """Counted by the engine; where its filter is inexact, the candidates are checked again with ``matches``."""
    engine_filter, exact = live_documents(collection, filter)
    if exact:
        return int(collection.shard.count(CountRequest(exact=True, filter=engine_filter)))
    payloads = scroll_payloads(collection, engine_filter, [META_JSON], page_size=_CHUNK)
    return sum(1 for payload in payloads if matches(filter, metadata(payload)))


def list_documents(
    collection: Collection, filter: FallthroughFilter | None, after: str | None, limit: int
) -> list[Document]:
    """One page by id (code points) after ``after``.

    The engine orders by point id and cannot order by a string, so the
    matching ids are scrolled and sorted here, as the search's listing
    does, and only the page is fetched whole.
    """
    engine_filter, exact = live_documents(collection, filter)
    fields = ["id"] if exact else ["id", META_JSON]
    ids = sorted(
        payload["id"]
        for payload in scroll_payloads(collection, engine_filter, fields, page_size=_CHUNK)
        if (after is None or payload["id"] > after) and (exact or matches(filter, metadata(payload)))
    )
    return get_documents(collection, ids[:limit])


def has_live_documents(collection: Collection) -> bool:
    return bool(collection.shard.count(CountRequest(exact=True, filter=Filter(must=[_LIVE]))))


def scroll_payloads(
    collection: Collection, engine_filter: Filter, fields: list[str], *, page_size: int
) -> Iterator[Mapping[str, Any]]:
    """The ``fields`` of every point ``engine_filter`` matches, scrolled ``page_size`` points a call."""
    offset: Any = None
    while True:
        request = ScrollRequest(
            offset=offset, limit=page_size, filter=engine_filter, with_payload=PayloadSelector.Include(fields)
        )
        points, offset = collection.shard.scroll(request)
        for point in points:
            if point.payload:
                yield point.payload
        if offset is None:
            return


def scan_documents(collection: Collection, after: str | None, limit: int) -> list[StoredDocument]:
    """One page of entries, tombstones included, in point-id order (the order the engine scrolls in).

    ``after`` is the id of the previous page's last entry; its point id is
    where this page starts. The engine's offset is inclusive, so that point
    is skipped when it is there (a purge may have removed it since).
    Each page is one scroll from its offset, whatever its position.
    """
    if limit <= 0:
        return []
    offset = None if after is None else document_point_id(after)
    fetch = limit if offset is None else limit + 1
    request = ScrollRequest(offset=offset, limit=fetch, filter=_ENTRIES, with_payload=True)
    points, _ = collection.shard.scroll(request)
    if offset is not None and points and _point_uuid(points[0].id) == offset:
        points = points[1:]
    return [_stored(point.payload) for point in points[:limit] if point.payload]


def has_entries(collection: Collection) -> bool:
    """Whether the collection holds an entry, or was dropped (a repair lists it either way)."""
    return collection.dropped is not None or bool(collection.shard.count(CountRequest(exact=True, filter=_ENTRIES)))


def _point_uuid(point_id: object) -> uuid.UUID:
    return point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id))


_ENTRY_KINDS = (KIND_DOCUMENT, KIND_TOMBSTONE)
_ENTRIES = Filter(must=[FieldCondition(KIND, match=MatchAny(list(_ENTRY_KINDS)))])
_VERSION_STATE = PayloadSelector.Include([KIND, VERSION])
_LIVE = FieldCondition(KIND, match=MatchValue(KIND_DOCUMENT))
_TOMBSTONE = FieldCondition(KIND, match=MatchValue(KIND_TOMBSTONE))


__all__ = [
    "count_documents",
    "delete_documents",
    "drop_collection",
    "has_live_documents",
    "list_documents",
    "document_from_payload",
    "decode_vector",
    "document_versions",
    "get_documents",
    "has_entries",
    "is_live",
    "metadata",
    "scan_documents",
    "stored_version",
    "unit",
    "upsert_documents",
]
