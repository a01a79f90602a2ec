"""Streamed creates on PostgreSQL: bounded reads of the generator, nothing left by bad input."""

from __future__ import annotations

import pytest

from fallthrough.testing.suite.streaming import StreamingConformance


class TestPostgresqlStreaming(StreamingConformance):
    @pytest.fixture
    def store_url(self, pgvector_database: str) -> str:
        return pgvector_database.replace("postgresql://", "postgresql+psycopg://", 1)
