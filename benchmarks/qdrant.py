"""The Qdrant backend against raw qdrant-client making the same calls, in one run.

    python -m benchmarks.qdrant            # 20k records, 20k x 384 vectors
    python -m benchmarks.qdrant --quick    # 2k of each, fewer rounds

No Qdrant server can run on these machines, so both sides use qdrant-client's
local mode in memory (a pure-Python emulation, far slower than a server, so
the absolute figures say nothing about a server; the ratio says what the
plugin adds). Each side has its own client. The raw side makes the calls the
plugin makes for the same operation, with the same payloads:

* create 20k records: upsert the batch point, upsert the record points
  (``INSERT_ONLY``), count the batch;
* update 20k statuses: retrieve the targets' merge state, one conditional
  upsert (``update_filter``, ``UPDATE_ONLY``) of the new payloads;
* progress on a 20k batch: retrieve the batch point, facet on status (what
  the plugin sends a server; in local mode it counts a batch once and then
  keeps the counts, so this row compares the facet with a kept count: see
  ``benchmarks.qdrant_progress``);
* kNN top-10 on 20k x 384: one ``query_points`` with payloads.

The fallthrough side calls the plugin's hook methods directly (the router's
own cost is measured in ``benchmarks.router_overhead``). Operations that
write get a fresh batch per call, made and deleted outside the timing.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from qdrant_client import QdrantClient, models

from benchmarks.harness import Comparison, print_table
from fallthrough.ordering import PENDING_TIEBREAK
from fallthrough.types import Document, RecordUpdate, SearchQuery, Status, to_micros
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.documents import encode
from fallthrough_qdrant.records import _lower_than, _stamps
from fallthrough_qdrant.schema import document_point_id, record_point_id

GOAL = 1.2
RAW = "qdrant-client, same calls"
BATCHES = "raw_batches"
RECORDS = "raw_processing_results"
VECTORS = "raw_vecs_bench"
STATE_FIELDS = ["key", "seq", "attempt", "rank", "updated_us", "tiebreak"]
START = datetime(2026, 11, 28, tzinfo=UTC)

Step = tuple[Callable[[], object], Callable[[], object], Callable[[], object]]  # setup, timed, teardown


def timed(operation: str, baseline: Step, candidate: Step, rounds: int) -> Comparison:
    """Median seconds per call of each side over interleaved rounds; setup and teardown are not timed."""
    times: dict[int, list[float]] = {0: [], 1: []}
    sides = [baseline, candidate]
    for round_index in range(rounds + 1):  # round 0 warms both sides up and is not counted
        order = [0, 1] if round_index % 2 == 0 else [1, 0]
        for side in order:
            setup, call, teardown = sides[side]
            setup()
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                call()
                elapsed = time.perf_counter() - started
            finally:
                gc.enable()
            teardown()
            if round_index:
                times[side].append(elapsed)
    return Comparison(operation, RAW, statistics.median(times[0]), statistics.median(times[1]), GOAL)


class Raw:
    """Raw qdrant-client, laid out as the plugin lays out its collections."""

    def __init__(self) -> None:
        self.client = QdrantClient(location=":memory:")
        self.client.create_collection(BATCHES, vectors_config={})
        self.client.create_collection(RECORDS, vectors_config={})
        self.clock = 0

    def stamp(self) -> int:
        self.clock += 1
        return to_micros(START + timedelta(seconds=self.clock))

    def create(self, batch_id: uuid.UUID, keys: list[str]) -> int:
        created_us = self.stamp()
        self.client.upsert(
            BATCHES,
            [models.PointStruct(id=str(batch_id), vector={}, payload={"metadata": "{}", "created_us": created_us})],
            update_mode=models.UpdateMode.INSERT_ONLY,
        )
        common: dict[str, Any] = {
            "batch_id": str(batch_id),
            "status": "pending",
            "rank": 0,
            "attempt": 0,
            "result": None,
            "error": None,
            **_stamps(created_us, PENDING_TIEBREAK),
        }
        points = [
            models.PointStruct(
                id=record_point_id(batch_id, key), vector={}, payload={**common, "key": key, "seq": 1_000 + i}
            )
            for i, key in enumerate(keys)
        ]
        for start in range(0, len(points), 2_000):
            self.client.upsert(RECORDS, points[start : start + 2_000], update_mode=models.UpdateMode.INSERT_ONLY)
        return self.client.count(RECORDS, count_filter=_batch(batch_id), exact=True).count

    def complete_all(self, batch_id: uuid.UUID, keys: list[str]) -> None:
        updated_us = self.stamp()
        ids = [record_point_id(batch_id, key) for key in keys]
        states: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 2_000):
            for point in self.client.retrieve(RECORDS, ids[start : start + 2_000], with_payload=STATE_FIELDS):
                states[str(point.id)] = point.payload or {}
        tiebreak = RecordUpdate(batch_id, "k", Status.COMPLETED).tiebreak
        condition = _lower_than(
            (0, 2, updated_us >> 32, updated_us & 0xFFFFFFFF, tiebreak >> 32, tiebreak & 0xFFFFFFFF)
        )
        points = [
            models.PointStruct(
                id=point_id,
                vector={},
                payload={
                    "batch_id": str(batch_id),
                    "key": states[point_id]["key"],
                    "seq": states[point_id]["seq"],
                    "status": "completed",
                    "rank": 2,
                    "attempt": states[point_id]["attempt"],
                    "result": None,
                    "error": None,
                    **_stamps(updated_us, tiebreak),
                },
            )
            for point_id in ids
        ]
        for start in range(0, len(points), 2_000):
            self.client.upsert(
                RECORDS,
                points[start : start + 2_000],
                update_filter=condition,
                update_mode=models.UpdateMode.UPDATE_ONLY,
            )

    def progress(self, batch_id: uuid.UUID) -> dict[str, int]:
        assert self.client.retrieve(BATCHES, [str(batch_id)], with_payload=False)
        facets = self.client.facet(RECORDS, key="status", facet_filter=_batch(batch_id), limit=4, exact=True)
        return {str(hit.value): hit.count for hit in facets.hits}

    def delete(self, batch_id: uuid.UUID) -> None:
        self.client.delete(RECORDS, models.FilterSelector(filter=_batch(batch_id)))
        self.client.delete(BATCHES, models.PointIdsList(points=[str(batch_id)]))


def _batch(batch_id: uuid.UUID) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="batch_id", match=models.MatchValue(value=str(batch_id)))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2k records and vectors, 3 rounds")
    arguments = parser.parse_args()
    size = 2_000 if arguments.quick else 20_000
    rounds = 3 if arguments.quick else 5
    # Local mode warns about collections over 20k points; both sides alike.
    warnings.simplefilter("ignore", UserWarning)
    label = f"{size // 1000}k"

    raw = Raw()
    plugin = QdrantBackend("qdrant+memory://?prefix=bench_")
    plugin.fallthrough_open()
    keys = [f"sku-{i}" for i in range(size)]
    current: dict[str, uuid.UUID] = {}
    updates: list[RecordUpdate] = []
    clock = {"t": 0}

    def stamp() -> datetime:
        clock["t"] += 1
        return START + timedelta(seconds=clock["t"])

    def fresh(name: str) -> Callable[[], None]:
        def make() -> None:
            current[name] = uuid.uuid4()

        return make

    def raw_setup_batch() -> None:
        current["raw"] = uuid.uuid4()
        raw.create(current["raw"], keys)

    def plugin_setup_batch() -> None:
        current["plugin"] = uuid.uuid4()
        plugin.fallthrough_create_batch(
            batch_id=current["plugin"], keys=keys, first_seq=1_000, metadata={}, created_at=stamp()
        )
        updates[:] = [RecordUpdate(current["plugin"], key, Status.COMPLETED) for key in keys]

    # Progress first, while each records collection holds one batch and nothing deleted:
    # local mode keeps deleted points and every facet scans them.
    raw_setup_batch()
    plugin_setup_batch()
    nothing: Callable[[], None] = lambda: None  # noqa: E731
    rows = [
        timed(
            f"progress on a {label} batch",
            (nothing, lambda: raw.progress(current["raw"]), nothing),
            (nothing, lambda: plugin.fallthrough_progress(batch_id=current["plugin"]), nothing),
            rounds * 3,
        )
    ]

    rows += [
        timed(
            f"create {label} records",
            (fresh("raw"), lambda: raw.create(current["raw"], keys), lambda: raw.delete(current["raw"])),
            (
                fresh("plugin"),
                lambda: plugin.fallthrough_create_batch(
                    batch_id=current["plugin"], keys=keys, first_seq=1_000, metadata={}, created_at=stamp()
                ),
                lambda: plugin.fallthrough_delete_batch(batch_id=current["plugin"]),
            ),
            rounds,
        ),
        timed(
            f"update {label} statuses",
            (raw_setup_batch, lambda: raw.complete_all(current["raw"], keys), lambda: raw.delete(current["raw"])),
            (
                plugin_setup_batch,
                lambda: plugin.fallthrough_update_records(updates=updates, updated_at=stamp()),
                lambda: plugin.fallthrough_delete_batch(batch_id=current["plugin"]),
            ),
            rounds,
        ),
    ]
    rng = random.Random(7)
    documents = [
        Document(f"doc-{i}", f"item {i}", vector=[rng.uniform(-1, 1) for _ in range(384)], metadata={"n": i})
        for i in range(size)
    ]
    plugin.fallthrough_upsert_documents(collection="bench", documents=documents, version=1)
    raw.client.create_collection(VECTORS, vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
    points = [
        models.PointStruct(id=document_point_id(d.id), vector=list(d.vector or ()), payload=encode(d))
        for d in documents
    ]
    for start in range(0, len(points), 1_000):
        raw.client.upsert(VECTORS, points[start : start + 1_000])
    vector = tuple(rng.uniform(-1, 1) for _ in range(384))
    query = SearchQuery(vector, None, None, 10)
    rows.append(
        timed(
            f"kNN top-10 on {label} x 384",
            (
                nothing,
                lambda: raw.client.query_points(VECTORS, query=list(vector), limit=10, with_payload=True),
                nothing,
            ),
            (nothing, lambda: plugin.fallthrough_search(collection="bench", query=query), nothing),
            rounds * 6,
        )
    )
    plugin.fallthrough_close()
    raw.client.close()
    progress, create, update, knn = rows
    print_table(f"Qdrant backend vs raw qdrant-client (local mode in memory, {label})", [create, update, progress, knn])


if __name__ == "__main__":
    main()
