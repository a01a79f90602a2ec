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

Refusing calls is not enough: a child that merely lets go of an inherited
Store (connecting its own, or leaving with ``sys.exit``) would run its
objects' finalisers, and some of them act on what the parent still uses.
SQLite in exclusive locking mode (the durable journal) checkpoints the
parent's WAL and deletes it; qdrant-client's local mode unlocks the
directory's ``flock``, which parent and child share. So after a fork every
Store of the parent is kept alive in the child for good (:func:`_keep_inherited`):
its memory is the child's copy, and the operating system closes its file
descriptors when the child ends, without running any close logic. This is
process-wide by nature: the objects made here are tracked in a module-level
weak set, and the hook is registered once, at import.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from typing import NoReturn

import attrs

from .errors import WrongProcess

_OWNED: weakref.WeakSet[object] = weakref.WeakSet()
"""The objects alive in this process that :meth:`Owner.of` made an owner for."""


def _keep_inherited() -> None:
    """In a forked child: never free what the parent's objects hold (see the module's text)."""
    keep = getattr(ctypes, "pythonapi", None)  # CPython's; elsewhere the finalisers run as before
    if keep is not None:
        for inherited in list(_OWNED):
            # A reference no one will give back: the object, and all it holds, outlive the child's exit.
            keep.Py_IncRef(ctypes.py_object(inherited))
    _OWNED.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_keep_inherited)


@attrs.frozen
class Owner:
    """The process an object was made in; ``check`` refuses any other."""

    what: str
    pid: int = attrs.field(factory=os.getpid)

    @classmethod
    def of(cls, owned: object, what: str) -> Owner:
        """The owner of ``owned``, which a forked child will keep alive for good rather than free."""
        _OWNED.add(owned)
        return cls(what)

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
