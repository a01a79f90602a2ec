"""The reference model: the executable specification of a backend.

:class:`ReferenceBackend` implements every hook in plain Python over dicts,
as directly as the semantics in ``docs/semantics.md`` read. It is slow and
keeps everything in memory; it is meant to be obviously right. The
conformance suite runs a backend and this model side by side and compares
every observable result.

It is also a working backend: ``registry.register("reference",
"fallthrough.testing.model:ReferenceBackend")`` makes ``reference://`` a
store, which the router tests use.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from ..errors import InvalidInput, NotFound
from ..filters import Filter, matches
from ..hookspecs import hookimpl
from ..kit import check_dimensions, check_fixed_dimension, cosine_similarity
from ..ordering import PENDING_TIEBREAK, content_tiebreak, extension_stamp, merge_key, record_tiebreak
from ..text import token_set
from ..types import (
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
from ..validation import JSON


@attrs.define
class _StoredRecord:
    seq: int
    status: Status
    attempt: int
    result: JSON
    error: str | None
    updated_at: datetime
    tiebreak: int
    lease_owner: str | None = None
    lease_expires: datetime | None = None

    def order(self) -> tuple[int, int, int, int]:
        return merge_key(self.attempt, self.status, self.updated_at, self.tiebreak)


@attrs.define
class _StoredBatch:
    metadata: dict[str, JSON]
    created_at: datetime
    records: dict[str, _StoredRecord] = attrs.field(factory=dict)


@attrs.define
class _Collection:
    dimension: int | None = None
    # Every id's entry: a live document or a tombstone (document None), with its version.
    entries: dict[str, StoredDocument] = attrs.field(factory=dict)
    # The version of the latest drop: every write at or below it is refused.
    dropped: int | None = None

    def live(self) -> dict[str, Document]:
        return {i: entry.document for i, entry in self.entries.items() if entry.document is not None}

    def may_write(self, document_id: str, version: int) -> bool:
        """A write at ``version`` replaces the entry unless the stored one is newer (equal is older)."""
        if self.dropped is not None and version <= self.dropped:
            return False
        entry = self.entries.get(document_id)
        return entry is None or entry.version <= version

    def entry(self, document_id: str) -> StoredDocument | None:
        """The stored entry, or a tombstone at the drop version for an id without one in a dropped collection."""
        entry = self.entries.get(document_id)
        if entry is None and self.dropped is not None:
            return StoredDocument(document_id, self.dropped, None)
        return entry

    def matching(self, filter: Filter | None) -> list[Document]:
        """The live documents ``filter`` matches, by id in code-point order."""
        live = self.live()
        return [live[i] for i in sorted(live) if matches(filter, live[i].metadata)]


class ReferenceBackend:
    """An in-memory backend that follows the spec to the letter."""

    capabilities = Capabilities(
        records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
    )

    def __init__(self, url: object = None) -> None:
        self._lock = threading.RLock()
        self._batches: dict[uuid.UUID, _StoredBatch] = {}
        self._collections: dict[str, _Collection] = {}

    # -- lifecycle ---------------------------------------------------------

    @hookimpl
    def fallthrough_open(self) -> None:
        return None

    @hookimpl
    def fallthrough_close(self) -> None:
        return None

    @hookimpl
    def fallthrough_ping(self) -> None:
        return None

    @hookimpl
    def fallthrough_capabilities(self) -> Capabilities:
        return self.capabilities

    # -- records -----------------------------------------------------------

    @hookimpl
    def fallthrough_create_batch(
        self,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        with self._lock:
            if batch_id not in self._batches:
                self._batches[batch_id] = _StoredBatch(copy.deepcopy(dict(metadata)), created_at)
            self._add(batch_id, keys, first_seq, created_at)
            return self._batch(batch_id)

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        with self._lock:
            return self._add(batch_id, keys, first_seq, created_at)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return 0
            deleted = 0
            for key, seq in zip(keys, seqs, strict=True):
                stored = batch.records.get(key)
                if stored is not None and stored.seq == seq:
                    del batch.records[key]
                    deleted += 1
            return deleted

    def _add(self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime) -> int:
        records = self._stored(batch_id).records
        added = 0
        for index, key in enumerate(keys):
            if key not in records:
                records[key] = _StoredRecord(
                    first_seq + index, Status.PENDING, 0, None, None, created_at, PENDING_TIEBREAK
                )
                added += 1
        return added

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            targets = []
            for update in updates:
                batch = self._batches.get(update.batch_id)
                if batch is None or update.key not in batch.records:
                    raise NotFound(f"no record {update.key!r} in batch {update.batch_id}")
                targets.append(batch.records[update.key])
            applied = []
            for update, stored in zip(updates, targets, strict=True):
                attempt = stored.attempt if update.attempt is None else update.attempt
                if merge_key(attempt, update.status, updated_at, update.tiebreak) > stored.order():
                    stored.status = update.status
                    stored.attempt = attempt
                    stored.result = copy.deepcopy(update.result)
                    stored.error = update.error
                    stored.updated_at = updated_at
                    stored.tiebreak = update.tiebreak
                    stored.lease_owner = stored.lease_expires = None
                    applied.append(update.pinned(attempt))
            return applied

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            moved = []
            records = self._stored(batch_id).records
            for key, stored in sorted(records.items(), key=lambda item: (item[1].seq, item[0])):
                if stored.status is Status.FAILED:
                    stored.status = Status.PENDING
                    stored.attempt += 1
                    stored.result = None
                    stored.error = None
                    stored.updated_at = updated_at
                    stored.tiebreak = PENDING_TIEBREAK
                    stored.lease_owner = stored.lease_expires = None
                    moved.append(RecordUpdate(batch_id, key, Status.PENDING, attempt=stored.attempt))
            return moved

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        with self._lock:
            return self._batches.pop(batch_id, None) is not None

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        with self._lock:
            return self._batch(batch_id) if batch_id in self._batches else None

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None or key not in batch.records:
                return None
            return _record(batch_id, key, batch.records[key])

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> list[Record]:
        with self._lock:
            records = self._stored(batch_id).records
            ordered = sorted(records.items(), key=lambda item: (item[1].seq, item[0]))
            page = [
                _record(batch_id, key, stored)
                for key, stored in ordered
                if (status is None or stored.status is status) and (after is None or (stored.seq, key) > after)
            ]
            return page[:limit]

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        with self._lock:
            counts: dict[Status, int] = {}
            for stored in self._stored(batch_id).records.values():
                counts[stored.status] = counts.get(stored.status, 0) + 1
            return Progress.from_counts(counts)

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        with self._lock:
            ordered = sorted(self._batches, key=lambda i: (self._batches[i].created_at, i.int), reverse=True)
            page = [
                batch_id
                for batch_id in ordered
                if before is None or (self._batches[batch_id].created_at, batch_id.int) < (before[0], before[1].int)
            ][:limit]
            return [BatchProgress(self._batch(batch_id), self.fallthrough_progress(batch_id)) for batch_id in page]

    # -- claims and leases -------------------------------------------------

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._lock:
            records = self._stored(batch_id).records
            claimed: list[Record] = []
            for key, stored in sorted(records.items(), key=lambda item: (item[1].seq, item[0])):
                if len(claimed) == limit:
                    break
                if stored.status is Status.PENDING:
                    attempt = stored.attempt
                elif stored.status is Status.PROCESSING and _expired(stored, claimed_at):
                    attempt = stored.attempt + 1
                else:
                    continue
                stored.status = Status.PROCESSING
                stored.attempt = attempt
                stored.result = None
                stored.error = None
                stored.updated_at = claimed_at
                stored.lease_owner = worker
                stored.lease_expires = lease_until
                stored.tiebreak = content_tiebreak(Status.PROCESSING, None, None, worker, lease_until)
                claimed.append(_record(batch_id, key, stored))
            return claimed

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._lock:
            records = self._stored(batch_id).records
            extended: list[Record] = []
            for key in keys:
                stored = records.get(key)
                if stored is None or stored.status is not Status.PROCESSING or stored.lease_owner != worker:
                    continue
                if _expired(stored, now):
                    continue
                stored.updated_at = extension_stamp(stored.updated_at, now)
                stored.lease_expires = lease_until
                stored.tiebreak = content_tiebreak(stored.status, stored.result, stored.error, worker, lease_until)
                extended.append(_record(batch_id, key, stored))
            extended.sort(key=lambda record: (record.seq, record.key))
            return extended

    def _stored(self, batch_id: uuid.UUID) -> _StoredBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id}")
        return batch

    def _batch(self, batch_id: uuid.UUID) -> Batch:
        batch = self._batches[batch_id]
        return Batch(batch_id, len(batch.records), copy.deepcopy(batch.metadata), batch.created_at)

    # -- documents ---------------------------------------------------------

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            # The whole call is checked, older documents too, then fixes the dimension.
            dimension = check_dimensions(collection, stored.dimension, documents)
            if stored.dimension is None:
                stored.dimension = dimension
            for document in documents:
                if stored.may_write(document.id, version):
                    stored.entries[document.id] = StoredDocument(document.id, version, copy.deepcopy(document))
            self._collections[collection] = stored

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        with self._lock:
            stored = self._collections.setdefault(collection, _Collection())
            deleted = 0
            for document_id in ids:
                if stored.may_write(document_id, version):
                    entry = stored.entries.get(document_id)
                    deleted += entry is not None and entry.live
                    stored.entries[document_id] = StoredDocument(document_id, version, None)
            return deleted

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        with self._lock:
            live = (self._collections.get(collection) or _Collection()).live()
            return [copy.deepcopy(live[i]) for i in ids if i in live]

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            if query.vector is not None and stored.dimension not in (None, len(query.vector)):
                raise InvalidInput(
                    f"query vector has dimension {len(query.vector)}, "
                    f"collection {collection!r} holds {stored.dimension}"
                )
            candidates = [
                document
                for document in stored.live().values()
                if matches(query.filter, document.metadata)
                and (query.text is None or query.tokens <= token_set(document.text))
                and (query.vector is None or document.vector is not None)
            ]
            scored = [(self._score(query, document), document) for document in candidates]
            scored.sort(key=lambda pair: (-pair[0], pair[1].id))
            return [
                Hit(
                    document.id,
                    score,
                    document.text,
                    copy.deepcopy(document.metadata),
                    document.vector if query.with_vectors else None,
                )
                for score, document in scored[: query.limit]
            ]

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        with self._lock:
            return len((self._collections.get(collection) or _Collection()).matching(filter))

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> list[Document]:
        with self._lock:
            found = (self._collections.get(collection) or _Collection()).matching(filter)
            return [copy.deepcopy(document) for document in found if after is None or document.id > after][:limit]

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        with self._lock:
            stored = self._collections.setdefault(collection, _Collection())
            older = [i for i, entry in stored.entries.items() if entry.version <= version]
            removed = any(stored.entries[i].live for i in older)
            for document_id in older:
                del stored.entries[document_id]
            stored.dropped = version if stored.dropped is None else max(stored.dropped, version)
            return removed

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        with self._lock:
            return (self._collections.get(collection) or _Collection()).dimension

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        with self._lock:
            stored = self._collections.setdefault(collection, _Collection())
            check_fixed_dimension(collection, stored.dimension, dimension)
            stored.dimension = dimension

    @hookimpl
    def fallthrough_list_live_collections(self) -> list[str]:
        with self._lock:
            return sorted(name for name, stored in self._collections.items() if stored.live())

    # -- reading everything and merging: what a repair needs ----------------

    @hookimpl
    def fallthrough_list_collections(self) -> list[str]:
        with self._lock:
            return sorted(
                name for name, stored in self._collections.items() if stored.entries or stored.dropped is not None
            )

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> list[StoredDocument]:
        # The model's own order is code-point order of ids.
        with self._lock:
            entries = (self._collections.get(collection) or _Collection()).entries
            page = sorted(i for i in entries if after is None or i > after)[:limit]
            return [copy.deepcopy(entries[i]) for i in page]

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> list[StoredDocument]:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            found = [stored.entry(i) for i in ids]
            return [copy.deepcopy(entry) for entry in found if entry is not None]

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            old = [i for i, entry in stored.entries.items() if not entry.live and entry.version < before][:limit]
            for document_id in old:
                del stored.entries[document_id]
            return len(old)

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> list[Batch]:
        # The model's own order is UUID order (of the 128-bit integers).
        with self._lock:
            page = sorted(i for i in self._batches if after is None or i > after)[:limit]
            return [self._batch(batch_id) for batch_id in page]

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return []
            return [_record(batch_id, key, batch.records[key]) for key in keys if key in batch.records]

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        with self._lock:
            batch = self._batches.setdefault(batch_id, _StoredBatch({}, created_at))
            batch.metadata = copy.deepcopy(dict(metadata))
            batch.created_at = created_at

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        with self._lock:
            stored_records = self._stored(batch_id).records
            changed = 0
            for record in records:
                tiebreak = record_tiebreak(record)
                stored = stored_records.get(record.key)
                if stored is None:
                    stored_records[record.key] = _StoredRecord(
                        record.seq,
                        record.status,
                        record.attempt,
                        copy.deepcopy(record.result),
                        record.error,
                        record.updated_at,
                        tiebreak,
                        record.lease_owner,
                        record.lease_expires,
                    )
                    changed += 1
                    continue
                lowered = record.seq < stored.seq
                newer = merge_key(record.attempt, record.status, record.updated_at, tiebreak) > stored.order()
                if lowered:
                    stored.seq = record.seq
                if newer:
                    stored.status = record.status
                    stored.attempt = record.attempt
                    stored.result = copy.deepcopy(record.result)
                    stored.error = record.error
                    stored.updated_at = record.updated_at
                    stored.tiebreak = tiebreak
                    stored.lease_owner = record.lease_owner
                    stored.lease_expires = record.lease_expires
                changed += lowered or newer
            return changed

    @staticmethod
    def _score(query: SearchQuery, document: Document) -> float:
        if query.vector is not None:
            assert document.vector is not None
            return cosine_similarity(query.vector, document.vector)
        if query.text is not None:
            # The model's own text relevance: the share of the document's
            # tokens that the query names. Only its order within one answer
            # means anything; no backend is held to these numbers.
            return len(query.tokens) / len(token_set(document.text))
        return 0.0


def _record(batch_id: uuid.UUID, key: str, stored: _StoredRecord) -> Record:
    return Record(
        batch_id=batch_id,
        key=key,
        seq=stored.seq,
        status=stored.status,
        attempt=stored.attempt,
        result=copy.deepcopy(stored.result),
        error=stored.error,
        updated_at=stored.updated_at,
        lease_owner=stored.lease_owner,
        lease_expires=stored.lease_expires,
    )


def _expired(stored: _StoredRecord, now: datetime) -> bool:
    """Whether a record's lease ended by ``now``; a record with no lease has none to end."""
    return stored.lease_expires is not None and stored.lease_expires <= now
