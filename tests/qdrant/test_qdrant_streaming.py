"""Streamed creates on Qdrant's local mode: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

import pytest

from fallthrough.testing.suite.streaming import StreamingConformance


class TestQdrantStreaming(StreamingConformance):
    # Local mode writes about 15,000 records a second here. Its writes are in flight two chunks at a time
    # (it declares no parallel_calls), so the generator may run three chunks ahead: 70,000 keys leave four
    # checks past that distance to catch a store that falls further behind.
    generator_size = 70_000

    @pytest.fixture
    def store_url(self) -> str:
        # Memory only: the directory variant persists every write (about 45 s a test here) and streams the same
        # way; the conformance suite covers it for delete_records, the hook a take-back uses.
        return "qdrant+memory://"
