"""Many threads, and several backend instances, writing one batch at once."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fallthrough.ordering import merge_key
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Progress, RecordUpdate, Status
from tests.sqlite.helpers import assert_exactly, file_url, hooks_of, open_backend

THREADS = 8
KEYS_PER_THREAD = 60
START = datetime(2026, 1, 1, tzinfo=UTC)


def _plan(thread: int) -> list[tuple[str, Status, int]]:
    """What one thread does: its own keys through processing to a final status (or stuck)."""
    steps = []
    for index in range(KEYS_PER_THREAD):
        key = f"t{thread}-k{index}"
        final = [Status.COMPLETED, Status.FAILED, Status.PROCESSING][(thread + index) % 3]
        steps.append((key, Status.PROCESSING, index))
        if final is not Status.PROCESSING:
            steps.append((key, final, index))
    return steps


def test_eight_threads_updating_one_batch_end_with_exact_counts(url: str) -> None:
    _, hooks = open_backend(url)
    model = hooks_of(ReferenceBackend())
    keys = [f"t{thread}-k{index}" for thread in range(THREADS) for index in range(KEYS_PER_THREAD)]
    batch_id = uuid.uuid4()
    for relay in (hooks, model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=START)
    errors: list[BaseException] = []
    observed: list[Progress] = []
    start = threading.Barrier(THREADS + 1)
    clock = iter(range(1, 10**9))
    clock_lock = threading.Lock()

    def stamp() -> datetime:
        with clock_lock:
            return START + timedelta(microseconds=next(clock))

    def work(thread: int) -> None:
        start.wait()
        try:
            for key, status, _ in _plan(thread):
                updates = [RecordUpdate(batch_id, key, status)]
                when = stamp()
                hooks.fallthrough_update_records(updates=updates, updated_at=when)
                with clock_lock:  # the model is the record of what was sent
                    model.fallthrough_update_records(updates=updates, updated_at=when)
        except BaseException as error:
            errors.append(error)

    def watch() -> None:
        start.wait()
        for _ in range(50):
            observed.append(hooks.fallthrough_progress(batch_id=batch_id))

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(THREADS)]
    threads.append(threading.Thread(target=watch))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = hooks.fallthrough_progress(batch_id=batch_id)
    assert final == model.fallthrough_progress(batch_id=batch_id)
    expected_failed = sum(1 for t in range(THREADS) for i in range(KEYS_PER_THREAD) if (t + i) % 3 == 1)
    assert final.failed == expected_failed and final.total == len(keys) and final.pending == 0
    # Every snapshot taken while they ran was a consistent count of the whole batch.
    assert all(progress.total == len(keys) for progress in observed)
    records = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert_exactly(records, model.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000))
    hooks.fallthrough_close()


def test_racing_updates_of_one_record_from_two_instances_keep_the_greatest(tmp_path: Path) -> None:
    """Two backends on one file (as two processes would be) race on the same records; the merge decides."""
    url = file_url(tmp_path / "race.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    batch_id = uuid.uuid4()
    keys = [f"k{i}" for i in range(20)]
    first.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=START)
    # Each writer sends the same 60 updates per key, in opposite orders.
    calls = [
        (
            [RecordUpdate(batch_id, key, status, result=f"{status}-{step}") for key in keys],
            START + timedelta(microseconds=step % 7),
        )
        for step, status in enumerate([Status.PROCESSING, Status.COMPLETED, Status.FAILED] * 20)
    ]
    errors: list[BaseException] = []

    def send(relay: object, ordered: list[tuple[list[RecordUpdate], datetime]]) -> None:
        try:
            for updates, when in ordered:
                relay.fallthrough_update_records(updates=updates, updated_at=when)  # type: ignore[attr-defined]
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=send, args=(first, calls)),
        threading.Thread(target=send, args=(second, calls[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for key in keys:
        record = first.fallthrough_get_record(batch_id=batch_id, key=key)
        best = max(
            (merge_key(0, update.status, when, update.tiebreak), update)
            for updates, when in calls
            for update in updates
            if update.key == key
        )[1]
        assert (record.status, record.result) == (best.status, best.result)
    first.fallthrough_close()
    second.fallthrough_close()
