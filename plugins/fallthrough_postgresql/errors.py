"""Mapping psycopg and SQLAlchemy errors onto the fallthrough error contract.

Only errors that mean "the server cannot serve now" become
:class:`~fallthrough.errors.BackendUnavailable`, the one error the router
falls through on:

* no connection could be made, or it was lost (psycopg's
  ``OperationalError`` and ``InterfaceError`` without a SQLSTATE, unless
  the connection the call ran on is still healthy: then psycopg refused the
  statement itself, such as one with more than 65,535 parameters; and
  SQLSTATE class 08);
* the server is shutting down or starting up (57P01, 57P02, 57P03);
* a timeout passed: ``statement_timeout`` (57014), ``lock_timeout``
  (55P03), an idle-in-transaction timeout (25P03), or the pool found no
  free connection in time;
* the watchdog ended the call: the server stopped answering (hung or
  stopped) for the URL's ``timeout``, whatever error the cut connection
  then raised;
* the server is out of resources: too many connections, disk full
  (class 53);
* the server refused the store's own credentials or privileges: a login
  it no longer accepts (class 28), a privilege revoked or never granted
  (42501), at open or at any later call. That is the store's
  configuration, not the call's input: the next store serves, as it would
  during an outage, and ``health()`` says why;
* the server is set up so that it cannot serve whatever the call: it is
  read-only (25006: a hot standby, ``default_transaction_read_only``), or
  the store's tables are gone since it opened them (42P01); not where a
  function of the application's raised them.

Everything else (a constraint violation, a syntax error: a bug) keeps its
class and meaning, because falling through on a bug would hide it.

Messages name the server and the driver's error text, never the SQL, its
parameters, or the password: SQLAlchemy's own messages carry the SQL and
its parameters (user data), and every text is passed through
:meth:`fallthrough.kit.Endpoint.redact` with the URL's secrets before it is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import exc

from fallthrough.errors import BackendUnavailable
from fallthrough.kit import Endpoint

if TYPE_CHECKING:
    from .watchdog import Watch

_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P")
_UNAVAILABLE_SQLSTATES = frozenset({"57014", "55P03", "25P03"})
_REFUSED_SQLSTATE_CLASSES = ("28",)
_REFUSED_SQLSTATES = frozenset({"42501"})
_REFUSING_ROUTINES = ("aclcheck_error", "nextval_internal")
"""Where the server refuses a role a privilege (``permission denied for …``, ``must be owner of …``; a
sequence's, which its own functions check, for a default the application added).

A 42501 from anywhere else judged the call: a row-level security policy
(``ExecWithCheckOptions``) refusing the row it wrote, a trigger's ``RAISE``
(``exec_stmt_raise``). The routine is checked, not the message, which the
server translates (``lc_messages``).
"""
_STATEMENT_LINES = ("LINE ", "CONTEXT:", "DETAIL:", "QUERY:")
_CANNOT_SERVE_AS_SET_UP = {
    "25006": "is read-only (a hot standby, or default_transaction_read_only): it cannot take writes",
    "42P01": "cannot find its tables (dropped since it opened them?): a Store opened anew creates them empty, "
    "and Store.repair() then copies back what the other stores hold",
}
"""Errors of a server set up so that the store cannot serve, whatever the call: its tables gone from under it,
or every transaction read-only. The plugin's statements name only its own tables, and it never starts a
read-only transaction itself; so neither is a bug of the call, and the next store serves. Raised inside a
function, they count only where the function is the plugin's own (:data:`_OWN_FUNCTIONS`): a trigger the
application added to ``processing_results`` that writes to a table it dropped is the application's bug."""
_OWN_FUNCTIONS = ("fallthrough_count_statuses", "fallthrough_records_page")


def is_unavailable(error: BaseException, connection: psycopg.Connection[Any] | None = None) -> bool:
    """True if ``error`` (a psycopg error) means the server cannot serve now: an outage.

    A refusal of the store's role (:func:`is_refused`) falls through too,
    but is told apart in messages; :func:`unavailability` asks both.

    :param connection: the connection the failed call ran on, once one was
        checked out; None while connecting.
    """
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        # Connection failures carry no SQLSTATE; server-side operational
        # errors do, and are judged by it below. psycopg's own refusals
        # carry none either, but leave the connection healthy.
        sqlstate = getattr(error, "sqlstate", None)
        if sqlstate is None:
            return connection is None or connection.closed or connection.broken
    sqlstate = getattr(error, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return False
    return sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)


@contextmanager
def translate_errors(
    endpoint: Endpoint,
    checked_out: Sequence[psycopg.Connection[Any]] = (),
    watch: Watch | None = None,
) -> Iterator[None]:
    """Turn unavailability errors raised inside the block into BackendUnavailable (see :func:`unavailability`).

    :param checked_out: the connection of the block, once it has one (the
        block appends it).
    """
    try:
        yield
    except (exc.SQLAlchemyError, psycopg.Error, BackendUnavailable) as error:
        replacement = unavailability(endpoint, error, checked_out[0] if checked_out else None, watch)
        if replacement is None:
            raise
        raise replacement from None


def unavailability(
    endpoint: Endpoint,
    error: BaseException,
    connection: psycopg.Connection[Any] | None = None,
    watch: Watch | None = None,
) -> BackendUnavailable | None:
    """The BackendUnavailable to raise instead of ``error``; None if ``error`` stands as it is.

    :param endpoint: names the server in messages and holds the secrets no
        message may show.
    :param error: what a call raised.
    :param connection: the connection the call ran on, once one was checked
        out; None while connecting. It tells a lost connection from a
        refused call.
    :param watch: the call's watch (:mod:`.watchdog`): once it fired, any
        driver error is the cut connection's, and the call timed out.
    """
    if not isinstance(error, exc.SQLAlchemyError | psycopg.Error | BackendUnavailable):
        return None
    if watch is not None and watch.fired:
        return endpoint.unavailable(
            f"is unavailable: timed out: the server did not answer for {watch.timeout:g} s "
            "(hung or stopped); the call's connection was closed"
        )
    if isinstance(error, exc.TimeoutError):
        return BackendUnavailable(f"{endpoint}: timed out waiting for a pooled connection")
    original = error.orig if isinstance(error, exc.DBAPIError) else error
    if not isinstance(original, psycopg.Error):
        return None
    if is_refused(original):
        return _unavailable(endpoint, original, "refused the call")
    set_up_wrong = _set_up_so_it_cannot_serve(original)
    if set_up_wrong is not None:
        return _unavailable(endpoint, original, set_up_wrong)
    if is_unavailable(original, connection) or (isinstance(error, exc.DBAPIError) and error.connection_invalidated):
        return _unavailable(endpoint, original)
    return None


def _set_up_so_it_cannot_serve(error: psycopg.Error) -> str | None:
    """What is wrong with the server's set-up, if ``error`` says.

    None when it does not: a read-only transaction or a missing table that
    a function of the application's raised (its context names no function
    of the plugin's) is about the call.
    """
    why = _CANNOT_SERVE_AS_SET_UP.get(error.sqlstate or "")
    if why is None:
        return None
    context = error.diag.context
    if context and not any(function in context for function in _OWN_FUNCTIONS):
        return None
    return why


def is_refused(error: psycopg.Error) -> bool:
    """True if the server refused the store's login or privileges: its configuration, not the call's input.

    A 42501 counts only where the server's privilege check raised it
    (:data:`_REFUSING_ROUTINES`), or where the server did not say (a pooler
    in between): a row-level security policy or a trigger raising it judged
    the row the call wrote.
    """
    sqlstate = getattr(error, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return False
    if sqlstate in _REFUSED_SQLSTATES:
        routine = getattr(error.diag, "source_function", None)
        return routine is None or str(routine).startswith(_REFUSING_ROUTINES)
    return sqlstate.startswith(_REFUSED_SQLSTATE_CLASSES)


_UNOPENABLE_SQLSTATES = frozenset({"3F000"})
"""At open: a ``search_path`` naming no schema to create the tables in. A store so configured cannot serve,
as one that is down cannot: the Store falls through to the next rather than fail every call, and
``health()`` says why. (A role that may not create them, PostgreSQL 15 and later giving no CREATE on
``public`` but to its owner, is 42501: refused, at open as at any call.)"""


def unopenable(endpoint: Endpoint, error: BaseException) -> BackendUnavailable | None:
    """The BackendUnavailable to raise instead of ``error`` raised while opening; None if it stands as it is."""
    original = error.orig if isinstance(error, exc.DBAPIError) else error
    if isinstance(original, psycopg.Error) and getattr(original, "sqlstate", None) in _UNOPENABLE_SQLSTATES:
        return _unavailable(endpoint, original, "cannot create its tables")
    return None


def _unavailable(endpoint: Endpoint, error: psycopg.Error, why: str = "is unavailable") -> BackendUnavailable:
    # The driver's own text (never SQLAlchemy's, which repeats the SQL and
    # its parameters), with any secret masked; the original exception is
    # not chained, so a traceback cannot show it either.
    detail = _without_the_statement(str(error)) or type(error).__name__
    sqlstate = getattr(error, "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    return BackendUnavailable(endpoint.redact(f"{endpoint} {why}: {type(error).__name__}{code}: {detail}"))


def _without_the_statement(text: str) -> str:
    """The server's message without the lines that may quote a statement or its data.

    The primary message comes first; from the first ``LINE n:`` (the
    statement, and its caret), ``DETAIL:`` (may hold a row's values),
    ``QUERY:`` or ``CONTEXT:`` (a function's statement) on, only ``HINT:``
    lines are kept. A connection error's own lines have none of these.
    """
    kept: list[str] = []
    past_the_message = False
    for line in text.strip().splitlines():
        if line.startswith("HINT:"):
            kept.append(line)
        elif line.startswith(_STATEMENT_LINES):
            past_the_message = True
        elif not past_the_message:
            kept.append(line)
    return "\n".join(kept).strip()


__all__ = [
    "is_refused",
    "is_unavailable",
    "translate_errors",
    "unavailability",
    "unopenable",
]
