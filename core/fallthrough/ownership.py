"""A Store belongs to the process that connected it.

``fork()`` copies a process's sockets, SQLite handles, locks and thread
pools into the child, but not the threads behind them. A child that used a
PostgreSQL connection it inherited would send its statements down the
parent's socket, each process reading the other's answers; a lock another
thread held at the fork is never released in the child; a thread pool takes
work that no thread runs. So a :class:`~fallthrough.store.Store` (and an
:class:`~fallthrough.aio.AsyncStore`) refuses to serve any process but its
own, with :class:`~fallthrough.errors.WrongProcess`, rather than corrupt the
parent's calls and hang the child's. ``multiprocessing`` on Linux forks by
default before Python 3.14; gunicorn's ``--preload`` and Celery's prefork
pool fork too. Nor does a Store pickle: ``multiprocessing`` pickles what it
sends to a process it spawned, and a Store's connections cannot travel.
"""

from __future__ import annotations

import os
from typing import NoReturn

import attrs

from .errors import WrongProcess


@attrs.frozen
class Owner:
    """The process an object was made in; ``check`` refuses any other."""

    what: str
    pid: int = attrs.field(factory=os.getpid)

    def is_current(self) -> bool:
        """Whether the calling process is the owner (False in a forked child)."""
        return os.getpid() == self.pid

    def check(self) -> None:
        """Raise :class:`~fallthrough.errors.WrongProcess` unless the calling process is the owner."""
        current = os.getpid()
        if current != self.pid:
            raise WrongProcess(
                f"this {self.what} was opened in process {self.pid} and cannot serve process {current}, "
                "a fork of it: its connections, locks and threads are the parent's. Connect in each process "
                "after it starts (gunicorn's post_fork, Celery's worker_process_init, a multiprocessing "
                "Pool's initializer)"
            )

    def refuse_pickling(self) -> NoReturn:
        """What the owned object's ``__reduce__`` does: a TypeError that says what to do instead."""
        raise TypeError(
            f"a {self.what} cannot be pickled or sent to another process: its connections stay in the process "
            "that opened them. Connect in each process instead (a multiprocessing Pool's initializer)"
        )
