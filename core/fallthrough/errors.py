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

from collections.abc import Callable, Mapping


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


class JournalError(FallthroughError):
    """A durable journal cannot be opened, read back or written (a bad path, a file another process holds, damage)."""


class BackendUnavailable(FallthroughError):
    """A backend cannot serve now: unreachable, disconnected or timed out, or it refused its own configuration.

    A store whose server refuses its login, API key or privileges cannot
    serve until an operator mends that, as one that is down cannot; the
    call's input is not at fault. This is the only error that makes the
    router try the next backend.
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


class WrongProcess(FallthroughError):
    """A Store was called in a process other than the one that connected it: a forked child.

    Its connections, locks and threads are the parent's (see
    :mod:`fallthrough.ownership`); nothing was sent to any backend. Connect a
    Store in each process, after the fork.
    """


class TurnHeld(FallthroughError):
    """A write to a batch was made from inside a write to that batch, on the same thread; nothing was sent.

    A write that adds to a batch or removes from it holds the batch's turn
    for its whole fan-out (:mod:`fallthrough.turns`), observers' hooks
    included, and the turn is not re-entrant: the second write would have
    waited for the first, which waits for it. A ``fallthrough_missed_write``
    observer writing to the batch it is told about, for one.
    """


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


_CORE_ERRORS: tuple[type[FallthroughError], ...] = (
    AllBackendsFailed,
    BackendBusy,
    BackendUnavailable,
    UnsupportedQuery,
    PluginError,
    UnknownBackend,
    NotFound,
    FilterError,
    InvalidInput,
    FallthroughError,
)


def shown_text(error: BaseException) -> str:
    """What a message, ``health()`` or a log line may quote of ``error``'s text, before its secrets are masked.

    A fallthrough error's whole text: a plugin wrote it to be shown. Any
    other error's first line only: drivers put the statement, its parameters
    and the row's values on the lines after it (SQLAlchemy's ``[SQL: ...]``
    and ``[parameters: ...]``, libpq's ``LINE 1:`` and ``DETAIL:``), and
    parameters are the caller's data. That is a best effort: a driver that
    quotes a value on its first line (a ``KeyError``) still shows it.
    """
    text = str(error)
    if isinstance(error, FallthroughError):
        return text
    (first, *_) = text.strip().splitlines() or [""]
    return first


def scrubbed(error: Exception, redact: Callable[[str], str]) -> FallthroughError:
    """What reaches a caller instead of ``error``: the same kind of error, carrying nothing else.

    A plugin's translated error may still hold the driver's exception as its
    ``__cause__`` or ``__context__`` (``raise ... from None`` hides the context
    from a traceback but keeps it on the object), and a driver exception holds
    its connection, whose repr may show the password. So the Store never
    re-raises what a backend raised: it raises a new error of the same class
    (or the nearest class of this module, if the plugin's own class cannot be
    rebuilt from a message), with the message passed through ``redact``, no
    chain and no attribute but the message. An exception that is not a
    :class:`FallthroughError` at all (a driver error a plugin let through)
    becomes a :class:`PluginError` naming its type and the first line of its
    message (:func:`shown_text`): a plugin must translate what its driver raises.

    :class:`AllBackendsFailed` keeps its ``operation`` and its ``causes``, each
    scrubbed the same way.
    """
    clean: FallthroughError
    if isinstance(error, AllBackendsFailed):
        causes = {
            name: scrubbed(cause, redact) if isinstance(cause, Exception) else PluginError(type(cause).__name__)
            for name, cause in error.causes.items()
        }
        clean = AllBackendsFailed(error.operation, causes)
    elif isinstance(error, FallthroughError):
        text = redact(str(error))
        clean = _rebuilt(type(error), text)
    else:
        detail = redact(shown_text(error))
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        clean = PluginError(
            f"a backend raised {kind}, which is not a fallthrough error" + (f": {detail}" if detail else "")
        )
    clean.__cause__ = None
    clean.__context__ = None
    clean.__suppress_context__ = True
    clean.__traceback__ = None
    return clean


def _rebuilt(cls: type[FallthroughError], text: str) -> FallthroughError:
    try:
        rebuilt = cls(text)
    except Exception:  # a plugin's class with another constructor
        rebuilt = None
    if isinstance(rebuilt, cls) and str(rebuilt) == text and not vars(rebuilt):
        return rebuilt
    base = next(core for core in _CORE_ERRORS if issubclass(cls, core) and core is not AllBackendsFailed)
    return base(text)


__all__ = [
    "AllBackendsFailed",
    "BackendBusy",
    "BackendUnavailable",
    "FallthroughError",
    "FilterError",
    "InvalidInput",
    "JournalError",
    "NotFound",
    "PluginError",
    "TurnHeld",
    "UnknownBackend",
    "Unsupported",
    "UnsupportedQuery",
    "WrongProcess",
    "scrubbed",
    "shown_text",
]
