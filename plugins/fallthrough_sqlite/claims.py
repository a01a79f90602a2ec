"""Claims, leases and the newest-first batch listing: the SQL behind those hooks.

A claim runs inside the hook's ``BEGIN IMMEDIATE`` transaction (see
:mod:`.connection`): the write lock is taken before the candidates are read,
so no other connection, thread or process, writes between that read and the
UPDATE, and two claimers never take the same record. The candidates are
read through ``records_by_status`` (batch, status, seq, key): the pending
ones in batch order, and the processing ones, few at any time, whose lease
expired; the first ``limit`` of both, in ``(seq, key)`` order, are taken.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, tuple_, update

from fallthrough.kit import load_json
from fallthrough.ordering import content_tiebreak, extension_stamp
from fallthrough.types import Batch, BatchProgress, Progress, Record, Status, from_micros, to_micros

from .records import _CHUNK, _RECORD_COLUMNS, _record, _require_batch
from .schema import batches, record_counts, records

_TAKE = (
    update(records)
    .where(
        records.c.batch_id == bindparam("c_batch_id"),
        records.c.key == bindparam("c_key"),
    )
    .values(
        status=Status.PROCESSING.value,
        rank=Status.PROCESSING.rank,
        attempt=bindparam("c_attempt"),
        result=None,
        error=None,
        updated_us=bindparam("c_updated_us"),
        tiebreak=bindparam("c_tiebreak"),
        lease_owner=bindparam("c_owner"),
        lease_us=bindparam("c_lease_us"),
    )
)


def claim_records(
    conn: Connection, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
) -> list[Record]:
    _require_batch(conn, batch_id)
    now_us = to_micros(claimed_at)
    columns = (records.c.seq, records.c.key, records.c.attempt)
    in_batch = records.c.batch_id == str(batch_id)
    pending = (
        select(*columns)
        .where(in_batch, records.c.status == Status.PENDING.value)
        .order_by(records.c.seq, records.c.key)
        .limit(limit)
    )
    expired = (
        select(*columns)
        .where(in_batch, records.c.status == Status.PROCESSING.value, records.c.lease_us <= now_us)
        .order_by(records.c.seq, records.c.key)
        .limit(limit)
    )
    candidates = [(row.seq, row.key, row.attempt, 0) for row in conn.execute(pending).all()]
    candidates += [(row.seq, row.key, row.attempt + 1, 1) for row in conn.execute(expired).all()]
    chosen = sorted(candidates)[:limit]
    if not chosen:
        return []
    lease_us = to_micros(lease_until)
    tiebreak = content_tiebreak(Status.PROCESSING, None, None, worker, lease_until)
    conn.execute(
        _TAKE,
        [
            {
                "c_batch_id": str(batch_id),
                "c_key": key,
                "c_attempt": attempt,
                "c_updated_us": now_us,
                "c_tiebreak": tiebreak,
                "c_owner": worker,
                "c_lease_us": lease_us,
            }
            for _, key, attempt, _ in chosen
        ],
    )
    return [
        Record(batch_id, key, seq, Status.PROCESSING, attempt, None, None, claimed_at, worker, lease_until)
        for seq, key, attempt, _ in chosen
    ]


def extend_leases(
    conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
) -> list[Record]:
    _require_batch(conn, batch_id)
    now_us = to_micros(now)
    held: list[Record] = []
    for start in range(0, len(keys), _CHUNK):
        query = select(*_RECORD_COLUMNS).where(
            records.c.batch_id == str(batch_id),
            records.c.key.in_(keys[start : start + _CHUNK]),
            records.c.status == Status.PROCESSING.value,
            records.c.lease_owner == worker,
            records.c.lease_us > now_us,
        )
        held.extend(_record(batch_id, row) for row in conn.execute(query).all())
    if not held:
        return []
    held.sort(key=lambda record: (record.seq, record.key))
    lease_us = to_micros(lease_until)
    extended = [
        Record(
            batch_id,
            record.key,
            record.seq,
            record.status,
            record.attempt,
            record.result,
            record.error,
            extension_stamp(record.updated_at, now),
            worker,
            lease_until,
        )
        for record in held
    ]
    statement = (
        update(records)
        .where(records.c.batch_id == bindparam("c_batch_id"), records.c.key == bindparam("c_key"))
        .values(updated_us=bindparam("c_updated_us"), lease_us=lease_us, tiebreak=bindparam("c_tiebreak"))
    )
    conn.execute(
        statement,
        [
            {
                "c_batch_id": str(batch_id),
                "c_key": record.key,
                "c_updated_us": to_micros(record.updated_at),
                "c_tiebreak": content_tiebreak(record.status, record.result, record.error, worker, lease_until),
            }
            for record in extended
        ],
    )
    return extended


def _count(status: Status) -> object:
    return (
        select(record_counts.c.n)
        .where(record_counts.c.batch_id == batches.c.batch_id, record_counts.c.status == status.value)
        .scalar_subquery()
        .label(status.value)
    )


def list_batch_progress(conn: Connection, before: tuple[datetime, uuid.UUID] | None, limit: int) -> list[BatchProgress]:
    """One page of batches newest first, each with its counts, in one statement.

    The keyset runs on ``batches_by_created``; each count is one
    row of ``record_counts``, so a page costs its batches, never their
    records. ``str(uuid)`` is fixed-width lower-case
    hex: text order is the UUIDs' order.
    """
    query = select(
        batches.c.batch_id,
        batches.c.metadata,
        batches.c.created_us,
        *(_count(status) for status in Status),
    )
    if before is not None:
        query = query.where(
            tuple_(batches.c.created_us, batches.c.batch_id) < tuple_(to_micros(before[0]), str(before[1]))
        )
    query = query.order_by(batches.c.created_us.desc(), batches.c.batch_id.desc()).limit(limit)
    page = []
    for row in conn.execute(query).all():
        progress = Progress.from_counts({status: getattr(row, status.value) for status in Status})
        created_at = from_micros(row.created_us)
        batch = Batch(uuid.UUID(row.batch_id), progress.total, load_json(row.metadata), created_at)
        page.append(BatchProgress(batch, progress))
    return page


__all__ = ["claim_records", "extend_leases", "list_batch_progress"]
