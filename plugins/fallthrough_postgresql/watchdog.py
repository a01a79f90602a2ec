"""A client-side bound on calls to a server that accepts connections and then stops answering.

Why this exists: a PostgreSQL server that is stopped (SIGSTOP), or hung, keeps
its TCP connections open, and its kernel goes on acknowledging every byte sent
to it. So no server-side bound (``statement_timeout``) can fire, and neither can
libpq's ``tcp_user_timeout`` (nothing stays unacknowledged) or its keepalives
(the kernel answers them): psycopg waits for as long as the stop lasts. It was
measured here: a call blocked 12.0 s through a 12 s stop with
``tcp_user_timeout=2000`` and keepalives every second. Only the client can end
that wait, and a wait alone cannot tell a hung server from a long statement
(an index build, a large COPY). So the watchdog asks the server.

How: every call runs under a :class:`Watch`. Once a call has run for half the
timeout, the watchdog thread probes the server: it opens a new connection to
the address the call's connection uses and sends an ``SSLRequest``, which
PostgreSQL answers with one byte before any login, from a new server process.
A live server answers within milliseconds, and the call is left alone for
another half timeout (then probed again; ``statement_timeout`` still bounds a
long statement on the server). A server that does not answer within the other
half of the timeout is hung: the watchdog shuts down the socket of every
connection its due calls hold, which wakes psycopg at once with a lost
connection. The call then raises ``BackendUnavailable``, and the pool discards
that connection (a broken connection is invalidated, never checked in again).
So a call to a hung server ends about ``timeout`` after it started.

One probe answers for every call due at that moment, or while it runs: four
threads stuck on the same stopped server cost one probe, not four. A call
that waited for a pooled connection while its watch fired connects no more
(the connection module's ``do_connect`` listener): it ends once a slot frees.
One past its first check, or whose server a probe found hung less than a
timeout ago, waits for a verdict before it connects (:meth:`Watchdog.may_connect`),
since a connect is not cut.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""PostgreSQL's SSLRequest message: the server answers it with one byte (``S`` or ``N``) before any login."""

_IDLE_EXIT = 30.0
"""Seconds the watchdog thread waits with nothing to watch before it exits (the next call starts another)."""


@attrs.frozen
class Address:
    """Where a connection's server listens: a TCP address or a Unix socket path."""

    family: int
    target: str | tuple[str, int]


def server_address(conn: psycopg.Connection[Any]) -> Address | None:
    """The address ``conn`` is connected to, to probe that same server; None if libpq does not say."""
    try:
        info = conn.info
        host, port = info.host, int(info.port)
        hostaddr = info.hostaddr if not host.startswith(("/", "@")) else ""
    except (psycopg.Error, ValueError):
        return None
    if host.startswith("/"):
        return Address(socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
    if host.startswith("@"):
        return Address(socket.AF_UNIX, f"\0{host[1:]}/.s.PGSQL.{port}")
    address = hostaddr or host
    return Address(socket.AF_INET6 if ":" in address else socket.AF_INET, (address, port))


def probe(address: Address, budget: float) -> bool:
    """True if a server at ``address`` answers an SSLRequest within ``budget`` seconds.

    Any one byte back means a live server process answered; a refusal, a
    reset or silence means the server cannot serve.
    """
    deadline = time.monotonic() + budget
    try:
        with socket.socket(address.family, socket.SOCK_STREAM) as sock:
            sock.settimeout(budget)
            sock.connect(address.target)
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(_SSL_REQUEST)
            return len(sock.recv(1)) == 1
    except OSError:
        return False


def _shut_down(descriptor: int) -> None:
    """Shut a socket down in both directions: a thread blocked on it wakes at once with end-of-file."""
    try:
        sock = socket.socket(fileno=descriptor)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor stays ours, closed when the watch ends


class Watch:
    """One call under the watchdog: when to look at it next, and the sockets it holds.

    The sockets are duplicates of the connections' descriptors, so shutting
    one down can never hit an unrelated socket that reused a closed
    descriptor's number.
    """

    __slots__ = ("address", "check_at", "descriptors", "done", "fired", "previous", "timeout")

    def __init__(self, timeout: float, check_at: float) -> None:
        self.timeout = timeout
        self.previous: Watch | None = None
        """The watch this one's thread was under when it started (a call made inside another), restored at its end."""
        self.check_at = check_at
        self.descriptors: list[int] = []
        self.address: Address | None = None
        self.fired = False
        self.done = False


class Watchdog:
    """The watch over one database's calls: see the module's docstring.

    :param timeout: seconds after which a call to a server that does not
        answer is ended.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._half = timeout / 2
        lock = threading.RLock()
        self._condition = threading.Condition(lock)
        """Wakes the watchdog thread (a sooner watch, a stop): one waiter, so never a caller's."""
        self._judged = threading.Condition(lock)
        """Wakes the callers waiting in :meth:`may_connect` once a probe has judged their watches."""
        self._watches: deque[Watch] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._local = threading.local()
        self._address: Address | None = None
        self._wake_at = 0.0
        """When the waiting thread wakes by itself; a watch due earlier must wake it (see :meth:`_wait_for_due`)."""
        self._found_hung_at: float | None = None
        """When a probe last found a connected call's server hung; None once one found it alive (see may_connect)."""

    @contextmanager
    def watch(self) -> Iterator[Watch]:
        """Run the block as one watched call; connections checked out in it are attached to it."""
        watch = self.enter()
        try:
            yield watch
        finally:
            self.leave(watch)

    def enter(self) -> Watch:
        """Start watching a call of the current thread; every ``enter`` must be matched by :meth:`leave`.

        What :meth:`watch` does, for a caller that keeps its own ``try``
        (a search: a generator context manager costs it a few microseconds).
        """
        watch = Watch(self.timeout, time.monotonic() + self._half)
        with self._condition:
            self._watches.append(watch)
            self._stopping = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fallthrough-postgresql-watchdog", daemon=True)
                self._thread.start()
            elif watch.check_at < self._wake_at:
                self._condition.notify()
        watch.previous = getattr(self._local, "watch", None)
        self._local.watch = watch
        return watch

    def leave(self, watch: Watch) -> None:
        """Stop watching a call :meth:`enter` started, and close the duplicates of its sockets."""
        # The watch leaves the queue first: should an interrupt (Ctrl-C) cut this short, what is
        # left is a descriptor to close, not a watch the thread probes and may fire for ever.
        # Python code cannot close every window: an interrupt before the lock is taken still
        # leaves the watch queued, and one just after it is released leaves the thread's
        # current watch pointing at this finished one (a few bytecodes each).
        with self._condition:
            watch.done = True
            if self._watches and self._watches[0] is watch:
                self._watches.popleft()
            elif not watch.fired:
                self._watches.remove(watch)
            descriptors, watch.descriptors = watch.descriptors, []
        self._local.watch, watch.previous = watch.previous, None
        for descriptor in descriptors:
            os.close(descriptor)

    def attach(self, conn: psycopg.Connection[Any], address: Address | None) -> None:
        """Attach a connection checked out by the current thread's call; cut it at once if that call timed out."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return
        descriptor = os.dup(conn.pgconn.socket)
        with self._condition:
            watch.descriptors.append(descriptor)
            if watch.address is None:
                watch.address = address
            if address is not None:
                self._address = address
            if watch.fired:
                _shut_down(descriptor)

    def may_connect(self) -> bool:
        """False if the current thread's call must not open a connection: the watchdog found its server hung.

        Nothing cuts a connect (it is not attached to the watch), so a call
        that waited for a pooled connection does not connect before the
        watchdog has judged its server where there is doubt: a call past
        its first check (half the timeout) waits for that check's verdict,
        and a call whose server was found hung less than a timeout ago is
        checked at once and waits for that verdict, which a live server
        gives in milliseconds. Otherwise a slot freed just before the probe
        gave up (another caller's connect that timed out on the same stopped
        server), or by the connections the probe's verdict cut, would start
        a connect to the stopped server and end its call a whole
        ``connect_timeout`` past its bound.

        Why the verdict stands for one timeout only: the probe of a call
        with no connection yet goes to the last address a call connected
        to, and the server may have moved (a DNS failover, a multi-host
        URL). Were every such call refused on that probe's word, none would
        ever connect to where the server is now. So only a probe of a
        connected call's own address renews the verdict; past it, a call
        connects, bounded by ``connect_timeout``.
        """
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is None:
            return True
        with self._condition:
            now = time.monotonic()
            recently_hung = self._found_hung_at is not None and now - self._found_hung_at < self.timeout
            if recently_hung and not watch.fired and watch.check_at > now:
                self._watches.remove(watch)
                watch.check_at = now
                self._watches.appendleft(watch)  # first: the thread times its wait by the first watch
                self._condition.notify()
            # A verdict comes at most half a timeout after its probe starts; the
            # whole timeout is only a bound should the watchdog thread be late.
            deadline = watch.check_at + self.timeout
            while not watch.fired and watch.check_at <= (now := time.monotonic()) < deadline:
                if self._thread is None:
                    break  # the thread died (see _run) or exited: no verdict is coming, and a connect is bounded
                self._judged.wait(deadline - now)
            return not watch.fired

    def stop(self) -> None:
        """Let the thread exit once no call is watched (a later call starts it again)."""
        with self._condition:
            self._stopping = True
            self._condition.notify()

    def _run(self) -> None:
        try:
            self._judge_until_idle()
        finally:
            # Should judging ever raise (a bug), the thread dies with its
            # traceback (threading.excepthook), but is not left registered:
            # the next call starts another instead of running unwatched, and
            # callers waiting in may_connect for a verdict stop waiting.
            with self._condition:
                if self._thread is threading.current_thread():
                    self._thread = None
                self._judged.notify_all()

    def _judge_until_idle(self) -> None:
        while True:
            with self._condition:
                due = self._wait_for_due()
                if due is None:
                    self._thread = None
                    return
                # A call still waiting for a connection has no address yet: the
                # server's last known one stands in. With none known at all
                # (never connected), there is nothing to judge: the pool's and
                # libpq's connect timeouts bound that wait.
                own_address = next((watch.address for watch in due if watch.address is not None), None)
                address = own_address or self._address
            alive = address is None or probe(address, self._half)
            with self._condition:
                now = time.monotonic()
                if alive:
                    self._found_hung_at = None
                elif own_address is not None:
                    self._found_hung_at = now
                # A watch that came due while the probe ran takes its verdict: the server answered
                # (or not) over the probe's time, and a probe of its own would hold it half a
                # timeout more, past its bound.
                due += [watch for watch in self._watches if watch.check_at <= now and watch not in due]
                for watch in due:
                    if watch.done:
                        continue
                    self._watches.remove(watch)
                    if alive:
                        watch.check_at = now + self._half
                        self._watches.append(watch)
                    else:
                        watch.fired = True
                        for descriptor in watch.descriptors:
                            _shut_down(descriptor)
                self._judged.notify_all()

    def _wait_for_due(self) -> list[Watch] | None:
        """The watches whose time to be checked has come, waiting for one; None when the thread should exit."""
        idle_since = time.monotonic()
        while True:
            now = time.monotonic()
            if not self._watches:
                if self._stopping or now - idle_since >= _IDLE_EXIT:
                    return None
                # Idle, it wakes every half timeout: a new watch is due no
                # sooner than that, so starting one needs no notify, and a
                # run of short calls does not wake this thread once per call
                # (a thread switch per call, measurable on a kNN search).
                delay = min(self._half, _IDLE_EXIT - (now - idle_since))
            else:
                idle_since = now
                delay = self._watches[0].check_at - now
                if delay <= 0:
                    return [watch for watch in self._watches if watch.check_at <= now]
            self._wake_at = now + delay
            self._condition.wait(delay)
            self._wake_at = 0.0


__all__ = ["Address", "Watch", "Watchdog", "probe", "server_address"]
