"""Backends that each break one rule of the spec, to prove the suite notices.

Each is the reference model with one deliberate mistake of the kind a real
backend makes.
"""

from __future__ import annotations

import re
import time
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from fallthrough.errors import NotFound
from fallthrough.filters import And, Comparison, Filter, Not, Or, matches
from fallthrough.hookspecs import hookimpl
from fallthrough.ordering import content_tiebreak
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import JSON, Batch, Capabilities, Hit, Progress, Record, RecordUpdate, SearchQuery, Status

EVERYTHING = 10_000


class LastWriteWins(ReferenceBackend):
    """Applies every update, ignoring the merge order: a plain ``UPDATE ... SET`` without its ``WHERE``."""

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            for update in updates:
                if self.fallthrough_get_record(update.batch_id, update.key) is None:
                    raise NotFound(f"no record {update.key!r} in batch {update.batch_id}")
            applied = []
            for update in updates:
                stored = self._batches[update.batch_id].records[update.key]
                stored.status, stored.result, stored.error = update.status, update.result, update.error
                stored.attempt = stored.attempt if update.attempt is None else update.attempt
                stored.updated_at, stored.tiebreak = updated_at, update.tiebreak
                applied.append(attrs.evolve(update, attempt=stored.attempt))
            return applied


class UnlockedCounters(ReferenceBackend):
    """Keeps progress in per-batch counters updated by read-modify-write outside any lock.

    Single-threaded it is right; under concurrent workers two updates read
    the same counts and one of them is lost, as with a counter row updated
    from values the application read first.
    """

    def __init__(self) -> None:
        super().__init__()
        self._counters: dict[uuid.UUID, dict[Status, int]] = {}

    @hookimpl
    def fallthrough_create_batch(
        self,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        batch = super().fallthrough_create_batch(batch_id, keys, first_seq, metadata, created_at)
        self._counters[batch_id] = {Status.PENDING: batch.total}
        return batch

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        before = {(u.batch_id, u.key): self.fallthrough_get_record(u.batch_id, u.key) for u in updates}
        applied = super().fallthrough_update_records(updates, updated_at)
        for update in applied:
            counts = dict(self._counters[update.batch_id])
            time.sleep(0.001)  # the gap between reading the counter and writing it back
            old = before[(update.batch_id, update.key)]
            assert old is not None
            counts[old.status] -= 1
            counts[update.status] = counts.get(update.status, 0) + 1
            self._counters[update.batch_id] = counts
        return applied

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        if batch_id not in self._counters:
            raise NotFound(f"no batch {batch_id}")
        return Progress.from_counts(self._counters[batch_id])


def _missing_fails_ne(node: Filter | None, metadata: Mapping[str, object]) -> bool:
    """:func:`fallthrough.filters.matches`, except that ``ne``/``nin`` on a missing field is false, as in SQL."""
    if isinstance(node, Comparison) and node.op in ("ne", "nin") and metadata.get(node.field) is None:
        return False
    if isinstance(node, And):
        return all(_missing_fails_ne(clause, metadata) for clause in node.clauses)
    if isinstance(node, Or):
        return any(_missing_fails_ne(clause, metadata) for clause in node.clauses)
    if isinstance(node, Not):
        return not _missing_fails_ne(node.clause, metadata)
    return matches(node, metadata)


class NeSkipsMissingFields(ReferenceBackend):
    """Evaluates ``ne`` and ``nin`` the way SQL's three-valued logic does: NULL != 'x' is not true."""

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        hits = super().fallthrough_search(collection, attrs.evolve(query, filter=None, limit=EVERYTHING))
        return [hit for hit in hits if _missing_fails_ne(query.filter, hit.metadata)][: query.limit]


_WORD = re.compile(r"[^\W_]+")


def _raw_tokens(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(unicodedata.normalize("NFC", text)))


class CaseSensitiveText(ReferenceBackend):
    """Matches text tokens without casefolding them."""

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        if query.text is None:
            return super().fallthrough_search(collection, query)
        hits = super().fallthrough_search(collection, attrs.evolve(query, limit=EVERYTHING))
        wanted = _raw_tokens(query.text)
        return [hit for hit in hits if wanted <= _raw_tokens(hit.text)][: query.limit]


class KeepsTiebreakOnRetry(ReferenceBackend):
    """Moves failed records back to pending but keeps the failed state's tiebreak: an UPDATE forgetting a column."""

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            kept = {key: stored.tiebreak for key, stored in self._stored(batch_id).records.items()}
            moved = super().fallthrough_retry_failed(batch_id, updated_at)
            for update in moved:
                self._batches[batch_id].records[update.key].tiebreak = kept[update.key]
            return moved


class ListsByRank(ReferenceBackend):
    """Lists records by the status's merge rank, so completed and failed come together."""

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> list[Record]:
        every = super().fallthrough_list_records(batch_id, None, after, EVERYTHING)
        return [record for record in every if status is None or record.status.rank == status.rank][:limit]


def _engine_tokens(text: str) -> frozenset[str]:
    """Tokens as an engine whose tables predate U+19B0 and drop superscripts would cut them."""
    cleaned = "".join(" " if character in "\u19b0²" else character for character in text)
    return frozenset(token.casefold() for token in _WORD.findall(unicodedata.normalize("NFC", cleaned)))


class TokenizerClasses(ReferenceBackend):
    """Matches text by its full-text engine's own character classes rather than str.isalnum()."""

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> list[Hit]:
        if query.text is None:
            return super().fallthrough_search(collection, query)
        hits = super().fallthrough_search(collection, attrs.evolve(query, text=None, limit=EVERYTHING))
        wanted = _engine_tokens(query.text)
        return [hit for hit in hits if wanted <= _engine_tokens(hit.text)][: query.limit]


class ClaimsInKeyOrder(ReferenceBackend):
    """Claims the claimable records in key order, as an ``ORDER BY key`` that forgot ``seq`` would."""

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._lock:
            records = self._stored(batch_id).records
            saved = {key: stored.seq for key, stored in records.items()}
            # Renumber by key, claim, then put the real seqs back.
            for position, key in enumerate(sorted(records)):
                records[key].seq = position
            try:
                claimed = super().fallthrough_claim_records(batch_id, worker, limit, claimed_at, lease_until)
            finally:
                for key, seq in saved.items():
                    records[key].seq = seq
            return [attrs.evolve(record, seq=saved[record.key]) for record in claimed]


class ClaimsReadThenWrite(ReferenceBackend):
    """Reads the claimable records, lets go of the lock, then writes them: two claimers can take one record.

    The mistake of a claim made as a SELECT followed by an UPDATE that does
    not check the state it read (no ``FOR UPDATE``, no transaction, no
    conditional write).
    """

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> list[Record]:
        with self._lock:
            records = self._stored(batch_id).records
            ordered = sorted(records.items(), key=lambda item: (item[1].seq, item[0]))
            chosen = [key for key, stored in ordered if stored.status is Status.PENDING][:limit]
        time.sleep(0.002)  # the gap between the read and the write
        with self._lock:
            claimed = []
            for key in chosen:
                stored = records[key]
                stored.status = Status.PROCESSING
                stored.updated_at = claimed_at
                stored.lease_owner = worker
                stored.lease_expires = lease_until
                stored.tiebreak = content_tiebreak(Status.PROCESSING, None, None, worker, lease_until)
                claimed.append(
                    Record(
                        batch_id,
                        key,
                        stored.seq,
                        Status.PROCESSING,
                        stored.attempt,
                        None,
                        None,
                        claimed_at,
                        worker,
                        lease_until,
                    )
                )
            return claimed


class PurgeReportsTheLimit(ReferenceBackend):
    """Removes what it should, but answers ``limit`` whatever it removed: the rows a statement matched, not deleted.

    The core calls the hook again while it answers ``limit``, so this one is
    called for ever; the suite must fail it, not hang.
    """

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        super().fallthrough_purge_tombstones(collection, before, limit)
        return limit


class MergeDropsLease(ReferenceBackend):
    """Records only, no claims, and merges every record without its lease: "I never claim, so why store one?"

    Beside a backend that claims, in one Store, claims reach it through the
    merge, and it then reads them back unheld.
    """

    capabilities = Capabilities(records=True)

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        unleased = [attrs.evolve(record, lease_owner=None, lease_expires=None) for record in records]
        return super().fallthrough_merge_records(batch_id, unleased)


class ForgetsGetRecords(ReferenceBackend):
    """Declares records but has no ``fallthrough_get_records``, as a plugin whose author missed one hook."""

    fallthrough_get_records = None  # type: ignore[assignment]


class UpdateKeepsLease(ReferenceBackend):
    """Applies updates but leaves the lease as it was: an ``UPDATE`` that sets the state and forgets two columns.

    A completed record still held by a worker: beside a store that clears it,
    a repair copies the held state over the right one.
    """

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            leases = {}
            for update in updates:
                stored = (
                    self._batches[update.batch_id].records[update.key] if update.batch_id in self._batches else None
                )
                if stored is not None:
                    leases[(update.batch_id, update.key)] = (stored.lease_owner, stored.lease_expires)
            applied = super().fallthrough_update_records(updates, updated_at)
            for update in applied:
                stored = self._batches[update.batch_id].records[update.key]
                stored.lease_owner, stored.lease_expires = leases[(update.batch_id, update.key)]
            return applied


class EmptyErrorIsNone(ReferenceBackend):
    """Stores an empty error as no error: a column written with ``error or None``."""

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        return super().fallthrough_update_records(
            [attrs.evolve(update, error=update.error or None) for update in updates], updated_at
        )


class NormalisesErrors(ReferenceBackend):
    """Stores error text normalised to NFC, as a store that normalises what it indexes may."""

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        normalised = [
            attrs.evolve(update, error=None if update.error is None else unicodedata.normalize("NFC", update.error))
            for update in updates
        ]
        return super().fallthrough_update_records(normalised, updated_at)


class KeepsWhatItIsGiven(ReferenceBackend):
    """Keeps the caller's result object itself, not a copy: an in-memory store's ``self.rows[key] = update``."""

    @hookimpl
    def fallthrough_update_records(self, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
        with self._lock:
            applied = super().fallthrough_update_records(updates, updated_at)
            for update in applied:
                self._batches[update.batch_id].records[update.key].result = update.result
            return applied
