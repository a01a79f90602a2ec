"""Batches and records in the records shard.

A batch is one point (kind ``batch``: metadata and creation time); each
record is one point (kind ``record``) whose payload holds its state and its
merge key. Every function runs under the backend's lock (see
:mod:`.connection`), with the shard it needs.

The monotonic merge is a conditional upsert: each point is written with a
condition that holds only while the stored merge key is lower than the
update's, evaluated by the engine against the stored payload. The engine
does not say which points it wrote, and it inserts a point the condition
cannot see, so the hook reads its targets first: that read raises
``NotFound`` before anything is written, and decides which updates apply and
at what attempt. Nobody can write between that read and the upsert: the
backend's lock covers both, and the directory's lock keeps other processes
out of the shard.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from fallthrough.errors import NotFound
from fallthrough.kit import chunked, dump_json, lexicographic_below, load_json, page_from_seq_order
from fallthrough.ordering import PENDING_TIEBREAK, record_tiebreak
from fallthrough.types import JSON, Batch, Progress, Record, RecordUpdate, Status, from_micros, to_micros
from qdrant_edge import (
    CountRequest,
    Direction,
    EdgeShard,
    FacetRequest,
    FieldCondition,
    Filter,
    HasIdCondition,
    MatchValue,
    OrderBy,
    PayloadSelector,
    Point,
    RangeFloat,
    ScrollRequest,
    UpdateMode,
    UpdateOperation,
)

from .schema import KIND, KIND_BATCH, KIND_RECORD, TIEBREAK_LOW_BITS, batch_point_id, record_point_id, split_tiebreak

if TYPE_CHECKING:
    # Names of the engine's stubs only; the module has no such attributes.
    from qdrant_edge import ConditionType, PointId

_CHUNK = 1000
# What an update reads of its target: the merge key, and the seq it keeps.
_MERGE_STATE = PayloadSelector.Include(["seq", "attempt", "rank", "updated_us", "tiebreak_high", "tiebreak_low"])
_PAGE = 1000
_BATCHES = Filter(must=[FieldCondition(KIND, match=MatchValue(KIND_BATCH))])

MergeKey = tuple[int, int, int, int]


def _equals(field: str, value: str | int) -> FieldCondition:
    return FieldCondition(field, match=MatchValue(value))


def _batch_records(batch_id: uuid.UUID, *more: ConditionType) -> Filter:
    return Filter(must=[_equals("batch_id", str(batch_id)), _equals(KIND, KIND_RECORD), *more])


def _record_payload(
    batch_id: uuid.UUID,
    key: str,
    seq: int,
    status: Status,
    attempt: int,
    result: JSON,
    error: str | None,
    updated_us: int,
    tiebreak: int,
    lease_owner: str | None = None,
    lease_us: int | None = None,
) -> dict[str, Any]:
    """A record point's payload; a lease only while claimed (an upsert without one clears it)."""
    high, low = split_tiebreak(tiebreak)
    lease = {} if lease_owner is None or lease_us is None else {"lease_owner": lease_owner, "lease_us": lease_us}
    return {
        KIND: KIND_RECORD,
        "batch_id": str(batch_id),
        "key": key,
        "seq": seq,
        "status": status.value,
        "rank": status.rank,
        "attempt": attempt,
        "result": dump_json(result),
        "error": error,
        "updated_us": updated_us,
        "tiebreak_high": high,
        "tiebreak_low": low,
        **lease,
    }


def _merge_key(payload: Mapping[str, Any]) -> MergeKey:
    tiebreak = (payload["tiebreak_high"] << TIEBREAK_LOW_BITS) | payload["tiebreak_low"]
    return (payload["attempt"], payload["rank"], payload["updated_us"], tiebreak)


def _record(payload: Mapping[str, Any]) -> Record:
    return Record(
        batch_id=uuid.UUID(payload["batch_id"]),
        key=payload["key"],
        seq=payload["seq"],
        status=Status(payload["status"]),
        attempt=payload["attempt"],
        result=load_json(payload["result"]),
        error=payload["error"],
        updated_at=from_micros(payload["updated_us"]),
        lease_owner=payload.get("lease_owner"),
        lease_expires=None if payload.get("lease_us") is None else from_micros(payload["lease_us"]),
    )


def _retrieve(
    shard: EdgeShard, ids: Sequence[PointId], with_payload: bool | PayloadSelector
) -> dict[Any, Mapping[str, Any]]:
    found: dict[Any, Mapping[str, Any]] = {}
    for chunk in chunked(ids, _CHUNK):
        for point in shard.retrieve(list(chunk), with_payload, False):
            found[_uuid(point.id)] = point.payload or {}
    return found


def _uuid(point_id: object) -> uuid.UUID:
    return point_id if isinstance(point_id, uuid.UUID) else uuid.UUID(str(point_id))


def _scroll(shard: EdgeShard, filter: Filter) -> Iterator[Mapping[str, Any]]:
    """Every point the filter matches, with its payload, page by page."""
    offset: Any = None
    while True:
        points, offset = shard.scroll(ScrollRequest(offset=offset, limit=_PAGE, filter=filter, with_payload=True))
        for point in points:
            yield point.payload or {}
        if offset is None:
            return


# -- batches -----------------------------------------------------------------


def create_batch(
    shard: EdgeShard,
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    metadata: Mapping[str, JSON],
    created_at: datetime,
) -> Batch:
    point_id = batch_point_id(batch_id)
    if not shard.retrieve([point_id], False, False):
        payload = _batch_payload(batch_id, metadata, created_at)
        shard.update(UpdateOperation.upsert_points([Point(point_id, {}, payload)]))
    _insert_pending(shard, batch_id, keys, first_seq, created_at)
    batch = get_batch(shard, batch_id)
    assert batch is not None
    return batch


def add_records(
    shard: EdgeShard, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
) -> int:
    require_batch(shard, batch_id)
    return _insert_pending(shard, batch_id, keys, first_seq, created_at)


def _insert_pending(
    shard: EdgeShard, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
) -> int:
    if not keys:
        return 0
    ids = [record_point_id(batch_id, key) for key in keys]
    present = _retrieve(shard, ids, with_payload=False)
    updated_us = to_micros(created_at)
    points = [
        Point(
            point_id,
            {},
            _record_payload(
                batch_id, key, first_seq + index, Status.PENDING, 0, None, None, updated_us, PENDING_TIEBREAK
            ),
        )
        for index, (key, point_id) in enumerate(zip(keys, ids, strict=True))
        if point_id not in present
    ]
    for chunk in chunked(points, _CHUNK):
        # InsertOnly: a key already in the batch keeps its state and seq.
        shard.update(UpdateOperation.upsert_points(list(chunk), update_mode=UpdateMode.InsertOnly))
    return len(points)


def delete_records(shard: EdgeShard, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
    """Delete ``keys[i]`` where its stored seq is ``seqs[i]``: the records an add wrote, and no other."""
    if not keys:
        return 0
    ids = [record_point_id(batch_id, key) for key in keys]
    stored = _retrieve(shard, ids, with_payload=True)
    doomed = [
        point_id
        for point_id, seq in zip(ids, seqs, strict=True)
        if point_id in stored and stored[point_id].get("seq") == seq
    ]
    for chunk in chunked(doomed, _CHUNK):
        shard.update(UpdateOperation.delete_points(list(chunk)))
    return len(doomed)


def delete_batch(shard: EdgeShard, batch_id: uuid.UUID) -> bool:
    existed = bool(shard.retrieve([batch_point_id(batch_id)], False, False))
    # The batch point and its records all carry the batch id. One operation, so a process killed part way
    # leaves the batch whole or gone: the engine writes it to the shard's WAL before applying it, and
    # replays the WAL when the shard opens (killed 1 to 3.5 s into a 5 s delete of 200,000 records, the
    # reopened shard held none). qdrant-client's local mode deletes point by point: fallthrough_qdrant
    # marks the batch first.
    shard.update(UpdateOperation.delete_points_by_filter(Filter(must=[_equals("batch_id", str(batch_id))])))
    return existed


def _batch_payload(batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> dict[str, Any]:
    return {
        KIND: KIND_BATCH,
        "batch_id": str(batch_id),
        "metadata": dump_json(dict(metadata)),
        "created_us": to_micros(created_at),
    }


def _batch(shard: EdgeShard, batch_id: uuid.UUID, payload: Mapping[str, Any]) -> Batch:
    total = shard.count(CountRequest(exact=True, filter=_batch_records(batch_id)))
    return Batch(batch_id, total, load_json(payload["metadata"]), from_micros(payload["created_us"]))


def get_batch(shard: EdgeShard, batch_id: uuid.UUID) -> Batch | None:
    found = shard.retrieve([batch_point_id(batch_id)], True, False)
    if not found or found[0].payload is None:
        return None
    return _batch(shard, batch_id, found[0].payload)


def list_batches(shard: EdgeShard, after: uuid.UUID | None, limit: int) -> list[Batch]:
    """One page of batches in the order of their point ids, the order the engine scrolls in.

    ``after`` is the previous page's last batch; its point is where the page
    starts, since the engine's offset is inclusive, and is skipped. Each page
    is one scroll from its offset plus one exact count per batch (its total).
    """
    if limit <= 0:
        return []
    offset = None if after is None else batch_point_id(after)
    fetch = limit if offset is None else limit + 1
    request = ScrollRequest(offset=offset, limit=fetch, filter=_BATCHES, with_payload=True)
    points, _ = shard.scroll(request)
    if offset is not None and points and _uuid(points[0].id) == offset:
        points = points[1:]
    payloads = [point.payload for point in points[:limit] if point.payload]
    return [_batch(shard, uuid.UUID(payload["batch_id"]), payload) for payload in payloads]


def repair_batch(shard: EdgeShard, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
    """Create the batch without records, or set its metadata and creation time: the repair chose them."""
    point = Point(batch_point_id(batch_id), {}, _batch_payload(batch_id, metadata, created_at))
    shard.update(UpdateOperation.upsert_points([point]))


def require_batch(shard: EdgeShard, batch_id: uuid.UUID) -> None:
    if not shard.retrieve([batch_point_id(batch_id)], False, False):
        raise NotFound(f"no batch {batch_id}")


# -- the merge ---------------------------------------------------------------


@attrs.frozen
class _Write:
    update: RecordUpdate
    point: Point


def _stored_key_is_lower(attempt: int, rank: int, updated_us: int, tiebreak: int) -> Filter:
    """The stored (attempt, rank, updated_us, tiebreak) is lexicographically below the given key.

    The tiebreak is compared as its two halves (see :mod:`.schema`), so every
    bound the engine compares is exact in a float.
    """
    high, low = split_tiebreak(tiebreak)
    keys = [("attempt", attempt), ("rank", rank), ("updated_us", updated_us), ("tiebreak_high", high)]
    keys.append(("tiebreak_low", low))
    alternatives: list[ConditionType] = []
    for equal_before, (field, value) in lexicographic_below(keys):
        lower_here = FieldCondition(field, range=RangeFloat(lt=value))
        alternatives.append(Filter(must=[*(_equals(*pair) for pair in equal_before), lower_here]))
    return Filter(should=alternatives)


def update_records(shard: EdgeShard, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
    if not updates:
        return []
    updated_us = to_micros(updated_at)
    ids = [record_point_id(update.batch_id, update.key) for update in updates]
    stored = _retrieve(shard, ids, with_payload=_MERGE_STATE)
    for update, point_id in zip(updates, ids, strict=True):
        if point_id not in stored:
            raise NotFound(f"no record {update.key!r} in batch {update.batch_id}")
    groups: dict[MergeKey, list[_Write]] = {}
    for update, point_id in zip(updates, ids, strict=True):
        payload = stored[point_id]
        attempt = payload["attempt"] if update.attempt is None else update.attempt
        new_key = (attempt, update.status.rank, updated_us, update.tiebreak)
        if new_key <= _merge_key(payload):
            continue
        new_payload = _record_payload(
            update.batch_id,
            update.key,
            payload["seq"],
            update.status,
            attempt,
            update.result,
            update.error,
            updated_us,
            update.tiebreak,
        )
        pinned = update.pinned(attempt)
        groups.setdefault(new_key, []).append(_Write(pinned, Point(point_id, {}, new_payload)))
    # One conditional upsert per distinct new merge key: the condition is
    # the key's, and the engine checks it against each point's stored key.
    for key, writes in groups.items():
        condition = _stored_key_is_lower(*key)
        for chunk in chunked(writes, _CHUNK):
            points = [write.point for write in chunk]
            shard.update(UpdateOperation.upsert_points(points, condition=condition, update_mode=UpdateMode.UpdateOnly))
    applied = {(write.update.batch_id, write.update.key): write.update for ws in groups.values() for write in ws}
    return [applied[(item.batch_id, item.key)] for item in updates if (item.batch_id, item.key) in applied]


def retry_failed(shard: EdgeShard, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
    require_batch(shard, batch_id)
    failed = list(_scroll(shard, _batch_records(batch_id, _equals("status", Status.FAILED.value))))
    failed.sort(key=lambda payload: (payload["seq"], payload["key"]))
    updated_us = to_micros(updated_at)
    by_attempt: dict[int, list[Point]] = {}
    for payload in failed:
        attempt = payload["attempt"]
        new_payload = _record_payload(
            batch_id,
            payload["key"],
            payload["seq"],
            Status.PENDING,
            attempt + 1,
            None,
            None,
            updated_us,
            PENDING_TIEBREAK,
        )
        point = Point(record_point_id(batch_id, payload["key"]), {}, new_payload)
        by_attempt.setdefault(attempt, []).append(point)
    for attempt, points in by_attempt.items():
        # Written only where the record is still failed at the attempt read.
        condition = Filter(must=[_equals("status", Status.FAILED.value), _equals("attempt", attempt)])
        for chunk in chunked(points, _CHUNK):
            shard.update(
                UpdateOperation.upsert_points(list(chunk), condition=condition, update_mode=UpdateMode.UpdateOnly)
            )
    return [
        RecordUpdate(batch_id, payload["key"], Status.PENDING, attempt=payload["attempt"] + 1) for payload in failed
    ]


def merge_records(shard: EdgeShard, batch_id: uuid.UUID, merged: Sequence[Record]) -> int:
    """Merge full record states from another store; how many records changed.

    Each record is inserted if absent (with the state's content tiebreak,
    which is what every stored tiebreak equals), keeps the smaller seq of the
    two, and takes the given state where its merge key is greater. Like
    :func:`update_records`, the targets are read first (under the backend's
    lock) to count the changes and to carry the kept seq, and the state is
    written by conditional upserts the engine checks against the stored key;
    a seq that only goes down is a ``set_payload`` on points whose stored seq
    is still greater.
    """
    require_batch(shard, batch_id)
    if not merged:
        return 0
    ids = [record_point_id(batch_id, record.key) for record in merged]
    stored = _retrieve(shard, ids, with_payload=_MERGE_STATE)
    inserts: list[Point] = []
    groups: dict[MergeKey, list[Point]] = {}
    lowered: dict[int, list[PointId]] = {}
    for record, point_id in zip(merged, ids, strict=True):
        tiebreak = record_tiebreak(record)
        updated_us = to_micros(record.updated_at)
        payload = stored.get(point_id)
        seq = record.seq if payload is None else min(payload["seq"], record.seq)
        lease_us = None if record.lease_expires is None else to_micros(record.lease_expires)
        new_payload = _record_payload(
            batch_id,
            record.key,
            seq,
            record.status,
            record.attempt,
            record.result,
            record.error,
            updated_us,
            tiebreak,
            record.lease_owner,
            lease_us,
        )
        if payload is None:
            inserts.append(Point(point_id, {}, new_payload))
            continue
        new_key = (record.attempt, record.status.rank, updated_us, tiebreak)
        if new_key > _merge_key(payload):
            groups.setdefault(new_key, []).append(Point(point_id, {}, new_payload))
        elif record.seq < payload["seq"]:
            lowered.setdefault(record.seq, []).append(point_id)
    for chunk in chunked(inserts, _CHUNK):
        shard.update(UpdateOperation.upsert_points(list(chunk), update_mode=UpdateMode.InsertOnly))
    for key, points in groups.items():
        condition = _stored_key_is_lower(*key)
        for chunk in chunked(points, _CHUNK):
            shard.update(
                UpdateOperation.upsert_points(list(chunk), condition=condition, update_mode=UpdateMode.UpdateOnly)
            )
    for seq, point_ids in lowered.items():
        for chunk_ids in chunked(point_ids, _CHUNK):
            seq_above = FieldCondition("seq", range=RangeFloat(gt=seq))
            still_greater = Filter(must=[HasIdCondition(set(chunk_ids)), seq_above])
            shard.update(UpdateOperation.set_payload_by_filter(still_greater, {"seq": seq}))
    return len(inserts) + sum(len(points) for points in groups.values()) + sum(map(len, lowered.values()))


# -- reads -------------------------------------------------------------------


def get_record(shard: EdgeShard, batch_id: uuid.UUID, key: str) -> Record | None:
    found = shard.retrieve([record_point_id(batch_id, key)], True, False)
    return _record(found[0].payload) if found and found[0].payload else None


def get_records(shard: EdgeShard, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
    """The records of these keys, in their order, missing ones left out; an unknown batch has none."""
    ids = [record_point_id(batch_id, key) for key in keys]
    stored = _retrieve(shard, ids, with_payload=True)
    return [_record(stored[point_id]) for point_id in ids if stored.get(point_id)]


def list_records(
    shard: EdgeShard, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
) -> list[Record]:
    """One keyset page in (seq, key) order.

    The engine orders by ``seq`` (an integer index) alone; keys order only
    the records that share a seq, which the core's stamps make rare. The
    scroll asks for the page and two more (the cursor's own record and one
    past the end), so that with distinct seqs one scroll decides the page;
    records sharing a seq at its end make it ask again for twice as many
    (:func:`fallthrough.kit.page_from_seq_order`).
    """
    require_batch(shard, batch_id)
    conditions: list[ConditionType] = []
    if status is not None:
        conditions.append(_equals("status", Status.coerce(status).value))
    after_seq = None if after is None else after[0]
    if after_seq is not None:
        conditions.append(FieldCondition("seq", range=RangeFloat(gte=after_seq)))
    # start_from as well as the range: the engine streams its seq index from start_from, and
    # without it walks every point before the cursor (checking the range) on every page.
    order = OrderBy("seq", direction=Direction.Asc, start_from=after_seq)
    fetch = limit + 2
    while True:
        request = ScrollRequest(
            limit=fetch, filter=_batch_records(batch_id, *conditions), with_payload=True, order_by=order
        )
        page = page_from_seq_order([point.payload or {} for point in shard.scroll(request)[0]], fetch, after, limit)
        if page is not None:
            return [_record(payload) for payload in page]
        fetch *= 2


def progress(shard: EdgeShard, batch_id: uuid.UUID) -> Progress:
    require_batch(shard, batch_id)
    request = FacetRequest("status", limit=len(Status), exact=True, filter=_batch_records(batch_id))
    # A facet can list a value whose count dropped to zero.
    counts = {hit.value: hit.count for hit in shard.facet(request) if hit.count}
    return Progress.from_counts({str(status): count for status, count in counts.items()})


__all__ = [
    "add_records",
    "create_batch",
    "delete_records",
    "delete_batch",
    "get_batch",
    "get_record",
    "get_records",
    "list_batches",
    "list_records",
    "merge_records",
    "progress",
    "repair_batch",
    "require_batch",
    "retry_failed",
    "update_records",
]
