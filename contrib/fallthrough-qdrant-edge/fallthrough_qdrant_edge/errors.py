"""Which engine errors mean "unavailable".

qdrant-edge raises plain :class:`Exception` with a message (0.9 has no error
classes), so the mapping reads the message. Three cases are outages: the
shard directory is locked by another open shard (another process, or
another backend object in this one), the shard was closed under the
call, and the engine could not write its files (the operating system's
error, which the engine quotes as ``(os error N)``, is one of
:data:`fallthrough.kit.UNWRITABLE_STORAGE_ERRNOS`: a disk read-only, full
or failing). Everything else, a dimension mismatch that slipped past the
checks included, is a bug and propagates as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fallthrough.errors import BackendUnavailable
from fallthrough.kit import UNWRITABLE_STORAGE_ERRNOS, Endpoint

# The WAL is locked by an open shard: "Can't init WAL: Kind(WouldBlock)".
_LOCKED = ("WouldBlock", "Resource temporarily unavailable")
_CLOSED = ("Shard is not initialized",)
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def is_locked(error: BaseException) -> bool:
    return any(marker in str(error) for marker in _LOCKED)


def cannot_write(error: BaseException) -> bool:
    """True if the engine's message quotes an operating system error that says its files cannot be written."""
    return any(int(number) in UNWRITABLE_STORAGE_ERRNOS for number in _OS_ERROR.findall(str(error)))


@contextmanager
def translate_errors(endpoint: Endpoint) -> Iterator[None]:
    """Turn the engine's outage errors, raised inside the block, into BackendUnavailable.

    :param endpoint: names the shard directory in messages.
    """
    try:
        yield
    except BackendUnavailable:
        raise
    except OSError as error:
        raise BackendUnavailable(endpoint.redact(f"{endpoint}: {error}")) from error
    except Exception as error:
        if is_locked(error):
            raise BackendUnavailable(
                f"{endpoint}: the shard directory is already open (only one shard may be open per directory, "
                "in this process or another)"
            ) from error
        if any(marker in str(error) for marker in _CLOSED):
            raise BackendUnavailable(f"{endpoint}: the shard is closed") from error
        if cannot_write(error):
            raise BackendUnavailable(endpoint.redact(f"{endpoint} cannot write its directory: {error}")) from error
        raise


__all__ = ["cannot_write", "is_locked", "translate_errors"]
