"""The shard layout: directories, configs, point ids and payload indexes.

Under the URL's directory::

    records/                 one shard: every batch and record
    collections/<name>/      one shard per document collection (a name with
                             capitals is spelt so that case-blind filesystems
                             keep it apart; see collection_path)

A shard is Qdrant's unit of storage, so a collection maps to one, with its
own HNSW graph and its own vector dimension. Point ids must be integers or
UUIDs; batches, records and documents get UUIDv5 ids derived from their
natural keys, so a write finds its point without a lookup. The engine scrolls
in point-id order, so that is the order ``list_batches`` and
``scan_documents`` page in.

A collection's shard holds documents (kind ``document``), the tombstones
deletes leave (kind ``tombstone``, no vector) and one bookkeeping point (kind
``collection``). Schema changes are additive: a document written before
versions has no version payload and reads as version 0, and a missing payload
index is created when a shard is opened, so old directories open as they are.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from qdrant_edge import (
    EdgeConfig,
    EdgeSparseVectorParams,
    IntegerIndexParams,
    KeywordIndexParams,
    PayloadSchemaType,
)

RECORDS_DIRECTORY = "records"
COLLECTIONS_DIRECTORY = "collections"

# EdgeConfig refuses a shard without any vector; payload-only points live
# beside an empty sparse vector that is never written.
PLACEHOLDER_VECTOR = "placeholder"
DENSE_VECTOR = "dense"

# Payload keys. ``kind`` keeps the few bookkeeping points apart from the data.
KIND = "kind"
KIND_BATCH = "batch"
KIND_RECORD = "record"
KIND_DOCUMENT = "document"
KIND_TOMBSTONE = "tombstone"
KIND_COLLECTION = "collection"
KIND_DROP = "drop"

# The merge key is compared by the engine (see records.py). Its ranges take
# floats, exact only up to 2**53, and the tiebreak has 56 bits: it is kept
# as two exact halves, compared lexicographically like the rest.
TIEBREAK_LOW_BITS = 28
TIEBREAK_LOW_MASK = (1 << TIEBREAK_LOW_BITS) - 1

# A document's version (microseconds, up to about 2**62) is compared the same
# way: kept whole in ``version`` (payload integers are exact int64) for
# reading, and as two halves exact in a float for the engine's conditions.
VERSION_LOW_BITS = 31
VERSION_LOW_MASK = (1 << VERSION_LOW_BITS) - 1

_NAMESPACE = uuid.UUID("5b0e8b8e-6f1c-4c36-9d0f-3f2f5a8c9e01")
_BATCH_NAMESPACE = uuid.uuid5(_NAMESPACE, "batch")
_RECORD_NAMESPACE = uuid.uuid5(_NAMESPACE, "record")
_DOCUMENT_NAMESPACE = uuid.uuid5(_NAMESPACE, "document")
COLLECTION_POINT_ID = uuid.uuid5(_NAMESPACE, "collection")
"""The point in a collection's shard that holds its vector dimension."""
DROP_POINT_ID = uuid.uuid5(_NAMESPACE, "drop")
"""The point in a collection's shard that holds its latest drop version (kind drop)."""


def batch_point_id(batch_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(_BATCH_NAMESPACE, str(batch_id))


def record_point_id(batch_id: uuid.UUID, key: str) -> uuid.UUID:
    # The batch id has a fixed length, so the name is unambiguous.
    return uuid.uuid5(_RECORD_NAMESPACE, f"{batch_id}{key}")


def document_point_id(document_id: str) -> uuid.UUID:
    return uuid.uuid5(_DOCUMENT_NAMESPACE, document_id)


def split_tiebreak(tiebreak: int) -> tuple[int, int]:
    return tiebreak >> TIEBREAK_LOW_BITS, tiebreak & TIEBREAK_LOW_MASK


def split_version(version: int) -> tuple[int, int]:
    """The halves of a version; lexicographic order on them is the integers' order, negatives included."""
    return version >> VERSION_LOW_BITS, version & VERSION_LOW_MASK


def records_path(root: Path) -> Path:
    return root / RECORDS_DIRECTORY


def collection_path(root: Path, collection: str) -> Path:
    """The shard directory of ``collection``, distinct from every other one even where case is ignored.

    Collection names are ``[A-Za-z0-9_][A-Za-z0-9_-]{0,62}``, safe as directory names, but ``Docs`` and
    ``docs`` are two collections, and one directory on macOS's and Windows' default filesystems. A
    name with capitals is stored lower-cased, with ``.`` (never in a name) and the hex bit mask of
    where its capitals were; an all-lowercase name is its own directory.
    """
    capitals = sum(1 << index for index, character in enumerate(collection) if "A" <= character <= "Z")
    directory = f"{collection.lower()}.{capitals:x}" if capitals else collection
    return root / COLLECTIONS_DIRECTORY / directory


def collection_name(directory: str) -> str | None:
    """The collection whose shard directory is ``directory`` (the inverse of collection_path); None if not one."""
    lowered, dot, mask = directory.partition(".")
    if not dot:
        return directory
    try:
        capitals = int(mask, 16)
    except ValueError:
        return None
    return "".join(character.upper() if capitals >> index & 1 else character for index, character in enumerate(lowered))


def collections_root(root: Path) -> Path:
    return root / COLLECTIONS_DIRECTORY


def shard_config(search_threads: int | None) -> EdgeConfig:
    return EdgeConfig(
        sparse_vectors={PLACEHOLDER_VECTOR: EdgeSparseVectorParams()},
        max_search_threads=search_threads,
    )


# The stubs' PayloadSchemaParams is a typing-only name: the module has no such attribute.
IndexSchema = PayloadSchemaType | KeywordIndexParams | IntegerIndexParams

_KEYWORD = PayloadSchemaType.Keyword
# order_by needs an integer index with range lookups.
_INTEGER = IntegerIndexParams(lookup=True, range=True)

# Indexes for what queries select by. The merge condition's fields
# (attempt, rank, updated_us, tiebreak) need none: the engine checks a
# conditional upsert against each target point's own payload.
RECORD_INDEXES: dict[str, IndexSchema] = {
    KIND: _KEYWORD,
    # Every record query names its batch: the tenant index keeps a batch's points together.
    "batch_id": KeywordIndexParams(is_tenant=True),
    "status": _KEYWORD,
    "seq": _INTEGER,
    # Claims: expired leases are selected by range; batches are listed newest first by creation time.
    "lease_us": _INTEGER,
    "created_us": _INTEGER,
}

DOCUMENT_INDEXES: dict[str, IndexSchema] = {
    # Every read of documents selects kind "document", leaving out tombstones and the bookkeeping point.
    KIND: _KEYWORD,
    "tokens": _KEYWORD,
}

__all__ = [
    "COLLECTION_POINT_ID",
    "DENSE_VECTOR",
    "DOCUMENT_INDEXES",
    "KIND",
    "DROP_POINT_ID",
    "KIND_BATCH",
    "KIND_COLLECTION",
    "KIND_DROP",
    "KIND_DOCUMENT",
    "KIND_RECORD",
    "KIND_TOMBSTONE",
    "PLACEHOLDER_VECTOR",
    "RECORD_INDEXES",
    "batch_point_id",
    "collection_name",
    "collection_path",
    "collections_root",
    "document_point_id",
    "record_point_id",
    "records_path",
    "shard_config",
    "split_tiebreak",
    "split_version",
]
