"""The SQLite backend passes the conformance suite, in memory and on a file.

The backend is built from its URL through the registry, as ``connect`` does,
so this also checks that the ``sqlite`` entry point resolves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fallthrough.registry import Registry
from fallthrough.testing.suite import BackendConformance
from fallthrough.types import Capabilities

# sqlite:// is the embedded default store, so it must do everything. parallel_calls=2 in memory and on a
# file: AsyncStore's default bound (plugins/fallthrough_sqlite/backend.py says why).
EVERYTHING = Capabilities(
    records=True,
    documents=True,
    vector_search=True,
    text_search=True,
    filter_search=True,
    claims=True,
    parallel_calls=2,
)


class TestSqliteInMemory(BackendConformance):
    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self) -> object:
        return Registry().create("sqlite://")


class TestSqliteFile(BackendConformance):
    """On a file, which the state machine test reopens for every run while earlier runs' data stays."""

    capabilities = EVERYTHING

    @pytest.fixture
    def backend(self, tmp_path: Path) -> object:
        return Registry().create(f"sqlite:///{tmp_path}/x.db")
