"""Turns by batch: the writes that make a batch and those that remove it never cross on the way to the stores.

A write reaches the stores one after another, and two writes made at once by
two threads may reach them in different orders. Documents carry versions and
record updates merge by a monotonic key, so for them the order does not
matter. A batch's existence has neither: a ``create_batch`` and a
``delete_batch`` of one id that reached the second store in the other order
left the batch there, deleted on the first, with nothing to say so; a repair
that read a batch's header before a delete and sent it after did the same.

So the writes that add to a batch (a create, an add, a repair of the batch)
share its turn, since they commute with each other (a streamed create keeps
two chunks in flight), and those that remove from it (``delete_batch``,
``fallthrough_delete_records``) take it alone, each for the whole of its
fan-out, hints included. A removal waiting for its turn goes before later
adds, so a ``delete_batch`` still cuts a long streamed create short, after
the chunks in flight.

This orders the writes of one Store, not of several processes: see
``docs/semantics.md``, "Failover guarantees".
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from threading import Condition, get_ident

from .errors import TurnHeld


class _Turn:
    __slots__ = ("alone", "holders", "users", "waiting_alone")

    def __init__(self) -> None:
        self.holders: set[int] = set()  # the threads holding the turn (one if alone), to refuse one asking again
        self.alone = False  # whether its holder holds it alone
        self.waiting_alone = 0  # threads waiting to hold it alone: later sharers wait behind them
        self.users = 0  # threads holding it or waiting for it; the turn is dropped at 0


class Turns:
    """A shared-or-alone turn per key, made on first use and dropped once no thread holds it or waits for it.

    Not re-entrant: a thread holding a key's turn that asks for it again gets
    :class:`TurnHeld` at once, rather than wait for itself.
    """

    def __init__(self) -> None:
        self._changed = Condition()
        self._turns: dict[Hashable, _Turn] = {}

    @contextmanager
    def shared(self, key: Hashable) -> Iterator[None]:
        """Hold ``key``'s turn with other sharers for the block; waits while a thread holds it, or waits to, alone."""
        with self._changed:
            turn = self._join(key)
            try:
                self._changed.wait_for(lambda: not turn.alone and not turn.waiting_alone)
            except BaseException:
                self._leave(key, turn)
                raise
            turn.holders.add(get_ident())
        try:
            yield
        finally:
            with self._changed:
                turn.holders.discard(get_ident())
                self._leave(key, turn)

    @contextmanager
    def alone(self, key: Hashable) -> Iterator[None]:
        """Hold ``key``'s turn alone for the block; waits for every holder, and goes before sharers that come later."""
        with self._changed:
            turn = self._join(key)
            turn.waiting_alone += 1
            try:
                self._changed.wait_for(lambda: not turn.holders)
            except BaseException:
                turn.waiting_alone -= 1
                self._leave(key, turn)
                raise
            turn.waiting_alone -= 1
            turn.alone = True
            turn.holders.add(get_ident())
        try:
            yield
        finally:
            with self._changed:
                turn.alone = False
                turn.holders.discard(get_ident())
                self._leave(key, turn)

    def __len__(self) -> int:
        """How many keys have a turn held or waited for now."""
        with self._changed:
            return len(self._turns)

    def _join(self, key: Hashable) -> _Turn:
        turn = self._turns.get(key)
        if turn is not None and get_ident() in turn.holders:
            raise TurnHeld(
                f"a write to batch {key} from inside a write to it, on the same thread (a fallthrough_missed_write "
                "observer writing to the batch?): it would wait for itself"
            )
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        return turn

    def _leave(self, key: Hashable, turn: _Turn) -> None:
        turn.users -= 1
        if turn.users:
            self._changed.notify_all()  # another thread holds the turn or waits for it
        else:
            del self._turns[key]  # nobody waits for it: no one to wake


__all__ = ["Turns"]
