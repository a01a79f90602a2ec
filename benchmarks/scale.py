"""A million records: create from a generator, iterate, progress, and peak memory, beside the raw driver.

    python benchmarks/scale.py                          # 100,000 and 1,000,000 records; sqlite memory, file, PostgreSQL
    python benchmarks/scale.py --sizes 100000 --backends sqlite-file
    python benchmarks/scale.py --qdrant                 # also: iterating qdrant+memory:// at 20,000 and 200,000
    python benchmarks/scale.py --backends qdrant-edge   # the contrib qdrant+edge backend (install it first)
    python benchmarks/scale.py --backends postgresql,postgresql-counted   # raw COPY with and without counters

Every measurement runs in a child process of its own, so that its peak RSS
(``ru_maxrss``) is its own; the child reports the RSS it had just before the
work (the interpreter, the imports and an open store) and the peak after, and
the table shows the growth. For each backend and size the raw side and the
fallthrough side run one after the other, alternating which goes first from
one round to the next, and the ratio of their times is what is reported:
these machines are noisy, ratios hold where absolute times drift.

The sides do the same work on the same kind of store:

* **create**: the keys come from a generator (``f"sku-{i:08}"``). Raw SQLite
  is ``executemany`` of the plugin's own ``records`` table (its DDL, compiled
  from the plugin's SQLAlchemy metadata) in one transaction; raw PostgreSQL
  is binary ``COPY`` into a table made ``LIKE processing_results INCLUDING
  ALL``, with the same storage parameters (its fillfactor), which LIKE does
  not copy. fallthrough is ``store.create_batch(generator)``. On PostgreSQL
  each child gets a fresh database with the plugin's schema, then a
  CHECKPOINT.
  Raw qdrant-edge upserts points of 1,000 into a shard with the contrib
  plugin's config and payload indexes, each point the plugin's payload.
  ``postgresql-counted`` is the PostgreSQL row with a raw side that keeps
  status counts as the plugin does: its copied table gets the plugin's own
  INSERT trigger (its definition read from the database), so it pays what
  makes ``progress`` constant-time, which a bare COPY does not.
* **iterate**: every record of the batch in ``(seq, key)`` order. Raw SQLite
  is one cursor over ``SELECT … ORDER BY seq, key``; raw PostgreSQL a
  server-side cursor; raw qdrant-edge scrolls pages of 1,000 ordered by the
  ``seq`` index. fallthrough is ``for record in store.records(batch)``.
  On PostgreSQL both sides' tables are ``ANALYZE``d after the create, outside
  the timing.
* **create CPU** (PostgreSQL rows): wall time on these machines moves with
  whatever else runs on them, CPU time much less. Beside the create's wall
  time each side reports the CPU seconds its own process used (every thread)
  and those the server used (the postmaster, its children, and the children
  it reaped: WAL writer, checkpointer and autovacuum included), read from
  ``/proc`` before and after; the table shows their sum and its ratio.
* **progress**: raw is ``SELECT status, count(*) … GROUP BY status`` (on
  qdrant-edge, a facet on ``status``; on ``postgresql-counted``, the sum of
  the batch's counter rows); fallthrough is ``store.progress(batch)``.

Issue 12 states the goals: create ≤ 1.5× raw on SQLite and ≤ 1.25× COPY on
PostgreSQL, iterate ≤ 2×, progress on SQLite at 1,000,000 ≤ 5 ms, and peak
RSS growth under 150 MB on every backend; qdrant+memory:// iterating 200,000
records within 3× the time per record of 20,000. The qdrant-edge rows have
no create goal; they show where that engine's memory goes. Nor do the
``postgresql-counted`` rows: they show how much of the PostgreSQL row's
ratio is the counters' cost, and how much the rest of fallthrough's.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import machine

GOALS = {"create sqlite": 1.5, "create postgresql": 1.25, "iterate": 2.0, "progress ms": 5.0, "rss mb": 150.0}
CREATE_GOALS = {"sqlite-memory": "create sqlite", "sqlite-file": "create sqlite", "postgresql": "create postgresql"}
BACKENDS = ("sqlite-memory", "sqlite-file", "postgresql")
OPTIONAL_BACKENDS = ("qdrant-edge", "postgresql-counted")
"""Backends measured only when asked for: qdrant-edge needs contrib/fallthrough-qdrant-edge installed;
postgresql-counted is the PostgreSQL row again, its raw side keeping the plugin's status counts."""
_COUNT_TRIGGER = "processing_results_count_inserts"
"""The plugin's trigger that counts inserted records (``fallthrough_postgresql.schema``)."""
EDGE_POINTS_PER_UPSERT = 1_000
QDRANT_SIZES = (20_000, 200_000)
CHILD_TIMEOUT = 1800.0


def keys(size: int) -> Iterator[str]:
    return (f"sku-{index:08}" for index in range(size))


def rss_mb() -> float:
    """The resident set size now, from /proc (ru_maxrss only knows the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- the child: one side, one backend, one size ------------------------------------


def _timed(function: Any) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 on), which may hold spaces."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def server_cpu_seconds(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL server whose socket is in ``url``'s host (pgserver's data dir).

    The postmaster's own, its live children's, and those of the children it
    has reaped (a backend that disconnected, an autovacuum worker that ended).
    """
    from sqlalchemy.engine import make_url

    directory = make_url(url).query["host"]
    assert isinstance(directory, str)
    postmaster = int(Path(directory, "postmaster.pid").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    fields = _proc_stat(postmaster)  # utime, stime, cutime, cstime are fields 14-17: indexes 11-14 here
    total = sum(int(value) for value in fields[11:15])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = _proc_stat(int(entry))
        except OSError:  # ended meanwhile: the postmaster's reaped total has it
            continue
        if int(child[1]) == postmaster:  # ppid, field 4
            total += int(child[11]) + int(child[12])
    return total / ticks


def _timed_create(function: Any, url: str) -> dict[str, float]:
    """The create's wall time, and for PostgreSQL the CPU seconds this process and the server spent on it."""
    on_postgresql = url.startswith("postgresql")
    server_before = server_cpu_seconds(url) if on_postgresql else 0.0
    client_before = time.process_time()
    wall = _timed(function)
    figures = {"create": wall}
    if on_postgresql:
        figures["create client cpu"] = time.process_time() - client_before
        figures["create server cpu"] = server_cpu_seconds(url) - server_before
        figures["create cpu"] = figures["create client cpu"] + figures["create server cpu"]
    return figures


def run_fallthrough(url: str, size: int, progress_calls: int) -> dict[str, float]:
    import fallthrough

    store = fallthrough.connect(url)
    try:
        store.health(ping=True)  # open the backend before the baseline (the raw side connects before it too)
        baseline = rss_mb()
        batch: list[Any] = []
        created = _timed_create(lambda: batch.append(store.create_batch(keys(size)).id), url)
        if url.startswith("postgresql"):
            _analyze(url, "processing_results")
        seen = 0

        def iterate() -> None:
            nonlocal seen
            for _ in store.records(batch[0], page_size=1000):
                seen += 1

        iterate_seconds = _timed(iterate)
        assert seen == size, f"iterated {seen} of {size} records"
        assert store.progress(batch[0]).pending == size
        progress = _timed(lambda: [store.progress(batch[0]) for _ in range(progress_calls)]) / progress_calls
        return {**created, "iterate": iterate_seconds, "progress": progress, "baseline": baseline}
    finally:
        store.close()


def _analyze(url: str, table: str) -> None:
    """ANALYZE ``table``, outside the timing, as the raw side does its copy.

    Besides the statistics, ANALYZE reads most pages of a 100,000-row table and sets their
    tuples' hint bits, which the first scan after a bulk load would otherwise set (and write):
    both sides iterate a table in the same state.
    """
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as connection:
        connection.execute(f"ANALYZE {table}")


def _sqlite_ddl() -> list[str]:
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from fallthrough_sqlite.schema import records

    dialect = sqlite.dialect()
    statements = [str(CreateTable(records).compile(dialect=dialect))]
    statements += [str(CreateIndex(index).compile(dialect=dialect)) for index in records.indexes]
    return statements


def run_raw_sqlite(path: str, size: int, progress_calls: int) -> dict[str, float]:
    import sqlite3

    from fallthrough.ordering import PENDING_TIEBREAK

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    for statement in _sqlite_ddl():
        connection.execute(statement)
    baseline = rss_mb()
    batch_id = str(uuid.uuid4())
    stamp = time.time_ns() // 1000

    def create() -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO records (batch_id, key, seq, status, rank, attempt, result, error, updated_us, tiebreak)"
            " VALUES (?, ?, ?, 'pending', 0, 0, NULL, NULL, ?, ?)",
            ((batch_id, key, stamp + index, stamp, PENDING_TIEBREAK) for index, key in enumerate(keys(size))),
        )
        connection.execute("COMMIT")

    seen = 0

    def iterate() -> None:
        nonlocal seen
        cursor = connection.execute(
            "SELECT key, seq, status, attempt, result, error, updated_us FROM records"
            " WHERE batch_id = ? ORDER BY seq, key",
            (batch_id,),
        )
        while rows := cursor.fetchmany(1000):
            seen += len(rows)

    create_seconds = _timed(create)
    iterate_seconds = _timed(iterate)
    assert seen == size, f"iterated {seen} of {size} records"
    group_by = "SELECT status, count(*) FROM records WHERE batch_id = ? GROUP BY status"
    progress = _timed(lambda: [connection.execute(group_by, (batch_id,)).fetchall() for _ in range(progress_calls)])
    connection.close()
    return {
        "create": create_seconds,
        "iterate": iterate_seconds,
        "progress": progress / progress_calls,
        "baseline": baseline,
    }


def run_raw_postgresql(url: str, size: int, progress_calls: int, *, counted: bool = False) -> dict[str, float]:
    """Raw binary COPY; ``counted`` gives the copied table the plugin's counting trigger, and reads progress from it."""
    import psycopg

    from fallthrough.ordering import PENDING_TIEBREAK

    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    connection = psycopg.connect(dsn, autocommit=True)
    table = f"raw_{uuid.uuid4().hex[:8]}"
    # LIKE copies columns, constraints and indexes, not the table's storage parameters: the plugin's
    # fillfactor (room for HOT updates) is copied by hand, or the raw side would write fewer pages.
    (storage,) = connection.execute(
        "SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = 'processing_results'::regclass"
    ).fetchone() or (None,)
    storage_clause = f" WITH ({storage})" if storage else ""
    connection.execute(f"CREATE TABLE {table} (LIKE processing_results INCLUDING ALL){storage_clause}")
    if counted:  # LIKE copies no trigger: the plugin's own definition, moved to the copy
        (definition,) = connection.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger"
            " WHERE tgrelid = 'processing_results'::regclass AND tgname = %s",
            (_COUNT_TRIGGER,),
        ).fetchone() or (None,)
        assert definition is not None, f"no trigger {_COUNT_TRIGGER} on processing_results"
        moved = definition.replace(f"TRIGGER {_COUNT_TRIGGER}", f"TRIGGER {table}_count_inserts", 1).replace(
            " ON public.processing_results ", f" ON public.{table} ", 1
        )
        assert f" ON public.{table} " in moved, f"cannot move the trigger: {definition}"
        connection.execute(moved)
    baseline = rss_mb()
    batch_id = uuid.uuid4()
    stamp = time.time_ns() // 1000

    def create() -> None:
        with connection.transaction(), connection.cursor() as cursor:
            columns = "batch_id, key, seq, status, rank, attempt, updated_us, tiebreak"
            copy_sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(copy_sql) as copy:
                copy.set_types(["uuid", "text", "int8", "text", "int2", "int4", "int8", "int8"])
                for index, key in enumerate(keys(size)):
                    copy.write_row((batch_id, key, stamp + index, "pending", 0, 0, stamp, PENDING_TIEBREAK))

    seen = 0

    def iterate() -> None:
        nonlocal seen
        with connection.transaction(), connection.cursor(name="scan") as cursor:
            cursor.itersize = 1000
            cursor.execute(
                f"SELECT key, seq, status, attempt, result, error, updated_us FROM {table}"
                " WHERE batch_id = %s ORDER BY seq, key",
                (batch_id,),
            )
            for _ in cursor:
                seen += 1

    created = _timed_create(create, url)
    connection.execute(f"ANALYZE {table}")  # fallthrough's side gets the same (_analyze)
    iterate_seconds = _timed(iterate)
    assert seen == size, f"iterated {seen} of {size} records"
    group_by = f"SELECT status, count(*) FROM {table} WHERE batch_id = %s GROUP BY status"
    if counted:
        group_by = "SELECT status, sum(count) FROM fallthrough_status_counts WHERE batch_id = %s GROUP BY status"
        counts: dict[str, int] = dict(connection.execute(group_by, (batch_id,)).fetchall())
        assert counts == {"pending": size}, f"the trigger counted {counts}, not {size} pending"
    progress = _timed(lambda: [connection.execute(group_by, (batch_id,)).fetchall() for _ in range(progress_calls)])
    connection.execute(f"DROP TABLE {table}")
    connection.close()
    return {
        **created,
        "iterate": iterate_seconds,
        "progress": progress / progress_calls,
        "baseline": baseline,
    }


def run_raw_qdrant_edge(directory: str, size: int, progress_calls: int) -> dict[str, float]:
    import itertools

    from qdrant_edge import (
        Direction,
        EdgeShard,
        FacetRequest,
        FieldCondition,
        Filter,
        MatchValue,
        OrderBy,
        Point,
        RangeFloat,
        ScrollRequest,
        UpdateOperation,
    )

    from fallthrough.ordering import PENDING_TIEBREAK

    # A contrib distribution, installed apart: imported by name, so that the script type-checks without it.
    schema = importlib.import_module("fallthrough_qdrant_edge.schema")

    shard = EdgeShard.create(directory, schema.shard_config(None))
    for field, index in schema.RECORD_INDEXES.items():
        shard.update(UpdateOperation.create_field_index(field, index))
    baseline = rss_mb()
    batch_id = uuid.uuid4()
    in_batch = FieldCondition("batch_id", match=MatchValue(str(batch_id)))
    stamp = time.time_ns() // 1000
    high, low = schema.split_tiebreak(PENDING_TIEBREAK)

    def payload(key: str, seq: int) -> dict[str, Any]:
        return {
            "kind": "record",
            "batch_id": str(batch_id),
            "key": key,
            "seq": seq,
            "status": "pending",
            "rank": 0,
            "attempt": 0,
            "result": "null",
            "error": None,
            "updated_us": stamp,
            "tiebreak_high": high,
            "tiebreak_low": low,
        }

    def create() -> None:
        numbered = enumerate(keys(size))
        while chunk := list(itertools.islice(numbered, EDGE_POINTS_PER_UPSERT)):
            points = [Point(schema.record_point_id(batch_id, key), {}, payload(key, stamp + i)) for i, key in chunk]
            shard.update(UpdateOperation.upsert_points(points))

    seen = 0

    def iterate() -> None:
        nonlocal seen
        after: int | None = None
        while True:
            later = [] if after is None else [FieldCondition("seq", range=RangeFloat(gt=after))]
            order = OrderBy("seq", direction=Direction.Asc, start_from=after)
            request = ScrollRequest(
                limit=1000, filter=Filter(must=[in_batch, *later]), with_payload=True, order_by=order
            )
            points = shard.scroll(request)[0]
            if not points:
                return
            seen += len(points)
            after = (points[-1].payload or {})["seq"]

    facet = FacetRequest("status", limit=4, exact=True, filter=Filter(must=[in_batch]))
    create_seconds = _timed(create)
    iterate_seconds = _timed(iterate)
    assert seen == size, f"iterated {seen} of {size} records"
    progress = _timed(lambda: [shard.facet(facet) for _ in range(progress_calls)])
    shard.close()
    return {
        "create": create_seconds,
        "iterate": iterate_seconds,
        "progress": progress / progress_calls,
        "baseline": baseline,
    }


RAW_RUNNERS: dict[str, Callable[[str, int, int], dict[str, float]]] = {
    "sqlite-memory": run_raw_sqlite,
    "sqlite-file": run_raw_sqlite,
    "postgresql": run_raw_postgresql,
    "postgresql-counted": functools.partial(run_raw_postgresql, counted=True),
    "qdrant-edge": run_raw_qdrant_edge,
}


def child(side: str, backend: str, size: int, target: str) -> None:
    progress_calls = 20
    if side == "raw":
        figures = RAW_RUNNERS[backend](target, size, progress_calls)
    else:
        figures = run_fallthrough(target, size, progress_calls)
    figures["peak"] = peak_rss_mb()
    print(json.dumps(figures))


# -- the parent: sides in turn, then the table --------------------------------------


def spawn(side: str, backend: str, size: int, target: str, timeout: float) -> dict[str, float] | None:
    command = [sys.executable, __file__, "--child", side, backend, str(size), target]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{side} {backend} {size}: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def targets(backend: str, side: str, directory: Path, postgresql: PostgreSQL | None) -> str:
    name = f"{side}-{uuid.uuid4().hex[:6]}.db"
    if backend == "sqlite-memory":
        return ":memory:" if side == "raw" else "sqlite://"
    if backend == "sqlite-file":
        path = directory / name
        return str(path) if side == "raw" else f"sqlite:///{path}"
    if backend == "qdrant-edge":
        path = directory / name.removesuffix(".db")
        return str(path) if side == "raw" else f"qdrant+edge:///{path}"  # an absolute path: four slashes
    assert postgresql is not None
    return postgresql.fresh_database()


class PostgreSQL:
    """One server; a fresh database for every child, so that neither side writes into the other's leftovers.

    Each database gets the plugin's schema (the raw side copies its table) and a
    CHECKPOINT before the child starts, so that both sides start from the same
    state of the write-ahead log.
    """

    def __init__(self, directory: Path) -> None:
        from pgserver.postgres_server import get_server

        self.server = get_server(directory / "pg", cleanup_mode="stop")
        self._databases: list[str] = []

    def fresh_database(self) -> str:
        import fallthrough

        self.drop_databases()
        database = f"scale_{uuid.uuid4().hex[:8]}"
        self.server.psql(
            f"CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';"
        )
        self._databases.append(database)
        uri = self.server.get_uri().replace("/postgres?", f"/{database}?", 1)
        url = uri.replace("postgresql://", "postgresql+psycopg://", 1)
        with fallthrough.connect(url) as store:  # the plugin's schema, which the raw side copies
            store.health(ping=True)
        self.server.psql("CHECKPOINT;")
        return url

    def drop_databases(self) -> None:
        for database in self._databases:
            self.server.psql(f"DROP DATABASE IF EXISTS {database};")
        self._databases.clear()

    def cleanup(self) -> None:
        self.server.cleanup()


def measure(backends: list[str], sizes: list[int], rounds: int, timeout: float) -> list[dict[str, Any]]:
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-scale-"))
    postgresql = None
    try:
        if any(backend.startswith("postgresql") for backend in backends):
            postgresql = PostgreSQL(directory)
        rows = []
        for backend in backends:
            for size in sizes:
                sides: dict[str, list[dict[str, float]]] = {"raw": [], "fallthrough": []}
                for round_index in range(rounds):
                    order = ["raw", "fallthrough"] if round_index % 2 == 0 else ["fallthrough", "raw"]
                    for side in order:
                        figures = spawn(side, backend, size, targets(backend, side, directory, postgresql), timeout)
                        if figures is not None:
                            sides[side].append(figures)
                        print(f"  {backend} {size:,} {side}: {figures}", file=sys.stderr, flush=True)
                rows.append({"backend": backend, "size": size, **sides})
        return rows
    finally:
        if postgresql is not None:
            postgresql.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


def measure_qdrant(timeout: float) -> list[tuple[int, float | None]]:
    rows = []
    for size in QDRANT_SIZES:
        figures = spawn("fallthrough", "qdrant-memory", size, "qdrant+memory://", timeout)
        rows.append((size, None if figures is None else figures["iterate"]))
        print(f"  qdrant+memory {size:,}: {figures}", file=sys.stderr, flush=True)
    return rows


def best(figures: list[dict[str, float]], name: str) -> float | None:
    values = [figure[name] for figure in figures]
    return min(values) if values else None


def median(figures: list[dict[str, float]], name: str) -> float | None:
    values = sorted(figure[name] for figure in figures)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def growth(figures: list[dict[str, float]]) -> float | None:
    values = [figure["peak"] - figure["baseline"] for figure in figures]
    return max(values) if values else None


def cell(value: float | None, form: str) -> str:
    return "did not finish" if value is None else format(value, form)


def print_tables(rows: list[dict[str, Any]], qdrant: list[tuple[int, float | None]], timeout: float) -> None:
    print(
        f"Machine: {machine()}; each time the best of its rounds, the ratio of the bests and of the medians;"
        " RSS growth the worst.\n"
    )
    print("| backend | records | operation | raw | fallthrough | ratio | median ratio | goal |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for row in rows:
        raw, ours = row["raw"], row["fallthrough"]
        create_goal = GOALS.get(CREATE_GOALS.get(row["backend"], ""))
        measured = [
            ("create", "s", 1.0, create_goal),
            ("create cpu", "s", 1.0, None),
            ("create server cpu", "s", 1.0, None),
            ("create client cpu", "s", 1.0, None),
            ("iterate", "s", 1.0, GOALS["iterate"]),
            ("progress", "ms", 1000.0, None),
        ]
        for operation, unit, scale, goal in measured:
            if not all(operation in figure for figure in raw + ours):
                continue  # CPU is measured on PostgreSQL only
            raw_value, our_value = best(raw, operation), best(ours, operation)
            ratio = None if raw_value is None or our_value is None else our_value / raw_value
            raw_median, our_median = median(raw, operation), median(ours, operation)
            median_ratio = None if raw_median is None or our_median is None else our_median / raw_median
            goal_text = f"≤ {goal}×" if goal else ""
            if operation == "progress" and row["backend"].startswith("sqlite"):
                goal_text = f"≤ {GOALS['progress ms']} ms"
            print(
                f"| {row['backend']} | {row['size']:,} | {operation} ({unit}) "
                f"| {cell(raw_value and raw_value * scale, '.3f')} | {cell(our_value and our_value * scale, '.3f')} "
                f"| {cell(ratio, '.2f')}× | {cell(median_ratio, '.2f')}× | {goal_text} |"
            )
        raw_rss, our_rss = growth(raw), growth(ours)
        print(
            f"| {row['backend']} | {row['size']:,} | peak RSS growth (MB) | {cell(raw_rss, '.0f')} "
            f"| {cell(our_rss, '.0f')} | | | < {GOALS['rss mb']:.0f} MB |"
        )
    if qdrant:
        print("\n| qdrant+memory:// records | iterate (s) | µs per record |")
        print("|---:|---:|---:|")
        for size, seconds in qdrant:
            per_record = None if seconds is None else seconds / size * 1e6
            print(f"| {size:,} | {cell(seconds, '.2f')} | {cell(per_record, '.1f')} |")
        print(f"\n(a child that ran past {timeout:.0f} s is 'did not finish')")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "BACKEND", "SIZE", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"also: {', '.join(OPTIONAL_BACKENDS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--qdrant", action="store_true", help="also iterate qdrant+memory:// at 20,000 and 200,000")
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help="seconds before a child is given up")
    options = parser.parse_args(argv)
    if options.child:
        side, backend, size, target = options.child
        child(side, backend, int(size), target)
        return
    sizes = [int(size) for size in options.sizes.split(",")]
    backends = [backend for backend in options.backends.split(",") if backend]
    unknown = set(backends) - set(BACKENDS) - set(OPTIONAL_BACKENDS)
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    if "qdrant-edge" in backends and importlib.util.find_spec("fallthrough_qdrant_edge") is None:
        parser.error("qdrant-edge: pip install -e contrib/fallthrough-qdrant-edge first")
    rows = measure(backends, sizes, options.rounds, options.timeout)
    qdrant = measure_qdrant(options.timeout) if options.qdrant else []
    print_tables(rows, qdrant, options.timeout)


if __name__ == "__main__":
    main()
