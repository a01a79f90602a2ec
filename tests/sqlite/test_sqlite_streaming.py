"""Streamed creates on SQLite, in memory and in a file: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fallthrough.testing.suite.streaming import StreamingConformance


class TestSqliteStreaming(StreamingConformance):
    @pytest.fixture(params=["memory", "file"])
    def store_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> str:
        return "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path}/stream.db"
