"""The qdrant-edge backend passes the whole conformance suite, built through the public registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from fallthrough.registry import Registry
from fallthrough.testing.suite import BackendConformance, ExtremesConformance, SearchConformance
from fallthrough.types import Capabilities

EVERYTHING = Capabilities(
    records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
)


class TestQdrantEdge(BackendConformance):
    """One directory per test; the state machine reopens the same backend for every run, data kept."""

    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self, store_dir: Path) -> object:
        # Four slashes: an absolute directory, as SQLAlchemy spells sqlite:////abs/path.
        return Registry().create(f"qdrant+edge:///{store_dir}/store")


class TestQdrantEdgeWithOneCollectionOpen(BackendConformance):
    """The whole suite with one collection shard open at a time: every other use closes one and opens another."""

    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self, store_dir: Path) -> object:
        return Registry().create(f"qdrant+edge:///{store_dir}/store?open_collections=1")


class TestQdrantEdgeSearchingItsHnswGraph(SearchConformance, ExtremesConformance):
    """Search and the hard cases again, with the optimiser run before every vector search (``optimize_after=1``)."""

    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self, store_dir: Path) -> object:
        return Registry().create(f"qdrant+edge:///{store_dir}/store?optimize_after=1")
