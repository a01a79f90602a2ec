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
import math
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from ..errors import InvalidInput, NotFound
from ..filters import matches
from ..hookspecs import hookimpl
from ..ordering import PENDING_TIEBREAK, merge_key
from ..text import token_set
from ..types import Batch, Capabilities, Document, Hit, Progress, Record, RecordUpdate, SearchQuery, Status
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
    documents: dict[str, Document] = attrs.field(factory=dict)


class ReferenceBackend:
    """An in-memory backend that follows the spec to the letter."""

    capabilities = Capabilities(records=True, documents=True, vector_search=True, text_search=True, filter_search=True)

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
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document]) -> None:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            dimensions = {len(document.vector) for document in documents if document.vector is not None}
            fixed = {stored.dimension} if stored.dimension is not None else set()
            if len(dimensions | fixed) > 1:
                raise InvalidInput(
                    f"collection {collection!r} takes one vector dimension "
                    f"({stored.dimension or 'not fixed yet'}), got {sorted(dimensions)}"
                )
            if stored.dimension is None and dimensions:
                (stored.dimension,) = dimensions
            for document in documents:
                stored.documents[document.id] = copy.deepcopy(document)
            self._collections[collection] = stored

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str]) -> int:
        with self._lock:
            stored = self._collections.get(collection)
            if stored is None:
                return 0
            return sum(stored.documents.pop(document_id, None) is not None for document_id in ids)

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> list[Document]:
        with self._lock:
            stored = self._collections.get(collection) or _Collection()
            return [copy.deepcopy(stored.documents[i]) for i in ids if i in stored.documents]

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
                for document in stored.documents.values()
                if matches(query.filter, document.metadata)
                and (query.text is None or query.tokens <= token_set(document.text))
                and (query.vector is None or document.vector is not None)
            ]
            scored = [(self._score(query, document), document) for document in candidates]
            scored.sort(key=lambda pair: (-pair[0], pair[1].id))
            return [
                Hit(document.id, score, document.text, copy.deepcopy(document.metadata))
                for score, document in scored[: query.limit]
            ]

    @staticmethod
    def _score(query: SearchQuery, document: Document) -> float:
        if query.vector is not None:
            assert document.vector is not None
            return cosine(query.vector, document.vector)
        if query.text is not None:
            # The model's own text relevance: the share of the document's
            # tokens that the query names. Only its order within one answer
            # means anything; no backend is held to these numbers.
            return len(query.tokens) / len(token_set(document.text))
        return 0.0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in float64 of two non-zero vectors."""
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


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
    )
