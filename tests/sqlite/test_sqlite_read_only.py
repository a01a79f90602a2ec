"""A SQLite file that turns read-only cannot serve writes: an outage, as a full disk is, not a plugin's bug.

The file is made read-only for real (the ``read_only`` fixture: ``chattr +i``,
root only), and SQLite then answers a write with ``SQLITE_READONLY``, what
a disk remounted read-only after errors answers. Raised as the driver's
error, it was a ``PluginError`` that quoted the statement and the caller's
keys, and failed the call on every store at once.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough_sqlite.connection import Database
from tests.sqlite.helpers import file_url

KEYS = ["customer-4711-cement", "customer-4711-sand"]


Freeze = Callable[[Sequence[Path]], None]


def _database_files(database: Path) -> list[Path]:
    """The database and its WAL, where they exist: what a write would change."""
    return [path for path in (database, database.with_name(database.name + "-wal")) if path.exists()]


def test_a_read_only_file_is_unavailable_naming_the_cause_and_quoting_no_key(tmp_path: Path, read_only: Freeze) -> None:
    database = tmp_path / "store.sqlite"
    with fallthrough.connect(file_url(database)) as store:
        batch = store.create_batch(KEYS)
    read_only(_database_files(database))

    with fallthrough.connect(file_url(database)) as alone:
        assert alone.progress(batch.id).total == len(KEYS)  # reads still work
        with pytest.raises(fallthrough.AllBackendsFailed) as raised:
            alone.create_batch(["customer-4711-gravel"])
        (cause,) = raised.value.causes.values()
        assert isinstance(cause, fallthrough.BackendUnavailable)
        assert "SQLITE_READONLY" in str(cause)
        assert "customer-4711" not in str(raised.value) and "INSERT" not in str(raised.value)


def test_the_next_store_takes_the_writes_a_read_only_file_refuses_and_replays_them_once_it_is_writable(
    tmp_path: Path, read_only: Freeze
) -> None:
    database = tmp_path / "store.sqlite"
    with fallthrough.connect(file_url(database)) as opening:
        assert list(opening.batches()) == []  # the schema, made while the file is writable
    read_only(_database_files(database))
    store = fallthrough.connect(file_url(database), "sqlite://")
    try:
        batch = store.create_batch(KEYS)
        store.update(batch.id, KEYS[0], "completed", result={"price": 410})

        (on_file, _) = store.health()
        assert on_file.last_error is not None and "SQLITE_READONLY" in on_file.last_error
        assert on_file.pending_hints == 2 and not on_file.serves_reads
        assert store.progress(batch.id).completed == 1  # served by the store in memory

        subprocess.run(["chattr", "-i", str(database)], check=True)
        assert store.drain(timeout=10)
        assert store.health()[0].serves_reads
    finally:
        store.close()
    with fallthrough.connect(file_url(database)) as alone:
        assert alone.progress(batch.id).completed == 1
        record = alone.get_record(batch.id, KEYS[0])
        assert record is not None and record.result == {"price": 410}


def test_a_reader_that_tries_to_write_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    """The readers' ``query_only`` refuses a write with the same code a read-only file gives; it must stay loud."""
    database = Database(make_url(file_url(tmp_path / "store.sqlite")))
    database.open()
    try:
        with pytest.raises(exc.OperationalError) as raised, database.read() as reader:
            reader.execute(text("DELETE FROM batches"))
        assert isinstance(raised.value.orig, sqlite3.OperationalError)
        assert raised.value.orig.sqlite_errorcode == sqlite3.SQLITE_READONLY
        # The same code on the writer is the file's: an outage.
        with pytest.raises(fallthrough.BackendUnavailable, match="SQLITE_READONLY"), database.write() as writer:
            writer.execute(text("PRAGMA query_only = 1"))
            writer.execute(text("DELETE FROM batches"))
    finally:
        database.close()
