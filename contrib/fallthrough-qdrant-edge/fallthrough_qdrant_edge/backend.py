"""The plugin object: a directory of qdrant-edge shards behind the fallthrough hooks.

Each hook takes the backend's lock and the shard it needs (:mod:`.connection`)
and hands it to the module that knows the engine calls (:mod:`.records`,
:mod:`.documents`, :mod:`.search`). Engine errors that mean the shard cannot
be used now become :class:`~fallthrough.errors.BackendUnavailable` there.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from fallthrough import hookimpl
from fallthrough.filters import Filter
from fallthrough.kit import check_dimensions, check_fixed_dimension
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
)
from sqlalchemy.engine import URL, make_url

from . import claims as claim_store
from . import documents as document_store
from . import records as record_store
from . import search
from .connection import Database, Options

# No parallel_calls: measured (benchmarks/async_stall.py --backends qdrant-edge), fewer threads do not shorten
# an asyncio loop's stalls (the largest at the median: 1 thread 23 ms, 2 threads 18 ms, 8 threads 11-12 ms).
CAPABILITIES = Capabilities(
    records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
)


class QdrantEdgeBackend:
    """The ``qdrant+edge:///path/to/dir`` backend: Qdrant's shard engine, in process, persistent.

    See :mod:`fallthrough_qdrant_edge.connection` for the URL options.
    """

    def __init__(self, url: URL | str) -> None:
        # No I/O here: a Store builds its backends before any is reachable.
        self.url = make_url(url) if isinstance(url, str) else url
        self._database = Database(Options.from_url(self.url))

    def __repr__(self) -> str:
        return f"<QdrantEdgeBackend {self._database.name}>"

    # -- lifecycle ---------------------------------------------------------

    @hookimpl
    def fallthrough_open(self) -> None:
        self._database.open()

    @hookimpl
    def fallthrough_close(self) -> None:
        self._database.close()

    @hookimpl
    def fallthrough_ping(self) -> None:
        with self._database.read() as shard:
            shard.info()

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
        with self._database.write() as shard:
            return record_store.create_batch(shard, batch_id, keys, first_seq, metadata, created_at)

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        with self._database.write() as shard:
            return record_store.add_records(shard, batch_id, keys, first_seq, created_at)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        with self._database.write() as shard:
            return record_store.delete_records(shard, batch_id, keys, seqs)

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._database.write() as shard:
            return record_store.update_records(shard, updates, updated_at)

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        with self._database.write() as shard:
            return record_store.retry_failed(shard, batch_id, updated_at)

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        with self._database.write() as shard:
            return record_store.delete_batch(shard, batch_id)

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        with self._database.read() as shard:
            return record_store.get_batch(shard, batch_id)

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        with self._database.read() as shard:
            return record_store.get_record(shard, batch_id, key)

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> list[Record]:
        with self._database.read() as shard:
            return record_store.list_records(shard, batch_id, status, after, limit)

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> list[Batch]:
        with self._database.read() as shard:
            return record_store.list_batches(shard, after, limit)

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        with self._database.read() as shard:
            return record_store.get_records(shard, batch_id, keys)

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        with self._database.write() as shard:
            record_store.repair_batch(shard, batch_id, metadata, created_at)

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        with self._database.write() as shard:
            return record_store.merge_records(shard, batch_id, records)

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        with self._database.read() as shard:
            return record_store.progress(shard, batch_id)

    # -- claims, leases and the batch listing (:mod:`.claims`) ---------------

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        with self._database.read() as shard:
            return claim_store.list_batch_progress(shard, before, limit)

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._database.write() as shard:
            return claim_store.claim_records(shard, batch_id, worker, limit, claimed_at, lease_until)

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._database.write() as shard:
            return claim_store.extend_leases(shard, batch_id, keys, worker, now, lease_until)

    # -- documents and search ----------------------------------------------

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        if not documents:
            return
        with self._database.lock:
            # Checked before the collection's shard is created, so a mismatch writes nothing.
            with self._database.collection(collection, create=False) as existing:
                stored = None if existing is None else existing.dimension
                check_dimensions(collection, stored, documents)
            with self._database.collection(collection, create=True) as target:
                assert target is not None
                document_store.upsert_documents(self._database, target, documents, version)

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        if not ids:
            return 0
        # Created if missing: the tombstones must outlive a repair that would copy the documents back.
        with self._database.collection(collection, create=True) as target:
            assert target is not None
            return document_store.delete_documents(target, ids, version)

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        with self._database.collection(collection, create=False) as target:
            return [] if target is None else document_store.get_documents(target, ids)

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        with self._database.collection(collection, create=False) as target:
            return search.search(target, query, self._database.options)

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        with self._database.collection(collection, create=False) as target:
            return 0 if target is None else document_store.count_documents(target, filter)

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        with self._database.collection(collection, create=False) as target:
            return [] if target is None else document_store.list_documents(target, filter, after, limit)

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        # Created if missing: the drop must outlive a repair that would copy the documents back.
        with self._database.collection(collection, create=True) as target:
            assert target is not None
            return document_store.drop_collection(target, version)

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        with self._database.collection(collection, create=False) as target:
            return None if target is None else target.dimension

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        with self._database.lock:
            # Checked before the collection's shard is created, so a mismatch writes nothing.
            with self._database.collection(collection, create=False) as existing:
                check_fixed_dimension(collection, None if existing is None else existing.dimension, dimension)
                if existing is not None and existing.dimension is not None:
                    return
            with self._database.collection(collection, create=True) as target:
                assert target is not None
                self._database.fix_dimension(target, dimension)

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        with self._database.collection(collection, create=False) as target:
            return 0 if target is None else document_store.purge_tombstones(target, before, limit)

    @hookimpl
    def fallthrough_list_live_collections(self) -> list[str]:
        with self._database.lock:
            names = []
            for name in self._database.collection_names():
                with self._database.collection(name, create=False) as target:
                    if target is not None and document_store.has_live_documents(target):
                        names.append(name)
            return names

    @hookimpl
    def fallthrough_list_collections(self) -> list[str]:
        with self._database.lock:
            names = []
            for name in self._database.collection_names():
                # A shard directory with no entry (a write that failed after creating it) is no collection.
                with self._database.collection(name, create=False) as target:
                    if target is not None and document_store.has_entries(target):
                        names.append(name)
            return names

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        with self._database.collection(collection, create=False) as target:
            return [] if target is None else document_store.scan_documents(target, after, limit)

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        with self._database.collection(collection, create=False) as target:
            return [] if target is None else document_store.document_versions(target, ids)


__all__ = ["CAPABILITIES", "QdrantEdgeBackend"]
