"""The plugin object: one PostgreSQL database behind the fallthrough hooks.

Each hook runs in one transaction or autocommit call (:mod:`.connection`),
retried once on a fresh connection where that is safe (a read, or a write
whose connection died before its COMMIT was sent: :meth:`.Database.writing`),
and hands it to the module that knows the SQL (:mod:`.records`, :mod:`.documents`,
:mod:`.search`). Errors meaning the server cannot be reached become
:class:`~fallthrough.errors.BackendUnavailable` there; a hook that raises
leaves its transaction rolled back, so nothing of the call is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import psycopg
from sqlalchemy import exc
from sqlalchemy.engine import URL, make_url

from fallthrough import hookimpl
from fallthrough.filters import Filter
from fallthrough.kit import Opened
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
from .connection import SECRET_URL_KEYS, Database
from .errors import unopenable
from .schema import ServerFeatures, open_schema


class PostgresBackend:
    """The ``postgresql://`` and ``postgresql+psycopg://`` backend.

    Records, documents, text and filter search always; vector search when
    the database has pgvector (or the backend may create it). URL options
    are listed in :data:`fallthrough_postgresql.connection.OPTION_DEFAULTS`.
    """

    def __init__(self, url: URL | str) -> None:
        # No I/O here: a Store builds its backends before any is reachable.
        self._database = Database(make_url(url) if isinstance(url, str) else url)
        self._settings = search.VectorSettings(ef_search=self._database.options.hnsw_ef_search)
        self._features: Opened[ServerFeatures] = Opened(self._database.endpoint)
        self._datetime_indexes = _documents.DatetimeIndexes()
        self._batch_turns = records.BatchTurns(wait=self._database.options.timeout)

    def __repr__(self) -> str:
        return f"<PostgresBackend {self._database.name}>"

    # -- lifecycle ---------------------------------------------------------

    @hookimpl
    def fallthrough_secret_url_keys(self) -> frozenset[str]:
        return SECRET_URL_KEYS

    @hookimpl
    def fallthrough_open(self) -> None:
        self._features.open(self._open_schema)

    def _open_schema(self) -> ServerFeatures:
        self._database.engine()
        # What a previous open learnt may be of another database since.
        self._datetime_indexes = _documents.DatetimeIndexes()
        try:
            return self._database.writing(lambda conn: open_schema(conn))
        except (exc.SQLAlchemyError, psycopg.Error) as error:
            replacement = unopenable(self._database.endpoint, error)
            if replacement is None:
                raise
            raise replacement from None

    @hookimpl
    def fallthrough_close(self) -> None:
        with self._features.lock:
            self._features.close()
            self._database.close()

    @hookimpl
    def fallthrough_ping(self) -> None:
        self._database.reading(lambda conn: conn.exec_driver_sql("SELECT 1").one())

    @hookimpl
    def fallthrough_capabilities(self) -> Capabilities:
        features = self._features.get()
        return Capabilities(
            records=True,
            documents=True,
            vector_search=features.vector_search,
            text_search=True,
            filter_search=True,
            claims=True,
        )

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
            return records.add_records(conn, batch_id, keys, first_seq, created_at, self._batch_turns)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        with self._database.write() as conn:
            return records.delete_records(conn, batch_id, keys, seqs)

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        return self._database.writing(lambda conn: records.update_records(conn, updates, updated_at))

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        return self._database.writing(lambda conn: records.retry_failed(conn, batch_id, updated_at))

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        return self._database.writing(lambda conn: records.delete_batch(conn, batch_id))

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        return self._database.reading(lambda conn: records.get_batch(conn, batch_id))

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        return self._database.reading(lambda conn: records.get_record(conn, batch_id, key))

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Record]:
        return self._database.reading(lambda conn: records.list_records(conn, batch_id, status, after, limit))

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        return self._database.reading(lambda conn: records.progress(conn, batch_id))

    # -- claims, leases and the batch listing (:mod:`.claims`) ---------------

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        return self._database.reading(lambda conn: claims.list_batch_progress(conn, before, limit))

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        # One UPDATE statement is atomic on its own: autocommit saves the BEGIN and COMMIT round trips.
        # Not retried (read(), not reading()): a claim whose connection died may have been applied.
        with self._database.read() as conn:
            return claims.claim_records(conn, batch_id, worker, limit, claimed_at, lease_until)

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> list[Record]:
        return self._database.writing(lambda conn: claims.extend_leases(conn, batch_id, keys, worker, now, lease_until))

    # -- documents and search ----------------------------------------------

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        features = self._features.get()
        datetime_indexes = self._datetime_indexes
        indexed = self._database.writing(
            lambda conn: _documents.upsert_documents(conn, collection, documents, version, features, datetime_indexes)
        )
        # Only once committed: a rolled-back call's indexes were rolled back too.
        datetime_indexes.learn(indexed)

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        return self._database.writing(lambda conn: _documents.delete_documents(conn, collection, ids, version))

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        return self._database.reading(lambda conn: _documents.get_documents(conn, collection, ids))

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        features = self._features.get()
        # A read on the driver's connection, retried if it died; in a transaction when it sets SET LOCAL.
        return self._database.querying(
            lambda cursor: search.search(cursor, collection, query, features, self._settings),
            transaction=search.needs_transaction(query, self._settings),
        )

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        return self._database.reading(lambda conn: _documents.count_documents(conn, collection, filter))

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        return self._database.reading(lambda conn: _documents.list_documents(conn, collection, filter, after, limit))

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        return self._database.writing(lambda conn: _documents.drop_collection(conn, collection, version))

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        return self._database.reading(lambda conn: _documents.collection_dimension(conn, collection))

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        self._database.writing(lambda conn: _documents.fix_collection_dimension(conn, collection, dimension))

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        return self._database.writing(lambda conn: _documents.purge_tombstones(conn, collection, before, limit))

    @hookimpl
    def fallthrough_list_live_collections(self) -> list[str]:
        return self._database.reading(lambda conn: _documents.list_live_collections(conn))

    # -- reading everything and merging: what a repair needs ----------------

    @hookimpl
    def fallthrough_list_collections(self) -> list[str]:
        return self._database.reading(lambda conn: _documents.list_collections(conn))

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        return self._database.reading(lambda conn: _documents.scan_documents(conn, collection, after, limit))

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        return self._database.reading(lambda conn: _documents.document_versions(conn, collection, ids))

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> list[Batch]:
        return self._database.reading(lambda conn: records.list_batches(conn, after, limit))

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        return self._database.reading(lambda conn: records.get_records(conn, batch_id, keys))

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        self._database.writing(lambda conn: records.repair_batch(conn, batch_id, metadata, created_at))

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        return self._database.writing(lambda conn: _records.merge_records(conn, batch_id, records))


# Hook parameters named ``documents`` and ``records`` by the hook spec
# shadow these modules inside those methods.
_documents = documents
_records = records

__all__ = ["PostgresBackend"]
