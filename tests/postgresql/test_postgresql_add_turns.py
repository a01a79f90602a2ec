"""The threads of one backend adding to one batch take turns at writing its records (``records.BatchTurns``).

A streamed create keeps two chunk writes in flight; taking turns keeps their
rows out of each other's index pages. The database test holds the batch row
``FOR UPDATE`` from a connection of its own, so that an add inside its turn
waits at its ``FOR SHARE``, where ``pg_stat_activity`` shows it: an add
waiting for the turn has sent nothing, and is not seen there.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from fallthrough_postgresql.records import COPY_THRESHOLD, BatchTurns
from tests.postgresql.helpers import Hooks, at, direct, open_backend

_WAITING_FOR_LOCKS = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""


def _waiting_for_locks(database: str) -> int:
    with direct(database) as conn:
        row = conn.execute(_WAITING_FOR_LOCKS).fetchone()
    assert row is not None
    return int(row[0])


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


@contextmanager
def _batch_row_held(database: str, batch_id: uuid.UUID) -> Iterator[None]:
    """The batch row locked FOR UPDATE until the block ends: an add in its turn waits at its FOR SHARE."""
    with direct(database) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT FROM fallthrough_batches WHERE batch_id = %s FOR UPDATE", (batch_id,))
        try:
            yield
        finally:
            conn.execute("COMMIT")


class _Add(threading.Thread):
    def __init__(self, hooks: Hooks, batch_id: uuid.UUID, keys: list[str], first_seq: int) -> None:
        super().__init__()
        self.arguments = {"batch_id": batch_id, "keys": keys, "first_seq": first_seq, "created_at": at(1)}
        self.hooks = hooks
        self.answer: Any = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.answer = self.hooks.fallthrough_add_records(**self.arguments)
        except BaseException as error:  # the test reads it
            self.error = error


def _new_batch(hooks: Hooks, *, not_sharing_a_turn_with: uuid.UUID | None = None) -> uuid.UUID:
    batch_id = uuid.uuid4()
    stripes = BatchTurns(wait=0).stripes
    while not_sharing_a_turn_with is not None and hash(batch_id) % stripes == hash(not_sharing_a_turn_with) % stripes:
        batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["first"], first_seq=0, metadata={}, created_at=at(0))
    return batch_id


def _keys(prefix: str) -> list[str]:
    return [f"{prefix}-{index:05}" for index in range(COPY_THRESHOLD * 2)]


def test_adds_to_one_batch_take_turns_and_an_add_to_another_batch_does_not_wait(database: str) -> None:
    # A turn is waited for up to `timeout` seconds: far longer than this test holds one.
    hooks = open_backend(make_url(database).update_query_dict({"timeout": "30"}).render_as_string(False))
    batch_id = _new_batch(hooks)
    other_batch = _new_batch(hooks, not_sharing_a_turn_with=batch_id)
    with _batch_row_held(database, batch_id):
        first = _Add(hooks, batch_id, _keys("a"), 1_000)
        _eventually(lambda: _waiting_for_locks(database) == 1, "the first add waits at the batch row, in its turn")
        second = _Add(hooks, batch_id, _keys("b"), 2_000)
        added = hooks.fallthrough_add_records(batch_id=other_batch, keys=_keys("c"), first_seq=3_000, created_at=at(1))
        assert added == len(_keys("c"))
        time.sleep(0.3)  # ample for the second add to reach the batch row, were it not waiting for the turn
        assert _waiting_for_locks(database) == 1, "the second add did not wait for the first one's turn"
        assert first.is_alive() and second.is_alive()
    first.join(30)
    second.join(30)
    assert (first.error, second.error) == (None, None)
    assert first.answer == second.answer == len(_keys("a"))
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert sorted(record.key for record in listed) == sorted(["first", *_keys("a"), *_keys("b")])


def test_a_thread_that_waited_too_long_for_the_turn_goes_on_without_it() -> None:
    turns = BatchTurns(wait=0.05)
    batch_id = uuid.uuid4()
    late: list[bool] = []

    def take() -> None:
        with turns.turn(batch_id) as taken:
            late.append(taken)

    with turns.turn(batch_id) as taken:
        assert taken
        waiter = threading.Thread(target=take)
        waiter.start()
        waiter.join(10)
        assert late == [False]
    with turns.turn(batch_id) as taken_again:
        assert taken_again


@pytest.mark.parametrize("ending", [ValueError, KeyboardInterrupt])
def test_a_turn_is_given_back_however_its_block_ends(ending: type[BaseException]) -> None:
    turns = BatchTurns(wait=0)
    batch_id = uuid.uuid4()
    with pytest.raises(ending), turns.turn(batch_id) as taken:
        assert taken
        raise ending
    with turns.turn(batch_id) as taken_again:
        assert taken_again
