"""Documents as points: the payload layout, versions and tombstones, and upsert, delete, get and scan.

A document point's id is :func:`~.schema.document_point_id` of the document
id, and its payload::

    id, text, tokens, token_count, metadata (kit.dump_metadata text), vector (base64 float32 or null),
    s, n, b, d (the metadata split by type, see filters.py),
    version, v_hi, v_lo (the write's version, and its 32-bit halves)

A document with a vector lives in ``<prefix>vecs_<name>``, one without in
``<prefix>docs_<name>`` (see schema.py). The vector is kept in the payload
too: Qdrant normalises vectors stored under cosine, and a document must come
back exactly as it was written.

**Datetime indexes.** Each ``d.k<hex>`` key a write puts a datetime under
gets a ``datetime`` payload index in that collection, before the points are
written (once per collection and key in the backend's life; creating an
index that exists is a no-op), so a datetime range is served by Qdrant's
index. Other metadata fields get none (see the docs).

**Tombstones.** A delete leaves, for each id, a payload-only point in
``<prefix>docs_<name>`` with ``id``, ``tombstone: true`` and the version
fields, and no text, vector or metadata: it keeps an older write, replayed
late or copied by a repair, from bringing the document back. Every read
and search leaves tombstones out (``must_not tombstone == true`` in
filters, the flag checked on points fetched by id).

**Versions.** A write applies to an id only when its stored entry, in
either collection, has ``version <= `` the write's. The write is an
``upsert`` with ``update_filter`` :func:`not_newer` (a missing point is
inserted; a stored one is replaced only if the filter holds for it), and
the id's point in the other collection is removed by a delete with the
same filter. Range bounds are floats, exact only below 2**53, and a version
(microseconds) nears 2**62, so the filter compares ``v_hi`` then ``v_lo``.
A document written before versions existed has no ``v_hi``: it counts as
version 0 (``is_empty`` holds for it).

The entries are read first: that read decides which ids the other
collection's newer entry protects, and how many live documents a delete
turned into tombstones. In local mode the hook holds the backend's lock
throughout and a directory has one client, so the read is exact. Against a
server another writer can act in between: a delete's count is then taken
from a read after the write, and an id may briefly have an entry in both
collections (two writers moving it between them at once); reads then take
the entry with the greater version.
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from fallthrough.filters import Filter, matches
from fallthrough.kit import (
    check_dimensions,
    check_fixed_dimension,
    chunked,
    decode_document,
    dump_metadata,
    float32_vector,
    from_rfc3339,
    load_metadata,
    rfc3339,
)
from fallthrough.text import tokenize
from fallthrough.types import Document, StoredDocument

from .document_order import LocalDocumentOrder
from .filters import datetime_keys, typed_fields
from .schema import (
    DOCUMENT_INDEXES,
    CollectionNames,
    document_point_id,
    drop_point_id,
    ensure_collection,
    halves,
    point_order,
    scroll_all,
    vector_dimension,
)

_CHUNK = 1_000
_VERSION_FIELDS = ["id", "version", "tombstone"]
# What a local listing reads of each entry it passes to check a filter; the matches are then read whole.
_FILTERED_FIELDS = ["id", "tombstone", "metadata"]

TOMBSTONE = models.FieldCondition(key="tombstone", match=models.MatchValue(value=True))
"""Holds for a tombstone: every read of documents puts it in ``must_not``."""


class Documents:
    """The document hooks over one client; remembers each collection's dimension once fixed.

    :param names: the Qdrant collection names.
    :param verify_writes: read back after conditional writes, since other
        clients can write in between (a server).
    :param index_payloads: create the payload indexes a server needs (local
        mode ignores them, and warns).
    :param local_order: local mode lists documents from this index of their
        ids (see :mod:`.document_order`); a server scrolls the matching ids.
    """

    def __init__(
        self,
        names: CollectionNames,
        verify_writes: bool = False,
        index_payloads: bool = True,
        local_order: LocalDocumentOrder | None = None,
    ) -> None:
        self.names = names
        self.verify_writes = verify_writes
        self.index_payloads = index_payloads
        self.local_order = local_order
        self._dimensions: dict[str, int] = {}
        # Qdrant collections known to exist with their indexes; fallthrough never drops one.
        self._ready: set[str] = set()
        # (Qdrant collection, d.k<hex> key) with a datetime index made sure of.
        self._datetime_indexes: set[tuple[str, str]] = set()
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
        # Also for a collection that exists: one created before versions lacks their indexes.
        ensure_collection(client, name, vectors, DOCUMENT_INDEXES if self.index_payloads else {})
        with self._lock:
            self._ready.add(name)

    def _prepare(self, client: QdrantClient, name: str) -> bool:
        """Whether ``name`` exists; before a write to it, its indexes are made sure of, once.

        A collection created before versions lacks the ``tombstone``, ``v_hi``
        and ``v_lo`` indexes a server in strict mode needs for the version filter.
        """
        if not self.exists(client, name):
            return False
        # It exists, so its vector configuration is never looked at.
        self._ensure(client, name, {})
        return True

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

    def fix_dimension(self, client: QdrantClient, collection: str, dimension: int) -> None:
        """Fix the dimension of a collection that has none, by creating its collection of vectors; refuse another.

        Created unless it exists; then the size it has is checked, so one made
        first by another client (on a server) is judged like one made long ago.
        """
        name = self.names.vector_documents(collection)
        self._ensure(client, name, models.VectorParams(size=dimension, distance=models.Distance.COSINE))
        check_fixed_dimension(collection, self.dimension(client, collection), dimension)

    def forget(self) -> None:
        """Drop what is remembered: a closed in-memory store is gone, and a reopened one may be another."""
        if self.local_order is not None:
            self.local_order.forget()
        with self._lock:
            self._dimensions.clear()
            self._ready.clear()
            self._datetime_indexes.clear()

    def _index_datetimes(self, client: QdrantClient, name: str, documents: Sequence[Document]) -> None:
        """A datetime payload index on each ``d.`` key these documents write in ``name``, once."""
        if not self.index_payloads:
            return
        keys: set[str] = set()
        for document in documents:
            keys |= datetime_keys(document.metadata)
        with self._lock:
            missing = sorted(key for key in keys if (name, key) not in self._datetime_indexes)
        for key in missing:
            client.create_payload_index(name, key, field_schema=models.PayloadSchemaType.DATETIME)
            with self._lock:
                self._datetime_indexes.add((name, key))

    def _pair(self, collection: str) -> tuple[str, str]:
        """The Qdrant collections of ``collection``: (without vectors, tombstones too; with vectors)."""
        return self.names.plain_documents(collection), self.names.vector_documents(collection)

    # -- writes ---------------------------------------------------------------

    def upsert(self, client: QdrantClient, collection: str, documents: Sequence[Document], version: int) -> None:
        # The collection's dimension costs a read: only a call with vectors asks for it.
        fixed = self.dimension(client, collection) if any(doc.vector is not None for doc in documents) else None
        size = check_dimensions(collection, fixed, documents)
        if not documents:
            return
        # Everything is checked; from here on the call writes.
        plain, vectors = self._pair(collection)
        if size is not None:
            # The call fixes the dimension even if each of its vectors loses to a newer entry, or to a drop.
            self._ensure(client, vectors, models.VectorParams(size=size, distance=models.Distance.COSINE))
        dropped = self.dropped_at(client, collection)
        if dropped is not None and version <= dropped:
            return  # the collection was dropped after this write: it lost, like to a newer entry
        if self.local_order is not None:
            self.local_order.add(collection, (document.id for document in documents))
        stored = self._versions(client, collection, [document.id for document in documents])
        writable = [
            document for document in documents if document.id not in stored or stored[document.id][0] <= version
        ]
        with_vector = [document for document in writable if document.vector is not None]
        without_vector = [document for document in writable if document.vector is None]
        if with_vector:
            self._index_datetimes(client, vectors, with_vector)
            _upsert(client, vectors, [_point(document, version) for document in with_vector], version)
            # A document that had no vector before (or a tombstone) moves; drop its old point.
            if self._prepare(client, plain):
                _delete_not_newer(client, plain, [document.id for document in with_vector], version)
        if without_vector:
            self._ensure(client, plain, {})
            self._index_datetimes(client, plain, without_vector)
            _upsert(client, plain, [_point(document, version) for document in without_vector], version)
            if self._prepare(client, vectors):
                _delete_not_newer(client, vectors, [document.id for document in without_vector], version)
        if self.verify_writes:
            # A drop by another client may have come between the check above and these writes.
            dropped = self.dropped_at(client, collection)
            if dropped is not None and dropped >= version:
                self._remove_not_newer(client, collection, dropped)

    def delete(self, client: QdrantClient, collection: str, ids: Sequence[str], version: int) -> int:
        """Tombstones at ``version`` for the ids not stored newer; how many live documents they replaced."""
        if not ids:
            return 0
        dropped = self.dropped_at(client, collection)
        if dropped is not None and version <= dropped:
            return 0  # the drop already stands for a newer tombstone of every id
        plain, vectors = self._pair(collection)
        stored = self._versions(client, collection, ids)
        replaced = [i for i in ids if i not in stored or stored[i][0] <= version]
        live_before = {i for i in replaced if i in stored and stored[i][1]}
        if self.local_order is not None:
            self.local_order.add(collection, replaced)
        # Even in a collection that does not exist yet: a tombstone blocks an older copy arriving later.
        self._ensure(client, plain, {})
        _upsert(client, plain, [_tombstone(i, version) for i in replaced], version)
        if self._prepare(client, vectors):
            _delete_not_newer(client, vectors, replaced, version)
        if not self.verify_writes:
            return len(live_before)
        # Another writer may have acted in between: count only what this call's tombstone replaced.
        after = self._versions(client, collection, sorted(live_before))
        return sum(1 for i in live_before if after.get(i) == (version, False))

    def drop(self, client: QdrantClient, collection: str, version: int) -> bool:
        """Remember the drop (the greater version stays), then remove every point at or below it.

        The drop is recorded first: a writer that reads it after this
        moment refuses its older write, and one that read before is caught
        by its own check after writing (``verify_writes``, a server). A
        process killed between the two leaves points the drop covers, which
        reads would still see: :meth:`finish_drops` removes them at the
        next open.
        """
        self.record_drop(client, collection, version)
        return self._remove_not_newer(client, collection, version)

    def record_drop(self, client: QdrantClient, collection: str, version: int) -> None:
        """The first half of :meth:`drop`: the drop's version, kept in ``<prefix>drops``."""
        self._ensure(client, self.names.drops, {})
        point = models.PointStruct(
            id=drop_point_id(collection), vector={}, payload={"name": collection, **version_fields(version)}
        )
        client.upsert(self.names.drops, [point], update_filter=not_newer(version))
        if self.local_order is not None:
            self.local_order.forget(collection)

    def finish_drops(self, client: QdrantClient) -> list[str]:
        """Remove what every recorded drop covers and is still stored; the collections that held some.

        A drop removes its points one call after it records its version, and
        local mode deletes them point by point: a process killed meanwhile
        (``kill -9``) left part of a dropped collection readable, and a
        repair would have copied it to the other stores. Idempotent: a drop
        under way in another client removes the same points.
        """
        finished = []
        for name, version in self._drops(client).items():
            left = [
                stored
                for stored in self._pair(name)
                if self._prepare(client, stored)
                and client.count(stored, count_filter=models.Filter(must=[not_newer(version)]), exact=True).count > 0
            ]
            for stored in left:
                client.delete(stored, models.FilterSelector(filter=not_newer(version)))
            if left:
                if self.local_order is not None:
                    self.local_order.forget(name)
                finished.append(name)
        return finished

    def purge(self, client: QdrantClient, collection: str, before: int, limit: int) -> int:
        """Remove up to ``limit`` tombstones older than ``before``; how many the scroll found.

        Tombstones live in the collection without vectors. The delete names
        the points the scroll found and repeats its condition, so a point
        that a newer write replaced meanwhile (a server has other clients)
        stays; it is still counted, as the scroll saw it.
        """
        plain, _ = self._pair(collection)
        if not self._prepare(client, plain):
            return 0
        older = models.Filter(must=[TOMBSTONE, not_newer(before - 1)])
        found, _ = client.scroll(plain, scroll_filter=older, limit=limit, with_payload=False, with_vectors=False)
        if not found:
            return 0
        point_ids: list[models.ExtendedPointId] = [point.id for point in found]
        selector = models.Filter(must=[models.HasIdCondition(has_id=point_ids), TOMBSTONE, not_newer(before - 1)])
        client.delete(plain, models.FilterSelector(filter=selector))
        if self.local_order is not None:
            self.local_order.forget(collection)  # its ids are a superset still; this frees them
        return len(found)

    def _remove_not_newer(self, client: QdrantClient, collection: str, version: int) -> bool:
        """Delete every point of the collection at or below ``version``; whether a live one was among them."""
        removed = False
        for name in self._pair(collection):
            if not self._prepare(client, name):
                continue
            older = not_newer(version)
            live_older = models.Filter(must=[older], must_not=[TOMBSTONE])
            removed = removed or client.count(name, count_filter=live_older, exact=True).count > 0
            client.delete(name, models.FilterSelector(filter=older))
        return removed

    def dropped_at(self, client: QdrantClient, collection: str) -> int | None:
        """The collection's latest drop version, or None when it was never dropped."""
        if not self.exists(client, self.names.drops):
            return None
        found = client.retrieve(self.names.drops, [drop_point_id(collection)], with_payload=["version"])
        return _version(found[0].payload or {}) if found else None

    def dropped_collections(self, client: QdrantClient) -> list[str]:
        """Every collection that was ever dropped."""
        return list(self._drops(client))

    def _drops(self, client: QdrantClient) -> dict[str, int]:
        """Every dropped collection with its latest drop version, in one scroll of ``<prefix>drops``."""
        if not self.exists(client, self.names.drops):
            return {}
        points = scroll_all(client, self.names.drops, None, with_payload=["name", "version"], page_size=_CHUNK)
        return {(point.payload or {})["name"]: _version(point.payload or {}) for point in points}

    # -- reads ----------------------------------------------------------------

    def count(self, client: QdrantClient, collection: str, conditions: models.Filter | None) -> int:
        """The live documents ``conditions`` match, counted by Qdrant in both collections (an id is in one)."""
        total = 0
        for name in self._pair(collection):
            if self.exists(client, name):
                live = models.Filter(must=[conditions] if conditions is not None else [], must_not=[TOMBSTONE])
                total += client.count(name, count_filter=live, exact=True).count
        return total

    def listing(
        self, client: QdrantClient, collection: str, conditions: models.Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        """One page of live matching documents by id (code points) after ``after``.

        Qdrant orders points by their UUID and ``order_by`` takes numbers
        only, so the matching ids (the ``id`` field alone) are scrolled and
        sorted here, as the search's listing does, and only the page is
        fetched whole: each page reads every matching id (see docs/backends).
        """
        names = [name for name in self._pair(collection) if self.exists(client, name)]
        live = models.Filter(must=[conditions] if conditions is not None else [], must_not=[TOMBSTONE])
        ids: set[str] = set()
        for name in names:
            for point in scroll_all(client, name, live, with_payload=["id"], page_size=_CHUNK):
                document_id = (point.payload or {})["id"]
                if after is None or document_id > after:
                    ids.add(document_id)
        return self._fetch_page(client, collection, sorted(ids), limit)

    def local_listing(
        self, client: QdrantClient, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        """:meth:`listing` in local mode: from the collection's sorted ids (see :mod:`.document_order`).

        The ids past the cursor are read in growing chunks, keeping the live
        documents the filter matches, until the page is full: a page costs
        the entries it passes from the cursor on. With a filter, only the
        passed entries' metadata is read and decoded; the matches are then
        fetched whole.
        """
        assert self.local_order is not None
        names = [name for name in self._pair(collection) if self.exists(client, name)]
        ids = self.local_order.ids_after(client, collection, names, after)
        page: list[Document] = []
        chunk = limit
        while len(page) < limit:
            taken = list(itertools.islice(ids, chunk))
            if not taken:
                break
            if filter is not None:
                # Matches are live documents (one entry each in local mode): fetch no more than the page needs.
                taken = self._matching(client, names, taken, filter)[: limit - len(page)]
            page += self.get(client, collection, taken)[: limit - len(page)]
            chunk = min(chunk * 2, _CHUNK * 4)
        return page

    def _matching(self, client: QdrantClient, names: Sequence[str], ids: Sequence[str], filter: Filter) -> list[str]:
        """Of ``ids``, in their order, those with a live document whose metadata ``filter`` matches.

        Local mode only: there an id has one entry, in one of ``names``.
        """
        matched: set[str] = set()
        for name in names:
            for point in _retrieve(client, name, ids, with_payload=_FILTERED_FIELDS):
                payload = point.payload or {}
                if not payload.get("tombstone", False) and matches(filter, decode_metadata(payload)):
                    matched.add(payload["id"])
        return [document_id for document_id in ids if document_id in matched]

    def local_scan(self, client: QdrantClient, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        """:meth:`scan` in local mode: entries in document id order from the collection's sorted ids.

        The hook lets each backend page in its own order; this one is the
        order :mod:`.document_order` keeps, so a page costs its own ids.
        """
        assert self.local_order is not None
        names = [name for name in self._pair(collection) if self.exists(client, name)]
        ids = self.local_order.ids_after(client, collection, names, after)
        page: list[StoredDocument] = []
        while len(page) < limit:
            taken = list(itertools.islice(ids, limit - len(page)))
            if not taken:
                break
            found = self._entries(client, collection, taken)
            page += [found[document_id] for document_id in taken if document_id in found]
        return page

    def _fetch_page(self, client: QdrantClient, collection: str, ordered: list[str], limit: int) -> list[Document]:
        """The first ``limit`` of ``ordered`` (sorted ids) still stored, fetched whole.

        Between the scroll and the fetch (a server) another client may
        delete a document. A short page ends the Store's iteration, so a
        gap is filled from the next sorted ids until the page is full or
        the ids run out; the page stays in id order.
        """
        found: list[Document] = []
        start = 0
        while len(found) < limit and start < len(ordered):
            wanted = ordered[start : start + limit - len(found)]
            start += len(wanted)
            found.extend(self.get(client, collection, wanted))
        return found

    def live_collections(self, client: QdrantClient, candidates: Iterable[str]) -> list[str]:
        """Of ``candidates``, those with a live document, sorted by code point."""
        return sorted(name for name in set(candidates) if self.count(client, name, None) > 0)

    def get(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> list[Document]:
        entries = self._entries(client, collection, ids)
        found = {i: entry.document for i, entry in entries.items() if entry.document is not None}
        return [found[document_id] for document_id in ids if document_id in found]

    def versions(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        """The stored entries; in a dropped collection an id without one reads as a tombstone at the drop."""
        entries = self._entries(client, collection, ids)
        dropped = self.dropped_at(client, collection)
        if dropped is not None:
            return [entries.get(document_id) or StoredDocument(document_id, dropped, None) for document_id in ids]
        return [entries[document_id] for document_id in ids if document_id in entries]

    def scan(self, client: QdrantClient, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        """One page of entries, tombstones included, in point id order after ``after``'s point.

        Local mode pages in document id order instead (:meth:`local_scan`):
        its ``scroll`` sorts every point id of the collection for each page.

        Each of the two collections is scrolled from ``after``'s point id
        (inclusive in Qdrant, so one more is asked and that one dropped),
        and the two pages are merged by point id, the order Qdrant scrolls
        in (a UUID's canonical text orders like its 128 bits).
        """
        offset = document_point_id(after) if after is not None else None
        points: list[models.Record] = []
        for name in self._pair(collection):
            if not self.exists(client, name):
                continue
            page, _ = client.scroll(name, limit=limit + 1, offset=offset, with_payload=True)
            points.extend(point for point in page if str(point.id) != offset)
        # An id in both collections (a server race) is listed once: its newer entry.
        best: dict[str, StoredDocument] = {}
        for point in points:
            entry = stored_entry(point.payload or {})
            key = point_order(point.id)
            if key not in best or _precedence(entry) > _precedence(best[key]):
                best[key] = entry
        return [best[key] for key in sorted(best)[:limit]]

    def holds_entries(self, client: QdrantClient, collection: str) -> bool:
        """Whether the collection holds any entry, live document or tombstone."""
        for name in self._pair(collection):
            if self.exists(client, name) and client.count(name, exact=True).count > 0:
                return True
        return False

    def _entries(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> dict[str, StoredDocument]:
        found: dict[str, StoredDocument] = {}
        for name in self._pair(collection):
            if not self.exists(client, name):
                continue
            for point in _retrieve(client, name, ids, with_payload=True):
                entry = stored_entry(point.payload or {})
                current = found.get(entry.id)
                if current is None or _precedence(entry) > _precedence(current):
                    found[entry.id] = entry
        return found

    def _versions(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """(version, live) of the stored entry of each id that has one; the greater where both collections hold one."""
        found: dict[str, tuple[int, bool]] = {}
        for name in self._pair(collection):
            if not self.exists(client, name):
                continue
            for point in _retrieve(client, name, ids, with_payload=_VERSION_FIELDS):
                payload = point.payload or {}
                entry = (_version(payload), not payload.get("tombstone", False))
                current = found.get(payload["id"])
                if current is None or entry > current:
                    found[payload["id"]] = entry
        return found


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
        "metadata": dump_metadata(document.metadata, rfc3339),
        "vector": vector,
        **typed_fields(document.metadata),
    }


def decode(payload: Mapping[str, Any]) -> Document:
    return decode_document(
        payload["id"], payload["text"], _vector_bytes(payload), load_metadata(payload["metadata"], from_rfc3339)
    )


def decode_vector(payload: Mapping[str, Any]) -> tuple[float, ...] | None:
    """The vector as written, from the payload's float32 copy; None for a document without one."""
    data = _vector_bytes(payload)
    return None if data is None else float32_vector(data)


def _vector_bytes(payload: Mapping[str, Any]) -> bytes | None:
    text = payload.get("vector")
    return None if text is None else base64.b64decode(text)


def decode_metadata(payload: Mapping[str, Any]) -> Any:
    return load_metadata(payload["metadata"], from_rfc3339)


def stored_entry(payload: Mapping[str, Any]) -> StoredDocument:
    """The entry a point's payload holds: a tombstone, or a live document; no version stored is version 0."""
    if payload.get("tombstone", False):
        return StoredDocument(payload["id"], _version(payload), None)
    return StoredDocument(payload["id"], _version(payload), decode(payload))


def version_fields(version: int) -> dict[str, int]:
    """The payload fields of a version: whole, to read back, and as 32-bit halves, to compare exactly."""
    high, low = halves(version)
    return {"version": version, "v_hi": high, "v_lo": low}


def not_newer(version: int) -> models.Filter:
    """Holds for a point whose stored version is ``<= version``, or that has none (written before versions)."""
    high, low = halves(version)
    return models.Filter(
        should=[
            models.IsEmptyCondition(is_empty=models.PayloadField(key="v_hi")),
            models.FieldCondition(key="v_hi", range=models.Range(lt=high)),
            models.Filter(
                must=[
                    models.FieldCondition(key="v_hi", match=models.MatchValue(value=high)),
                    models.FieldCondition(key="v_lo", range=models.Range(lte=low)),
                ]
            ),
        ]
    )


def _version(payload: Mapping[str, Any]) -> int:
    return int(payload.get("version") or 0)


def _precedence(entry: StoredDocument) -> tuple[int, bool]:
    """Which of two entries of one id wins: the greater version, then live over tombstone."""
    return entry.version, entry.live


def _point(document: Document, version: int) -> models.PointStruct:
    return models.PointStruct(
        id=document_point_id(document.id),
        vector=list(document.vector) if document.vector is not None else {},
        payload={**encode(document), **version_fields(version)},
    )


def _tombstone(document_id: str, version: int) -> models.PointStruct:
    return models.PointStruct(
        id=document_point_id(document_id),
        vector={},
        payload={"id": document_id, "tombstone": True, **version_fields(version)},
    )


def _upsert(client: QdrantClient, collection: str, points: Sequence[models.PointStruct], version: int) -> None:
    """Insert the points, or replace the stored ones that :func:`not_newer` holds for; others stay."""
    condition = not_newer(version)
    for chunk in chunked(points, _CHUNK):
        client.upsert(collection, list(chunk), update_filter=condition)


def _delete_not_newer(client: QdrantClient, collection: str, ids: Sequence[str], version: int) -> None:
    """Delete the points of ``ids`` stored at a version ``<= version``; newer ones stay."""
    for chunk in chunked(ids, _CHUNK):
        point_ids: list[models.ExtendedPointId] = [document_point_id(i) for i in chunk]
        selector = models.Filter(must=[models.HasIdCondition(has_id=point_ids), not_newer(version)])
        client.delete(collection, models.FilterSelector(filter=selector))


def _retrieve(
    client: QdrantClient, collection: str, ids: Sequence[str], with_payload: bool | list[str]
) -> Iterable[models.Record]:
    if not ids:
        return []
    found: list[models.Record] = []
    for chunk in chunked(ids, _CHUNK):
        found.extend(client.retrieve(collection, [document_point_id(i) for i in chunk], with_payload=with_payload))
    return found


__all__ = [
    "TOMBSTONE",
    "Documents",
    "decode",
    "decode_metadata",
    "decode_vector",
    "encode",
    "not_newer",
    "stored_entry",
    "version_fields",
]
