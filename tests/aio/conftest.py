"""What the asyncio API's tests share: a registry with the fault gate, and the stores to run on."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import fallthrough
from tests.core.helpers import gated
from tests.postgresql.conftest import pgvector_database, pgvector_server

__all__ = ["pgvector_database", "pgvector_server"]  # fixtures, imported for the PostgreSQL variant


@pytest.fixture
def registry() -> fallthrough.Registry:
    """A registry of its own with the fault gate as ``flaky``: nothing global."""
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    return registry


@pytest.fixture(params=["sqlite", "postgresql"])
def gated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real store behind a fault gate: a SQLite file, or a database on the PostgreSQL 18 + pgvector server."""
    if request.param == "sqlite":
        return gated(f"sqlite:///{tmp_path}/aio.db")
    database: str = request.getfixturevalue("pgvector_database")
    return gated(database)


def collection_name() -> str:
    """A collection of the test's own (the PostgreSQL database is shared by the session)."""
    return f"aio_{uuid.uuid4().hex[:12]}"
