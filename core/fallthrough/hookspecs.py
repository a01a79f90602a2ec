"""Hook specifications: the contract between the core and a backend plugin.

A backend plugin is an object whose methods are marked with
:data:`fallthrough.hookimpl`. The entry point in the ``fallthrough.backends``
group names a factory (usually the class) that takes the parsed URL,
:class:`sqlalchemy.engine.URL`, and returns that object. The factory must not
do I/O: a Store is built even while a server is down.

The core registers one such object per configured URL on the Store's
:class:`pluggy.PluginManager` and calls each backend's implementation on its
own, in the order it chooses (pluggy would stop at the first exception, and
the core must fall through instead). Hook wrappers registered on the same
manager see every one of those calls.

Rules every backend hook follows:

* Arguments are already validated by the core. Keys, ids, JSON values,
  vectors and filters need no second check; what only the store can know
  (a record that does not exist, a vector dimension that differs from the
  collection's) the backend checks.
* The core stamps every write: sequence numbers, ``created_at``,
  ``updated_at`` and document versions arrive as arguments. A backend stores them as given and
  never reads its own clock, so the same write yields the same state on
  every store.
* Raise :class:`~fallthrough.errors.BackendUnavailable` when the store
  cannot be reached, the connection was lost, the server is shutting down
  or a timeout passed. That is the only error the core falls through on.
* Raise :class:`~fallthrough.errors.NotFound` or
  :class:`~fallthrough.errors.InvalidInput` where a hook says so, and write
  nothing in that case.
* Hooks are called from many threads at once. A backend whose driver is not
  thread-safe serialises its own calls.
* No message may contain a password or an API key.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import pluggy

from .filters import Filter
from .types import (
    Batch,
    BatchProgress,
    Capabilities,
    Document,
    Hit,
    Progress,
    Record,
    RecordUpdate,
    SearchQuery,
    Status,
    StoredDocument,
)
from .validation import JSON

PROJECT_NAME = "fallthrough"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification. Used by this module only."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a hook implementation in a backend or observer plugin."""


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_open() -> None:
    """Connect and make sure the schema exists.

    Called before the first other hook, and again after it raised
    :class:`~fallthrough.errors.BackendUnavailable`, until it succeeds. It
    must be idempotent, and safe when two processes open the same empty
    store at once.

    :raises BackendUnavailable: the store cannot be reached now.
    """


@hookspec(firstresult=True)
def fallthrough_close() -> None:
    """Release connections and files. Called once, by :meth:`Store.close`.

    Must not raise for a backend that was never opened.
    """


@hookspec(firstresult=True)
def fallthrough_ping() -> None:
    """Check that the store answers now, with one cheap round trip.

    :raises BackendUnavailable: it does not.
    """


@hookspec(firstresult=True)
def fallthrough_capabilities() -> Capabilities:
    """Say what this backend can do. Called after a successful open.

    A backend may decide at open time (for example, vector search only when
    the server has pgvector). The core routes by the answer: it sends
    record calls only to backends with ``records``, document calls only to
    those with ``documents``, and a search only to a backend whose search
    flags cover the query (or, degraded, all of it but the vector).

    ``parallel_calls`` is a hint the router ignores: how many calls to this
    backend are worth running at once from one process (1 to 64), or None
    for no limit of its own. :class:`~fallthrough.aio.AsyncStore` bounds its
    default concurrency by the smallest one declared. Declare it only where
    a measurement shows more threads do not pay (calls that run under the
    GIL and serialise anyway: SQLite declares 2); it may depend on the URL.

    :return: a :class:`~fallthrough.types.Capabilities`.
    """


@hookspec(firstresult=True)
def fallthrough_secret_url_keys() -> Collection[str]:
    """Name the query options of this backend's URL whose values are secrets. Optional.

    The core masks the URL's password and the common secret options
    (``api_key``, and any option whose name holds ``password``, ``secret``
    or ``token``: :func:`fallthrough.urls.secrets_of`) itself. A store with
    secret options of its own (libpq's ``scram_client_key``) names them here, and the core masks their values too,
    in the Store's repr, in :meth:`~fallthrough.Store.health`, in log lines
    and in every exception text it builds or passes on. Called once, when
    the Store is built, before ``fallthrough_open``: it must do no I/O.

    The plugin masks its own messages with the same keys:
    :meth:`fallthrough.kit.Endpoint.from_url` takes them.

    :return: option names, compared case-insensitively; empty when the
        common ones are all there are.
    """


# --------------------------------------------------------------------------
# Batches and records
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_create_batch(
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    metadata: Mapping[str, JSON],
    created_at: datetime,
) -> Batch:
    """Create a batch with one pending record per key, or add to an existing one.

    :param batch_id: the batch's id.
    :param keys: distinct keys, in input order; may be empty.
    :param first_seq: the ``seq`` of ``keys[0]``; ``keys[i]`` gets
        ``first_seq + i``.
    :param metadata: a JSON object, stored only when the batch is new.
    :param created_at: the batch's creation time when new, and the
        ``updated_at`` of every record this call adds.

    Records start pending, at attempt 0, with no result or error and
    :data:`~fallthrough.ordering.PENDING_TIEBREAK`. When the batch exists
    this is :func:`fallthrough_add_records`: keys already present are left
    untouched and the batch's metadata and ``created_at`` stay as they are.

    :return: the stored :class:`~fallthrough.types.Batch`, with its total
        after the call.
    """


@hookspec(firstresult=True)
def fallthrough_add_records(batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime) -> int:
    """Append pending records to an existing batch.

    :param batch_id: the batch.
    :param keys: distinct keys in input order. Keys already in the batch are
        left untouched, whatever their state.
    :param first_seq: the ``seq`` of ``keys[0]``; ``keys[i]`` gets
        ``first_seq + i`` (so a skipped key leaves a gap).
    :param created_at: the ``updated_at`` of the new records.
    :return: how many records were added.
    :raises NotFound: the batch does not exist; nothing is written.

    A streamed create may call this twice at once for the same batch, from
    two threads, with disjoint keys and ``seq`` ranges, unless the backend
    declares :attr:`~fallthrough.types.Capabilities.parallel_calls`
    (``docs/semantics.md``, "Streaming creates").
    """


@hookspec(firstresult=True)
def fallthrough_delete_records(batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
    """Take back records that a create or add wrote: the undo of a streamed create that failed part-way.

    The core streams a large ``create_batch``/``add_records`` to the stores
    in chunks (``docs/semantics.md``, "Streaming creates"). When a later
    chunk turns out invalid, the records the earlier chunks added to a
    batch that existed before the call are removed with this hook,
    replicated and journaled like any write.

    :param batch_id: the batch; an unknown one holds no records (no error,
        returns 0).
    :param keys: distinct keys.
    :param seqs: as many ``seq`` values: ``keys[i]`` is deleted only when its
        stored ``seq`` is ``seqs[i]``, the one the call that added it gave
        it. A key the batch held before that call, whose ``seq`` is its own,
        is left untouched whatever its state.

    A matching record is deleted whatever its state since (a worker may
    have claimed or finished it). The batch row and every other record
    stay. Counters the backend keeps (status counts) drop with the
    records, in the same transaction where the store has transactions.
    Idempotent: a replay finds nothing more to delete.

    :return: how many records were deleted.
    """


@hookspec(firstresult=True)
def fallthrough_update_records(updates: Sequence[RecordUpdate], updated_at: datetime) -> Sequence[RecordUpdate]:
    """Apply status updates under the monotonic merge, as conditional writes.

    :param updates: one or more updates, at most one per (batch, key).
    :param updated_at: the time of the call, shared by every update in it.

    For each update the new state is ``status``, ``result`` and ``error``
    as given, ``attempt`` as given or else the stored one, ``updated_at``,
    and ``update.tiebreak``, with no lease (``lease_owner`` and
    ``lease_expires`` NULL: an applied update gives up any claim). It
    replaces the stored state only when
    :func:`~fallthrough.ordering.merge_key` of the new state is greater than
    that of the stored one. The comparison and the write must be one atomic
    step in the store (``UPDATE ... WHERE (order) < (new order)``, a
    conditional upsert), never a read followed by a write.

    :return: the updates that applied, in input order, each pinned to the
        attempt it applied at (``update.pinned(n)`` where the
        update named none). The core sends exactly these to the other
        stores, so what they receive no longer depends on their state.
    :raises NotFound: some update names a batch or key that does not exist;
        no update of the call is applied and no record is created.
    """


@hookspec(firstresult=True)
def fallthrough_retry_failed(batch_id: uuid.UUID, updated_at: datetime) -> Sequence[RecordUpdate]:
    """Move every failed record of the batch back to pending, for another attempt.

    Each such record gets ``attempt + 1``, status pending, no result, no
    error, no lease, ``updated_at`` and :data:`~fallthrough.ordering.PENDING_TIEBREAK`,
    in one conditional write (``UPDATE ... WHERE status = 'failed'``).
    Records in other statuses are untouched.

    :param batch_id: the batch.
    :param updated_at: the time of the call.
    :return: what the call did, as updates: one
        ``RecordUpdate(batch_id, key, "pending", attempt=<the new attempt>)``
        per record moved, in ``(seq, key)`` order. The core applies these to
        the other stores with :func:`fallthrough_update_records`, so every
        store ends in the same state whatever it held before.
    :raises NotFound: the batch does not exist.
    """


@hookspec(firstresult=True)
def fallthrough_delete_batch(batch_id: uuid.UUID) -> bool:
    """Delete a batch and all its records.

    :param batch_id: the batch.
    :return: whether the batch existed.
    """


@hookspec(firstresult=True)
def fallthrough_get_batch(batch_id: uuid.UUID) -> Batch | None:
    """Read a batch.

    :param batch_id: the batch.
    :return: the :class:`~fallthrough.types.Batch`, or None when it does not
        exist.
    """


@hookspec(firstresult=True)
def fallthrough_get_record(batch_id: uuid.UUID, key: str) -> Record | None:
    """Read one record.

    :param batch_id: the batch.
    :param key: the record's key.
    :return: the :class:`~fallthrough.types.Record`, or None when the batch
        or the key does not exist.
    """


@hookspec(firstresult=True)
def fallthrough_list_records(
    batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
) -> Sequence[Record]:
    """Read one page of a batch's records, in ``(seq, key)`` order.

    :param batch_id: the batch.
    :param status: only records in this status, or all when None.
    :param after: the ``(seq, key)`` of the last record of the previous page;
        only records strictly after it are returned. None for the first page.
    :param limit: the most records to return, at least 1.
    :return: up to ``limit`` records. Fewer than ``limit`` means the last
        page. Use a keyset (``WHERE (seq, key) > after``), never OFFSET.
    :raises NotFound: the batch does not exist.
    """


@hookspec(firstresult=True)
def fallthrough_progress(batch_id: uuid.UUID) -> Progress:
    """Count a batch's records by status, exactly.

    :param batch_id: the batch.
    :return: a :class:`~fallthrough.types.Progress`; counts must be exact
        even while other threads and processes update the batch.
    :raises NotFound: the batch does not exist.
    """


@hookspec(firstresult=True)
def fallthrough_list_batch_progress(before: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[BatchProgress]:
    """Read one page of all batches, newest first, each with its progress.

    :param before: the ``(created_at, id)`` of the last batch of the previous
        page; only batches strictly before it in the order below are
        returned. None for the first page.
    :param limit: the most batches to return, at least 1.

    The order is ``(created_at, id)`` descending, ids compared as UUIDs
    (their 128-bit integers, which is also the order of their 16 bytes and
    of their lowercase hex text), so that every store lists the same batches
    in the same order and a listing carries on across a fall-through. A
    keyset (``WHERE (created_at, id) < before``), never OFFSET.

    Progress must be cheap: one query per page on a store that can join or
    group (counters it keeps, or one grouped count for the page's batches),
    never a scan of every record of every batch listed. Counts are exact as
    of the read, like :func:`fallthrough_progress`.

    :return: up to ``limit`` :class:`~fallthrough.types.BatchProgress`
        values. Fewer than ``limit`` means the last page.
    """


# --------------------------------------------------------------------------
# Claims and leases (backends that declare ``claims``)
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_claim_records(
    batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
) -> Sequence[Record]:
    """Hand up to ``limit`` records of a batch to ``worker``, atomically, in batch order.

    :param batch_id: the batch.
    :param worker: who claims: stored as ``lease_owner``. Validated by the
        core (a non-empty string of at most 512 characters, as a key).
    :param limit: the most records to claim, at least 1.
    :param claimed_at: the time of the call, stamped by the core: it is the
        new ``updated_at``, and the "now" a lease is expired against. Never
        the store's own clock.
    :param lease_until: ``claimed_at`` plus the lease, stamped by the core:
        the new ``lease_expires``.

    A record is claimable when it is pending, or processing with a lease
    that expired (``lease_expires <= claimed_at``). A processing record with
    no lease (set by an update) is not claimable. The claimable records
    with the smallest ``(seq, key)`` are taken, at most ``limit``, and each
    becomes: status processing, ``lease_owner = worker``, ``lease_expires =
    lease_until``, ``updated_at = claimed_at``, no result, no error, tiebreak
    :func:`~fallthrough.ordering.content_tiebreak` of that state with its
    lease; ``attempt`` unchanged for a pending record and ``attempt + 1``
    for an expired one (so the late answer of the worker that lost it,
    pinned to its attempt, is older than the new state and is not applied).

    The choice and the write are one atomic step: two claimers running at
    once on one store never both get a record (``SELECT ... FOR UPDATE
    SKIP LOCKED`` inside the ``UPDATE``, one write transaction, or
    conditional writes filtered on the state read, where the loser's write
    matches nothing and it takes other records). A store that cannot make
    that promise does not declare ``claims``.

    :return: the claimed records in their new state, in ``(seq, key)``
        order; empty when nothing is claimable. The core sends exactly these
        to the other stores with :func:`fallthrough_merge_records`.
    :raises NotFound: the batch does not exist; nothing is written.
    """


@hookspec(firstresult=True)
def fallthrough_extend_leases(
    batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
) -> Sequence[Record]:
    """Extend the leases ``worker`` still holds on some records of a batch.

    :param batch_id: the batch.
    :param keys: distinct keys; keys the batch does not hold are passed over.
    :param worker: the holder.
    :param now: the time of the call, stamped by the core: the new
        ``updated_at``, and the "now" a lease is expired against.
    :param lease_until: the new ``lease_expires``; later than ``now``.

    A record is extended when it is processing, ``lease_owner == worker``
    and ``lease_expires > now`` (a lease that expired may already be
    someone else's to claim; its holder has lost it). It gets ``updated_at
    = max(now, stored updated_at + 1 microsecond)`` (so that its state is
    newer in the merge order even when the claiming Store's clock ran
    ahead), ``lease_expires = lease_until`` and the tiebreak of its new
    state; status, attempt, result and error stay. Check and write are one
    atomic step, as for :func:`fallthrough_claim_records`.

    :return: the extended records in their new state, in ``(seq, key)``
        order. The core sends them to the other stores with
        :func:`fallthrough_merge_records`.
    :raises NotFound: the batch does not exist; nothing is written.
    """


# --------------------------------------------------------------------------
# Documents and search
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_upsert_documents(collection: str, documents: Sequence[Document], version: int) -> None:
    """Insert documents, or replace those with the same id, whole, unless a newer entry is stored.

    :param collection: the collection; created on first use.
    :param documents: documents with distinct ids. Their vectors (where
        given) share one dimension.
    :param version: the write's version, stamped by the core (microseconds
        since the epoch, strictly increasing within a Store).

    Each document is written, with ``version``, only when its id has no
    stored entry, or its stored entry (a live document or a tombstone) has a
    version ``<= version``. Equal counts as older, so replaying the same
    write is idempotent and a repair can settle two writes stamped in the
    same microsecond. A document whose stored entry is newer is left out,
    silently: the write lost to a newer one.

    The first vector stored in a collection fixes its dimension. The check
    covers every document of the call, the ones left out as older too, so
    whether a call is refused never depends on the versions a store holds.

    :raises InvalidInput: a vector's dimension differs from the collection's;
        nothing of the call is written.
    """


@hookspec(firstresult=True)
def fallthrough_delete_documents(collection: str, ids: Sequence[str], version: int) -> int:
    """Delete documents by id, leaving a tombstone at ``version`` for each.

    :param collection: the collection; it need not exist (it does afterwards).
    :param ids: distinct document ids; they need not exist. (The Store
        accepts repeats and sends each id once.)
    :param version: the delete's version, stamped by the core like
        :func:`fallthrough_upsert_documents`'s.

    Every id whose stored entry has a version ``<= version``, or that has no
    entry at all, gets a tombstone at ``version``: an entry with no text,
    vector or metadata, invisible to :func:`fallthrough_get_documents`,
    :func:`fallthrough_search` and counts, that blocks every older upsert of
    the id. A tombstone is written even for an id never seen and in a
    collection that does not exist yet: otherwise a repair would copy an old
    document back from another store, or a late replayed upsert would bring
    it back. Entries with a newer version are left untouched. Tombstones are
    kept until :func:`fallthrough_purge_tombstones` removes them.

    :return: how many LIVE documents became tombstones (ids that were
        missing, already tombstones, or newer are not counted).
    """


@hookspec(firstresult=True)
def fallthrough_get_documents(collection: str, ids: Sequence[str]) -> Sequence[Document]:
    """Read documents by id.

    :param collection: the collection; an unknown one holds no documents.
    :param ids: distinct document ids.
    :return: the live documents found, in the order of ``ids``; tombstones
        are left out like missing ids.
    """


@hookspec(firstresult=True)
def fallthrough_search(collection: str, query: SearchQuery) -> Sequence[Hit]:
    """Search a collection.

    :param collection: the collection; an unknown one holds no documents.
        Tombstones are never searched, matched or counted.
    :param query: a validated :class:`~fallthrough.types.SearchQuery` that
        uses only parts this backend declared in its capabilities.

    * ``query.filter`` (a :mod:`fallthrough.filters` tree) keeps only the
      documents it matches, with exactly :func:`fallthrough.filters.matches`.
    * ``query.text`` keeps only documents whose tokens include every token of
      ``query.tokens``, as :mod:`fallthrough.text` defines them.
    * ``query.vector`` keeps only documents with a vector and ranks them by
      cosine similarity, highest first; the score is that similarity.
    * Without a vector, text matches are ranked by the backend's own
      relevance (higher is better), and a filter-only query lists documents
      in id order with score 0.0.
    * Ties are ordered by id. At most ``query.limit`` hits.
    * ``query.with_vectors``: each hit's ``vector`` is its document's vector
      (None for a document without one); otherwise every ``vector`` is None.

    :return: the hits, best first.
    :raises InvalidInput: the query vector's dimension differs from the
        collection's.
    """


@hookspec(firstresult=True)
def fallthrough_count_documents(collection: str, filter: Filter | None) -> int:
    """Count a collection's live documents that match a filter.

    :param collection: the collection; an unknown one holds no documents (0).
    :param filter: a :mod:`fallthrough.filters` tree, evaluated natively
        exactly as :func:`fallthrough_search` does (by
        :func:`fallthrough.filters.matches`), or None for every live document.

    Tombstones and dropped documents are never counted. Exact, not an
    estimate: the conformance suite compares it with the reference model.

    :return: how many live documents match.
    """


@hookspec(firstresult=True)
def fallthrough_list_documents(
    collection: str, filter: Filter | None, after: str | None, limit: int
) -> Sequence[Document]:
    """Read one page of a collection's live documents, ascending by id in code-point order.

    :param collection: the collection; an unknown one holds no documents.
    :param filter: a :mod:`fallthrough.filters` tree evaluated natively as in
        :func:`fallthrough_search`, or None for every live document.
    :param after: the id of the last document of the previous page; only
        ids greater than it (Python ``str`` order: code points, never a
        collation) are returned. None for the first page.
    :param limit: the most documents to return, at least 1.

    Unlike :func:`fallthrough_scan_documents`, the order is the same on
    every backend, because ``Store.documents`` may take one page from one
    store and the next page from another after a failure. A keyset
    (``WHERE id > after ORDER BY id``), never OFFSET, so each page costs the
    same wherever it is; tombstones are skipped.

    :return: up to ``limit`` documents. Fewer than ``limit`` means the last page.
    """


@hookspec(firstresult=True)
def fallthrough_drop_collection(collection: str, version: int) -> bool:
    """Drop a collection's documents as of ``version``: a collection-wide tombstone.

    :param collection: the collection; it need not exist.
    :param version: the drop's version, stamped by the core like
        :func:`fallthrough_delete_documents`'s.

    Every entry (live document or tombstone) with a version ``<= version``
    is removed, and the collection remembers ``version`` as its drop
    version (the greater one, when it already had one). From then on:

    * an upsert or delete at a version ``<=`` the drop version writes
      nothing (a replayed or repaired older write cannot bring a document
      back);
    * :func:`fallthrough_document_versions` reports, for an id with no
      stored entry, a tombstone at the drop version, so that a repair sends
      the drop's effect to a store that missed it;
    * entries newer than the drop (written before it arrived, in replay
      order) stay; an upsert newer than it starts the collection again;
    * the collection's vector dimension stays as it was: backends build
      per-dimension indexes and cache the dimension for good, so a new
      embedding size takes a new collection name.

    Replaying the same drop is idempotent. The drop version is kept for good
    (a purge of tombstones leaves it); :func:`fallthrough_list_collections`
    keeps listing the collection.

    :return: True when a live document was removed.
    """


@hookspec(firstresult=True)
def fallthrough_list_live_collections() -> Sequence[str]:
    """Name every collection that holds at least one live document.

    Unlike :func:`fallthrough_list_collections`, collections with only
    tombstones, or dropped and not written since, are left out: this is
    what an application sees (``Store.collections``).

    :return: the names, sorted ascending in Python ``str`` order (code points).
    """


# --------------------------------------------------------------------------
# Reading everything and merging full states: what a repair needs
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_list_collections() -> Sequence[str]:
    """Name every collection that holds any entry (live document or tombstone) or a drop version.

    A collection is listed while it holds an entry, even when every entry is
    a tombstone, and from its first drop on, whether or not entries remain
    (a repair sends the drop to the stores that missed it). A delete naming
    no ids writes no entry, and a collection whose last tombstone was purged
    and that was never dropped is no longer listed.

    :return: the names, sorted ascending in Python ``str`` order (code
        points, not a collation).
    """


@hookspec(firstresult=True)
def fallthrough_scan_documents(collection: str, after: str | None, limit: int) -> Sequence[StoredDocument]:
    """Read one page of a collection's entries, tombstones included, with their versions.

    :param collection: the collection; an unknown one holds no entries.
    :param after: the id of the last entry of the previous page; only
        entries after it in the backend's order are returned. None for the
        first page.
    :param limit: the most entries to return, at least 1.

    The order is the backend's own stable total order of ids, whichever it
    pages cheaply (code points, a collation, a point id derived from the
    id): the caller only chains ``after`` from page to page, and never
    compares ids from two backends by position. Each page costs the same
    wherever it is: a keyset (``WHERE id > after``), never OFFSET.

    :return: up to ``limit`` :class:`~fallthrough.types.StoredDocument`
        entries; ``document`` is None for a tombstone. Fewer than ``limit``
        means the last page.
    """


@hookspec(firstresult=True)
def fallthrough_document_versions(collection: str, ids: Sequence[str]) -> Sequence[StoredDocument]:
    """Read the stored entries of some ids, live documents and tombstones alike.

    :param collection: the collection; an unknown one holds no entries.
    :param ids: distinct document ids.
    :return: a :class:`~fallthrough.types.StoredDocument` for every id that
        has an entry, in the order of ``ids``; ids with none are left out,
        except in a dropped collection, where such an id reads as a
        tombstone at the drop version (see :func:`fallthrough_drop_collection`).
    """


@hookspec(firstresult=True)
def fallthrough_collection_dimension(collection: str) -> int | None:
    """Read a collection's vector dimension. Optional, together with :func:`fallthrough_fix_collection_dimension`.

    :param collection: the collection; an unknown one has none.
    :return: the dimension its first vector fixed, or None while no vector
        has been stored in it. It is kept through deletes, drops and purges
        (see :func:`fallthrough_drop_collection`).

    Once a collection's entries are settled, a repair reads it from every
    store and gives it to a store that has none
    (:func:`fallthrough_fix_collection_dimension`): where every vector was
    deleted or dropped, no document is left to carry the dimension, and
    without it an upsert of another dimension would be refused by the
    stores that remember and written by the one that does not. A full
    repair does this for the collections :func:`fallthrough_list_collections`
    names. A backend that implements neither hook is left out of that step.
    """


@hookspec(firstresult=True)
def fallthrough_fix_collection_dimension(collection: str, dimension: int) -> None:
    """Fix a collection's vector dimension, as its first stored vector would. Optional (see above).

    :param collection: the collection. An unknown one is made known with
        this dimension and no entry: it is listed by neither listing of
        collections until it holds an entry or is dropped.
    :param dimension: the dimension, at least 1.

    No entry, drop version or tombstone changes. A collection that already
    has this dimension is left as it is, so a second call does nothing.

    :raises InvalidInput: the collection already has another dimension;
        nothing changes.
    """


@hookspec(firstresult=True)
def fallthrough_list_batches(after: uuid.UUID | None, limit: int) -> Sequence[Batch]:
    """Read one page of all batches.

    :param after: the id of the last batch of the previous page; only
        batches after it in the backend's order are returned. None for the
        first page.
    :param limit: the most batches to return, at least 1.

    The order is the backend's own stable total order of batch ids (as
    stored: bytes, text, a UUID type); the caller only chains ``after``.
    A keyset, never OFFSET.

    :return: up to ``limit`` :class:`~fallthrough.types.Batch` values, each
        with its current total. Fewer than ``limit`` means the last page.
    """


@hookspec(firstresult=True)
def fallthrough_get_records(batch_id: uuid.UUID, keys: Sequence[str]) -> Sequence[Record]:
    """Read several records of one batch by key.

    :param batch_id: the batch; an unknown one holds no records (no error).
    :param keys: distinct keys.
    :return: the :class:`~fallthrough.types.Record` of every key the batch
        holds, in the order of ``keys``; missing keys are left out.
    """


@hookspec(firstresult=True)
def fallthrough_repair_batch(batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
    """Make a batch's header what a repair decided it is.

    :param batch_id: the batch.
    :param metadata: the winning JSON object.
    :param created_at: the winning creation time.

    When the batch is absent it is created with no records. When present,
    its metadata and ``created_at`` are set to these unconditionally: the
    repair has already picked the winner (see ``docs/semantics.md``).
    Records are untouched.
    """


@hookspec(firstresult=True)
def fallthrough_merge_records(batch_id: uuid.UUID, records: Sequence[Record]) -> int:
    """Merge full record states into a batch, as a repair sends them.

    :param batch_id: the batch.
    :param records: records with distinct keys, each with
        ``record.batch_id == batch_id``.

    For each record:

    * absent: it is inserted with exactly this state (``seq``, ``status``,
      ``attempt``, ``result``, ``error``, ``updated_at``, the lease fields)
      and tiebreak :func:`fallthrough.ordering.record_tiebreak` of the
      record (its content and its lease: two claims stamped in the same
      microsecond by two stores differ only there), which is what every
      stored tiebreak already equals;
    * present: its ``seq`` becomes ``min(stored seq, record.seq)``, and its
      state is replaced only when the record's
      :func:`~fallthrough.ordering.merge_key` is greater than the stored
      one (its tiebreak ``record_tiebreak(record)`` too), the same
      conditional write as :func:`fallthrough_update_records`;
    the lease fields are replaced with the rest of the state.

    The core also sends claims and lease extensions to the second and later
    stores this way (see :func:`fallthrough_claim_records`).

    One conditional write per chunk where the store has transactions
    (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), never a read followed
    by a write; a store without them uses conditional upserts.

    :return: how many records changed: inserted, ``seq`` lowered, or state
        replaced (a record that did two of those counts once).
    :raises NotFound: the batch does not exist; nothing is written.
    """


# --------------------------------------------------------------------------
# Housekeeping
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_purge_tombstones(collection: str, before: int, limit: int) -> int:
    """Remove up to ``limit`` of a collection's tombstones whose version is older than ``before``. Optional.

    :param collection: the collection; an unknown one holds no tombstones.
    :param before: a version (microseconds since the epoch, like the
        writes' versions); only tombstones with a version ``< before`` go.
    :param limit: the most tombstones to remove in this call, at least 1.
        The core calls again until a call removes fewer.

    Live documents, tombstones at ``before`` or newer, the collection's drop
    version and its vector dimension stay as they are. A purged id has no
    entry afterwards (in a dropped collection it reads as a tombstone at the
    drop version again, see :func:`fallthrough_drop_collection`), so an
    upsert older than the purged tombstone is written: the core purges only
    what is older than a grace period the application chose
    (``Store.purge_tombstones``). Each tombstone is removed only while it is
    still a tombstone older than ``before``: a write that replaced it
    meanwhile stays.

    A backend that does not implement this hook keeps its tombstones for
    good; ``Store.purge_tombstones`` reports it as left out.

    :return: how many tombstones were removed.
    """


# --------------------------------------------------------------------------
# Observers
# --------------------------------------------------------------------------


@hookspec
def fallthrough_missed_write(
    backend_name: str, operation: str, arguments: Mapping[str, object], error: BaseException
) -> None:
    """Told of every write that a backend missed while another applied it.

    This is for observers (an alert, metrics), not for backends. The Store
    has already journaled the write for that backend and replays it itself
    (``docs/semantics.md``, "Failover guarantees"); writes deferred by the
    ``"first"`` write concern are not misses and are not announced.
    Replaying ``operation`` with ``arguments`` on the same backend moves it
    to the state the others have: writes are stamped by the core, and what
    reaches a second store is state-independent (a retry arrives as updates
    pinned to their attempts), so record states converge in any replay
    order. An observer must not write to the batch it is told about from
    here: a create, add or delete holds that batch's turn while it tells
    observers, so such a write raises :class:`~fallthrough.errors.TurnHeld`
    rather than wait for itself (and the Store logs what the observer raised).

    :param backend_name: the Store's name for the backend that missed it.
    :param operation: the hook name, for example ``"fallthrough_update_records"``.
    :param arguments: the keyword arguments of that hook call.
    :param error: why it was missed: the backend's error, or a
        :class:`~fallthrough.errors.BackendUnavailable` saying its circuit
        breaker was open or that it is behind its own journaled writes.
    """
