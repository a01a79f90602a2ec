"""Issue 12 on SQLite: progress counters kept by triggers, and readers that do not wait for a writer."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from fallthrough.types import Progress, Record, RecordUpdate, SearchQuery, Status
from fallthrough_sqlite import SqliteBackend
from fallthrough_sqlite.schema import SCHEMA_VERSION
from tests.sqlite.helpers import Hooks, file_url, open_backend

START = datetime(2026, 1, 1, tzinfo=UTC)


def _counts(backend: SqliteBackend) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """The kept counts (zeros dropped) and the counts a GROUP BY finds, read in one snapshot."""
    with backend._database.read_driver() as conn:
        kept = {(b, s): n for b, s, n in conn.execute("SELECT batch_id, status, n FROM record_counts") if n}
        counted = {
            (b, s): n for b, s, n in conn.execute("SELECT batch_id, status, count(*) FROM records GROUP BY 1, 2")
        }
        batches = {row[0] for row in conn.execute("SELECT batch_id FROM batches")}
        # Every batch has its four rows, and no row outlives its batch.
        rows = list(conn.execute("SELECT batch_id, count(*) FROM record_counts GROUP BY 1"))
        assert {b for b, _ in rows} == batches
        assert all(n == len(Status) for _, n in rows)
    return kept, counted


def _random_operation(hooks: Hooks, rng: random.Random, batches: list[uuid.UUID], step: int) -> None:
    now = START + timedelta(seconds=step)
    choice = rng.randrange(10)
    if choice == 0 or not batches:
        batch_id = uuid.uuid4()
        batches.append(batch_id)
        keys = [f"k{rng.randrange(40)}" for _ in range(rng.randrange(0, 30))]
        hooks.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=step * 100, metadata={}, created_at=now)
        return
    batch_id = rng.choice(batches)
    keys = [f"k{rng.randrange(40)}" for _ in range(rng.randrange(1, 12))]
    existing = [record.key for record in hooks.fallthrough_get_records(batch_id=batch_id, keys=keys)]
    if choice == 1:
        hooks.fallthrough_add_records(batch_id=batch_id, keys=keys, first_seq=step * 100, created_at=now)
    elif choice in (2, 3, 4) and existing:
        updates = [RecordUpdate(batch_id, key, rng.choice(list(Status)), result=step) for key in existing]
        hooks.fallthrough_update_records(updates=updates[: rng.choice([1, len(updates)])], updated_at=now)
    elif choice == 5:
        hooks.fallthrough_claim_records(
            batch_id=batch_id, worker="w", limit=rng.randrange(1, 8), claimed_at=now, lease_until=now + timedelta(1)
        )
    elif choice == 6:
        hooks.fallthrough_retry_failed(batch_id=batch_id, updated_at=now)
    elif choice == 7:
        # A repair's merge: new keys are inserted, present ones may change status.
        merged = [
            Record(batch_id, key, step, rng.choice([Status.COMPLETED, Status.FAILED]), 9, None, None, now)
            for key in keys
        ]
        hooks.fallthrough_repair_batch(batch_id=batch_id, metadata={}, created_at=now)
        hooks.fallthrough_merge_records(batch_id=batch_id, records=merged)
    elif choice == 8 and rng.random() < 0.3:
        hooks.fallthrough_delete_batch(batch_id=batch_id)
        batches.remove(batch_id)
    elif choice == 9:
        held = [record.key for record in hooks.fallthrough_get_records(batch_id=batch_id, keys=keys)]
        hooks.fallthrough_extend_leases(
            batch_id=batch_id, keys=held, worker="w", now=now, lease_until=now + timedelta(2)
        )


def test_the_kept_counts_equal_a_group_by_after_random_operations(url: str) -> None:
    backend, hooks = open_backend(url)
    rng = random.Random(12)
    batches: list[uuid.UUID] = []
    for step in range(300):
        _random_operation(hooks, rng, batches, step)
        kept, counted = _counts(backend)
        assert kept == counted, f"after step {step}"
    for batch_id in batches:
        progress = hooks.fallthrough_progress(batch_id=batch_id)
        expected = {status.value: counted.get((str(batch_id), status.value), 0) for status in Status}
        assert progress == Progress(total=sum(expected.values()), **expected)
        assert hooks.fallthrough_get_batch(batch_id=batch_id).total == progress.total
    hooks.fallthrough_close()


def test_a_version_4_file_gets_its_counts_from_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    backend, hooks = open_backend(file_url(path))
    rng = random.Random(4)
    batches: list[uuid.UUID] = []
    for step in range(60):
        _random_operation(hooks, rng, batches, step)
    expected = {batch_id: hooks.fallthrough_progress(batch_id=batch_id) for batch_id in batches}
    hooks.fallthrough_close()
    with sqlite3.connect(path) as connection:
        # What version 4 had: no counts table, no triggers keeping it.
        for name in ("batches_counts_insert", "batches_counts_delete"):
            connection.execute(f"DROP TRIGGER {name}")
        for name in ("records_counts_delete", "records_counts_update"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute("DROP TABLE record_counts")
        connection.execute("UPDATE schema_version SET version = 4")
    connection.close()
    backend, hooks = open_backend(file_url(path))
    assert {batch_id: hooks.fallthrough_progress(batch_id=batch_id) for batch_id in batches} == expected
    for step in range(60, 120):
        _random_operation(hooks, rng, batches, step)
    kept, counted = _counts(backend)
    assert kept == counted
    hooks.fallthrough_close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    connection.close()


def test_a_version_6_file_loses_its_insert_trigger_and_keeps_counting(tmp_path: Path) -> None:
    """Version 7 counts inserts in the hooks; a version 6 file's per-row insert trigger would count them twice."""
    path = tmp_path / "v6.db"
    backend, hooks = open_backend(file_url(path))
    rng = random.Random(6)
    batches: list[uuid.UUID] = []
    for step in range(40):
        _random_operation(hooks, rng, batches, step)
    hooks.fallthrough_close()
    with sqlite3.connect(path) as connection:
        # What version 6 had: the same counts, kept on insert by a trigger.
        connection.execute(
            """CREATE TRIGGER records_counts_insert AFTER INSERT ON records BEGIN
            UPDATE record_counts SET n = n + 1 WHERE batch_id = new.batch_id AND status = new.status;
            END"""
        )
        connection.execute("UPDATE schema_version SET version = 6")
    connection.close()
    backend, hooks = open_backend(file_url(path))
    for step in range(40, 120):
        _random_operation(hooks, rng, batches, step)
        kept, counted = _counts(backend)
        assert kept == counted, f"after step {step}"
    hooks.fallthrough_close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        triggers = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert "records_counts_insert" not in triggers
    connection.close()


def test_a_merge_naming_an_absent_key_twice_counts_it_once_at_its_final_status(url: str) -> None:
    backend, hooks = open_backend(url)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=START)
    later = START + timedelta(seconds=1)
    merged = [
        Record(batch_id, "new", 5, Status.PROCESSING, 0, None, None, later),
        Record(batch_id, "new", 5, Status.FAILED, 0, None, "x", later + timedelta(seconds=1)),
        Record(batch_id, "a", 1, Status.COMPLETED, 0, None, None, later),
    ]
    hooks.fallthrough_merge_records(batch_id=batch_id, records=merged)
    assert hooks.fallthrough_progress(batch_id=batch_id) == Progress(
        total=2, pending=0, processing=0, completed=1, failed=1
    )
    kept, counted = _counts(backend)
    assert kept == counted
    hooks.fallthrough_close()


def test_a_reader_is_served_while_a_writer_holds_the_write_transaction(tmp_path: Path) -> None:
    """A thread of the backend holds BEGIN IMMEDIATE, having written; reads answer from the snapshot before."""
    backend, hooks = open_backend(file_url(tmp_path / "busy.db"))
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a", "b"], first_seq=1, metadata={}, created_at=START)
    holding = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with backend._database.write() as conn:
                conn.exec_driver_sql("UPDATE records SET status = 'completed', rank = 2 WHERE key = 'a'")
                holding.set()
                assert release.wait(30)
        except BaseException as error:
            errors.append(error)
            holding.set()

    writer = threading.Thread(target=hold)
    writer.start()
    assert holding.wait(30)
    answers: list[object] = []

    def read() -> None:
        try:
            answers.append(hooks.fallthrough_progress(batch_id=batch_id))
            answers.append(
                [r.status for r in hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10)]
            )
            answers.append(hooks.fallthrough_get_batch(batch_id=batch_id).total)
            answers.append(hooks.fallthrough_search(collection="c", query=SearchQuery(None, None, None, 5)))
        except BaseException as error:
            errors.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(20)
    served_while_held = not reader.is_alive()
    release.set()
    writer.join(30)
    reader.join(30)
    assert errors == []
    assert served_while_held, "the reads waited for the writer"
    # The writer's uncommitted change was not seen: the reads saw the snapshot before it.
    assert answers[0] == Progress(total=2, pending=2, processing=0, completed=0, failed=0)
    assert answers[1] == [Status.PENDING, Status.PENDING]
    assert answers[2] == 2
    # And once committed, it is (through the triggers, in the same transaction).
    assert hooks.fallthrough_progress(batch_id=batch_id).completed == 1
    hooks.fallthrough_close()


def test_readers_never_write(tmp_path: Path) -> None:
    backend, hooks = open_backend(file_url(tmp_path / "ro.db"))
    with backend._database.read() as conn:
        try:
            conn.exec_driver_sql("INSERT INTO batches VALUES ('x', '{}', 0)")
        except Exception as error:
            assert "readonly" in str(error).lower() or "read-only" in str(error).lower()
        else:
            raise AssertionError("a read connection wrote")
    hooks.fallthrough_close()


def test_attrs_record_is_what_decoding_builds() -> None:
    """The decoder's positional Record call matches the fields by name (a reordered Record would break it)."""
    from fallthrough.kit import decode_records

    batch_id = uuid.uuid4()
    row = ("k", 7, "processing", 2, '{"x": 1}', "e", 1_000_000, "w", 3_000_000)
    (record,) = decode_records(batch_id, [row])
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert attrs.asdict(record, recurse=False) == {
        "batch_id": batch_id,
        "key": "k",
        "seq": 7,
        "status": Status.PROCESSING,
        "attempt": 2,
        "result": {"x": 1},
        "error": "e",
        "updated_at": epoch + timedelta(seconds=1),
        "lease_owner": "w",
        "lease_expires": epoch + timedelta(seconds=3),
    }


def test_a_stored_row_that_cannot_be_decoded_fails_the_iteration_with_a_plugin_error(tmp_path: Path) -> None:
    # Records are built as the caller reaches them (kit.RecordPage), past the router: what the
    # decoder raises must still reach the caller as the Store's own error, and only at that record.
    import asyncio

    import fallthrough
    from fallthrough.errors import PluginError

    path = tmp_path / "corrupt.db"
    with fallthrough.connect(file_url(path)) as store:
        batch = store.create_batch(["a", "b", "c"])
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE records SET result = '{broken' WHERE key = 'b'")
    with fallthrough.connect(file_url(path)) as store:
        reached: list[str] = []
        with pytest.raises(PluginError, match="JSONDecodeError") as raised:
            for record in store.records(batch.id):
                reached.append(record.key)
        assert reached == ["a"]
        assert raised.value.__cause__ is None and raised.value.__context__ is None

        async def iterate() -> None:
            async with fallthrough.aio.AsyncStore(store) as async_store:
                async for _ in async_store.records(batch.id):
                    pass

        with pytest.raises(PluginError, match="JSONDecodeError"):
            asyncio.run(iterate())
