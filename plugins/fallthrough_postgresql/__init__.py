"""fallthrough_postgresql: the PostgreSQL backend plugin of fallthrough.

It serves ``postgresql://`` and ``postgresql+psycopg://`` URLs with psycopg 3
under SQLAlchemy 2 Core. Records, documents, text and filter search always;
vector search where the database has pgvector. See
``docs/backends/postgresql.md``.

The modules, one job each:

* :mod:`.backend`: the plugin class and its hooks.
* :mod:`.connection`: URL options, the engine and pool, transactions.
* :mod:`.errors`: which driver errors mean "unavailable".
* :mod:`.schema`: the DDL, its creation on first use, pgvector detection.
* :mod:`.records`: batch and record SQL: COPY, the merge, progress counters.
* :mod:`.documents`: document upsert, delete and get; per-collection HNSW indexes.
* :mod:`.search`: text, filter and vector search.
* :mod:`.filters`: the filter tree compiled to jsonb predicates.
"""

from __future__ import annotations

from fallthrough.kit import require_modules

require_modules("PostgreSQL", "postgres", "pgvector", "psycopg")

from .backend import PostgresBackend  # noqa: E402

__all__ = ["PostgresBackend"]
