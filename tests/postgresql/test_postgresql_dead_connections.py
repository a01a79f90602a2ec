"""Pooled connections the server ended: found without a pre-ping, and calls retried only where that is safe.

The plugin sends no ``SELECT 1`` before each call (issue 12 item 6). A
connection the server has ended is found at checkout by a poll of its
socket, or, should it die after that, by its first statement failing; then
a read, or a write transaction whose COMMIT was never sent, runs once more
on a fresh connection, and anything that may have been applied is not run
again. Connections are ended as production ends them: ``pg_terminate_backend``
from another session, at the moment the test needs (a pool or engine event
of the test's own picks the moment; it kills the real server process).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event

from fallthrough.errors import BackendUnavailable
from fallthrough.types import Document, RecordUpdate, SearchQuery, Status
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import Hooks, at, direct, open_backend

KEYS = ["a", "b", "c"]


@pytest.fixture
def url(pgvector_server: Server) -> str:
    return pgvector_server.new_database()


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A dead connection is discarded, never rolled back at check-in.

    SQLAlchemy's pool logs such a failed rollback as an error with its
    traceback, on the application's stderr when it configured no logging.
    """
    with caplog.at_level(logging.ERROR):
        yield
    assert [record.getMessage() for record in caplog.get_records("call") if record.levelno >= logging.ERROR] == []


@pytest.fixture
def hooks(url: str) -> Iterator[Hooks]:
    opened = open_backend(url)
    try:
        yield opened
    finally:
        opened.fallthrough_close()


def _terminate(admin: psycopg.Connection[Any], pids: list[int]) -> None:
    """End these server processes as an operator would, and wait until they are gone."""
    for pid in pids:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone() != (0,):
        assert time.monotonic() < deadline, "the terminated server processes did not exit"
        time.sleep(0.01)


def _pooled_pids(admin: psycopg.Connection[Any], url: str) -> list[int]:
    database = url.rsplit("/", 1)[1].split("?", 1)[0]
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
    ).fetchall()
    return [pid for (pid,) in rows]


def _new_batch(hooks: Hooks) -> uuid.UUID:
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=KEYS, first_seq=1, metadata={}, created_at=at(0))
    return batch_id


def _engine(hooks: Hooks) -> Any:
    return hooks.plugin._database.engine()  # type: ignore[attr-defined]


def _kill_at_checkout(url: str, hooks: Hooks, times: int = 1) -> list[int]:
    """From now on, the first ``times`` checkouts end their connection's server process after the plugin's own checks.

    That is a connection dying between the checkout and the first statement:
    what the poll cannot see, and the retry must handle. Returns the list of
    checkouts seen (their backend pids), which grows with every checkout.
    """
    seen: list[int] = []
    admin = direct(url)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        pid = dbapi_connection.info.backend_pid
        seen.append(pid)
        if len(seen) <= times:
            _terminate(admin, [pid])

    event.listen(_engine(hooks).pool, "checkout", on_checkout)
    return seen


def test_pooled_connections_the_server_ended_are_replaced_at_checkout_for_reads_and_unretried_writes(
    url: str, hooks: Hooks
) -> None:
    batch_id = _new_batch(hooks)
    with direct(url) as admin:
        pooled = _pooled_pids(admin, url)
        assert pooled, "the backend keeps no pooled connection"
        _terminate(admin, pooled)
        # A read on the pooled connection the server ended: replaced, not failed.
        assert hooks.fallthrough_progress(batch_id=batch_id).pending == len(KEYS)
        _terminate(admin, _pooled_pids(admin, url))
        # A claim is never retried once sent (it may have been applied), so
        # only the checkout's poll can save it: it must not reach the dead connection.
        claimed = hooks.fallthrough_claim_records(
            batch_id=batch_id, worker="w", limit=1, claimed_at=at(1), lease_until=at(1_000_000)
        )
        assert [record.key for record in claimed] == ["a"]
        assert set(_pooled_pids(admin, url)).isdisjoint(pooled)


def test_a_read_whose_connection_dies_before_its_statement_is_retried_once_on_a_fresh_connection(
    url: str, hooks: Hooks
) -> None:
    batch_id = _new_batch(hooks)
    seen = _kill_at_checkout(url, hooks)
    record = hooks.fallthrough_get_record(batch_id=batch_id, key="b")
    assert record is not None and record.key == "b"
    assert len(seen) == 2 and seen[0] != seen[1], "the read was not run again on a fresh connection"


@pytest.mark.parametrize("limit", [2, 101], ids=["autocommit", "in-a-transaction"])
def test_a_search_whose_connection_dies_before_its_statement_is_retried_once_on_a_fresh_connection(
    url: str, hooks: Hooks, limit: int
) -> None:
    """Searches run on the driver's connection, not SQLAlchemy's, and are retried the same way.

    A limit past ``hnsw_ef_search`` (100) runs the search in a transaction of its own.
    """
    documents = [Document("a", "труба", vector=[1.0, 0.0]), Document("b", "кран", vector=[0.0, 1.0])]
    hooks.fallthrough_upsert_documents(collection="c", documents=documents, version=1)
    seen = _kill_at_checkout(url, hooks)
    query = SearchQuery(vector=(1.0, 0.1), text=None, filter=None, limit=limit)
    assert [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)] == ["a", "b"]
    assert len(seen) == 2 and seen[0] != seen[1], "the search was not run again on a fresh connection"


def test_a_read_whose_retry_dies_too_is_unavailable_and_not_tried_a_third_time(url: str, hooks: Hooks) -> None:
    batch_id = _new_batch(hooks)
    seen = _kill_at_checkout(url, hooks, times=5)
    with pytest.raises(BackendUnavailable):
        hooks.fallthrough_progress(batch_id=batch_id)
    assert len(seen) == 2


def test_a_write_transaction_whose_connection_dies_before_commit_is_retried_and_applied_once(
    url: str, hooks: Hooks
) -> None:
    batch_id = _new_batch(hooks)
    seen = _kill_at_checkout(url, hooks)
    applied = hooks.fallthrough_update_records(
        updates=[RecordUpdate(batch_id, "a", Status.COMPLETED, result={"n": 1})], updated_at=at(5)
    )
    assert [(update.key, update.attempt) for update in applied] == [("a", 0)]
    assert len(seen) == 2
    record = hooks.fallthrough_get_record(batch_id=batch_id, key="a")
    assert record is not None and record.status is Status.COMPLETED and record.result == {"n": 1}
    assert hooks.fallthrough_progress(batch_id=batch_id).completed == 1


def test_a_claim_whose_connection_dies_after_checkout_is_not_run_again(url: str, hooks: Hooks) -> None:
    batch_id = _new_batch(hooks)
    seen = _kill_at_checkout(url, hooks)
    with pytest.raises(BackendUnavailable):
        hooks.fallthrough_claim_records(
            batch_id=batch_id, worker="w", limit=1, claimed_at=at(1), lease_until=at(1_000_000)
        )
    assert len(seen) == 1, "a claim that may have been applied was sent again"
    # The next call gets a fresh connection.
    assert hooks.fallthrough_progress(batch_id=batch_id).total == len(KEYS)


def test_a_write_whose_connection_dies_as_it_commits_is_not_run_again(url: str, hooks: Hooks) -> None:
    batch_id = _new_batch(hooks)
    seen: list[int] = []
    admin = direct(url)
    engine = _engine(hooks)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        seen.append(dbapi_connection.info.backend_pid)

    def on_commit(conn: Any) -> None:  # SQLAlchemy calls it just before it sends COMMIT
        if len(seen) == 1:
            _terminate(admin, [seen[0]])

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(engine, "commit", on_commit)
    update: Callable[[], Any] = lambda: hooks.fallthrough_update_records(  # noqa: E731
        updates=[RecordUpdate(batch_id, "c", Status.FAILED, error="boom")], updated_at=at(5)
    )
    with pytest.raises(BackendUnavailable):
        update()
    assert len(seen) == 1, "a write whose COMMIT may have been applied was run again"
    event.remove(engine, "commit", on_commit)
    record = hooks.fallthrough_get_record(batch_id=batch_id, key="c")
    assert record is not None and record.status is Status.PENDING  # it was not: the server died first
    admin.close()


def test_a_live_connection_is_still_rolled_back_when_it_goes_back_to_the_pool(url: str, hooks: Hooks) -> None:
    """The check-in reset skips only dead connections: work left open on a live one is undone, not carried over."""
    engine = hooks.plugin._database.engine()  # type: ignore[attr-defined]
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.execute("CREATE TABLE left_open (n int)")  # on the driver: a transaction SQLAlchemy never saw
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with engine.connect() as conn:
        again = conn.connection.driver_connection
        assert again is driver  # the same pooled connection, so the test sees what its check-in did
        assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with direct(url) as admin:
        assert admin.execute("SELECT to_regclass('left_open')").fetchone() == (None,)
