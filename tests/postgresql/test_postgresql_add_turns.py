"""The threads of one backend adding to one batch take turns at writing its records (``records.BatchTurns``).

A streamed create keeps two chunk writes in flight; taking turns keeps their
rows out of each other's index pages. The database test holds the batch row
``FOR UPDATE`` from a connection of its own, so that an add inside its turn
waits at its ``FOR SHARE``, where ``pg_stat_activity`` shows it (the
backend's connections carry an ``application_name`` of the test's own): an
add waiting for the turn has sent nothing, and is not seen there.
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

from fallthrough.errors import NotFound
from fallthrough_postgresql.records import COPY_THRESHOLD, BatchTurns
from tests.postgresql.helpers import Hooks, at, direct, open_backend

_WAITING_FOR_LOCKS = """
    SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'
"""


def _waiting_for_locks(database: str, application: str) -> int:
    """How many of the backend's connections (named ``application``) wait for a lock at the server."""
    with direct(database) as conn:
        row = conn.execute(_WAITING_FOR_LOCKS, (application,)).fetchone()
    assert row is not None
    return int(row[0])


class _AskedTurns(BatchTurns):
    """Turns that tell which batches asked for one, before waiting for it."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.asked: list[uuid.UUID] = []

    @contextmanager
    def turn(self, batch_id: uuid.UUID) -> Iterator[bool]:
        self.asked.append(batch_id)
        with super().turn(batch_id) as taken:
            yield taken


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
    application = f"ft-turns-{uuid.uuid4().hex[:12]}"
    hooks = open_backend(
        make_url(database).update_query_dict({"application_name": application}).render_as_string(False)
    )
    turns = hooks.plugin._batch_turns = _AskedTurns(wait=30)  # far longer than this test holds a turn
    batch_id = _new_batch(hooks)
    other_batch = _new_batch(hooks, not_sharing_a_turn_with=batch_id)
    with _batch_row_held(database, batch_id):
        first = _Add(hooks, batch_id, _keys("a"), 1_000)
        _eventually(lambda: _waiting_for_locks(database, application) == 1, "the first add waits at the batch row")
        second = _Add(hooks, batch_id, _keys("b"), 2_000)
        _eventually(lambda: turns.asked.count(batch_id) == 2, "the second add asks for the batch's turn")
        added = hooks.fallthrough_add_records(batch_id=other_batch, keys=_keys("c"), first_seq=3_000, created_at=at(1))
        assert added == len(_keys("c"))
        time.sleep(1)  # ample for the second add to reach the batch row, were it not waiting for the turn
        assert _waiting_for_locks(database, application) == 1, "the second add did not wait for the first one's turn"
        assert first.is_alive() and second.is_alive()
    first.join(30)
    second.join(30)
    assert (first.error, second.error) == (None, None)
    assert first.answer == second.answer == len(_keys("a"))
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert sorted(record.key for record in listed) == sorted(["first", *_keys("a"), *_keys("b")])


def test_a_delete_of_the_batch_does_not_wait_for_an_add_waiting_for_its_turn(database: str) -> None:
    """A waiting add holds no lock: holding the batch row's, waiters would keep it held for a whole create."""
    hooks = open_backend(database)
    turns = hooks.plugin._batch_turns = _AskedTurns(wait=30)
    batch_id = _new_batch(hooks)
    deleted: list[bool] = []
    with turns.turn(batch_id):  # the test's own turn: the add waits for it
        waiting = _Add(hooks, batch_id, _keys("a"), 1_000)
        _eventually(lambda: turns.asked.count(batch_id) == 2, "the add asks for the batch's turn")
        deleter = threading.Thread(target=lambda: deleted.append(hooks.fallthrough_delete_batch(batch_id=batch_id)))
        deleter.start()
        deleter.join(10)
        deleted_while_the_add_waited = not deleter.is_alive()
    deleter.join(30)
    waiting.join(30)
    assert deleted_while_the_add_waited, "delete_batch waited for an add that was waiting for its turn"
    assert deleted == [True]
    assert isinstance(waiting.error, NotFound)


def test_a_thread_that_waited_too_long_for_the_turn_goes_on_without_it(caplog: pytest.LogCaptureFixture) -> None:
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
    assert [record.levelname for record in caplog.records if str(batch_id) in record.getMessage()] == ["WARNING"]
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
