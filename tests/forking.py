"""Run a function in a forked child of the test process, and bring back what it returned or raised.

The child gets a copy of everything the test built before the fork (a Store,
its connections and pools) and none of the threads: what a gunicorn worker
or a ``multiprocessing`` process started with ``fork`` gets.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable

import attrs


@attrs.frozen
class ChildOutcome:
    """What the child's function did: ``raised`` (an exception's class name) and ``message``, or ``returned``."""

    returned: str | None = None
    raised: str | None = None
    message: str = ""


def run_in_fork(function: Callable[[], object], *, timeout: float = 30.0) -> ChildOutcome:
    """Call ``function`` in a forked child; AssertionError if the child hangs past ``timeout`` seconds.

    The child never returns into the test process's code: it leaves with
    ``os._exit`` whatever happens, so no pytest teardown, atexit hook or
    finaliser runs twice.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_end)
            try:
                outcome = {"returned": repr(function())}
            except BaseException as error:
                outcome = {"raised": type(error).__name__, "message": str(error)}
            os.write(write_end, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(left, 0.0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"the forked child did not finish within {timeout} s")
            piece = os.read(read_end, 65536)
            if not piece:
                break
            received += piece
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert received, "the forked child died without a word"
    return ChildOutcome(**json.loads(received))
