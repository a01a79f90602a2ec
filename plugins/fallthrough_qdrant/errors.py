"""Mapping qdrant-client errors onto the fallthrough error contract.

Only errors that mean "the store cannot serve now" become
:class:`~fallthrough.errors.BackendUnavailable`, the one error the router
falls through on:

* :class:`~qdrant_client.http.exceptions.ResponseHandlingException`, which
  wraps the httpx error of a REST call that got no answer (refused, reset,
  timed out);
* gRPC ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` and the server-side failures
  that a REST call reports as 5xx;
* HTTP 5xx, 408 (request timeout) and 429 (overloaded; with a
  ``Retry-After`` header qdrant-client raises its own
  ``ResourceExhaustedResponse`` for it, or a bare ``QdrantException`` when
  the header is an HTTP date);
* local mode's refusal to open a directory that another client holds, and
  its failure to write that directory (a disk full, failing or read-only, a
  directory it may not write: local mode keeps every point in a SQLite file
  there, and its lock file beside them);
* HTTP 401/403 and gRPC ``UNAUTHENTICATED``/``PERMISSION_DENIED``: the
  server refused the store's API key (:class:`QdrantAccessDenied`). That is
  the store's configuration, not the call's input: the next store serves,
  as during an outage, and ``health()`` says why. Qdrant 1.13 and 1.14
  answered a strict-mode refusal (a filter on a field without an index)
  with 403 too; that one is about the call, and is ``InvalidInput``, as
  later servers' 400 is.

A REST answer qdrant-client cannot read (it wraps the parse error in
``ResponseHandlingException``, as it wraps transport errors) is
:class:`QdrantProtocolError`: the server answered, so it is not an outage.

A 404 is :class:`~fallthrough.errors.NotFound`, and any other 4xx is
:class:`~fallthrough.errors.InvalidInput`: the server rejected what it was
sent, and falling through would hide that.

Messages never contain the API key: it travels in a header, which neither
httpx nor gRPC errors repeat, and every message is redacted against it
anyway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from fallthrough.errors import BackendUnavailable, FallthroughError, InvalidInput, NotFound
from fallthrough.kit import UNWRITABLE_STORAGE_ERRNOS, Endpoint

_UNAVAILABLE_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        # What REST reports as a 5xx.
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
    }
)
_DENIED_GRPC_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
_UNAVAILABLE_HTTP_CODES = frozenset({408, 429})
_STRICT_MODE = "strict mode"
"""What Qdrant's strict-mode refusals say, in their reason (1.13 and 1.14 sent them as 403 / PERMISSION_DENIED)."""

_STORAGE_FAILURE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})
"""Primary result codes of local mode's SQLite file that mean its disk, not the call: full, failing, or read-only."""

LOCKED_DIRECTORY_MESSAGE = "is already accessed by another instance of Qdrant client"
"""What qdrant-client's local mode says when a second client opens a directory."""


class QdrantAccessDenied(BackendUnavailable, PermissionError):
    """The server refused the API key (HTTP 401/403, gRPC UNAUTHENTICATED/PERMISSION_DENIED).

    The store cannot serve until its key is mended, as one that is down
    cannot: it falls through (and counts towards the circuit breaker, so a
    refused key is not sent again on every call).
    """


class QdrantProtocolError(FallthroughError):
    """The server answered something qdrant-client cannot read: another Qdrant version, or not Qdrant.

    The server is reachable and will answer the same way again: it does not fall through.
    """


_RETRY_AFTER_MESSAGE = "Retry-After header value is not a valid integer"
_TRANSPORT_ERRORS = (httpx.TransportError, TimeoutError, ConnectionError)


@contextmanager
def translate_errors(endpoint: Endpoint) -> Iterator[None]:
    """Turn qdrant-client errors raised inside the block into fallthrough errors.

    :param endpoint: names the store in messages and holds the API key, kept
        out of every message.
    """
    try:
        yield
    except FallthroughError:
        raise
    except ResponseHandlingException as error:
        cause = error.source
        if not isinstance(cause, _TRANSPORT_ERRORS):
            raise QdrantProtocolError(
                endpoint.redact(f"{endpoint} answered what the client cannot read: {type(cause).__name__}: {cause}")
            ) from None
        raise endpoint.unavailable("is unavailable", cause) from cause
    except ResourceExhaustedResponse as error:
        raise endpoint.unavailable(f"is overloaded (HTTP 429), retry after {error.retry_after_s} s: {error}") from None
    except QdrantException as error:
        # A 429 whose Retry-After is an HTTP date, which qdrant-client fails to read as seconds.
        if _RETRY_AFTER_MESSAGE not in str(error):
            raise
        raise endpoint.unavailable(f"is overloaded (HTTP 429): {error}") from None
    except UnexpectedResponse as error:
        raise _from_status(endpoint, error.status_code, _reason(error)) from None
    except grpc.RpcError as error:
        raise _from_grpc(endpoint, error) from None
    except _TRANSPORT_ERRORS as error:
        raise endpoint.unavailable("is unavailable", error) from error
    except OSError as error:
        # Local mode's own files (its directory's lock, a collection's directory made at its first
        # write), or a file a server client reads (a CA bundle): the error names the file.
        if error.errno not in UNWRITABLE_STORAGE_ERRNOS:
            raise
        raise endpoint.unavailable("cannot use its files", error) from None
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", None)
        if not isinstance(code, int) or code & 0xFF not in _STORAGE_FAILURE_CODES:
            raise
        # The points in memory may hold part of the write: a hint replays it whole, and reads go elsewhere.
        raise endpoint.unavailable("cannot write its directory", error) from None
    except RuntimeError as error:
        if LOCKED_DIRECTORY_MESSAGE not in str(error):
            raise
        raise endpoint.unavailable(
            "is locked: the directory is already open by another Qdrant client, in this process or "
            "another; local mode allows one client per directory. Close the other client (Store), or use "
            "a Qdrant server for shared access"
        ) from None


def _reason(error: UnexpectedResponse) -> str:
    try:
        content = error.content.decode("utf-8", "replace")
    except Exception:
        content = ""
    return f"{error.reason_phrase} {content[:300]}".strip()


def _from_status(endpoint: Endpoint, status: int | None, reason: str) -> FallthroughError:
    text = endpoint.redact(f"{endpoint} answered HTTP {status}: {reason}")
    if status is None or status >= 500 or status in _UNAVAILABLE_HTTP_CODES:
        return BackendUnavailable(text)
    if status in (401, 403) and _STRICT_MODE not in reason.lower():
        return QdrantAccessDenied(text)
    if status == 404:
        return NotFound(text)
    return InvalidInput(text)


def _from_grpc(endpoint: Endpoint, error: grpc.RpcError) -> FallthroughError:
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else ""
    code_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    text = endpoint.redact(f"{endpoint} answered gRPC {code_name}: {details}")
    if code is None or code in _UNAVAILABLE_GRPC_CODES:
        return BackendUnavailable(text)
    if code in _DENIED_GRPC_CODES and _STRICT_MODE not in str(details).lower():
        return QdrantAccessDenied(text)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(text)
    return InvalidInput(text)


def is_already_exists(error: BaseException) -> bool:
    """True if ``error`` says a collection being created exists already (another process won the race)."""
    if isinstance(error, UnexpectedResponse):
        return error.status_code in (400, 409) and b"already exists" in error.content
    if isinstance(error, grpc.RpcError):
        return "already exists" in str(error)
    return isinstance(error, ValueError) and "already exists" in str(error)


__all__ = [
    "LOCKED_DIRECTORY_MESSAGE",
    "QdrantAccessDenied",
    "QdrantProtocolError",
    "is_already_exists",
    "translate_errors",
]
