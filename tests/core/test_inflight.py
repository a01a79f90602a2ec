"""Chunk writes in flight: a streamed create writes chunk N while it pulls chunk N+1, and nothing escapes the call.

The backend is the fault-injecting one registered through the public
registry, over the reference model (which declares no ``parallel_calls``:
its chunks are written two at a time) or over SQLite (which declares 2:
one at a time). Its ``hold`` keeps chunk writes in flight for as long as a
test needs, so what is asserted is an order of events, not a timing.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import cast

import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable, FallthroughError, InvalidInput, NotFound
from fallthrough.hookspecs import hookimpl
from fallthrough.inflight import SHORT_FIRST_WRITE, STREAM_WRITES_IN_FLIGHT, WritesInFlight
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.testing.model import ReferenceBackend
from fallthrough.validation import STREAM_CHUNK
from tests.core.helpers import eventually, gate

CHUNKS = 5
HOOK = "fallthrough_add_records"


@pytest.fixture
def store(registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    with fallthrough.connect("flaky://", registry=registry) as store:
        store.health(ping=True)
        yield store


def _keys(
    count: int,
    *,
    replace: dict[int, str] | None = None,
    hold: FaultInjectingBackend | None = None,
    reached: tuple[int, threading.Event] | None = None,
) -> Iterator[str]:
    """``count`` keys; with ``hold``, chunk writes wait in its gate from the second chunk on (an add's first
    write, in the caller's thread, is through; the rest of its first chunk may be held or not).

    With ``reached`` (an index and an event), the event is set as the key at that index is handed over.
    """
    for index in range(count):
        if hold is not None and index == STREAM_CHUNK:
            hold.hold(HOOK)
        if reached is not None and index == reached[0]:
            reached[1].set()
        yield (replace or {}).get(index, f"k{index:06d}")


def _release_after(flaky: FaultInjectingBackend, event: threading.Event) -> None:
    """Release the gate once the call has met what ``event`` marks, and had ample time to act on it.

    The event is set as the chunk holding the error is handed over; the call then checks that chunk,
    microseconds of work: the margin below is a thousand times that.
    """
    try:
        assert event.wait(30), "the call never reached the key it must fail on"
        time.sleep(0.1)
    finally:
        flaky.release()


class _Call:
    """A Store call on a thread of its own, so that the test can hold its writes and watch."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.answer: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,))
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            self.answer = call()
        except BaseException as error:  # the test reads it
            self.error = error

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        """Wait for the call, then for any chunk write still running, which a correct call never leaves behind.

        Waiting for stray writes too lets a test see what they would leave in the store.
        """
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the call did not end"
        eventually(lambda: not _stream_threads())


def _stream_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("fallthrough-stream")]


def test_a_store_of_backends_without_a_parallel_calls_hint_writes_two_chunks_at_once(
    store: fallthrough.Store,
) -> None:
    assert store.chunk_writes_in_flight == STREAM_WRITES_IN_FLIGHT == 2
    flaky = gate(store, "flaky")
    flaky.hold(HOOK)
    call = _Call(lambda: store.create_batch(_keys(CHUNKS * STREAM_CHUNK)))
    try:
        assert flaky.wait_held(2), "the rest of the first chunk and the second were not in flight together"
        assert not flaky.wait_held(3, timeout=0.3), "a third chunk's write started while two were in flight"
    finally:
        flaky.release()
    call.join()
    assert call.error is None
    batch = cast(fallthrough.Batch, call.answer)
    assert batch.total == CHUNKS * STREAM_CHUNK
    seqs = [store.get_record(batch.id, f"k{index:06d}").seq for index in range(0, CHUNKS * STREAM_CHUNK, 4999)]
    assert seqs == sorted(seqs), "records out of input order across chunks written at once"
    assert _stream_threads() == []


def test_a_backend_that_declares_parallel_calls_gets_its_chunks_one_at_a_time(
    registry: fallthrough.Registry,
) -> None:
    with fallthrough.connect("flaky://?inner=sqlite://", registry=registry) as store:
        store.health(ping=True)
        assert store.chunk_writes_in_flight == 0
        flaky = gate(store, "flaky")
        flaky.hold(HOOK)
        call = _Call(lambda: store.create_batch(_keys(3 * STREAM_CHUNK)))
        try:
            assert flaky.wait_held(1)
            assert not flaky.wait_held(2, timeout=0.3), "a second chunk's write started beside the first"
        finally:
            flaky.release()
        call.join()
        assert call.error is None


def test_one_backend_with_a_hint_among_several_makes_the_chunks_go_one_at_a_time(
    registry: fallthrough.Registry,
) -> None:
    with fallthrough.connect(first="flaky://", second="sqlite://", registry=registry) as store:
        assert store.chunk_writes_in_flight == STREAM_WRITES_IN_FLIGHT  # nothing opened yet: nothing declared
        store.health(ping=True)
        assert store.chunk_writes_in_flight == 0


def _create_with_two_writes_held(store: fallthrough.Store) -> tuple[FaultInjectingBackend, uuid.UUID, _Call]:
    """A streamed create of ``CHUNKS`` chunks under way, the rest of its first chunk and its second held."""
    flaky = gate(store, "flaky")
    flaky.hold(HOOK)
    batch_id = uuid.uuid4()
    call = _Call(lambda: store.create_batch(_keys(CHUNKS * STREAM_CHUNK), batch_id=batch_id))
    if not flaky.wait_held(2):
        flaky.release()
        pytest.fail("two chunk writes were never in flight together")
    return flaky, batch_id, call


def test_a_chunk_write_that_fails_is_raised_and_no_write_outlives_the_call(store: fallthrough.Store) -> None:
    flaky, batch_id, call = _create_with_two_writes_held(store)
    try:
        flaky.outage = True  # both chunks in flight fail as they leave the gate
    finally:
        flaky.release()
    call.join()
    assert isinstance(call.error, FallthroughError) and not isinstance(call.error, InvalidInput)
    assert _stream_threads() == []
    calls = flaky.calls[HOOK]
    flaky.outage = False
    time.sleep(0.2)
    assert flaky.calls[HOOK] == calls, "a chunk write started after the call had raised"
    # The stores failed: what was written before the failed chunk is valid and stays (the first chunk).
    assert [record.key for record in store.records(batch_id)] == list(_keys(SHORT_FIRST_WRITE))


def test_invalid_input_while_chunks_are_in_flight_takes_back_only_after_they_land(store: fallthrough.Store) -> None:
    """An add: its take-back deletes what it wrote by seq, so a write landing after it would stay behind."""
    batch = store.create_batch(["before"])
    flaky = gate(store, "flaky")
    bad_at = 2 * STREAM_CHUNK + 5  # in the third chunk: the second is held when it is checked
    handed_over = threading.Event()
    keys = _keys(CHUNKS * STREAM_CHUNK, replace={bad_at: ""}, hold=flaky, reached=(3 * STREAM_CHUNK - 1, handed_over))
    call = _Call(lambda: store.add_records(batch.id, keys))
    assert flaky.wait_held(1)
    _release_after(flaky, handed_over)
    call.join()
    assert isinstance(call.error, InvalidInput) and f"keys[{bad_at}]" in str(call.error)
    assert [record.key for record in store.records(batch.id)] == ["before"]
    assert _stream_threads() == []


def test_an_iterable_that_raises_while_chunks_are_in_flight_leaves_nothing_behind(store: fallthrough.Store) -> None:
    batch = store.create_batch(["before"])
    flaky = gate(store, "flaky")

    class Boom(Exception):
        pass

    raised = threading.Event()

    def failing() -> Iterator[str]:
        yield from _keys(2 * STREAM_CHUNK + 5, hold=flaky)
        raised.set()
        raise Boom("the source broke")

    call = _Call(lambda: store.add_records(batch.id, failing()))
    assert flaky.wait_held(1)
    _release_after(flaky, raised)
    call.join()
    assert isinstance(call.error, Boom)
    assert [record.key for record in store.records(batch.id)] == ["before"]


def test_a_repeat_of_a_key_whose_chunk_is_still_in_flight_is_refused(store: fallthrough.Store) -> None:
    """The repeat check reads what earlier chunks wrote: it waits for the chunk writes in flight first."""
    flaky = gate(store, "flaky")
    flaky.hold(HOOK)
    batch_id = uuid.uuid4()
    # The third chunk opens with the first key of the second, whose write is held.
    handed_over = threading.Event()
    repeat = {2 * STREAM_CHUNK: f"k{STREAM_CHUNK:06d}"}
    keys = _keys(3 * STREAM_CHUNK, replace=repeat, reached=(3 * STREAM_CHUNK - 1, handed_over))
    call = _Call(lambda: store.create_batch(keys, batch_id=batch_id))
    assert flaky.wait_held(1)
    _release_after(flaky, handed_over)
    call.join()
    assert isinstance(call.error, InvalidInput) and "more than once" in str(call.error)
    assert store.get_batch(batch_id) is None


def test_a_chunk_that_failed_before_the_input_turned_bad_is_the_error_raised(store: fallthrough.Store) -> None:
    """Written in turn, the failed chunk would have been raised before the bad key was read: so it is here."""
    flaky = gate(store, "flaky")
    flaky.hold(HOOK)
    batch_id = uuid.uuid4()
    bad_at = 2 * STREAM_CHUNK + 5  # the rest of the first chunk and the second are held
    handed_over = threading.Event()
    keys = _keys(CHUNKS * STREAM_CHUNK, replace={bad_at: ""}, reached=(3 * STREAM_CHUNK - 1, handed_over))
    call = _Call(lambda: store.create_batch(keys, batch_id=batch_id))
    assert flaky.wait_held(2)
    flaky.outage = True  # the second and third chunks fail as they leave the gate
    _release_after(flaky, handed_over)
    call.join()
    flaky.outage = False
    assert isinstance(call.error, BackendUnavailable | FallthroughError) and not isinstance(call.error, InvalidInput)
    assert isinstance(call.error.__cause__, InvalidInput), "the bad input is lost, not chained"
    # Not taken back as bad input: the stores failed, and the first chunk, written, stays.
    assert [record.key for record in store.records(batch_id)] == list(_keys(SHORT_FIRST_WRITE))


class SecondAddFailsLast(ReferenceBackend):
    """The reference model, but its second ``add_records`` fails, and only once the third has been written.

    A streamed create's first write is ``create_batch`` of 1,000 keys: the adds are the rest of its first
    chunk, chunk 2 (which fails) and chunk 3.
    """

    def __init__(self, url: object = None) -> None:
        super().__init__(url)
        self._adds = 0
        self._adds_lock = threading.Lock()
        self._third_written = threading.Event()

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        with self._adds_lock:
            self._adds += 1
            call = self._adds
        if call == 2:
            assert self._third_written.wait(10), "the third chunk was never written beside the second"
            raise BackendUnavailable("the second chunk's write failed")
        added = super().fallthrough_add_records(batch_id, keys, first_seq, created_at)
        if call == 3:
            self._third_written.set()
        return added


def test_a_chunk_written_beside_one_that_failed_and_after_it_is_taken_back(registry: fallthrough.Registry) -> None:
    """What stays is a prefix of the input, so that calling again with the same keys completes it in order."""
    registry.register("gappy", f"{__name__}:SecondAddFailsLast")
    # One failure does not open the breaker here, so that the take-back reaches the one store at once.
    breaker = fallthrough.BreakerPolicy(failure_threshold=2)
    with fallthrough.connect("gappy://", registry=registry, breaker=breaker) as store:
        batch_id = uuid.uuid4()
        with pytest.raises(FallthroughError, match="second chunk"):
            store.create_batch(_keys(CHUNKS * STREAM_CHUNK), batch_id=batch_id)
        # The create writes 1,000 keys; the adds are the rest of chunk 1, chunk 2 (failing once 3 is written), 3.
        assert [record.key for record in store.records(batch_id)] == list(_keys(STREAM_CHUNK))
        batch = store.create_batch(_keys(CHUNKS * STREAM_CHUNK), batch_id=batch_id)
        assert batch.total == CHUNKS * STREAM_CHUNK
        assert [record.key for record in store.records(batch_id)] == list(_keys(CHUNKS * STREAM_CHUNK))


def test_a_streamed_create_still_works_once_interpreter_shutdown_has_begun(tmp_path: object) -> None:
    """No thread can start then: the chunks are written in the calling thread."""
    script = """
import threading, time
import fallthrough

registry = fallthrough.Registry()
registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
store = fallthrough.connect("flaky://", registry=registry)
store.health(ping=True)

def late():
    time.sleep(0.3)  # the main thread has returned: shutdown has begun, and waits for this thread
    batch = store.create_batch(f"k{index}" for index in range(3 * 10_000))
    print(batch.total, store.get_batch(batch.id).total, flush=True)

threading.Thread(target=late).start()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30000", "30000"]


def test_a_thread_that_will_not_start_is_an_error_and_no_write_is_made_twice(
    store: fallthrough.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only interpreter shutdown makes the writes run in the calling thread: any other refusal comes after
    the write is queued, where a worker still runs it."""
    starting = threading.Thread.start
    refused = threading.Event()

    def start(thread: threading.Thread) -> None:
        if thread.name.endswith("_1"):  # the pool's second thread
            refused.set()
            raise RuntimeError("can't start new thread")
        starting(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    flaky = gate(store, "flaky")
    flaky.hold(HOOK)  # the rest of the first chunk keeps the first thread busy: the second chunk needs another
    call = _Call(lambda: store.create_batch(_keys(CHUNKS * STREAM_CHUNK)))
    _release_after(flaky, refused)
    call.join()
    assert isinstance(call.error, RuntimeError) and "can't start new thread" in str(call.error)
    # The rest of the first chunk, and the second chunk, queued before the refusal: each written once.
    assert flaky.calls[HOOK] == 2


def test_an_exception_just_after_a_write_is_started_takes_that_write_back_too(
    store: fallthrough.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handler may raise between any two bytecodes: here, as soon as the second chunk's write started."""

    class Alarm(Exception):
        pass

    submit = WritesInFlight.submit
    started: list[object] = []

    def submit_then_alarm(writes: WritesInFlight[object], write: Callable[[], int], tag: object) -> None:
        submit(writes, write, tag)
        started.append(tag)
        if len(started) == 2:
            raise Alarm("the handler of a signal raised")

    monkeypatch.setattr(WritesInFlight, "submit", submit_then_alarm)
    batch = store.create_batch(["before"])
    with pytest.raises(Alarm):
        store.add_records(batch.id, _keys(3 * STREAM_CHUNK))
    eventually(lambda: not _stream_threads())
    assert [record.key for record in store.records(batch.id)] == ["before"]


def test_a_batch_deleted_while_its_create_streams_ends_the_create_with_not_found_and_no_error_logged(
    store: fallthrough.Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The chunks after the refused one have nothing to take back: the batch went with them.

    The delete waits for the two chunk writes in flight (a removal takes the
    batch's turn alone, see fallthrough.turns), and the chunks after them
    wait for the delete.
    """
    flaky, batch_id, call = _create_with_two_writes_held(store)
    try:
        deleting = _Call(lambda: store.delete_batch(batch_id))
        time.sleep(0.1)
        assert deleting.running(), "the delete did not wait for the chunk writes in flight"
    finally:
        flaky.release()
    deleting.join()
    call.join()
    assert deleting.error is None and deleting.answer is True
    assert isinstance(call.error, NotFound)
    assert store.get_batch(batch_id) is None
    assert not [entry for entry in caplog.records if entry.levelno >= logging.ERROR], caplog.text


# -- WritesInFlight itself -------------------------------------------------------------------------


def test_writes_in_flight_sums_the_answers_and_raises_the_first_failure_in_submission_order() -> None:
    started = threading.Event()
    finish_first = threading.Event()

    def slow_failure() -> int:
        started.set()
        finish_first.wait(10)
        raise BackendUnavailable("first")

    def quick_failure() -> int:
        raise BackendUnavailable("second")

    writes: WritesInFlight[str] = WritesInFlight(2)
    try:
        writes.submit(slow_failure, "slow")
        assert started.wait(10)
        writes.submit(quick_failure, "quick")  # fails first in time, second in order
        finish_first.set()
        with pytest.raises(BackendUnavailable, match="first"):
            writes.wait()
        assert writes.failed == "slow"
    finally:
        assert writes.close() is None  # raised already: not told again, nor the one after it

    counted: WritesInFlight[int] = WritesInFlight(2)
    try:
        for answer in (1, 2, 3, 4):
            counted.submit(lambda answer=answer: answer, answer)
        assert counted.wait() == 10
        assert counted.failed is None
    finally:
        assert counted.close() is None


def test_writes_in_flight_tells_at_close_of_a_failure_not_raised_yet() -> None:
    writes: WritesInFlight[str] = WritesInFlight(2)
    writes.submit(lambda: 1, "fine")

    def failure() -> int:
        raise BackendUnavailable("in flight")

    writes.submit(failure, "broken")
    unreported = writes.close()
    assert isinstance(unreported, BackendUnavailable) and writes.failed == "broken"


def test_writes_in_flight_with_no_threads_runs_each_write_when_submitted() -> None:
    ran: list[str] = []
    writes: WritesInFlight[None] = WritesInFlight(0)
    writes.submit(lambda: ran.append(threading.current_thread().name) or 1, None)
    assert ran == [threading.current_thread().name]
    assert writes.wait() == 1
    assert writes.close() is None
    with pytest.raises(ValueError, match="0 or more"):
        WritesInFlight(-1)
