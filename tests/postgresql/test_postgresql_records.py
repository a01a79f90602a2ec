"""Records on real servers: COPY for new batches, counters that stay exact, and many writers at once."""

from __future__ import annotations

import random
import threading
import uuid

import pytest

from fallthrough.ordering import merge_key
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Progress, Record, RecordUpdate, Status
from fallthrough_postgresql.records import COPY_THRESHOLD
from tests.postgresql.helpers import Hooks, at, direct, open_backend

THREADS = 8


def _ground_truth(url: str, batch_id: uuid.UUID) -> Progress:
    """The counts by a GROUP BY over the records themselves."""
    with direct(url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM processing_results WHERE batch_id = %s GROUP BY status", (batch_id,)
        ).fetchall()
    return Progress.from_counts({status: count for status, count in rows})


def test_a_big_new_batch_arrives_by_copy_and_an_existing_one_keeps_its_records(database: str) -> None:
    hooks = open_backend(database)
    model = Hooks(ReferenceBackend())
    batch_id = uuid.uuid4()
    keys = [f"Цемент М-500 #{index}\t\\" for index in range(COPY_THRESHOLD * 3)]
    for relay in (hooks, model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1000, metadata={}, created_at=at(0))
        relay.fallthrough_update_records(
            updates=[RecordUpdate(batch_id, keys[5], "completed", result=1)], updated_at=at(1)
        )
    more = keys[:COPY_THRESHOLD] + [f"new-{index}" for index in range(COPY_THRESHOLD)]
    batches = [
        relay.fallthrough_create_batch(
            batch_id=batch_id, keys=more, first_seq=9000, metadata={"x": 1}, created_at=at(2)
        )
        for relay in (hooks, model)
    ]
    assert batches[0] == batches[1]
    assert batches[0].total == COPY_THRESHOLD * 4
    listed = [hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)]
    assert listed[0] == model.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert hooks.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    hooks.fallthrough_delete_batch(batch_id=batch_id)


def test_keys_of_every_length_and_script_arrive_by_binary_copy_as_the_model_holds_them(database: str) -> None:
    """COPY's binary rows carry each key's UTF-8 byte length: lengths vary within a call, and bytes outnumber chars."""
    hooks = open_backend(database)
    model = Hooks(ReferenceBackend())
    rng = random.Random(12)
    alphabet = ["a", "Z", "\t", "\n", "\r", "\\", "ж", "€", "\u2028", "𝄞", "🙂", " ", "'", '"', "\x7f", "\x01"]
    keys = sorted(
        {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(COPY_THRESHOLD * 3)}
        | {"x" * 512, "𝄞" * 512}
    )
    later = [f"{key}+" for key in keys]
    batch_id = uuid.uuid4()
    for relay in (hooks, model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
        added = relay.fallthrough_add_records(batch_id=batch_id, keys=later, first_seq=len(keys) + 1, created_at=at(1))
        assert added == len(later)
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert listed == model.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert [record.key for record in listed] == keys + later
    hooks.fallthrough_delete_batch(batch_id=batch_id)


def test_counters_follow_writes_made_to_the_table_directly(database: str) -> None:
    """The counts are kept by triggers, so the original application's own SQL keeps them exact too."""
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(
        batch_id=batch_id, keys=[f"k{index}" for index in range(10)], first_seq=1, metadata={}, created_at=at(0)
    )
    with direct(database) as conn:
        conn.execute(
            "UPDATE processing_results SET status = 'failed', rank = 2 WHERE batch_id = %s AND key IN ('k1', 'k2')",
            (batch_id,),
        )
        conn.execute("DELETE FROM processing_results WHERE batch_id = %s AND key = 'k3'", (batch_id,))
    progress = hooks.fallthrough_progress(batch_id=batch_id)
    assert progress == _ground_truth(database, batch_id) == Progress(9, 7, 0, 0, 2)
    assert hooks.fallthrough_get_batch(batch_id=batch_id).total == 9


@pytest.mark.parametrize(
    "undo",
    [
        "DROP TRIGGER processing_results_count_updates ON processing_results",
        "ALTER TABLE processing_results DISABLE TRIGGER processing_results_count_updates",  # a bulk load's step
        "ALTER TABLE processing_results ENABLE REPLICA TRIGGER processing_results_count_updates",
    ],
    ids=["dropped", "disabled", "replica only"],
)
def test_counts_whose_triggers_were_dropped_are_counted_afresh_when_a_store_opens(database: str, undo: str) -> None:
    """Records written while the triggers were off went uncounted: the next open makes them again and recounts."""
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(
        batch_id=batch_id, keys=[f"k{index}" for index in range(10)], first_seq=1, metadata={}, created_at=at(0)
    )
    with direct(database) as conn:
        conn.execute(undo)
        conn.execute(
            "UPDATE processing_results SET status = 'failed', rank = 2 WHERE batch_id = %s AND key IN ('k1', 'k2')",
            (batch_id,),
        )
    assert hooks.fallthrough_progress(batch_id=batch_id) != _ground_truth(database, batch_id)

    reopened = open_backend(database)
    truth = _ground_truth(database, batch_id)
    assert reopened.fallthrough_progress(batch_id=batch_id) == truth == Progress(10, 8, 0, 0, 2)
    with direct(database) as conn:  # and the counts follow the table's own SQL again
        conn.execute(
            "UPDATE processing_results SET status = 'failed', rank = 2 WHERE batch_id = %s AND key = 'k3'", (batch_id,)
        )
    assert reopened.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)


def _plan(thread: int, keys_per_thread: int) -> list[tuple[str, Status]]:
    steps = []
    for index in range(keys_per_thread):
        key = f"t{thread}-k{index}"
        final = [Status.COMPLETED, Status.FAILED, Status.PROCESSING][(thread + index) % 3]
        steps.append((key, Status.PROCESSING))
        if final is not Status.PROCESSING:
            steps.append((key, final))
    return steps


def test_eight_threads_updating_one_batch_end_with_exact_counts(database: str) -> None:
    keys_per_thread = 40
    hooks = open_backend(database)
    model = Hooks(ReferenceBackend())
    batch_id = uuid.uuid4()
    keys = [f"t{thread}-k{index}" for thread in range(THREADS) for index in range(keys_per_thread)]
    for relay in (hooks, model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
    errors: list[BaseException] = []
    observed: list[Progress] = []
    start = threading.Barrier(THREADS)
    clock = iter(range(1, 10**9))
    clock_lock = threading.Lock()

    def work(thread: int) -> None:
        start.wait()
        try:
            for key, status in _plan(thread, keys_per_thread):
                updates = [RecordUpdate(batch_id, key, status)]
                with clock_lock:
                    when = at(next(clock))
                hooks.fallthrough_update_records(updates=updates, updated_at=when)
                with clock_lock:
                    model.fallthrough_update_records(updates=updates, updated_at=when)
                observed.append(hooks.fallthrough_progress(batch_id=batch_id))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = hooks.fallthrough_progress(batch_id=batch_id)
    assert final == model.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    finals = [
        [Status.COMPLETED, Status.FAILED, Status.PROCESSING][(t + i) % 3]
        for t in range(THREADS)
        for i in range(keys_per_thread)
    ]
    assert (final.completed, final.failed) == (finals.count(Status.COMPLETED), finals.count(Status.FAILED))
    # Every progress read mid-run was a consistent snapshot: its counts add up to the total.
    assert {progress.total for progress in observed} == {len(keys)}
    hooks.fallthrough_delete_batch(batch_id=batch_id)


def test_overlapping_bulk_updates_from_eight_backends_neither_deadlock_nor_lose_the_maximum(database: str) -> None:
    """Each thread has its own backend (its own pool) and updates every record, in its own random order."""
    keys = [f"k{index}" for index in range(300)]
    batch_id = uuid.uuid4()
    open_backend(database).fallthrough_create_batch(
        batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0)
    )
    errors: list[BaseException] = []
    sent: list[tuple[RecordUpdate, int]] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        backend = open_backend(database)
        rng = random.Random(thread)
        start.wait()
        try:
            for round_index in range(5):
                order = rng.sample(keys, len(keys))
                status = rng.choice([Status.PROCESSING, Status.COMPLETED, Status.FAILED])
                updates = [RecordUpdate(batch_id, key, status, result=[thread, round_index]) for key in order]
                when = 1 + round_index * 100 + thread
                sent.extend((update, when) for update in updates)
                backend.fallthrough_update_records(updates=updates, updated_at=at(when))
        except BaseException as error:
            errors.append(error)
        finally:
            backend.fallthrough_close()

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    hooks = open_backend(database)
    for key in keys:
        candidates = [(update, when) for update, when in sent if update.key == key]
        best, when = max(candidates, key=lambda pair: merge_key(0, pair[0].status, at(pair[1]), pair[0].tiebreak))
        record = hooks.fallthrough_get_record(batch_id=batch_id, key=key)
        assert (record.status, record.result, record.updated_at) == (best.status, best.result, at(when))
    assert hooks.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    hooks.fallthrough_delete_batch(batch_id=batch_id)


def test_records_written_without_their_batch_row_are_kept_when_the_batch_is_created(database: str) -> None:
    """COPY would fail on such a key; the backend falls back to the insert that skips present keys."""
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    with direct(database) as conn:
        conn.execute(
            "INSERT INTO processing_results (batch_id, key, seq, status, rank, attempt, updated_us, tiebreak) "
            "VALUES (%s, 'k5', 1, 'completed', 2, 0, 1, 1)",
            (batch_id,),
        )
    keys = [f"k{index}" for index in range(COPY_THRESHOLD)]
    batch = hooks.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=100, metadata={}, created_at=at(2))
    assert batch.total == COPY_THRESHOLD
    record = hooks.fallthrough_get_record(batch_id=batch_id, key="k5")
    assert (record.status, record.seq) == (Status.COMPLETED, 1)
    assert hooks.fallthrough_get_record(batch_id=batch_id, key="k6").seq == 106
    assert hooks.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    hooks.fallthrough_delete_batch(batch_id=batch_id)


def test_an_add_of_keys_the_batch_partly_holds_writes_the_absent_ones_only(database: str) -> None:
    """add_records tries COPY first; a held key makes it fail, and the insert that skips held keys takes over."""
    hooks = open_backend(database)
    model = Hooks(ReferenceBackend())
    batch_id = uuid.uuid4()
    held = [f"k{index:05}" for index in range(0, COPY_THRESHOLD * 4, 7)]
    keys = [f"k{index:05}" for index in range(COPY_THRESHOLD * 4)]
    keys.reverse()
    for relay in (hooks, model):
        relay.fallthrough_create_batch(batch_id=batch_id, keys=held, first_seq=1, metadata={}, created_at=at(0))
        relay.fallthrough_update_records(updates=[RecordUpdate(batch_id, held[3], "failed")], updated_at=at(1))
    added = [
        relay.fallthrough_add_records(batch_id=batch_id, keys=keys, first_seq=10_000, created_at=at(2))
        for relay in (hooks, model)
    ]
    assert added[0] == added[1] == len(keys) - len(held)
    # And an add of new keys only (the COPY), in descending key order: seq still follows input order.
    # What COPY's text format must escape: the NULL marker, a tab, line ends, a backslash.
    awkward = "\\N\t\n\r\\"
    fresh = [f"n{index:05}" + (awkward if index % 3 else "") for index in reversed(range(COPY_THRESHOLD * 2))]
    added = [
        relay.fallthrough_add_records(batch_id=batch_id, keys=fresh, first_seq=50_000, created_at=at(3))
        for relay in (hooks, model)
    ]
    assert added[0] == added[1] == len(fresh)
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=100_000)
    assert listed == model.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=100_000)
    assert hooks.fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    assert hooks.fallthrough_progress(batch_id=batch_id) == model.fallthrough_progress(batch_id=batch_id)
    hooks.fallthrough_delete_batch(batch_id=batch_id)


@pytest.mark.parametrize("size", [100, COPY_THRESHOLD * 10])
def test_adding_and_merging_the_same_new_keys_in_opposite_orders_does_not_deadlock(database: str, size: int) -> None:
    """add_records inserts (or COPYs) in key order, as merge_records and update_records write: no lock cycle."""
    hooks = [open_backend(database) for _ in range(4)]
    batch_id = uuid.uuid4()
    hooks[0].fallthrough_create_batch(batch_id=batch_id, keys=[], first_seq=1, metadata={}, created_at=at(0))
    errors: list[BaseException] = []
    rounds = 20
    barriers = [threading.Barrier(4) for _ in range(rounds)]

    def add(thread: int) -> None:
        for round_ in range(rounds):
            keys = [f"r{round_}-k{index:05}" for index in range(size)]
            if thread % 2:
                keys.reverse()
            barriers[round_].wait()
            try:
                if thread < 2:
                    hooks[thread].fallthrough_add_records(
                        batch_id=batch_id, keys=keys, first_seq=100_000 * round_, created_at=at(1)
                    )
                else:
                    merged = [
                        Record(batch_id, key, 100_000 * round_ + index, Status.PENDING, 0, None, None, at(1))
                        for index, key in enumerate(keys)
                    ]
                    hooks[thread].fallthrough_merge_records(batch_id=batch_id, records=merged)
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=add, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert hooks[0].fallthrough_progress(batch_id=batch_id) == _ground_truth(database, batch_id)
    assert hooks[0].fallthrough_get_batch(batch_id=batch_id).total == size * rounds
    hooks[0].fallthrough_delete_batch(batch_id=batch_id)
