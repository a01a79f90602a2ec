"""langchain-tests' own ``VectorStoreIntegrationTests``, sync and async, on every kind of store.

Subclassed, not copied: each class only says how to get an empty vector
store. The suite's ``test_no_overrides_DO_NOT_OVERRIDE`` fails if a test of
it is overridden here.
"""

from __future__ import annotations

from collections.abc import Iterator

import fallthrough
import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from langchain_fallthrough import FallthroughVectorStore


class TestSqliteMemory(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Iterator[VectorStore]:  # type: ignore[override]
        with fallthrough.connect("sqlite://") as store:
            yield FallthroughVectorStore(store, self.get_embeddings())

    @property
    def has_async(self) -> bool:
        return True


class TestQdrantMemory(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Iterator[VectorStore]:  # type: ignore[override]
        with fallthrough.connect("qdrant+memory://") as store:
            yield FallthroughVectorStore(store, self.get_embeddings())

    @property
    def has_async(self) -> bool:
        return True


class TestPostgresqlPgvector(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, postgresql_store: fallthrough.Store, collection: str) -> Iterator[VectorStore]:  # type: ignore[override]
        vectorstore = FallthroughVectorStore(postgresql_store, self.get_embeddings(), collection=collection)
        try:
            yield vectorstore
        finally:
            vectorstore.delete()

    @property
    def has_async(self) -> bool:
        return True


class TestFirstStoreDown(VectorStoreIntegrationTests):
    """Qdrant first and down (every call to it fails), PostgreSQL second: every call falls through."""

    @pytest.fixture
    def vectorstore(self, first_down_store: fallthrough.Store, collection: str) -> Iterator[VectorStore]:  # type: ignore[override]
        vectorstore = FallthroughVectorStore(first_down_store, self.get_embeddings(), collection=collection)
        try:
            yield vectorstore
        finally:
            vectorstore.delete()
        # The test was answered by the second store, with the first down throughout.
        assert first_down_store.plugin_manager.get_plugin("flaky").outage

    @property
    def has_async(self) -> bool:
        return True


class TestFirstPostgresqlCrashed(VectorStoreIntegrationTests):
    """Two PostgreSQL servers; the first crashed (``pg_ctl stop -m immediate``) after the Store opened."""

    @pytest.fixture
    def vectorstore(self, crashed_first_store: fallthrough.Store, collection: str) -> Iterator[VectorStore]:  # type: ignore[override]
        vectorstore = FallthroughVectorStore(crashed_first_store, self.get_embeddings(), collection=collection)
        try:
            yield vectorstore
        finally:
            vectorstore.delete()
        first = crashed_first_store.health()[0]
        assert first.name == "postgresql"
        # Its breaker is not closed: the calls failed on it and fell through to the second.
        assert first.state != "closed"
        assert first.last_error is not None

    @property
    def has_async(self) -> bool:
        return True
