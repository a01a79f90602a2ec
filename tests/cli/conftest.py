"""The PostgreSQL servers of tests/postgresql, for the CLI tests that run against a real one."""

from tests.postgresql.conftest import pgvector_server

__all__ = ["pgvector_server"]
