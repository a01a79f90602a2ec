"""Building, opening and failing: URL options, drivers, the schema race, pgvector detection, secrets."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough.errors import BackendUnavailable, InvalidInput, UnknownBackend
from fallthrough.registry import Registry
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document, RecordUpdate, SearchQuery
from fallthrough_postgresql.backend import PostgresBackend
from fallthrough_postgresql.connection import (
    UNIX_SEND_BUFFER,
    Database,
    _widen_unix_send_buffer,
    driver_connection,
)
from fallthrough_postgresql.schema import SCHEMA_VERSION
from tests.postgresql.conftest import Server, cluster_with_app_role
from tests.postgresql.helpers import (
    Hooks,
    SocketOnly,
    at,
    direct,
    interrupted_at_call,
    open_backend,
    opened_database,
)
from tests.postgresql.servers import LocalCluster, free_port

PASSWORD = "S3cret-pa55word"


# -- building: no I/O, clear errors for bad URLs ------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql+asyncpg", "postgresql+psycopg2", "postgresql+pg8000"])
def test_other_drivers_are_refused_when_the_backend_is_built(scheme: str) -> None:
    with pytest.raises(UnknownBackend, match="psycopg"):
        Registry().create(f"{scheme}://user:{PASSWORD}@localhost/db")


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("connect_timeout=soon", "connect_timeout"),
        ("connect_timeout=1", "connect_timeout"),
        ("connect_timeout=2.5", "connect_timeout"),
        ("statement_timeout=-1", "statement_timeout"),
        ("lock_timeout=nan", "lock_timeout"),
        ("pool_size=0", "pool_size"),
        ("pool_size=2.5", "pool_size"),
        ("max_overflow=-1", "max_overflow"),
        ("pool_timeout=inf", "pool_timeout"),
        ("hnsw_ef_search=5000", "hnsw_ef_search"),
        ("statment_timeout=5", "statment_timeout"),
        # libpq checks these only when it connects: every call would then fail, taken for an outage.
        ("sslmode=bogus", "sslmode"),
        ("gssencmode=nope", "gssencmode"),
        ("target_session_attrs=bogus", "target_session_attrs"),
        ("load_balance_hosts=bogus", "load_balance_hosts"),
        ("keepalives=abc", "keepalives"),
        ("keepalives_idle=banana", "keepalives_idle"),
        ("tcp_user_timeout=1_000", "tcp_user_timeout"),
        ("port=notaport", "port"),
        ("port=5432,70000", "port"),
        ("hostaddr=999.1.1.1", "hostaddr"),
        ("hostaddr=db.example.com", "hostaddr"),
        # Set by the plugin: a URL may give them only as the plugin needs them.
        ("client_encoding=LATIN1", "client_encoding"),
        ("replication=database", "replication"),
        # Given twice: which one was meant is not the plugin's to guess.
        ("timeout=1&timeout=5", r"\['timeout'\] more than once"),
        ("host=db1&host=db2", "host more than once: give several in one value, comma-separated"),
        ("port=5432&port=5433", "port more than once"),
    ],
)
def test_bad_options_are_refused_when_the_backend_is_built(query: str, option: str) -> None:
    with pytest.raises(InvalidInput, match=option) as raised:
        Registry().create(f"postgresql://user:{PASSWORD}@localhost/db?{query}")
    assert PASSWORD not in str(raised.value)


def test_good_values_of_the_checked_libpq_parameters_build() -> None:
    # As libpq takes them: any integer for keepalives, 127.1 for 127.0.0.1, spaces around a number.
    query = (
        "sslmode=verify-full&gssencmode=disable&target_session_attrs=read-write&load_balance_hosts=random"
        "&keepalives=2&keepalives_idle=30&tcp_user_timeout=-5&port=5432,, 5433 &hostaddr=127.0.0.1,::1,127.1"
        "&client_encoding=UTF8&replication=false"
    )
    assert Registry().create(f"postgresql://user:{PASSWORD}@localhost/db?{query}") is not None


def test_building_a_store_does_no_io_and_the_repr_masks_the_password() -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/db?connect_timeout=2&application_name=x"
    backend = Registry().create(url)
    assert "***" in repr(backend) and PASSWORD not in repr(backend)
    with fallthrough.connect(url) as store:
        assert PASSWORD not in repr(store)


# -- unreachable servers -------------------------------------------------------------


def test_a_closed_port_is_unavailable_at_once() -> None:
    hooks = Hooks(Registry().create(f"postgresql://app:{PASSWORD}@127.0.0.1:{free_port()}/db"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        hooks.fallthrough_open()
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(raised.value) and raised.value.__cause__ is None


def test_a_host_that_never_answers_is_unavailable_after_the_connect_timeout() -> None:
    # 10.255.255.1 is not routed: the connection attempt hangs until connect_timeout, or fails at once.
    hooks = Hooks(Registry().create(f"postgresql://app:{PASSWORD}@10.255.255.1:5432/db?connect_timeout=2"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        hooks.fallthrough_open()
    assert time.monotonic() - started < 2 + 3


# -- secrets -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_cluster(pgvector_server: Server) -> Iterator[LocalCluster]:
    """A server of its own that checks passwords, with a role ``app`` whose password is PASSWORD."""
    with cluster_with_app_role(PASSWORD) as cluster:
        yield cluster


def test_the_password_appears_in_no_message(password_cluster: LocalCluster) -> None:
    good = password_cluster.url("app", user="app", password=PASSWORD)
    hooks = open_backend(good)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=at(0))
    assert PASSWORD not in repr(hooks.plugin)
    messages: list[str] = []
    # A wrong password, the password of another user, and a query-string password.
    wrong = password_cluster.url("app", user="app", password=PASSWORD + "x")
    in_query = f"postgresql://app@127.0.0.1:{password_cluster.port}/app?password={PASSWORD}x"
    for url in (wrong, in_query):
        backend = Hooks(Registry().create(url))
        with pytest.raises(BackendUnavailable) as raised:
            backend.fallthrough_open()
        messages.append(str(raised.value))
        messages.append(repr(backend.plugin))
    # The server goes away under an open backend.
    password_cluster.stop("immediate")
    try:
        with pytest.raises(BackendUnavailable) as raised:
            hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1))
        messages.append(str(raised.value))
        with fallthrough.connect(good) as store:
            with pytest.raises(BackendUnavailable) as raised:
                store.progress(batch_id)
            messages.append(str(raised.value))
            messages.append(repr(store))
            messages.extend(str(health) for health in store.health())
    finally:
        password_cluster.start()
    assert all("password authentication failed" in message for message in messages[0:3:2])
    assert [message for message in messages if PASSWORD in message] == []
    hooks.fallthrough_close()


# -- the schema ---------------------------------------------------------------------


def _open_in_process(url: str, start: object, results: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    try:
        backend = open_backend(url)
        results.put(("ok", backend.fallthrough_capabilities()))  # type: ignore[attr-defined]
        backend.fallthrough_close()
    except BaseException as error:
        results.put(("error", repr(error)))  # type: ignore[attr-defined]


def test_processes_opening_an_empty_database_at_once_all_succeed(server: Server) -> None:
    context = multiprocessing.get_context("spawn")
    for _ in range(2):
        url = server.new_database()
        start = context.Barrier(4)
        results = context.Queue()
        processes = [context.Process(target=_open_in_process, args=(url, start, results)) for _ in range(4)]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        assert [outcome for outcome in outcomes if outcome[0] != "ok"] == []
        assert len({outcome[1] for outcome in outcomes}) == 1
        with direct(url) as conn:
            assert conn.execute("SELECT version FROM fallthrough_schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_threads_with_their_own_engines_opening_an_empty_database_at_once_all_succeed(server: Server) -> None:
    url = server.new_database()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            backend = open_backend(url)
            backend.fallthrough_create_batch(
                batch_id=uuid.uuid4(), keys=["a"], first_seq=1, metadata={}, created_at=at(0)
            )
            backend.fallthrough_close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_pgvector_is_declared_only_where_the_backend_may_create_it(pgvector_server: Server) -> None:
    superuser_url = pgvector_server.new_database()
    assert open_backend(superuser_url).fallthrough_capabilities().vector_search
    # A role that may not create the extension, in a database that does not have it yet.
    role = f"limited_{uuid.uuid4().hex[:8]}"
    limited_url = pgvector_server.new_database()
    database = make_url(limited_url).database
    with pgvector_server.admin() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    as_role = make_url(limited_url).set(username=role, password=None).render_as_string(hide_password=False)
    hooks = open_backend(as_role)
    capabilities = hooks.fallthrough_capabilities()
    assert (capabilities.records, capabilities.text_search, capabilities.vector_search) == (True, True, False)
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document("a", "Труба ПВХ", vector=[1.0, 0.0])], version=fresh_version()
    )
    assert hooks.fallthrough_get_documents(collection="c", ids=["a"])[0].vector == (1.0, 0.0)
    # Once a superuser has created it, the same role gets vector search.
    with pgvector_server.admin(database) as conn:
        conn.execute("CREATE EXTENSION vector")
    hooks = open_backend(as_role)
    assert hooks.fallthrough_capabilities().vector_search
    query = SearchQuery(vector=(1.0, 0.0), text=None, filter=None, limit=5)
    assert [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)] == ["a"]


def test_a_database_that_is_not_utf8_is_refused_with_a_clear_error(server: Server) -> None:
    name = f"ft_latin_{uuid.uuid4().hex[:8]}"
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
    server.created.append(name)
    url = make_url(server.admin_url).set(database=name).render_as_string(hide_password=False)
    with pytest.raises(fallthrough.errors.FallthroughError, match="UTF8"):
        open_backend(url)


def test_text_search_does_not_depend_on_the_database_locale(server: Server) -> None:
    """Tokens are the core's, stored as they are, so even LC_CTYPE=C (where lower() leaves Cyrillic alone) agrees."""
    name = f"ft_c_{uuid.uuid4().hex[:8]}"
    with server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
        assert conn.execute("SELECT lower('ЦЕМЕНТ' COLLATE \"C\")").fetchone() == ("ЦЕМЕНТ",)
    server.created.append(name)
    hooks = open_backend(make_url(server.admin_url).set(database=name).render_as_string(hide_password=False))
    hooks.fallthrough_upsert_documents(
        collection="c",
        documents=[Document("a", "ЦЕМЕНТ М-500, 2.5мм ПВХ/PVC"), Document("b", "цементный")],
        version=fresh_version(),
    )
    for text in ("цемент", "м 500", "5мм", "пвх pvc"):
        query = SearchQuery(vector=None, text=text, filter=None, limit=5)
        assert [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)] == ["a"], text


def test_a_lock_held_past_lock_timeout_makes_the_call_unavailable(database: str) -> None:
    hooks = open_backend(database + ("&" if "?" in database else "?") + "lock_timeout=0.5")
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=at(0))
    with direct(database) as conn, conn.transaction():
        conn.execute("SELECT FROM processing_results WHERE batch_id = %s FOR UPDATE", (batch_id,))
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="55P03"):
            hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1))
        assert time.monotonic() - started < 3
    assert hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1))


def test_libpq_parameters_in_the_url_reach_the_server(database: str, tmp_path: Path) -> None:
    url = database + ("&" if "?" in database else "?") + "application_name=fallthrough-test&statement_timeout=1.5"
    hooks = open_backend(url)
    hooks.fallthrough_ping()
    with direct(database) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fallthrough-test'"
        ).fetchone()
    assert rows == (1,)
    hooks.fallthrough_close()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # A 1 ms statement_timeout would cancel the SHOW itself: the rounding is shown on longer ones.
        ("statement_timeout=2.0004&lock_timeout=1e-9", ("2001ms", "1ms")),
        ("statement_timeout=16.1&lock_timeout=0", ("16100ms", "0")),
    ],
)
def test_a_timeout_is_rounded_up_to_whole_milliseconds_and_one_under_a_millisecond_is_not_none(
    database: str, query: str, expected: tuple[str, str]
) -> None:
    # The server reads 0 as no limit: the strictest bound asked for must not become none.
    opened = opened_database(database + ("&" if "?" in database else "?") + query, 0)
    try:
        shown = opened.reading(
            lambda conn: tuple(
                conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("statement_timeout", "lock_timeout")
            )
        )
    finally:
        opened.close()
    assert shown == expected


@pytest.fixture
def pool(database: str) -> Iterator[Database]:
    """A ``Database`` whose searches all go through the pool: no search lane."""
    opened = opened_database(database, 0)
    yield opened
    opened.close()


@pytest.fixture(params=[0, 2], ids=["through-the-pool", "in-the-lane"])
def searching(database: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A ``Database`` without a search lane, then one with the default lane (see test_postgresql_search_lane.py)."""
    opened = opened_database(database, request.param)
    yield opened
    opened.close()


def _fails(cursor: psycopg.Cursor[Any]) -> None:
    raise ZeroDivisionError


def test_a_steady_caller_keeps_reusing_one_warm_connection_after_a_burst(pool: Database) -> None:
    """The pool hands out the connection checked in last, not each idle one in turn."""
    with pool.read() as first, pool.read() as second, pool.read() as third:
        burst = {driver_connection(conn).info.backend_pid for conn in (first, second, third)}
    assert len(burst) == 3
    used = {pool.reading(lambda conn: driver_connection(conn).info.backend_pid) for _ in range(12)}
    assert len(used) == 1 and used <= burst


def test_a_query_on_the_drivers_connection_hands_it_back_to_the_pool_out_of_autocommit(pool: Database) -> None:
    """Searches run on psycopg's own connection (``Database.querying``); the pool lends it out again as it lent it."""
    engine = pool.engine()
    assert pool.querying(lambda cursor: cursor.connection.autocommit) is True
    in_transaction = pool.querying(
        lambda cursor: (cursor.connection.autocommit, cursor.connection.info.transaction_status), transaction=True
    )
    assert in_transaction == (False, psycopg.pq.TransactionStatus.INTRANS)

    with pytest.raises(ZeroDivisionError):
        pool.querying(_fails)
    lent = engine.raw_connection()
    try:
        driver = lent.driver_connection
        assert driver is not None and not driver.autocommit
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        lent.close()


def test_a_query_left_busy_on_the_drivers_connection_discards_that_connection(searching: Database) -> None:
    """A call that stopped between sending a statement and reading its answer leaves the connection unusable."""
    busy_pid: list[int] = []

    def stops_while_the_server_answers(cursor: psycopg.Cursor[Any]) -> None:
        busy_pid.append(cursor.connection.info.backend_pid)
        cursor.connection.pgconn.send_query(b"SELECT 1")
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):  # the call's own error, not one about the connection's state
        searching.querying(stops_while_the_server_answers)
    pid, answer = searching.querying(
        lambda cursor: (cursor.connection.info.backend_pid, cursor.execute("SELECT 2").fetchone())
    )
    assert answer == (2,) and pid != busy_pid[0]


def test_a_query_keeps_its_connections_cursor_but_not_the_rows_it_read(searching: Database) -> None:
    """The kept cursor saves building one per search; it frees its last result; a failed call drops it."""

    def reads_large_rows(cursor: psycopg.Cursor[Any]) -> psycopg.Cursor[Any]:
        rows = cursor.execute("SELECT repeat('x', 1000000) FROM generate_series(1, 3)").fetchall()
        assert [len(row[0]) for row in rows] == [1_000_000] * 3
        return cursor

    first = searching.querying(reads_large_rows)
    assert first.pgresult is not None and first.pgresult.ntuples == 0  # libpq's copy of the rows is freed
    assert searching.querying(reads_large_rows) is first and not first.closed

    with pytest.raises(ZeroDivisionError):
        searching.querying(_fails)
    assert searching.querying(reads_large_rows) is not first


def test_a_query_whose_transaction_psycopg_rolled_back_has_a_clear_error_and_leaves_the_connection_idle(
    searching: Database,
) -> None:
    """``psycopg.Rollback`` ends the block without an exception: the call must not return as if it had an answer."""

    def rolls_back(cursor: psycopg.Cursor[Any]) -> int:
        cursor.execute("SELECT 1")
        raise psycopg.Rollback

    with pytest.raises(psycopg.ProgrammingError, match="rolled back"):
        searching.querying(rolls_back, transaction=True)
    status = searching.querying(lambda cursor: cursor.connection.info.transaction_status)
    assert status == psycopg.pq.TransactionStatus.IDLE


def _scratch_table(pool: Database) -> str:
    table = f"scratch_{uuid.uuid4().hex[:8]}"
    pool.writing(lambda conn: driver_connection(conn).execute(f"CREATE TABLE {table} (n int)"))
    return table


def _rolled_back_insert_leaves(pool: Database, table: str) -> int:
    """Rows left by a write transaction that inserts one and then fails: 0 when it ran in a transaction."""

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), pool.write() as conn:
        driver_connection(conn).execute(f"INSERT INTO {table} VALUES (1)")
        raise Rollback
    counted = pool.reading(lambda conn: driver_connection(conn).execute(f"SELECT count(*) FROM {table}").fetchone())
    assert counted is not None
    return int(counted[0])


def test_a_connection_handed_back_in_autocommit_is_never_lent_to_a_write(pool: Database) -> None:
    """Whatever left it so (a call an interrupt stopped as it switched), a write gets a transaction."""
    engine = pool.engine()
    table = _scratch_table(pool)
    lent = engine.raw_connection()
    assert lent.driver_connection is not None
    lent.driver_connection.autocommit = True
    lent.close()
    assert _rolled_back_insert_leaves(pool, table) == 0


@pytest.mark.parametrize(
    ("function", "nth_call"),
    # As the hand-back starts; and inside it, as psycopg switches autocommit off (its second switch of the call).
    [("_leave_autocommit", 1), ("set_autocommit", 2)],
)
def test_a_search_interrupted_as_it_hands_its_connection_back_leaves_no_autocommit_behind(
    database: str, function: str, nth_call: int
) -> None:
    """Ctrl-C as a search gives its connection back to the pool, delivered as SIGINT is: between two bytecodes."""
    hooks = open_backend(
        make_url(database).update_query_dict({"search_connections": "0"}).render_as_string(hide_password=False)
    )
    try:
        pool: Database = hooks.plugin._database  # type: ignore[attr-defined]
        table = _scratch_table(pool)
        hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "труба")], version=1)
        query = SearchQuery(vector=None, text="труба", filter=None, limit=5)
        with interrupted_at_call(function, nth_call) as calls, pytest.raises(KeyboardInterrupt):
            hooks.fallthrough_search(collection="c", query=query)
        assert calls == [nth_call]
        assert _rolled_back_insert_leaves(pool, table) == 0
        assert [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)] == ["a"]
    finally:
        hooks.fallthrough_close()


def _send_buffer(url: str) -> tuple[socket.AddressFamily, int]:
    """The family of the socket of a pooled connection of the plugin's, and its send buffer's size."""
    database = Database(make_url(url))
    try:
        database.engine()  # opening: the backend builds it at its first call
        descriptor = database.reading(lambda conn: driver_connection(conn).pgconn.socket)
        with socket.socket(fileno=os.dup(descriptor)) as sock:
            return sock.family, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        database.close()


def _kernel_send_buffer_ceiling() -> int:
    """``net.core.wmem_max``: Linux grants twice what is asked of SO_SNDBUF, up to twice this."""
    ceiling = Path("/proc/sys/net/core/wmem_max")
    if not ceiling.exists():
        pytest.skip("the send buffer's ceiling is read from Linux's /proc")
    return int(ceiling.read_text())


def test_a_connection_over_a_unix_socket_gets_a_send_buffer_that_holds_a_chunks_copy(
    pgvector_database: str,
) -> None:
    family, size = _send_buffer(pgvector_database)
    assert family == socket.AF_UNIX, "pgserver listens on a Unix socket only"
    assert size == 2 * min(UNIX_SEND_BUFFER, _kernel_send_buffer_ceiling())


def test_a_tcp_socket_keeps_the_kernels_own_send_buffer() -> None:
    """Setting SO_SNDBUF would switch TCP's autotuning off: only a Unix socket is widened."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()) as tcp,
        listener.accept()[0],
    ):
        # Small, so that a widening would show (loopback TCP may start above UNIX_SEND_BUFFER).
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        before = tcp.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        _widen_unix_send_buffer(cast(Any, SocketOnly(tcp)))
        assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before
    unix, peer = socket.socketpair()
    with unix, peer:
        _widen_unix_send_buffer(cast(Any, SocketOnly(unix)))
        assert unix.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * min(
            UNIX_SEND_BUFFER, _kernel_send_buffer_ceiling()
        )


def test_an_existing_processing_results_table_of_another_shape_is_refused_clearly(server: Server) -> None:
    url = server.new_database()
    with direct(url) as conn:
        conn.execute("CREATE TABLE processing_results (id serial PRIMARY KEY, payload text)")
    with pytest.raises(fallthrough.errors.FallthroughError, match="processing_results already exists"):
        open_backend(url)


def test_sessions_read_committed_whatever_the_databases_default(server: Server) -> None:
    """Claims and the counts lock before they read; a stricter default would fail them with serialization errors."""
    url = server.new_database()
    database = make_url(url).database
    with server.admin() as conn:
        conn.execute(f"ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'")
    with direct(url) as conn:
        assert conn.execute("SHOW default_transaction_isolation").fetchone() == ("repeatable read",)
    backend = Registry().create(url)
    assert isinstance(backend, PostgresBackend)
    backend.fallthrough_open()
    try:
        isolation = backend._database.writing(lambda conn: conn.exec_driver_sql("SHOW transaction_isolation").scalar())
        assert isolation == "read committed"
    finally:
        backend.fallthrough_close()
