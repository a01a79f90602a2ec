"""Repair: bring every store to the merge of all of them, streaming.

Writes reach every store, but a store can miss some (an outage, a crash
between two stores, a journal lost with its process). :func:`repair_stores`
reads every store and sends each one what it lacks, so that afterwards all
hold the same thing: the merge of what any of them holds, by the convergence
rules of ``docs/semantics.md``:

* a record: the greatest state under the merge order
  (:func:`fallthrough.ordering.merge_key`, tiebreak included), and the
  smallest ``seq`` any store gave the key;
* a batch header: of the ``(created_at, canonical metadata JSON)`` pairs the
  stores hold, the smallest;
* a document id: the entry with the greatest ``(version, live over
  tombstone, canonical digest of the document)``;
* a collection's vector dimension: the one the stores that have one agree
  on, given to those that have none (where the backends implement the
  optional dimension hooks). Stores that disagree are left as they are,
  and the disagreement is logged: no rule can tell which is right.

Each rule is a maximum (or minimum) over the stores, so the result does not
depend on the order in which stores are read, and a second repair finds
nothing to send.

Memory is bounded by one page per store: the repair pages through each
store in turn (its batches, each batch's records, its collections, each
collection's entries) in that store's own order, and for each page asks the
other stores for the same keys or ids. No order common to all stores is
needed. A batch or key held by several stores is looked at once per store
that holds it; after the first look the stores agree, so the later looks
send nothing. Dimensions are settled last, once per collection, so a full
repair also keeps the names of the collections the stores list.

Batch deletions are not repaired: a batch deleted on one store and present
on another is recreated (there are no batch tombstones). Document deletions
are, through tombstones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, Protocol

import attrs

from .errors import InvalidInput
from .ordering import merge_key, record_tiebreak
from .types import Batch, Capabilities, Document, Record, RepairCounts, RepairReport, StoredDocument, to_micros

logger = logging.getLogger("fallthrough")

DIMENSION_HOOKS = ("fallthrough_collection_dimension", "fallthrough_fix_collection_dimension")
"""Optional hooks: a backend of documents without them is left out when a repair carries collections' dimensions."""


class RepairTarget(Protocol):
    """One store, as the repair sees it: a name for the report, and a way to call its hooks.

    The router passes callables that go through its circuit breakers; tests
    pass a :class:`~fallthrough.testing.drivers.HookDriver`. A target may
    also have a ``capabilities`` attribute (a
    :class:`~fallthrough.types.Capabilities`): records are then repaired only
    among targets with ``records``, documents among those with
    ``documents``. Without it, a target takes part in both. A target may
    also have an ``implements(hook) -> bool`` method: one whose backend
    lacks the optional dimension hooks is then left out when dimensions are
    carried; without it, every hook is taken as implemented.
    """

    @property
    def name(self) -> str: ...

    def call(self, hook: str, /, **arguments: Any) -> Any: ...


def canonical_json(value: object) -> str:
    """The one text of a JSON value that every store agrees on: sorted keys, no spaces, UTF-8 as is.

    A datetime (document metadata may hold them, always in UTC) is written as
    ``{"$dt": <microseconds since the epoch>}``, at any depth: no metadata key
    starts with ``$``, so no object of a user's can be confused with it.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical_datetime)


def _canonical_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": to_micros(value)}
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def document_digest(document: Document) -> bytes:
    """A digest of a document's whole content, to order two documents stored at the same version."""
    vector = None if document.vector is None else list(document.vector)
    canonical = canonical_json([document.text, vector, document.metadata])
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()


def batch_header_key(batch: Batch) -> tuple[int, str]:
    """The sort key of a batch header; the smallest one over the stores wins."""
    return (to_micros(batch.created_at), canonical_json(batch.metadata))


def record_state_key(record: Record) -> tuple[int, int, int, int]:
    """The merge key of a record's state, tiebreak included; the greatest one over the stores wins."""
    tiebreak = record_tiebreak(record)
    return merge_key(record.attempt, record.status, record.updated_at, tiebreak)


def entry_key(entry: StoredDocument) -> tuple[int, bool, bytes]:
    """The sort key of a document entry; the greatest one over the stores wins."""
    if entry.document is None:
        return (entry.version, False, b"")
    return (entry.version, True, document_digest(entry.document))


def merge_record_copies(copies: Sequence[Record]) -> Record:
    """The merged record of one key: the greatest state, with the smallest seq."""
    winner = max(copies, key=record_state_key)
    lowest = min(copy.seq for copy in copies)
    return winner if winner.seq == lowest else attrs.evolve(winner, seq=lowest)


@attrs.define
class _Tally:
    batches: int = 0
    records: int = 0
    documents: int = 0
    tombstones: int = 0
    dimensions: int = 0

    def frozen(self) -> RepairCounts:
        return RepairCounts(self.batches, self.records, self.documents, self.tombstones, self.dimensions)


def _no_turn(batch_id: uuid.UUID) -> AbstractContextManager[None]:
    return nullcontext()


def repair_stores(
    targets: Sequence[RepairTarget],
    *,
    batch_id: uuid.UUID | None = None,
    collection: str | None = None,
    page_size: int = 1000,
    batch_turn: Callable[[uuid.UUID], AbstractContextManager[None]] = _no_turn,
) -> RepairReport:
    """Bring every target to the merge of all of them, and say what was sent where.

    :param targets: the stores, each with a distinct ``name``.
    :param batch_id: repair only this batch (its header and records).
    :param collection: repair only this collection.
    :param page_size: how many batches, records or entries to read per call.
    :param batch_turn: held around the repair of each batch, from reading
        its headers to its last page (a Store's :class:`~fallthrough.turns.Turns`,
        shared): a ``delete_batch`` made meanwhile then comes after the
        repair's writes on every store, never between its read and its write.
    :return: a :class:`~fallthrough.types.RepairReport` with, per target
        name, how many batch headers, records, documents and tombstones
        were sent to it; all zero when the stores already agreed.

    With neither ``batch_id`` nor ``collection`` everything is repaired;
    with one or both, only what they name. Errors of a store (such as
    :class:`~fallthrough.errors.BackendUnavailable`) propagate: what was
    sent before stays sent, and a later repair carries on from there.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise ValueError(f"repair targets need distinct names, got {names}")
    tallies = {target.name: _Tally() for target in targets}
    everything = batch_id is None and collection is None
    record_stores = [target for target in targets if _able(target, "records")]
    document_stores = [target for target in targets if _able(target, "documents")]
    # Found in one store's listing, a batch or collection is repaired from that
    # store's pages only: what another store holds is read when its own listing
    # reaches it, so each store's records and entries are paged once.
    if len(record_stores) > 1 and (everything or batch_id is not None):
        if batch_id is not None:
            with batch_turn(batch_id):
                _repair_batch(record_stores, record_stores, batch_id, page_size, tallies)
        else:
            for store in record_stores:
                for page in _pages(store, "fallthrough_list_batches", page_size, _batch_id):
                    for batch in page:
                        with batch_turn(batch.id):
                            _repair_batch(record_stores, [store], batch.id, page_size, tallies)
    if len(document_stores) > 1 and (everything or collection is not None):
        if collection is not None:
            _repair_collection(document_stores, document_stores, collection, page_size, tallies)
            _settle_dimension(document_stores, collection, tallies)
        else:
            listed: set[str] = set()
            for store in document_stores:
                for name in store.call("fallthrough_list_collections"):
                    _repair_collection(document_stores, [store], name, page_size, tallies)
                    listed.add(name)
            # Once every store's entries were sent: a document with a vector fixed the dimension where it went,
            # as any write does, and only the stores that still have none are sent it alone, once.
            for name in sorted(listed):
                _settle_dimension(document_stores, name, tallies)
    return RepairReport({name: tally.frozen() for name, tally in tallies.items()})


def _able(target: RepairTarget, capability: str) -> bool:
    capabilities = getattr(target, "capabilities", None)
    return not isinstance(capabilities, Capabilities) or bool(getattr(capabilities, capability))


def _pages(store: RepairTarget, hook: str, page_size: int, name: Any, **arguments: Any) -> Iterator[list[Any]]:
    """The non-empty pages of a paged listing, one at a time, chaining ``after`` from the last item."""
    after = None
    while True:
        page = list(store.call(hook, after=after, limit=page_size, **arguments))
        if page:
            yield page
        if len(page) < page_size:
            return
        after = name(page[-1])


def _batch_id(batch: Batch) -> uuid.UUID:
    return batch.id


# -- batches and records -------------------------------------------------------


def _repair_batch(
    stores: Sequence[RepairTarget],
    sources: Sequence[RepairTarget],
    batch_id: uuid.UUID,
    page_size: int,
    tallies: Mapping[str, _Tally],
) -> None:
    """Settle the batch's header on every store, then page through each source's records of it."""
    headers = {store.name: store.call("fallthrough_get_batch", batch_id=batch_id) for store in stores}
    present = [header for header in headers.values() if header is not None]
    if not present:
        return
    winner = min(present, key=batch_header_key)
    wanted = batch_header_key(winner)
    for store in stores:
        header = headers[store.name]
        if header is None or batch_header_key(header) != wanted:
            store.call(
                "fallthrough_repair_batch", batch_id=batch_id, metadata=winner.metadata, created_at=winner.created_at
            )
            tallies[store.name].batches += 1
    for source in sources:
        if headers[source.name] is None:
            continue  # it held no records: every one it needs comes from another store's pages
        for page in _pages(source, "fallthrough_list_records", page_size, _cursor, batch_id=batch_id, status=None):
            _merge_page(stores, source, batch_id, page, tallies)


def _cursor(record: Record) -> tuple[int, str]:
    return (record.seq, record.key)


def _merge_page(
    stores: Sequence[RepairTarget],
    source: RepairTarget,
    batch_id: uuid.UUID,
    page: Sequence[Record],
    tallies: Mapping[str, _Tally],
) -> None:
    keys = tuple(record.key for record in page)
    held: dict[str, dict[str, Record]] = {source.name: {record.key: record for record in page}}
    for store in stores:
        if store is not source:
            found = store.call("fallthrough_get_records", batch_id=batch_id, keys=keys)
            held[store.name] = {record.key: record for record in found}
    merged = [merge_record_copies([copies[key] for copies in held.values() if key in copies]) for key in keys]
    for store in stores:
        copies = held[store.name]
        missing = [record for record in merged if not _same_record(copies.get(record.key), record)]
        if missing:
            store.call("fallthrough_merge_records", batch_id=batch_id, records=missing)
            tallies[store.name].records += len(missing)


def _same_record(stored: Record | None, merged: Record) -> bool:
    return stored is not None and stored.seq == merged.seq and record_state_key(stored) == record_state_key(merged)


# -- collections and documents ---------------------------------------------------


def _repair_collection(
    stores: Sequence[RepairTarget],
    sources: Sequence[RepairTarget],
    collection: str,
    page_size: int,
    tallies: Mapping[str, _Tally],
) -> None:
    """Page through each source's entries of the collection, settling each page's ids on every store."""
    for source in sources:
        for page in _pages(source, "fallthrough_scan_documents", page_size, _entry_id, collection=collection):
            _settle_entries(stores, source, collection, page, tallies)


def _settle_dimension(stores: Sequence[RepairTarget], collection: str, tallies: Mapping[str, _Tally]) -> None:
    """Give the collection's dimension to every store that has none, when the stores that have one agree.

    Called once its entries are settled everywhere. A store that took
    vectors of another dimension since it was read refuses the dimension
    (``InvalidInput``): the stores disagree then, which is logged as when
    they disagree from the start, and the repair goes on.
    """
    able = [store for store in stores if all(_implements(store, hook) for hook in DIMENSION_HOOKS)]
    if len(able) < 2:
        return
    held = {store.name: store.call("fallthrough_collection_dimension", collection=collection) for store in able}
    known = sorted({dimension for dimension in held.values() if dimension is not None})
    if len(known) > 1:
        _warn_of_disagreement(collection, ", ".join(f"{name}: {d}" for name, d in held.items() if d is not None))
    if len(known) != 1:
        return
    for store in able:
        if held[store.name] is None:
            try:
                store.call("fallthrough_fix_collection_dimension", collection=collection, dimension=known[0])
            except InvalidInput as refused:
                _warn_of_disagreement(collection, f"{store.name} refused {known[0]}: {refused}")
                continue
            tallies[store.name].dimensions += 1


def _warn_of_disagreement(collection: str, details: str) -> None:
    logger.warning(
        "collection %r has vectors of different dimensions on different stores (%s); the repair leaves them",
        collection,
        details,
    )


def _implements(target: RepairTarget, hook: str) -> bool:
    implements = getattr(target, "implements", None)
    return implements is None or bool(implements(hook))


def _entry_id(entry: StoredDocument) -> str:
    return entry.id


def _settle_entries(
    stores: Sequence[RepairTarget],
    source: RepairTarget,
    collection: str,
    page: Sequence[StoredDocument],
    tallies: Mapping[str, _Tally],
) -> None:
    ids = tuple(entry.id for entry in page)
    held: dict[str, dict[str, StoredDocument]] = {source.name: {entry.id: entry for entry in page}}
    for store in stores:
        if store is not source:
            found = store.call("fallthrough_document_versions", collection=collection, ids=ids)
            held[store.name] = {entry.id: entry for entry in found}
    winners = [max((copies[i] for copies in held.values() if i in copies), key=entry_key) for i in ids]
    for store in stores:
        copies = held[store.name]
        upserts: dict[int, list[Document]] = defaultdict(list)
        tombstones: dict[int, list[str]] = defaultdict(list)
        for winner in winners:
            stored = copies.get(winner.id)
            if stored is not None and entry_key(stored) == entry_key(winner):
                continue
            if winner.document is None:
                tombstones[winner.version].append(winner.id)
            else:
                upserts[winner.version].append(winner.document)
        for version, documents in sorted(upserts.items()):
            store.call("fallthrough_upsert_documents", collection=collection, documents=documents, version=version)
            tallies[store.name].documents += len(documents)
        for version, deleted in sorted(tombstones.items()):
            store.call("fallthrough_delete_documents", collection=collection, ids=deleted, version=version)
            tallies[store.name].tombstones += len(deleted)


__all__ = [
    "DIMENSION_HOOKS",
    "RepairTarget",
    "batch_header_key",
    "canonical_json",
    "document_digest",
    "entry_key",
    "merge_record_copies",
    "record_state_key",
    "repair_stores",
]
