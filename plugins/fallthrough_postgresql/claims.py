"""Claims, leases and the newest-first batch listing: the SQL behind those hooks.

A claim is one statement, ``UPDATE ... WHERE (batch_id, key) IN (SELECT ...
ORDER BY seq, key FOR UPDATE SKIP LOCKED LIMIT n) RETURNING ...``: the
subquery locks the first claimable rows no other transaction holds, and a
row another claimer changed since this statement's snapshot is checked again
against the WHERE once its lock is granted (READ COMMITTED re-evaluation),
so two claimers never take one record and neither waits for the other. The
candidates come from the partial index ``processing_results_claimable``.

An extension is one conditional ``UPDATE`` whose WHERE is the holder's
lease, and the listing one statement per page that reads the status
counters the triggers keep (:mod:`.schema`), not the records.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from fallthrough.errors import NotFound
from fallthrough.ordering import content_tiebreak
from fallthrough.types import Batch, BatchProgress, Progress, Record, Status, from_micros, to_micros

from . import json_text
from .connection import driver_connection
from .records import _RECORD_COLUMNS, _record

CLAIM = """
    UPDATE processing_results AS r
    SET status = 'processing', rank = 1,
        attempt = CASE WHEN r.status = 'processing' THEN r.attempt + 1 ELSE r.attempt END,
        result = NULL, error = NULL, updated_us = %(now)s, tiebreak = %(tiebreak)s,
        lease_owner = %(worker)s, lease_us = %(lease_us)s
    WHERE (r.batch_id, r.key) IN (
        SELECT c.batch_id, c.key FROM processing_results AS c
        WHERE c.batch_id = %(batch_id)s
          AND (c.status = 'pending' OR (c.status = 'processing' AND c.lease_us <= %(now)s))
        ORDER BY c.seq, c.key
        FOR UPDATE SKIP LOCKED
        LIMIT %(limit)s
    )
    RETURNING r.seq, r.key, r.attempt
"""
"""The claim: also what ``benchmarks/claims.py`` runs as the raw loop, less the lease bookkeeping."""

_EXTEND = f"""
    UPDATE processing_results AS r
    SET updated_us = greatest(%(now)s, r.updated_us + 1), lease_us = %(lease_us)s, tiebreak = %(tiebreak)s
    WHERE r.batch_id = %(batch_id)s AND r.key = ANY(%(keys)s::text[])
      AND r.status = 'processing' AND r.lease_owner = %(worker)s AND r.lease_us > %(now)s
    RETURNING {", ".join(f"r.{column}" for column in _RECORD_COLUMNS.split(", "))}
"""
_FIX_TIEBREAK = "UPDATE processing_results SET tiebreak = %s WHERE batch_id = %s AND key = %s"
_BATCH_EXISTS = "SELECT FROM fallthrough_batches WHERE batch_id = %s"

_COUNT = "coalesce(sum(c.count) FILTER (WHERE c.status = '{0}'), 0)"
_LIST = f"""
    SELECT b.batch_id, b.metadata::text, b.created_us, s.pending, s.processing, s.completed, s.failed
    FROM fallthrough_batches AS b
    CROSS JOIN LATERAL (
        SELECT {", ".join(f"{_COUNT.format(status.value)} AS {status.value}" for status in Status)}
        FROM fallthrough_status_counts AS c WHERE c.batch_id = b.batch_id
    ) AS s
"""
_ORDER = " ORDER BY b.created_us DESC, b.batch_id DESC LIMIT %(limit)s"
LIST_FIRST = _LIST + _ORDER
LIST_BEFORE = _LIST + " WHERE (b.created_us, b.batch_id) < (%(created_us)s, %(batch_id)s)" + _ORDER


def claim_records(
    conn: Connection, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
) -> list[Record]:
    cursor = driver_connection(conn).cursor()
    parameters: dict[str, Any] = {
        "batch_id": batch_id,
        "worker": worker,
        "limit": limit,
        "now": to_micros(claimed_at),
        "lease_us": to_micros(lease_until),
        "tiebreak": content_tiebreak(Status.PROCESSING, None, None, worker, lease_until),
    }
    rows = sorted(cursor.execute(CLAIM, parameters).fetchall())
    if not rows and cursor.execute(_BATCH_EXISTS, (batch_id,)).rowcount == 0:
        raise NotFound(f"no batch {batch_id}")
    # RETURNING comes back in no particular order; the hook promises (seq, key).
    return [
        Record(batch_id, key, seq, Status.PROCESSING, attempt, None, None, claimed_at, worker, lease_until)
        for seq, key, attempt in rows
    ]


def extend_leases(
    conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
) -> list[Record]:
    cursor = driver_connection(conn).cursor()
    parameters: dict[str, Any] = {
        "batch_id": batch_id,
        "keys": list(keys),
        "worker": worker,
        "now": to_micros(now),
        "lease_us": to_micros(lease_until),
        # A claimed record has no result or error; one merged in with them gets its own tiebreak below.
        "tiebreak": content_tiebreak(Status.PROCESSING, None, None, worker, lease_until),
    }
    extended = sorted(
        (_record(batch_id, row) for row in cursor.execute(_EXTEND, parameters).fetchall()),
        key=lambda record: (record.seq, record.key),
    )
    for record in extended:
        if record.result is not None or record.error is not None:
            tiebreak = content_tiebreak(record.status, record.result, record.error, worker, lease_until)
            cursor.execute(_FIX_TIEBREAK, (tiebreak, batch_id, record.key))
    if not extended and cursor.execute(_BATCH_EXISTS, (batch_id,)).rowcount == 0:
        raise NotFound(f"no batch {batch_id}")
    return extended


def list_batch_progress(conn: Connection, before: tuple[datetime, uuid.UUID] | None, limit: int) -> list[BatchProgress]:
    cursor = driver_connection(conn).cursor()
    if before is None:
        rows = cursor.execute(LIST_FIRST, {"limit": limit})
    else:
        rows = cursor.execute(LIST_BEFORE, {"limit": limit, "created_us": to_micros(before[0]), "batch_id": before[1]})
    page = []
    for batch_id, metadata, created_us, *counts in rows.fetchall():
        progress = Progress.from_counts({status: int(count) for status, count in zip(Status, counts, strict=True)})
        loaded = json_text.load(metadata)
        assert isinstance(loaded, dict)
        page.append(BatchProgress(Batch(batch_id, progress.total, loaded, from_micros(created_us)), progress))
    return page


__all__ = ["CLAIM", "claim_records", "extend_leases", "list_batch_progress"]
