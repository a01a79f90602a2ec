"""Streamed creates on Qdrant's local mode: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

import pytest

from fallthrough.testing.suite.streaming import StreamingConformance


class TestQdrantStreaming(StreamingConformance):
    # Local mode writes about 2,000 records a second on this machine: 30,000 keys still make three chunks
    # and a half to watch, with the bad key past two whole chunks.
    generator_size = 30_000

    @pytest.fixture
    def store_url(self) -> str:
        # Memory only: the directory variant persists every write (about 45 s a test here) and streams the same
        # way; the conformance suite covers it for delete_records, the hook a take-back uses.
        return "qdrant+memory://"
