"""Listing a collection through the asyncio API: the event loop's largest stall, beside the raw driver.

What Haystack's ``filter_documents_async`` and any async export do: read
every document of a collection, vectors included, with
``AsyncStore.documents`` (a page of 1000 per pool call), while a
:class:`~fallthrough.testing.watchdog.LoopWatchdog` wakes every millisecond
and records how late it woke. The sides alternate round by round in one
process, on one SQLite file in WAL mode:

* ``AsyncStore.documents``: ``async for document in store.documents(...)``;
* ``raw sqlite3``: the plugin's own keyset ``SELECT`` of the same columns,
  a page of 1000 at a time with ``fetchall`` in ``loop.run_in_executor``,
  the rows left undecoded (the driver's fetch and nothing else).

The stall goal is 20 ms (issue 11).

    python benchmarks/async_documents.py [--documents 2000] [--dimension 1536] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python benchmarks/async_documents.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fallthrough
from benchmarks.harness import machine
from fallthrough import AsyncStore, Document
from fallthrough.testing.watchdog import LoopWatchdog

PAGE = 1000
STALL_GOAL = 0.020
_RAW_PAGE = (
    "SELECT id, text, vector, metadata FROM documents "
    "WHERE collection = ? AND tombstone = 0 AND id > ? ORDER BY id LIMIT ?"
)


def _raw_page(raw: sqlite3.Connection, after: str) -> list[tuple[object, ...]]:
    return raw.execute(_RAW_PAGE, ("bench", after, PAGE)).fetchall()


async def _measure(listing: Callable[[], Awaitable[int]], expected: int) -> tuple[float, float]:
    """One round: (wall seconds, largest stall)."""
    watchdog = LoopWatchdog()
    watching = asyncio.ensure_future(watchdog.run())
    await asyncio.sleep(0.005)  # the watchdog's first wake-ups, before the load
    start = time.perf_counter()
    listed = await listing()
    seconds = time.perf_counter() - start
    watchdog.stop()
    await watching
    if listed != expected:
        raise AssertionError(f"listed {listed} documents, not {expected}")
    return seconds, watchdog.largest_stall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--dimension", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-async-documents-"))
    path = directory / "bench.db"
    rng = random.Random(7)
    documents = [
        Document(f"d{i:06}", f"text {i}", vector=[rng.random() for _ in range(args.dimension)], metadata={"n": i})
        for i in range(args.documents)
    ]
    try:
        with fallthrough.connect(f"sqlite:///{path}") as store:
            store.upsert_documents("bench", documents)
            del documents
            async_store = AsyncStore(store)
            raw = sqlite3.connect(path, check_same_thread=False)

            async def through_fallthrough() -> int:
                return sum([1 async for _ in async_store.documents("bench", page_size=PAGE)])

            async def through_raw() -> int:
                loop = asyncio.get_running_loop()
                listed, after = 0, ""
                while True:
                    rows = await loop.run_in_executor(None, _raw_page, raw, after)
                    listed += len(rows)
                    if len(rows) < PAGE:
                        return listed
                    after = rows[-1][0]

            sides: dict[str, tuple[Callable[[], Awaitable[int]], list[tuple[float, float]]]] = {
                "AsyncStore.documents": (through_fallthrough, []),
                "raw sqlite3": (through_raw, []),
            }

            async def run() -> None:
                for listing, _ in sides.values():  # warm up: the page cache, the pool's threads
                    await _measure(listing, args.documents)
                for index in range(args.rounds):
                    order = list(sides.values()) if index % 2 == 0 else list(reversed(sides.values()))
                    for listing, rounds in order:
                        rounds.append(await _measure(listing, args.documents))
                await async_store.close()

            asyncio.run(run())
            raw.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"Machine: {machine()}\n")
    size = f"{args.documents} x {args.dimension}"
    print(f"### SQLite file (WAL): every document of {size}, medians of {args.rounds} rounds\n")
    base = statistics.median(seconds for seconds, _ in sides["raw sqlite3"][1])
    print("| side | wall ms | ratio to raw | largest stall ms | (worst) | stall goal |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (_, rounds) in sides.items():
        wall = statistics.median(seconds for seconds, _ in rounds)
        stall = statistics.median(stall for _, stall in rounds)
        worst = max(stall for _, stall in rounds)
        verdict = "meets 20 ms" if stall <= STALL_GOAL else "misses 20 ms"
        print(f"| {name} | {wall * 1e3:.1f} | {wall / base:.2f}× | {stall * 1e3:.1f} | {worst * 1e3:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
