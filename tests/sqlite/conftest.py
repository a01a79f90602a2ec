"""Fixtures of the SQLite backend tests: a Twin (the backend beside the model) on every kind of URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from fallthrough_sqlite import SqliteBackend
from tests.sqlite.helpers import Twin, file_url


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An in-memory URL and a file URL: every twin test runs on both."""
    return "sqlite://" if request.param == "memory" else file_url(tmp_path / "store.db")


@pytest.fixture
def twin(url: str) -> Iterator[Twin]:
    backend = SqliteBackend(make_url(url))
    pair = Twin(backend)
    yield pair
    pair.backend.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "shared.db"
