"""Streamed creates on qdrant-edge: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fallthrough.testing.suite.streaming import StreamingConformance


class TestQdrantEdgeStreaming(StreamingConformance):
    # Writes are in flight two chunks at a time (no parallel_calls declared), so the generator may run three
    # chunks ahead: 70,000 keys leave four checks past that distance (100,000 took a minute here).
    generator_size = 70_000

    @pytest.fixture
    def store_url(self, store_dir: Path) -> str:
        return f"qdrant+edge:///{store_dir}/store"
