"""A coroutine that watches an event loop for stalls, for tests and benchmarks of the asyncio API.

:class:`LoopWatchdog` sleeps a short interval over and over and records how
late each wake-up was: a wake-up late by 30 ms means something held the loop
for about that long. It also counts the wake-ups that happened while
calls it tracks (:meth:`LoopWatchdog.track`) were in flight: a call that
blocked the loop would start and end between two wake-ups, and never be
seen in flight. Tests assert that count, which does not depend on the
machine's speed; benchmarks report the stalls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class LoopWatchdog:
    """Wakes every ``interval`` seconds until stopped; records the largest stall and the wake-ups during calls.

    :ivar ticks: wake-ups so far.
    :ivar ticks_in_flight: wake-ups while at least one tracked call was in flight.
    :ivar largest_stall: the latest a wake-up came, in seconds past when it was due.
    :ivar in_flight: tracked calls in flight now.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.ticks = 0
        self.ticks_in_flight = 0
        self.largest_stall = 0.0
        self.in_flight = 0
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        """Watch until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.largest_stall = max(self.largest_stall, loop.time() - due)
            self.ticks += 1
            if self.in_flight:
                self.ticks_in_flight += 1

    def stop(self) -> None:
        self._stopped.set()

    async def track(self, call: Awaitable[T]) -> T:
        """Await ``call``, counting it as in flight meanwhile."""
        self.in_flight += 1
        try:
            return await call
        finally:
            self.in_flight -= 1


__all__ = ["LoopWatchdog"]
