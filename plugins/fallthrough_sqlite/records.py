"""Batches and records: the SQL behind the record hooks.

Every function takes a connection already inside the transaction the hook
needs (see :mod:`.connection`), so a check and the write it guards are one
atomic step: a :class:`~sqlalchemy.Connection`, or for the record reads
(``Conn``) the driver's own ``sqlite3.Connection``, whose SQL they run on its
cursor.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import count, repeat
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, case, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.sqlite import insert

from fallthrough.errors import NotFound
from fallthrough.kit import chunked, decode_records, dump_json, dump_json_optional, load_json
from fallthrough.ordering import PENDING_TIEBREAK, record_tiebreak
from fallthrough.types import JSON, Batch, Progress, Record, RecordUpdate, Status, from_micros, to_micros

from .schema import batches, record_counts, records

# SQLite allows 32766 bound parameters per statement; stay far below it.
_CHUNK = 500

# The monotonic merge as one statement: the stored state is replaced only
# when its merge key (attempt, rank, updated_at, tiebreak) is lower than the
# update's, compared as SQLite row values. An update without an attempt
# takes the stored one, in the comparison and in the write alike. The
# bind names differ from the column names, which SQLAlchemy reserves in SET.
_attempt = func.coalesce(bindparam("u_attempt", type_=Integer), records.c.attempt)
_MERGE = (
    update(records)
    .where(
        records.c.batch_id == bindparam("u_batch_id"),
        records.c.key == bindparam("u_key"),
        tuple_(records.c.attempt, records.c.rank, records.c.updated_us, records.c.tiebreak)
        < tuple_(_attempt, bindparam("u_rank"), bindparam("u_updated_us"), bindparam("u_tiebreak")),
    )
    .values(
        status=bindparam("u_status"),
        rank=bindparam("u_rank"),
        attempt=_attempt,
        result=bindparam("u_result"),
        error=bindparam("u_error"),
        updated_us=bindparam("u_updated_us"),
        tiebreak=bindparam("u_tiebreak"),
        # An applied update gives up any claim.
        lease_owner=None,
        lease_us=None,
    )
)

# Built once: SQLAlchemy caches a statement's compiled form by its cache key,
# and building the key again on every call is most of a single update's cost.
_MERGE_RETURNING_ATTEMPT = _MERGE.returning(records.c.attempt)
_RECORD_EXISTS = select(records.c.key).where(
    records.c.batch_id == bindparam("u_batch_id"), records.c.key == bindparam("u_key")
)

# Keys already in the batch keep their state and seq: the insert skips them.
# ON CONFLICT names the key, so only a duplicate is skipped; OR IGNORE
# would also swallow a NOT NULL violation. Constant text, run on the driver's
# cursor (see _insert_pending); the constants are the pending state's.
_INSERT_PENDING_SQL = (
    "INSERT INTO records (batch_id, key, seq, status, rank, attempt, updated_us, tiebreak)"
    f" VALUES (?, ?, ?, '{Status.PENDING.value}', {Status.PENDING.rank}, 0, ?, {PENDING_TIEBREAK})"
    " ON CONFLICT (batch_id, key) DO NOTHING"
)
# Inserts are counted by the hooks, not by a trigger (schema version 7).
_ADD_COUNT = "UPDATE record_counts SET n = n + ? WHERE batch_id = ? AND status = ?"
_INSERT_BATCH = insert(batches).on_conflict_do_nothing(index_elements=[batches.c.batch_id])

# A repair's batch header: created when absent, overwritten when present.
_upsert_batch = insert(batches)
_REPAIR_BATCH = _upsert_batch.on_conflict_do_update(
    index_elements=[batches.c.batch_id],
    set_={"metadata": _upsert_batch.excluded.metadata, "created_us": _upsert_batch.excluded.created_us},
)

# A repair's full record states, merged as one statement per row: an absent
# key is inserted as sent; a present one keeps the smaller seq and takes the
# sent state only when its merge key is greater, compared as row values
# exactly as _MERGE does. SET expressions all read the stored row as it was,
# so every CASE sees the same comparison. The WHERE skips rows that would
# not change, so the row count is the number of records changed.
_incoming = insert(records)
_NEWER = tuple_(records.c.attempt, records.c.rank, records.c.updated_us, records.c.tiebreak) < tuple_(
    _incoming.excluded.attempt, _incoming.excluded.rank, _incoming.excluded.updated_us, _incoming.excluded.tiebreak
)
_STATE_COLUMNS = ("status", "rank", "attempt", "result", "error", "updated_us", "tiebreak", "lease_owner", "lease_us")
_MERGE_RECORDS = _incoming.on_conflict_do_update(
    index_elements=[records.c.batch_id, records.c.key],
    set_={
        "seq": func.min(records.c.seq, _incoming.excluded.seq),
        **{name: case((_NEWER, _incoming.excluded[name]), else_=records.c[name]) for name in _STATE_COLUMNS},
    },
    where=or_(_incoming.excluded.seq < records.c.seq, _NEWER),
)


def create_batch(
    conn: Connection,
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    metadata: Mapping[str, JSON],
    created_at: datetime,
) -> Batch:
    # The batch row is written only when new: its metadata and created_at
    # are those of the first call.
    conn.execute(
        _INSERT_BATCH,
        {"batch_id": str(batch_id), "metadata": dump_json(dict(metadata)), "created_us": to_micros(created_at)},
    )
    _insert_pending(conn, batch_id, keys, first_seq, created_at)
    batch = get_batch(conn, batch_id)
    assert batch is not None
    return batch


def add_records(
    conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
) -> int:
    _require_batch(conn, batch_id)
    return _insert_pending(conn, batch_id, keys, first_seq, created_at)


def _insert_pending(
    conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
) -> int:
    """Insert the absent keys as pending records, and add how many to the batch's ``pending`` count.

    One ``executemany`` on the driver's cursor, its rows built by ``zip`` in
    C: SQLAlchemy's per-row parameter processing cost more than SQLite's
    insert itself (issue 12). The columns left out (result, error, the lease)
    are NULL. The insert's row count sums the rows really added (a present
    key is skipped by ON CONFLICT), and one UPDATE adds it to the counter
    row, in this transaction: no per-row trigger (schema version 7).
    """
    if not keys:
        return 0
    batch = str(batch_id)
    cursor = _cursor(conn)
    cursor.executemany(_INSERT_PENDING_SQL, zip(repeat(batch), keys, count(first_seq), repeat(to_micros(created_at))))
    added = cursor.rowcount
    if added:
        cursor.execute(_ADD_COUNT, (added, batch, Status.PENDING.value))
    return added


_DELETE_ADDED = delete(records).where(
    records.c.batch_id == bindparam("d_batch_id"),
    records.c.key == bindparam("d_key"),
    records.c.seq == bindparam("d_seq"),
)


def delete_records(conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
    """Delete ``keys[i]`` where its seq is still ``seqs[i]``: the records an add wrote, and no other."""
    if not keys:
        return 0
    batch = str(batch_id)
    rows = [{"d_batch_id": batch, "d_key": key, "d_seq": seq} for key, seq in zip(keys, seqs, strict=True)]
    # One executemany on the (batch_id, key) primary key; its rowcount sums the rows deleted.
    return conn.execute(_DELETE_ADDED, rows).rowcount


def update_records(conn: Connection, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
    if not updates:
        return []
    updated_us = to_micros(updated_at)
    rows = [
        {
            "u_batch_id": str(item.batch_id),
            "u_key": item.key,
            "u_status": item.status.value,
            "u_rank": item.status.rank,
            "u_attempt": item.attempt,
            "u_result": dump_json_optional(item.result),
            "u_error": item.error,
            "u_updated_us": updated_us,
            "u_tiebreak": item.tiebreak,
        }
        for item in updates
    ]
    if len(updates) == 1:
        # The common single update learns its attempt from RETURNING.
        returned = conn.execute(_MERGE_RETURNING_ATTEMPT, rows[0]).first()
        if returned is None:
            if conn.execute(_RECORD_EXISTS, rows[0]).first() is None:
                raise NotFound(f"no record {updates[0].key!r} in batch {updates[0].batch_id}")
            return []
        return [updates[0].pinned(returned.attempt)]
    # A bulk call reads its targets first, inside the same BEGIN IMMEDIATE
    # transaction, so nobody writes between that read and the UPDATE. The
    # read tells which updates will apply and at what attempt (executemany
    # cannot return rows), and that a missing record voids the call before
    # anything is written; the UPDATE's own WHERE still guards every row.
    states = _current_states(conn, updates)
    _raise_if_missing(conn, updates, states)
    applying: list[tuple[RecordUpdate, dict[str, Any]]] = []
    for item, row in zip(updates, rows, strict=True):
        attempt, rank, stored_us, tiebreak = states[(item.batch_id, item.key)]
        new_attempt = attempt if item.attempt is None else item.attempt
        if (new_attempt, item.status.rank, updated_us, item.tiebreak) > (attempt, rank, stored_us, tiebreak):
            applying.append((item.pinned(new_attempt), row))
    if applying:
        conn.execute(_MERGE, [row for _, row in applying])
    return [item for item, _ in applying]


def _current_states(
    conn: Connection, updates: Sequence[RecordUpdate]
) -> dict[tuple[uuid.UUID, str], tuple[int, int, int, int]]:
    """The stored merge key (attempt, rank, updated_us, tiebreak) of each targeted record that exists."""
    wanted: dict[uuid.UUID, list[str]] = {}
    for item in updates:
        wanted.setdefault(item.batch_id, []).append(item.key)
    states: dict[tuple[uuid.UUID, str], tuple[int, int, int, int]] = {}
    columns = (records.c.key, records.c.attempt, records.c.rank, records.c.updated_us, records.c.tiebreak)
    for batch_id, keys in wanted.items():
        for chunk in chunked(keys, _CHUNK):
            query = select(*columns).where(records.c.batch_id == str(batch_id), records.c.key.in_(chunk))
            for row in conn.execute(query).all():
                states[(batch_id, row.key)] = (row.attempt, row.rank, row.updated_us, row.tiebreak)
    return states


def _raise_if_missing(
    conn: Connection,
    updates: Sequence[RecordUpdate],
    states: dict[tuple[uuid.UUID, str], tuple[int, int, int, int]] | None = None,
) -> None:
    found = _current_states(conn, updates) if states is None else states
    missing = next((item for item in updates if (item.batch_id, item.key) not in found), None)
    if missing is not None:
        raise NotFound(f"no record {missing.key!r} in batch {missing.batch_id}")


def retry_failed(conn: Connection, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
    _require_batch(conn, batch_id)
    statement = (
        update(records)
        .where(records.c.batch_id == str(batch_id), records.c.status == Status.FAILED.value)
        .values(
            status=Status.PENDING.value,
            rank=Status.PENDING.rank,
            attempt=records.c.attempt + 1,
            result=None,
            error=None,
            updated_us=to_micros(updated_at),
            tiebreak=PENDING_TIEBREAK,
            lease_owner=None,
            lease_us=None,
        )
        .returning(records.c.seq, records.c.key, records.c.attempt)
    )
    # RETURNING comes back in no particular order; the hook promises (seq, key).
    moved = sorted(conn.execute(statement).all())
    return [RecordUpdate(batch_id, row.key, Status.PENDING, attempt=row.attempt) for row in moved]


def delete_batch(conn: Connection, batch_id: uuid.UUID) -> bool:
    conn.execute(delete(records).where(records.c.batch_id == str(batch_id)))
    return conn.execute(delete(batches).where(batches.c.batch_id == str(batch_id))).rowcount > 0


def get_batch(conn: Conn, batch_id: uuid.UUID) -> Batch | None:
    row = (
        _cursor(conn)
        .execute("SELECT metadata, created_us FROM batches WHERE batch_id = ?", (str(batch_id),))
        .fetchone()
    )
    if row is None:
        return None
    metadata, created_us = row
    total = sum(read_counts(conn, batch_id).values())
    return Batch(batch_id, total, load_json(metadata), from_micros(created_us))


_RECORD_COLUMNS = (
    records.c.key,
    records.c.seq,
    records.c.status,
    records.c.attempt,
    records.c.result,
    records.c.error,
    records.c.updated_us,
    records.c.lease_owner,
    records.c.lease_us,
)

# The record reads run their SQL on the driver's cursor, not through
# SQLAlchemy: a page of 1000 records is most of its cost in per-row Python,
# and SQLAlchemy's Row adds more than the driver's fetch itself (issue 12).
# The texts are constant, so sqlite3's statement cache prepares each once
# per connection. The columns are _RECORD_COLUMNS, in that order.
_SELECT = (
    "SELECT key, seq, status, attempt, result, error, updated_us, lease_owner, lease_us FROM records WHERE batch_id = ?"
)
_GET_RECORD = _SELECT + " AND key = ?"
# A keyset, never OFFSET: a later page starts right after the last row seen.
_PAGES = {
    (False, False): _SELECT + " ORDER BY seq, key LIMIT ?",
    (False, True): _SELECT + " AND (seq, key) > (?, ?) ORDER BY seq, key LIMIT ?",
    (True, False): _SELECT + " AND status = ? ORDER BY seq, key LIMIT ?",
    (True, True): _SELECT + " AND status = ? AND (seq, key) > (?, ?) ORDER BY seq, key LIMIT ?",
}


Conn = Connection | sqlite3.Connection
"""What the reads take: a SQLAlchemy Connection inside a transaction, or a driver connection inside one."""


def _cursor(conn: Conn) -> sqlite3.Cursor:
    """A cursor of the driver connection, inside the transaction the caller began."""
    if isinstance(conn, sqlite3.Connection):
        return conn.cursor()
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver.cursor()


def get_record(conn: Conn, batch_id: uuid.UUID, key: str) -> Record | None:
    row = _cursor(conn).execute(_GET_RECORD, (str(batch_id), key)).fetchone()
    return None if row is None else _record(batch_id, row)


def list_records(
    conn: Conn, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
) -> Sequence[Record]:
    _require_batch(conn, batch_id)
    parameters: list[object] = [str(batch_id)]
    if status is not None:
        parameters.append(Status.coerce(status).value)
    if after is not None:
        parameters += after
    parameters.append(limit)
    rows = _cursor(conn).execute(_PAGES[(status is not None, after is not None)], parameters).fetchall()
    return decode_records(batch_id, rows)


def progress(conn: Conn, batch_id: uuid.UUID) -> Progress:
    """The batch's counts, read from ``record_counts``: a few rows, whatever the batch's size."""
    _require_batch(conn, batch_id)
    return Progress.from_counts(read_counts(conn, batch_id))


def read_counts(conn: Conn, batch_id: uuid.UUID) -> dict[str, int]:
    """The batch's record counts by status value (the triggers of :data:`.schema.COUNTS_DDL` keep them)."""
    rows = _cursor(conn).execute("SELECT status, n FROM record_counts WHERE batch_id = ?", (str(batch_id),))
    return {status: count for status, count in rows}


def list_batches(conn: Connection, after: uuid.UUID | None, limit: int) -> list[Batch]:
    """One page of batches in the order of their stored text ids, a keyset on the primary key.

    ``str(uuid)`` is fixed-width lower-case hex, so text order is also the
    order of the UUIDs' integers. Each total is the sum of the batch's four
    ``record_counts`` rows.
    """
    total = select(func.sum(record_counts.c.n)).where(record_counts.c.batch_id == batches.c.batch_id).scalar_subquery()
    query = select(batches.c.batch_id, batches.c.metadata, batches.c.created_us, total.label("total"))
    if after is not None:
        query = query.where(batches.c.batch_id > str(after))
    query = query.order_by(batches.c.batch_id).limit(limit)
    return [
        Batch(uuid.UUID(row.batch_id), row.total, load_json(row.metadata), from_micros(row.created_us))
        for row in conn.execute(query).all()
    ]


def get_records(conn: Conn, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
    found: dict[str, Record] = {}
    cursor = _cursor(conn)
    for chunk in chunked(keys, _CHUNK):
        sql = f"{_SELECT} AND key IN ({', '.join('?' * len(chunk))})"
        for record in decode_records(batch_id, cursor.execute(sql, (str(batch_id), *chunk)).fetchall()):
            found[record.key] = record
    return [found[key] for key in keys if key in found]


def repair_batch(conn: Connection, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
    conn.execute(
        _REPAIR_BATCH,
        {"batch_id": str(batch_id), "metadata": dump_json(dict(metadata)), "created_us": to_micros(created_at)},
    )


def merge_records(conn: Connection, batch_id: uuid.UUID, merged: Sequence[Record]) -> int:
    """Merge full states; one conditional upsert (an executemany) per chunk, no read of the records."""
    _require_batch(conn, batch_id)
    if not merged:
        return 0
    rows = [
        {
            # The batch named by the call: the spec has every record's batch_id equal it.
            "batch_id": str(batch_id),
            "key": record.key,
            "seq": record.seq,
            "status": record.status.value,
            "rank": record.status.rank,
            "attempt": record.attempt,
            "result": dump_json_optional(record.result),
            "error": record.error,
            "updated_us": to_micros(record.updated_at),
            "tiebreak": record_tiebreak(record),
            "lease_owner": record.lease_owner,
            "lease_us": None if record.lease_expires is None else to_micros(record.lease_expires),
        }
        for record in merged
    ]
    changed = 0
    cursor = _cursor(conn)
    batch = str(batch_id)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        # The upsert inserts exactly the keys absent now (this BEGIN IMMEDIATE
        # transaction is the only writer), each with the state of its first
        # row in the chunk: a later row of the same key takes the UPDATE
        # branch, whose trigger moves the count. No insert trigger counts them
        # (schema version 7), so they are counted here.
        wanted = list({row["key"]: None for row in chunk})
        sql = f"SELECT key FROM records WHERE batch_id = ? AND key IN ({', '.join('?' * len(wanted))})"
        present = {key for (key,) in cursor.execute(sql, (batch, *wanted))}
        inserted: Counter[str] = Counter()
        for row in chunk:
            if row["key"] not in present:
                present.add(row["key"])
                inserted[str(row["status"])] += 1
        changed += conn.execute(_MERGE_RECORDS, chunk).rowcount
        for status, added in inserted.items():
            cursor.execute(_ADD_COUNT, (added, batch, status))
    return changed


def _require_batch(conn: Conn, batch_id: uuid.UUID) -> None:
    found = _cursor(conn).execute("SELECT 1 FROM batches WHERE batch_id = ?", (str(batch_id),)).fetchone()
    if found is None:
        raise NotFound(f"no batch {batch_id}")


def _record(batch_id: uuid.UUID, row: Sequence[Any]) -> Record:
    """One record from a row of the ``_RECORD_COLUMNS``."""
    return decode_records(batch_id, [row])[0]


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
    "retry_failed",
    "update_records",
]
