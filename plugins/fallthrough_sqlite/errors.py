"""Mapping sqlite3 errors onto the fallthrough error contract.

Only errors that mean "the store cannot serve now" become
:class:`~fallthrough.errors.BackendUnavailable`, the one error the router
falls through on: the file cannot be opened, it stayed locked past the busy
timeout, or the disk failed. Every other error keeps its own class and
meaning, because falling through on a bug would hide it.

Messages name the database and the SQLite error, never the SQL statement or
its parameters: SQLAlchemy's own messages carry both, and parameters are
user data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc

from fallthrough.errors import BackendUnavailable

# Primary result codes (the low byte of an extended code).
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,  # "database is locked", after busy_timeout
        sqlite3.SQLITE_LOCKED,  # "database table is locked"
        sqlite3.SQLITE_IOERR,  # "disk I/O error" and its extended codes
        sqlite3.SQLITE_CANTOPEN,  # "unable to open database file"
        sqlite3.SQLITE_PROTOCOL,  # WAL lock protocol race; retrying later succeeds
    }
)
_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
    "cannot operate on a closed database",
)


def is_unavailable(error: BaseException) -> bool:
    """True if ``error`` (a sqlite3 error) means the store cannot be reached now."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _UNAVAILABLE_CODES:
        return True
    message = str(error).lower()
    return any(fragment in message for fragment in _UNAVAILABLE_MESSAGES)


def is_busy(error: BaseException) -> bool:
    """True if ``error`` says another connection holds a lock (worth retrying soon)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "is locked" in str(error).lower()


@contextmanager
def translate_errors(database: str) -> Iterator[None]:
    """Turn unavailability errors raised inside the block into BackendUnavailable.

    :param database: how to name the store in messages (no secrets).
    """
    try:
        yield
    except exc.TimeoutError:
        # The connection pool gave up waiting for a connection.
        raise BackendUnavailable(f"sqlite database {database}: timed out waiting for a connection") from None
    except exc.DBAPIError as error:
        original = error.orig
        if isinstance(original, sqlite3.Error) and is_unavailable(original):
            raise BackendUnavailable(_describe(database, original)) from original
        raise
    except sqlite3.Error as error:
        if is_unavailable(error):
            raise BackendUnavailable(_describe(database, error)) from error
        raise


def _describe(database: str, error: sqlite3.Error) -> str:
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    return f"sqlite database {database} is unavailable: {name}: {error}"


__all__ = ["is_busy", "is_unavailable", "translate_errors"]
