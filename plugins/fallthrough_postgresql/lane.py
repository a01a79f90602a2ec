"""The search lane: a few connections kept in autocommit for searches, beside SQLAlchemy's pool.

Why it exists: a search is one read statement, and what it paid around that
statement was mostly the pool's: the checkout and check-in (SQLAlchemy's
queue, its events, this plugin's listeners), and turning autocommit on and
off again, since the pool lends every connection out of autocommit for the
writes' transactions. In a loop of kNN queries over 10,000 × 384 vectors
that came to about 100 µs of a 0.6 ms query (``docs/benchmarks.md``), several
times what the same steps cost alone. A lane connection stays in autocommit
with its cursor, and is taken and given back under one lock.

The lane holds at most ``size`` connections, lent or idle, on top of the
pool's (``search_connections``, see :data:`.connection.OPTION_DEFAULTS`);
a search that finds none idle and no room for another goes through the
pool, as every search does with a size of 0. Each connection is made by
the pool (so it is connected, configured and watched as every pooled one)
and then detached from it. This module only keeps the connections: what a
search does with one, and how its death is found and retried, is
:meth:`.connection.Database.querying`'s.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from .watchdog import Address


class LaneConnection:
    """A lane's connection, in autocommit, with the cursor its searches reuse and its server's address."""

    __slots__ = ("address", "connection", "cursor")

    def __init__(self, connection: psycopg.Connection[Any], address: Address | None) -> None:
        self.connection = connection
        self.address = address
        self.cursor = connection.cursor()


class SearchLane:
    """Idle lane connections, the last one given back lent first, and the count of those lent.

    Thread-safe. After :meth:`close`, nothing is lent and every connection
    given back is closed.

    :param size: the most connections the lane holds, lent or idle.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._idle: list[LaneConnection] = []
        self._count = 0
        self._closed = False

    def take(self) -> LaneConnection | None:
        """The idle connection given back last, now lent; None if none is idle."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def reserve(self) -> bool:
        """Count one more connection if there is room for it; the caller then makes it, or calls :meth:`forget`."""
        with self._lock:
            if self._closed or self._count >= self.size:
                return False
            self._count += 1
            return True

    def give_back(self, lent: LaneConnection) -> None:
        """Keep a lent connection, idle, for the next search (closed instead if the lane is)."""
        with self._lock:
            if not self._closed:
                self._idle.append(lent)
                return
            self._count -= 1
        lent.connection.close()

    def discard(self, lent: LaneConnection) -> None:
        """Close a lent connection that is dead or in an unknown state; its place is free again."""
        self.forget()
        lent.connection.close()

    def forget(self) -> None:
        """Free the place of a connection that :meth:`reserve` counted and that was never made (or is gone)."""
        with self._lock:
            self._count -= 1

    def close(self) -> None:
        """Close the idle connections; those lent are closed as they are given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for kept in idle:
            kept.connection.close()


__all__ = ["LaneConnection", "SearchLane"]
