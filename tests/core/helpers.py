"""What the router's tests share: reaching a Store's fault gates, reading one backend's health, gated URLs."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import fallthrough
from fallthrough.testing.faults import FaultInjectingBackend


def gate(store: fallthrough.Store, name: str) -> FaultInjectingBackend:
    """The fault-injecting backend the Store registered as ``name``."""
    plugin = store.plugin_manager.get_plugin(name)
    assert isinstance(plugin, FaultInjectingBackend)
    return plugin


def health(store: fallthrough.Store, name: str) -> fallthrough.BackendHealth:
    return {entry.name: entry for entry in store.health()}[name]


def gated(url: str, scheme: str = "flaky") -> str:
    """``url`` behind a fault gate registered as ``scheme`` (the inner URL percent-encoded into the query)."""
    return f"{scheme}://?inner=" + quote(url, safe="")


def sqlite_file(tmp_path: Path, name: str, scheme: str = "flaky") -> str:
    """A SQLite file in ``tmp_path`` behind a fault gate."""
    return gated(f"sqlite:///{tmp_path}/{name}.db", scheme)


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds, polled every 10 ms."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@contextmanager
def sigint_while_held(backend: FaultInjectingBackend, hook: str) -> Iterator[None]:
    """Hold ``hook`` on ``backend``; once a call waits there, send SIGINT to the main thread, then let the call go.

    The block must run in the main thread (Python delivers signals there) and
    make the call that is to be interrupted.
    """
    assert threading.current_thread() is threading.main_thread(), "signals reach the main thread only"
    backend.hold(hook)

    def interrupt_then_release() -> None:
        try:
            assert backend.wait_held(1, timeout=30)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            # Released once the interrupt took the call out of the gate, however long the main thread took to run.
            eventually(lambda: backend.held == 0, timeout=10)
        finally:
            backend.release()

    interrupter = threading.Thread(target=interrupt_then_release)
    interrupter.start()
    try:
        yield
    finally:
        interrupter.join()


class PrintsAsSql(int):
    """A limit that formats and prints itself as SQL: a plugin that writes a limit into its SQL must write its value."""

    def __format__(self, spec: str) -> str:
        return "0 UNION ALL SELECT 1"

    def __str__(self) -> str:
        return "0 UNION ALL SELECT 1"
