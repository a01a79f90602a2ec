"""Which engine errors mean "unavailable".

qdrant-edge raises plain :class:`Exception` with a message (0.9 has no error
classes), so the mapping reads the message. Two cases are outages: the
shard directory is locked by another open shard (another process, or
another backend object in this one), and the shard was closed under the
call. Everything else, a dimension mismatch that slipped past the checks
included, is a bug and propagates as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fallthrough.errors import BackendUnavailable
from fallthrough.kit import Endpoint

# The WAL is locked by an open shard: "Can't init WAL: Kind(WouldBlock)".
_LOCKED = ("WouldBlock", "Resource temporarily unavailable")
_CLOSED = ("Shard is not initialized",)


def is_locked(error: BaseException) -> bool:
    return any(marker in str(error) for marker in _LOCKED)


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
        raise


__all__ = ["is_locked", "translate_errors"]
