"""A real qdrant-client in local mode that remembers the calls made on it.

Local mode ignores payload indexes and does not report them
(``get_collection(...).payload_schema`` stays empty), so the indexes a
server needs can only be checked by watching the calls that create them.
Every call goes to the real client unchanged.
"""

from __future__ import annotations

from typing import Any

from qdrant_client import QdrantClient

from fallthrough_qdrant import QdrantBackend


class InjectedFault(Exception):
    """What a call named in :attr:`RecordingClient.fail_after` raises, once its calls that succeed are spent."""


class RecordingClient:
    """Forwards every attribute to ``client``; calls of methods are logged as (name, args, kwargs).

    ``fail_after[name] = n`` lets ``n`` more calls of ``name`` through, then
    makes the next one raise :class:`InjectedFault` without reaching the
    client: a write that fails part way.
    """

    def __init__(self, client: QdrantClient) -> None:
        self._client = client
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail_after: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if name in self.fail_after:
                if self.fail_after[name] == 0:
                    del self.fail_after[name]
                    raise InjectedFault(name)
                self.fail_after[name] -= 1
            return attribute(*args, **kwargs)

        return recorded

    def named(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for called, args, kwargs in self.calls if called == name]


def server_paths(backend: QdrantBackend) -> QdrantBackend:
    """The backend on local mode on a server's paths: scrolled listings, claims, facets, read-back."""
    backend._records.local_order = backend._claims.local_order = None
    backend._records.local_counts = backend._claims.local_counts = None
    backend._documents.local_order = None
    backend._records.verify_writes = backend._claims.verify_writes = True
    return backend


def indexing(backend: QdrantBackend) -> QdrantBackend:
    """The backend on local mode creating the payload indexes it creates on a server (local mode skips them)."""
    backend._database.index_payloads = backend._documents.index_payloads = True
    return backend
