"""Draining a batch on qdrant-client's local mode: ``Store.claim`` beside the raw client's claim loop.

    python -m benchmarks.qdrant_claims                  # 20,000 and 100,000 records; a few minutes
    python -m benchmarks.qdrant_claims --sizes 20000    # one size

Each side drains a batch as a runner does: a claim of 100 records, then an
update of those 100 to completed, call after call, interleaved round by
round (``benchmarks.harness``), each on a ``qdrant+memory://`` collection of
its own holding one batch of the given size:

* fallthrough: ``Store.claim(batch, worker=..., limit=100)`` and
  ``Store.update_many`` of the claimed records (pinned to their attempt);
* raw: what a user writes on qdrant-client without fallthrough, on points
  of the same payload: ``scroll`` with a filter (the batch, ``status =
  pending``) ordered by ``seq``, limit 100, then one ``upsert`` marking those
  points processing and one marking them completed.

Local mode evaluates a scroll's filter and its ``order_by`` over every point
of the collection, so the raw claim costs the collection; fallthrough's
local-mode claim reads the batch's own order from past the records it found
unclaimable before (``docs/backends/qdrant.md``, "Claims and leases"). The
table shows the time per claim-and-update of each side at each size, their
ratio, and how much each side's time grew from the smallest size.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from qdrant_client import QdrantClient, models

import fallthrough
from benchmarks.harness import Comparison, compare, print_growth_table

LIMIT = 100


def _pending(batch_id: str, index: int) -> dict[str, Any]:
    return {"batch_id": batch_id, "key": f"sku-{index:08}", "seq": index, "status": "pending", "attempt": 0}


def raw_batch(size: int) -> tuple[QdrantClient, str, str]:
    """A local-mode client holding one batch of ``size`` pending records: the client, collection and batch id."""
    client = QdrantClient(location=":memory:")
    name = "bench_raw_records"
    client.create_collection(name, vectors_config={})
    batch_id = str(uuid.uuid4())
    for start in range(0, size, 1000):
        points = [
            models.PointStruct(id=index, vector={}, payload=_pending(batch_id, index))
            for index in range(start, min(start + 1000, size))
        ]
        client.upsert(name, points)
    return client, name, batch_id


def _raw_side(size: int) -> Any:
    client, name, batch_id = raw_batch(size)
    pending = models.Filter(
        must=[
            models.FieldCondition(key="batch_id", match=models.MatchValue(value=batch_id)),
            models.FieldCondition(key="status", match=models.MatchValue(value="pending")),
        ]
    )

    def claim_and_complete() -> None:
        points, _ = client.scroll(
            name, scroll_filter=pending, order_by=models.OrderBy(key="seq"), limit=LIMIT, with_payload=True
        )
        assert len(points) == LIMIT
        for status in ("processing", "completed"):
            written = [
                models.PointStruct(id=point.id, vector={}, payload={**(point.payload or {}), "status": status})
                for point in points
            ]
            client.upsert(name, written)

    return claim_and_complete


def _store_side(size: int) -> Any:
    store = fallthrough.connect("qdrant+memory://")
    batch = store.create_batch(f"sku-{index:08}" for index in range(size))

    def claim_and_complete() -> None:
        claimed = store.claim(batch.id, worker="bench", limit=LIMIT, lease=600)
        assert len(claimed) == LIMIT
        store.update_many(
            fallthrough.RecordUpdate(batch.id, record.key, "completed", attempt=record.attempt) for record in claimed
        )

    return claim_and_complete


def measure(sizes: list[int], rounds: int, number: int) -> list[tuple[int, Comparison]]:
    rows = []
    for size in sizes:
        needed = (rounds * number + 2) * LIMIT
        if needed > size:
            raise SystemExit(f"{size:,} records hold {size // LIMIT} claims; this run needs {needed // LIMIT}")
        row = compare(
            f"claim {LIMIT} and complete them, batch of {size:,}",
            "qdrant-client: scroll (filter, order_by seq) + 2 upserts",
            _raw_side(size),
            _store_side(size),
            rounds=rounds,
            number=number,
        )
        rows.append((size, row))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=10, help="claims per side per round")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = measure(sizes, args.rounds, args.number)
    title = "Draining a batch on qdrant+memory://, Store.claim against raw qdrant-client"
    print_growth_table(title, "records", "per claim", rows)


if __name__ == "__main__":
    main()
