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
* The core stamps every write: sequence numbers, ``created_at`` and
  ``updated_at`` arrive as arguments. A backend stores them as given and
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
from collections.abc import Mapping, Sequence
from datetime import datetime

import pluggy

from .types import Batch, Capabilities, Document, Hit, Progress, Record, RecordUpdate, SearchQuery, Status
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

    :return: a :class:`~fallthrough.types.Capabilities`.
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
    """


@hookspec(firstresult=True)
def fallthrough_update_records(updates: Sequence[RecordUpdate], updated_at: datetime) -> Sequence[RecordUpdate]:
    """Apply status updates under the monotonic merge, as conditional writes.

    :param updates: one or more updates, at most one per (batch, key).
    :param updated_at: the time of the call, shared by every update in it.

    For each update the new state is ``status``, ``result`` and ``error``
    as given, ``attempt`` as given or else the stored one, ``updated_at``,
    and ``update.tiebreak``. It replaces the stored state only when
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
    error, ``updated_at`` and :data:`~fallthrough.ordering.PENDING_TIEBREAK`,
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


# --------------------------------------------------------------------------
# Documents and search
# --------------------------------------------------------------------------


@hookspec(firstresult=True)
def fallthrough_upsert_documents(collection: str, documents: Sequence[Document]) -> None:
    """Insert documents, or replace those with the same id, whole.

    :param collection: the collection; created on first use.
    :param documents: documents with distinct ids. Their vectors (where
        given) share one dimension.

    The first vector stored in a collection fixes its dimension.

    :raises InvalidInput: a vector's dimension differs from the collection's;
        nothing of the call is written.
    """


@hookspec(firstresult=True)
def fallthrough_delete_documents(collection: str, ids: Sequence[str]) -> int:
    """Delete documents by id; unknown ids and collections are ignored.

    :param collection: the collection.
    :param ids: distinct document ids.
    :return: how many documents were deleted.
    """


@hookspec(firstresult=True)
def fallthrough_get_documents(collection: str, ids: Sequence[str]) -> Sequence[Document]:
    """Read documents by id.

    :param collection: the collection; an unknown one holds no documents.
    :param ids: distinct document ids.
    :return: the documents found, in the order of ``ids``.
    """


@hookspec(firstresult=True)
def fallthrough_search(collection: str, query: SearchQuery) -> Sequence[Hit]:
    """Search a collection.

    :param collection: the collection; an unknown one holds no documents.
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

    :return: the hits, best first.
    :raises InvalidInput: the query vector's dimension differs from the
        collection's.
    """


# --------------------------------------------------------------------------
# Observers
# --------------------------------------------------------------------------


@hookspec
def fallthrough_missed_write(
    backend_name: str, operation: str, arguments: Mapping[str, object], error: BaseException
) -> None:
    """Told of every write that a backend missed while another applied it.

    This is for observers (a journal that replays missed writes, an alert),
    not for backends. Replaying ``operation`` with ``arguments`` on the same
    backend later moves it to the state the others have: writes are stamped
    by the core, and what reaches a second store is state-independent (a
    retry arrives as updates pinned to their attempts), so record states
    converge in any replay order. Two things keep the first write that
    arrives, and so need the original order: the ``seq`` of a key added by
    two different calls, and the metadata of a batch created twice.

    :param backend_name: the Store's name for the backend that missed it.
    :param operation: the hook name, for example ``"fallthrough_update_records"``.
    :param arguments: the keyword arguments of that hook call.
    :param error: why it was missed: the backend's error, or a
        :class:`~fallthrough.errors.BackendUnavailable` saying its circuit
        breaker was open.
    """
