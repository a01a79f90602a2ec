"""A forked child that lets go of an inherited qdrant+local Store leaves the parent's directory lock held.

qdrant-client's local mode locks its directory with ``flock``, which parent
and child share after a fork; freeing the client unlocks it. The child keeps
what it inherited alive for good (``fallthrough.ownership``).
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import fallthrough
from tests.forking import run_in_fork

_OPEN_AGAIN = """
import sys, fallthrough
store = fallthrough.connect(f"qdrant+local:///{sys.argv[1]}")
try:
    store.get_batch(sys.argv[2])
    print("opened")
except fallthrough.FallthroughError:
    print("refused")
"""


def opened_by_another_process(directory: Path, batch_id: str) -> str:
    again = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _OPEN_AGAIN, str(directory), batch_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return again.stdout.strip()


def test_a_child_connecting_its_own_store_keeps_the_parents_directory_locked(tmp_path: Path) -> None:
    app = {"store": fallthrough.connect(f"qdrant+local:///{tmp_path}")}  # a --preload app's module-level Store
    try:
        batch_id = str(app["store"].create_batch(["a"]).id)
        assert opened_by_another_process(tmp_path, batch_id) == "refused"

        def post_fork() -> None:
            app["store"] = fallthrough.connect("sqlite://")  # the worker's own, as docs/workers.md says
            gc.collect()

        outcome = run_in_fork(post_fork)

        assert outcome.raised is None, outcome
        assert opened_by_another_process(tmp_path, batch_id) == "refused"  # the parent holds it still
        assert app["store"].get_batch(batch_id) is not None
    finally:
        app["store"].close()
