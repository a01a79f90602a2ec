"""Adds to one batch take turns at writing their records, and no turn outlives its add.

The turn is a session-level advisory lock (``records.ADDS_TURN_LOCK_ID``),
so a turn that was not given back would stay with a pooled connection and
stop every later add to the batch: each test ends by reading ``pg_locks``.
A test holds the batch row ``FOR UPDATE`` from a connection of its own to
keep an add inside its turn for as long as it needs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from fallthrough.errors import FallthroughError
from fallthrough_postgresql import records
from fallthrough_postgresql.connection import driver_connection
from fallthrough_postgresql.records import ADDS_TURN_LOCK_ID, COPY_THRESHOLD
from tests.postgresql.helpers import Hooks, at, direct, open_backend

_TURNS = """
    SELECT l.granted, l.objid = (hashtext(%s::text)::oid) AS this_batch
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.classid = %s::oid AND l.objsubid = 2
"""


def _turns(database: str, batch_id: uuid.UUID) -> list[bool]:
    """Whether each request for this batch's turn, held or waited for, is granted."""
    with direct(database) as conn:
        rows = conn.execute(_TURNS, (str(batch_id), ADDS_TURN_LOCK_ID)).fetchall()
    return sorted(granted for granted, this_batch in rows if this_batch)


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


def _new_batch(hooks: Hooks) -> uuid.UUID:
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["first"], first_seq=0, metadata={}, created_at=at(0))
    return batch_id


def _keys(prefix: str) -> list[str]:
    return [f"{prefix}-{index:05}" for index in range(COPY_THRESHOLD * 2)]


def test_adds_to_one_batch_take_turns_and_an_add_to_another_batch_does_not_wait(database: str) -> None:
    hooks = open_backend(database)
    batch_id, other_batch = _new_batch(hooks), _new_batch(hooks)
    with _batch_row_held(database, batch_id):
        first = _Add(hooks, batch_id, _keys("a"), 1_000)
        _eventually(lambda: _turns(database, batch_id) == [True], "the first add holds the batch's turn")
        second = _Add(hooks, batch_id, _keys("b"), 2_000)
        _eventually(lambda: _turns(database, batch_id) == [False, True], "the second add waits for the turn")
        assert hooks.fallthrough_add_records(
            batch_id=other_batch, keys=_keys("c"), first_seq=3_000, created_at=at(1)
        ) == len(_keys("c"))
        assert first.is_alive() and second.is_alive()
    first.join(30)
    second.join(30)
    assert (first.error, second.error) == (None, None)
    assert first.answer == second.answer == len(_keys("a"))
    listed = hooks.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10_000)
    assert sorted(record.key for record in listed) == sorted(["first", *_keys("a"), *_keys("b")])
    assert _turns(database, batch_id) == _turns(database, other_batch) == []


def test_an_add_that_fails_inside_its_turn_gives_the_turn_back(database: str) -> None:
    """A lock_timeout at the add's FOR SHARE: the add fails, and the batch takes adds again once the row is free."""
    hooks = open_backend(make_url(database).update_query_dict({"lock_timeout": "0.2"}).render_as_string(False))
    batch_id = _new_batch(hooks)
    with _batch_row_held(database, batch_id), pytest.raises(FallthroughError):
        hooks.fallthrough_add_records(batch_id=batch_id, keys=_keys("a"), first_seq=1_000, created_at=at(1))
    assert _turns(database, batch_id) == []
    assert hooks.fallthrough_add_records(batch_id=batch_id, keys=_keys("a"), first_seq=1_000, created_at=at(1)) == len(
        _keys("a")
    )
    assert _turns(database, batch_id) == []


def test_an_add_to_a_batch_that_is_gone_gives_the_turn_back(database: str) -> None:
    hooks = open_backend(database)
    batch_id = uuid.uuid4()
    with pytest.raises(FallthroughError, match="no batch"):
        hooks.fallthrough_add_records(batch_id=batch_id, keys=_keys("a"), first_seq=1_000, created_at=at(1))
    assert _turns(database, batch_id) == []


def test_a_connection_that_cannot_give_the_turn_back_is_closed_rather_than_pooled(database: str) -> None:
    """The turn is the session's: a rollback keeps it, so only closing the connection lets it go."""
    hooks = open_backend(database)
    engine = hooks.plugin._database.engine()
    batch_id = uuid.uuid4()
    turn = (ADDS_TURN_LOCK_ID, str(batch_id))
    with engine.connect() as conn:
        cursor = driver_connection(conn).cursor()
        cursor.execute(records._TAKE_TURN, turn)
        with pytest.raises(psycopg.errors.DivisionByZero):
            cursor.execute("SELECT 1 / 0")  # the transaction is aborted: the turn cannot be given back in it
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            records._give_turn(conn, cursor, turn)
        assert conn.invalidated
    _eventually(lambda: _turns(database, batch_id) == [], "the server let the closed session's turn go")
