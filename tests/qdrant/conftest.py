"""Fixtures of the Qdrant backend tests: both local modes, each store fresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.twin import Twin
from fallthrough_qdrant import QdrantBackend


@pytest.fixture(params=["memory", "local"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An in-memory URL and a directory URL: every test taking it runs on both."""
    return "qdrant+memory://" if request.param == "memory" else f"qdrant+local:///{tmp_path}/qdrant"


@pytest.fixture
def driver(url: str) -> Iterator[HookDriver]:
    """The backend on ``url``, opened, called through its hooks as the core calls it."""
    hooks = HookDriver(QdrantBackend(url), "qdrant")
    hooks.open()
    yield hooks
    hooks.close()


@pytest.fixture
def twin(driver: HookDriver) -> Twin:
    """The backend beside the reference model: every call must agree."""
    return Twin(driver, driver.open())
