"""The engine: which SQLite database a URL names, how to connect, and transactions.

``sqlite://`` is one in-memory database for the whole backend instance: a
:class:`~sqlalchemy.pool.StaticPool` hands every caller the same
connection, so every thread sees the same data. ``sqlite:///path.db`` is a
file in WAL mode, so readers in other processes never wait for a writer.

Writes of one instance are serialised by one lock, over one connection:
SQLite itself runs one writer at a time, and the stdlib driver does not
share a connection between threads safely. Reads of a file do not take
that lock: they check out a connection of their own from a pool of
read-only connections (``PRAGMA query_only``), and in WAL mode a reader
reads its snapshot while a writer, of this process or another, holds the
write lock. The in-memory database is one connection, so its reads take
the lock too.

Transactions are begun by hand (the recipe in SQLAlchemy's pysqlite notes):
the driver's own transaction handling is switched off, reads run in
``BEGIN`` and writes in ``BEGIN IMMEDIATE``. Taking the write lock up
front matters with several processes: a deferred transaction that reads
and then writes can fail with SQLITE_BUSY at once, without waiting for the
busy timeout, when another process wrote in between.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

from fallthrough.errors import BackendBusy, InvalidInput
from fallthrough.kit import Endpoint, Opened, UrlOptions

from .errors import is_busy, is_read_only, translate_errors
from .schema import SCHEMA_VERSION, create_schema, schema_is_current, schema_version

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for another connection's lock (``?timeout=`` overrides)."""

READERS = 8
"""Read connections a file's pool keeps open; as many more open for a burst, and close after it."""

_BEGIN_OPTION = "fallthrough_sqlite_begin"
_STORED_VERSION = f"SELECT max(version) FROM {schema_version.name}"


@attrs.frozen
class _Engines:
    """The engine every write (and every read in memory) uses, and a file's pool of readers."""

    writer: Engine
    readers: Engine | None

    def dispose(self) -> None:
        self.writer.dispose()
        if self.readers is not None:
            self.readers.dispose()


class Database:
    """One SQLite database: its engines, its write lock, and its transactions.

    Building one does no I/O; :meth:`open` connects.
    """

    def __init__(self, url: URL) -> None:
        if url.host or url.port or url.username or url.password:
            # SQLAlchemy would refuse it only at the first connect, as an error of its own.
            raise InvalidInput("sqlite:// takes a file path only: no host, port or credentials")
        self.url = url.set(drivername="sqlite+pysqlite")
        self.in_memory = url.database in (None, "", ":memory:")
        # Only timeout. A misspelt option was dropped by SQLAlchemy with a warning; SQLite's URI options
        # (uri=true&mode=ro) would open a database the schema check and the write lock do not expect.
        options = UrlOptions(url, "sqlite", known={"timeout"})
        self.timeout = options.number("timeout", DEFAULT_TIMEOUT, low=0, high=86_400, high_open=True)
        self.name = "in memory" if self.in_memory else repr(url.database)
        self.endpoint = Endpoint.from_url("sqlite database", url, where=self.name)
        self._engines: Opened[_Engines] = Opened(self.endpoint)
        # Every write holds it, and every read in memory: see the module docstring.
        self._lock = self._engines.lock
        self._busy_calls = 0  # calls that held the lock and gave up on another process's (see _locked)

    def open(self) -> None:
        """Connect and create the schema; does nothing when already open."""
        self._engines.open(self._open_engines)

    def _open_engines(self) -> _Engines:
        engine = self._create_engine()
        try:
            with translate_errors(self.endpoint):
                # A file of this version opens with a read: a Store started while another process holds
                # a long write (a streamed create) reads at once, as WAL lets it, instead of waiting for the
                # write lock only to find nothing to create.
                if self.in_memory or not self._holds_current_schema(engine):
                    with self._begin(engine, write=True) as conn:
                        create_schema(conn)
        except BaseException:
            engine.dispose()
            raise
        return _Engines(engine, None if self.in_memory else self._create_readers())

    def _holds_current_schema(self, engine: Engine) -> bool:
        with self._begin(engine, write=False) as conn:
            return schema_is_current(conn)

    def close(self) -> None:
        """Drop every connection; an in-memory database is gone after this."""
        engines = self._engines.close()
        if engines is not None:
            engines.dispose()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This instance's lock, for one call; :class:`BackendBusy` when the calls ahead met another process's lock.

        A call waits for this Store's other calls to the file for as long as
        they take, as before: ordinary load in one process is no reason to
        give up. But when a call ahead of it gave up on another process's
        lock after waiting ``timeout`` and this one has waited that long
        too, it gives up at once instead of waiting its own busy timeout
        again: n threads queued behind such a lock would otherwise wait n
        times the ``timeout`` the URL gives.
        """
        started = time.monotonic()
        busy_before = self._busy_calls
        with self._lock:
            if self._busy_calls != busy_before and time.monotonic() - started >= self.timeout:
                raise BackendBusy(
                    f"{self.endpoint} is busy: the calls ahead of this one waited out another process's lock"
                )
            try:
                yield
            except BackendBusy:
                self._busy_calls += 1  # under the lock
                raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction; the data it sees is one consistent snapshot."""
        engines = self._engines.get()
        if engines.readers is None:
            with self._locked(), translate_errors(self.endpoint), self._begin(engines.writer, write=False) as conn:
                yield conn
        else:
            with translate_errors(self.endpoint, query_only=True), self._begin(engines.readers, write=False) as conn:
                yield conn

    @contextmanager
    def read_driver(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on the driver's connection itself, for the record reads.

        Those run their SQL on the sqlite3 cursor (see :mod:`.records`); the
        SQLAlchemy Connection's own begin and commit would cost as much as a
        small page. The same pool, lock and error translation as :meth:`read`.
        """
        engines = self._engines.get()
        if engines.readers is None:
            with self._locked(), translate_errors(self.endpoint):
                yield from _driver_transaction(engines.writer)
        else:
            with translate_errors(self.endpoint, query_only=True):
                yield from _driver_transaction(engines.readers)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: it commits when the block ends, and rolls back on any error."""
        with (
            self._locked(),
            translate_errors(self.endpoint),
            self._begin(self._engines.get().writer, write=True) as conn,
        ):
            if not self.in_memory:
                self._check_schema_is_ours(conn)
            yield conn

    def _check_schema_is_ours(self, conn: Connection) -> None:
        """Refuse to write to a file that a newer release migrated while this instance had it open.

        The schema version is checked at open, but a process of a newer
        release sharing the file may migrate it later, in the middle of a
        rolling upgrade, and this release's writes would then break the
        newer schema's rules (version 7 counts inserts in the statements
        that make them, and a release before it, still running, inserted
        uncounted records). So every write reads the version first, under
        the write lock that a migration takes too: one indexless read of a
        one-row table, a few microseconds. Not SQLite's schema cookie: a
        migration may change data alone.
        """
        try:
            (stored,) = _driver(conn).execute(_STORED_VERSION).fetchone()
        except sqlite3.OperationalError as error:
            if str(error).startswith("no such table"):
                return  # dropped by hand: nothing says a newer release came, and the write decides for itself
            raise
        if stored is not None and stored > SCHEMA_VERSION:
            raise self.endpoint.unavailable(
                f"was migrated to schema version {stored} by a newer release while this process had it open "
                f"(this one writes version {SCHEMA_VERSION}); restart this process with that release"
            )

    @staticmethod
    @contextmanager
    def _begin(engine: Engine, *, write: bool) -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE" if write else "BEGIN"})
            try:
                with conn.begin():
                    yield conn
            except (exc.DBAPIError, sqlite3.Error) as error:
                if write and is_read_only(error):
                    # SQLite opened the file read-only when it could not be written: the connection stays
                    # so after the file or disk is writable again. The next write connects anew.
                    conn.invalidate()
                raise

    def _create_engine(self) -> Engine:
        # hide_parameters, here and for the readers: an error let through untranslated (a bug) must not
        # carry the caller's data in its text.
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": self.timeout}
        url = self.url.difference_update_query(["timeout"])
        if self.in_memory:
            engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args, hide_parameters=True)
        else:
            # One connection is all the lock lets anyone use at a time.
            engine = create_engine(
                url,
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=self.timeout,
                connect_args=connect_args,
                hide_parameters=True,
            )
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "begin", _on_begin)
        return engine

    def _create_readers(self) -> Engine:
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": self.timeout}
        engine = create_engine(
            self.url.difference_update_query(["timeout"]),
            poolclass=QueuePool,
            pool_size=READERS,
            max_overflow=READERS,
            pool_timeout=self.timeout,
            connect_args=connect_args,
            hide_parameters=True,
        )
        event.listen(engine, "connect", self._on_connect_reader)
        event.listen(engine, "begin", _on_begin)
        return engine

    def _on_connect(self, dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # Autocommit at the driver level: _on_begin emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if not self.in_memory:
                _enable_wal(cursor, self.timeout)
        finally:
            cursor.close()

    def _on_connect_reader(self, dbapi_connection: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # The writer's first connection made the file WAL (persistent) when it opened.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # A reader never writes: a bug that tried would fail, not take the write lock.
            cursor.execute("PRAGMA query_only = 1")
        finally:
            cursor.close()


def _driver(conn: Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _driver_transaction(engine: Engine) -> Iterator[sqlite3.Connection]:
    """Check out a pooled connection, and run the block in ``BEGIN`` … ``COMMIT`` on its driver connection."""
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.execute("BEGIN")
        try:
            yield driver
        finally:
            # A read has nothing to keep: ending it either way releases its snapshot.
            driver.execute("ROLLBACK")
    finally:
        pooled.close()


def _enable_wal(cursor: sqlite3.Cursor, timeout: float) -> None:
    """Switch the file to WAL mode (persistent; a no-op once it is set).

    While another connection is creating the same file, the switch fails
    with SQLITE_BUSY at once: SQLite does not call the busy handler there.
    So retry, with a short backoff, until the busy timeout has passed.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.fetchall()
            return
        except sqlite3.OperationalError as error:
            if not is_busy(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


__all__ = ["DEFAULT_TIMEOUT", "Database"]
