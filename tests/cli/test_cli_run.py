"""``fallthrough run``, ``batches`` and ``status --watch``, each in a subprocess (and a pseudo-terminal)."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import pexpect
import pytest

import fallthrough
from fallthrough.cli.exits import ExitCode
from tests.cli.helpers import cli_environment, command, json_of, one_line_error, run_cli, started, wait_while_running

HANDLERS = """
import logging
import time

def tag(record):
    if record.key.startswith("bad"):
        raise ValueError(f"cannot handle {record.key}")
    return {"key": record.key, "attempt": record.attempt}

def slow(record):
    time.sleep(0.3)
    return record.key

def hang(record):
    time.sleep(120)
    return record.key

def warns(record):
    # As the runner warns of a store down, naming what a store or a handler wrote (here an escape sequence).
    logging.getLogger("fallthrough.runner").warning("runner w: %r is \x1b]0;retitled\x07 slow", record.key)
    return record.key

def warns_with_traceback(record):
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("fallthrough.runner").warning("runner w: could not do it", exc_info=True)
    return record.key

not_a_function = 42
"""


def store_of(directory: Path) -> fallthrough.Store:
    return fallthrough.connect(f"sqlite:///{directory / 'fallthrough.db'}")


def make_batch(directory: Path, keys: list[str]) -> str:
    with store_of(directory) as store:
        return str(store.create_batch(keys).id)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "handlers.py").write_text(HANDLERS)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n\ndef go(record):\n    return 1\n")
    return tmp_path


def test_run_records_results_and_errors_and_a_rerun_after_retry_resumes(workdir: Path) -> None:
    batch_id = make_batch(workdir, ["a", "bad-1", "b", "c"])
    ran = json_of(
        run_cli("run", batch_id, "handlers:tag", "--workers", "2", "--max-attempts", "1", "--json", cwd=workdir)
    )
    assert ran["batch"] == batch_id and ran["interrupted"] is False
    assert (ran["progress"]["completed"], ran["progress"]["failed"], ran["progress"]["done"]) == (3, 1, 4)
    with store_of(workdir) as store:
        assert store.get_record(batch_id, "b").result == {"key": "b", "attempt": 0}  # type: ignore[union-attr]
        assert store.get_record(batch_id, "bad-1").error == "ValueError: cannot handle bad-1"  # type: ignore[union-attr]
    shown = run_cli("status", batch_id, cwd=workdir)
    assert "ValueError: cannot handle bad-1" in shown.stdout
    assert json_of(run_cli("retry", batch_id, "--json", cwd=workdir))["retried"] == 1
    again = run_cli("run", batch_id, "handlers:tag", "--max-attempts", "1", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"batch {batch_id}: 4/4 done (100%): 0 pending, 0 processing, 3 completed, 1 failed"
    with store_of(workdir) as store:
        assert store.get_record(batch_id, "bad-1").attempt == 1  # type: ignore[union-attr]


def test_with_the_debug_log_a_runner_warning_with_a_traceback_is_logged_again_whole(workdir: Path) -> None:
    batch_id = make_batch(workdir, ["a"])
    ran = run_cli("run", batch_id, "handlers:warns_with_traceback", cwd=workdir, FALLTHROUGH_DEBUG="1")
    assert ran.returncode == ExitCode.OK, ran.stderr
    assert "fallthrough: warning: runner w: could not do it" in ran.stderr.splitlines()
    assert "WARNING fallthrough.runner: runner w: could not do it" in ran.stderr
    assert "ZeroDivisionError: division by zero" in ran.stderr


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "FALLTHROUGH_DEBUG"])
def test_a_runner_warning_is_shown_once_and_escaped_with_or_without_the_debug_log(workdir: Path, debug: bool) -> None:
    batch_id = make_batch(workdir, ["a"])
    environment = {"FALLTHROUGH_DEBUG": "1"} if debug else {}
    ran = run_cli("run", batch_id, "handlers:warns", cwd=workdir, **environment)
    assert ran.returncode == ExitCode.OK, ran.stderr
    warned = [line for line in ran.stderr.splitlines() if "is " in line and "slow" in line]
    assert warned == ["fallthrough: warning: runner w: 'a' is \\x1b]0;retitled\\x07 slow"], ran.stderr
    assert "\x1b" not in ran.stderr and "\x07" not in ran.stderr


@pytest.mark.parametrize(
    ("handler", "code", "expected"),
    [
        ("handlers", ExitCode.INVALID_INPUT, "must look like module:function"),
        ("nosuchmodule:go", ExitCode.INVALID_INPUT, "cannot import the handler module 'nosuchmodule'"),
        ("exits_on_import:go", ExitCode.INVALID_INPUT, "handler module 'exits_on_import': SystemExit"),
        ("handlers:missing", ExitCode.INVALID_INPUT, "has no 'missing'"),
        ("handlers:not_a_function", ExitCode.INVALID_INPUT, "is not callable"),
    ],
)
def test_a_bad_handler_is_invalid_input(workdir: Path, handler: str, code: int, expected: str) -> None:
    batch_id = make_batch(workdir, ["a"])
    assert expected in one_line_error(run_cli("run", batch_id, handler, cwd=workdir), code)
    with store_of(workdir) as store:
        assert store.progress(batch_id).pending == 1


def test_run_on_an_unknown_batch_is_not_found(workdir: Path) -> None:
    make_batch(workdir, ["a"])
    unknown = "8c6f1f8e-5a43-4a43-9d43-1d3c0e0f0a01"
    assert unknown in one_line_error(run_cli("run", unknown, "handlers:tag", cwd=workdir), ExitCode.NOT_FOUND)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_run_cleanly_and_leaves_nothing_processing(workdir: Path, stop_signal: int) -> None:
    batch_id = make_batch(workdir, [f"k{index:03d}" for index in range(60)])
    runner = started(workdir, "run", batch_id, "handlers:slow", "--workers", "2", "--json")
    try:
        with store_of(workdir) as store:
            wait_while_running(lambda: store.progress(batch_id).completed >= 2, runner)
        runner.send_signal(stop_signal)
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        runner.kill()
    assert runner.returncode == ExitCode.INTERRUPTED, stderr
    assert stderr.strip().splitlines() == [
        "fallthrough: error: interrupted: the records it held and had not finished were released; run again to resume"
    ]
    shown = json.loads(stdout)
    assert shown["interrupted"] is True and 2 <= shown["progress"]["completed"] < 60
    with store_of(workdir) as store:
        progress = store.progress(batch_id)
    assert progress.processing == 0 and progress.failed == 0
    assert progress.completed == shown["progress"]["completed"] and progress.pending == 60 - progress.completed


@pytest.mark.parametrize(
    "second_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm-then-sigterm", "sigterm-then-ctrl-c"]
)
def test_a_second_signal_after_sigterm_stops_waiting_for_the_calls_under_way(workdir: Path, second_signal: int) -> None:
    batch_id = make_batch(workdir, ["a", "b", "c"])
    runner = started(workdir, "run", batch_id, "handlers:hang", "--workers", "2", "--json")
    try:
        with store_of(workdir) as store:
            wait_while_running(lambda: store.progress(batch_id).processing >= 2, runner)
        runner.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the first stop is under way: it waits for the two calls, two minutes each
        runner.send_signal(second_signal)
        runner.communicate(timeout=30)
    finally:
        runner.kill()
    assert runner.returncode == ExitCode.INTERRUPTED
    with store_of(workdir) as store:
        records = list(store.records(batch_id))
    assert [(record.status, record.lease_owner) for record in records] == [(fallthrough.Status.PENDING, None)] * 3


def test_batches_lists_newest_first_with_progress(workdir: Path) -> None:
    older = make_batch(workdir, ["a", "b"])
    newer = make_batch(workdir, ["c"])
    with store_of(workdir) as store:
        store.update(older, "a", "completed")
    listed = json_of(run_cli("batches", "--json", cwd=workdir))["batches"]
    assert [entry["id"] for entry in listed] == [newer, older]
    assert listed[1]["progress"]["done"] == 1 and listed[1]["total"] == 2
    assert set(listed[1]) == {"id", "total", "created_at", "metadata", "progress"}
    assert [entry["id"] for entry in json_of(run_cli("batches", "--limit", "1", "--json", cwd=workdir))["batches"]] == [
        newer
    ]
    table = run_cli("batches", cwd=workdir)
    assert table.returncode == 0 and table.stdout.index(newer) < table.stdout.index(older)
    assert "1/2" in table.stdout and "0/1" in table.stdout


def test_batches_on_an_empty_store_says_how_to_make_one(tmp_path: Path) -> None:
    assert json_of(run_cli("batches", "--json", cwd=tmp_path)) == {"batches": []}
    assert "fallthrough create FILE" in run_cli("batches", cwd=tmp_path).stdout


def complete_one_by_one(directory: Path, batch_id: str, keys: list[str], pause: float) -> threading.Thread:
    """Another writer: completes the records one at a time, ``pause`` seconds apart."""

    def work() -> None:
        with store_of(directory) as store:
            for key in keys:
                time.sleep(pause)
                store.update(batch_id, key, "completed" if key != "k3" else "failed", error=None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_status_watch_in_a_terminal_shows_the_bar_advance_and_exits_when_done(tmp_path: Path) -> None:
    keys = [f"k{index}" for index in range(10)]
    batch_id = make_batch(tmp_path, keys)
    child = pexpect.spawn(
        command("status", batch_id, "--watch", "--interval", "0.1")[0],
        command("status", batch_id, "--watch", "--interval", "0.1")[1:],
        cwd=str(tmp_path),
        env={**cli_environment(), "TERM": "xterm-256color"},
        dimensions=(40, 140),
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect(r"0/10 done")
        writer = complete_one_by_one(tmp_path, batch_id, keys, 0.4)
        seen: list[tuple[int, int]] = []
        while True:
            index = child.expect([r"([█░\x1b\[\dm;]+)\s*(\d+)/10 done", pexpect.EOF])
            if index == 1:
                break
            drawn = re.sub(r"\x1b\[[\d;]*m", "", child.match.group(1))
            seen.append((drawn.count("█"), int(child.match.group(2))))
        writer.join(timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    done = [count for _, count in seen]
    assert done == sorted(done) and done[-1] == 10
    assert len(set(done)) >= 4, seen  # it redrew as records finished, not once at the end
    blocks = [filled for filled, _ in seen]
    assert blocks == sorted(blocks) and blocks[0] < blocks[-1] == 30


def test_status_watch_with_json_prints_a_line_per_change_until_done(tmp_path: Path) -> None:
    keys = [f"k{index}" for index in range(4)]
    batch_id = make_batch(tmp_path, keys)
    watching = started(tmp_path, "status", batch_id, "--watch", "--interval", "0.1", "--json")
    try:
        # The records start to finish once the watch has shown the first state: however long it took to start.
        first = watching.stdout.readline() if watching.stdout else ""
        writer = complete_one_by_one(tmp_path, batch_id, keys, 0.5)
        rest, stderr = watching.communicate(timeout=120)
        writer.join(timeout=30)
    finally:
        watching.kill()
    assert watching.returncode == 0, stderr
    shapes = [json.loads(line) for line in (first + rest).splitlines()]
    assert shapes[0]["progress"]["done"] == 0
    done = [shape["progress"]["done"] for shape in shapes]
    assert done == sorted(set(done)) and done[-1] == 4 and len(done) >= 3
    assert [record["key"] for record in shapes[-1]["failed"]] == ["k3"]
