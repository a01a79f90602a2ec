"""Batches and records: the SQL behind the record hooks.

Every function takes a SQLAlchemy :class:`~sqlalchemy.Connection` inside
the transaction of one hook call and runs its SQL on the psycopg
connection underneath (:func:`~.connection.driver_connection`), for COPY
and for array parameters. A hook that raises rolls the whole transaction
back, so nothing of the call is written.

* New records arrive by ``COPY ... FROM STDIN`` (binary format), inside a
  savepoint: a new batch's, and those of an add (a streamed create's later
  chunks), which as a rule name keys the batch does not hold; the threads
  of one backend adding to one batch take turns at it (:class:`BatchTurns`).
  When a key is held after all, COPY fails on it, the savepoint takes it
  back, and the keys go through one ``INSERT ... SELECT FROM unnest(...)
  ON CONFLICT DO NOTHING``, which leaves present keys untouched (as do
  calls of fewer than :data:`COPY_THRESHOLD` keys, and a create naming an
  existing batch).
* The monotonic merge is one ``UPDATE ... FROM unnest(...)`` for the whole
  call, whose WHERE compares the stored and the new merge keys as row
  values, and whose RETURNING lists exactly the updates that applied, with
  the attempt they applied at.
* A repair's merge of full states is one ``INSERT ... SELECT FROM
  unnest(...) ON CONFLICT DO UPDATE ... WHERE`` per call: absent records
  are inserted, present ones keep the smaller seq and the greater state.
* Status counts are kept by triggers in the same transaction (see
  :mod:`.schema`); progress sums a handful of counter rows.
"""

from __future__ import annotations

import logging
import operator
import struct
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Connection

from fallthrough.errors import NotFound
from fallthrough.kit import decode_records, dump_json, dump_json_optional, load_json
from fallthrough.ordering import PENDING_TIEBREAK, record_tiebreak
from fallthrough.types import JSON, Batch, Progress, Record, RecordUpdate, Status, from_micros, to_micros

from .connection import driver_connection

logger = logging.getLogger("fallthrough.postgresql")

COPY_THRESHOLD = 200
"""From this many keys on, records are written with COPY first (fewer are one INSERT)."""

_INSERT_BATCH = """
    INSERT INTO fallthrough_batches (batch_id, metadata, created_us) VALUES (%s, %s::json, %s)
    ON CONFLICT (batch_id) DO NOTHING RETURNING true
"""
# FOR SHARE keeps a concurrent delete_batch from removing the batch until
# this transaction's records are committed (delete_batch deletes the batch
# row first, so it then sees and deletes them too).
_LOCK_BATCH = "SELECT true FROM fallthrough_batches WHERE batch_id = %s FOR SHARE"
# The row lock alone can starve a delete_batch for a whole streamed create:
# each add gives its turn back before it commits, so the next add's FOR
# SHARE lands while the last one still holds the row, and share row locks do
# not queue behind a waiting DELETE. A transaction-scoped advisory lock on the
# batch is a heavyweight lock, whose queue does put later sharers behind a
# waiting exclusive request: an add takes it shared, delete_batch exclusive,
# each before the batch row, so the delete waits for the adds under way only.
_SHARE_BATCH_TURNS = "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 7))"
_HOLD_BATCH_TURNS = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))"
# COPY's binary format, one bytes object per chunk: the server parses it
# at about two thirds of the cost of the text format (a UUID and four
# integers a row; measured in issue 12), and every field but the key and its
# seq is the same on every row, so a row is a constant head and tail around
# one packed (key length, key, seq). Keys are UTF-8, the connection's
# client encoding (:mod:`.connection`); no escaping is needed.
_COPY_RECORDS = """
    COPY processing_results (batch_id, key, seq, status, rank, attempt, updated_us, tiebreak)
    FROM STDIN (FORMAT BINARY)
"""
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)  # no flags, no header extension
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_FIELDS = 8
# In key order, as every other write of records, so two calls inserting the
# same new keys wait for each other instead of deadlocking.
_INSERT_ABSENT = """
    INSERT INTO processing_results (batch_id, key, seq, status, rank, attempt, updated_us, tiebreak)
    SELECT %(batch_id)s, k.key, %(first_seq)s + k.position - 1, 'pending', 0, 0, %(updated_us)s, %(tiebreak)s
    FROM unnest(%(keys)b::text[]) WITH ORDINALITY AS k(key, position)
    ORDER BY k.key COLLATE "C"
    ON CONFLICT (batch_id, key) DO NOTHING
"""

# The merge: an update replaces the stored state only where the stored key
# (attempt, rank, updated_us, tiebreak) is below the update's; an update
# without an attempt takes the stored one, in the comparison and the write.
# RETURNING r.attempt is the attempt after the update: the one it applied at.
_MERGE_ONE = """
    UPDATE processing_results AS r
    SET status = %(status)s, rank = %(rank)s, attempt = coalesce(%(attempt)s::int4, r.attempt),
        result = %(result)s::json, error = %(error)s, updated_us = %(updated_us)s, tiebreak = %(tiebreak)s,
        lease_owner = NULL, lease_us = NULL
    WHERE r.batch_id = %(batch_id)s AND r.key = %(key)s
      AND (r.attempt, r.rank, r.updated_us, r.tiebreak)
          < (coalesce(%(attempt)s::int4, r.attempt), %(rank)s::int2, %(updated_us)s::int8, %(tiebreak)s::int8)
    RETURNING r.attempt
"""
_MERGE_MANY = """
    UPDATE processing_results AS r
    SET status = u.status, rank = u.rank, attempt = coalesce(u.attempt, r.attempt),
        result = u.result::json, error = u.error, updated_us = %(updated_us)s, tiebreak = u.tiebreak,
        lease_owner = NULL, lease_us = NULL
    FROM (
        SELECT position, batch_id, key, status,
            (CASE status WHEN 'pending' THEN 0 WHEN 'processing' THEN 1 ELSE 2 END)::int2 AS rank,
            attempt, result, error, tiebreak
        FROM unnest(
            %(batch_ids)b::uuid[], %(keys)b::text[], %(statuses)b::text[], %(attempts)b::int4[],
            %(results)b::text[], %(errors)b::text[], %(tiebreaks)b::int8[]
        ) WITH ORDINALITY AS t(batch_id, key, status, attempt, result, error, tiebreak, position)
    ) AS u
    WHERE r.batch_id = u.batch_id AND r.key = u.key
      AND (r.attempt, r.rank, r.updated_us, r.tiebreak)
          < (coalesce(u.attempt, r.attempt), u.rank, %(updated_us)s::int8, u.tiebreak)
    RETURNING u.position, r.attempt
"""
_FIRST_MISSING = """
    SELECT u.position FROM unnest(%(batch_ids)b::uuid[], %(keys)b::text[]) WITH ORDINALITY AS u(batch_id, key, position)
    WHERE NOT EXISTS (SELECT FROM processing_results r WHERE r.batch_id = u.batch_id AND r.key = u.key)
    ORDER BY u.position LIMIT 1
"""
_RETRY = """
    UPDATE processing_results
    SET status = 'pending', rank = 0, attempt = attempt + 1, result = NULL, error = NULL,
        updated_us = %(updated_us)s, tiebreak = %(tiebreak)s, lease_owner = NULL, lease_us = NULL
    WHERE batch_id = %(batch_id)s AND status = 'failed'
    RETURNING seq, key, attempt
"""
_GET_BATCH = """
    SELECT b.metadata::text, b.created_us,
           (SELECT coalesce(sum(c.count), 0) FROM fallthrough_status_counts c WHERE c.batch_id = b.batch_id)
    FROM fallthrough_batches b WHERE b.batch_id = %s
"""
_PROGRESS = """
    SELECT c.status, sum(c.count)
    FROM fallthrough_batches b LEFT JOIN fallthrough_status_counts c ON c.batch_id = b.batch_id
    WHERE b.batch_id = %s GROUP BY c.status
"""
_RECORD_COLUMNS = "key, seq, status, attempt, result::text, error, updated_us, lease_owner, lease_us"
_BATCH_TOTAL = "(SELECT coalesce(sum(c.count), 0) FROM fallthrough_status_counts c WHERE c.batch_id = b.batch_id)"
_LIST_BATCHES = f"SELECT b.batch_id, b.metadata::text, b.created_us, {_BATCH_TOTAL} FROM fallthrough_batches b "
LIST_BATCHES_FIRST = _LIST_BATCHES + "ORDER BY b.batch_id LIMIT %(limit)s"
"""The first page of batches: the start of the primary key."""
LIST_BATCHES_AFTER = _LIST_BATCHES + "WHERE b.batch_id > %(after)s ORDER BY b.batch_id LIMIT %(limit)s"
"""A later page: the primary key read on from the last batch id seen."""
_REPAIR_BATCH = """
    INSERT INTO fallthrough_batches AS b (batch_id, metadata, created_us) VALUES (%s, %s::json, %s)
    ON CONFLICT (batch_id) DO UPDATE SET metadata = excluded.metadata, created_us = excluded.created_us
"""
# A repair's merge of full states, one statement for the whole call: an
# absent key is inserted as given; a present one keeps the smaller seq, and
# takes the state only where the stored merge key is below the given one
# (the same comparison as the update merge). The WHERE leaves out rows that
# neither change, so the row count is exactly the records changed. As with
# every ON CONFLICT DO UPDATE, the comparison is made against the row as
# locked, so it holds against concurrent writers of the same records.
_NEWER = (
    "(r.attempt, r.rank, r.updated_us, r.tiebreak) "
    "< (excluded.attempt, excluded.rank, excluded.updated_us, excluded.tiebreak)"
)
_MERGE_RECORDS = f"""
    INSERT INTO processing_results AS r
        (batch_id, key, seq, status, rank, attempt, result, error, updated_us, tiebreak, lease_owner, lease_us)
    SELECT %(batch_id)s, t.key, t.seq, t.status,
        (CASE t.status WHEN 'pending' THEN 0 WHEN 'processing' THEN 1 ELSE 2 END)::int2,
        t.attempt, t.result::json, t.error, t.updated_us, t.tiebreak, t.lease_owner, t.lease_us
    FROM unnest(
        %(keys)b::text[], %(seqs)b::int8[], %(statuses)b::text[], %(attempts)b::int4[],
        %(results)b::text[], %(errors)b::text[], %(updated_us)b::int8[], %(tiebreaks)b::int8[],
        %(lease_owners)b::text[], %(lease_us)b::int8[]
    ) AS t(key, seq, status, attempt, result, error, updated_us, tiebreak, lease_owner, lease_us)
    ORDER BY t.key COLLATE "C"
    ON CONFLICT (batch_id, key) DO UPDATE SET
        seq = least(r.seq, excluded.seq),
        status = CASE WHEN {_NEWER} THEN excluded.status ELSE r.status END,
        rank = CASE WHEN {_NEWER} THEN excluded.rank ELSE r.rank END,
        attempt = CASE WHEN {_NEWER} THEN excluded.attempt ELSE r.attempt END,
        result = CASE WHEN {_NEWER} THEN excluded.result ELSE r.result END,
        error = CASE WHEN {_NEWER} THEN excluded.error ELSE r.error END,
        updated_us = CASE WHEN {_NEWER} THEN excluded.updated_us ELSE r.updated_us END,
        tiebreak = CASE WHEN {_NEWER} THEN excluded.tiebreak ELSE r.tiebreak END,
        lease_owner = CASE WHEN {_NEWER} THEN excluded.lease_owner ELSE r.lease_owner END,
        lease_us = CASE WHEN {_NEWER} THEN excluded.lease_us ELSE r.lease_us END
    WHERE excluded.seq < r.seq OR {_NEWER}
"""
_RECORDS_PAGE = "SELECT * FROM fallthrough_records_page(%s, %s::text, %s::int8, %s::text, %s::int4)"
_GET_RECORD = f"SELECT {_RECORD_COLUMNS} FROM processing_results WHERE batch_id = %s AND key = %s"


def _cursor(conn: Connection, *, binary: bool = False) -> psycopg.Cursor[Any]:
    """A cursor of the call's connection; ``binary`` asks for rows in the binary format.

    Binary rows cost the driver less to read (an integer is eight bytes, not
    digits to parse): iterating a batch reads two per record (issue 12).
    """
    return driver_connection(conn).cursor(binary=binary)


def create_batch(
    conn: Connection,
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    metadata: Mapping[str, JSON],
    created_at: datetime,
) -> Batch:
    cursor = _cursor(conn)
    created_us = to_micros(created_at)
    new = cursor.execute(_INSERT_BATCH, (batch_id, dump_json(dict(metadata)), created_us)).fetchone()
    if new is None and cursor.execute(_LOCK_BATCH, (batch_id,)).fetchone() is None:
        # Deleted between the two statements: it is new after all.
        new = cursor.execute(_INSERT_BATCH, (batch_id, dump_json(dict(metadata)), created_us)).fetchone()
    if new is not None:
        # Nothing can be in a batch this transaction just created; COPY it in input order.
        payload = _copy_payload(batch_id, keys, first_seq, created_us, in_key_order=False)
        _copy_or_insert(cursor, batch_id, keys, first_seq, created_us, payload)
    else:
        _insert_absent(cursor, batch_id, keys, first_seq, created_us)
    batch = _read_batch(cursor, batch_id)
    assert batch is not None
    return batch


class BatchTurns:
    """Turns at writing a batch's new records, among the threads of one backend.

    A streamed create keeps two chunk writes in flight, on threads of its
    own. Two backends inserting neighbouring key ranges into the same
    indexes at once split each other's pages in the middle and contend for
    the rightmost ones (issue 12, a million records: indexes a third larger
    than one COPY leaves them, and a third more server CPU). So an add packs
    its rows, then takes its batch's turn, writes them, and gives the turn
    back before its transaction commits: the next chunk's COPY overlaps this
    one's commit. The turn is only for the index layout, so it is a
    best effort: a thread that waited ``wait`` seconds for it goes on
    without it. A turn is held in this process only, and only while its
    holder runs statements it would run anyway, and a thread waiting for one
    has sent nothing in its transaction yet, so it holds no lock the holder
    could wait for. Nor does it hold the batch row's share lock: held by
    waiters too, it would never be free while a create streams, and a
    ``delete_batch`` would wait for the create's end instead of cutting it
    short (row locks do not queue a writer before later sharers). Batches
    share ``stripes`` locks by their id's hash: two batches streamed at once
    in one process may take turns too.
    """

    def __init__(self, wait: float, stripes: int = 64) -> None:
        self.stripes = stripes
        self._wait = wait
        self._locks = tuple(threading.Lock() for _ in range(stripes))

    @contextmanager
    def turn(self, batch_id: uuid.UUID) -> Iterator[bool]:
        """Hold the batch's turn for the block; yields whether it was taken in time.

        Not first come, first served: the chunk after may write before the
        one it follows, which costs only a little of the index layout.
        """
        lock = self._locks[hash(batch_id) % self.stripes]
        taken = False
        try:
            taken = lock.acquire(timeout=self._wait)
            if not taken:
                logger.warning(
                    "an add to batch %s waited %s s for its turn and writes without it", batch_id, self._wait
                )
            yield taken
        finally:
            if taken:
                lock.release()


def add_records(
    conn: Connection,
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    created_at: datetime,
    turns: BatchTurns,
) -> int:
    cursor = _cursor(conn)
    created_us = to_micros(created_at)
    # A streamed create's later chunks come here: keys the batch has not seen, as a rule.
    payload = _copy_payload(batch_id, keys, first_seq, created_us, in_key_order=True)
    with turns.turn(batch_id):
        cursor.execute(_SHARE_BATCH_TURNS, (str(batch_id),))
        if cursor.execute(_LOCK_BATCH, (batch_id,)).fetchone() is None:
            raise NotFound(f"no batch {batch_id}")
        return _copy_or_insert(cursor, batch_id, keys, first_seq, created_us, payload)


def _copy_or_insert(
    cursor: psycopg.Cursor[Any],
    batch_id: uuid.UUID,
    keys: Sequence[str],
    first_seq: int,
    created_us: int,
    payload: bytes | None,
) -> int:
    """Write the keys absent from the batch as pending records; how many were written.

    With a ``payload`` (:func:`_copy_payload` of these keys, made when
    there are :data:`COPY_THRESHOLD` of them or more), COPY inside a
    savepoint: when none of the keys is stored (a new batch, or the later
    chunks of a streamed create), it writes them all, at about half the
    server's cost of the insert below (issue 12: no ON CONFLICT's
    speculative insertion, no sort). When one is stored, COPY fails on it
    with a unique violation, the savepoint takes the COPY back, and
    :func:`_insert_absent` writes the absent keys only: a call that repeats
    keys pays for a COPY thrown away.
    """
    if payload is None:
        return _insert_absent(cursor, batch_id, keys, first_seq, created_us)
    try:
        with cursor.connection.transaction(), cursor.copy(_COPY_RECORDS) as copy:
            copy.write(payload)
    except psycopg.errors.UniqueViolation:
        return _insert_absent(cursor, batch_id, keys, first_seq, created_us)
    return len(keys)


def _copy_payload(
    batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_us: int, *, in_key_order: bool
) -> bytes | None:
    """The keys as pending records in COPY's binary format, or None below :data:`COPY_THRESHOLD` keys.

    ``keys[i]`` gets seq ``first_seq + i``. ``in_key_order`` sends the rows
    in key order ("C" collation: code points, as Python sorts), the order
    every other insert of records locks keys in, so two adds of the same
    new keys wait for each other rather than deadlock. The payload is whole,
    trailer included: psycopg adds a trailer only to rows it formatted
    itself.
    """
    if len(keys) < COPY_THRESHOLD:
        return None
    rows: Iterable[tuple[int, str]] = enumerate(keys, first_seq)
    if in_key_order and any(map(operator.gt, keys, keys[1:])):  # already in order, as a rule: skip the sort
        rows = sorted(rows, key=itemgetter(1))
    # Each field is its byte length (int32) and its bytes: batch_id (uuid), then the key and seq, then
    # status, rank (int2), attempt (int4), updated_us and tiebreak (int8).
    pending = Status.PENDING.value.encode()
    head = struct.pack(">hi16s", _COPY_FIELDS, 16, batch_id.bytes)
    tail = struct.pack(
        f">i{len(pending)}sihiiiqiq",
        len(pending),
        pending,
        2,
        Status.PENDING.rank,
        4,
        0,
        8,
        created_us,
        8,
        PENDING_TIEBREAK,
    )
    packers: dict[int, Callable[..., bytes]] = {}
    middles = []
    for seq, key in rows:
        encoded = key.encode()
        size = len(encoded)
        pack = packers.get(size)
        if pack is None:
            pack = packers[size] = struct.Struct(f">i{size}siq").pack
        middles.append(pack(size, encoded, 8, seq))
    return _COPY_SIGNATURE + head + (tail + head).join(middles) + tail + _COPY_TRAILER


def _insert_absent(
    cursor: psycopg.Cursor[Any], batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_us: int
) -> int:
    if not keys:
        return 0
    parameters = {
        "batch_id": batch_id,
        "first_seq": first_seq,
        "updated_us": created_us,
        "tiebreak": PENDING_TIEBREAK,
        "keys": list(keys),
    }
    return cursor.execute(_INSERT_ABSENT, parameters).rowcount


# keys[i] is deleted only while its seq is still seqs[i]: the records an add
# wrote, and no key the batch held before. The status-count triggers take the
# deleted rows off in this transaction.
_DELETE_ADDED = """
    DELETE FROM processing_results AS r
    USING unnest(%(keys)s::text[], %(seqs)s::int8[]) AS k(key, seq)
    WHERE r.batch_id = %(batch_id)s AND r.key = k.key AND r.seq = k.seq
"""


def delete_records(conn: Connection, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
    if not keys:
        return 0
    parameters = {"batch_id": batch_id, "keys": list(keys), "seqs": list(seqs)}
    return _cursor(conn).execute(_DELETE_ADDED, parameters).rowcount


def update_records(conn: Connection, updates: Sequence[RecordUpdate], updated_at: datetime) -> list[RecordUpdate]:
    if not updates:
        return []
    cursor = _cursor(conn)
    updated_us = to_micros(updated_at)
    if len(updates) == 1:
        (update,) = updates
        row = cursor.execute(
            _MERGE_ONE,
            {
                "batch_id": update.batch_id,
                "key": update.key,
                "status": update.status.value,
                "rank": update.status.rank,
                "attempt": update.attempt,
                "result": dump_json_optional(update.result),
                "error": update.error,
                "updated_us": updated_us,
                "tiebreak": update.tiebreak,
            },
        ).fetchone()
        if row is not None:
            return [update.pinned(row[0])]
        if cursor.execute(_GET_RECORD, (update.batch_id, update.key)).fetchone() is None:
            raise NotFound(f"no record {update.key!r} in batch {update.batch_id}")
        return []
    # Rows are locked in (batch, key) order, the same in every call, so two
    # bulk updates of overlapping records wait for each other instead of
    # deadlocking.
    order = sorted(range(len(updates)), key=lambda index: (str(updates[index].batch_id), updates[index].key))
    ordered = [updates[index] for index in order]
    columns: dict[str, list[Any]] = {
        "batch_ids": [update.batch_id for update in ordered],
        "keys": [update.key for update in ordered],
    }
    columns["statuses"] = [update.status.value for update in ordered]
    columns["attempts"] = [update.attempt for update in ordered]
    columns["results"] = [dump_json_optional(update.result) for update in ordered]
    columns["errors"] = [update.error for update in ordered]
    columns["tiebreaks"] = [update.tiebreak for update in ordered]
    # Positions are 1-based, in the sorted order; order[position - 1] is the input index.
    applied = {
        order[position - 1]: attempt
        for position, attempt in cursor.execute(_MERGE_MANY, {**columns, "updated_us": updated_us})
    }
    if len(applied) < len(updates):
        # Some did not apply: stale, or naming a record that does not exist,
        # which voids the whole call (the raise rolls the UPDATE back).
        missing = cursor.execute(_FIRST_MISSING, columns).fetchone()
        if missing is not None:
            absent = updates[order[missing[0] - 1]]
            raise NotFound(f"no record {absent.key!r} in batch {absent.batch_id}")
    return [update.pinned(applied[index]) for index, update in enumerate(updates) if index in applied]


def retry_failed(conn: Connection, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
    cursor = _cursor(conn)
    if cursor.execute(_LOCK_BATCH, (batch_id,)).fetchone() is None:
        raise NotFound(f"no batch {batch_id}")
    parameters = {"batch_id": batch_id, "updated_us": to_micros(updated_at), "tiebreak": PENDING_TIEBREAK}
    # RETURNING comes back in no particular order; the hook promises (seq, key).
    moved = sorted(cursor.execute(_RETRY, parameters).fetchall())
    return [RecordUpdate(batch_id, key, Status.PENDING, attempt=attempt) for _, key, attempt in moved]


def delete_batch(conn: Connection, batch_id: uuid.UUID) -> bool:
    cursor = _cursor(conn)
    # The batch row first: this waits for writers holding it FOR SHARE, so
    # their records are committed, and seen, by the DELETE below; and before
    # it, the adds' advisory lock, so that later adds queue behind the delete.
    cursor.execute(_HOLD_BATCH_TURNS, (str(batch_id),))
    existed = cursor.execute("DELETE FROM fallthrough_batches WHERE batch_id = %s", (batch_id,)).rowcount > 0
    cursor.execute("DELETE FROM processing_results WHERE batch_id = %s", (batch_id,))
    cursor.execute("DELETE FROM fallthrough_status_counts WHERE batch_id = %s", (batch_id,))
    return existed


def get_batch(conn: Connection, batch_id: uuid.UUID) -> Batch | None:
    return _read_batch(_cursor(conn), batch_id)


def _read_batch(cursor: psycopg.Cursor[Any], batch_id: uuid.UUID) -> Batch | None:
    row = cursor.execute(_GET_BATCH, (batch_id,)).fetchone()
    if row is None:
        return None
    metadata, created_us, total = row
    loaded = load_json(metadata)
    assert isinstance(loaded, dict)
    return Batch(batch_id, int(total), loaded, from_micros(created_us))


def list_batches(conn: Connection, after: uuid.UUID | None, limit: int) -> list[Batch]:
    """One page of batches in batch id order (uuid order: bytes, as Python orders UUIDs); a keyset, never OFFSET."""
    parameters = {"after": after, "limit": limit}
    rows = _cursor(conn).execute(LIST_BATCHES_FIRST if after is None else LIST_BATCHES_AFTER, parameters)
    batches = []
    for batch_id, metadata, created_us, total in rows:
        loaded = load_json(metadata)
        assert isinstance(loaded, dict)
        batches.append(Batch(batch_id, int(total), loaded, from_micros(created_us)))
    return batches


def get_records(conn: Connection, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
    statement = f"SELECT {_RECORD_COLUMNS} FROM processing_results WHERE batch_id = %s AND key = ANY(%s::text[])"
    found = {
        record.key: record
        for record in decode_records(batch_id, _cursor(conn).execute(statement, (batch_id, list(keys))).fetchall())
    }
    return [found[key] for key in keys if key in found]


def repair_batch(conn: Connection, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
    _cursor(conn).execute(_REPAIR_BATCH, (batch_id, dump_json(dict(metadata)), to_micros(created_at)))


def merge_records(conn: Connection, batch_id: uuid.UUID, merged: Sequence[Record]) -> int:
    """Merge full record states (see :data:`_MERGE_RECORDS`); the number of records inserted or changed."""
    cursor = _cursor(conn)
    # FOR SHARE, as add_records: a concurrent delete_batch waits, then deletes these records too.
    if cursor.execute(_LOCK_BATCH, (batch_id,)).fetchone() is None:
        raise NotFound(f"no batch {batch_id}")
    if not merged:
        return 0
    columns: dict[str, Any] = {
        "batch_id": batch_id,
        "keys": [record.key for record in merged],
        "seqs": [record.seq for record in merged],
        "statuses": [record.status.value for record in merged],
        "attempts": [record.attempt for record in merged],
        "results": [dump_json_optional(record.result) for record in merged],
        "errors": [record.error for record in merged],
        "updated_us": [to_micros(record.updated_at) for record in merged],
        "tiebreaks": [record_tiebreak(record) for record in merged],
        "lease_owners": [record.lease_owner for record in merged],
        "lease_us": [None if record.lease_expires is None else to_micros(record.lease_expires) for record in merged],
    }
    return cursor.execute(_MERGE_RECORDS, columns).rowcount


def get_record(conn: Connection, batch_id: uuid.UUID, key: str) -> Record | None:
    row = _cursor(conn).execute(_GET_RECORD, (batch_id, key)).fetchone()
    return None if row is None else _record(batch_id, row)


def list_records(
    conn: Connection, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
) -> Sequence[Record]:
    cursor = _cursor(conn, binary=True)
    after_seq, after_key = (None, None) if after is None else after
    # A keyset, never OFFSET, down the index whatever the statistics say: see schema.py.
    rows = cursor.execute(
        _RECORDS_PAGE, (batch_id, None if status is None else Status.coerce(status).value, after_seq, after_key, limit)
    ).fetchall()
    if not rows and cursor.execute("SELECT FROM fallthrough_batches WHERE batch_id = %s", (batch_id,)).rowcount == 0:
        raise NotFound(f"no batch {batch_id}")
    return decode_records(batch_id, rows)


def progress(conn: Connection, batch_id: uuid.UUID) -> Progress:
    rows = _cursor(conn).execute(_PROGRESS, (batch_id,)).fetchall()
    if not rows:
        raise NotFound(f"no batch {batch_id}")
    return Progress.from_counts({status: int(count) for status, count in rows if status is not None})


def _record(batch_id: uuid.UUID, row: tuple[Any, ...]) -> Record:
    """One record from a row of the record columns."""
    return decode_records(batch_id, [row])[0]


__all__ = [
    "BatchTurns",
    "COPY_THRESHOLD",
    "LIST_BATCHES_AFTER",
    "LIST_BATCHES_FIRST",
    "add_records",
    "create_batch",
    "delete_batch",
    "delete_records",
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
