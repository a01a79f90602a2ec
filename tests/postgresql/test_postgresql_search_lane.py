"""The search lane: searches on a few connections kept in autocommit, beside the pool (``search_connections``).

What a user relies on: a steady searcher never goes through the pool,
searches past the lane's size still run (through the pool), the lane never
holds more connections than it says, and a lane connection that died, or
that a call left in an unknown state, is never used again. The connections
die as production ends them: ``pg_terminate_backend`` from another session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from fallthrough.errors import BackendUnavailable
from fallthrough_postgresql.connection import Database
from tests.postgresql.helpers import direct, interrupted_at_call, opened_database


@pytest.fixture
def lane(database: str) -> Iterator[Database]:
    """A ``Database`` whose lane holds two connections, the default."""
    opened = opened_database(database, 2)
    yield opened
    opened.close()


def _checkouts(pool: Database) -> list[int]:
    """The backend pids of the pool's checkouts from now on: a list that grows with each."""
    seen: list[int] = []

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        seen.append(dbapi_connection.info.backend_pid)

    event.listen(pool.engine().pool, "checkout", on_checkout)
    return seen


def _pid(cursor: psycopg.Cursor[Any]) -> int:
    return cursor.connection.info.backend_pid


def _sessions(database: str) -> set[int]:
    name = make_url(database).database
    with direct(database) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
        ).fetchall()
    return {pid for (pid,) in rows}


def _until_gone(database: str, pids: set[int]) -> set[int]:
    """Those of ``pids`` still open after up to 10 s: a closed session leaves pg_stat_activity a moment later."""
    deadline = time.monotonic() + 10
    while (left := _sessions(database) & pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def _terminate(database: str, pid: int) -> None:
    with direct(database) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the terminated server process did not exit"
            time.sleep(0.01)


def test_a_steady_searcher_reuses_one_lane_connection_in_autocommit_and_never_checks_out_of_the_pool(
    lane: Database,
) -> None:
    checkouts = _checkouts(lane)
    first = lane.querying(_pid)
    assert len(checkouts) == 1  # the lane's connection was made by the pool, then detached from it
    answers = [lane.querying(lambda cursor: (_pid(cursor), cursor.connection.autocommit)) for _ in range(20)]
    assert set(answers) == {(first, True)}
    assert len(checkouts) == 1
    pooled = lane.engine().raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None and driver.info.backend_pid != first and not driver.autocommit
    finally:
        pooled.close()


def test_a_search_in_a_transaction_runs_in_one_and_leaves_the_lane_connection_idle(lane: Database) -> None:
    """A limit past ``hnsw_ef_search`` needs ``SET LOCAL``: BEGIN and COMMIT on the connection in autocommit."""
    status = lane.querying(lambda cursor: (_pid(cursor), cursor.connection.info.transaction_status), transaction=True)
    assert status[1] == psycopg.pq.TransactionStatus.INTRANS
    after = lane.querying(lambda cursor: (_pid(cursor), cursor.connection.info.transaction_status))
    assert after == (status[0], psycopg.pq.TransactionStatus.IDLE)


def test_searches_past_the_lanes_size_go_through_the_pool_and_the_lane_holds_no_more(database: str) -> None:
    pool = opened_database(database, 2)
    try:
        engine = pool.engine()
        searching = 4
        together = threading.Barrier(searching)
        lent_by_the_pool: list[int] = []
        pids: list[int] = []
        errors: list[BaseException] = []

        def search(cursor: psycopg.Cursor[Any]) -> None:
            pids.append(_pid(cursor))
            together.wait(timeout=10)  # all four hold their connections at once
            lent_by_the_pool.append(engine.pool.checkedout())  # type: ignore[attr-defined]
            together.wait(timeout=10)

        def run() -> None:
            try:
                pool.querying(search)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=run) for _ in range(searching)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert len(set(pids)) == searching
        assert lent_by_the_pool == [searching - 2] * searching
        # Afterwards a steady searcher stays on the lane's two: one of them, checked out of the pool no more.
        checkouts = _checkouts(pool)
        assert {pool.querying(_pid) for _ in range(10)} < set(pids)
        assert checkouts == []
    finally:
        pool.close()


def test_with_no_lane_every_search_goes_through_the_pool(database: str) -> None:
    pool = opened_database(database, 0)
    try:
        checkouts = _checkouts(pool)
        assert all(pool.querying(lambda cursor: cursor.connection.autocommit) for _ in range(5))
        assert len(checkouts) == 5
    finally:
        pool.close()


def test_a_lane_connection_the_server_ended_while_idle_is_replaced_before_a_search_uses_it(
    database: str, lane: Database
) -> None:
    first = lane.querying(_pid)
    _terminate(database, first)
    runs: list[int] = []

    def reads(cursor: psycopg.Cursor[Any]) -> int:
        runs.append(_pid(cursor))
        row = cursor.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])

    second = lane.querying(reads)
    assert second != first
    assert runs == [second]  # run once: the poll saw the dead connection, not a failed statement


def test_a_search_whose_lane_connection_dies_before_its_statement_is_run_once_more_on_a_fresh_one(
    database: str, lane: Database
) -> None:
    runs: list[int] = []

    def dies_first_time(cursor: psycopg.Cursor[Any]) -> int:
        pid = _pid(cursor)
        runs.append(pid)
        if len(runs) == 1:
            _terminate(database, pid)
        row = cursor.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        return int(row[0])

    lane.querying(_pid)  # the lane's connection, idle and polled sound when the search takes it
    answer = lane.querying(dies_first_time)
    assert len(runs) == 2 and runs[0] != runs[1] == answer


def test_a_search_that_raises_keeps_its_lane_connection_but_not_its_cursor(lane: Database) -> None:
    cursors = [lane.querying(lambda cursor: cursor) for _ in range(2)]
    assert cursors[0] is cursors[1]

    def fails(cursor: psycopg.Cursor[Any]) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        lane.querying(fails)
    after = lane.querying(lambda cursor: cursor)
    assert after is not cursors[0] and after.connection is cursors[0].connection


def test_a_lane_connection_left_in_a_transaction_is_not_used_again(lane: Database) -> None:
    """A call that leaves a transaction open must not hand that transaction to the next search."""
    first = lane.querying(lambda cursor: (cursor.execute("BEGIN"), _pid(cursor))[1])
    second = lane.querying(lambda cursor: (_pid(cursor), cursor.connection.info.transaction_status))
    assert second[0] != first and second[1] == psycopg.pq.TransactionStatus.IDLE


def test_closing_ends_the_lanes_sessions_and_a_connection_lent_during_close_is_closed_when_given_back(
    database: str,
) -> None:
    pool = opened_database(database, 2)
    idle = pool.querying(_pid)
    assert idle in _sessions(database)
    lent: list[psycopg.Connection[Any]] = []

    def closes_meanwhile(cursor: psycopg.Cursor[Any]) -> int:
        lent.append(cursor.connection)
        pool.close()
        return _pid(cursor)

    # Two at once: the idle one is taken; the other lane connection is new.
    during = pool.querying(lambda outer: (outer, pool.querying(closes_meanwhile))[1])
    assert lent[0].closed
    assert _until_gone(database, {idle, during}) == set()


def test_a_search_interrupted_as_it_takes_a_lane_connection_loses_no_place_in_the_lane(database: str) -> None:
    """Ctrl-C (delivered between two bytecodes) as the watch takes the connection: the lane makes another."""
    pool = opened_database(database, 1)
    try:
        first = pool.querying(_pid)
        with interrupted_at_call("attach") as calls, pytest.raises(KeyboardInterrupt):
            pool.querying(_pid)
        assert calls == [1]
        checkouts = _checkouts(pool)
        after = {pool.querying(_pid) for _ in range(5)}
        assert len(checkouts) == 1 and after == set(checkouts) and first not in after
    finally:
        pool.close()


def test_closing_closes_the_idle_lane_connections(database: str) -> None:
    pool = opened_database(database, 2)
    # Held here too, so that only close() can close them (dropped, the garbage collector would).
    idle = pool.querying(lambda outer: (outer.connection, pool.querying(lambda cursor: cursor.connection)))
    pids = {conn.info.backend_pid for conn in idle}
    assert len(pids) == 2 and pids <= _sessions(database)
    pool.close()
    assert all(conn.closed for conn in idle)
    assert _until_gone(database, pids) == set()


def test_a_client_side_refusal_on_a_busy_lane_connection_stays_the_error_it_is(lane: Database) -> None:
    """Judged with its connection still open: closed first, a refusal looked like a lost server and was retried."""
    runs: list[int] = []

    def sends_a_second_statement_while_the_first_runs(cursor: psycopg.Cursor[Any]) -> None:
        runs.append(_pid(cursor))
        cursor.connection.pgconn.send_query(b"SELECT 1")
        cursor.execute("SELECT 2")

    with pytest.raises(psycopg.OperationalError) as refused:
        lane.querying(sends_a_second_statement_while_the_first_runs)
    assert not isinstance(refused.value, BackendUnavailable)
    assert len(runs) == 1
    assert lane.querying(_pid) != runs[0]  # that connection was left busy: closed, not lent again
