"""Collections, their payload indexes, and how they are created.

Every collection name starts with the URL's prefix:

* ``<prefix>batches``: one payload-only point per batch; its point id is
  the batch id itself. A batch whose deletion has begun carries
  :data:`DELETING` until its records are gone (see ``Records.delete_batch``).
* ``<prefix>processing_results``: one payload-only point per record; its
  point id is :func:`record_point_id` of (batch id, key).
* ``<prefix>docs_<name>``: the documents of collection ``name`` that have
  no vector (payload-only).
* ``<prefix>vecs_<name>``: the documents of ``name`` that have a vector,
  cosine, created by the first vector, which fixes its dimension for good.

A ``name`` with capitals is spelt ``docz<mask>_<lower-cased name>`` and
``vecz<mask>_<...>`` (``<mask>``: hex bit mask of where the capitals were),
so that ``Docs`` and ``docs`` do not share a directory on a filesystem that
ignores case.

A document lives in exactly one of its two collections. Qdrant fixes a
collection's vector size when it is created and cannot add one later, and a
collection may receive documents before its first vector; keeping the two
kinds apart avoids copying a whole collection when that vector arrives.

Local mode ignores payload indexes, but a server needs them: in strict mode
it rejects filters on fields without one, and ``order_by`` needs a range
index. They are created on every kind of store, and the tests check the
calls that create them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from qdrant_client import QdrantClient, models

from fallthrough.kit import is_collection_name

from .errors import is_already_exists

RECORD_NAMESPACE = uuid.UUID("6c1f7d2e-4b1a-5e8f-9a3c-2d5e7f9b1c04")
DOCUMENT_NAMESPACE = uuid.UUID("0b8e2c7a-93d4-5f61-8a2e-4c7d9e1f3b25")
DROP_NAMESPACE = uuid.UUID("3f2a9c1e-7d4b-5a86-b0e1-9c5d2f7a4e63")

_KEYWORD = models.PayloadSchemaType.KEYWORD
_INTEGER_EQUALITY = models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=True)

RECORD_INDEXES: Mapping[str, models.PayloadSchemaType | models.IntegerIndexParams] = {
    "batch_id": _KEYWORD,
    "key": _KEYWORD,
    "status": _KEYWORD,
    # order_by needs a range index.
    "seq": _INTEGER_EQUALITY,
    # The fields of the conditional write's filter: strict mode checks update filters too.
    "attempt": _INTEGER_EQUALITY,
    "rank": _INTEGER_EQUALITY,
    "us_hi": _INTEGER_EQUALITY,
    "us_lo": _INTEGER_EQUALITY,
    "tb_hi": _INTEGER_EQUALITY,
    "tb_lo": _INTEGER_EQUALITY,
    # Claims: the expired-lease candidates, and extensions by the holder.
    "lease_us": _INTEGER_EQUALITY,
    "lease_owner": _KEYWORD,
}
"""Payload indexes of the records collection."""

DELETING = "deleting"
"""The batch point's flag, set before its records are removed: from then on every read takes the batch for deleted."""

BATCH_INDEXES: Mapping[str, models.PayloadSchemaType | models.IntegerIndexParams] = {
    # Listing batches newest first orders by it.
    "created_us": _INTEGER_EQUALITY,
    # Opening the backend looks for deletions a process left unfinished with a filter on it.
    DELETING: models.PayloadSchemaType.BOOL,
}
"""Payload indexes of the batches collection; created on every open, so older stores get them too."""

DOCUMENT_INDEXES: Mapping[str, models.PayloadSchemaType | models.IntegerIndexParams] = {
    "id": _KEYWORD,
    # The text bridge: the core's tokens, matched whole (see search.py).
    "tokens": _KEYWORD,
    # Every read leaves tombstones out with a filter on the flag.
    "tombstone": models.PayloadSchemaType.BOOL,
    # The conditional write's filter on the version's halves.
    "v_hi": _INTEGER_EQUALITY,
    "v_lo": _INTEGER_EQUALITY,
}
"""Payload indexes of both document collections. Metadata fields get none (see the docs)."""

_HALF = 32
_LOW = (1 << _HALF) - 1


def halves(value: int) -> tuple[int, int]:
    """``value`` as (high, low) 32-bit halves; their lexicographic order is the order of ``value``.

    Qdrant's range conditions take float bounds, exact only below 2**53;
    microsecond stamps and tiebreaks go past that, their halves do not.
    """
    return value >> _HALF, value & _LOW


def point_order(point_id: models.ExtendedPointId) -> str:
    """The key Qdrant orders UUID point ids by when it scrolls: the canonical text, which orders like the 128 bits."""
    return str(uuid.UUID(str(point_id)))


def record_point_id(batch_id: uuid.UUID, key: str) -> str:
    """The record's point id: deterministic, so every write of a record names the same point."""
    return str(uuid.uuid5(RECORD_NAMESPACE, f"{batch_id}\x00{key}"))


def document_point_id(document_id: str) -> str:
    return str(uuid.uuid5(DOCUMENT_NAMESPACE, document_id))


def drop_point_id(collection: str) -> str:
    """The point of ``<prefix>drops`` that holds a collection's latest drop version."""
    return str(uuid.uuid5(DROP_NAMESPACE, collection))


@attrs.frozen
class CollectionNames:
    prefix: str

    @property
    def batches(self) -> str:
        return f"{self.prefix}batches"

    @property
    def records(self) -> str:
        return f"{self.prefix}processing_results"

    @property
    def drops(self) -> str:
        """One payload-only point per dropped collection: its name and latest drop version."""
        return f"{self.prefix}drops"

    def plain_documents(self, collection: str) -> str:
        return f"{self.prefix}{_case_blind('docs', collection)}"

    def vector_documents(self, collection: str) -> str:
        return f"{self.prefix}{_case_blind('vecs', collection)}"


def document_collections(names: Iterable[str], prefix: str) -> set[str]:
    """The fallthrough collection names that the Qdrant collections ``names`` (all of a server's) belong to.

    The inverse of :meth:`CollectionNames.plain_documents` and
    :meth:`~CollectionNames.vector_documents`: ``docs_<name>`` is ``name``,
    ``docz<mask>_<lower>`` is ``<lower>`` with the capitals of ``mask`` put
    back. Other collections, and names no fallthrough collection could
    have, are left out.
    """
    found: set[str] = set()
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        plain = re.fullmatch(r"(?:docs|vecs)_(.+)", rest)
        if plain is not None:
            candidate = plain.group(1)
        else:
            cased = re.fullmatch(r"(?:doc|vec)z([0-9a-f]+)_(.+)", rest)
            if cased is None:
                continue
            mask, lower = int(cased.group(1), 16), cased.group(2)
            candidate = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(lower))
        kind = "docs" if rest.startswith("doc") else "vecs"
        # Only a name that spells back the same: no other prefix's or application's collection.
        if is_collection_name(candidate) and _case_blind(kind, candidate) == rest:
            found.add(candidate)
    return found


def _case_blind(kind: str, collection: str) -> str:
    """``<kind>_<collection>``, spelt so that names differing only in case stay apart where case is ignored.

    Local mode and a server keep each collection in a directory of its name, and the default
    filesystems of macOS and Windows ignore case: ``Docs`` and ``docs`` would share one. A name with
    capitals becomes ``<kind[:3]>z<hex mask of its capitals>_<name lower-cased>``; no all-lowercase
    name gives that infix, whose ``z`` ends a three-letter kind, so every spelling stays distinct.
    """
    capitals = sum(1 << index for index, character in enumerate(collection) if "A" <= character <= "Z")
    if not capitals:
        return f"{kind}_{collection}"
    return f"{kind[:3]}z{capitals:x}_{collection.lower()}"


def ensure_records_schema(client: QdrantClient, names: CollectionNames, index_payloads: bool = True) -> None:
    """Create the batches and records collections where missing, and with ``index_payloads`` their indexes."""
    ensure_collection(client, names.batches, {}, BATCH_INDEXES if index_payloads else {})
    ensure_collection(client, names.records, {}, RECORD_INDEXES if index_payloads else {})


def ensure_collection(
    client: QdrantClient,
    name: str,
    vectors: Mapping[str, models.VectorParams] | models.VectorParams,
    indexes: Mapping[str, models.PayloadSchemaType | models.IntegerIndexParams],
) -> None:
    """Create ``name`` if missing, then its payload indexes.

    Safe when another process creates it at the same moment: "already exists"
    is success. Creating an index that exists is a no-op on a server, so the
    indexes are (re)created every time; that repairs a collection whose
    creator died before indexing it.
    """
    if not client.collection_exists(name):
        try:
            client.create_collection(name, vectors_config=vectors)
        except Exception as error:
            if not is_already_exists(error):
                raise
    for field, schema in indexes.items():
        client.create_payload_index(name, field, field_schema=schema)


def vector_dimension(client: QdrantClient, name: str) -> int | None:
    """The vector size of the collection ``name``, or None when it does not exist."""
    if not client.collection_exists(name):
        return None
    vectors = client.get_collection(name).config.params.vectors
    assert isinstance(vectors, models.VectorParams), f"{name} has named vectors; fallthrough did not create it"
    return vectors.size


def in_batch(batch_id: uuid.UUID) -> models.Filter:
    """The points of one batch: its batch point and its records carry its id as ``batch_id``."""
    return models.Filter(must=[models.FieldCondition(key="batch_id", match=models.MatchValue(value=str(batch_id)))])


def being_deleted(batch_payload: Mapping[str, Any] | None) -> bool:
    """Whether a batch point carries :data:`DELETING`: the batch is gone for every read, its records on their way."""
    return bool((batch_payload or {}).get(DELETING))


def scroll_whole(
    client: QdrantClient, collection: str, scroll_filter: models.Filter | None, with_payload: list[str]
) -> list[models.Record]:
    """Local mode: every point ``scroll_filter`` matches, in one scroll.

    A local-mode scroll costs the whole collection whatever its limit, so
    pages would cost it once each.
    """
    points, _ = client.scroll(collection, scroll_filter=scroll_filter, limit=2**62, with_payload=with_payload)
    return points


def scroll_all(
    client: QdrantClient,
    collection: str,
    scroll_filter: models.Filter | None,
    *,
    with_payload: bool | list[str],
    page_size: int,
) -> list[models.Record]:
    """Every point of ``collection`` that ``scroll_filter`` matches, read ``page_size`` at a time."""
    found: list[models.Record] = []
    offset: models.ExtendedPointId | None = None
    while True:
        page, offset = client.scroll(
            collection, scroll_filter=scroll_filter, limit=page_size, offset=offset, with_payload=with_payload
        )
        found.extend(page)
        if offset is None:
            return found


__all__ = [
    "BATCH_INDEXES",
    "DELETING",
    "DOCUMENT_INDEXES",
    "RECORD_INDEXES",
    "CollectionNames",
    "document_point_id",
    "drop_point_id",
    "ensure_collection",
    "document_collections",
    "ensure_records_schema",
    "in_batch",
    "being_deleted",
    "halves",
    "point_order",
    "record_point_id",
    "scroll_all",
    "scroll_whole",
    "vector_dimension",
]
