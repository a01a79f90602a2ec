"""The engine: which SQLite database a URL names, how to connect, and transactions.

``sqlite://`` is one in-memory database for the whole backend instance: a
:class:`~sqlalchemy.pool.StaticPool` hands every caller the same
connection, so every thread sees the same data. ``sqlite:///path.db`` is a
file in WAL mode, so readers in other processes never wait for a writer.

All calls of one instance are serialised by one lock. The stdlib driver
does not share a connection between threads safely, and a second lock-free
path would buy little: SQLite itself runs one writer at a time.

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

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool, StaticPool

from fallthrough.kit import Endpoint, Opened, UrlOptions

from .errors import is_busy, translate_errors
from .schema import create_schema

DEFAULT_TIMEOUT = 5.0
"""Seconds to wait for another connection's lock (``?timeout=`` overrides)."""

_BEGIN_OPTION = "fallthrough_sqlite_begin"


class Database:
    """One SQLite database: its engine, its lock, and its transactions.

    Building one does no I/O; :meth:`open` connects.
    """

    def __init__(self, url: URL) -> None:
        self.url = url.set(drivername="sqlite+pysqlite")
        self.in_memory = url.database in (None, "", ":memory:")
        self.timeout = UrlOptions(url, "sqlite").number("timeout", DEFAULT_TIMEOUT, low=0, high=86_400, high_open=True)
        self.name = "in memory" if self.in_memory else repr(url.database)
        self.endpoint = Endpoint.from_url("sqlite database", url, where=self.name)
        self._engine: Opened[Engine] = Opened(self.endpoint)
        # Every call holds it: see the module docstring.
        self._lock = self._engine.lock

    def open(self) -> None:
        """Connect and create the schema; does nothing when already open."""
        self._engine.open(self._open_engine)

    def _open_engine(self) -> Engine:
        engine = self._create_engine()
        try:
            with translate_errors(self.endpoint), self._begin(engine, write=True) as conn:
                create_schema(conn)
        except BaseException:
            engine.dispose()
            raise
        return engine

    def close(self) -> None:
        """Drop every connection; an in-memory database is gone after this."""
        engine = self._engine.close()
        if engine is not None:
            engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction; the data it sees is one consistent snapshot."""
        with self._lock, translate_errors(self.endpoint), self._begin(self._engine.get(), write=False) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: it commits when the block ends, and rolls back on any error."""
        with self._lock, translate_errors(self.endpoint), self._begin(self._engine.get(), write=True) as conn:
            yield conn

    @staticmethod
    @contextmanager
    def _begin(engine: Engine, *, write: bool) -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE" if write else "BEGIN"})
            with conn.begin():
                yield conn

    def _create_engine(self) -> Engine:
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": self.timeout}
        url = self.url.difference_update_query(["timeout"])
        if self.in_memory:
            engine = create_engine(url, poolclass=StaticPool, connect_args=connect_args)
        else:
            # One connection is all the lock lets anyone use at a time.
            engine = create_engine(
                url,
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=0,
                pool_timeout=self.timeout,
                connect_args=connect_args,
            )
        event.listen(engine, "connect", self._on_connect)
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
