"""The distribution's own rootdir conftest (see pyproject.toml)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytester runs `pytest --fallthrough-url qdrant+edge:///...` in process; it
# can only be enabled in a rootdir conftest.
pytest_plugins = ["pytester"]

_MEMORY_FILESYSTEM = Path("/dev/shm")


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for shards, on tmpfs where there is one.

    The engine fsyncs its WAL and flushes a segment for every new payload
    index; on this project's CI disk that is ~130 ms per index, 30 times what
    it costs in memory. The engine does the same work either way.
    """
    if not _MEMORY_FILESYSTEM.is_dir():
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-qdrant-edge-", dir=_MEMORY_FILESYSTEM))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
