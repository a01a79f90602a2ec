"""Vector search with pgvector's HNSW index: used, per collection, and never short of hits."""

from __future__ import annotations

import random
import time

import pytest

from fallthrough.filters import parse_filter
from fallthrough.testing.drivers import fresh_version
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Document, SearchQuery
from fallthrough.validation import check_vector
from fallthrough_postgresql.documents import index_name
from tests.core.helpers import PrintsAsSql
from tests.postgresql.helpers import Hooks, direct, open_backend

DOCUMENTS = 20_000
DIMENSION = 8


@pytest.fixture(scope="module")
def loaded(pgvector_database: str) -> tuple[Hooks, Hooks, str]:
    """One collection of clustered vectors on the server and in the reference model; a tenth are "rare".

    It is big enough that the planner takes the HNSW index for a filtered kNN
    query, where an index scan alone could stop short of ``limit``.
    """
    rng = random.Random(3)
    centres = [[rng.gauss(0, 1) for _ in range(DIMENSION)] for _ in range(20)]
    documents = []
    for index in range(DOCUMENTS):
        centre = centres[index % len(centres)]
        vector = [value + rng.gauss(0, 0.3) for value in centre]
        kind = "rare" if index % 10 == 0 else "common"
        documents.append(Document(f"d{index:05}", f"doc {kind}", vector=vector, metadata={"kind": kind, "n": index}))
    hooks, model = open_backend(pgvector_database), Hooks(ReferenceBackend())
    collection = f"knn-{rng.randrange(10**9)}"
    for relay in (hooks, model):
        relay.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    return hooks, model, collection


def _complete(hooks: Hooks, model: Hooks, collection: str, query: SearchQuery) -> list[str]:
    """Hits that all match, as many as ``min(limit, matches)``, scored with their exact cosine, best first.

    Which of the near neighbours come back is up to the (approximate) index;
    :func:`test_recall_at_ten_against_exact_search_at_the_default_settings` measures that.
    """
    hits = hooks.fallthrough_search(collection=collection, query=query)
    every = model.fallthrough_search(
        collection=collection, query=SearchQuery(query.vector, query.text, query.filter, 10_000)
    )
    exact = {hit.id: hit.score for hit in every}
    assert len(hits) == min(query.limit, len(every))
    assert all(abs(hit.score - exact[hit.id]) <= 1e-4 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    return [hit.id for hit in hits]


def test_each_collection_has_its_own_hnsw_index_and_searches_use_it(
    loaded: tuple[Hooks, Hooks, str], pgvector_database: str
) -> None:
    hooks, _, collection = loaded
    name = index_name(collection)
    with direct(pgvector_database) as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)).fetchone()
        assert definition is not None and "hnsw" in definition[0] and "vector_cosine_ops" in definition[0]
        before = conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (name,)).fetchone()
        rng = random.Random(5)
        for _ in range(5):
            vector = check_vector([rng.gauss(0, 1) for _ in range(DIMENSION)])
            # The index is approximate: only the count and the order are certain here.
            hits = hooks.fallthrough_search(collection=collection, query=SearchQuery(vector, None, None, 10))
            assert len(hits) == 10 and [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
        # The backend's connections report their statistics within a second or so of going idle.
        deadline = time.monotonic() + 10
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s", (name,)).fetchone()
            assert row is not None and before is not None
            if row[0] >= before[0] + 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert row[0] >= before[0] + 5


@pytest.mark.parametrize("limit", [10, 40])
def test_a_selective_filter_still_gets_every_hit_up_to_the_limit(loaded: tuple[Hooks, Hooks, str], limit: int) -> None:
    """A filter that only a few documents pass, far from the query: an HNSW scan alone would stop short."""
    hooks, model, collection = loaded
    rng = random.Random(limit)
    for _ in range(5):
        vector = check_vector([rng.gauss(0, 1) for _ in range(DIMENSION)])
        for spec, matches in (
            ({"n": {"lt": 60}}, 60),
            ({"n": {"gte": DOCUMENTS - 25}}, 25),
            ({"kind": "rare"}, DOCUMENTS // 10),
        ):
            ids = _complete(hooks, model, collection, SearchQuery(vector, None, parse_filter(spec), limit))
            assert len(ids) == min(limit, matches)
        ids = _complete(hooks, model, collection, SearchQuery(vector, "rare", None, limit))
        assert len(ids) == min(limit, DOCUMENTS // 10)


def test_a_limit_beyond_the_candidate_list_still_gets_that_many_hits(loaded: tuple[Hooks, Hooks, str]) -> None:
    hooks, model, collection = loaded
    vector = check_vector([1.0] * DIMENSION)
    assert len(_complete(hooks, model, collection, SearchQuery(vector, None, None, 2500))) == 2500


def test_recall_at_ten_against_exact_search_at_the_default_settings(loaded: tuple[Hooks, Hooks, str]) -> None:
    """Queries from the data's own distribution (a stored vector, moved a little), as real queries are."""
    hooks, model, collection = loaded
    rng = random.Random(11)
    found = 0
    for _ in range(20):
        (near,) = model.fallthrough_get_documents(collection=collection, ids=[f"d{rng.randrange(DOCUMENTS):05}"])
        assert near.vector is not None
        vector = check_vector([value + rng.gauss(0, 0.3) for value in near.vector])
        query = SearchQuery(vector, None, None, 10)
        exact = {hit.id for hit in model.fallthrough_search(collection=collection, query=query)}
        found += len(exact & {hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)})
    assert found / 200 >= 0.95


# Past the 2,000 matches, the index gives fewer rows than the limit and the exact scan runs.
@pytest.mark.parametrize("limit", [3, 3_000], ids=["approximate", "exact"])
def test_the_limit_goes_into_the_sql_as_the_int_it_holds(loaded: tuple[Hooks, Hooks, str], limit: int) -> None:
    """The kNN query writes its limit as a literal; a value the core did not make exact (a hook called directly)."""
    hooks, model, collection = loaded
    query = SearchQuery(check_vector([1.0] * DIMENSION), None, parse_filter({"kind": "rare"}), PrintsAsSql(limit))
    assert len(_complete(hooks, model, collection, query)) == min(limit, DOCUMENTS // 10)


def test_a_dimension_fixed_alone_leaves_the_index_to_the_first_upsert_of_vectors(pgvector_database: str) -> None:
    """A repair's dimension, then text only: no index yet. The first vectors then build it in bulk, and it is used."""
    hooks = open_backend(pgvector_database)
    collection = f"fixed-{random.randrange(10**9)}"
    name = index_name(collection)

    def index_definition() -> str | None:
        with direct(pgvector_database) as conn:
            row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)).fetchone()
        return None if row is None else str(row[0])

    try:
        hooks.fallthrough_fix_collection_dimension(collection=collection, dimension=DIMENSION)
        text_only = [Document("t", "text")]
        hooks.fallthrough_upsert_documents(collection=collection, documents=text_only, version=fresh_version())
        assert index_definition() is None
        rng = random.Random(11)
        documents = [Document(f"v{index}", vector=[rng.gauss(0, 1) for _ in range(DIMENSION)]) for index in range(50)]
        hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
        definition = index_definition()
        assert definition is not None and "hnsw" in definition
        query = SearchQuery(check_vector(documents[7].vector or []), None, None, 1)
        assert [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)] == ["v7"]
    finally:
        hooks.fallthrough_close()
