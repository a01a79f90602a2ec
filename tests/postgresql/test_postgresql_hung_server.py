"""A server that accepts connections and then stops answering (SIGSTOP) never holds a call much past ``?timeout=``.

A stopped server keeps its connections open and its kernel acknowledges
everything, so only the client can end a call: these tests stop a server of
their own (the postmaster and every child process) and measure. The bounds
are generous correctness bounds (``timeout * 3 + 2``), not benchmarks.
Every test resumes the server in a ``finally``.
"""

from __future__ import annotations

import linecache
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from sqlalchemy import event

import fallthrough
from fallthrough.errors import BackendBusy, BackendUnavailable, InvalidInput
from fallthrough.registry import Registry
from fallthrough.types import Document, RecordUpdate, SearchQuery
from fallthrough_postgresql import watchdog as watchdog_module
from fallthrough_postgresql.connection import Database
from fallthrough_postgresql.watchdog import Address, Watchdog, server_address
from tests.postgresql.helpers import Hooks, SocketOnly, at, direct, open_backend
from tests.postgresql.servers import LocalCluster

TIMEOUT = 2
SLACK = 2.5
"""Seconds past a timeout a call may take to end on a loaded machine; the faults these tests catch took 2-3 timeouts."""
BOUND = TIMEOUT * 3 + 2
THREADS = 4
SECRET = "hunter2-not-for-messages"


def server_processes(cluster: LocalCluster) -> list[int]:
    """The postmaster (from the data directory's postmaster.pid) and its children."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["ps", "--ppid", str(postmaster), "-o", "pid="], capture_output=True, text=True, check=True
    ).stdout.split()
    return [postmaster, *(int(pid) for pid in children)]


def wait_until(condition: Callable[[], bool], failure: str) -> None:
    """Poll ``condition`` for up to two timeouts (a verdict takes one at most); else fail with ``failure``."""
    deadline = time.monotonic() + TIMEOUT * 2
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


@contextmanager
def stopped(cluster: LocalCluster) -> Iterator[None]:
    """The whole server stopped with SIGSTOP for the block, and always resumed after it."""
    processes = server_processes(cluster)
    try:
        for pid in processes:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)


def in_threads(call: Callable[[int], Any], count: int = THREADS) -> list[tuple[float, Any]]:
    """Run ``call(index)`` in ``count`` threads at once: each one's (seconds taken, result or exception)."""
    outcomes: list[tuple[float, Any]] = [(0.0, None)] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        began = time.monotonic()
        try:
            outcome: Any = call(index)
        except BaseException as error:
            outcome = error
        outcomes[index] = (time.monotonic() - began, outcome)

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND + 10)
    assert not any(thread.is_alive() for thread in threads), "a call is still blocked on the stopped server"
    return outcomes


def test_calls_through_a_store_fall_through_within_the_timeout_while_the_first_server_is_stopped(
    throwaway_cluster: LocalCluster,
) -> None:
    url = throwaway_cluster.url() + f"?timeout={TIMEOUT}"
    with fallthrough.connect(url, "sqlite://") as store:
        batch = store.create_batch([f"k{index}" for index in range(THREADS)])
        # Connections in the pool, so that the calls below run on open connections to the stopped server.
        in_threads(lambda index: [store.get_record(batch.id, f"k{index}") for _ in range(20)])
        with stopped(throwaway_cluster):
            outcomes = in_threads(lambda index: store.update(batch.id, f"k{index}", "completed", result={"n": index}))
            reads = in_threads(lambda index: store.get_record(batch.id, f"k{index}"))
        for seconds, outcome in outcomes + reads:
            assert seconds < BOUND
            assert not isinstance(outcome, BaseException), outcome
        assert [record.status for _, record in reads] == ["completed"] * THREADS
        postgresql = store.health()[0]
        assert postgresql.last_error is not None and "unavailable" in postgresql.last_error
        assert postgresql.pending_hints >= 1 and not postgresql.serves_reads
        # Resumed: the backend catches up on what it missed while it was stopped.
        assert store.drain(timeout=BOUND * 2)
    with fallthrough.connect(url) as alone:
        assert [alone.get_record(batch.id, f"k{index}").status for index in range(THREADS)] == (  # type: ignore[union-attr]
            ["completed"] * THREADS
        )


def test_the_backend_raises_unavailable_on_a_stopped_server_discards_those_connections_and_works_after(
    throwaway_cluster: LocalCluster,
) -> None:
    # sslpassword is a secret libpq parameter: it must not appear in any message.
    url = throwaway_cluster.url() + f"?timeout={TIMEOUT}&sslpassword={SECRET}&application_name=ft-hang"
    plugin = Registry().create(url)
    hooks = Hooks(plugin)
    hooks.fallthrough_open()
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=at(0))
    in_threads(lambda index: [hooks.fallthrough_get_record(batch_id=batch_id, key="a") for _ in range(20)])

    returned_broken: list[bool] = []
    engine = plugin._database.engine()  # the pool, to watch what is checked back in

    @event.listens_for(engine.pool, "checkin")
    def checkin(dbapi_connection: Any, record: Any) -> None:
        returned_broken.append(dbapi_connection is not None and dbapi_connection.closed)

    calls: list[Callable[[], object]] = [
        lambda: hooks.fallthrough_get_record(batch_id=batch_id, key="a"),
        lambda: hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1)),
        lambda: hooks.fallthrough_progress(batch_id=batch_id),
        lambda: hooks.fallthrough_ping(),
    ]
    with stopped(throwaway_cluster):
        outcomes = in_threads(lambda index: calls[index]())
    for seconds, outcome in outcomes:
        assert seconds < BOUND
        assert isinstance(outcome, BackendUnavailable) and not isinstance(outcome, BackendBusy), outcome
        assert "timed out" in str(outcome) or "connection" in str(outcome)
        assert SECRET not in str(outcome)
    assert any("timed out" in str(outcome) for _, outcome in outcomes)
    assert True not in returned_broken

    # Resumed: the same backend answers again, on new connections.
    applied = hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(2))
    assert len(applied) == 1
    assert hooks.fallthrough_progress(batch_id=batch_id).completed == 1
    hooks.fallthrough_close()


def test_searches_on_a_stopped_server_end_within_the_timeout_and_their_lane_connections_are_not_used_again(
    throwaway_cluster: LocalCluster,
) -> None:
    """Three searches at once: two on the search lane's connections, one through the pool; all cut, all replaced."""
    hooks = open_backend(throwaway_cluster.url() + f"?timeout={TIMEOUT}&search_connections=2")
    try:
        hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "труба")], version=1)
        query = SearchQuery(vector=None, text="труба", filter=None, limit=5)
        database: Database = hooks.plugin._database  # type: ignore[attr-defined]
        together = threading.Barrier(3)

        def pid_held_with_two_others(cursor: Any) -> int:
            together.wait(timeout=10)
            return int(cursor.connection.info.backend_pid)

        before = {pid for _, pid in in_threads(lambda index: database.querying(pid_held_with_two_others), count=3)}
        with stopped(throwaway_cluster):
            outcomes = in_threads(lambda index: hooks.fallthrough_search(collection="c", query=query), count=3)
        for seconds, outcome in outcomes:
            assert seconds < BOUND
            assert isinstance(outcome, BackendUnavailable), outcome
        assert any("timed out" in str(outcome) for _, outcome in outcomes)

        # Resumed: searches answer again, none on a connection the watchdog cut.
        assert [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)] == ["a"]
        after = {pid for _, pid in in_threads(lambda index: database.querying(pid_held_with_two_others), count=3)}
        assert len(before) == len(after) == 3 and before.isdisjoint(after)
    finally:
        hooks.fallthrough_close()


def test_a_call_that_needs_a_new_connection_to_a_stopped_server_falls_through_within_connect_timeout(
    throwaway_cluster: LocalCluster,
) -> None:
    connect_timeout = 2
    url = throwaway_cluster.url() + f"?timeout=20&connect_timeout={connect_timeout}"
    with stopped(throwaway_cluster), fallthrough.connect(url, "sqlite://") as store:
        began = time.monotonic()
        batch = store.create_batch(["a"])  # opening the backend needs the first connection
        assert time.monotonic() - began < connect_timeout + SLACK
        assert store.get_batch(batch.id) is not None


def test_a_call_waiting_longer_than_the_timeout_on_a_live_server_is_not_cut(throwaway_cluster: LocalCluster) -> None:
    url = throwaway_cluster.url() + "?timeout=1"
    hooks = Hooks(Registry().create(url))
    hooks.fallthrough_open()
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=at(0))
    with direct(throwaway_cluster.url()) as holder:
        # Another session holds the record's row lock for 2.5 s: the server is alive and answers probes.
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM processing_results WHERE batch_id = %s FOR UPDATE", [batch_id])
        release = threading.Timer(2.5, holder.execute, ["COMMIT"])
        release.start()
        began = time.monotonic()
        applied = hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1))
        waited = time.monotonic() - began
        release.join()
    assert len(applied) == 1
    assert waited >= 2
    hooks.fallthrough_close()


def test_concurrent_first_calls_to_a_stopped_server_each_fall_through_within_connect_timeout(
    throwaway_cluster: LocalCluster,
) -> None:
    url = throwaway_cluster.url() + f"?timeout={TIMEOUT}"
    with stopped(throwaway_cluster), fallthrough.connect(url, "sqlite://") as store:
        outcomes = in_threads(lambda index: store.create_batch([f"k{index}"]))
    for seconds, outcome in outcomes:
        assert not isinstance(outcome, BaseException), outcome
        assert seconds < TIMEOUT + SLACK


def test_connections_the_watchdog_cut_are_discarded_without_an_error_in_the_log(
    throwaway_cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A cut connection went back to the pool, whose rollback on the dead socket logged an ERROR with a traceback."""
    url = throwaway_cluster.url() + f"?timeout={TIMEOUT}"
    with fallthrough.connect(url, "sqlite://") as store:
        batch = store.create_batch(["k"])
        in_threads(lambda index: [store.get_record(batch.id, "k") for _ in range(20)])
        with caplog.at_level(logging.ERROR), stopped(throwaway_cluster):
            outcomes = in_threads(lambda index: store.get_record(batch.id, "k"))
        assert all(not isinstance(outcome, BaseException) for _, outcome in outcomes)
        assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_callers_queued_for_a_pooled_connection_end_within_the_timeout_too(throwaway_cluster: LocalCluster) -> None:
    """Twice as many callers as connections: those waiting in the pool's queue must not then connect to the hung server.

    Before, a queued caller waited for a slot until the first callers were cut,
    then for a new connection's ``connect_timeout`` on the same stopped server:
    up to three times the timeout with 32 callers on the default pool.
    """
    url = throwaway_cluster.url() + f"?timeout={TIMEOUT}&pool_size=2&max_overflow=1&pool_timeout=30"
    with fallthrough.connect(url, "sqlite://") as store:
        batch = store.create_batch([f"k{index}" for index in range(THREADS * 2)])
        in_threads(lambda index: [store.get_record(batch.id, "k0") for _ in range(20)], count=3)
        with stopped(throwaway_cluster):
            outcomes = in_threads(lambda index: store.get_record(batch.id, f"k{index}"), count=THREADS * 2)
        for seconds, outcome in outcomes:
            assert not isinstance(outcome, BaseException), outcome
            assert seconds < TIMEOUT + SLACK


@pytest.mark.parametrize("into_the_check", [0.0, 0.2], ids=["at-its-check", "while-the-probe-is-out"])
def test_a_call_past_its_first_check_connects_only_after_the_watchdog_judged_the_server(
    throwaway_cluster: LocalCluster, into_the_check: float
) -> None:
    """The race behind the test above: a slot freed while the probe of a stopped server was still out.

    Another caller's connect to the stopped server gives up after
    ``connect_timeout``, about when the probe does; a queued call that took
    that slot before its watch fired connected anew, and nothing cuts a
    connect: its call ended a whole ``connect_timeout`` late.
    """
    watchdog = Watchdog(TIMEOUT)
    with direct(throwaway_cluster.url()) as conn:
        address = server_address(conn)
        assert address is not None
        with stopped(throwaway_cluster), watchdog.watch() as watch:
            watchdog.attach(conn, address)
            time.sleep(max(0.0, watch.check_at - time.monotonic()) + into_the_check)
            assert not watch.fired
            assert watchdog.may_connect() is False
    assert watch.fired
    watchdog.stop()


def test_a_call_whose_server_was_last_found_hung_is_judged_before_it_connects(throwaway_cluster: LocalCluster) -> None:
    """A queued call that began after the others' check: not due itself when the cut connections free their slots."""
    watchdog = Watchdog(TIMEOUT)
    with direct(throwaway_cluster.url()) as conn:
        with stopped(throwaway_cluster):
            with watchdog.watch() as first:
                watchdog.attach(conn, server_address(conn))
                wait_until(lambda: first.fired, "the watchdog never found the stopped server hung")
            with watchdog.watch() as later:
                assert later.check_at > time.monotonic()  # not due by itself for another half timeout
                assert watchdog.may_connect() is False
            assert later.fired
        # Resumed: the next call is judged again, and a live server lets it connect at once.
        with watchdog.watch() as resumed:
            began = time.monotonic()
            assert watchdog.may_connect() is True
            assert time.monotonic() - began < TIMEOUT / 2
            assert not resumed.fired
    watchdog.stop()


def a_closed_port() -> Address:
    """A local TCP address nothing listens on: a probe of it is refused at once, as one of a server gone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Address(socket.AF_INET, ("127.0.0.1", port))


def test_a_server_found_hung_at_an_address_it_left_does_not_refuse_calls_for_ever(
    throwaway_cluster: LocalCluster,
) -> None:
    """The server moved (a DNS failover): calls with no connection yet were probed at its old address, and refused.

    Only a probe that found the server alive cleared the verdict, and no
    call could connect to find where the server now is: every call was
    refused at once, for as long as the process ran.
    """
    watchdog = Watchdog(TIMEOUT)
    old_address = a_closed_port()
    with direct(throwaway_cluster.url()) as conn:
        with watchdog.watch() as connected:
            watchdog.attach(conn, old_address)  # the address the call connected to, gone since
            wait_until(lambda: connected.fired, "the watchdog never judged the old address")
        judged = time.monotonic()
        time.sleep(TIMEOUT / 2)
        with watchdog.watch():
            assert watchdog.may_connect() is False  # within a timeout of the verdict: a queued call's case
        # A timeout after the verdict, though not after that call's probe of the old address:
        # a probe for a call with no connection of its own does not renew the verdict.
        time.sleep(max(0.0, judged + TIMEOUT + 0.1 - time.monotonic()))
        for _ in range(2):
            with watchdog.watch() as later:
                assert watchdog.may_connect() is True
                assert not later.fired
    watchdog.stop()


def test_a_watchdog_thread_that_dies_ends_the_wait_of_a_call_waiting_for_its_verdict(
    throwaway_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No verdict will come: the call connects (bounded by connect_timeout) rather than wait out a whole timeout."""

    def broken(address: Any, budget: float) -> bool:
        raise RuntimeError("a bug in judging")

    deaths: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(watchdog_module, "probe", broken)
    monkeypatch.setattr(threading, "excepthook", deaths.append)
    watchdog = Watchdog(TIMEOUT)
    with direct(throwaway_cluster.url()) as conn, watchdog.watch() as watch:
        watchdog.attach(conn, server_address(conn))
        time.sleep(max(0.0, watch.check_at - time.monotonic()))  # due: may_connect waits for the verdict
        began = time.monotonic()
        assert watchdog.may_connect() is True
        assert time.monotonic() - began < TIMEOUT / 2
    assert deaths and isinstance(deaths[0].exc_value, RuntimeError)
    watchdog.stop()


def test_a_watchdog_thread_that_died_is_replaced_by_the_next_call(
    throwaway_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug that kills the thread once must not leave every later call to a hung server unwatched."""
    real_probe = watchdog_module.probe
    probes: list[int] = []

    def failing_once(address: Any, budget: float) -> bool:
        probes.append(1)
        if len(probes) == 1:
            raise RuntimeError("a bug in judging")
        return real_probe(address, budget)

    deaths: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(watchdog_module, "probe", failing_once)
    monkeypatch.setattr(threading, "excepthook", deaths.append)
    watchdog = Watchdog(TIMEOUT)
    with direct(throwaway_cluster.url()) as conn, stopped(throwaway_cluster):
        with watchdog.watch() as first:
            watchdog.attach(conn, server_address(conn))
            wait_until(lambda: bool(deaths), "the first probe never ran")
        assert not first.fired and isinstance(deaths[0].exc_value, RuntimeError)
        with watchdog.watch() as later:
            watchdog.attach(conn, server_address(conn))
            wait_until(lambda: later.fired, "no thread watched the call after the first one died")
    watchdog.stop()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "3601"])
def test_a_bad_timeout_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="timeout"):
        Registry().create(f"postgresql://user@localhost/db?timeout={value}")


def test_a_call_interrupted_as_it_leaves_its_watch_is_watched_no_more() -> None:
    """Ctrl-C inside ``leave``, delivered as SIGINT is (between two bytecodes), after it took the watch off the queue.

    Left queued, the watch would be probed for ever, and fired once a probe
    failed: its socket (by then another call's, lent by the pool) shut down.
    """
    watchdog = Watchdog(TIMEOUT)
    mine, peer = socket.socketpair()
    with mine, peer:
        watch = watchdog.enter()
        watchdog.attach(cast(Any, SocketOnly(mine)), a_closed_port())  # a probe of it fails at once

        def interrupt(frame: Any, event: str, arg: Any) -> Any:
            if frame.f_code.co_name != "leave":
                return interrupt
            if event == "line" and "_local.watch" in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
                sys.settrace(None)
                raise KeyboardInterrupt
            return interrupt

        sys.settrace(interrupt)
        try:
            with pytest.raises(KeyboardInterrupt):
                watchdog.leave(watch)
        finally:
            sys.settrace(None)
        assert watch.done
        time.sleep(TIMEOUT * 1.5)  # past the check a queued watch would have had
        assert not watch.fired
    watchdog.stop()
