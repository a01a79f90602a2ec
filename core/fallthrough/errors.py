"""The exceptions of fallthrough.

The router decides what to do with an error by its class alone, so the
classes carry the contract:

* :class:`BackendUnavailable` is the only error that makes the router fall
  through to the next backend. A plugin maps its driver's "cannot reach",
  "connection lost", "server shutting down" and "timed out" errors to it.
* :class:`InvalidInput`, :class:`NotFound` and every other error propagate
  to the caller at once.

No message built here ever contains a password or an API key: callers pass
names and masked URLs, never raw connection strings.
"""

from __future__ import annotations

from collections.abc import Mapping


class FallthroughError(Exception):
    """The base class of every error that fallthrough raises on purpose."""


class InvalidInput(FallthroughError, ValueError):
    """An argument breaks the documented semantics; nothing was written."""


class FilterError(InvalidInput):
    """A search filter is malformed; it was rejected before any backend ran."""


class NotFound(FallthroughError, LookupError):
    """The batch, record or document named by the call does not exist."""


class UnknownBackend(FallthroughError, LookupError):
    """No installed plugin serves a URL's scheme, or the plugin is broken."""


class PluginError(FallthroughError):
    """A plugin does not keep the hook contract (bad hooks, bad return value)."""


class BackendUnavailable(FallthroughError):
    """A backend cannot serve now: unreachable, disconnected or timed out.

    This is the only error that makes the router try the next backend.
    """


class BackendBusy(BackendUnavailable):
    """A backend is reachable but could not serve in time: a lock held by another process, a full pool.

    It falls through like any :class:`BackendUnavailable`, but it is not an
    outage: it does not count towards opening the circuit breaker, so one
    slow answer does not turn into seconds of refused calls.
    """


class Unsupported(FallthroughError):
    """No configured backend can do what the call needs (claims, for example); nothing was written."""


class UnsupportedQuery(FallthroughError):
    """No configured backend has the capabilities a call needs (a search, or records at all)."""


class AllBackendsFailed(BackendUnavailable):
    """Every backend that could serve a call was unavailable.

    ``causes`` maps each backend's name to the error that ruled it out, in
    the order the backends were tried. A backend skipped because its
    circuit breaker was open appears with a :class:`BackendUnavailable`
    saying so.
    """

    def __init__(self, operation: str, causes: Mapping[str, BaseException]) -> None:
        self.operation = operation
        self.causes: dict[str, BaseException] = dict(causes)
        if causes:
            detail = "; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in causes.items())
        else:
            detail = "no backend is configured for it"
        super().__init__(f"{operation} failed on every backend ({detail})")

    def __reduce__(self) -> tuple[type[AllBackendsFailed], tuple[str, dict[str, BaseException]]]:
        return (type(self), (self.operation, self.causes))


__all__ = [
    "AllBackendsFailed",
    "BackendBusy",
    "BackendUnavailable",
    "FallthroughError",
    "FilterError",
    "InvalidInput",
    "NotFound",
    "PluginError",
    "UnknownBackend",
    "Unsupported",
    "UnsupportedQuery",
]
