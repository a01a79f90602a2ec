"""How the commands stop, in a subprocess as a user runs them: each way ends in its documented exit code.

A signal during ``create`` is exit 130 and names the batch the written keys
are in, so ``--batch-id`` completes it; SIGTERM is Ctrl-C for every command;
a handler calling ``sys.exit`` does not make a ``run`` look successful; a
second Ctrl-C while the store cannot be reached is still an interrupt; the
runner's warnings are one line each, whatever the terminal's width.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

import fallthrough
from fallthrough.cli.exits import ExitCode
from tests.cli.helpers import json_of, one_line_error, run_cli, started, wait_while_running

HANDLERS = """
import os
import sys
import time

def leave(record):
    sys.exit(0)

def leave_from_a_task_group(record):
    raise BaseExceptionGroup("unhandled errors in a TaskGroup", [SystemExit(3)])

def slow(record):
    time.sleep(float(os.environ.get("SLOW", "1")))
    return record.key
"""


def store_of(directory: Path, options: str = "") -> fallthrough.Store:
    return fallthrough.connect(f"sqlite:///{directory / 'fallthrough.db'}{options}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    return tmp_path


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_create_names_the_batch_and_its_batch_id_completes_it(workdir: Path, stop_signal: int) -> None:
    size = 1_000_000
    (workdir / "keys.txt").write_text("".join(f"k{index:07d}\n" for index in range(size)))
    creating = started(workdir, "create", "keys.txt")
    try:
        with store_of(workdir) as store:
            wait_while_running(lambda: any(item.batch.total >= 5_000 for item in store.batches()), creating, 120)
        creating.send_signal(stop_signal)
        stdout, stderr = creating.communicate(timeout=60)
    finally:
        creating.kill()
    assert creating.returncode == ExitCode.INTERRUPTED, stderr
    with store_of(workdir) as store:
        (partial,) = [item.batch for item in store.batches()]
    assert stdout == ""
    assert stderr.splitlines() == [
        f"fallthrough: error: interrupted: batch {partial.id} holds the keys written so far; "
        f"run the same command with --batch-id {partial.id} to add the rest"
    ]
    # A chunk whose call the signal cut is taken back, even once its write was seen: one chunk (1000) less at most.
    assert 5_000 - 1_000 <= partial.total < size
    completed = json_of(run_cli("create", "keys.txt", "--batch-id", str(partial.id), "--json", cwd=workdir))
    assert (completed["total"], completed["added"]) == (size, size - partial.total)


def test_a_signal_during_the_first_chunk_of_a_create_into_a_batch_names_that_batch(workdir: Path) -> None:
    """With --batch-id, a create cut before its first chunk returned has a batch to name: it printed "interrupted"."""
    size = 100_000
    with store_of(workdir) as store:
        batch = store.create_batch(["old"])
    # Long keys, for a longer chunk: the signal lands well clear of both its ends.
    (workdir / "keys.txt").write_text("".join(f"k{index:07d}{'x' * 300}\n" for index in range(size)))
    database = workdir / "fallthrough.db"
    # One chunk: from the store's opening to the end of the command, the whole time is the first chunk's.
    creating = started(workdir, "create", "keys.txt", "--batch-id", str(batch.id), "--chunk-size", str(size))
    try:
        opened = Path(f"/proc/{creating.pid}/fd")
        wait_while_running(lambda: any(link.resolve() == database for link in opened.iterdir()), creating)
        time.sleep(0.5)  # past the opening (tens of ms), mid-chunk (about 1.1 s here)
        creating.send_signal(signal.SIGINT)
        stdout, stderr = creating.communicate(timeout=60)
    finally:
        creating.kill()
    assert creating.returncode == ExitCode.INTERRUPTED, stderr
    assert stdout == ""
    assert stderr.splitlines() == [
        f"fallthrough: error: interrupted: batch {batch.id} holds the keys written so far; "
        f"run the same command with --batch-id {batch.id} to add the rest"
    ]
    completed = json_of(run_cli("create", "keys.txt", "--batch-id", str(batch.id), "--json", cwd=workdir))
    assert completed["total"] == size + 1


def test_sigterm_stops_a_watch_with_exit_130(workdir: Path) -> None:
    with store_of(workdir) as store:
        batch = store.create_batch(["a"])
    watching = started(workdir, "status", str(batch.id), "--watch", "--interval", "0.1")
    try:
        # Its first line: it is watching, with its handlers set (a watch never ends on its own while "a" is pending).
        first = watching.stdout.readline() if watching.stdout else ""
        assert first.startswith("0/1 done"), first
        assert watching.poll() is None
        watching.send_signal(signal.SIGTERM)
        _, stderr = watching.communicate(timeout=30)
    finally:
        watching.kill()
    assert watching.returncode == ExitCode.INTERRUPTED, stderr
    assert stderr.splitlines()[-1] == "fallthrough: error: interrupted"


def test_a_handler_calling_sys_exit_is_a_failure_and_leaves_the_records_pending(workdir: Path) -> None:
    with store_of(workdir) as store:
        batch = store.create_batch(["a", "b"])
    line = one_line_error(run_cli("run", str(batch.id), "handlers:leave", "--json", cwd=workdir), ExitCode.INTERNAL)
    assert "handlers:leave raised SystemExit(0)" in line
    with store_of(workdir) as store:
        assert store.progress(batch.id).pending == 2


def test_an_exit_from_a_handlers_task_group_is_the_same_failure_not_a_traceback(workdir: Path) -> None:
    with store_of(workdir) as store:
        batch = store.create_batch(["a", "b"])
    ran = run_cli("run", str(batch.id), "handlers:leave_from_a_task_group", "--json", cwd=workdir)
    line = one_line_error(ran, ExitCode.INTERNAL)
    assert "handlers:leave_from_a_task_group raised SystemExit(3)" in line
    assert "Traceback" not in ran.stderr
    with store_of(workdir) as store:
        assert store.progress(batch.id).pending == 2


def test_a_second_ctrl_c_while_the_store_is_locked_is_still_an_interrupt(workdir: Path) -> None:
    with store_of(workdir) as store:
        batch = store.create_batch([f"k{index:02d}" for index in range(50)])
    url = f"sqlite:///{workdir / 'fallthrough.db'}?timeout=1"
    running = started(workdir, "run", str(batch.id), "handlers:slow", "--workers", "2", "--url", url, SLOW="2")
    lock = sqlite3.connect(workdir / "fallthrough.db", timeout=10, isolation_level=None)
    try:
        with store_of(workdir) as store:
            wait_while_running(lambda: store.progress(batch.id).processing >= 2, running)
        lock.execute("BEGIN EXCLUSIVE")  # the runner can neither write nor release now
        running.send_signal(signal.SIGINT)
        time.sleep(1.5)
        running.send_signal(signal.SIGINT)
        _, stderr = running.communicate(timeout=60)
    finally:
        running.kill()
        lock.close()
    assert running.returncode == ExitCode.INTERRUPTED, stderr


def test_the_runner_warnings_are_one_line_each(workdir: Path) -> None:
    with store_of(workdir) as store:
        batch = store.create_batch([f"k{index:02d}" for index in range(20)])
    url = f"sqlite:///{workdir / 'fallthrough.db'}?timeout=0.2"
    running = started(workdir, "run", str(batch.id), "handlers:slow", "--workers", "2", "--lease", "3", "--url", url)
    lock = sqlite3.connect(workdir / "fallthrough.db", timeout=10, isolation_level=None)
    try:
        # Locked once the run is under way: a lock that lands while it starts (a slow machine) fails
        # its first read, which is an error, not a warning.
        with store_of(workdir) as store:
            wait_while_running(lambda: store.progress(batch.id).processing >= 1, running)
        lock.execute("BEGIN EXCLUSIVE")
        time.sleep(1.5)
        lock.execute("ROLLBACK")
        stdout, stderr = running.communicate(timeout=120)
    finally:
        running.kill()
        lock.close()
    assert running.returncode == ExitCode.OK, stderr
    lines = stderr.splitlines()
    assert any("store unavailable" in line for line in lines), stderr
    assert all(line.startswith("fallthrough: warning: ") for line in lines), stderr
    assert stdout.startswith(f"batch {batch.id}: 20/20 done")
