"""Streamed creates on Qdrant's local mode: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

import pytest

from fallthrough.testing.suite.streaming import StreamingConformance


class TestQdrantStreaming(StreamingConformance):
    @pytest.fixture
    def store_url(self, url: str) -> str:
        return url  # qdrant+memory:// and qdrant+local:///dir (tests/qdrant/conftest.py)
