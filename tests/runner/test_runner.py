"""fallthrough.process on a real SQLite file store: results, errors, retries, stopping, resuming, leases.

No store is faked: every test runs the runner against ``sqlite:///`` files
(and, for outages, the fault-injecting backend in front of one), and reads
back what the store holds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import fallthrough
from fallthrough import InvalidInput, NotFound, Progress, Record, Status, Store, hookimpl
from fallthrough.errors import BackendUnavailable
from fallthrough.runner import _describe, exponential_backoff
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.validation import MAX_LEASE


def file_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return file_url(tmp_path / "runner.db")


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with fallthrough.connect(url) as opened:
        yield opened


def keys(count: int) -> list[str]:
    return [f"k{index:04d}" for index in range(count)]


class Calls:
    """What a handler saw, thread-safely: (key, attempt) per call, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int, float]] = []

    def add(self, record: Record) -> None:
        with self.lock:
            self.seen.append((record.key, record.attempt, time.monotonic()))

    def per_key(self) -> Counter[str]:
        return Counter(key for key, _, _ in self.seen)

    def attempts(self, key: str) -> list[int]:
        return [attempt for seen_key, attempt, _ in self.seen if seen_key == key]

    def times(self, key: str) -> list[float]:
        return [moment for seen_key, _, moment in self.seen if seen_key == key]


def bounded(store: Store, batch_id: object, handler: Any, *, seconds: float = 30.0, **options: Any) -> Progress:
    """``fallthrough.process``, stopped after ``seconds`` if it has not ended by then, which fails the test.

    So a runner that would wait for ever (a retry without end, a record it
    cannot take) fails the test instead of hanging it.
    """
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        progress = fallthrough.process(store, str(batch_id), handler, stop=stop, **options)
    finally:
        timer.cancel()
    assert not stop.is_set(), f"the runner had not finished after {seconds} s"
    return progress


def states(store: Store, batch_id: object) -> dict[str, Record]:
    return {record.key: record for record in store.records(str(batch_id))}


# -- results and errors ------------------------------------------------------


def test_every_record_gets_its_result_once(store: Store) -> None:
    batch = store.create_batch(keys(60))
    calls = Calls()

    def handler(record: Record) -> dict[str, Any]:
        calls.add(record)
        return {"key": record.key, "size": len(record.key)}

    progress = bounded(store, batch.id, handler, workers=4, lease=5)
    assert progress == Progress(total=60, pending=0, processing=0, completed=60, failed=0)
    assert calls.per_key() == Counter({key: 1 for key in keys(60)})
    for key, record in states(store, batch.id).items():
        assert record.status is Status.COMPLETED
        assert record.result == {"key": key, "size": 5}
        assert record.attempt == 0
        assert record.error is None
        assert record.lease_owner is None and record.lease_expires is None


def test_a_handler_returning_none_completes_the_record(store: Store) -> None:
    batch = store.create_batch(["a"])
    progress = bounded(store, batch.id, lambda record: None, workers=1)
    assert progress.completed == 1
    record = store.get_record(batch.id, "a")
    assert record is not None and record.status is Status.COMPLETED and record.result is None


def test_what_the_handler_raises_is_the_error(store: Store) -> None:
    batch = store.create_batch(keys(10))

    def handler(record: Record) -> str:
        if record.key in {"k0003", "k0007"}:
            raise ValueError(f"no price for {record.key}")
        return record.key.upper()

    progress = bounded(store, batch.id, handler, workers=3, max_attempts=1)
    assert (progress.completed, progress.failed) == (8, 2)
    held = states(store, batch.id)
    assert held["k0003"].status is Status.FAILED
    assert held["k0003"].error == "ValueError: no price for k0003"
    assert held["k0003"].result is None
    assert held["k0007"].error == "ValueError: no price for k0007"
    assert held["k0001"].result == "K0001"


def test_an_exception_that_is_no_exception_is_stored_too(store: Store) -> None:
    """asyncio's CancelledError (a timeout in an asyncio.run inside the handler) is a failure, not a crash."""
    batch = store.create_batch(["a", "b"])

    def handler(record: Record) -> str:
        if record.key == "a":
            raise asyncio.CancelledError("timed out inside the handler")
        return "fine"

    progress = bounded(store, batch.id, handler, workers=1, max_attempts=1)
    assert (progress.completed, progress.failed) == (1, 1)
    failed = store.get_record(batch.id, "a")
    assert failed is not None and failed.status is Status.FAILED and failed.attempt == 0
    assert failed.error == "asyncio.exceptions.CancelledError: timed out inside the handler"


def test_an_exit_inside_an_exception_group_stops_the_run_as_a_bare_one_does(store: Store) -> None:
    """trio's and anyio's task groups wrap a sys.exit() in a task: still an exit, not a record's failure."""
    batch = store.create_batch(["a"])

    def handler(record: Record) -> None:
        raise BaseExceptionGroup("unhandled errors in a TaskGroup", [SystemExit(3)])

    with pytest.raises(BaseExceptionGroup) as raised:
        bounded(store, batch.id, handler, workers=1, max_attempts=1)
    assert raised.group_contains(SystemExit)
    record = store.get_record(batch.id, "a")
    assert record is not None and record.status is Status.PENDING and record.error is None


def test_error_text_names_the_type_and_is_storable() -> None:
    class Custom(RuntimeError):
        pass

    described = _describe(Custom("a\x00b \udc80 " + "x" * 20_000))
    assert described.startswith(f"{__name__}.test_error_text_names_the_type_and_is_storable.<locals>.Custom: a\\x00b ")
    assert "\x00" not in described and len(described) <= 8192
    described.encode("utf-8")
    assert _describe(KeyError()) == "KeyError"


@pytest.mark.parametrize(
    "value",
    [object(), float("nan"), {1: "int key"}, (1, 2), b"bytes"],
    ids=["object", "nan", "int-key", "tuple", "bytes"],
)
def test_a_result_that_is_not_json_is_a_failure_not_a_loss(store: Store, value: object) -> None:
    batch = store.create_batch(["a", "b"])
    progress = bounded(
        store, batch.id, lambda record: value if record.key == "a" else "fine", workers=2, max_attempts=1
    )
    assert (progress.completed, progress.failed) == (1, 1)
    record = store.get_record(batch.id, "a")
    assert record is not None and record.status is Status.FAILED
    assert record.error is not None and record.error.startswith("handler returned a result that cannot be stored:")
    assert "result" in record.error


class UnreadableMapping(dict[str, Any]):
    """A result whose reading raises: its items() fails, as a mapping another thread is still filling may."""

    def items(self) -> Any:
        raise ValueError("items exploded")


def test_a_result_that_raises_while_it_is_read_is_that_records_failure_not_a_stopped_run(store: Store) -> None:
    batch = store.create_batch(["a", "b", "c"])
    progress = bounded(
        store,
        batch.id,
        lambda record: UnreadableMapping(x=1) if record.key == "a" else "fine",
        workers=2,
        max_attempts=1,
    )
    assert (progress.completed, progress.failed) == (2, 1)
    record = store.get_record(batch.id, "a")
    assert record is not None and (record.status, record.attempt) == (Status.FAILED, 0)
    assert record.error == "handler returned a result that cannot be read: ValueError: items exploded"


# -- retries -------------------------------------------------------------------


def test_failures_are_retried_up_to_max_attempts(store: Store) -> None:
    batch = store.create_batch(["flaky", "doomed", "fine"])
    calls = Calls()

    def handler(record: Record) -> str:
        calls.add(record)
        if record.key == "doomed" or (record.key == "flaky" and record.attempt < 2):
            raise TimeoutError(f"{record.key} at attempt {record.attempt}")
        return "ok"

    progress = bounded(store, batch.id, handler, workers=2, lease=5, max_attempts=3, backoff=lambda attempt: 0.05)
    assert (progress.completed, progress.failed) == (2, 1)
    # Each call is at its own attempt of the store: 0, 1, 2.
    assert calls.attempts("flaky") == [0, 1, 2]
    assert calls.attempts("doomed") == [0, 1, 2]
    assert calls.attempts("fine") == [0]
    held = states(store, batch.id)
    assert (held["flaky"].status, held["flaky"].attempt, held["flaky"].result) == (Status.COMPLETED, 2, "ok")
    assert (held["doomed"].status, held["doomed"].attempt) == (Status.FAILED, 2)
    assert held["doomed"].error == "TimeoutError: doomed at attempt 2"


def test_max_attempts_one_never_retries(store: Store) -> None:
    batch = store.create_batch(["a"])
    calls = Calls()

    def handler(record: Record) -> None:
        calls.add(record)
        raise RuntimeError("no")

    bounded(store, batch.id, handler, max_attempts=1, backoff=lambda attempt: 0.0)
    assert calls.attempts("a") == [0]


def failing_once(calls: Calls) -> Any:
    """A handler whose first attempt at each record fails and whose next one succeeds."""

    def handler(record: Record) -> str:
        calls.add(record)
        if record.attempt == 0:
            raise RuntimeError("first try fails")
        return "second try"

    return handler


def test_a_retry_waits_its_backoff(store: Store) -> None:
    batch = store.create_batch(["a"])
    calls = Calls()
    bounded(store, batch.id, failing_once(calls), workers=1, lease=60, backoff=lambda attempt: 0.6)
    first, second = calls.times("a")
    # The lease was cut to the backoff: the retry came after it, and long before the 60 s lease.
    assert 0.6 <= second - first < 20
    record = store.get_record(batch.id, "a")
    assert record is not None and (record.status, record.attempt) == (Status.COMPLETED, 1)


def test_a_retry_with_no_backoff_is_released_at_once(store: Store) -> None:
    batch = store.create_batch(["a"])
    calls = Calls()
    bounded(store, batch.id, failing_once(calls), workers=1, lease=30, backoff=lambda attempt: 0.0)
    assert calls.attempts("a") == [0, 1]
    first, second = calls.times("a")
    assert second - first < 5  # not a lease of 30 s


def test_a_record_retried_by_store_retry_gets_one_more_call_past_max_attempts(store: Store) -> None:
    batch = store.create_batch(["a"])
    calls = Calls()

    def failing(record: Record) -> None:
        calls.add(record)
        raise RuntimeError("down")

    bounded(store, batch.id, failing, max_attempts=2, backoff=lambda attempt: 0.0)
    assert calls.attempts("a") == [0, 1]
    assert store.retry(batch.id) == 1
    bounded(store, batch.id, failing, max_attempts=2, backoff=lambda attempt: 0.0)
    assert calls.attempts("a") == [0, 1, 2]  # one call at attempt 2, no retry after it
    record = store.get_record(batch.id, "a")
    assert record is not None and (record.status, record.attempt) == (Status.FAILED, 2)


def test_exponential_backoff() -> None:
    backoff = exponential_backoff(0.5, 3.0)
    assert [backoff(attempt) for attempt in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert exponential_backoff()(10_000) == 60.0
    with pytest.raises(InvalidInput):
        exponential_backoff(-1.0)


# -- stopping and resuming -----------------------------------------------------


def test_stop_finishes_running_calls_and_releases_the_rest(store: Store) -> None:
    batch = store.create_batch(keys(40))
    stop = threading.Event()
    started = threading.Barrier(3)
    calls = Calls()

    def handler(record: Record) -> str:
        calls.add(record)
        if len(calls.seen) <= 2:
            started.wait(timeout=10)  # both pool threads are in a call
            stop.wait(timeout=10)
            time.sleep(1.0)  # still running when the runner sees stop (it looks every 0.25 s)
        return "done"

    def stopper() -> None:
        started.wait(timeout=10)
        stop.set()

    threading.Thread(target=stopper).start()
    progress = fallthrough.process(store, batch.id, handler, workers=2, lease=30, stop=stop)
    assert progress.processing == 0
    assert progress.completed == len(calls.seen) >= 2
    assert progress.pending == 40 - progress.completed
    held = states(store, batch.id)
    released = [record for record in held.values() if record.attempt == 1]
    # What was claimed and not started went back at once, at attempt + 1, with no lease.
    assert released, "the runner claims ahead of its pool, so something was released"
    assert all(record.status is Status.PENDING and record.lease_owner is None for record in released)
    # Resuming takes the rest.
    again = bounded(store, batch.id, lambda record: "resumed", workers=2)
    assert again.completed == 40
    assert sum(1 for record in states(store, batch.id).values() if record.result == "resumed") == 40 - len(calls.seen)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in this process, as at a terminal.

    A test run started in the background by a non-interactive shell (``cmd &``)
    inherits SIGINT ignored, and Python then installs no handler for it.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_finishes_the_running_call_and_raises(store: Store) -> None:
    batch = store.create_batch(keys(20))
    interrupted = threading.Event()

    def handler(record: Record) -> str:
        if not interrupted.is_set():
            interrupted.set()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the runner sees the interrupt while this call runs
        return "finished"

    with pytest.raises(KeyboardInterrupt):
        fallthrough.process(store, batch.id, handler, workers=1, lease=30)
    progress = store.progress(batch.id)
    assert progress.processing == 0
    assert progress.completed >= 1
    assert progress.pending == 20 - progress.completed


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_second_ctrl_c_releases_the_running_call(store: Store) -> None:
    batch = store.create_batch(["slow"])
    hold = threading.Event()

    def handler(record: Record) -> str:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        hold.wait(timeout=10)
        return "late"

    with pytest.raises(KeyboardInterrupt):
        fallthrough.process(store, batch.id, handler, workers=1, lease=30)
    record = store.get_record(batch.id, "slow")
    assert record is not None and (record.status, record.attempt, record.lease_owner) == (Status.PENDING, 1, None)
    hold.set()
    time.sleep(0.3)
    # The late answer was never written (and would be a no-op, pinned to attempt 0).
    assert store.get_record(batch.id, "slow") == record


class InterruptsAgainWhenLogged(logging.Handler):
    """A second Ctrl-C that arrives while the runner logs the first, as from a wrapper forwarding the signal."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.sent and "interrupted; finishing" in record.getMessage():
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the signal's KeyboardInterrupt is raised here, inside the runner's logging call


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_ctrl_c_during_the_logging_of_the_first_is_the_second_and_nothing_runs_on(store: Store) -> None:
    batch = store.create_batch(keys(10))
    hold, interrupting = threading.Event(), threading.Event()

    def handler(record: Record) -> str:
        if not interrupting.is_set():
            interrupting.set()
            os.kill(os.getpid(), signal.SIGINT)
        hold.wait(timeout=10)
        return "late"

    runner_log = logging.getLogger("fallthrough.runner")
    second, level = InterruptsAgainWhenLogged(), runner_log.level
    runner_log.addHandler(second)
    runner_log.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            fallthrough.process(store, batch.id, handler, workers=1, lease=30)
    finally:
        runner_log.removeHandler(second)
        runner_log.setLevel(level)
        hold.set()
    assert second.sent
    # The second interrupt released what the runner held, and the run ended: nothing was completed behind
    # the caller's back once the held call was let go.
    for thread in threading.enumerate():
        if thread.name == "fallthrough-runner":
            thread.join(timeout=10)
    assert {(record.status, record.lease_owner) for record in store.records(batch.id)} == {(Status.PENDING, None)}


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_ctrl_c_after_stop_was_set_releases_the_running_call_at_once(store: Store) -> None:
    batch = store.create_batch(["slow"])
    stop = threading.Event()
    hold = threading.Event()

    def handler(record: Record) -> str:
        stop.set()  # as a service's SIGTERM handler would
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        hold.wait(timeout=10)
        return "late"

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fallthrough.process(store, batch.id, handler, workers=1, lease=30, stop=stop)
    assert time.monotonic() - started < 5  # it did not wait for the call
    hold.set()
    record = store.get_record(batch.id, "slow")
    assert record is not None and (record.status, record.attempt, record.lease_owner) == (Status.PENDING, 1, None)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_second_ctrl_c_releases_queued_and_running_records_once_each(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    batch = store.create_batch(keys(10))
    hold, stopping = threading.Event(), threading.Event()

    def handler(record: Record) -> str:
        os.kill(os.getpid(), signal.SIGINT)
        # The second as soon as the first was taken (two signals sent before then would arrive as one):
        # too soon for the runner to release the queued records after the first.
        assert stopping.wait(timeout=10)
        os.kill(os.getpid(), signal.SIGINT)
        hold.wait(timeout=10)
        return "late"

    with caplog.at_level(logging.WARNING, logger="fallthrough.runner"), pytest.raises(KeyboardInterrupt):
        fallthrough.process(store, batch.id, handler, workers=1, lease=30, stop=stopping)
    hold.set()
    runner_warnings = [entry for entry in caplog.records if entry.name == "fallthrough.runner"]
    assert [entry.getMessage() for entry in runner_warnings if entry.levelno >= logging.WARNING] == []
    assert store.progress(batch.id).pending == 10
    assert {(record.lease_owner, record.status) for record in store.records(batch.id)} == {(None, Status.PENDING)}


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_third_ctrl_c_waits_for_the_release_and_leaves_nothing_processing(tmp_path: Path) -> None:
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(10))
        hold = threading.Event()
        one_burst = threading.Lock()

        def handler(record: Record) -> str:
            if one_burst.acquire(blocking=False):
                # The release waits in the store until the whole burst has been delivered, so no
                # Ctrl-C of it can land after process() has returned (in the test runner itself).
                flaky.hold("fallthrough_update_records")
                for _ in range(3):  # a burst, as a supervisor's repeated SIGTERMs become in the command line
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.01)
                time.sleep(0.2)
                flaky.release()
            hold.wait(timeout=10)
            return "late"

        with pytest.raises(KeyboardInterrupt):
            fallthrough.process(store, batch.id, handler, workers=2, lease=60)
        hold.set()
        assert flaky.calls["fallthrough_update_records"] >= 1
        assert store.progress(batch.id).processing == 0


def abandoned_while_a_write_waits(
    tmp_path: Path,
    answer_second: Callable[[], str],
    before_the_store_answers: Callable[[Any], None] = lambda flaky: None,
    **options: Any,
) -> tuple[dict[str, Record], Any]:
    """A run of "first", "second" and "slow" told twice to stop while its write of an answer waits in the store.

    "first" answers, and its write is held in the store; "second" answers
    (``answer_second``) while that write waits, so its answer is queued;
    "slow" is still in its call. Then two Ctrl-C, ``before_the_store_answers``
    with the fault-injecting backend, and the held write goes on. Returns the
    records once ``process`` has raised ``KeyboardInterrupt``, and the backend.
    """
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(["first", "second", "slow"])
        flaky.hold("fallthrough_update_records")
        answered = threading.Event()
        hold = threading.Event()

        def handler(record: Record) -> str:
            if record.key == "slow":
                hold.wait(timeout=10)
                return "late"
            if record.key == "second":
                assert flaky.wait_held(1)  # while the coordinator writes "first"
                answered.set()
                return answer_second()
            return "done"

        def interrupt_twice_then_let_the_store_answer() -> None:
            assert answered.wait(10)
            time.sleep(0.2)  # the answer is queued; the coordinator still waits on its write
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
            before_the_store_answers(flaky)
            flaky.release()

        threading.Thread(target=interrupt_twice_then_let_the_store_answer, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            fallthrough.process(store, batch.id, handler, workers=3, lease=30, **options)
        hold.set()
        return states(store, batch.id), flaky


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_second_ctrl_c_writes_the_answers_already_finished(tmp_path: Path) -> None:
    """An answer that came while the coordinator was writing others was released with the calls under way."""
    held, _ = abandoned_while_a_write_waits(tmp_path, lambda: "done")
    assert {key: (record.status, record.attempt) for key, record in held.items()} == {
        "first": (Status.COMPLETED, 0),
        "second": (Status.COMPLETED, 0),
        "slow": (Status.PENDING, 1),
    }


@pytest.mark.usefixtures("ctrl_c_raises")
def test_answers_finished_before_a_second_ctrl_c_survive_a_failed_write(tmp_path: Path) -> None:
    """The one write of an abandon fails: the release after it set the finished answers pending at attempt + 1."""

    def fail_the_abandon_write(flaky: Any) -> None:
        flaky.fail_next("fallthrough_update_records")  # the held write is not counted: the abandon's is
        time.sleep(0.1)  # past the breaker's cooldown: the store is tried, not skipped, after the failure

    held, flaky = abandoned_while_a_write_waits(tmp_path, lambda: "done", fail_the_abandon_write)
    assert flaky.calls["fallthrough_update_records"] >= 3  # the held write, the failed one, the release after it
    assert {key: (record.status, record.attempt) for key, record in held.items()} == {
        "first": (Status.COMPLETED, 0),
        "second": (Status.COMPLETED, 0),
        "slow": (Status.PENDING, 1),
    }


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_failure_waiting_for_its_retry_keeps_its_error_when_a_second_ctrl_c_releases_it(tmp_path: Path) -> None:
    def fail() -> str:
        raise RuntimeError("transient")

    held, _ = abandoned_while_a_write_waits(tmp_path, fail, backoff=lambda attempt: 20)
    second = held["second"]
    assert (second.status, second.attempt) == (Status.PENDING, 1)
    assert second.error is not None and "transient" in second.error


def test_resume_takes_the_records_of_a_dead_worker_after_their_lease(store: Store) -> None:
    batch = store.create_batch(keys(6))
    claimed_at = datetime.now(UTC)
    dead = store.claim(batch.id, worker="dead-worker", limit=3, lease=0.5)
    assert [record.key for record in dead] == keys(3)
    calls = Calls()

    def handler(record: Record) -> str:
        calls.add(record)
        return f"by attempt {record.attempt}"

    progress = bounded(store, batch.id, handler, workers=2, lease=10)
    assert progress.completed == 6
    held = states(store, batch.id)
    for key in keys(3):
        assert held[key].attempt == 1 and held[key].result == "by attempt 1"
        assert held[key].updated_at - claimed_at >= (dead[0].lease_expires or claimed_at) - claimed_at
    for key in keys(6)[3:]:
        assert held[key].attempt == 0
    assert calls.per_key() == Counter({key: 1 for key in keys(6)})


def test_a_record_processing_without_a_lease_does_not_hang_the_runner(store: Store) -> None:
    batch = store.create_batch(["by-hand", "b"])
    store.update(batch.id, "by-hand", "processing")  # the old API: no lease, never claimable
    progress = bounded(store, batch.id, lambda record: 1, lease=5)
    assert (progress.processing, progress.completed) == (1, 1)


# -- leases --------------------------------------------------------------------


def test_the_heartbeat_keeps_a_slow_call_leased(url: str, store: Store) -> None:
    batch = store.create_batch(["slow", "quick"])
    # Long enough that a loaded machine's stall of a few hundred ms does not let it run out between two heartbeats.
    lease = 1.0
    observed: list[Record] = []
    stolen: list[Record] = []

    def handler(record: Record) -> str:
        if record.key == "slow":
            with fallthrough.connect(url) as other:
                for _ in range(14):  # 3.5 s: three and a half leases long
                    time.sleep(0.25)
                    stolen.extend(other.claim(batch.id, worker="thief", limit=10, lease=lease))
                    seen = other.get_record(batch.id, "slow")
                    assert seen is not None
                    observed.append(seen)
        return record.key

    progress = bounded(store, batch.id, handler, workers=2, lease=lease)
    assert progress.completed == 2
    assert stolen == []
    expiries = [record.lease_expires for record in observed]
    assert all(expiry is not None for expiry in expiries)
    assert len(set(expiries)) >= 3, "the lease was extended while the call ran"
    slow = store.get_record(batch.id, "slow")
    assert slow is not None and (slow.status, slow.attempt, slow.result) == (Status.COMPLETED, 0, "slow")


def test_on_progress_is_called_at_a_bounded_rate_and_last_with_the_end(store: Store) -> None:
    batch = store.create_batch(keys(30))
    reports: list[tuple[float, Progress]] = []

    def handler(record: Record) -> int:
        time.sleep(0.05)
        return 1

    started = time.monotonic()
    bounded(store, batch.id, handler, workers=2, on_progress=lambda p: reports.append((time.monotonic(), p)))
    elapsed = time.monotonic() - started
    assert reports[0][1].done == 0
    assert reports[-1][1].completed == 30
    assert len(reports) <= elapsed / 0.5 + 3
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(reports[:-1])]
    assert all(gap >= 0.45 for gap in gaps[1:])


def test_an_error_in_on_progress_stops_the_run_and_releases(store: Store) -> None:
    batch = store.create_batch(keys(10))

    def on_progress(progress: Progress) -> None:
        if progress.done:
            raise RuntimeError("display broke")

    def handler(record: Record) -> int:
        time.sleep(0.1)
        return 1

    with pytest.raises(RuntimeError, match="display broke"):
        fallthrough.process(store, batch.id, handler, workers=2, on_progress=on_progress, lease=30)
    assert store.progress(batch.id).processing == 0


# -- the store going away ------------------------------------------------------


def flaky_store(tmp_path: Path) -> tuple[Store, Any]:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    inner = file_url(tmp_path / "inner.db")
    store = fallthrough.connect(
        f"flaky://?inner={inner}", registry=registry, breaker=fallthrough.BreakerPolicy(cooldown=0.05)
    )
    return store, store.plugin_manager.get_plugin("flaky")


def test_failures_waiting_out_one_backoff_share_one_lease_cut(tmp_path: Path) -> None:
    """A lease cut per failed record was a transaction per failure: 25x a run that succeeds, on SQLite."""
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(400))

        def failing(record: Record) -> None:
            raise RuntimeError("down")

        progress = bounded(store, batch.id, failing, workers=8, max_attempts=2, backoff=lambda attempt: 0.05)
        assert progress.failed == 400
        assert all(record.attempt == 1 for record in store.records(batch.id))  # each waited out, then failed again
        assert flaky.calls["fallthrough_extend_leases"] < 200


def test_slow_progress_reads_are_made_less_often_so_they_take_a_tenth_of_the_run(tmp_path: Path) -> None:
    """A store whose progress costs the batch (0.6 s at a million on qdrant-edge) is not read twice a second."""
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(120))
        flaky.delays["fallthrough_progress"] = 0.25  # so at least 2.5 s between reports

        def handler(record: Record) -> int:
            time.sleep(0.05)
            return 1

        reports: list[float] = []
        started = time.monotonic()
        bounded(store, batch.id, handler, workers=2, on_progress=lambda _: reports.append(time.monotonic()))
        elapsed = time.monotonic() - started
    # The first report comes at the start and the last at the end, whenever that is; between them, the gaps.
    gaps = [later - earlier for earlier, later in itertools.pairwise(reports[:-1])]
    assert gaps, f"a run of {elapsed:.1f} s made no report between its first and last"
    assert min(gaps) >= 2.4, gaps
    assert flaky.calls["fallthrough_progress"] * 0.25 <= 0.2 * elapsed + 0.5


def test_a_short_outage_is_waited_out(tmp_path: Path) -> None:
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(20))

        def handler(record: Record) -> str:
            if record.key == "k0005":
                flaky.outage = True
                threading.Timer(0.5, lambda: setattr(flaky, "outage", False)).start()
                time.sleep(0.1)
            return "ok"

        progress = bounded(store, batch.id, handler, workers=2, lease=3)
        assert progress.completed == 20


def test_the_late_answer_of_a_lost_lease_changes_nothing(tmp_path: Path) -> None:
    """The runner's heartbeat hangs past its lease; another worker takes the record; the late answer is a no-op.

    A hang, not an outage: an outage as long as the lease makes the runner's
    own calls give up and raise, which is the documented end of a run whose
    store stays down for a lease, and not what this test is about.
    """
    store, flaky = flaky_store(tmp_path)
    lease = 1.5
    with store, fallthrough.connect(file_url(tmp_path / "inner.db")) as direct:
        batch = store.create_batch(["x"])
        taken: list[Record] = []

        def handler(record: Record) -> str:
            flaky.hold("fallthrough_extend_leases")
            try:
                assert flaky.wait_held(1), "the runner's heartbeat never came"
                time.sleep(lease + 0.1)  # the last extension came before the hold
                taken.extend(direct.claim(batch.id, worker="other", limit=1, lease=30))
                (mine,) = taken
                direct.update(batch.id, "x", "completed", result="other's", attempt=mine.attempt)
            finally:
                flaky.release()
            return "late"

        bounded(store, batch.id, handler, workers=1, lease=lease)
        assert [record.attempt for record in taken] == [1]
        record = direct.get_record(batch.id, "x")
        assert record is not None and (record.status, record.attempt, record.result) == (
            Status.COMPLETED,
            1,
            "other's",
        )


def test_the_late_answer_of_a_lease_this_runner_took_again_does_not_end_the_new_call(store: Store) -> None:
    """The coordinator stalls past the lease and claims a running record again.

    The old call's answer let go of the new claim too: no heartbeat kept it,
    its lease ran out, and it was claimed again, call after call, for ever.
    """
    batch = store.create_batch(["slow", "quick"])
    running: set[tuple[str, int]] = set()
    calls: list[tuple[str, int]] = []
    lock = threading.Lock()
    stalled = threading.Event()

    def handler(record: Record) -> str:
        with lock:
            calls.append((record.key, record.attempt))
            running.add((record.key, record.attempt))
        try:
            if record.key == "slow":
                time.sleep(1.5)
            return f"{record.key}@{record.attempt}"
        finally:
            with lock:
                running.discard((record.key, record.attempt))

    def on_progress(progress: Progress) -> None:
        if progress.processing and not stalled.is_set():
            stalled.set()
            time.sleep(0.6)  # the coordinator (which calls this) misses its heartbeats: the leases run out

    bounded(store, batch.id, handler, workers=3, lease=0.3, on_progress=on_progress)
    with lock:
        assert running == set()  # no call outlives the run
    assert stalled.is_set() and ("slow", 1) in calls  # the stall did make the runner claim "slow" again
    record = store.get_record(batch.id, "slow")
    last = max(attempt for key, attempt in calls if key == "slow")
    assert record is not None and (record.status, record.attempt) == (Status.COMPLETED, last)


def test_two_late_answers_of_a_record_whose_newest_claim_was_answered_change_nothing(store: Store) -> None:
    """Two stalls past the lease: "slow" is claimed at attempts 0, 1 and 2, each while the older calls run.

    Attempt 2 answers first; then 0 and 1 answer together. With no claim of
    "slow" held any more, neither counted as superseded, so one update_many
    named the record twice and process raised InvalidInput.
    """
    batch = store.create_batch(["slow", "keep"])
    lock = threading.Lock()
    started: set[tuple[str, int]] = set()
    old_may_answer = threading.Event()
    phase = [0]

    def handler(record: Record) -> str:
        with lock:
            started.add((record.key, record.attempt))
        if record.key == "keep":
            assert old_may_answer.wait(10)
            time.sleep(1.0)  # holds the run open while the late answers of "slow" come in
        elif record.attempt < 2:
            assert old_may_answer.wait(10)
        return f"{record.key}@{record.attempt}"

    def on_progress(progress: Progress) -> None:
        with lock:
            seen = set(started)
        # Each stall begins once the newest call of "slow" runs, so that the next claim of it is made meanwhile.
        if phase[0] < 2 and ("slow", phase[0]) in seen:
            phase[0] += 1
            time.sleep(0.6)  # the coordinator (which calls this) misses its heartbeats: the leases run out
        elif phase[0] == 2 and progress.completed == 1:
            phase[0] = 3
            old_may_answer.set()
            time.sleep(0.3)  # both late answers wait in the queue for the next drain

    bounded(store, batch.id, handler, workers=8, lease=0.3, on_progress=on_progress)
    assert phase[0] == 3  # the run did go through both stalls and the late answers
    with lock:
        assert {attempt for key, attempt in started if key == "slow"} == {0, 1, 2}
    record = store.get_record(batch.id, "slow")
    assert record is not None and (record.status, record.attempt, record.result) == (Status.COMPLETED, 2, "slow@2")


class _HandsSlowOutAgain(FaultInjectingBackend):
    """A store whose claims disagree with what it holds: once nothing else is claimable, it hands
    "slow" out again at the same attempt, twice, as a failover Store may while its stores disagree
    (docs/semantics.md, "What a failover can do")."""

    def __init__(self, url: object) -> None:
        super().__init__(url)
        self.again = 2

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> Sequence[Record]:
        claimed = super().fallthrough_claim_records(batch_id, worker, limit, claimed_at, lease_until)
        if claimed or self.again == 0:
            return claimed
        self.again -= 1
        slow = self.inner.fallthrough_get_record(batch_id, "slow")
        return [slow] if slow is not None and slow.status is Status.PROCESSING else []


def test_late_answers_of_claims_at_the_same_attempt_change_nothing_after_the_newest_is_answered() -> None:
    """The newest of three claims of "slow", all at attempt 0, answers first; the two older answer together.

    Compared by attempt, neither older answer counted as superseded: both were
    written, the stale result replaced the newest, and with both in one drain
    update_many named the record twice and process raised InvalidInput.
    """
    registry = fallthrough.Registry()
    registry.register("again", f"{__name__}:_HandsSlowOutAgain")
    with fallthrough.connect("again://?inner=sqlite%3A%2F%2F", registry=registry) as store:
        batch = store.create_batch(["slow", "keep"])
        lock = threading.Lock()
        slow_calls: list[int] = []
        newest_answered = threading.Event()
        old_answered = threading.Event()

        def handler(record: Record) -> str:
            if record.key == "keep":
                assert old_answered.wait(10)
                time.sleep(0.5)  # holds the run open while the late answers of "slow" come in
                return "keep"
            with lock:
                slow_calls.append(record.attempt)
                call = len(slow_calls)
            if call < 3:
                assert newest_answered.wait(10)
                deadline = time.monotonic() + 10
                while (stored := store.get_record(batch.id, "slow")) is None or stored.result != "newest":
                    assert time.monotonic() < deadline, "the newest answer was not written"
                    time.sleep(0.01)
                old_answered.set()  # after the newest answer was written and its claim let go
                return f"old {call}"
            newest_answered.set()
            return "newest"

        stalled = threading.Event()

        def on_progress(progress: Progress) -> None:
            if newest_answered.is_set() and progress.completed >= 1 and not stalled.is_set():
                stalled.set()
                time.sleep(0.6)  # both older answers wait in the queue for one drain

        bounded(store, batch.id, handler, workers=4, lease=5, on_progress=on_progress)
        assert slow_calls == [0, 0, 0] and stalled.is_set()  # the case was reached
        record = store.get_record(batch.id, "slow")
        assert record is not None and (record.status, record.result) == (Status.COMPLETED, "newest")


def test_an_answer_the_store_refuses_costs_neither_the_other_answers_nor_the_release(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A result changed to NaN after its handler returned it: update_many refuses the drain's answers whole.

    The run raises that InvalidInput. The release after the error wrote the
    same answers again first, failed again, and gave up: the other finished
    answers were lost and every record held stayed processing for a lease.
    """
    batch = store.create_batch(["a", "b", "c", "d"])
    shared: dict[str, object] = {"ok": 1}
    a_started = threading.Event()
    stalling = threading.Event()
    c_may_answer = threading.Event()

    def handler(record: Record) -> object:
        if record.key == "a":
            a_started.set()
            assert stalling.wait(10)
            threading.Timer(0.1, lambda: shared.__setitem__("bad", math.nan)).start()
            return shared  # valid when its update is built, NaN by the time it is written
        if record.key == "c":
            assert c_may_answer.wait(10)  # under way when the run raises
            return "c"
        assert stalling.wait(10)
        return record.key

    def on_progress(progress: Progress) -> None:
        if a_started.is_set() and not stalling.is_set():
            stalling.set()
            time.sleep(0.6)  # the answers of a, b and d, and the change, come before the next drain

    try:
        with pytest.raises(InvalidInput, match=r"result\['bad'\]"):
            bounded(store, batch.id, handler, workers=3, lease=30, on_progress=on_progress, max_attempts=1)
    finally:
        c_may_answer.set()
    states = {record.key: (record.status, record.attempt, record.result) for record in store.records(batch.id)}
    assert states == {
        "a": (Status.PENDING, 1, None),  # its answer refused: released, to be done again
        "b": (Status.COMPLETED, 0, "b"),
        "c": (Status.PENDING, 1, None),  # its call was under way: released, its late answer changes nothing
        "d": (Status.COMPLETED, 0, "d"),
    }
    refused = store.get_record(batch.id, "a")
    assert refused is not None and "could not be stored" in (refused.error or "") and "nan" in (refused.error or "")
    assert store.get_record(batch.id, "c").error is None  # type: ignore[union-attr]
    assert "the answer for 'a' is refused" in caplog.text


def test_a_stop_while_an_old_and_a_new_claim_of_a_record_wait_in_the_queue_releases_it_once(tmp_path: Path) -> None:
    """Both claims were released in one update_many, which refused the repeated record: process raised InvalidInput."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = fallthrough.connect(url)
    side = fallthrough.connect(url)
    quick = [f"q{i:04d}" for i in range(3000)]
    later = [f"r{i:04d}" for i in range(200)]
    batch = store.create_batch([*quick, "slow", *later])
    stop = threading.Event()
    slow_running = threading.Event()
    stalled = threading.Event()
    claimed_again = threading.Event()

    def handler(record: Record) -> str:
        if record.key == "slow":
            slow_running.set()
            assert stalled.wait(10)
            return "slow"
        if record.key.startswith("r"):
            time.sleep(0.005)
            stored = side.get_record(batch.id, record.key)
            if stored is not None and stored.attempt > record.attempt:
                claimed_again.set()  # this record was claimed again while its old claim waited in the queue
                stop.set()
        return record.key

    def on_progress(progress: Progress) -> None:
        if slow_running.is_set() and not stalled.is_set():
            time.sleep(3.5)  # > lease: every held lease runs out
            stalled.set()

    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        fallthrough.process(store, batch.id, handler, workers=1, lease=3.0, on_progress=on_progress, stop=stop)
    finally:
        timer.cancel()
        left = [r for r in side.records(batch.id) if r.status == fallthrough.Status.PROCESSING]
        store.close()
        side.close()
    assert claimed_again.is_set(), "the run ended before any record was claimed again: the case was not reached"
    assert not left


def test_a_store_going_down_falls_through_to_the_next(tmp_path: Path) -> None:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    store = fallthrough.connect(
        f"flaky://?inner={file_url(tmp_path / 'first.db')}",
        file_url(tmp_path / "second.db"),
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.05),
    )
    flaky = store.plugin_manager.get_plugin("flaky")
    with store:
        batch = store.create_batch(keys(200))

        def handler(record: Record) -> str:
            if record.key == "k0050":
                flaky.outage = True  # for the rest of the run
            return record.key

        progress = bounded(store, batch.id, handler, workers=4, lease=10)
        assert progress.completed == 200
        assert flaky.calls["fallthrough_claim_records"] > 0
        # The second store served the rest; the first gets it all once it is back.
        flaky.outage = False
        assert store.drain(timeout=10)
        with fallthrough.connect(file_url(tmp_path / "first.db")) as first:
            assert first.progress(batch.id).completed == 200
            assert {record.result for record in first.records(batch.id)} == set(keys(200))


def test_a_long_outage_raises_after_a_lease(tmp_path: Path) -> None:
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(20))

        def handler(record: Record) -> str:
            flaky.outage = True
            return "never stored"

        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            fallthrough.process(store, batch.id, handler, workers=2, lease=1)
        assert time.monotonic() - started >= 1
        flaky.outage = False
        assert store.progress(batch.id).completed == 0


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_ctrl_c_while_every_store_is_down_is_still_an_interrupt_caused_by_the_outage(tmp_path: Path) -> None:
    """Its answers could not be written while it let go, and that error was raised in place of the interrupt."""
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(5))

        def handler(record: Record) -> str:
            flaky.outage = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the runner sees the interrupt while this call runs
            return "never stored"

        with pytest.raises(KeyboardInterrupt) as interrupted:
            fallthrough.process(store, batch.id, handler, workers=1, lease=0.5)
        assert isinstance(interrupted.value.__cause__, BackendUnavailable)
        flaky.outage = False
        assert store.progress(batch.id).completed == 0


@pytest.mark.usefixtures("ctrl_c_raises")
@pytest.mark.parametrize("then", ["exits", "deletes the batch"])
def test_an_error_after_a_ctrl_c_that_is_no_outage_is_raised_as_it_is(store: Store, then: str) -> None:
    """Only an outage is the interrupt's cause: a handler's exit, or NotFound for a deleted batch, says more."""
    batch = store.create_batch(keys(3))
    interrupted = threading.Event()

    def handler(record: Record) -> str:
        if interrupted.is_set():
            return "a call the pool had started"
        interrupted.set()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the runner sees the interrupt while this call runs
        if then == "exits":
            raise SystemExit(3)
        store.delete_batch(batch.id)
        return "for a batch that is gone"

    # Caught as any BaseException: a KeyboardInterrupt that escaped would end the test session, not fail this test.
    with pytest.raises(BaseException) as raised:
        fallthrough.process(store, batch.id, handler, workers=1, lease=30)
    assert isinstance(raised.value, SystemExit if then == "exits" else NotFound), repr(raised.value)


def test_a_handler_exit_with_every_store_down_is_raised_at_once_not_the_outage(tmp_path: Path) -> None:
    """The exit's own record was written with a lease of retries first, and the outage was raised in its place."""
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(20))

        def handler(record: Record) -> str:
            flaky.outage = True
            raise SystemExit(4)

        started = time.monotonic()
        with pytest.raises(SystemExit) as exited:
            fallthrough.process(store, batch.id, handler, workers=1, lease=30)
        assert exited.value.code == 4
        assert time.monotonic() - started < 10, "it waited out the outage before stopping"
        flaky.outage = False
        assert store.progress(batch.id).completed == 0


def test_results_written_in_a_round_stay_when_its_lease_cut_fails(tmp_path: Path) -> None:
    """A round writes one result and one failure waiting out its backoff; the backoff's lease cut fails for a lease.

    The release after that error set every record of the round pending at
    attempt + 1, the one whose result was already written included: the
    result was lost and the record called again. The failure's error was
    dropped by that release too.
    """
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(["good", "bad"])
        both_answered = threading.Event()
        answering = threading.Barrier(2, action=both_answered.set)

        def handler(record: Record) -> dict[str, int]:
            time.sleep(0.8)  # past the first progress report, which holds the coordinator below
            answering.wait()
            if record.key == "bad":
                raise RuntimeError("transient")
            return {"rows": 3}

        def on_progress(progress: Progress) -> None:
            # Called on the coordinator: held until both answers are queued, it takes them in one round.
            if progress.processing and not flaky.failing:
                assert both_answered.wait(10)
                time.sleep(0.2)
                flaky.failing.add("fallthrough_extend_leases")

        with pytest.raises(BackendUnavailable):
            fallthrough.process(
                store, batch.id, handler, workers=2, lease=1, backoff=lambda attempt: 30, on_progress=on_progress
            )
        held = states(store, batch.id)
    assert flaky.calls["fallthrough_extend_leases"] > 0  # the round did reach its lease cut
    assert (held["good"].status, held["good"].attempt, held["good"].result) == (Status.COMPLETED, 0, {"rows": 3})
    assert (held["bad"].status, held["bad"].attempt) == (Status.PENDING, 1)
    # Released before its backoff was written, it keeps its failure's error, as a retried failure does.
    assert held["bad"].error == "RuntimeError: transient"


class _RefusesLongCuts(FaultInjectingBackend):
    """A store whose lease cuts to 40 s or more are unavailable, while the shorter ones work."""

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> Sequence[Record]:
        if lease_until - now >= timedelta(seconds=40):
            self.calls["long cut"] += 1
            raise BackendUnavailable("the long cut is refused")
        return super().fallthrough_extend_leases(batch_id, keys, worker, now, lease_until)


def test_a_backoff_already_written_stands_when_a_later_one_of_the_round_fails(tmp_path: Path) -> None:
    """Two failures of one round wait out backoffs of 30 s and 40 s: the first cut is written, the second fails.

    The release after that error set both pending at attempt + 1, so the
    record whose backoff was written was taken again at once, without its
    error. Now it stays processing until its backoff ends, and the other
    is released with its error.
    """
    registry = fallthrough.Registry()
    registry.register("cuts", f"{__name__}:_RefusesLongCuts")
    inner = file_url(tmp_path / "inner.db")
    with fallthrough.connect(f"cuts://?inner={inner}", registry=registry) as store:
        batch = store.create_batch(["first", "second"])
        store.update(batch.id, "second", "failed", error="earlier")
        assert store.retry(batch.id) == 1  # "second" is at attempt 1: a backoff of its own
        both_answered = threading.Event()
        answering = threading.Barrier(2, action=both_answered.set)

        def handler(record: Record) -> None:
            time.sleep(0.8)  # past the first progress report, which holds the coordinator below
            answering.wait()
            if record.key == "second":
                time.sleep(0.1)  # queued after "first": its cut is the round's second
            raise RuntimeError(f"transient {record.key}")

        def on_progress(progress: Progress) -> None:
            # Called on the coordinator: held until both answers are queued, it takes them in one round.
            if progress.processing:
                assert both_answered.wait(10)
                time.sleep(0.3)

        with pytest.raises(BackendUnavailable):
            fallthrough.process(
                store,
                batch.id,
                handler,
                workers=2,
                lease=1,
                max_attempts=5,
                backoff=lambda attempt: 30 if attempt == 0 else 40,
                on_progress=on_progress,
            )
        held = states(store, batch.id)
        cuts = store.plugin_manager.get_plugin("cuts").calls["long cut"]
    assert cuts > 0  # the round did reach the second cut
    first, second = held["first"], held["second"]
    assert (first.status, first.attempt) == (Status.PROCESSING, 0)
    assert first.lease_expires is not None and first.lease_expires - datetime.now(UTC) > timedelta(seconds=20)
    assert (second.status, second.attempt, second.error) == (Status.PENDING, 2, "RuntimeError: transient second")


def test_no_handler_call_starts_once_the_run_has_raised(tmp_path: Path) -> None:
    """The records queued for the pool were left there when the store was down at the end: the pool went on calling."""
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(keys(20000))
        starts: list[float] = []

        def handler(record: Record) -> None:
            starts.append(time.monotonic())
            if flaky.outage:
                time.sleep(0.05)  # slower than the run so far: records are still queued when it raises
            elif starts[-1] - starts[0] > 0.8:  # quick calls until then: the runner holds hundreds
                flaky.outage = True  # every store call fails from now on

        with pytest.raises(BackendUnavailable):
            fallthrough.process(store, batch.id, handler, workers=1, lease=1)
        raised = time.monotonic()
        time.sleep(0.5)
        flaky.outage = False
    assert sum(1 for moment in starts if moment > raised) <= 1  # one taken from the queue just before the end


# -- bad input ------------------------------------------------------------------


def test_an_unknown_batch_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        fallthrough.process(store, "6f1c3f6e-0000-4000-8000-000000000000", lambda record: None)


@pytest.mark.parametrize(
    "arguments",
    [
        {"workers": 0},
        {"workers": True},
        {"workers": 5000},
        {"lease": 0},
        {"lease": float("nan")},
        {"max_attempts": 0},
        {"backoff": 3},
        {"on_progress": "print"},
        {"worker": ""},
        {"stop": True},
    ],
)
def test_bad_arguments_are_refused_before_anything_is_claimed(store: Store, arguments: dict[str, Any]) -> None:
    batch = store.create_batch(["a"])
    with pytest.raises(InvalidInput):
        fallthrough.process(store, batch.id, lambda record: None, **arguments)
    record = store.get_record(batch.id, "a")
    assert record is not None and record.status is Status.PENDING


def test_two_runners_in_threads_share_a_batch(url: str, store: Store) -> None:
    batch = store.create_batch(keys(200))
    calls: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def handler_for(name: str) -> Any:
        def handler(record: Record) -> str:
            with lock:
                calls[record.key].append(name)
            time.sleep(0.01)  # long enough for both runners to take part
            return name

        return handler

    def run(name: str) -> None:
        with fallthrough.connect(url) as own:
            bounded(own, batch.id, handler_for(name), workers=3, lease=10, worker=name)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(calls) == keys(200)
    assert all(len(names) == 1 for names in calls.values())
    assert {record.result for record in store.records(batch.id)} == {"one", "two"}


def test_a_record_claimed_again_while_the_leases_are_read_is_waited_for(tmp_path: Path) -> None:
    """Read between the leases and the pending count, a record given back and claimed again was in neither read.

    Runner B fails its record with no backoff, which gives it back as pending, and claims it again while runner A
    reads the leases; A returned, and when B then stopped (a handler's exit), the record was left pending.
    """
    inner = file_url(tmp_path / "inner.db")
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    with (
        fallthrough.connect(f"flaky://?inner={inner}", registry=registry) as store_a,
        fallthrough.connect(f"flaky://?inner={inner}", registry=registry) as store_b,
    ):
        gate_a, gate_b = (opened.plugin_manager.get_plugin("flaky") for opened in (store_a, store_b))
        batch = store_a.create_batch(["r"])
        fail_now, claimed_again, leave = threading.Event(), threading.Event(), threading.Event()
        calls: list[tuple[str, int]] = []

        def b_handler(record: Record) -> str:
            calls.append(("B", record.attempt))
            if record.attempt == 0:
                fail_now.wait(30)
                raise ValueError("transient")  # no backoff: pending at attempt 1, and B claims it again
            claimed_again.set()
            leave.wait(30)
            raise SystemExit(3)  # B stops: what it holds goes back to pending

        def a_handler(record: Record) -> str:
            calls.append(("A", record.attempt))
            return "A"

        outcome: dict[str, object] = {}

        def run(name: str, store: Store, handler: Any, **options: Any) -> None:
            try:
                outcome[name] = fallthrough.process(
                    store, batch.id, handler, workers=1, lease=30, worker=name, **options
                )
            except BaseException as error:
                outcome[name] = error

        runner_b = threading.Thread(target=run, args=("B", store_b, b_handler), kwargs={"backoff": lambda n: 0.0})
        runner_b.start()
        runner_a = threading.Thread(target=run, args=("A", store_a, a_handler))
        try:
            deadline = time.monotonic() + 30
            while not calls and time.monotonic() < deadline:  # B holds r at attempt 0
                time.sleep(0.01)
            gate_a.hold("fallthrough_list_records")
            runner_a.start()
            assert gate_a.wait_held(1)  # A found nothing to claim, and r processing: it reads the leases
            gate_b.hold("fallthrough_claim_records")
            fail_now.set()
            assert gate_b.wait_held(1)  # r is pending at attempt 1; B's next claim waits
            gate_a.hold("fallthrough_progress")
            assert gate_a.wait_held(1)  # A read the leases (none: r was pending) and reads progress again
            gate_b.release()
            assert claimed_again.wait(10)  # B holds r again, at attempt 1
            gate_a.release()
            runner_a.join(1)
            assert runner_a.is_alive(), f"runner A returned while B held a record: {outcome.get('A')}"
        finally:
            gate_a.release()
            gate_b.release()
            fail_now.set()
            leave.set()
            runner_b.join(30)
            runner_a.join(30)
        assert isinstance(outcome["B"], SystemExit)
        assert isinstance(outcome["A"], Progress) and outcome["A"].completed == 1, outcome["A"]
        assert calls == [("B", 0), ("B", 1), ("A", 2)]


def test_records_another_runner_gives_back_while_the_leases_are_read_are_run(tmp_path: Path) -> None:
    """A runner that stops gives its leased records back as pending; read between progress and the leases,
    they were in neither, and the last runner returned with them pending and nobody to run them."""
    store, gate = flaky_store(tmp_path)
    with store, fallthrough.connect(file_url(tmp_path / "inner.db")) as other_runner:
        batch = store.create_batch(keys(5))
        held = other_runner.claim(batch.id, worker="stopping", limit=5, lease=60)
        gate.hold("fallthrough_list_records")  # the runner's read of the processing records' leases
        outcome: dict[str, Progress] = {}
        running = threading.Thread(
            target=lambda: outcome.update(progress=bounded(store, batch.id, lambda record: "ok", lease=5))
        )
        running.start()
        try:
            assert gate.wait_held(1), "the runner never read the leases of the records another runner held"
            # What a stopping runner does with what it holds (runner._released): pending at attempt + 1.
            other_runner.update_many(
                [fallthrough.RecordUpdate(batch.id, record.key, Status.PENDING, attempt=1) for record in held]
            )
        finally:
            gate.release()
            running.join(30)
        assert outcome["progress"].completed == 5, outcome["progress"]
        assert {record.status for record in store.records(batch.id)} == {Status.COMPLETED}


@pytest.mark.parametrize("delay", [1e9, math.inf])
def test_a_backoff_past_the_longest_lease_is_cut_to_it(store: Store, delay: float) -> None:
    batch = store.create_batch(["a"])
    stop = threading.Event()

    def handler(record: Record) -> None:
        threading.Timer(0.5, stop.set).start()  # the retry is far away: stop once the backoff is under way
        raise RuntimeError("first try fails")

    started = datetime.now(UTC)
    fallthrough.process(store, str(batch.id), handler, workers=1, lease=5, backoff=lambda attempt: delay, stop=stop)
    record = store.get_record(batch.id, "a")
    # Waiting out its backoff, the record is held by a lease no longer than the longest a Store grants.
    assert record is not None and record.status is Status.PROCESSING and record.lease_expires is not None
    assert record.lease_expires - started <= timedelta(seconds=MAX_LEASE + 60)


# -- counts that cannot be right -----------------------------------------------


def insert_uncounted(path: Path, batch_id: uuid.UUID, keys: Sequence[str]) -> None:
    """Insert records as a process of an older release did into a migrated SQLite file: the counts never see them."""
    connection = sqlite3.connect(path)
    with connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(records)")]
        template = dict(zip(columns, connection.execute("SELECT * FROM records").fetchone(), strict=True))
        for offset, key in enumerate(keys, start=1):
            row = {**template, "key": key, "seq": template["seq"] + offset}
            connection.execute(
                f"INSERT INTO records ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
    connection.close()


def test_a_runner_over_records_the_counts_never_saw_ends_once_the_records_are_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The counts end below zero (pending -30): the runner decides by the records, and says why."""
    path = tmp_path / "shared.db"
    with fallthrough.connect(f"sqlite:///{path}") as store:
        batch = store.create_batch(["counted"])
        insert_uncounted(path, batch.id, keys(30))
        with caplog.at_level(logging.ERROR, logger="fallthrough.runner"):
            progress = bounded(store, batch.id, lambda record: {"ok": record.key}, workers=2, lease=30)
        assert progress.pending == -30  # what the counts say, wrong as they are
        assert {record.status for record in store.records(batch.id)} == {Status.COMPLETED}
        assert len(list(store.records(batch.id))) == 31
    assert "its progress counts cannot be right" in caplog.text


def test_a_runner_over_broken_counts_waits_for_records_another_runner_holds_without_flooding_the_store(
    tmp_path: Path,
) -> None:
    """Counts below zero do not end a run while a record is under another runner's lease.

    Nor do they make it poll as for pending records (every 20 ms, a claim in a
    write transaction each time): over a 2 s lease it claims about 8 times at
    the quarter-second poll, and a loaded machine only makes that fewer.
    """
    store, flaky = flaky_store(tmp_path)
    with store:
        batch = store.create_batch(["counted"])
        insert_uncounted(tmp_path / "inner.db", batch.id, keys(3))
        (held,) = store.claim(batch.id, worker="elsewhere", limit=1, lease=2)
        claims_before = flaky.calls["fallthrough_claim_records"]
        bounded(store, batch.id, lambda record: None, workers=1, lease=30)
        after = store.get_record(batch.id, held.key)
        assert after is not None and after.status == Status.COMPLETED
        assert after.attempt == held.attempt + 1  # it waited out the lease held elsewhere, then ran the record
        assert flaky.calls["fallthrough_claim_records"] - claims_before < 40
