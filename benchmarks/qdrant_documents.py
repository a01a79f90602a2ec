"""Iterating a document collection on qdrant-client's local mode: ``Store.documents`` beside the raw client's scroll.

    python -m benchmarks.qdrant_documents                 # 5,000 and 20,000 documents; about a minute
    python -m benchmarks.qdrant_documents --sizes 5000    # one size

Each side reads every document of one collection of the given size, page by
page, interleaved round by round (``benchmarks.harness``), each on a
``qdrant+memory://`` client of its own:

* fallthrough: ``list(store.documents(collection))``, pages of the
  Store's default size in id order;
* raw: what a user writes on qdrant-client without fallthrough, on points
  of the same payload: ``scroll`` pages of the same size, each from the last
  page's ``next_page_offset`` (point id order, which is not the documents'
  id order: Qdrant cannot order by a string).

Local mode checks a scroll's filter on every point, and fallthrough's pages
are in document id order, which Qdrant cannot give; the plugin scrolled
every id and sorted them for each page, so iterating cost the collection's
size squared over the page size. Local mode now lists from the collection's
sorted ids, kept beside the client (``docs/backends/qdrant.md``, "Listing
documents"). The table shows the time per whole iteration of each side at
each size, their ratio, and how each side's time per document grew.
"""

from __future__ import annotations

import argparse
from typing import Any

from qdrant_client import QdrantClient, models

import fallthrough
from benchmarks.harness import Comparison, compare, print_growth_table
from fallthrough.store import DEFAULT_DOCUMENT_PAGE

WRITE = 1_000


def _documents(size: int) -> list[fallthrough.Document]:
    return [
        fallthrough.Document(f"doc-{index:07d}", f"материал {index}", metadata={"n": index}) for index in range(size)
    ]


def _raw_side(size: int) -> Any:
    client = QdrantClient(location=":memory:")
    name = "bench_raw_documents"
    client.create_collection(name, vectors_config={})
    documents = _documents(size)
    for start in range(0, size, WRITE):
        points = [
            models.PointStruct(id=index, vector={}, payload={"id": document.id, "text": document.text, "n": index})
            for index, document in enumerate(documents[start : start + WRITE], start)
        ]
        client.upsert(name, points)

    def iterate() -> None:
        offset: models.ExtendedPointId | None = None
        read = 0
        while True:
            points, offset = client.scroll(name, limit=DEFAULT_DOCUMENT_PAGE, offset=offset, with_payload=True)
            read += len(points)
            if offset is None:
                break
        assert read == size

    return iterate


def _store_side(size: int) -> Any:
    store = fallthrough.connect("qdrant+memory://")
    documents = _documents(size)
    for start in range(0, size, WRITE):
        store.upsert_documents("bench", documents[start : start + WRITE])

    def iterate() -> None:
        assert sum(1 for _ in store.documents("bench")) == size

    return iterate


def measure(sizes: list[int], rounds: int) -> list[tuple[int, Comparison]]:
    return [
        (
            size,
            compare(
                f"iterate {size:,} documents",
                "qdrant-client: scroll pages by offset",
                _raw_side(size),
                _store_side(size),
                rounds=rounds,
                number=1,
            ),
        )
        for size in sizes
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = measure([int(size) for size in args.sizes.split(",")], args.rounds)
    title = "Iterating a collection on qdrant+memory://, Store.documents against raw qdrant-client"
    print_growth_table(title, "documents", "whole iteration", rows, per_item=True)


if __name__ == "__main__":
    main()
