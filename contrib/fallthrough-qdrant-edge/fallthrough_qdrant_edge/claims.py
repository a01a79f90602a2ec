"""Claims, leases and the newest-first batch listing in the records shard.

Every hook runs under the backend's lock, and the directory's lock keeps
other processes out of the shard (see :mod:`.connection`), so nobody writes
between a claim's read of the claimable records and its write: that is what
makes a claim exclusive here. The write is still a conditional upsert, guarded
on the state read (the merge key and ``seq``), like the Qdrant plugin's, so
the code stays right if the engine ever gains concurrent writers.

The listing orders batch points by ``created_us`` (an integer index), ties by
id in Python, and counts a page's records with one facet per status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fallthrough.ordering import content_tiebreak, extension_stamp
from fallthrough.types import Batch, BatchProgress, Progress, Record, Status, from_micros, to_micros
from qdrant_edge import (
    Direction,
    FacetRequest,
    FieldCondition,
    Filter,
    MatchAny,
    OrderBy,
    Point,
    RangeFloat,
    ScrollRequest,
    UpdateMode,
    UpdateOperation,
)

from .records import _BATCHES, _batch_records, _equals, _record, _record_payload, _retrieve, require_batch
from .schema import KIND, KIND_RECORD, record_point_id

if TYPE_CHECKING:
    from qdrant_edge import ConditionType, EdgeShard


def claim_records(
    shard: EdgeShard, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
) -> list[Record]:
    require_batch(shard, batch_id)
    now_us = to_micros(claimed_at)
    pending = _first_in_order(shard, _batch_records(batch_id, _equals("status", Status.PENDING.value)), limit)
    expired_filter = _batch_records(
        batch_id, _equals("status", Status.PROCESSING.value), FieldCondition("lease_us", range=RangeFloat(lte=now_us))
    )
    expired = _first_in_order(shard, expired_filter, limit)
    chosen = sorted(pending + expired, key=lambda payload: (payload["seq"], payload["key"]))[:limit]
    tiebreak = content_tiebreak(Status.PROCESSING, None, None, worker, lease_until)
    lease_us = to_micros(lease_until)
    claimed = []
    for payload in chosen:
        attempt = payload["attempt"] + (1 if payload["status"] == Status.PROCESSING.value else 0)
        new_payload = _record_payload(
            batch_id,
            payload["key"],
            payload["seq"],
            Status.PROCESSING,
            attempt,
            None,
            None,
            now_us,
            tiebreak,
            worker,
            lease_us,
        )
        _write_if_unchanged(shard, record_point_id(batch_id, payload["key"]), payload, new_payload)
        claimed.append(_record(new_payload))
    return claimed


def extend_leases(
    shard: EdgeShard, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
) -> list[Record]:
    require_batch(shard, batch_id)
    now_us = to_micros(now)
    lease_us = to_micros(lease_until)
    ids = [record_point_id(batch_id, key) for key in keys]
    stored = _retrieve(shard, ids, with_payload=True)
    extended = []
    for point_id in ids:
        payload = stored.get(point_id)
        if not payload or payload["status"] != Status.PROCESSING.value or payload.get("lease_owner") != worker:
            continue
        if payload.get("lease_us") is None or payload["lease_us"] <= now_us:
            continue
        held = _record(payload)
        updated_us = to_micros(extension_stamp(held.updated_at, now))
        new_payload = _record_payload(
            batch_id,
            held.key,
            held.seq,
            held.status,
            held.attempt,
            held.result,
            held.error,
            updated_us,
            content_tiebreak(held.status, held.result, held.error, worker, lease_until),
            worker,
            lease_us,
        )
        _write_if_unchanged(shard, point_id, payload, new_payload)
        extended.append(_record(new_payload))
    return sorted(extended, key=lambda record: (record.seq, record.key))


def _first_in_order(shard: EdgeShard, filter: Filter, wanted: int) -> list[dict[str, Any]]:
    """The first ``wanted`` matches in ``(seq, key)`` order; records sharing the last seq are all read."""
    fetch = wanted + 1
    while True:
        request = ScrollRequest(
            limit=fetch, filter=filter, with_payload=True, order_by=OrderBy("seq", direction=Direction.Asc)
        )
        payloads = [point.payload or {} for point in shard.scroll(request)[0]]
        exhausted = len(payloads) < fetch
        if not exhausted:
            last_seq = payloads[-1]["seq"]
            payloads = [payload for payload in payloads if payload["seq"] < last_seq]
        if exhausted or len(payloads) >= wanted:
            return sorted(payloads, key=lambda payload: (payload["seq"], payload["key"]))[:wanted]
        fetch *= 2


def _write_if_unchanged(
    shard: EdgeShard, point_id: uuid.UUID, read: Mapping[str, Any], new_payload: dict[str, Any]
) -> None:
    """Upsert ``new_payload`` only where the stored point still holds the merge key and seq that were read."""
    fields = ("seq", "attempt", "rank", "updated_us", "tiebreak_high", "tiebreak_low")
    condition = Filter(must=[_equals(field, read[field]) for field in fields])
    shard.update(
        UpdateOperation.upsert_points(
            [Point(point_id, {}, new_payload)], condition=condition, update_mode=UpdateMode.UpdateOnly
        )
    )


def list_batch_progress(shard: EdgeShard, before: tuple[datetime, uuid.UUID] | None, limit: int) -> list[BatchProgress]:
    cursor = None if before is None else (to_micros(before[0]), before[1].int)
    more: list[ConditionType] = []
    if cursor is not None:
        more.append(FieldCondition("created_us", range=RangeFloat(lte=cursor[0])))
    filter = Filter(must=[_BATCHES, *more])
    fetch = limit + 1
    while True:
        request = ScrollRequest(
            limit=fetch, filter=filter, with_payload=True, order_by=OrderBy("created_us", direction=Direction.Desc)
        )
        payloads = [point.payload or {} for point in shard.scroll(request)[0]]
        exhausted = len(payloads) < fetch
        if not exhausted:
            last = payloads[-1]["created_us"]
            payloads = [payload for payload in payloads if payload["created_us"] > last]
        rows = [
            (payload["created_us"], uuid.UUID(payload["batch_id"]), payload)
            for payload in payloads
            if cursor is None or (payload["created_us"], uuid.UUID(payload["batch_id"]).int) < cursor
        ]
        if exhausted or len(rows) >= limit:
            break
        fetch *= 2
    rows.sort(key=lambda row: (row[0], row[1].int), reverse=True)
    page = rows[:limit]
    if not page:
        return []
    counts = _counts(shard, [str(batch_id) for _, batch_id, _ in page])
    listed = []
    for created_us, batch_id, payload in page:
        progress = Progress.from_counts(counts.get(str(batch_id), {}))
        batch = Batch(batch_id, progress.total, json.loads(payload["metadata"]), from_micros(created_us))
        listed.append(BatchProgress(batch, progress))
    return listed


def _counts(shard: EdgeShard, batch_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per batch, its records' count by status: one exact facet on batch_id per status."""
    counts: dict[str, dict[str, int]] = {}
    for status in Status:
        filter = Filter(
            must=[
                FieldCondition("batch_id", match=MatchAny(batch_ids)),
                _equals(KIND, KIND_RECORD),
                _equals("status", status.value),
            ]
        )
        for hit in shard.facet(FacetRequest("batch_id", limit=len(batch_ids), exact=True, filter=filter)):
            if hit.count:
                counts.setdefault(str(hit.value), {})[status.value] = hit.count
    return counts


__all__ = ["claim_records", "extend_leases", "list_batch_progress"]
