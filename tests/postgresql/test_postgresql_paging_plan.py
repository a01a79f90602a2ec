"""A page of records costs the same wherever it is, also before the table's statistics know the batch.

Right after a batch is created, autovacuum has not analyzed it yet, and the
planner, thinking the batch holds a few hundred rows, would read every
remaining row of it for each page (a bitmap scan and a sort): iterating a
fresh batch of a million records was quadratic. The page is read by
``fallthrough_records_page()``, which rules those plans out. Counted, not
timed: the index entries the page read, from the server's own statistics of
the transaction.
"""

from __future__ import annotations

import uuid

from tests.postgresql.conftest import Server
from tests.postgresql.helpers import at, direct, open_backend

SIZE = 30_000
PAGE = 100


def test_a_page_from_the_middle_of_a_fresh_batch_reads_about_a_page_of_index_entries(
    pgvector_server: Server,
) -> None:
    url = pgvector_server.new_database()
    hooks = open_backend(url)
    try:
        batch_id = uuid.uuid4()
        keys = [f"sku-{index:08}" for index in range(SIZE)]
        hooks.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
        middle = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=SIZE // 2)[-1]
        page = hooks.fallthrough_list_records(
            batch_id=batch_id, status=None, after=(middle.seq, middle.key), limit=PAGE
        )
        assert [record.key for record in page] == keys[SIZE // 2 : SIZE // 2 + PAGE]
    finally:
        hooks.fallthrough_close()
    with direct(url) as conn, conn.transaction():
        assert conn.execute(
            "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = 'processing_results'"
        ).fetchone() == (None, None)
        index = conn.execute("SELECT 'processing_results_by_seq'::regclass::oid").fetchone()
        assert index is not None
        rows = conn.execute(
            "SELECT * FROM fallthrough_records_page(%s, NULL, %s, %s, %s)", (batch_id, middle.seq, middle.key, PAGE)
        ).fetchall()
        returned = conn.execute("SELECT pg_stat_get_xact_tuples_returned(%s)", index).fetchone()
        assert len(rows) == PAGE
        assert returned is not None and returned[0] <= 2 * PAGE, f"a page read {returned[0]} index entries"
