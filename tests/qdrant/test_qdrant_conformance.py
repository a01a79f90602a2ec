"""The Qdrant backend passes the conformance suite in both local modes: in memory and on a directory.

The backend is built from its URL through the registry, as ``connect`` does,
so this also checks that the ``qdrant`` entry point resolves. No Qdrant
server runs on these machines; docs/backends/qdrant.md says what only a
server can show.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fallthrough.registry import Registry
from fallthrough.testing.suite import BackendConformance
from fallthrough.types import Capabilities

EVERYTHING = Capabilities(
    records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
)


class TestQdrantInMemory(BackendConformance):
    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self) -> object:
        return Registry().create("qdrant+memory://")


class TestQdrantLocalDirectory(BackendConformance):
    """On a directory of its own per test, with a random collection prefix: the store is not assumed empty."""

    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self, tmp_path: Path) -> object:
        return Registry().create(f"qdrant+local:///{tmp_path}/qdrant?prefix=t{uuid.uuid4().hex[:8]}_")
