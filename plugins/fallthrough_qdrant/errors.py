"""Mapping qdrant-client errors onto the fallthrough error contract.

Only errors that mean "the store cannot serve now" become
:class:`~fallthrough.errors.BackendUnavailable`, the one error the router
falls through on:

* :class:`~qdrant_client.http.exceptions.ResponseHandlingException`, which
  wraps the httpx error of a REST call that got no answer (refused, reset,
  timed out);
* gRPC ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` and the server-side failures
  that a REST call reports as 5xx;
* HTTP 5xx, 408 (request timeout) and 429 (overloaded);
* local mode's refusal to open a directory that another client holds.

A 404 is :class:`~fallthrough.errors.NotFound`, 401/403 is
:class:`QdrantAccessDenied`, and any other 4xx is
:class:`~fallthrough.errors.InvalidInput`: the server rejected what it was
sent, and falling through would hide that.

Messages never contain the API key: it travels in a header, which neither
httpx nor gRPC errors repeat, and every message is redacted against it
anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import grpc
import httpx
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from fallthrough.errors import BackendUnavailable, FallthroughError, InvalidInput, NotFound
from fallthrough.urls import redact

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

LOCKED_DIRECTORY_MESSAGE = "is already accessed by another instance of Qdrant client"
"""What qdrant-client's local mode says when a second client opens a directory."""


class QdrantAccessDenied(FallthroughError, PermissionError):
    """The server refused the API key (HTTP 401/403, gRPC UNAUTHENTICATED/PERMISSION_DENIED).

    A configuration error, not an outage: it does not fall through.
    """


@contextmanager
def translate_errors(name: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn qdrant-client errors raised inside the block into fallthrough errors.

    :param name: how to name the store in messages (a masked URL).
    :param secrets: strings to keep out of every message (the API key).
    """
    hidden = [secret for secret in secrets if secret]
    try:
        yield
    except FallthroughError:
        raise
    except ResponseHandlingException as error:
        cause = error.source
        raise BackendUnavailable(
            redact(f"qdrant {name} is unavailable: {type(cause).__name__}: {cause}", hidden)
        ) from cause
    except UnexpectedResponse as error:
        raise _from_status(name, error.status_code, _reason(error), hidden) from None
    except grpc.RpcError as error:
        raise _from_grpc(name, error, hidden) from None
    except (httpx.TransportError, TimeoutError, ConnectionError) as error:
        raise BackendUnavailable(
            redact(f"qdrant {name} is unavailable: {type(error).__name__}: {error}", hidden)
        ) from error
    except RuntimeError as error:
        if LOCKED_DIRECTORY_MESSAGE not in str(error):
            raise
        raise BackendUnavailable(
            f"qdrant {name}: the directory is already open by another Qdrant client, in this process or "
            "another; local mode allows one client per directory. Close the other client (Store), or use "
            "a Qdrant server for shared access"
        ) from None


def _reason(error: UnexpectedResponse) -> str:
    try:
        content = error.content.decode("utf-8", "replace")
    except Exception:
        content = ""
    return f"{error.reason_phrase} {content[:300]}".strip()


def _from_status(name: str, status: int | None, reason: str, secrets: list[str]) -> FallthroughError:
    text = redact(f"qdrant {name} answered HTTP {status}: {reason}", secrets)
    if status is None or status >= 500 or status in _UNAVAILABLE_HTTP_CODES:
        return BackendUnavailable(text)
    if status in (401, 403):
        return QdrantAccessDenied(text)
    if status == 404:
        return NotFound(text)
    return InvalidInput(text)


def _from_grpc(name: str, error: grpc.RpcError, secrets: list[str]) -> FallthroughError:
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else ""
    code_name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    text = redact(f"qdrant {name} answered gRPC {code_name}: {details}", secrets)
    if code is None or code in _UNAVAILABLE_GRPC_CODES:
        return BackendUnavailable(text)
    if code in _DENIED_GRPC_CODES:
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


__all__ = ["LOCKED_DIRECTORY_MESSAGE", "QdrantAccessDenied", "is_already_exists", "translate_errors"]
