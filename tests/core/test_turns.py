"""A batch's turn: adds share it, a removal takes it alone and goes before the adds that come after it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from fallthrough.errors import TurnHeld
from fallthrough.turns import Turns


def _enter(turns: Turns, key: str, mode: str, log: list[str], name: str, leave: threading.Event) -> threading.Thread:
    def run() -> None:
        with getattr(turns, mode)(key):
            log.append(f"{name} in")
            leave.wait(10)
        log.append(f"{name} out")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _eventually(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait for ``condition``, polling; a thread on a loaded machine may take its time to get there."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def _users(turns: Turns, key: str) -> int:
    """How many threads hold ``key``'s turn or wait for it: a thread counts once it is waiting."""
    with turns._changed:
        turn = turns._turns.get(key)
        return 0 if turn is None else turn.users


def test_adds_share_a_turn_and_other_keys_are_not_held() -> None:
    turns, log, leave = Turns(), [], threading.Event()
    threads = [_enter(turns, "x", "shared", log, f"add{index}", leave) for index in range(2)]
    threads.append(_enter(turns, "y", "alone", log, "delete y", leave))
    _eventually(lambda: len(log) == 3)
    assert sorted(log) == ["add0 in", "add1 in", "delete y in"]
    leave.set()
    for thread in threads:
        thread.join(10)
    assert len(turns) == 0


def test_a_removal_waits_for_the_adds_under_way_and_goes_before_those_after_it() -> None:
    turns, log = Turns(), []
    first_add_leaves, delete_leaves, later_add_leaves = threading.Event(), threading.Event(), threading.Event()
    first = _enter(turns, "x", "shared", log, "add", first_add_leaves)
    _eventually(lambda: log == ["add in"])
    delete = _enter(turns, "x", "alone", log, "delete", delete_leaves)
    _eventually(lambda: _users(turns, "x") == 2)
    later = _enter(turns, "x", "shared", log, "later add", later_add_leaves)
    _eventually(lambda: _users(turns, "x") == 3)
    assert log == ["add in"]  # the delete waits for the add; the later add waits behind the delete
    first_add_leaves.set()
    _eventually(lambda: len(log) >= 3)
    time.sleep(0.05)  # room for the later add to go in wrongly, beside the delete
    assert log == ["add in", "add out", "delete in"]
    delete_leaves.set()
    later_add_leaves.set()
    for thread in (first, delete, later):
        thread.join(10)
    assert log[3:] == ["delete out", "later add in", "later add out"]
    assert len(turns) == 0


def test_a_waiter_that_is_interrupted_leaves_no_turn_behind() -> None:
    turns = Turns()
    holding, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.alone("x"):
            holding.set()
            leave.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)

    class Interrupted(BaseException):
        pass

    # The wait raises as a Ctrl-C in it would: the shared turn it asked for is given up.
    original = turns._changed.wait_for

    def interrupted_wait(*args: object, **kwargs: object) -> bool:
        raise Interrupted

    turns._changed.wait_for = interrupted_wait  # type: ignore[method-assign]
    try:
        with turns.shared("x"):
            raise AssertionError("the turn was given while another held it alone")
    except Interrupted:
        pass
    finally:
        turns._changed.wait_for = original  # type: ignore[method-assign]
    leave.set()
    holder.join(10)
    assert len(turns) == 0


def _nested(turns: Turns, outer: str, inner: str, key: str) -> str:
    """What a thread holding "x"'s turn (``outer``) gets asking for ``key``'s (``inner``), bounded by a join."""
    outcome: list[str] = []

    def run() -> None:
        with getattr(turns, outer)("x"):
            try:
                with getattr(turns, inner)(key):
                    outcome.append("held")
            except TurnHeld as error:
                outcome.append(f"refused: {error}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    return outcome[0] if outcome else "waits for itself"


@pytest.mark.parametrize(
    ("outer", "inner"), [("shared", "alone"), ("alone", "shared"), ("alone", "alone"), ("shared", "shared")]
)
def test_a_thread_asking_again_for_a_turn_it_holds_is_refused_not_left_waiting_for_itself(
    outer: str, inner: str
) -> None:
    turns = Turns()
    outcome = _nested(turns, outer, inner, "x")
    assert outcome.startswith("refused: a write to batch x from inside a write to it"), outcome
    assert len(turns) == 0
    assert _nested(turns, outer, inner, "y") == "held"  # another batch's turn is another turn
    with turns.alone("x"):  # and the refused turn was left as it was
        pass
