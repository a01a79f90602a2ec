"""Opening, closing, files, URLs and the errors the SQLite backend maps to BackendUnavailable.

A lock held by another process is BackendBusy: see test_sqlite_busy.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough.errors import BackendBusy, BackendUnavailable, InvalidInput, NotFound
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document, RecordUpdate, Status
from fallthrough_sqlite import SqliteBackend
from fallthrough_sqlite.errors import is_unavailable
from fallthrough_sqlite.schema import SchemaVersionError
from tests.sqlite.helpers import file_url, hooks_of, open_backend

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_constructor_does_no_io(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    backend = SqliteBackend(make_url(file_url(path)))
    assert not path.exists()
    hooks = hooks_of(backend)
    hooks.fallthrough_open()
    assert path.exists()
    hooks.fallthrough_close()


def test_close_works_when_never_opened_and_twice() -> None:
    hooks = hooks_of(SqliteBackend(make_url("sqlite://")))
    hooks.fallthrough_close()
    hooks.fallthrough_open()
    hooks.fallthrough_close()
    hooks.fallthrough_close()


def test_open_is_idempotent_and_ping_answers(url: str) -> None:
    _, hooks = open_backend(url)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    hooks.fallthrough_open()  # again: the data is still there
    hooks.fallthrough_ping()
    assert hooks.fallthrough_get_batch(batch_id=batch_id).total == 1
    assert hooks.fallthrough_capabilities() == fallthrough.Capabilities(
        records=True,
        documents=True,
        vector_search=True,
        text_search=True,
        filter_search=True,
        claims=True,
        parallel_calls=2,
    )
    hooks.fallthrough_close()
    with pytest.raises(BackendUnavailable):
        hooks.fallthrough_ping()


def test_each_memory_backend_is_its_own_database() -> None:
    _, first = open_backend("sqlite://")
    _, second = open_backend("sqlite://")
    batch_id = uuid.uuid4()
    first.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    assert second.fallthrough_get_batch(batch_id=batch_id) is None
    # The one in-memory database is shared by every thread of its backend.
    seen: list[object] = []
    reader = threading.Thread(target=lambda: seen.append(first.fallthrough_get_batch(batch_id=batch_id)))
    reader.start()
    reader.join()
    assert seen[0] is not None and seen[0].total == 1  # type: ignore[attr-defined]
    first.fallthrough_close()
    second.fallthrough_close()


def test_a_file_reopened_by_another_instance_keeps_everything(tmp_path: Path) -> None:
    url = file_url(tmp_path / "kept.db")
    _, writer = open_backend(url)
    batch_id = uuid.uuid4()
    writer.fallthrough_create_batch(batch_id=batch_id, keys=["a", "b"], first_seq=10, metadata={"m": 1}, created_at=NOW)
    writer.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed", result=[1])], updated_at=NOW)
    writer.fallthrough_upsert_documents(
        collection="c", documents=[Document("d", "цемент", [1.0, 2.0], {"k": "v"})], version=fresh_version()
    )
    before = (
        writer.fallthrough_get_batch(batch_id=batch_id),
        writer.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10),
        writer.fallthrough_get_documents(collection="c", ids=["d"]),
    )
    writer.fallthrough_close()
    _, reader = open_backend(url)
    after = (
        reader.fallthrough_get_batch(batch_id=batch_id),
        reader.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10),
        reader.fallthrough_get_documents(collection="c", ids=["d"]),
    )
    assert after == before
    assert [hit.id for hit in reader.fallthrough_search(collection="c", query=_text_query("ЦЕМЕНТ"))] == ["d"]
    reader.fallthrough_close()


def test_a_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    _, hooks = open_backend(file_url(path))
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()
    hooks.fallthrough_close()


def _open_all_at_once(relays: list[Any]) -> list[BaseException]:
    """Call fallthrough_open on every relay from its own thread, released together; return the errors."""
    start = threading.Barrier(len(relays))
    errors: list[BaseException] = []

    def open_one(relay: Any) -> None:
        start.wait()
        try:
            relay.fallthrough_open()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_instances_open_the_same_empty_file_at_once(tmp_path: Path) -> None:
    for attempt in range(10):
        url = file_url(tmp_path / f"race-{attempt}.db")
        relays = [hooks_of(SqliteBackend(make_url(url))) for _ in range(4)]
        assert _open_all_at_once(relays) == []
        batch_id = uuid.uuid4()
        relays[0].fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
        assert all(relay.fallthrough_get_batch(batch_id=batch_id).total == 1 for relay in relays)
        for relay in relays:
            relay.fallthrough_close()


_OPEN_IN_A_PROCESS = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy.engine import make_url
    from fallthrough_sqlite import SqliteBackend
    backend = SqliteBackend(make_url(sys.argv[1]))
    while time.time() < float(sys.argv[2]):
        time.sleep(0.001)
    backend.fallthrough_open()
    backend.fallthrough_ping()
    backend.fallthrough_close()
    """
)


def test_two_processes_open_the_same_empty_file_at_once(tmp_path: Path) -> None:
    import time

    for attempt in range(3):
        url = file_url(tmp_path / f"processes-{attempt}.db")
        start_at = str(time.time() + 1.5)  # after both interpreters have started
        processes = [
            subprocess.Popen([sys.executable, "-c", _OPEN_IN_A_PROCESS, url, start_at], stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr.decode()
        _, hooks = open_backend(url)
        hooks.fallthrough_ping()
        hooks.fallthrough_close()


def test_an_unreachable_file_is_unavailable_until_it_is_reachable(tmp_path: Path) -> None:
    missing_dir = tmp_path / "not-yet"
    hooks = hooks_of(SqliteBackend(make_url(file_url(missing_dir / "x.db"))))
    with pytest.raises(BackendUnavailable) as raised:
        hooks.fallthrough_open()
    assert "unable to open database file" in str(raised.value)
    assert not isinstance(raised.value, BackendBusy)  # an outage, not a lock wait
    missing_dir.mkdir()
    hooks.fallthrough_open()  # the core calls open again until it succeeds
    hooks.fallthrough_ping()
    hooks.fallthrough_close()


def test_a_lock_held_past_the_timeout_is_busy_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    _, hooks = open_backend(file_url(path) + "?timeout=0.2")
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=NOW)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(BackendBusy) as raised:
            hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=NOW)
        assert "locked" in str(raised.value)
        # WAL: readers do not wait for a writer.
        assert hooks.fallthrough_get_record(batch_id=batch_id, key="a").status is Status.PENDING
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (
        len(hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=NOW)) == 1
    )
    hooks.fallthrough_close()


def test_other_errors_keep_their_meaning(tmp_path: Path) -> None:
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.Error) as syntax:
        connection.execute("SELEC 1")
    with pytest.raises(sqlite3.Error) as constraint:
        connection.execute("CREATE TABLE t (x UNIQUE)")
        connection.execute("INSERT INTO t VALUES (1), (1)")
    with pytest.raises(sqlite3.Error) as cannot_open:
        sqlite3.connect(tmp_path / "no" / "such" / "dir.db")
    assert not is_unavailable(syntax.value)
    assert not is_unavailable(constraint.value)
    assert is_unavailable(cannot_open.value)
    connection.close()
    # Through a hook, a contract error stays what it is.
    _, hooks = open_backend("sqlite://")
    with pytest.raises(NotFound):
        hooks.fallthrough_progress(batch_id=uuid.uuid4())
    hooks.fallthrough_close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    _, hooks = open_backend(file_url(path))
    hooks.fallthrough_close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("UPDATE schema_version SET version = 999")
    connection.close()
    with pytest.raises(SchemaVersionError):
        hooks.fallthrough_open()


def test_the_store_finds_the_plugin_by_its_entry_point(tmp_path: Path) -> None:
    with fallthrough.connect(file_url(tmp_path / "store.db")) as store:
        batch = store.create_batch(["a", "b"])
        store.update(batch.id, "a", "completed", result={"ok": True})
        assert store.progress(batch.id).completed == 1
        assert store.health()[0].name == "sqlite"
    with fallthrough.connect() as store:  # the embedded default
        store.upsert_documents("m", [Document("m1", "Цемент М500", vector=[1.0, 0.0])])
        assert store.search("m", text="цемент", vector=[0.9, 0.1])[0].id == "m1"


def _text_query(text: str) -> fallthrough.SearchQuery:
    return fallthrough.SearchQuery(vector=None, text=text, filter=None, limit=10)


@pytest.mark.parametrize("query", ["tiemout=3", "uri=true&mode=ro", "check_same_thread=true"])
def test_a_url_option_other_than_timeout_is_refused_before_anything_opens(tmp_path: Path, query: str) -> None:
    """A misspelt timeout used to be dropped with a SQLAlchemy warning, and the default used in its place."""
    path = tmp_path / "never.db"
    with pytest.raises(InvalidInput, match=r"unknown sqlite URL options .*; known: \['timeout'\]"):
        fallthrough.connect(f"{file_url(path)}?{query}")
    assert not path.exists()


def test_a_timeout_given_twice_is_refused_before_anything_opens(tmp_path: Path) -> None:
    """It used to keep the last value; which one the user meant is not the plugin's to guess."""
    path = tmp_path / "never.db"
    with pytest.raises(InvalidInput, match=r"the sqlite URL gives the options \['timeout'\] more than once"):
        fallthrough.connect(f"{file_url(path)}?timeout=1&timeout=30")
    assert not path.exists()


@pytest.mark.parametrize("address", ["u:hunter2@", "host", "host:5432", "u@"])
def test_a_host_or_credentials_are_refused_before_anything_opens(tmp_path: Path, address: str) -> None:
    """SQLAlchemy refused them only at the first connect, which the CLI reported as a plugin's broken contract."""
    with pytest.raises(InvalidInput, match="no host, port or credentials") as raised:
        fallthrough.connect(f"sqlite://{address}/{tmp_path / 'never.db'}")
    assert "hunter2" not in str(raised.value)
    assert not (tmp_path / "never.db").exists()
