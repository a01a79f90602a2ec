"""The engine: URL options, the connection pool, and transactions.

``postgresql://`` and ``postgresql+psycopg://`` both run on psycopg 3
through a SQLAlchemy 2 Core engine and its pool; searches run on a few
connections kept for them (:mod:`.lane`) where they can. Every call, its checkout
included, runs under a :class:`~.watchdog.Watchdog`, so a server that
accepts connections and then stops answering ends a call after ``timeout``
seconds instead of holding it for as long as it hangs.

Dead pooled connections are found without a round trip per call (a
pre-ping, ``SELECT 1`` before every statement, cost a kNN search or a claim
a third of its time):

* at checkout (and as a search takes an idle lane connection), one
  non-blocking ``poll`` of the idle connection's socket
  (:func:`_closed_by_server`): a server that ended the connection (it
  crashed, restarted, or ``pg_terminate_backend`` ended the session) has
  closed the socket or left a last error on it, so it reads as ready; that
  connection is replaced before anything is sent on it;
* should a connection die after that (between the poll and the statement,
  or one whose host vanished without a word), the call's statement fails,
  and :meth:`Database.reading` and :meth:`Database.writing` run the call
  once more on a fresh connection, where that is safe: a read, or a write
  transaction whose ``COMMIT`` was never sent (the server rolls back the
  transaction of a session it lost, so nothing of it was applied). A
  single-statement write in autocommit (a claim) may have been applied when
  its connection died, and is never retried; nor is a call the watchdog
  cut, or one that could not connect at all: the server is down or hung,
  and the router falls through instead.

The URL's query string takes this plugin's options (see
:data:`OPTION_DEFAULTS`) and any libpq connection parameter (``sslmode``,
``application_name``, ``host`` for a socket directory, ...); anything else
is refused when the backend is built, so a misspelt option fails loudly
instead of being ignored.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import attrs
import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState

from fallthrough.errors import BackendUnavailable, InvalidInput, UnknownBackend
from fallthrough.kit import Endpoint, UrlOptions

from . import vectors
from .errors import translate_errors, unavailability
from .lane import LaneConnection, SearchLane
from .watchdog import Watch, Watchdog, server_address

T = TypeVar("T")

DRIVERS = ("postgresql", "postgresql+psycopg")
"""The URL schemes this plugin serves: psycopg 3 is the only driver."""

OPTION_DEFAULTS: Mapping[str, float] = {
    "timeout": 5,
    "connect_timeout": 5,
    "statement_timeout": 60,
    "lock_timeout": 0,
    "pool_size": 5,
    "max_overflow": 10,
    "pool_timeout": 10,
    "search_connections": 2,
    "hnsw_ef_search": 100,
}
"""Each option of the URL's query string and its default.

* ``timeout``: seconds a call may wait for a server that does not answer
  (hung, stopped, or its host gone) before it raises BackendUnavailable and
  its connection is closed; see :mod:`.watchdog`. A call to a live server
  may take longer (a long statement is bounded by ``statement_timeout``).
  It also sets libpq's ``tcp_user_timeout`` and keepalives, unless the URL
  gives those itself, and bounds how long an add waits for its batch's turn
  (:class:`~.records.BatchTurns`) before it writes without it.
* ``connect_timeout``: seconds to wait for a connection, at least 2 (libpq
  rounds lower values up to 2). A dead host fails a call after this long.
  When not given: ``timeout`` rounded up to whole seconds, at least 2.
* ``statement_timeout``: seconds one SQL statement may run before the
  server cancels it; 0 means no limit.
* ``lock_timeout``: seconds one statement may wait for a lock; 0 means no
  limit (then ``statement_timeout`` still applies).
* ``pool_size``, ``max_overflow``: connections kept open, and extra ones
  opened under load (SQLAlchemy's ``QueuePool``).
* ``pool_timeout``: seconds a call waits for a free pooled connection.
* ``search_connections``: connections kept in autocommit for searches
  only, on top of the pool's (:mod:`.lane`): a search on one costs about
  0.1 ms less than through the pool. Searches beyond this many at once go
  through the pool; 0 sends every search through it.
* ``hnsw_ef_search``: the HNSW candidate list size of vector queries
  (pgvector's ``hnsw.ef_search``, whose own default is 40); larger is more
  exact and slower.
"""

_INTEGER_OPTIONS = frozenset({"pool_size", "max_overflow", "search_connections", "hnsw_ef_search", "connect_timeout"})
_LIMITS: Mapping[str, tuple[float, float]] = {
    "timeout": (1, 3600),
    "connect_timeout": (2, 3600),
    "statement_timeout": (0, 86_400),
    "lock_timeout": (0, 86_400),
    "pool_size": (1, 1000),
    "max_overflow": (0, 1000),
    "pool_timeout": (0, 3600),
    "search_connections": (0, 1000),
    "hnsw_ef_search": (1, 1000),
}


@attrs.frozen
class Options:
    """The plugin options of one URL, validated."""

    timeout: float
    connect_timeout: int
    statement_timeout: float
    lock_timeout: float
    pool_size: int
    max_overflow: int
    pool_timeout: float
    search_connections: int
    hnsw_ef_search: int


def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults())


def _libpq_secret_keywords() -> frozenset[str]:
    """libpq parameters whose values are secrets: those libpq itself hides ("*"), and the SCRAM keys."""
    return frozenset(
        keyword
        for keyword, dispchar in (
            (option.keyword.decode(), option.dispchar) for option in psycopg.pq.Conninfo.get_defaults()
        )
        if dispchar == b"*" or "secret" in keyword or keyword.startswith("scram_")
    )


SECRET_URL_KEYS = _libpq_secret_keywords()
"""The libpq parameters a URL may carry whose values are secrets (``sslpassword``, ...).

The backend declares them (``fallthrough_secret_url_keys``), so the core
masks them as it masks the password.
"""


_LIBPQ_FIXED: Mapping[str, tuple[frozenset[str], str]] = {
    "client_encoding": (
        frozenset({"utf8", "utf-8", "unicode"}),
        "the plugin always speaks UTF8 with the server, which every text it writes needs",
    ),
    "replication": (
        frozenset({"false", "off", "no", "0"}),
        "a replication connection cannot run the plugin's SQL",
    ),
}
"""libpq parameters a URL may give only with the value the plugin needs (case-insensitive), and why."""

_LIBPQ_CHOICES: Mapping[str, frozenset[str]] = {
    "sslmode": frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}),
    "gssencmode": frozenset({"disable", "prefer", "require"}),
    "channel_binding": frozenset({"disable", "prefer", "require"}),
    "sslcertmode": frozenset({"disable", "allow", "require"}),
    "sslnegotiation": frozenset({"postgres", "direct"}),
    "target_session_attrs": frozenset({"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}),
    "load_balance_hosts": frozenset({"disable", "random"}),
}
_LIBPQ_INTEGERS = frozenset(
    {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}
)
"""libpq parameters whose values libpq itself checks only when it connects, as libpq checks them.

Checked when the Store is built instead: a bad value found at the first
connect is an error every call meets, which the core would take for an
outage of the server, and fall through past for good.
"""


def _libpq_integer(value: str) -> int | None:
    """``value`` as libpq reads an integer parameter (an int32, spaces around it allowed), or None."""
    if re.fullmatch(r"[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*", value) is None:  # strtol's, not int()'s 1_000
        return None
    number = int(value)
    return number if -(2**31) <= number < 2**31 else None


# libpq takes a list of hosts in one value; SQLAlchemy's repeated host=a&host=b it would not see.
_LIBPQ_LISTS = ("host", "hostaddr", "port")


def _check_libpq_value(name: str, value: str) -> None:
    fixed = _LIBPQ_FIXED.get(name)
    if fixed is not None and value.strip().lower() not in fixed[0]:
        raise InvalidInput(f"postgresql URL option {name}={value!r} cannot be set: {fixed[1]}")
    choices = _LIBPQ_CHOICES.get(name)
    if choices is not None and value not in choices:
        raise InvalidInput(f"postgresql URL option {name}={value!r}: expected one of {', '.join(sorted(choices))}")
    if name in _LIBPQ_INTEGERS and _libpq_integer(value) is None:
        raise InvalidInput(f"postgresql URL option {name}={value!r}: expected an integer")
    if name == "port":  # one per host, comma-separated; an empty one means the default
        for port in value.split(","):
            number = _libpq_integer(port) if port.strip() else 1
            if number is None or not 1 <= number <= 65535:
                raise InvalidInput(f"postgresql URL option port={value!r}: expected ports from 1 to 65535")
    if name == "hostaddr":  # numeric addresses, as libpq resolves them (127.1 included): no name lookup
        for address in value.split(","):
            if not address:
                continue
            try:
                socket.getaddrinfo(address, None, flags=socket.AI_NUMERICHOST)
            except (OSError, UnicodeError):
                raise InvalidInput(f"postgresql URL option hostaddr={value!r}: expected numeric IP addresses") from None


def parse_options(url: URL) -> tuple[Options, dict[str, str]]:
    """Split the URL's query into this plugin's options and libpq parameters; refuse anything else."""
    for name in _LIBPQ_LISTS:
        if not isinstance(url.query.get(name, ""), str):
            raise InvalidInput(
                f"the postgresql URL gives {name} more than once: give several in one value, "
                f"comma-separated ({name}=a,b), as libpq takes them"
            )
    options = UrlOptions(url, "postgresql")
    known = _libpq_keywords()
    libpq: dict[str, str] = {}
    for name in options.names():
        if name in OPTION_DEFAULTS:
            continue
        if name not in known:
            expected = ", ".join(sorted(OPTION_DEFAULTS))
            raise InvalidInput(
                f"unknown postgresql URL option {name!r}: expected one of {expected}, or a libpq connection parameter"
            )
        value = options.text(name)
        assert value is not None
        _check_libpq_value(name, value)
        libpq[name] = value
    values: dict[str, Any] = {}
    for name, default in OPTION_DEFAULTS.items():
        low, high = _LIMITS[name]
        if name == "connect_timeout":
            continue
        if name in _INTEGER_OPTIONS:
            values[name] = options.integer(name, int(default), low=int(low), high=int(high))
        else:
            values[name] = options.number(name, default, low=low, high=high)
    # libpq rounds a connect_timeout below 2 up to 2; by default, the call timeout rounded up.
    values["connect_timeout"] = options.integer(
        "connect_timeout", max(2, math.ceil(values["timeout"])), low=2, high=3600
    )
    return Options(**values), libpq


def _milliseconds(seconds: float) -> int:
    """A server timeout in whole milliseconds; a positive one at least 1, since the server reads 0 as no limit."""
    # Rounded to a nanosecond first: 16.1 s is 16100 ms, not the 16101 its float's last digits would give.
    return 0 if seconds == 0 else max(1, math.ceil(round(seconds * 1000, 6)))


class Database:
    """One PostgreSQL database: its engine and its transactions.

    Building one does no I/O; :meth:`open` connects.
    """

    def __init__(self, url: URL) -> None:
        if url.drivername not in DRIVERS:
            raise UnknownBackend(
                f"fallthrough_postgresql serves {' and '.join(s + '://' for s in DRIVERS)} (psycopg 3); "
                f"the driver of {url.drivername + '://'} is not supported"
            )
        self.options, self._libpq = parse_options(url)
        self.url = url.set(drivername="postgresql+psycopg", query={})
        self.endpoint = Endpoint.from_url("postgresql", url, SECRET_URL_KEYS)
        self.name = self.endpoint.where
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._lane: SearchLane | None = None
        self._watchdog = Watchdog(self.options.timeout)

    def engine(self) -> Engine:
        """The engine, built on first use (building it does no I/O either)."""
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
                self._lane = SearchLane(self.options.search_connections)
            return self._engine

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            lane, self._lane = self._lane, None
        if lane is not None:
            lane.close()
        if engine is not None:
            engine.dispose()
        self._watchdog.stop()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits when the block ends and rolls back on any error.

        For writes, and for reads that need one (a search that sets ``SET LOCAL``).
        Not retried: :meth:`writing` is, where the work can run twice.
        """
        with self._session(_Attempt(), transaction=True, writes=True) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """An autocommit connection, for reads of one statement: no BEGIN and COMMIT round trips.

        Not retried: :meth:`reading` is. Also for a write of one statement
        (a claim), which must not be retried once sent.
        """
        with self._session(_Attempt(), transaction=False, writes=True) as conn:
            yield conn

    def reading(self, work: Callable[[Connection], T], *, transaction: bool = False) -> T:
        """``work(conn)`` on an autocommit connection (or in a transaction), run once more if its connection died.

        ``work`` must only read: it may run twice, the first time cut short.
        """
        return self._retrying(work, transaction=transaction, reads_only=True)

    def writing(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in a transaction, run once more if its connection died before the ``COMMIT`` was sent.

        A transaction whose session was lost before it committed was rolled
        back by the server, so the second run starts from the same state as
        the first; ``work`` must keep no state of its own across runs. A
        connection lost while the ``COMMIT`` was on its way may have
        committed: that is never retried.
        """
        return self._retrying(work, transaction=True, reads_only=False)

    def querying(self, work: Callable[[psycopg.Cursor[Any]], T], *, transaction: bool = False) -> T:
        """``work(cursor)`` on the driver's own connection, in autocommit (or a transaction), run once more if it died.

        The path of searches, which send their SQL on psycopg's connection:
        it skips the SQLAlchemy ``Connection`` that :meth:`reading` wraps
        around it (building it, its execution options and their reset at
        check-in cost a kNN search over 10,000 vectors about an eighth of its
        time). ``work`` must only read.

        The connection is one of the search lane's (:mod:`.lane`), already
        in autocommit and polled as the pool's checkout polls, or the pool's
        when the lane has none to spare; the watchdog and the retry are the
        same either way. Its cursor is kept from one call to the next (the lane
        connection's own, or :func:`_kept_cursor` with a pooled one):
        building one (its copy of the connection's adapters, its transformer)
        cost a kNN search about 20 µs. It also keeps the adapters it resolved
        while it executes the very statement object it executed last, which
        is why the kNN statements are cached (:func:`.search.nearest_statements`).
        """
        return _retry(lambda attempt: self._query_once(attempt, work, transaction), reads_only=True)

    def _retrying(self, work: Callable[[Connection], T], *, transaction: bool, reads_only: bool) -> T:
        def once(attempt: _Attempt) -> T:
            with self._session(attempt, transaction=transaction, writes=not reads_only) as conn:
                return work(conn)

        return _retry(once, reads_only=reads_only)

    def _query_once(self, attempt: _Attempt, work: Callable[[psycopg.Cursor[Any]], T], transaction: bool) -> T:
        # What _session does, as plain functions rather than nested context
        # managers: each generator-based one cost a search a few microseconds.
        watchdog = self._watchdog
        watch = attempt.watch = watchdog.enter()
        lane = self._lane
        lent: LaneConnection | None = None
        answered = False
        try:
            engine = self._require_engine()
            if lane is not None and lane.size:
                lent = self._lend(engine, lane)
            if lent is None:
                return _query_pooled(engine, attempt, work, transaction)
            conn = attempt.connection = lent.connection
            answer = _run(conn, lent.cursor, work, transaction)
            _let_go_of_the_result(lent.cursor, None)
            answered = True
            return answer
        except (exc.SQLAlchemyError, psycopg.Error, BackendUnavailable) as error:
            replacement = unavailability(self.endpoint, error, attempt.connection, watch)
            if replacement is None:
                raise
            raise replacement from None
        finally:
            # The watch ends before the connection goes back: a watch that fired
            # late would otherwise cut the next search lent the same connection.
            # And the error was judged above with the connection still open.
            watchdog.leave(watch)
            if lent is not None:
                assert lane is not None
                _hand_back(lane, lent, answered=answered, cut=watch.fired)

    @contextmanager
    def _session(self, attempt: _Attempt, *, transaction: bool, writes: bool) -> Iterator[Connection]:
        """A pooled connection for one call, under a watch, its errors translated.

        :param writes: the call may write. A session that started read-only
            (the server was, when it connected) stays so after the server
            is mended, so a call that may write gets a new one instead; if
            the server is still read-only, that one refuses the write too.
        """
        checked_out: list[psycopg.Connection[Any]] = []
        with (
            self._watchdog.watch() as watch,
            translate_errors(self.endpoint, checked_out, watch),
            self._require_engine().connect() as conn,
        ):
            attempt.watch = watch
            if writes and conn.connection.info.get(_STARTED_READ_ONLY):
                conn.invalidate()  # the next use connects anew
            attempt.connection = driver_connection(conn)
            checked_out.append(attempt.connection)
            try:
                if not transaction:
                    yield conn.execution_options(isolation_level="AUTOCOMMIT")
                    return
                with conn.begin():
                    yield conn
                    attempt.committing = True
            except BaseException:
                if watch.fired:
                    # Cut by the watchdog: discarded now, rather than rolled back on a dead
                    # socket at check-in, which the pool logs as an error with a traceback.
                    conn.invalidate()
                raise

    def _lend(self, engine: Engine, lane: SearchLane) -> LaneConnection | None:
        """A lane connection for the current call, attached to its watch; None when the lane has none to spare."""
        while (lent := lane.take()) is not None:
            try:
                if not _closed_by_server(lent.connection):
                    self._watchdog.attach(lent.connection, lent.address)
                    return lent
            except BaseException:  # attach's dup() out of descriptors, an interrupt: the place is not lost
                lane.discard(lent)
                raise
            lane.discard(lent)
        if not lane.reserve():
            return None
        try:
            return _detach_from_pool(engine)
        except BaseException:
            lane.forget()
            raise

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise self.endpoint.unavailable("is not open")
        return self._engine

    def _create_engine(self) -> Engine:
        options = self.options
        server_options = [
            f"-c statement_timeout={_milliseconds(options.statement_timeout)}",
            f"-c lock_timeout={_milliseconds(options.lock_timeout)}",
            # Session settings of vector queries, so a search needs no SET of
            # its own. Where pgvector is missing (or older than 0.8, for
            # iterative_scan) the server keeps them as unused placeholders.
            f"-c hnsw.ef_search={options.hnsw_ef_search}",
            "-c hnsw.iterative_scan=relaxed_order",
            # Claims, the counts and the recount at open take their locks before they read, which only
            # READ COMMITTED's snapshot per statement follows; a database whose default is stricter
            # would fail them with serialization errors, or count rows short.
            r"-c default_transaction_isolation=read\ committed",
        ]
        if "options" in self._libpq:
            server_options.insert(0, self._libpq["options"])
        connect_args: dict[str, Any] = {
            "client_encoding": "UTF8",
            **_tcp_bounds(options.timeout),
            **self._libpq,
            "connect_timeout": options.connect_timeout,
            "options": " ".join(server_options),
        }
        engine = create_engine(
            self.url,
            # No pre-ping, SQLAlchemy's round trip per checkout: the checkout
            # listener (below) polls the socket instead, and the retry of
            # reading() and writing() covers what the poll cannot see.
            pool_pre_ping=False,
            # The rollback at check-in is _reset_on_return's (below), which
            # skips a connection already known dead.
            pool_reset_on_return=None,
            # The connection checked in last is checked out first: a steady
            # caller keeps reusing one warm connection (its prepared
            # statements, its server process's caches) instead of cycling
            # through every connection a burst opened. Those idle at the
            # bottom; a server or network that ends one is seen by the
            # checkout's poll, or by keepalives (see _tcp_bounds).
            pool_use_lifo=True,
            pool_size=options.pool_size,
            max_overflow=options.max_overflow,
            pool_timeout=options.pool_timeout,
            connect_args=connect_args,
            # An error let through untranslated (a bug) must not carry the caller's data in its text.
            hide_parameters=True,
        )
        event.listen(engine.pool, "connect", _on_connect)
        event.listen(engine.pool, "reset", _reset_on_return)
        event.listen(engine, "do_connect", self._before_connect)
        dialect = engine.dialect

        def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
            self._on_checkout(dialect, dbapi_connection, record)

        event.listen(engine.pool, "checkout", on_checkout)
        return engine

    def _before_connect(self, dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: Any) -> None:
        """Refuse to connect for a call the watchdog ended, or is about to end.

        Such a call waited in the pool's queue while the server was found
        hung; when a cut connection (or another caller's failed connect)
        freed its slot, a new connection would wait ``connect_timeout`` more
        on that same server. A call whose check is due waits for its verdict
        (:meth:`.Watchdog.may_connect`).
        """
        if not self._watchdog.may_connect():
            raise self.endpoint.unavailable(
                "is unavailable: timed out: the server was found hung or stopped (it did not answer a probe "
                f"within {self._watchdog.timeout / 2:g} s) before the call could connect"
            )

    def _on_checkout(self, dialect: Dialect, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        """Attach the connection to the call's watch; replace it if its server has closed it, or it is in autocommit.

        No round trip: one ``poll`` of its socket (:func:`_closed_by_server`).
        ``DisconnectionError`` makes the pool close it and connect anew,
        under the same watch.

        Every connection is lent out of autocommit: :meth:`write` relies on
        it (SQLAlchemy's ``begin()`` sends no ``BEGIN``: psycopg does, out of
        autocommit), and a call that wants autocommit sets it and sets it
        back. One found in autocommit was handed back by a call an interrupt
        (Ctrl-C) stopped as it switched: lent to a write, each statement
        would commit alone, and a rollback would undo nothing.
        """
        self._watchdog.attach(dbapi_connection, record.info.get(_ADDRESS))
        if _closed_by_server(dbapi_connection):
            raise exc.DisconnectionError("the server closed the pooled connection")
        if dbapi_connection.autocommit:
            raise exc.DisconnectionError("the pooled connection came back in autocommit")


def _retry(once: Callable[[_Attempt], T], *, reads_only: bool) -> T:
    """``once(attempt)``, and once more with a new attempt if the first one's connection died where that is safe."""
    attempt = _Attempt()
    try:
        return once(attempt)
    except BackendUnavailable:
        if not attempt.may_retry(reads_only):
            raise
    return once(_Attempt())


def _query_pooled(engine: Engine, attempt: _Attempt, work: Callable[[psycopg.Cursor[Any]], T], transaction: bool) -> T:
    """``work(cursor)`` on a pooled connection, switched to autocommit and back (see :meth:`Database.querying`)."""
    pooled = engine.raw_connection()
    try:
        conn = pooled.driver_connection
        assert isinstance(conn, psycopg.Connection)
        attempt.connection = conn
        cursor = _kept_cursor(pooled, conn)
        if transaction:
            return _let_go_of_the_result(cursor, _run(conn, cursor, work, transaction))
        try:
            conn.autocommit = True
            return _let_go_of_the_result(cursor, work(cursor))
        finally:
            _leave_autocommit(pooled, conn)
    except BaseException:
        pooled.info.pop(_CURSOR, None)  # an interrupted call may have left it mid-result
        if attempt.watch is not None and attempt.watch.fired:
            pooled.invalidate()  # as in _session: not rolled back on a dead socket at check-in
        raise
    finally:
        pooled.close()


def _run(
    conn: psycopg.Connection[Any],
    cursor: psycopg.Cursor[Any],
    work: Callable[[psycopg.Cursor[Any]], T],
    transaction: bool,
) -> T:
    """``work(cursor)`` as the connection is, or in a transaction block of its own when ``transaction``."""
    if not transaction:
        return work(cursor)
    with conn.transaction():
        return work(cursor)
    # Reached only when ``work`` raised psycopg.Rollback, which the block swallows.
    raise psycopg.ProgrammingError("a search's transaction was rolled back by psycopg.Rollback; it has no answer")


def _hand_back(lane: SearchLane, lent: LaneConnection, *, answered: bool, cut: bool) -> None:
    """Give a lane connection back if it can serve the next search; close it otherwise.

    One the watchdog cut is closed even if its statement ended in time; one
    a call left busy or in a transaction is closed; one whose call raised
    keeps its connection but not its cursor, which may have been left
    mid-result.
    """
    if cut or not _idle_and_sound(lent.connection):
        lane.discard(lent)
        return
    if not answered:
        lent.cursor = lent.connection.cursor()
    lane.give_back(lent)


def _detach_from_pool(engine: Engine) -> LaneConnection:
    """A new lane connection: checked out of the pool (connected, configured and watched as any), then detached.

    Detached, the pool no longer counts it: the slot it held is free again,
    and the pool connects anew for it when it is next needed.
    """
    pooled = engine.raw_connection()
    conn = pooled.driver_connection
    assert isinstance(conn, psycopg.Connection)
    address = pooled.info.get(_ADDRESS)
    pooled.info.pop(_CURSOR, None)  # a pool-path cursor would keep the connection alive once it is the lane's
    pooled.detach()
    try:
        conn.autocommit = True
        return LaneConnection(conn, address)
    except BaseException:
        conn.close()
        raise


def _idle_and_sound(conn: psycopg.Connection[Any]) -> bool:
    """True if a connection can serve the next search: open, not broken, no statement running nor transaction open."""
    return not (conn.closed or conn.broken) and conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE


_CURSOR = "fallthrough_cursor"
"""The key of a pooled connection's kept cursor in its ``info`` (cleared when the connection is replaced)."""


def _kept_cursor(pooled: PoolProxiedConnection, conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """The cursor kept with this pooled connection, made on first use."""
    cursor: psycopg.Cursor[Any] | None = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not conn:
        cursor = pooled.info[_CURSOR] = conn.cursor()
    return cursor


def _let_go_of_the_result(cursor: psycopg.Cursor[Any], answer: T) -> T:
    """``answer``, once the kept cursor has freed its last result.

    A cursor holds its last result (every row's text, metadata and vector, as
    libpq received them) until its next statement: kept with a pooled
    connection, that could be megabytes held for as long as the connection
    idles. ``PGresult.clear()`` frees it (a later fetch finds no rows); the
    cursor, with the adapters it resolved, stays.
    """
    result = cursor.pgresult
    if result is not None:
        result.clear()
    return answer


def _leave_autocommit(pooled: PoolProxiedConnection, conn: psycopg.Connection[Any]) -> None:
    """Hand the connection back as the pool lends it, out of autocommit; discard it where that cannot be done.

    A connection still busy (a call interrupted in the middle of reading
    its rows) refuses the change; it is not reused. Nor is one whose change
    an interrupt cut short. An interrupt that lands before this runs leaves
    the connection in autocommit: the checkout replaces it (``_on_checkout``).
    """
    if conn.closed or conn.broken:
        return  # the pool discards it at check-in
    try:
        conn.autocommit = False
    except psycopg.Error:
        pooled.invalidate()
    except BaseException:
        pooled.invalidate()
        raise


class _Attempt:
    """What one run of a call reached: whether running it again is safe (see :meth:`Database.writing`)."""

    __slots__ = ("committing", "connection", "watch")

    def __init__(self) -> None:
        self.connection: psycopg.Connection[Any] | None = None
        self.watch: Watch | None = None
        self.committing = False

    def may_retry(self, reads_only: bool) -> bool:
        """True if the call's established connection died under it, not by the watchdog, before any COMMIT was sent.

        A call that never got a connection is not retried: connecting
        failed, so the server is down (a second try would wait as long
        again); nor is one the watchdog cut: the server is hung.
        """
        connection = self.connection
        if connection is None or (self.watch is not None and self.watch.fired):
            return False
        if not (connection.broken or connection.closed):
            return False
        return reads_only or not self.committing


_ADDRESS = "fallthrough_address"
_STARTED_READ_ONLY = "fallthrough_started_read_only"


def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Note the server's address, for the watchdog's probe; teach it vectors; widen a Unix socket's send buffer."""
    assert isinstance(dbapi_connection, psycopg.Connection)
    record.info[_ADDRESS] = server_address(dbapi_connection)
    # The server reports the setting a session starts with (PostgreSQL 14 and later); one its database or
    # role gave it, the session keeps.
    record.info[_STARTED_READ_ONLY] = dbapi_connection.info.parameter_status("default_transaction_read_only") == "on"
    # Once a connection rather than once a cursor: registering cost a kNN query 7 µs.
    vectors.register(dbapi_connection)
    _widen_unix_send_buffer(dbapi_connection)


def _reset_on_return(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
    """Roll back a connection coming back to the pool; discard it, quietly, if it is already dead.

    A statement the plugin sends on the driver's connection (a claim, a
    COPY, a search) can lose it without SQLAlchemy seeing; the pool's own
    rollback then failed on the dead socket, and the pool logged that as an
    error with its traceback (on the application's stderr where it
    configured no logging) before it discarded the connection. This
    discards it the same way, at the same moment, without the failed
    rollback: the slot frees as it did, and the next checkout connects anew.
    """
    if state.transaction_was_reset or state.terminate_only or not state.asyncio_safe:
        return
    if dbapi_connection.closed or dbapi_connection.broken:
        record.invalidate()
        return
    if dbapi_connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return  # nothing to roll back (psycopg would check the same, behind its lock)
    dbapi_connection.rollback()


UNIX_SEND_BUFFER = 2 * 1024 * 1024
"""Bytes asked of the kernel for the send buffer of a connection over a Unix socket.

Linux grants twice what is asked, up to twice ``net.core.wmem_max``, which
is 2 × 208 KiB on a stock kernel: a larger ``wmem_max`` lets the whole of
most chunks' COPY (about 1 MB a 10,000 keys) sit in the buffer at once.
"""


def _widen_unix_send_buffer(conn: psycopg.Connection[Any]) -> None:
    """Let a chunk's COPY reach a server on this host in a few writes, not dozens (issue 12).

    psycopg hands libpq a chunk's whole COPY payload, then waits for the
    socket to be writable and flushes again, each time the server has read
    what the buffer held. Every one of those wake-ups needs the GIL, which
    the thread pulling the caller's keys and the one packing the next
    chunk hold most of the time, so the server sat idle waiting for its
    data: a streamed create of a million keys took 15-20 % longer than with
    a buffer that holds a chunk. TCP grows its buffer itself (autotuning, up
    to ``net.ipv4.tcp_wmem``, about 4 MB on a stock kernel), and setting it
    would switch that off, so only a Unix socket is widened. Never shrunk;
    a kernel that refuses leaves the connection as it was.
    """
    try:
        descriptor = os.dup(conn.pgconn.socket)  # the socket object closes its own descriptor, not libpq's
    except (OSError, psycopg.Error):
        return  # only a speed-up: the connection works as it is
    try:
        sock = socket.socket(fileno=descriptor)
    except OSError:
        os.close(descriptor)
        return
    with sock, contextlib.suppress(OSError):
        if sock.family == socket.AF_UNIX and sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < UNIX_SEND_BUFFER:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UNIX_SEND_BUFFER)


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """True if an idle pooled connection is dead: its server closed it, or it is broken.

    An idle connection has nothing to read, so its socket polls quiet. A
    server that ends the connection (a crash, a restart,
    ``pg_terminate_backend``) first sends its last words (a FATAL
    ``terminating connection``), then closes its end, which polls as a
    hang-up (``POLLHUP`` on a Unix socket, ``POLLRDHUP`` on TCP). The close
    can lag the words: the backend leaves ``pg_stat_activity`` before its
    socket closes. So an idle connection with anything to read is not
    reused: this plugin never LISTENs, and what else arrives unasked (a
    parameter change after a reload) is rare enough that a fresh
    connection costs less than the risk. One system call; no round trip. What this cannot see (a host that vanished
    without a word, or a close that lands after the poll) fails the call's
    statement instead, and :meth:`Database.reading` and
    :meth:`Database.writing` retry where that is safe.
    """
    if conn.closed or conn.broken:
        return True
    pgconn = conn.pgconn
    if pgconn.status != psycopg.pq.ConnStatus.OK:
        return True
    try:
        descriptor = pgconn.socket
        return _poll(descriptor) != 0
    except (OSError, psycopg.Error):
        return True


def _poll(descriptor: int) -> int:
    """The events ready on ``descriptor`` now, without waiting (0: none)."""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0))
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


def _tcp_bounds(timeout: float) -> dict[str, str]:
    """libpq's TCP settings that end a wait on a host that is gone (no kernel left to answer).

    ``tcp_user_timeout`` closes a connection whose sent data stays
    unacknowledged this long; keepalives find an idle pooled connection whose
    host vanished, so its socket is closed and the checkout's poll sees it. Neither fires for a stopped
    server on a live host, whose kernel acknowledges everything: that is the
    watchdog's case. libpq ignores them on Unix sockets.
    """
    seconds = max(1, math.ceil(timeout))
    return {
        "tcp_user_timeout": str(int(timeout * 1000)),
        "keepalives": "1",
        "keepalives_idle": str(seconds),
        "keepalives_interval": str(max(1, math.ceil(timeout / 3))),
        "keepalives_count": "3",
    }


def driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one, in the same transaction (for COPY and arrays)."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


__all__ = [
    "DRIVERS",
    "OPTION_DEFAULTS",
    "SECRET_URL_KEYS",
    "Database",
    "Options",
    "driver_connection",
    "parse_options",
]
