"""Schema version 6: the ``vector`` copy of every stored vector, on a real PostgreSQL 18 with pgvector.

* A version 5 database (HNSW indexes on ``embedding::vector(d)``, no
  vector column) is migrated in place: the column is added and filled, the
  indexes are rebuilt on it, and searches find what they found before.
* The column follows ``embedding`` whatever writes it (it is generated), and
  is NULL past pgvector's type limit.
* Searches, the exact scan included, read the column: no per-row cast of
  ``real[]`` appears in their plans.
* The extension dropped (which drops the column and the indexes) and
  installed again: the next open adds the column and the indexes back.
"""

from __future__ import annotations

import random

from fallthrough.filters import parse_filter
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Document, SearchQuery
from fallthrough.validation import check_vector
from fallthrough_postgresql import search as pg_search
from fallthrough_postgresql import vectors
from fallthrough_postgresql.documents import index_name
from fallthrough_postgresql.schema import SCHEMA_VERSION, VECTOR_COLUMN
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import Hooks, direct, open_backend

DIMENSION = 8


def _documents(count: int, seed: int) -> list[Document]:
    rng = random.Random(seed)
    return [
        Document(
            f"d{index:03}", f"doc {index}", vector=[rng.gauss(0, 1) for _ in range(DIMENSION)], metadata={"n": index}
        )
        for index in range(count)
    ]


def _queries(seed: int) -> list[SearchQuery]:
    rng = random.Random(seed)
    queries = []
    for index in range(6):
        vector = check_vector([rng.gauss(0, 1) for _ in range(DIMENSION)])
        spec = None if index % 2 else parse_filter({"n": {"lt": 30}})
        queries.append(SearchQuery(vector, None, spec, 10))
    return queries


def _same_hits(hooks: Hooks, model: Hooks, collection: str) -> None:
    for query in _queries(7):
        got = hooks.fallthrough_search(collection=collection, query=query)
        want = model.fallthrough_search(collection=collection, query=query)
        assert [hit.id for hit in got] == [hit.id for hit in want]
        assert all(abs(a.score - b.score) <= 1e-5 for a, b in zip(got, want, strict=True))


def _index_definition(url: str, collection: str) -> str | None:
    with direct(url) as conn:
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index_name(collection),)).fetchone()
    return None if row is None else str(row[0])


def _to_version_5(url: str, collection: str) -> None:
    """What release 5 left: no vector column, the collection's HNSW index on the real[] cast, version 5."""
    with direct(url) as conn:
        conn.execute(f"ALTER TABLE fallthrough_documents DROP COLUMN {VECTOR_COLUMN}")
        conn.execute(
            f"CREATE INDEX {index_name(collection)} ON fallthrough_documents "
            f"USING hnsw ((embedding::vector({DIMENSION})) vector_cosine_ops) "
            f"WHERE collection = '{collection}' AND embedding IS NOT NULL"
        )
        conn.execute("DELETE FROM fallthrough_schema_version")
        conn.execute("INSERT INTO fallthrough_schema_version VALUES (5)")


def test_a_version_5_database_gets_the_column_filled_and_its_indexes_rebuilt_on_it(pgvector_server: Server) -> None:
    url = pgvector_server.new_database()
    hooks, model = open_backend(url), Hooks(ReferenceBackend())
    documents = _documents(120, 1)
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection="old", documents=documents, version=1)
    hooks.fallthrough_close()
    _to_version_5(url, "old")
    assert VECTOR_COLUMN not in (_index_definition(url, "old") or "")

    hooks = open_backend(url)
    definition = _index_definition(url, "old")
    assert definition is not None and f"({VECTOR_COLUMN})::vector({DIMENSION})" in definition
    with direct(url) as conn:
        assert conn.execute("SELECT max(version) FROM fallthrough_schema_version").fetchone() == (SCHEMA_VERSION,)
        # Filled from real[]: the same components, for every row.
        assert conn.execute(
            f"SELECT count(*) FILTER (WHERE {VECTOR_COLUMN}::real[] = embedding), count(*) FROM fallthrough_documents"
        ).fetchone() == (120, 120)
    _same_hits(hooks, model, "old")
    # Writes after the migration fill the column too.
    more = _documents(130, 2)[120:]
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection="old", documents=more, version=2)
    _same_hits(hooks, model, "old")
    hooks.fallthrough_close()


def test_the_column_follows_embedding_whoever_writes_it(pgvector_database: str) -> None:
    hooks = open_backend(pgvector_database)
    hooks.fallthrough_upsert_documents(
        collection="follows", documents=[Document("a", "x", vector=[1.0, 0.0]), Document("b", "y")], version=1
    )
    with direct(pgvector_database) as conn:

        def column() -> list[tuple[str, str | None]]:
            return conn.execute(
                f"SELECT id, {VECTOR_COLUMN}::text FROM fallthrough_documents WHERE collection = 'follows' ORDER BY id"
            ).fetchall()

        assert column() == [("a", "[1,0]"), ("b", None)]
        # SQL of one's own that writes only embedding (as an older release would) cannot leave it stale.
        conn.execute("UPDATE fallthrough_documents SET embedding = '{0,1}' WHERE collection = 'follows' AND id = 'a'")
        assert column() == [("a", "[0,1]"), ("b", None)]
        conn.commit()
    assert hooks.fallthrough_delete_documents(collection="follows", ids=["a"], version=2) == 1
    with direct(pgvector_database) as conn:
        assert conn.execute(
            f"SELECT {VECTOR_COLUMN} IS NULL FROM fallthrough_documents WHERE collection = 'follows' AND id = 'a'"
        ).fetchone() == (True,)
    hooks.fallthrough_close()


def test_vectors_past_the_vector_type_have_no_copy_and_are_still_searched(pgvector_database: str) -> None:
    dimension = 16_001
    hooks = open_backend(pgvector_database)
    rng = random.Random(3)
    documents = [Document(f"w{index}", "x", vector=[rng.gauss(0, 1) for _ in range(dimension)]) for index in range(3)]
    hooks.fallthrough_upsert_documents(collection="past", documents=documents, version=1)
    with direct(pgvector_database) as conn:
        assert conn.execute(
            f"SELECT count(*) FROM fallthrough_documents WHERE collection = 'past' AND {VECTOR_COLUMN} IS NULL"
        ).fetchone() == (3,)
    query = SearchQuery(documents[1].vector, None, None, 1)
    assert [hit.id for hit in hooks.fallthrough_search(collection="past", query=query)] == ["w1"]
    hooks.fallthrough_close()


def test_the_distance_searches_use_reads_the_vector_column_and_casts_no_row(pgvector_database: str) -> None:
    """The exact scan's plan: its distance is computed on the stored vector, not on a cast of real[]."""
    hooks = open_backend(pgvector_database)
    hooks.fallthrough_upsert_documents(collection="plans", documents=_documents(50, 4), version=1)
    hooks.fallthrough_close()
    distance = pg_search.cosine_distance(DIMENSION)
    with direct(pgvector_database) as conn:
        vectors.register(conn)
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                f"EXPLAIN (VERBOSE, COSTS OFF) SELECT id, 1 - ({distance}) FROM fallthrough_documents "
                f"WHERE collection = 'plans' AND {VECTOR_COLUMN} IS NOT NULL ORDER BY ({distance}) + 0, id LIMIT 5",
                {"vector": vectors.Float4Array.of([1.0] * DIMENSION)},
            )
        )
    assert f"{VECTOR_COLUMN})::vector({DIMENSION}) <=>" in plan, plan
    assert "(embedding)::vector" not in plan and "embedding::vector" not in plan, plan
