"""Writes kept in flight: a streamed create writes chunk N while it pulls and checks chunk N+1.

A streamed create (:meth:`fallthrough.Store.create_batch` from an iterable)
writes one chunk at a time. Done in turn, the database idles while the core
pulls and checks the next chunk, and the core idles while the database
writes and commits; on PostgreSQL that made a create of 100,000 records
take 1.4–1.7 times a raw COPY (issue 12). :class:`WritesInFlight` runs the
chunk writes on threads of the call's own, up to a limit at once, while the
calling thread goes on pulling the caller's iterable (which stays on the
calling thread: a generator is never advanced from two threads).

It is worth it only where a write waits on a socket with the GIL released.
A backend whose calls run mostly Python under the GIL (it declares
:attr:`~fallthrough.Capabilities.parallel_calls`) gains nothing and loses
the threads' hand-offs of the GIL, so there the limit is 0: each write runs
in the calling thread when it is submitted, as before
(:meth:`fallthrough.Store._stream_writes_in_flight` decides).
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

STREAM_WRITES_IN_FLIGHT = 2
"""Chunk writes a streamed create keeps going at once where its backends gain by it.

Two: one commits while the next is sent. Measured on PostgreSQL (issue 12):
a third added nothing on two cores. Memory holds these chunks and the one
being pulled: at most ``STREAM_WRITES_IN_FLIGHT + 1`` chunks.
"""


class WritesInFlight:
    """Up to ``limit`` writes at once on threads of this object's own, their answers summed in submission order.

    ``limit`` 0 runs each write in the calling thread when it is submitted.
    A write's exception reaches the caller at the next :meth:`submit` or
    :meth:`wait`, in submission order: the first failed write is the one
    raised. :meth:`close` must follow, whatever happened: it waits for every
    write still running, so none outlives the call that started it.

    One streamed call owns one; it is not shared between threads. Each write
    runs in a copy of the submitting thread's context (its contextvars).
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        self._limit = limit
        self._running: deque[Future[int]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._total = 0

    def submit(self, write: Callable[[], int]) -> None:
        """Start ``write`` once fewer than ``limit`` writes are running; raise what an earlier write raised."""
        if self._limit == 0:
            self._total += write()
            return
        self._wait_until(self._limit - 1)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._limit, thread_name_prefix="fallthrough-stream")
        self._running.append(self._pool.submit(contextvars.copy_context().run, write))

    def wait(self) -> int:
        """Wait for every write submitted; the sum of their answers. Raises the first that failed."""
        self._wait_until(0)
        return self._total

    def close(self) -> None:
        """Wait for every write still running, whatever it answers, and end the threads. Never raises."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._running.clear()

    def _wait_until(self, running: int) -> None:
        while len(self._running) > running:
            self._total += self._running.popleft().result()
