"""A batch's progress on qdrant-client's local mode: ``Store.progress`` beside the raw client's facet.

    python -m benchmarks.qdrant_progress                  # 20,000 and 100,000 records; about a minute
    python -m benchmarks.qdrant_progress --sizes 20000    # one size

Each side reads the progress of one batch of the given size, a fifth of it
already completed, call after call, interleaved round by round
(``benchmarks.harness``), each on a ``qdrant+memory://`` collection of its
own:

* fallthrough: ``Store.progress(batch)`` on a Store that claimed and
  completed the fifth itself;
* raw: what a user writes on qdrant-client without fallthrough, on points
  of the same payload: one exact ``facet`` on ``status`` filtered by the
  batch.

Local mode evaluates a facet's filter over every point of the collection,
so the raw read costs the collection; fallthrough's local mode counts a
batch once and then moves the counts with its own writes
(``docs/backends/qdrant.md``, "Progress"). The table shows the time per read
of each side at each size, their ratio, and how much each side's time grew
from the smallest size.
"""

from __future__ import annotations

import argparse
from typing import Any

from qdrant_client import models

import fallthrough
from benchmarks.harness import Comparison, compare, print_growth_table
from benchmarks.qdrant_claims import raw_batch

DONE_SHARE = 5  # one record in this many is completed before the reads
CLAIM = 1_000


def _raw_side(size: int) -> Any:
    client, name, batch_id = raw_batch(size)
    completed = [
        models.PointStruct(id=index, vector={}, payload={"batch_id": batch_id, "seq": index, "status": "completed"})
        for index in range(size // DONE_SHARE)
    ]
    client.upsert(name, completed)
    in_batch = models.Filter(must=[models.FieldCondition(key="batch_id", match=models.MatchValue(value=batch_id))])

    def progress() -> None:
        counts = client.facet(name, key="status", facet_filter=in_batch, limit=4, exact=True)
        assert sum(hit.count for hit in counts.hits) == size

    return progress


def _store_side(size: int) -> Any:
    store = fallthrough.connect("qdrant+memory://")
    batch = store.create_batch(f"sku-{index:08}" for index in range(size))
    for _ in range(size // DONE_SHARE // CLAIM):
        claimed = store.claim(batch.id, worker="bench", limit=CLAIM, lease=600)
        store.update_many(
            fallthrough.RecordUpdate(batch.id, record.key, "completed", attempt=record.attempt) for record in claimed
        )

    def progress() -> None:
        assert store.progress(batch.id).total == size

    return progress


def measure(sizes: list[int], rounds: int, number: int) -> list[tuple[int, Comparison]]:
    return [
        (
            size,
            compare(
                f"progress of a batch of {size:,}",
                "qdrant-client: exact facet on status",
                _raw_side(size),
                _store_side(size),
                rounds=rounds,
                number=number,
            ),
        )
        for size in sizes
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=3, help="reads per side per round")
    args = parser.parse_args(argv)
    rows = measure([int(size) for size in args.sizes.split(",")], args.rounds, args.number)
    title = "A batch's progress on qdrant+memory://, Store.progress against raw qdrant-client"
    print_growth_table(title, "records", "per read", rows, digits=5)


if __name__ == "__main__":
    main()
