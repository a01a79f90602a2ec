"""Claims, leases and the newest-first batch listing over Qdrant points.

Qdrant has no transactions, so a claim is a read, then **conditional
writes**: the claimable records are read (pending ones, and processing ones
whose ``lease_us`` passed, each in ``seq`` order), and each chosen record is
written back as claimed by an ``upsert`` with ``update_mode=UPDATE_ONLY`` and
an ``update_filter`` that holds only while the stored point is still in the
state that was read (its merge key and ``seq``). Qdrant applies the filter to
the stored point at write time, so when two claimers read the same record,
the first write changes its merge key and the second one matches nothing:
it is lost, not applied twice.

Against a server (other clients may write in between), the points are read
back after the write and only those holding this claim are returned; the
claimer reads again for the records it lost, up to :data:`ROUNDS` times. In
local mode (``qdrant+memory://``, ``qdrant+local://``) the client is one
process's: the backend holds its lock through the whole hook, so no other
claimer can come between the read and the write, and nothing is read back.
Two processes cannot share a local-mode directory (qdrant-client locks it),
so there is nothing more to guard there. Nor does a local-mode claim scroll:
local mode checks a scroll's filter on every point of the collection, so the
claimable records are read from the batch's own order, past the records
found unclaimable before (:meth:`.order.LocalOrder.claimable`).

An extension is the same: read the holder's records, write each one guarded
by the state read. The listing orders the batches collection by
``created_us`` (a range index), and counts each page's records with one
facet per status; in local mode, only the batches whose counts are not kept
(:mod:`.counts`).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from qdrant_client import QdrantClient, models

from fallthrough.kit import load_json
from fallthrough.ordering import content_tiebreak, extension_stamp
from fallthrough.types import Batch, BatchProgress, Progress, Record, Status, from_micros, to_micros

from .counts import LocalCounts
from .order import LocalOrder
from .records import (
    _CHUNK,
    _GUARDED_CHUNK,
    _MERGE_FIELDS,
    _equals,
    _has_id,
    _merged_point,
    _record,
    _split,
    _state,
    require_batch,
)
from .schema import CollectionNames, being_deleted, in_batch, record_point_id

ROUNDS = 20
"""How many times a claim against a server reads again for records other claimers took first."""


class Claims:
    """The claim, extension and listing hooks over one client. Every method runs inside the hook's session."""

    def __init__(
        self,
        names: CollectionNames,
        verify_writes: bool,
        local_order: LocalOrder | None = None,
        local_counts: LocalCounts | None = None,
    ) -> None:
        self.names = names
        self.verify_writes = verify_writes
        self.local_order = local_order
        self.local_counts = local_counts

    # -- claims ----------------------------------------------------------------

    def claim(
        self,
        client: QdrantClient,
        batch_id: uuid.UUID,
        worker: str,
        limit: int,
        claimed_at: datetime,
        lease_until: datetime,
    ) -> list[Record]:
        require_batch(client, self.names, batch_id)
        now_us = to_micros(claimed_at)
        tiebreak = content_tiebreak(Status.PROCESSING, None, None, worker, lease_until)
        claimed: dict[str, Record] = {}
        for _ in range(ROUNDS):
            wanted = limit - len(claimed)
            candidates = self._candidates(client, batch_id, now_us, wanted)
            if not candidates:
                break
            writes: list[tuple[str, Record, Mapping[str, Any]]] = []
            for payload in candidates:
                attempt = payload["attempt"] + (1 if payload["status"] == Status.PROCESSING.value else 0)
                record = Record(
                    batch_id,
                    payload["key"],
                    payload["seq"],
                    Status.PROCESSING,
                    attempt,
                    None,
                    None,
                    claimed_at,
                    worker,
                    lease_until,
                )
                writes.append((record_point_id(batch_id, record.key), record, payload))
            landed = self._write_guarded(client, writes, tiebreak)
            claimed.update((point_id, record) for point_id, record, _ in writes if point_id in landed)
            if self.local_counts is not None:
                moves = [
                    (read["status"], Status.PROCESSING.value) for point_id, _, read in writes if point_id in landed
                ]
                self.local_counts.move(batch_id, moves)
            if len(claimed) >= limit or not self.verify_writes:
                break
        return sorted(claimed.values(), key=lambda record: (record.seq, record.key))

    def _candidates(self, client: QdrantClient, batch_id: uuid.UUID, now_us: int, wanted: int) -> list[dict[str, Any]]:
        """The first ``wanted`` claimable records' payloads in ``(seq, key)`` order.

        Local mode walks the batch's own order past the records it found
        unclaimable before (:meth:`.order.LocalOrder.claimable`); a server
        runs two ordered scrolls, one for pending records and one for
        expired leases.
        """
        if self.local_order is not None:
            return list(itertools.islice(self.local_order.claimable(client, batch_id, now_us), wanted))
        pending = models.Filter(must=[in_batch(batch_id), _equals("status", Status.PENDING.value)])
        expired = models.Filter(
            must=[
                in_batch(batch_id),
                _equals("status", Status.PROCESSING.value),
                models.FieldCondition(key="lease_us", range=models.Range(lte=now_us)),
            ]
        )
        found = self._first_in_order(client, pending, wanted) + self._first_in_order(client, expired, wanted)
        found.sort(key=lambda payload: (payload["seq"], payload["key"]))
        return found[:wanted]

    def _first_in_order(self, client: QdrantClient, scroll_filter: models.Filter, wanted: int) -> list[dict[str, Any]]:
        """The first ``wanted`` matches in ``(seq, key)`` order; records sharing a seq are all read, then sorted."""
        fetch = wanted + 1
        while True:
            points, _ = client.scroll(
                self.names.records,
                scroll_filter=scroll_filter,
                order_by=models.OrderBy(key="seq"),
                limit=fetch,
                with_payload=True,
            )
            payloads = [dict(point.payload or {}) for point in points]
            exhausted = len(points) < fetch
            if not exhausted:
                # The last seq may go on past this fetch: keep only the seqs read whole.
                last_seq = payloads[-1]["seq"]
                payloads = [payload for payload in payloads if payload["seq"] < last_seq]
            if exhausted or len(payloads) >= wanted:
                payloads.sort(key=lambda payload: (payload["seq"], payload["key"]))
                return payloads[:wanted]
            fetch *= 2

    def _write_guarded(
        self, client: QdrantClient, writes: Sequence[tuple[str, Record, Mapping[str, Any]]], tiebreak: int
    ) -> set[str]:
        """Write each record's new state where the stored point still holds the state read; the ids that landed."""
        for start in range(0, len(writes), _GUARDED_CHUNK):
            members = writes[start : start + _GUARDED_CHUNK]
            client.upsert(
                self.names.records,
                [_merged_point(point_id, record, record.seq, tiebreak) for point_id, record, _ in members],
                update_filter=models.Filter(should=[_unchanged(point_id, read) for point_id, _, read in members]),
                update_mode=models.UpdateMode.UPDATE_ONLY,
            )
        if not self.verify_writes:
            return {point_id for point_id, _, _ in writes}
        landed: set[str] = set()
        expected = {point_id: record for point_id, record, _ in writes}
        ids = list(expected)
        for start in range(0, len(ids), _CHUNK):
            for point in client.retrieve(self.names.records, ids[start : start + _CHUNK], with_payload=True):
                payload = point.payload or {}
                record = expected[str(point.id)]
                if (
                    payload.get("lease_owner") == record.lease_owner
                    and payload.get("lease_us") == _micros(record.lease_expires)
                    and payload.get("updated_us") == to_micros(record.updated_at)
                    and payload.get("attempt") == record.attempt
                ):
                    landed.add(str(point.id))
        return landed

    # -- extensions ------------------------------------------------------------

    def extend(
        self,
        client: QdrantClient,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        worker: str,
        now: datetime,
        lease_until: datetime,
    ) -> list[Record]:
        require_batch(client, self.names, batch_id)
        now_us = to_micros(now)
        extended: list[Record] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = [record_point_id(batch_id, key) for key in keys[start : start + _CHUNK]]
            writes: list[tuple[str, Record, Mapping[str, Any]]] = []
            for point in client.retrieve(self.names.records, chunk, with_payload=True):
                payload = dict(point.payload or {})
                if payload.get("status") != Status.PROCESSING.value or payload.get("lease_owner") != worker:
                    continue
                if payload.get("lease_us") is None or payload["lease_us"] <= now_us:
                    continue
                held = _record(batch_id, payload)
                record = Record(
                    batch_id,
                    held.key,
                    held.seq,
                    held.status,
                    held.attempt,
                    held.result,
                    held.error,
                    extension_stamp(held.updated_at, now),
                    worker,
                    lease_until,
                )
                writes.append((str(point.id), record, payload))
            for point_id, record, read in writes:
                tiebreak = content_tiebreak(record.status, record.result, record.error, worker, lease_until)
                landed = self._write_guarded(client, [(point_id, record, read)], tiebreak)
                if point_id in landed:
                    extended.append(record)
        return sorted(extended, key=lambda record: (record.seq, record.key))

    # -- the listing -----------------------------------------------------------

    def list_batch_progress(
        self, client: QdrantClient, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[BatchProgress]:
        """A page of batches newest first: ``order_by`` created_us descending, ties settled by id here."""
        cursor = None if before is None else (to_micros(before[0]), before[1].int)
        start_from = None if cursor is None else cursor[0]
        fetch = limit + 1
        while True:
            points, _ = client.scroll(
                self.names.batches,
                order_by=models.OrderBy(key="created_us", direction=models.Direction.DESC, start_from=start_from),
                limit=fetch,
                with_payload=True,
            )
            rows = [
                ((point.payload or {})["created_us"], uuid.UUID(str(point.id)), point.payload or {}) for point in points
            ]
            exhausted = len(points) < fetch
            if not exhausted:
                # The last created_us may go on past this fetch: keep only the times read whole.
                last = rows[-1][0]
                rows = [row for row in rows if row[0] > last]
            # A batch whose deletion was begun is not listed; the fetch grows past it as past the cursor.
            rows = [
                row for row in rows if (cursor is None or (row[0], row[1].int) < cursor) and not being_deleted(row[2])
            ]
            if exhausted or len(rows) >= limit:
                break
            fetch *= 2
        rows.sort(key=lambda row: (row[0], row[1].int), reverse=True)
        page = rows[:limit]
        if not page:
            return []
        counts = self._counts(client, [str(batch_id) for _, batch_id, _ in page])
        listed = []
        for created_us, batch_id, payload in page:
            progress = Progress.from_counts(counts.get(str(batch_id), {}))
            batch = Batch(batch_id, progress.total, load_json(payload["metadata"]), from_micros(created_us))
            listed.append(BatchProgress(batch, progress))
        return listed

    def _counts(self, client: QdrantClient, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per batch, its records' count by status: kept ones in local mode, the rest by one facet per status."""
        if self.local_counts is None:
            return self._faceted(client, batch_ids)
        local_counts = self.local_counts
        kept = {batch_id: local_counts.known(uuid.UUID(batch_id)) for batch_id in batch_ids}
        counts = {batch_id: dict(found) for batch_id, found in kept.items() if found is not None}
        uncounted = [batch_id for batch_id in batch_ids if batch_id not in counts]
        if uncounted:
            faceted = self._faceted(client, uncounted)
            for batch_id in uncounted:
                counts[batch_id] = faceted.get(batch_id, {})
                local_counts.keep(uuid.UUID(batch_id), counts[batch_id])
        return counts

    def _faceted(self, client: QdrantClient, batch_ids: list[str]) -> dict[str, dict[str, int]]:
        """Per batch, its records' count by status: one exact facet on batch_id per status."""
        counts: dict[str, dict[str, int]] = {}
        in_page = models.FieldCondition(key="batch_id", match=models.MatchAny(any=batch_ids))
        for status in Status:
            facets = client.facet(
                self.names.records,
                key="batch_id",
                facet_filter=models.Filter(must=[in_page, _equals("status", status.value)]),
                limit=len(batch_ids),
                exact=True,
            )
            for hit in facets.hits:
                counts.setdefault(str(hit.value), {})[status.value] = hit.count
        return counts


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _unchanged(point_id: str, read: Mapping[str, Any]) -> models.Filter:
    """This point, still in the state read: its merge key and its seq."""
    stored = _state(read)
    return models.Filter(
        must=[
            _has_id(point_id),
            *(_equals(field, value) for field, value in zip(_MERGE_FIELDS, _split(stored.order), strict=True)),
            _equals("seq", stored.seq),
        ]
    )


__all__ = ["ROUNDS", "Claims"]
