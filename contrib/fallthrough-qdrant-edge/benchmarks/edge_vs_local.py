"""qdrant-edge against the qdrant-client local-mode backend, side by side in one run.

    python contrib/fallthrough-qdrant-edge/benchmarks/edge_vs_local.py           # 100k records, 100k x 384
    python contrib/fallthrough-qdrant-edge/benchmarks/edge_vs_local.py --quick   # 10k of each
    ... --part records | --part knn                                              # one half

Both sides are fallthrough backends built from their URLs through the public
registry and driven through their hook methods (the router's own cost is in
``benchmarks/router_overhead.py``): the baseline is ``qdrant+memory://``
(qdrant-client's local mode, a pure-Python emulation of Qdrant), the
candidate is ``qdrant+edge:///<dir>`` (Qdrant's shard engine in process,
persisted in a temporary directory on disk). The two run alternately, round
after round; the table gives the median of each and their ratio
(edge / local: below 1 means edge is faster).

* progress on a batch of N records (a quarter in each status);
* update N statuses: one ``fallthrough_update_records`` call of N updates,
  on a fresh batch each round (made outside the timing);
* kNN top-10 on N x 384: one search per query, the median over the
  queries. Edge builds its HNSW graph on the first search (``optimize()``),
  timed on its own line; local mode scans exactly. Two data sets:
  ``random`` (unit Gaussian vectors and queries: no structure at all, every
  neighbour barely nearer than the rest, the worst case for a graph index)
  and ``clustered`` (200 centres plus noise, queries near stored vectors:
  closer to real embeddings);
* recall@10 of each side's top 10 against an exact numpy search, for edge
  also with ``?hnsw_ef=512`` (the same directory reopened with that option).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from fallthrough import Document, RecordUpdate, SearchQuery, Status
from fallthrough.registry import Registry
from fallthrough.types import from_micros

DIMENSION = 384
STATUSES = (Status.PENDING, Status.PROCESSING, Status.COMPLETED, Status.FAILED)
Row = tuple[str, float, float]


class Stamps:
    """Strictly increasing microsecond stamps, as the core would give."""

    def __init__(self) -> None:
        self._last = int(time.time() * 1_000_000)

    def reserve(self, count: int) -> int:
        first = self._last + 1
        self._last += max(count, 1)
        return first

    def now(self) -> datetime:
        return from_micros(self.reserve(1))


def seconds(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def interleaved(rounds: int, baseline: Callable[[], float], candidate: Callable[[], float]) -> tuple[float, float]:
    """Median seconds of each side; each callable runs one round and returns its time."""
    base: list[float] = []
    cand: list[float] = []
    for index in range(rounds):
        pairs = [(baseline, base), (candidate, cand)]
        if index % 2:
            pairs.reverse()
        for run, times in pairs:
            times.append(run())
    return statistics.median(base), statistics.median(cand)


def progress_note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, size: int, queries: int, rounds: int) -> None:
        self.size = size
        self.query_count = queries
        self.rounds = rounds
        self.directory = Path(tempfile.mkdtemp(prefix="edge-bench-"))
        self.registry = Registry()
        self.sides: dict[str, Any] = {
            "local": self.registry.create("qdrant+memory://"),
            "edge": self.edge(),
        }
        for plugin in self.sides.values():
            plugin.fallthrough_open()
        self.stamps = Stamps()
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def edge(self, options: str = "") -> Any:
        return self.registry.create(f"qdrant+edge:///{self.directory}/store{options}")

    def reopen_edge(self, options: str = "") -> None:
        self.sides["edge"].fallthrough_close()
        self.sides["edge"] = self.edge(options)
        self.sides["edge"].fallthrough_open()

    def close(self) -> None:
        for plugin in self.sides.values():
            plugin.fallthrough_close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- records -------------------------------------------------------------

    def new_batch(self, plugin: Any, keys: list[str]) -> uuid.UUID:
        batch_id = uuid.uuid4()
        plugin.fallthrough_create_batch(
            batch_id=batch_id,
            keys=keys,
            first_seq=self.stamps.reserve(len(keys)),
            metadata={},
            created_at=self.stamps.now(),
        )
        return batch_id

    def records(self) -> None:
        size = self.size
        keys = [f"item-{index:07}" for index in range(size)]
        created: dict[str, uuid.UUID] = {}
        create_times = {}
        for name, plugin in self.sides.items():
            progress_note(f"records: creating {size:,} on {name}")
            start = time.perf_counter()
            created[name] = self.new_batch(plugin, keys)
            create_times[name] = time.perf_counter() - start
            updates = [RecordUpdate(created[name], key, STATUSES[index % 4]) for index, key in enumerate(keys)]
            plugin.fallthrough_update_records(updates=updates, updated_at=self.stamps.now())
        self.rows.append((f"create a batch of {size:,} records (once)", create_times["local"], create_times["edge"]))

        def progress_of(name: str) -> Callable[[], float]:
            def run() -> float:
                plugin = self.sides[name]
                times = [seconds(lambda: plugin.fallthrough_progress(batch_id=created[name])) for _ in range(5)]
                return statistics.median(times)

            return run

        expected = self.sides["local"].fallthrough_progress(batch_id=created["local"])
        assert self.sides["edge"].fallthrough_progress(batch_id=created["edge"]) == expected
        base, cand = interleaved(self.rounds, progress_of("local"), progress_of("edge"))
        self.rows.append((f"progress on {size:,} records", base, cand))

        def update_all(name: str) -> Callable[[], float]:
            def run() -> float:
                progress_note(f"records: updating {size:,} on {name}")
                plugin = self.sides[name]
                batch_id = self.new_batch(plugin, keys)
                updates = [RecordUpdate(batch_id, key, Status.COMPLETED) for key in keys]
                at = self.stamps.now()
                start = time.perf_counter()
                applied = plugin.fallthrough_update_records(updates=updates, updated_at=at)
                elapsed = time.perf_counter() - start
                assert len(applied) == size
                plugin.fallthrough_delete_batch(batch_id=batch_id)
                return elapsed

            return run

        base, cand = interleaved(self.rounds, update_all("local"), update_all("edge"))
        self.rows.append((f"update {size:,} statuses (one call)", base, cand))

    # -- kNN -----------------------------------------------------------------

    def dataset(self, data: str) -> tuple[np.ndarray, np.ndarray]:
        generator = np.random.default_rng(7)
        size, count = self.size, self.query_count
        if data == "random":
            vectors = generator.standard_normal((size, DIMENSION)).astype(np.float32)
            queries = generator.standard_normal((count, DIMENSION)).astype(np.float32)
        else:
            centres = generator.standard_normal((200, DIMENSION)).astype(np.float32)
            noise = generator.standard_normal((size, DIMENSION)).astype(np.float32)
            vectors = centres[generator.integers(0, 200, size)] + 0.35 * noise
            near = vectors[generator.integers(0, size, count)]
            queries = near + 0.2 * generator.standard_normal((count, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        return vectors, queries

    def knn(self, data: str) -> None:
        size = self.size
        collection = f"bench-{data}"
        vectors, queries = self.dataset(data)
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        expected = [{f"d{index:07}" for index in row} for row in exact]
        documents = [Document(id=f"d{index:07}", vector=tuple(map(float, vectors[index]))) for index in range(size)]
        load_times = {}
        for name, plugin in self.sides.items():
            progress_note(f"knn {data}: loading {size:,} on {name}")
            start = time.perf_counter()
            for chunk in range(0, size, 5_000):
                plugin.fallthrough_upsert_documents(collection=collection, documents=documents[chunk : chunk + 5_000])
            load_times[name] = time.perf_counter() - start
        self.rows.append(
            (f"upsert {size:,} x {DIMENSION} {data} documents (once)", load_times["local"], load_times["edge"])
        )
        query_objects = [
            SearchQuery(vector=tuple(map(float, query)), text=None, filter=None, limit=10) for query in queries
        ]
        progress_note(f"knn {data}: edge builds its HNSW graph")
        build = seconds(lambda: self.sides["edge"].fallthrough_search(collection=collection, query=query_objects[0]))
        self.notes.append(f"{data}: edge's first search after loading, HNSW graph built by optimize(): {build:.1f} s")
        found: dict[str, list[set[str]]] = {name: [] for name in self.sides}

        def search(name: str) -> Callable[[], float]:
            def run() -> float:
                plugin = self.sides[name]
                times = []
                found[name] = []
                for query in query_objects:
                    start = time.perf_counter()
                    hits = plugin.fallthrough_search(collection=collection, query=query)
                    times.append(time.perf_counter() - start)
                    found[name].append({hit.id for hit in hits})
                return statistics.median(times)

            return run

        def recall(name: str) -> float:
            hits = sum(len(wanted & got) for wanted, got in zip(expected, found[name], strict=True))
            return hits / (10 * len(query_objects))

        progress_note(f"knn {data}: searching")
        base, cand = interleaved(self.rounds, search("local"), search("edge"))
        self.rows.append((f"kNN top-10 on {size:,} x {DIMENSION}, {data} (per query)", base, cand))
        local_recall, edge_recall = recall("local"), recall("edge")
        # The same shards, reopened with a wider HNSW beam.
        self.reopen_edge("?hnsw_ef=512")
        wide = search("edge")()
        self.notes.append(
            f"{data}: recall@10 against exact search: local {local_recall:.3f}, edge {edge_recall:.3f}; "
            f"edge with `hnsw_ef=512`: {recall('edge'):.3f} at {wide * 1000:.2f} ms a query"
        )
        self.reopen_edge()

    def report(self) -> None:
        size = self.size
        print(f"## qdrant-edge vs qdrant-client local mode ({size:,} records, {size:,} x {DIMENSION} vectors)\n")
        python = f"{platform.python_implementation()} {platform.python_version()}"
        machine = f"{python}, {platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs"
        print(f"Machine: {machine}; median of {self.rounds} interleaved rounds\n")
        print("| operation | qdrant+memory (local mode) | qdrant+edge | edge / local |")
        print("|---|---:|---:|---:|")
        for operation, base, cand in self.rows:
            print(f"| {operation} | {_format(base)} | {_format(cand)} | {cand / base:.3f} |")
        print()
        for note in self.notes:
            print(f"- {note}")


def _format(value: float) -> str:
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k records and vectors")
    parser.add_argument("--size", type=int, help="records and vectors (default 100k, 10k with --quick)")
    parser.add_argument("--queries", type=int, default=100, help="kNN queries (default 100)")
    parser.add_argument("--part", choices=("all", "records", "knn"), default="all")
    parser.add_argument("--data", choices=("random", "clustered"), action="append", help="kNN data (default both)")
    arguments = parser.parse_args()
    size = arguments.size or (10_000 if arguments.quick else 100_000)
    bench = Bench(size, arguments.queries, rounds=3)
    try:
        if arguments.part in ("all", "records"):
            bench.records()
        if arguments.part in ("all", "knn"):
            for data in arguments.data or ["random", "clustered"]:
                bench.knn(data)
    finally:
        bench.close()
    bench.report()


if __name__ == "__main__":
    main()
