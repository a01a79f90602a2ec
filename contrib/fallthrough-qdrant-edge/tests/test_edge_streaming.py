"""Streamed creates on qdrant-edge: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fallthrough.testing.suite.streaming import StreamingConformance


class TestQdrantEdgeStreaming(StreamingConformance):
    generator_size = 30_000  # three chunks and a half are enough to watch; 100,000 takes a minute here

    @pytest.fixture
    def store_url(self, store_dir: Path) -> str:
        return f"qdrant+edge:///{store_dir}/store"
