"""Readers under write load on one SQLite file (issue 12 item 4): latency percentiles, with and without writers.

    python benchmarks/sqlite_concurrency.py                  # 8 readers, 8 writers, 4 s a phase
    python benchmarks/sqlite_concurrency.py --seconds 8 --records 200000

One process, one ``sqlite:///file`` Store shared by every thread, as a
worker pool shares one. Eight reader threads loop over ``store.progress``
of a batch and ``store.search`` (text, ten hits) of a collection, timing
each call; eight writer threads loop over ``store.update_many`` of 100
random records of the same batch to random statuses. Each phase runs the
readers alone, then the readers with the writers, for the same time, and
reports the readers' p50/p95/p99 per operation and the calls done.

The raw side does the same with the stdlib driver on the same file: each
thread its own ``sqlite3`` connection; readers run the plugin's own
statements (the ``record_counts`` rows, an FTS5 ``MATCH`` with ``LIMIT
10``), writers ``BEGIN IMMEDIATE``, an ``executemany`` UPDATE of 100
statuses, ``COMMIT``. It is the floor a Python program on this file can
reach: what is left between the two is the Store's own cost per call.

Every thread is a Python thread: the GIL is shared by readers and writers
on both sides, and the machine's cores by everything else running on it;
the figures are of one run, so read the ratios between phases more than
the absolute times.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/sqlite_concurrency.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fallthrough
from benchmarks.harness import machine
from fallthrough import Document, RecordUpdate, Status

READERS = 8
WRITERS = 8
UPDATES_PER_CALL = 100
WORDS = [f"word{i}" for i in range(64)]


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    if len(samples) < 2:
        return (float("nan"),) * 3  # type: ignore[return-value]
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


class Phase:
    """Run reader and writer loops on threads for a fixed time; collect the readers' latencies."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stop = threading.Event()
        self.latencies: dict[str, list[float]] = {"progress": [], "search": []}
        self.writes = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def reader(self, operations: dict[str, Callable[[random.Random], object]], seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(seed)
            mine: dict[str, list[float]] = {name: [] for name in operations}
            try:
                while not self.stop.is_set():
                    for name, operation in operations.items():
                        started = time.perf_counter()
                        operation(rng)
                        mine[name].append(time.perf_counter() - started)
            except BaseException as error:
                self.errors.append(error)
            with self._lock:
                for name, samples in mine.items():
                    self.latencies[name].extend(samples)

        return run

    def writer(self, write: Callable[[random.Random], object], seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(seed)
            done = 0
            try:
                while not self.stop.is_set():
                    write(rng)
                    done += 1
            except BaseException as error:
                self.errors.append(error)
            with self._lock:
                self.writes += done

        return run

    def run(self, readers: list[Callable[[], None]], writers: list[Callable[[], None]]) -> Phase:
        threads = [threading.Thread(target=target) for target in readers + writers]
        for thread in threads:
            thread.start()
        time.sleep(self.seconds)
        self.stop.set()
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
        return self


def statuses(rng: random.Random) -> Status:
    return rng.choice([Status.PROCESSING, Status.COMPLETED, Status.FAILED, Status.PENDING])


def _phases(
    seconds: float, operations: dict[str, Callable[[random.Random], object]], write: Callable[[random.Random], object]
) -> dict[str, Phase]:
    alone = Phase(seconds)
    alone.run([alone.reader(operations, i) for i in range(READERS)], [])
    loaded = Phase(seconds)
    loaded.run(
        [loaded.reader(operations, i) for i in range(READERS)],
        [loaded.writer(write, 100 + i) for i in range(WRITERS)],
    )
    return {"alone": alone, "loaded": loaded}


# The plugin's text search, as one statement: bm25 order, ties by id.
_RAW_SEARCH = (
    "SELECT d.id, d.text, d.metadata, -bm25(documents_fts) FROM documents AS d"
    " JOIN documents_fts ON documents_fts.rowid = d.row_id"
    " WHERE d.collection = 'docs' AND d.tombstone = 0 AND documents_fts MATCH ?"
    " ORDER BY bm25(documents_fts), d.id LIMIT 10"
)


def raw_side(path: Path, batch_id: uuid.UUID, keys: list[str], seconds: float) -> dict[str, Phase]:
    local = threading.local()
    connections: list[sqlite3.Connection] = []
    guard = threading.Lock()

    def connection() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            local.conn = conn
            with guard:
                connections.append(conn)
        return conn

    batch = str(batch_id)

    def progress(rng: random.Random) -> object:
        return connection().execute("SELECT status, n FROM record_counts WHERE batch_id = ?", (batch,)).fetchall()

    def search(rng: random.Random) -> object:
        return (
            connection()
            .execute(
                _RAW_SEARCH,
                (f'"{rng.choice(WORDS)}"',),
            )
            .fetchall()
        )

    def write(rng: random.Random) -> None:
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE records SET status = ?, rank = 2 WHERE batch_id = ? AND key = ?",
            [(statuses(rng).value, batch, key) for key in rng.sample(keys, UPDATES_PER_CALL)],
        )
        conn.execute("COMMIT")

    try:
        return _phases(seconds, {"progress": progress, "search": search}, write)
    finally:
        for conn in connections:
            conn.close()


def prepare(path: Path, records: int, documents: int) -> tuple[uuid.UUID, list[str]]:
    keys = [f"sku-{i:08}" for i in range(records)]
    rng = random.Random(0)
    with fallthrough.connect(f"sqlite:///{path}") as store:
        batch = store.create_batch(keys)
        store.upsert_documents(
            "docs",
            [Document(f"d{i:06}", " ".join(rng.sample(WORDS, 6)), metadata={"n": i % 10}) for i in range(documents)],
        )
    return batch.id, keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--documents", type=int, default=5_000)
    parser.add_argument("--no-raw", action="store_true", help="skip the raw sqlite3 side")
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "load.db"
        batch_id, keys = prepare(path, arguments.records, arguments.documents)
        sides = {"fallthrough": fallthrough_side(path, batch_id, keys, arguments.seconds)}
        if not arguments.no_raw:
            sides["raw sqlite3"] = raw_side(path, batch_id, keys, arguments.seconds)
    print(
        f"{machine()}; {READERS} reader threads, {WRITERS} writer threads (update_many of {UPDATES_PER_CALL}), "
        f"{arguments.records:,} records, {arguments.documents:,} documents, {arguments.seconds:g} s a phase"
    )
    print()
    print("| side | writers | operation | calls | p50 ms | p95 ms | p99 ms | writes/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for side, phases in sides.items():
        for phase_name, phase in phases.items():
            for operation, samples in phase.latencies.items():
                p50, p95, p99 = percentiles(samples)
                writes = f"{phase.writes * UPDATES_PER_CALL / phase.seconds:,.0f}" if phase_name == "loaded" else ""
                with_writers = "8 writing" if phase_name == "loaded" else "none"
                print(
                    f"| {side} | {with_writers} | {operation} | {len(samples):,} "
                    f"| {p50:.2f} | {p95:.2f} | {p99:.2f} | {writes} |"
                )


def fallthrough_side(path: Path, batch_id: uuid.UUID, keys: list[str], seconds: float) -> dict[str, Phase]:
    store = fallthrough.connect(f"sqlite:///{path}")
    try:
        operations: dict[str, Callable[[random.Random], object]] = {
            "progress": lambda rng: store.progress(batch_id),
            "search": lambda rng: store.search("docs", text=rng.choice(WORDS), limit=10),
        }

        def write(rng: random.Random) -> None:
            chosen = rng.sample(keys, UPDATES_PER_CALL)
            store.update_many([RecordUpdate(batch_id, key, statuses(rng)) for key in chosen])

        return _phases(seconds, operations, write)
    finally:
        store.close()


if __name__ == "__main__":
    main()
