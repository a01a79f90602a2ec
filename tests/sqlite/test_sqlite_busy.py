"""Busy is not down: a lock wait is BackendBusy, an outage is plain BackendUnavailable.

The router falls through on both, but only an outage counts towards opening
the circuit breaker. So a write lock held by another process past the busy
timeout must come out as BackendBusy, while a file that cannot be opened or
a disk that fails must not. Every case here is a real SQLite error: a real
second process holding the lock, a real directory that is missing, a real
write refused by the operating system.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fallthrough.errors import BackendBusy, BackendUnavailable
from fallthrough.types import Document, RecordUpdate, Status
from fallthrough_sqlite import SqliteBackend
from fallthrough_sqlite.errors import is_busy, is_unavailable
from tests.sqlite.helpers import file_url, hooks_of, open_backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Takes the write lock of the file named by argv[1], says so, and holds it until stdin closes.
_HOLD_THE_WRITE_LOCK = textwrap.dedent(
    """
    import sqlite3, sys
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.read()
    connection.execute("ROLLBACK")
    connection.close()
    """
)


class _LockHolder:
    """Another process holding the file's write lock (BEGIN IMMEDIATE) until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLD_THE_WRITE_LOCK, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line == "locked\n", self.process.stderr.read() if self.process.stderr else line

    def release(self) -> None:
        _, stderr = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, stderr


def test_a_write_lock_held_by_another_process_past_the_timeout_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    _, hooks = open_backend(file_url(path) + "?timeout=0.3")
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    holder = _LockHolder(path)
    try:
        writes = {
            "update_records": lambda: hooks.fallthrough_update_records(
                updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=NOW
            ),
            "upsert_documents": lambda: hooks.fallthrough_upsert_documents(
                collection="c", documents=[Document("d", "x")], version=1
            ),
            "delete_documents": lambda: hooks.fallthrough_delete_documents(collection="c", ids=["d"], version=2),
            "repair_batch": lambda: hooks.fallthrough_repair_batch(
                batch_id=batch_id, metadata={"m": 1}, created_at=NOW
            ),
        }
        for name, write in writes.items():
            started = time.monotonic()
            with pytest.raises(BackendBusy) as raised:
                write()
            waited = time.monotonic() - started
            assert waited >= 0.25, f"{name} gave up after {waited:.3f}s, before the busy timeout"
            assert "locked" in str(raised.value), name
            # The database and the SQLite error are named; the SQL and its parameters are not.
            assert "locked.db" in str(raised.value), name
            assert not any(word in str(raised.value) for word in ("INSERT", "UPDATE", "SELECT")), name
        # WAL: readers do not wait for the writer, and nothing of the refused writes is there.
        assert hooks.fallthrough_get_record(batch_id=batch_id, key="a").status is Status.PENDING
        assert hooks.fallthrough_list_collections() == []
        assert hooks.fallthrough_get_batch(batch_id=batch_id).metadata == {}
    finally:
        holder.release()
    # The lock is gone, and so is the busy state: the same write goes through.
    assert (
        len(hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=NOW)) == 1
    )
    hooks.fallthrough_close()


def test_a_backend_opened_while_another_process_writes_reads_at_once(tmp_path: Path) -> None:
    # WAL lets a reader read beside a writer; opening a file of this version must not wait for the writer.
    path = tmp_path / "busy.db"
    _, first = open_backend(file_url(path))
    batch_id = uuid.uuid4()
    first.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    first.fallthrough_close()
    holder = _LockHolder(path)
    try:
        _, opened_now = open_backend(file_url(path) + "?timeout=0.3")
        assert opened_now.fallthrough_get_record(batch_id=batch_id, key="a").status is Status.PENDING
        assert opened_now.fallthrough_progress(batch_id=batch_id).pending == 1
        opened_now.fallthrough_close()
    finally:
        holder.release()


def test_threads_queued_behind_a_busy_write_wait_at_most_twice_the_timeout(tmp_path: Path) -> None:
    # Each thread waits for the Store's own lock, then for the other process's: not for every thread before it.
    path = tmp_path / "queued.db"
    timeout, threads = 0.5, 8
    _, hooks = open_backend(file_url(path) + f"?timeout={timeout}")
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    holder = _LockHolder(path)
    waits: list[float] = []

    def update() -> None:
        started = time.monotonic()
        with pytest.raises(BackendBusy):
            hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=NOW)
        waits.append(time.monotonic() - started)

    try:
        workers = [threading.Thread(target=update) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        holder.release()
    assert len(waits) == threads
    # Queued one behind the other, the last would wait threads * timeout (4 s): far past this bound.
    assert max(waits) < 2 * timeout + 1.0, waits
    hooks.fallthrough_close()


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_call_waits_behind_a_long_call_of_its_own_store_past_the_timeout(tmp_path: Path, where: str) -> None:
    # The timeout bounds the wait for another process's lock, not for this Store's own long calls.
    url = file_url(tmp_path / "long.db") if where == "file" else "sqlite://"
    _, hooks = open_backend(url + "?timeout=0.01")
    big, small = uuid.uuid4(), uuid.uuid4()
    keys = [f"k{i:06}" for i in range(100_000)]
    hooks.fallthrough_create_batch(batch_id=big, keys=keys, first_seq=1, metadata={}, created_at=NOW)
    hooks.fallthrough_create_batch(batch_id=small, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    deleting = threading.Thread(target=lambda: hooks.fallthrough_delete_batch(batch_id=big))
    deleting.start()
    try:
        updated = hooks.fallthrough_update_records(updates=[RecordUpdate(small, "a", "completed")], updated_at=NOW)
    finally:
        deleting.join(timeout=60)
    assert len(updated) == 1
    hooks.fallthrough_close()


def test_the_classification_of_real_sqlite_errors(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    sqlite3.connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("BEGIN IMMEDIATE")
    holder.execute("ROLLBACK")
    for connection in (holder, waiter):
        connection.close()
    with pytest.raises(sqlite3.OperationalError) as cannot_open:
        sqlite3.connect(tmp_path / "missing" / "x.db")
    assert is_busy(locked.value) and is_unavailable(locked.value)
    assert not is_busy(cannot_open.value) and is_unavailable(cannot_open.value)


def test_a_file_that_cannot_be_opened_is_unavailable_not_busy(tmp_path: Path) -> None:
    missing = hooks_of(SqliteBackend(make_url(file_url(tmp_path / "no" / "such" / "dir.db"))))
    with pytest.raises(BackendUnavailable) as raised:
        missing.fallthrough_open()
    assert type(raised.value) is BackendUnavailable


# Opens the backend, then lets the OS refuse writes past 200 kB (RLIMIT_FSIZE: EFBIG, a real
# SQLITE_IOERR_WRITE), and reports the class of the error a large upsert raises.
_WRITE_PAST_THE_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    from sqlalchemy.engine import make_url
    from fallthrough.errors import BackendUnavailable
    from fallthrough.types import Document
    from fallthrough_sqlite import SqliteBackend
    backend = SqliteBackend(make_url(sys.argv[1]))
    backend.fallthrough_open()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    try:
        backend.fallthrough_upsert_documents(collection="c", documents=[Document("big", "x " * 200_000)], version=1)
    except BackendUnavailable as error:
        print(type(error).__name__, error)
    """
)


def test_a_disk_io_error_is_unavailable_not_busy(tmp_path: Path) -> None:
    url = file_url(tmp_path / "full.db")
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_PAST_THE_FILE_SIZE_LIMIT, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("BackendUnavailable "), done.stdout
    assert "disk I/O error" in done.stdout
    # Nothing of the failed write is in the file.
    _, hooks = open_backend(url)
    assert hooks.fallthrough_list_collections() == []
    hooks.fallthrough_close()
