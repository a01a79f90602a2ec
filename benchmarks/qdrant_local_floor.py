"""The memory qdrant-client's local mode needs for points that hold nothing: the floor under any plugin.

    python -m benchmarks.qdrant_local_floor                     # 1,000,000 points; about 7 minutes
    python -m benchmarks.qdrant_local_floor --points 200000     # a quick look

Issue 12 asks for under 150 MB of peak RSS growth while creating and
iterating 1,000,000 records on every backend, qdrant local mode included.
A plugin that stores a record as a point cannot use less than a point costs
local mode with no payload and no vector, which this measures: raw
qdrant-client, ``QdrantClient(":memory:")``, one collection without
vectors, points with UUID ids (as the plugin's) and an empty payload,
upserted 10,000 at a time. It prints the RSS growth after the upserts, the
peak, and the growth per point. The fallthrough side is not run: whatever it
adds comes on top of this floor (``docs/benchmarks.md``, "Qdrant local
mode: peak memory").
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid

from qdrant_client import QdrantClient, models

from benchmarks.harness import machine

UPSERT = 10_000


def resident_mb() -> float:
    """The process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    points = parser.parse_args(argv).points
    client = QdrantClient(":memory:")
    client.create_collection("floor", vectors_config={})
    baseline = resident_mb()
    started = time.perf_counter()
    for start in range(0, points, UPSERT):
        ids = range(start, min(start + UPSERT, points))
        client.upsert("floor", [models.PointStruct(id=str(uuid.UUID(int=i)), vector={}, payload={}) for i in ids])
    seconds = time.perf_counter() - started
    assert client.count("floor").count == points
    growth = resident_mb() - baseline
    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    print(f"qdrant-client local mode, {points:,} points with no payload and no vector, upserted in {seconds:.0f} s:")
    print(f"RSS growth {growth:.0f} MB, peak growth {peak_growth:.0f} MB, {growth * 2**20 / points:.0f} bytes a point")
    print(f"machine: {machine()}")
    client.close()


if __name__ == "__main__":
    main()
