"""The plugin object: one SQLite database behind the fallthrough hooks.

Each hook opens one transaction of the right kind (:mod:`.connection`) and
hands it to the module that knows the SQL (:mod:`.records`,
:mod:`.documents`, :mod:`.search`). Errors meaning the database cannot be
reached become :class:`~fallthrough.errors.BackendUnavailable` there too,
and a lock held past the busy timeout :class:`~fallthrough.errors.BackendBusy`
(:mod:`.errors`); a hook that raises leaves its transaction rolled back, so
nothing of the call is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import literal_column, select
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
)

from . import claims, documents, records, search
from .connection import Database
from .fts import Unicode61Probe
from .vectors import MatrixCache

# parallel_calls=2: a call runs mostly Python (and SQLite) under the GIL, and writes serialise on one lock
# anyway, so more threads only lengthen an asyncio loop's stalls. benchmarks/async_stall.py on a file: the
# loop's largest stall 51-63 ms with 8 threads, 10-17 ms with 2, at the same wall time. In memory every call,
# reads too, takes that one lock: 1, 2 and 8 threads stall the loop alike (16, 17 and 18 ms at the median,
# docs/benchmarks.md), and 2 rather than 1 keeps one long call (a drain waiting for a peer that is down, a
# repair) from holding every other call of an AsyncStore.
CAPABILITIES = Capabilities(
    records=True,
    documents=True,
    vector_search=True,
    text_search=True,
    filter_search=True,
    claims=True,
    parallel_calls=2,
)


class SqliteBackend:
    """The ``sqlite://`` backend: in memory, or ``sqlite:///path/to/file.db``.

    The URL's ``timeout`` query option sets, in seconds, how long a call
    waits for another connection's lock before it raises
    :class:`~fallthrough.errors.BackendBusy` (default 5).
    """

    def __init__(self, url: URL | str) -> None:
        # No I/O here: a Store builds its backends before any is reachable.
        self.url = make_url(url) if isinstance(url, str) else url
        self._database = Database(self.url)
        self._matrices = MatrixCache()
        self._probe = Unicode61Probe()

    def __repr__(self) -> str:
        return f"<SqliteBackend {self._database.name}>"

    # -- lifecycle ---------------------------------------------------------

    @hookimpl
    def fallthrough_open(self) -> None:
        self._matrices.clear()
        self._database.open()

    @hookimpl
    def fallthrough_close(self) -> None:
        self._database.close()
        self._matrices.clear()
        self._probe.close()

    @hookimpl
    def fallthrough_ping(self) -> None:
        with self._database.read() as conn:
            conn.execute(select(literal_column("1"))).one()

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
        with self._database.write() as conn:
            return records.create_batch(conn, batch_id, keys, first_seq, metadata, created_at)

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        with self._database.write() as conn:
            return records.add_records(conn, batch_id, keys, first_seq, created_at)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        with self._database.write() as conn:
            return records.delete_records(conn, batch_id, keys, seqs)

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._database.write() as conn:
            return records.update_records(conn, updates, updated_at)

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        with self._database.write() as conn:
            return records.retry_failed(conn, batch_id, updated_at)

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        with self._database.write() as conn:
            return records.delete_batch(conn, batch_id)

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        with self._database.read_driver() as conn:
            return records.get_batch(conn, batch_id)

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        with self._database.read_driver() as conn:
            return records.get_record(conn, batch_id, key)

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Record]:
        with self._database.read_driver() as conn:
            return records.list_records(conn, batch_id, status, after, limit)

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        with self._database.read_driver() as conn:
            return records.progress(conn, batch_id)

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> list[Batch]:
        with self._database.read() as conn:
            return records.list_batches(conn, after, limit)

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        with self._database.read_driver() as conn:
            return records.get_records(conn, batch_id, keys)

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        with self._database.write() as conn:
            records.repair_batch(conn, batch_id, metadata, created_at)

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        with self._database.write() as conn:
            return _records.merge_records(conn, batch_id, records)

    # -- claims, leases and the batch listing (:mod:`.claims`) ---------------

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        with self._database.read() as conn:
            return claims.list_batch_progress(conn, before, limit)

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._database.write() as conn:
            return claims.claim_records(conn, batch_id, worker, limit, claimed_at, lease_until)

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._database.write() as conn:
            return claims.extend_leases(conn, batch_id, keys, worker, now, lease_until)

    # -- documents and search ----------------------------------------------

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        with self._database.write() as conn:
            _documents.upsert_documents(conn, collection, documents, version)
        # The generation check alone keeps searches right; dropping the
        # stale matrix now frees its memory.
        self._matrices.discard(collection)

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        with self._database.write() as conn:
            deleted = _documents.delete_documents(conn, collection, ids, version)
        if deleted:
            self._matrices.discard(collection)
        return deleted

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        with self._database.read() as conn:
            return _documents.collection_dimension(conn, collection)

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        with self._database.write() as conn:
            _documents.fix_collection_dimension(conn, collection, dimension)

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        with self._database.read() as conn:
            return _documents.get_documents(conn, collection, ids)

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        with self._database.read() as conn:
            return search.search(conn, collection, query, self._matrices, self._probe)

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        with self._database.read() as conn:
            return documents.count_documents(conn, search.live_matching(collection, filter))

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        with self._database.read() as conn:
            return documents.list_documents(conn, search.live_matching(collection, filter), after, limit)

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        with self._database.write() as conn:
            removed = documents.drop_collection(conn, collection, version)
        self._matrices.discard(collection)
        return removed

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        with self._database.write() as conn:
            return documents.purge_tombstones(conn, collection, before, limit)

    @hookimpl
    def fallthrough_list_live_collections(self) -> list[str]:
        with self._database.read() as conn:
            return documents.list_live_collections(conn)

    @hookimpl
    def fallthrough_list_collections(self) -> list[str]:
        with self._database.read() as conn:
            return documents.list_collections(conn)

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        with self._database.read() as conn:
            return documents.scan_documents(conn, collection, after, limit)

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        with self._database.read() as conn:
            return documents.document_versions(conn, collection, ids)


# Two hooks' parameters are named ``documents`` and ``records`` by the hook
# spec, which shadows the modules inside those methods.
_documents = documents
_records = records

__all__ = ["CAPABILITIES", "SqliteBackend"]
