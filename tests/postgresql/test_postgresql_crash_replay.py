"""A real crash: PostgreSQL is killed in the middle of a batch, started again, and loses nothing.

Four workers update a batch of 3,000 records (1,000 behind Qdrant) through one Store (each record
goes to ``processing``, then ``completed`` with a result or ``failed``),
while the test kills PostgreSQL (``pg_ctl stop -m immediate``) after about a
third of the updates and starts it again on the same data directory after
about two thirds. The other store stays up: a SQLite file when PostgreSQL is
first, a Qdrant local store when PostgreSQL is second.

Every update that returned (True or False) is acknowledged and logged. A
reader thread reads random records and the batch's progress through the
Store the whole time, and checks that no read is older, under the merge
order (:func:`fallthrough.ordering.merge_key`), than what was acknowledged
when the read started. The Store stamps an update after the worker reads the
wall clock before calling it, so ``merge_key(attempt, status, that clock, 0)``
is at most the acknowledged state's own key: a read below it is older than
an acknowledged write for certain.

Afterwards the journal drains, and PostgreSQL read alone (a second Store over
its URL only) has every acknowledged status: the writes of its outage were
journaled and replayed after the restart. Each test starts a PostgreSQL 15
server of its own and always starts it again in a ``finally``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import fallthrough
from fallthrough import Record, Status
from fallthrough.ordering import content_tiebreak, merge_key
from fallthrough.validation import JSON
from tests.postgresql.servers import LocalCluster

RECORDS = 3000
QDRANT_RECORDS = 1000
"""Fewer behind Qdrant: qdrant-client's local mode takes half a minute here to create 3,000 points, 1.5 s for 1,000."""
THREADS = 4
TIMEOUT = 2
COOLDOWN = 0.2
WAIT = 45.0
"""Seconds any one phase may take before the test gives up (each test runs well under a minute)."""

MergeKey = tuple[int, int, int, int]


def state_key(record: Record) -> MergeKey:
    """The merge key of the state a read returned."""
    tiebreak = content_tiebreak(record.status, record.result, record.error)
    return merge_key(record.attempt, record.status, record.updated_at, tiebreak)


def finishes_failed(index: int) -> bool:
    return index % 5 == 0


def expected_result(index: int) -> JSON:
    return {"n": index, "rows": [index, "цемент"]}


class Acknowledged:
    """The log of every acknowledged update, and per record a floor under its latest acknowledged state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[tuple[str, Status, bool]] = []
        self._floor: dict[str, MergeKey] = {}
        self._finished = 0

    def note(self, key: str, status: Status, attempt: int, called_at: int, applied: bool) -> None:
        with self._lock:
            self.log.append((key, status, applied))
            if applied:
                self._floor[key] = merge_key(attempt, status, called_at, 0)
                if status in (Status.COMPLETED, Status.FAILED):
                    self._finished += 1

    def count(self) -> int:
        with self._lock:
            return len(self.log)

    def floor(self, key: str) -> MergeKey | None:
        with self._lock:
            return self._floor.get(key)

    def finished(self) -> int:
        with self._lock:
            return self._finished

    def final_statuses(self) -> dict[str, Status]:
        """Each record's last applied status, from the log."""
        with self._lock:
            return {key: status for key, status, applied in self.log if applied}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def crash_and_replay(store_urls: Sequence[str], postgresql_url: str, cluster: LocalCluster, count: int) -> None:
    updates = count * 2  # processing, then completed or failed
    store = fallthrough.connect(*store_urls, breaker=fallthrough.BreakerPolicy(cooldown=COOLDOWN))
    with store:
        keys = [f"item-{index:05d}" for index in range(count)]
        batch = store.create_batch(keys, metadata={"source": "crash"})
        records = list(store.records(batch.id))
        assert [record.key for record in records] == keys

        acked = Acknowledged()
        stop = threading.Event()
        caught_up = threading.Event()
        raised: list[BaseException] = []
        stale: list[str] = []
        reads_after_catch_up = [0]

        def work(mine: Sequence[Record]) -> None:
            for record in mine:
                index = int(record.key.split("-")[1])
                finish: tuple[Status, JSON, str | None] = (
                    (Status.FAILED, None, f"supplier {index} timed out")
                    if finishes_failed(index)
                    else (Status.COMPLETED, expected_result(index), None)
                )
                for status, result, error in ((Status.PROCESSING, None, None), finish):
                    if stop.is_set():
                        return
                    called_at = time.time_ns() // 1000
                    try:
                        applied = store.update(
                            batch.id, record.key, status, result=result, error=error, attempt=record.attempt
                        )
                    except BaseException as failure:  # nothing may raise: the other store is up
                        raised.append(failure)
                        stop.set()
                        return
                    acked.note(record.key, status, record.attempt, called_at, applied)

        def read() -> None:
            chooser = random.Random(9)
            reads = 0
            while not stop.is_set():
                key = chooser.choice(keys)
                floor = acked.floor(key)
                finished_floor = acked.finished()
                after_catch_up = caught_up.is_set()
                try:
                    record = store.get_record(batch.id, key)
                    progress = store.progress(batch.id) if reads % 20 == 0 else None
                except BaseException as error:
                    raised.append(error)
                    stop.set()
                    return
                reads += 1
                if after_catch_up:
                    reads_after_catch_up[0] += 1
                if record is None:
                    stale.append(f"{key}: not found")
                elif floor is not None and state_key(record) < floor:
                    stale.append(f"{key}: read {record.status} {state_key(record)}, acknowledged {floor}")
                if progress is not None and progress.done < finished_floor:
                    stale.append(f"progress: {progress.done} done, {finished_floor} acknowledged")

        workers = [
            threading.Thread(target=work, args=(records[number::THREADS],), name=f"worker-{number}")
            for number in range(THREADS)
        ]
        reader = threading.Thread(target=read, name="reader")
        killed = False
        try:
            for thread in [*workers, reader]:
                thread.start()
            wait_until(lambda: acked.count() >= updates // 3 or stop.is_set(), "a third of the updates")
            cluster.stop("immediate")
            killed = True
            # A batch created while PostgreSQL is down must be there, through the Store and in PostgreSQL, later.
            outage_batch = store.create_batch(["late-1", "late-2"])
            wait_until(lambda: acked.count() >= 2 * updates // 3 or stop.is_set(), "two thirds of the updates")
            cluster.start()
            killed = False
            for thread in workers:
                thread.join(WAIT)
                assert not thread.is_alive(), "a worker is stuck"
            # PostgreSQL has caught up and serves reads again: the reader goes on a while against it.
            wait_until(lambda: all(backend.serves_reads for backend in store.health()), "the replay")
            caught_up.set()
            wait_until(lambda: reads_after_catch_up[0] >= 100 or stop.is_set(), "reads after the replay")
        finally:
            stop.set()
            if killed:
                cluster.start()
            for thread in [*workers, reader]:
                thread.join(WAIT)

        assert raised == []
        assert stale == [], f"{len(stale)} reads older than acknowledged, e.g. {stale[:3]}"
        assert acked.count() == updates
        assert all(applied for _, _, applied in acked.log), "an update that should apply returned False"
        health = {backend.name: backend for backend in store.health()}
        assert health["postgresql"].missed_writes > 0, "PostgreSQL missed no write: the crash was not observed"

        assert store.drain(timeout=30) is True
        health = {backend.name: backend for backend in store.health()}
        assert [(name, h.pending_hints, h.serves_reads, h.needs_repair) for name, h in health.items()] == [
            (name, 0, True, False) for name in health
        ]

        final = acked.final_statuses()
        assert len(final) == count
        expected = Counter(final.values())
        progress = store.progress(batch.id)
        assert (progress.total, progress.pending, progress.processing, progress.completed, progress.failed) == (
            count,
            0,
            0,
            expected[Status.COMPLETED],
            expected[Status.FAILED],
        )
        assert store.get_batch(outage_batch.id) is not None

    # PostgreSQL alone: every acknowledged status, the outage's included.
    with fallthrough.connect(postgresql_url) as alone:
        stored = {record.key: record for record in alone.records(batch.id)}
        assert sorted(stored) == keys
        missing = [
            key
            for key, status in final.items()
            if stored[key].status is not status or state_key(stored[key]) < (acked.floor(key) or (0, 0, 0, 0))
        ]
        assert missing == [], f"{len(missing)} acknowledged statuses are not in PostgreSQL, e.g. {missing[:5]}"
        completed = [stored[key] for key in keys if final[key] is Status.COMPLETED]
        assert all(record.result == expected_result(int(record.key[5:])) for record in completed)
        assert alone.progress(batch.id) == progress
        late = alone.get_batch(outage_batch.id)
        assert late is not None and late.total == 2


def test_postgresql_first_killed_mid_batch_then_restarted_has_every_acknowledged_status(
    throwaway_pg15_cluster: LocalCluster, tmp_path: Path
) -> None:
    postgresql = throwaway_pg15_cluster.url() + f"?timeout={TIMEOUT}"
    urls = [postgresql, f"sqlite:///{tmp_path}/records.db"]
    crash_and_replay(urls, postgresql, throwaway_pg15_cluster, RECORDS)


def test_postgresql_second_killed_mid_batch_behind_qdrant_is_replayed_after_restart(
    throwaway_pg15_cluster: LocalCluster, tmp_path: Path
) -> None:
    postgresql = throwaway_pg15_cluster.url() + f"?timeout={TIMEOUT}"
    urls = [f"qdrant+local:///{tmp_path}/qdrant", postgresql]
    crash_and_replay(urls, postgresql, throwaway_pg15_cluster, QDRANT_RECORDS)
