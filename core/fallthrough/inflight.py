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
(:attr:`fallthrough.Store.chunk_writes_in_flight` says which).
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

Tag = TypeVar("Tag")

STREAM_WRITES_IN_FLIGHT = 2
"""Chunk writes a streamed create keeps going at once where its backends gain by it.

Two: one commits while the next is sent. Measured on PostgreSQL (issue 12):
a third added nothing on two cores. Memory holds these chunks and the one
being pulled: at most ``STREAM_WRITES_IN_FLIGHT + 1`` chunks.
"""

SHORT_FIRST_WRITE = 1_000
"""Keys in the first write of a streamed call whose first chunk is full (more may follow).

That write runs alone, before any other can start: 1,000 keys take a few
milliseconds where a whole chunk took 60-75 on PostgreSQL, a tenth of a
100,000-key create (issue 12). A call of fewer keys than a chunk is still
one write.
"""


class WritesInFlight(Generic[Tag]):
    """Up to ``limit`` writes at once on threads of this object's own, their answers summed in submission order.

    ``limit`` 0 runs each write in the calling thread when it is submitted.
    A write's exception reaches the caller at the next :meth:`submit` or
    :meth:`wait`, in submission order: the first failed write is the one
    raised, and :attr:`failed` holds the tag it was submitted with.
    :meth:`close` must follow, whatever happened: it waits for every write
    still running, so none outlives the call that started it, and returns
    a failure not raised to the caller yet.

    One streamed call owns one; it is not shared between threads. Each write
    runs in a copy of the submitting thread's context (its contextvars).
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        self._limit = limit
        self._running: deque[tuple[Future[int], Tag]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._total = 0
        self.failed: Tag | None = None
        """The tag of the write whose exception was raised, if one was."""

    def submit(self, write: Callable[[], int], tag: Tag) -> None:
        """Start ``write`` once fewer than ``limit`` writes are running; raise what an earlier write raised.

        After interpreter shutdown has begun no thread can be started: the
        write then runs in the calling thread, as with ``limit`` 0.
        """
        if self._limit:
            self._collect_finished()
            self._wait_until(self._limit - 1)
            try:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._limit, thread_name_prefix="fallthrough-stream")
                future = self._pool.submit(contextvars.copy_context().run, write)
            except RuntimeError as refused:
                # Only "cannot schedule new futures after interpreter shutdown" is raised before the
                # write is queued; any other (a thread that would not start) comes after, and a worker
                # may still run the queued write: running it here too would write it twice.
                if "interpreter shutdown" not in str(refused):
                    raise
            else:
                self._running.append((future, tag))
                # Offer the GIL to the write's thread at once: its server waits for the rows, where the next
                # chunk's pull can wait. Otherwise the thread may wait out the switch interval (5 ms) while
                # this one pulls and checks keys in Python (issue 12: a 100,000-key create on PostgreSQL
                # 6-7 % faster by the median of ten rounds).
                time.sleep(0)
                return
        self._wait_until(0)  # in order: an inline write comes after those already running
        self._answer(write, tag)

    def wait(self) -> int:
        """Wait for every write submitted; the sum of their answers. Raises the first that failed."""
        self._wait_until(0)
        return self._total

    def close(self) -> Exception | None:
        """Wait for every write still running, and end the threads; the first of them to fail, in submission order.

        The write returned becomes :attr:`failed`. A write whose exception
        :meth:`submit` or :meth:`wait` raised is not reported again, nor any
        submitted after it. An interrupt
        (``KeyboardInterrupt``) while waiting does not cut the wait short: it
        is raised once every write has ended.
        """
        interrupted: BaseException | None = None
        while self._pool is not None:
            try:
                self._pool.shutdown(wait=True)
            except BaseException as interrupt:  # a second Ctrl-C: the writes still run, so wait on
                interrupted = interrupt
            else:
                self._pool = None
        unreported: Exception | None = None
        if self.failed is None:
            for future, tag in self._running:
                failure = future.exception()
                if isinstance(failure, Exception):  # an exit or interrupt in a worker is not a write's failure
                    unreported, self.failed = failure, tag
                    break
        self._running.clear()
        if interrupted is not None:
            raise interrupted
        return unreported

    def _collect_finished(self) -> None:
        while self._running and self._running[0][0].done():
            self._wait_until(len(self._running) - 1)

    def _wait_until(self, running: int) -> None:
        while len(self._running) > running:
            future, tag = self._running.popleft()
            self._answer(future.result, tag)

    def _answer(self, write: Callable[[], int], tag: Tag) -> None:
        try:
            self._total += write()
        except BaseException:
            self.failed = tag
            raise
