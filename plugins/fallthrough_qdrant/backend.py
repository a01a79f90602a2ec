"""The plugin object: Qdrant behind the fallthrough hooks.

Each hook takes the client from :meth:`.connection.Database.read` or
:meth:`~.connection.Database.write`
(locked in local mode, errors translated) and hands it to the module that
knows the calls: :mod:`.records`, :mod:`.documents`, :mod:`.search`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from qdrant_client import QdrantClient
from sqlalchemy.engine import URL, make_url

from fallthrough import hookimpl
from fallthrough.filters import Filter
from fallthrough.types import (
    JSON,
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
    to_micros,
)

from . import search
from .claims import Claims
from .connection import ClientFactory, Database, Settings
from .counts import LocalCounts
from .document_order import LocalDocumentOrder
from .documents import Documents
from .order import LocalOrder
from .records import Records
from .schema import document_collections

# No parallel_calls, in local mode either, though every local-mode hook runs under one lock: measured
# (benchmarks/async_stall.py, qdrant+memory://), fewer threads make an asyncio loop's stalls longer, not
# shorter (the largest at the median: 1 thread 520 ms, 2 threads 150 ms, 8 threads 103-108 ms, at about the
# same wall time), so the hint would only hurt. A server's calls wait on the socket: no limit of its own.
CAPABILITIES = Capabilities(
    records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
)

logger = logging.getLogger(__name__)


class QdrantBackend:
    """The ``qdrant`` backend: REST or gRPC, each with or without TLS, or qdrant-client's local mode.

    See :mod:`.connection` for the URL spellings and options.

    :param url: the backend URL.
    :param client_factory: builds the qdrant-client; by default from the
        URL. For tests that watch the calls made on a real client.
    """

    def __init__(self, url: URL | str, client_factory: ClientFactory | None = None) -> None:
        # No I/O here: a Store builds its backends before any is reachable.
        # The parsed URL is not kept: its query may hold the API key.
        self.settings = Settings.from_url(make_url(url) if isinstance(url, str) else url)
        self._database = Database(self.settings, client_factory)
        # Other clients can write between this one's reads and writes unless it is local.
        local = self.settings.local
        local_order = LocalOrder(self._database.names.records) if local else None
        local_counts = LocalCounts(self._database.names.records) if local else None
        self._records = Records(self._database.names, not local, local_order, local_counts)
        self._claims = Claims(self._database.names, not local, local_order, local_counts)
        self._documents = Documents(
            self._database.names,
            verify_writes=not local,
            index_payloads=not local,
            local_order=LocalDocumentOrder() if local else None,
        )

    def __repr__(self) -> str:
        return f"<QdrantBackend {self.settings.name}>"

    def _forget_order(self, batch_id: uuid.UUID | None) -> None:
        """Local mode: a hook that may change which (seq, key) pairs a batch holds drops its listing order."""
        if self._records.local_order is not None:
            self._records.local_order.forget(batch_id)

    def _forget_counts(self, batch_id: uuid.UUID | None) -> None:
        """Local mode: a hook that changes a batch's counts by more than it reads drops them."""
        if self._records.local_counts is not None:
            self._records.local_counts.forget(batch_id)

    @contextmanager
    def _write_records(self) -> Iterator[QdrantClient]:
        """The client for a hook that writes records; in local mode, one that fails part way drops every count."""
        with self._database.write() as client:
            if self._records.local_counts is None:
                yield client
            else:
                with self._records.local_counts.dropped_on_error():
                    yield client

    def _reopen(self, batch_id: uuid.UUID) -> None:
        """Local mode: a hook that may make a record claimable before its time sends claims back to the batch start."""
        if self._records.local_order is not None:
            self._records.local_order.reopen(batch_id)

    # -- lifecycle ---------------------------------------------------------

    @hookimpl
    def fallthrough_open(self) -> None:
        self._database.open()
        with self._database.write() as client:
            finished = self._documents.finish_drops(client)
        if finished:
            logger.warning("finished the drops of %s, cut short by a process that ended during them", finished)
        with self._write_records() as client:
            deleted = self._records.finish_deletions(client)
        if deleted:
            logger.warning(
                "finished the deletions of batches %s, cut short by a process that ended during them",
                [str(batch_id) for batch_id in deleted],
            )

    @hookimpl
    def fallthrough_close(self) -> None:
        self._database.close(forget=self._forget_everything)

    def _forget_everything(self) -> None:
        """What is kept beside the client describes its data: a reopened in-memory store is another."""
        self._documents.forget()
        self._forget_order(None)
        self._forget_counts(None)

    @hookimpl
    def fallthrough_ping(self) -> None:
        with self._database.read() as client:
            client.collection_exists(self._database.names.batches)

    @hookimpl
    def fallthrough_capabilities(self) -> Capabilities:
        return CAPABILITIES

    # -- batches and records -----------------------------------------------

    @hookimpl
    def fallthrough_create_batch(
        self,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        with self._write_records() as client:
            self._forget_order(batch_id)
            self._forget_counts(batch_id)
            return self._records.create_batch(client, batch_id, keys, first_seq, metadata, created_at)

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        with self._write_records() as client:
            self._forget_order(batch_id)
            return self._records.add_records(client, batch_id, keys, first_seq, created_at)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        with self._write_records() as client:
            self._forget_counts(batch_id)
            return self._records.delete_records(client, batch_id, keys, seqs)

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._write_records() as client:
            if self._records.local_order is not None:
                for update in updates:
                    # Only a later attempt takes a finished record, or one held under a lease, back to pending.
                    if update.attempt is not None and update.status.rank < Status.COMPLETED.rank:
                        self._records.local_order.reopen(update.batch_id)
            return self._records.update_records(client, updates, updated_at)

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        with self._write_records() as client:
            self._reopen(batch_id)
            return self._records.retry_failed(client, batch_id, updated_at)

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        with self._write_records() as client:
            return self._records.delete_batch(client, batch_id)  # which drops what local mode keeps of the batch

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        with self._database.read() as client:
            return self._records.get_batch(client, batch_id)

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        with self._database.read() as client:
            return self._records.get_record(client, batch_id, key)

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> list[Record]:
        with self._database.read() as client:
            return self._records.list_records(client, batch_id, status, after, limit)

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> list[Batch]:
        with self._database.read() as client:
            return self._records.list_batches(client, after, limit)

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        with self._database.read() as client:
            return self._records.get_records(client, batch_id, keys)

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        with self._database.write() as client:
            self._records.repair_batch(client, batch_id, metadata, created_at)

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        with self._write_records() as client:
            self._forget_order(batch_id)
            self._forget_counts(batch_id)
            return self._records.merge_records(client, batch_id, records)

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        with self._database.read() as client:
            return self._records.progress(client, batch_id)

    # -- claims, leases and the batch listing (:mod:`.claims`) ---------------

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        with self._database.read() as client:
            return self._claims.list_batch_progress(client, before, limit)

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._write_records() as client:
            return self._claims.claim(client, batch_id, worker, limit, claimed_at, lease_until)

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._write_records() as client:
            extended = self._claims.extend(client, batch_id, keys, worker, now, lease_until)
            if extended and self._records.local_order is not None:
                self._records.local_order.leases_set(batch_id, to_micros(lease_until))
            return extended

    # -- documents and search ----------------------------------------------

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        with self._database.write() as client:
            self._documents.upsert(client, collection, documents, version)

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        with self._database.write() as client:
            return self._documents.delete(client, collection, ids, version)

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        with self._database.read() as client:
            return self._documents.get(client, collection, ids)

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        with self._database.read() as client:
            return search.search(client, self._documents, collection, query)

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        with self._database.read() as client:
            return self._documents.count(client, collection, search.filter_conditions(filter))

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        with self._database.read() as client:
            if self._documents.local_order is not None:
                return self._documents.local_listing(client, collection, filter, after, limit)
            return self._documents.listing(client, collection, search.filter_conditions(filter), after, limit)

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        with self._database.write() as client:
            return self._documents.drop(client, collection, version)

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        with self._database.read() as client:
            return self._documents.dimension(client, collection)

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        with self._database.write() as client:
            self._documents.fix_dimension(client, collection, dimension)

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        with self._database.write() as client:
            return self._documents.purge(client, collection, before, limit)

    @hookimpl
    def fallthrough_list_live_collections(self) -> list[str]:
        with self._database.read() as client:
            names = [found.name for found in client.get_collections().collections]
            return self._documents.live_collections(client, document_collections(names, self.settings.prefix))

    @hookimpl
    def fallthrough_list_collections(self) -> list[str]:
        with self._database.read() as client:
            names = [found.name for found in client.get_collections().collections]
            candidates = document_collections(names, self.settings.prefix)
            held = {name for name in candidates if self._documents.holds_entries(client, name)}
            return sorted(held.union(self._documents.dropped_collections(client)))

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        with self._database.read() as client:
            if self._documents.local_order is not None:
                return self._documents.local_scan(client, collection, after, limit)
            return self._documents.scan(client, collection, after, limit)

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        with self._database.read() as client:
            return self._documents.versions(client, collection, ids)


__all__ = ["CAPABILITIES", "QdrantBackend"]
