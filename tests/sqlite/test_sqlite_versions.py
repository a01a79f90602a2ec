"""Versioned documents, tombstones and the repair hooks: what the conformance suite cannot see on SQLite.

The suite checks the semantics against the reference model. Here: a file of
schema version 1 migrates in place and keeps its data; versions are stored
as exact int64; the conditional writes stay atomic when two instances (as
two processes would) race on one file; the scans use their indexes.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from fallthrough.errors import NotFound
from fallthrough.filters import parse_filter
from fallthrough.ordering import content_tiebreak, merge_key
from fallthrough.types import Document, Record, SearchQuery, Status, StoredDocument
from fallthrough_sqlite import SqliteBackend
from fallthrough_sqlite import records as records_sql
from fallthrough_sqlite.schema import FTS_DDL, SCHEMA_VERSION
from tests.sqlite.helpers import file_url, open_backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# The tables of schema version 1, exactly as its release created them.
_V1_DDL = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE batches (batch_id TEXT NOT NULL, metadata TEXT NOT NULL, created_us INTEGER NOT NULL,"
    " PRIMARY KEY (batch_id))",
    'CREATE TABLE records (batch_id TEXT NOT NULL, "key" TEXT NOT NULL, seq INTEGER NOT NULL,'
    " status TEXT NOT NULL, rank INTEGER NOT NULL, attempt INTEGER NOT NULL, result TEXT, error TEXT,"
    ' updated_us INTEGER NOT NULL, tiebreak INTEGER NOT NULL, PRIMARY KEY (batch_id, "key")) WITHOUT ROWID',
    'CREATE INDEX records_by_seq ON records (batch_id, seq, "key")',
    'CREATE INDEX records_by_status ON records (batch_id, status, seq, "key")',
    "CREATE TABLE collections (name TEXT NOT NULL, dimension INTEGER, generation INTEGER NOT NULL, PRIMARY KEY (name))",
    "CREATE TABLE documents (row_id INTEGER NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,"
    " text TEXT NOT NULL, tokens TEXT NOT NULL, vector BLOB, metadata TEXT NOT NULL, PRIMARY KEY (row_id),"
    " CONSTRAINT documents_by_id UNIQUE (collection, id))",
    *FTS_DDL,
)


def _write_v1_file(path: Path, batch_id: uuid.UUID) -> None:
    """A file as schema version 1 left it: one batch with one completed record, two documents."""
    connection = sqlite3.connect(path)
    with connection:
        for statement in _V1_DDL:
            connection.execute(statement)
        connection.execute("INSERT INTO schema_version VALUES (1)")
        connection.execute("INSERT INTO batches VALUES (?, '{\"m\":1}', 1767225600000000)", (str(batch_id),))
        connection.execute(
            "INSERT INTO records VALUES (?, 'a', 7, 'completed', 3, 0, '[1]', NULL, 1767225600000001, 5)",
            (str(batch_id),),
        )
        connection.execute("INSERT INTO collections VALUES ('c', 2, 1)")
        vector = bytes.fromhex("0000803f00000040")  # [1.0, 2.0] as little-endian float32
        connection.execute(
            "INSERT INTO documents (collection, id, text, tokens, vector, metadata)"
            " VALUES ('c', 'd1', 'Цемент М500', 'цемент м500', ?, '{\"k\":\"v\"}')",
            (vector,),
        )
        connection.execute(
            "INSERT INTO documents (collection, id, text, tokens, vector, metadata)"
            " VALUES ('c', 'd2', 'песок', 'песок', NULL, '{}')"
        )
    connection.close()


def test_a_schema_1_file_migrates_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    batch_id = uuid.uuid4()
    _write_v1_file(path, batch_id)
    _, hooks = open_backend(file_url(path))
    d1 = Document("d1", "Цемент М500", [1.0, 2.0], {"k": "v"})
    d2 = Document("d2", "песок")
    # The old documents read back whole, as version 0: older than any stamped write.
    assert hooks.fallthrough_get_documents(collection="c", ids=["d2", "d1"]) == [d2, d1]
    assert hooks.fallthrough_document_versions(collection="c", ids=["d1", "d2"]) == [
        StoredDocument("d1", 0, d1),
        StoredDocument("d2", 0, d2),
    ]
    assert hooks.fallthrough_list_collections() == ["c"]
    text = hooks.fallthrough_search(collection="c", query=SearchQuery(None, "цемент", None, 10))
    assert [hit.id for hit in text] == ["d1"]
    near = hooks.fallthrough_search(collection="c", query=SearchQuery((1.0, 2.0), None, None, 10))
    assert [hit.id for hit in near] == ["d1"]
    # The records and batches are untouched.
    assert hooks.fallthrough_get_batch(batch_id=batch_id).metadata == {"m": 1}
    assert hooks.fallthrough_get_records(batch_id=batch_id, keys=["a"])[0].result == [1]
    # Any stamped write beats a migrated entry.
    assert hooks.fallthrough_delete_documents(collection="c", ids=["d1"], version=1) == 1
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("d2", "гравий")], version=1)
    assert hooks.fallthrough_get_documents(collection="c", ids=["d1", "d2"]) == [Document("d2", "гравий")]
    assert hooks.fallthrough_search(collection="c", query=SearchQuery(None, "цемент", None, 10)) == []
    hooks.fallthrough_close()
    # The version is recorded, and opening again migrates nothing twice.
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    connection.close()
    _, again = open_backend(file_url(path))
    assert again.fallthrough_document_versions(collection="c", ids=["d1", "d2"]) == [
        StoredDocument("d1", 1, None),
        StoredDocument("d2", 1, Document("d2", "гравий")),
    ]
    again.fallthrough_close()


def test_versions_are_exact_int64(url: str) -> None:
    _, hooks = open_backend(url)
    big = 2**62 + 1  # a float would round it
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "x")], version=big)
    hooks.fallthrough_delete_documents(collection="c", ids=["b"], version=2**63 - 1)
    assert [entry.version for entry in hooks.fallthrough_scan_documents(collection="c", after=None, limit=10)] == [
        big,
        2**63 - 1,
    ]
    # One microsecond older loses; the same version wins (a replay is idempotent).
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "older")], version=big - 1)
    assert hooks.fallthrough_get_documents(collection="c", ids=["a"]) == [Document("a", "x")]
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "same")], version=big)
    assert hooks.fallthrough_get_documents(collection="c", ids=["a"]) == [Document("a", "same")]
    hooks.fallthrough_close()


def test_a_tombstone_is_not_found_by_a_filter_that_matches_empty_metadata(url: str) -> None:
    _, hooks = open_backend(url)
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "x"), Document("b", "y")], version=1)
    assert hooks.fallthrough_delete_documents(collection="c", ids=["a", "ghost"], version=2) == 1
    # "k" is absent from every document, so a negated equality matches any live one.
    hits = hooks.fallthrough_search(collection="c", query=SearchQuery(None, None, parse_filter({"k": {"ne": 1}}), 10))
    assert [hit.id for hit in hits] == ["b"]
    hooks.fallthrough_close()


def _race(*jobs: Any) -> None:
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Any) -> None:
        start.wait()
        try:
            job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_racing_versioned_writes_from_two_instances_keep_the_newest(tmp_path: Path) -> None:
    url = file_url(tmp_path / "race.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    ids = [f"d{i}" for i in range(30)]
    # Versions 1..80: odd ones upsert (text names the version), even ones delete; each writer sends them
    # in the opposite order, so the conditional write alone must keep version 80 (a delete) everywhere,
    # except that ids d0..d9 see only the upserts.
    writes = list(range(1, 81))

    def send(relay: Any, order: list[int]) -> None:
        for version in order:
            if version % 2:
                docs = [Document(i, f"v{version}") for i in ids]
                relay.fallthrough_upsert_documents(collection="c", documents=docs, version=version)
            else:
                relay.fallthrough_delete_documents(collection="c", ids=ids[10:], version=version)

    _race(lambda: send(first, writes), lambda: send(second, writes[::-1]))
    entries = first.fallthrough_scan_documents(collection="c", after=None, limit=100)
    assert entries == sorted(
        [StoredDocument(i, 79, Document(i, "v79")) for i in ids[:10]] + [StoredDocument(i, 80, None) for i in ids[10:]],
        key=lambda entry: entry.id,
    )
    assert [hit.id for hit in second.fallthrough_search(collection="c", query=SearchQuery(None, "v79", None, 50))] == (
        ids[:10]
    )
    first.fallthrough_close()
    second.fallthrough_close()


def test_racing_merges_from_two_instances_keep_the_greatest_state_and_the_smallest_seq(tmp_path: Path) -> None:
    url = file_url(tmp_path / "merge.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    batch_id = uuid.uuid4()
    first.fallthrough_repair_batch(batch_id=batch_id, metadata={}, created_at=NOW)
    keys = [f"k{i}" for i in range(25)]
    states = [
        [
            Record(
                batch_id,
                key,
                seq=100 - step,
                status=status,
                attempt=step // 12,
                result=f"{status}-{step}" if status is Status.COMPLETED else None,
                error=f"e{step}" if status is Status.FAILED else None,
                updated_at=NOW + timedelta(microseconds=step % 5),
            )
            for key in keys
        ]
        for step, status in enumerate([Status.PENDING, Status.PROCESSING, Status.COMPLETED, Status.FAILED] * 9)
    ]

    def send(relay: Any, order: list[list[Record]]) -> None:
        for page in order:
            relay.fallthrough_merge_records(batch_id=batch_id, records=page)

    _race(lambda: send(first, states), lambda: send(second, states[::-1]))

    def key_of(record: Record) -> tuple[int, int, int, int]:
        return merge_key(
            record.attempt,
            record.status,
            record.updated_at,
            content_tiebreak(record.status, record.result, record.error),
        )

    stored = second.fallthrough_get_records(batch_id=batch_id, keys=keys)
    for record in stored:
        sent = [page[keys.index(record.key)] for page in states]
        best = max(sent, key=key_of)
        assert record == Record(
            batch_id,
            record.key,
            seq=min(item.seq for item in sent),
            status=best.status,
            attempt=best.attempt,
            result=best.result,
            error=best.error,
            updated_at=best.updated_at,
        )
    assert len(stored) == len(keys)
    # Everything has converged: merging any of it again changes nothing.
    assert all(first.fallthrough_merge_records(batch_id=batch_id, records=page) == 0 for page in states)
    first.fallthrough_close()
    second.fallthrough_close()


class _Statements:
    """The SQL a backend runs, captured from its engine, to ask SQLite for the plan of each."""

    def __init__(self, backend: SqliteBackend) -> None:
        self.seen: list[tuple[str, Any]] = []
        engines = backend._database._engines.get()
        for engine in (engines.writer, engines.readers):
            event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.seen.append((statement, parameters))

    def plans(self, path: Path) -> Iterator[tuple[str, str]]:
        connection = sqlite3.connect(path)
        try:
            for statement, parameters in self.seen:
                if statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
                    yield statement, " | ".join(row[-1] for row in rows)
        finally:
            connection.close()


def test_the_scans_page_on_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    backend, hooks = open_backend(file_url(path))
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a", "b"], first_seq=1, metadata={}, created_at=NOW)
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "x")], version=1)
    statements = _Statements(backend)
    hooks.fallthrough_list_collections()
    hooks.fallthrough_scan_documents(collection="c", after="a", limit=10)
    hooks.fallthrough_document_versions(collection="c", ids=["a", "b"])
    hooks.fallthrough_list_batches(after=batch_id, limit=10)
    hooks.fallthrough_list_batches(after=None, limit=10)
    hooks.fallthrough_list_documents(collection="c", filter=None, after="a", limit=10)
    hooks.fallthrough_list_live_collections()
    plans = list(statements.plans(path))
    # list_collections and document_versions each read the drops too.
    assert len(plans) == 9
    # The record reads run on the driver's cursor, out of SQLAlchemy's sight: plan their texts here.
    connection = sqlite3.connect(path)
    try:
        batch = str(batch_id)
        raw = [
            (records_sql._PAGES[(False, False)], (batch, 10)),
            (records_sql._PAGES[(False, True)], (batch, 1, "a", 10)),
            (records_sql._PAGES[(True, False)], (batch, "pending", 10)),
            (records_sql._PAGES[(True, True)], (batch, "pending", 1, "a", 10)),
            (records_sql._GET_RECORD, (batch, "a")),
            (f"{records_sql._SELECT} AND key IN (?, ?)", (batch, "a", "b")),
            ("SELECT status, n FROM record_counts WHERE batch_id = ?", (batch,)),
        ]
        for statement, parameters in raw:
            rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            plans.append((statement, " | ".join(row[-1] for row in rows)))
    finally:
        connection.close()
    for statement, plan in plans:
        # No scan of documents or records, not even of an index, and no sort: each page seeks an index
        # and reads a range of it in order. (The first page of batches reads the start of their index.)
        assert "TEMP B-TREE" not in plan, f"{statement}\n  {plan}"
        assert "SCAN documents" not in plan and "SCAN records" not in plan, f"{statement}\n  {plan}"
        assert "SCAN batches" not in plan or "USING INDEX" in plan, f"{statement}\n  {plan}"
    hooks.fallthrough_close()


def test_merge_records_needs_the_batch_and_writes_nothing_without_it(url: str) -> None:
    _, hooks = open_backend(url)
    batch_id = uuid.uuid4()
    record = Record(batch_id, "a", 1, Status.COMPLETED, 0, None, None, NOW)
    with pytest.raises(NotFound):
        hooks.fallthrough_merge_records(batch_id=batch_id, records=[record])
    assert hooks.fallthrough_get_records(batch_id=batch_id, keys=["a"]) == []
    hooks.fallthrough_close()


def test_collections_are_listed_in_code_point_order(url: str) -> None:
    _, hooks = open_backend(url)
    names = ["é", "z", "a", "😀", "\uffff", "A", "a b", "ab"]
    for name in names:
        hooks.fallthrough_delete_documents(collection=name, ids=["x", "y"], version=1)
    hooks.fallthrough_upsert_documents(collection="empty", documents=[], version=1)  # no entry: not listed
    assert hooks.fallthrough_list_collections() == sorted(names)
    hooks.fallthrough_close()


def test_racing_deletes_count_each_live_document_once(tmp_path: Path) -> None:
    url = file_url(tmp_path / "deletes.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    counts: list[int] = []
    for round_ in range(5):
        ids = [f"r{round_}-{i}" for i in range(300)]
        base = 10 * (round_ + 1)
        first.fallthrough_upsert_documents(collection="c", documents=[Document(i, "x") for i in ids], version=base)
        counts.clear()

        def delete(relay: Any, version: int, order: list[str]) -> None:
            for start in range(0, len(order), 30):
                counts.append(
                    relay.fallthrough_delete_documents(collection="c", ids=order[start : start + 30], version=version)
                )

        _race(partial(delete, first, base + 1, ids), partial(delete, second, base + 2, ids[::-1]))
        # Whoever reached a document first turned it into a tombstone; the other found no live document.
        assert sum(counts) == len(ids)
        entries = second.fallthrough_document_versions(collection="c", ids=ids)
        assert {(entry.version, entry.document) for entry in entries} == {(base + 2, None)}
    first.fallthrough_close()
    second.fallthrough_close()
