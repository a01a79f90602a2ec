"""Document versions, tombstones and repair merges on real servers: what the shared suite cannot see.

* A database left by schema version 1 (no versions, no tombstones) is
  migrated in place when a newer backend opens it, and its documents are
  still there, at version 0.
* The conditional writes hold when many writers race on the same ids and
  keys: each is one statement that compares with the row it locked, so the
  greatest version and the greatest state win, and a delete counts each
  live document it turns into a tombstone exactly once.
"""

from __future__ import annotations

import json
import random
import threading
import uuid

from fallthrough.ordering import content_tiebreak
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Document, Progress, Record, SearchQuery, Status, StoredDocument
from fallthrough_postgresql import documents as pg_documents
from fallthrough_postgresql import records as pg_records
from fallthrough_postgresql.schema import SCHEMA_VERSION
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import Hooks, at, direct, open_backend

THREADS = 8

# The tables of schema version 1 that version 2 changed or reads, as release 1 created them.
V1_SCHEMA = (
    "CREATE TABLE fallthrough_schema_version (version integer PRIMARY KEY)",
    "INSERT INTO fallthrough_schema_version VALUES (1)",
    """CREATE TABLE fallthrough_collections (
        name text COLLATE "C" PRIMARY KEY, dimension integer, vector_index text
    )""",
    """CREATE TABLE fallthrough_documents (
        collection text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        text text NOT NULL,
        tokens text[] COLLATE "C" NOT NULL,
        embedding real[],
        metadata json NOT NULL,
        metadata_jsonb jsonb NOT NULL,
        PRIMARY KEY (collection, id)
    )""",
    "INSERT INTO fallthrough_collections VALUES ('old', 2, NULL)",
    """INSERT INTO fallthrough_documents VALUES
        ('old', 'a', 'Труба ПВХ', '{пвх,труба}', '{1,0}', '{"n": 1.0}', '{"n": 1.0}'),
        ('old', 'b', 'Цемент М-500', '{500,м,цемент}', NULL, '{}', '{}')""",
)


def test_a_version_1_database_is_migrated_in_place_and_keeps_its_documents(server: Server) -> None:
    url = server.new_database()
    with direct(url) as conn:
        for statement in V1_SCHEMA:
            conn.execute(statement)
    hooks = open_backend(url)
    assert hooks.fallthrough_get_documents(collection="old", ids=["a", "b"]) == [
        Document("a", "Труба ПВХ", vector=[1.0, 0.0], metadata={"n": 1.0}),
        Document("b", "Цемент М-500"),
    ]
    assert [
        hit.id for hit in hooks.fallthrough_search(collection="old", query=SearchQuery(None, "труба", None, 10))
    ] == ["a"]
    # Written before versions existed: version 0, older than any stamped write.
    versions = hooks.fallthrough_document_versions(collection="old", ids=["a", "b"])
    assert [(entry.id, entry.version, entry.live) for entry in versions] == [("a", 0, True), ("b", 0, True)]
    assert hooks.fallthrough_list_collections() == ["old"]
    assert hooks.fallthrough_delete_documents(collection="old", ids=["b"], version=1) == 1
    hooks.fallthrough_upsert_documents(collection="old", documents=[Document("a", "new", vector=[0.0, 1.0])], version=1)
    assert hooks.fallthrough_scan_documents(collection="old", after=None, limit=10) == [
        StoredDocument("a", 1, Document("a", "new", vector=[0.0, 1.0])),
        StoredDocument("b", 1, None),
    ]
    with direct(url) as conn:
        assert conn.execute("SELECT max(version) FROM fallthrough_schema_version").fetchone() == (SCHEMA_VERSION,)
    hooks.fallthrough_close()
    # A second open finds the current version and changes nothing.
    again = open_backend(url)
    assert again.fallthrough_get_documents(collection="old", ids=["a"]) == [Document("a", "new", vector=[0.0, 1.0])]
    again.fallthrough_close()


def test_versions_near_two_to_the_62_are_stored_exactly(database: str) -> None:
    hooks = open_backend(database)
    collection = f"big-{uuid.uuid4().hex[:8]}"
    version = 2**62 + 1
    hooks.fallthrough_upsert_documents(collection=collection, documents=[Document("a", "x")], version=version)
    hooks.fallthrough_upsert_documents(collection=collection, documents=[Document("a", "older")], version=version - 1)
    assert hooks.fallthrough_document_versions(collection=collection, ids=["a"]) == [
        StoredDocument("a", version, Document("a", "x"))
    ]


def test_racing_deletes_count_each_live_document_once_and_the_newest_version_stays(database: str) -> None:
    hooks = [open_backend(database) for _ in range(THREADS)]
    collection = f"race-{uuid.uuid4().hex[:8]}"
    ids = [f"d{index}" for index in range(200)]
    hooks[0].fallthrough_upsert_documents(
        collection=collection, documents=[Document(i, f"text {i}") for i in ids], version=1
    )
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def delete(thread: int) -> None:
        order = random.Random(thread).sample(ids, len(ids))
        start.wait()
        try:
            for chunk in range(0, len(order), 25):
                counts.append(
                    hooks[thread].fallthrough_delete_documents(
                        collection=collection, ids=order[chunk : chunk + 25], version=10 + thread
                    )
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=delete, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(counts) == len(ids)
    entries = hooks[0].fallthrough_scan_documents(collection=collection, after=None, limit=1000)
    assert {(entry.version, entry.document) for entry in entries} == {(10 + THREADS - 1, None)}
    assert hooks[0].fallthrough_search(collection=collection, query=SearchQuery(None, "text", None, 10)) == []


def test_racing_upserts_and_deletes_of_the_same_ids_end_at_the_greatest_version(database: str) -> None:
    """Every thread writes every id at versions of its own, upserts and deletes mixed, in its own order."""
    hooks = [open_backend(database) for _ in range(THREADS)]
    collection = f"mix-{uuid.uuid4().hex[:8]}"
    ids = [f"d{index}" for index in range(60)]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    writes = {
        thread: [(version * THREADS + thread, random.Random(version).random() < 0.3) for version in range(1, 6)]
        for thread in range(THREADS)
    }

    def write(thread: int) -> None:
        start.wait()
        try:
            for version, is_delete in writes[thread]:
                order = random.Random(version).sample(ids, len(ids))
                if is_delete:
                    hooks[thread].fallthrough_delete_documents(collection=collection, ids=order, version=version)
                else:
                    documents = [Document(i, f"v{version}", vector=[1.0, float(version)]) for i in order]
                    hooks[thread].fallthrough_upsert_documents(
                        collection=collection, documents=documents, version=version
                    )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    greatest, deleted = max(write for thread_writes in writes.values() for write in thread_writes)
    expected = None if deleted else Document("x", f"v{greatest}", vector=[1.0, float(greatest)])
    entries = hooks[0].fallthrough_document_versions(collection=collection, ids=ids)
    assert [entry.version for entry in entries] == [greatest] * len(ids)
    assert {None if entry.document is None else entry.document.text for entry in entries} == {
        None if expected is None else expected.text
    }


def _record(batch_id: uuid.UUID, key: str, rng: random.Random) -> Record:
    status = rng.choice(list(Status))
    result = rng.choice([None, 1, {"x": rng.randrange(3)}]) if status is Status.COMPLETED else None
    error = rng.choice([None, "boom"]) if status is Status.FAILED else None
    return Record(batch_id, key, rng.randrange(100, 110), status, rng.randrange(3), result, error, at(rng.randrange(4)))


def test_racing_merges_end_at_the_greatest_state_and_smallest_seq_with_exact_counts(database: str) -> None:
    hooks = [open_backend(database) for _ in range(THREADS)]
    model = Hooks(ReferenceBackend())
    batch_id = uuid.uuid4()
    keys = [f"k{index}" for index in range(80)]
    for relay in (hooks[0], model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=keys[:40], first_seq=105, metadata={}, created_at=at(0))
    plans = {
        thread: [[_record(batch_id, key, random.Random(thread * 1000 + round_)) for key in keys] for round_ in range(4)]
        for thread in range(THREADS)
    }
    for thread_plan in plans.values():
        for records in thread_plan:
            model.fallthrough_merge_records(batch_id=batch_id, records=records)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def merge(thread: int) -> None:
        start.wait()
        try:
            for records in plans[thread]:
                hooks[thread].fallthrough_merge_records(
                    batch_id=batch_id, records=random.Random(thread).sample(records, len(records))
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=merge, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert hooks[0].fallthrough_get_records(batch_id=batch_id, keys=keys) == model.fallthrough_get_records(
        batch_id=batch_id, keys=keys
    )
    # The status counters (triggers on INSERT ... ON CONFLICT DO UPDATE) follow the merge exactly.
    with direct(database) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM processing_results WHERE batch_id = %s GROUP BY status", (batch_id,)
        ).fetchall()
        tiebreaks = conn.execute(
            "SELECT key, status, result::text, error, tiebreak FROM processing_results WHERE batch_id = %s", (batch_id,)
        ).fetchall()
    assert hooks[0].fallthrough_progress(batch_id=batch_id) == Progress.from_counts(dict(rows))
    assert hooks[0].fallthrough_progress(batch_id=batch_id) == model.fallthrough_progress(batch_id=batch_id)
    # Every stored tiebreak is the digest of the state it stands next to.
    assert [
        key
        for key, status, result, error, tiebreak in tiebreaks
        if tiebreak != content_tiebreak(Status(status), None if result is None else json.loads(result), error)
    ] == []
    hooks[0].fallthrough_delete_batch(batch_id=batch_id)


def _plan(url: str, statement: str, parameters: dict[str, object]) -> str:
    with direct(url) as conn:
        rows = conn.execute("EXPLAIN " + statement, parameters).fetchall()
    return "\n".join(row[0] for row in rows)


def test_the_reads_of_a_repair_walk_primary_keys_without_sorting_or_scanning_tables(server: Server) -> None:
    """Pages of entries and batches, and the list of collections, cost the same wherever they are: no OFFSET,
    no sort of a whole collection, no scan of the documents table to find its collections."""
    url = server.new_database()
    open_backend(url).fallthrough_close()
    with direct(url) as conn:
        conn.execute(
            "INSERT INTO fallthrough_documents (collection, id, version, text, tokens, metadata, metadata_jsonb) "
            "SELECT 'c' || (n % 5), 'id-' || n, n, 'x', '{x}', '{}', '{}' FROM generate_series(1, 20000) AS n"
        )
        conn.execute("INSERT INTO fallthrough_batches SELECT gen_random_uuid(), '{}', 0 FROM generate_series(1, 20000)")
        conn.execute("ANALYZE fallthrough_documents")
        conn.execute("ANALYZE fallthrough_batches")
    reads = [
        (pg_documents.SCAN_FIRST, {"collection": "c1", "limit": 100}),
        (pg_documents.SCAN_AFTER, {"collection": "c1", "after": "id-1", "limit": 100}),
        (pg_documents.LIST_COLLECTIONS, {}),
        # Store.documents: its keyset pages, first and later.
        pg_documents.list_documents_statement("c1", None, None, 100),
        pg_documents.list_documents_statement("c1", None, "id-1", 100),
        (pg_records.LIST_BATCHES_FIRST, {"limit": 100}),
        (pg_records.LIST_BATCHES_AFTER, {"after": uuid.UUID(int=2**127), "limit": 100}),
    ]
    for statement, parameters in reads:
        plan = _plan(url, statement, parameters)
        assert "_pkey" in plan, plan
        assert "Seq Scan on fallthrough_documents" not in plan, plan
        assert "Seq Scan on fallthrough_batches" not in plan, plan
        assert "Sort" not in plan, plan
    hooks = open_backend(url)
    assert hooks.fallthrough_list_collections() == ["c0", "c1", "c2", "c3", "c4"]
    pages, after = 0, None
    while True:
        page = hooks.fallthrough_list_batches(after=after, limit=7000)
        pages += 1
        if len(page) < 7000:
            break
        after = page[-1].id
    assert pages == 3


def test_deletes_of_new_and_old_ids_racing_upserts_of_the_same_ids_do_not_deadlock(database: str) -> None:
    """A delete writes tombstones for ids never seen and replaces existing entries; an upsert does both too.

    Were the two to lock rows in different orders, each could wait for a row the other had written: a
    deadlock, which PostgreSQL breaks by failing one call. Every round uses new ids, half of them stored.
    """
    hooks = [open_backend(database) for _ in range(THREADS)]
    collection = f"lock-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []
    rounds = 20
    barriers = [threading.Barrier(THREADS) for _ in range(rounds)]
    ids_of = [[f"r{round_}-{index:03}" for index in range(40)] for round_ in range(rounds)]
    for round_ids in ids_of:
        hooks[0].fallthrough_upsert_documents(
            collection=collection, documents=[Document(i, "old") for i in round_ids[::2]], version=1
        )

    def race(thread: int) -> None:
        rng = random.Random(thread)
        for round_, round_ids in enumerate(ids_of):
            ids = rng.sample(round_ids, len(round_ids))
            barriers[round_].wait()
            try:
                if thread % 2:
                    hooks[thread].fallthrough_delete_documents(collection=collection, ids=ids, version=2 + thread)
                else:
                    documents = [Document(i, f"t{thread}") for i in ids]
                    hooks[thread].fallthrough_upsert_documents(
                        collection=collection, documents=documents, version=2 + thread
                    )
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=race, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The last writer of every id is thread 7, a delete, at the greatest version.
    entries = hooks[0].fallthrough_scan_documents(collection=collection, after=None, limit=10_000)
    assert {(entry.version, entry.document) for entry in entries} == {(2 + THREADS - 1, None)}
