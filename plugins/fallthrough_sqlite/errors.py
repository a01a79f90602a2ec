"""Mapping sqlite3 errors onto the fallthrough error contract.

Only errors that mean "the store cannot serve now" become
:class:`~fallthrough.errors.BackendUnavailable`, the one error the router
falls through on. They come in two kinds, because the router treats them
differently:

* :class:`~fallthrough.errors.BackendBusy`: the file is there and sound,
  but another connection held a lock past the busy timeout, or the
  connection pool stayed full. The call falls through, yet the circuit
  breaker does not count it: a writer in another process holding the lock
  for a while is not an outage, and opening the breaker would refuse the
  calls that would succeed a moment later.
* plain :class:`~fallthrough.errors.BackendUnavailable`: the file cannot be
  opened, the disk failed, is full or turned read-only, or the backend is
  closed. That is an
  outage (a full disk is one for PostgreSQL too, SQLSTATE class 53); the
  write that met it was rolled back whole, so the next store may take it.

Every other error keeps its own class and meaning, because falling through
on a bug would hide it.

Messages name the database and the SQLite error, never the SQL statement or
its parameters: SQLAlchemy's own messages carry both, and parameters are
user data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc

from fallthrough.errors import BackendBusy, BackendUnavailable
from fallthrough.kit import Endpoint

# Primary result codes (the low byte of an extended code).
_BUSY_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,  # "database is locked", after busy_timeout
        sqlite3.SQLITE_LOCKED,  # "database table is locked": a lock inside a shared cache
        sqlite3.SQLITE_PROTOCOL,  # WAL lock protocol race under contention; retrying later succeeds
    }
)
_UNAVAILABLE_CODES = _BUSY_CODES | frozenset(
    {
        sqlite3.SQLITE_IOERR,  # "disk I/O error" and its extended codes
        sqlite3.SQLITE_CANTOPEN,  # "unable to open database file"
        sqlite3.SQLITE_FULL,  # "database or disk is full"
        # "attempt to write a readonly database": the file or its filesystem turned read-only (a disk
        # remounted read-only after errors). No write can land until an operator mends it, as on a full disk.
        sqlite3.SQLITE_READONLY,
    }
)
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database schema is locked")
_UNAVAILABLE_MESSAGES = (
    *_BUSY_MESSAGES,
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
    "attempt to write a readonly database",
    "cannot operate on a closed database",
)


def _primary_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_unavailable(error: BaseException) -> bool:
    """True if ``error`` (a sqlite3 error) means the store cannot serve now, busy or down."""
    code = _primary_code(error)
    if code is not None and code in _UNAVAILABLE_CODES:
        return True
    message = str(error).lower()
    return any(fragment in message for fragment in _UNAVAILABLE_MESSAGES)


def is_read_only(error: BaseException) -> bool:
    """True if ``error`` (a sqlite3 error, or SQLAlchemy's around one) is a write a read-only file or disk refused."""
    original = error.orig if isinstance(error, exc.DBAPIError) else error
    return original is not None and _primary_code(original) == sqlite3.SQLITE_READONLY


def is_busy(error: BaseException) -> bool:
    """True if ``error`` says another connection holds a lock: the store is up, and worth retrying soon."""
    code = _primary_code(error)
    if code is not None:
        return code in _BUSY_CODES
    message = str(error).lower()
    return any(fragment in message for fragment in _BUSY_MESSAGES)


@contextmanager
def translate_errors(endpoint: Endpoint, *, query_only: bool = False) -> Iterator[None]:
    """Turn busy and unavailability errors raised inside the block into BackendBusy and BackendUnavailable.

    :param endpoint: names the database in messages.
    :param query_only: the block runs on a reader (``PRAGMA query_only``).
        There a plain ``SQLITE_READONLY`` is the reader refusing a write,
        which is this plugin's bug and stays one; a read-only file or disk
        is told by the extended codes (``SQLITE_READONLY_RECOVERY``, ...)
        a reader meets, and by the plain code on the writer.
    """
    try:
        yield
    except exc.TimeoutError:
        # The connection pool gave up waiting for a connection: busy, not down.
        raise BackendBusy(f"{endpoint}: timed out waiting for a connection") from None
    except exc.DBAPIError as error:
        original = error.orig
        if isinstance(original, sqlite3.Error) and _is_an_outage(original, query_only):
            raise _translated(endpoint, original) from original
        raise
    except sqlite3.Error as error:
        if _is_an_outage(error, query_only):
            raise _translated(endpoint, error) from error
        raise


def _is_an_outage(error: sqlite3.Error, query_only: bool) -> bool:
    if query_only and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY:
        return False
    return is_unavailable(error)


def _translated(endpoint: Endpoint, error: sqlite3.Error) -> BackendUnavailable:
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    if is_busy(error):
        return BackendBusy(endpoint.redact(f"{endpoint} is busy: {name}: {error}"))
    return BackendUnavailable(endpoint.redact(f"{endpoint} is unavailable: {name}: {error}"))


__all__ = ["is_busy", "is_read_only", "is_unavailable", "translate_errors"]
