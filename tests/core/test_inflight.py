"""Chunk writes in flight: a streamed create writes chunk N while it pulls chunk N+1, and nothing escapes the call.

The backend is the fault-injecting one registered through the public
registry, over the reference model (which declares no ``parallel_calls``:
its chunks are written two at a time) or over SQLite (which declares 2:
one at a time). Its ``hold`` keeps chunk writes in flight for as long as a
test needs, so what is asserted is an order of events, not a timing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import cast

import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable, FallthroughError, InvalidInput
from fallthrough.inflight import STREAM_WRITES_IN_FLIGHT, WritesInFlight
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.validation import STREAM_CHUNK

CHUNKS = 5
HOOK = "fallthrough_add_records"


@pytest.fixture
def store(registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    with fallthrough.connect("flaky://", registry=registry) as store:
        store.health(ping=True)
        yield store


def _gate(store: fallthrough.Store) -> FaultInjectingBackend:
    return cast(FaultInjectingBackend, store.plugin_manager.get_plugin("flaky"))


def _keys(
    count: int, *, replace: dict[int, str] | None = None, hold: FaultInjectingBackend | None = None
) -> Iterator[str]:
    """``count`` keys; with ``hold``, chunk writes wait in its gate from the second chunk on."""
    for index in range(count):
        if hold is not None and index == STREAM_CHUNK:  # the first chunk is written: it ran in the caller's thread
            hold.hold(HOOK)
        yield (replace or {}).get(index, f"k{index:06d}")


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

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the call did not end"


def _stream_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("fallthrough-stream")]


def test_a_store_of_backends_without_a_parallel_calls_hint_writes_two_chunks_at_once(
    store: fallthrough.Store,
) -> None:
    assert store.chunk_writes_in_flight == STREAM_WRITES_IN_FLIGHT == 2
    gate = _gate(store)
    gate.hold(HOOK)
    call = _Call(lambda: store.create_batch(_keys(CHUNKS * STREAM_CHUNK)))
    try:
        assert gate.wait_held(2), "the second chunk's write did not start while the first was in flight"
        assert not gate.wait_held(3, timeout=0.3), "a third chunk's write started while two were in flight"
    finally:
        gate.release()
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
        gate = _gate(store)
        gate.hold(HOOK)
        call = _Call(lambda: store.create_batch(_keys(3 * STREAM_CHUNK)))
        try:
            assert gate.wait_held(1)
            assert not gate.wait_held(2, timeout=0.3), "a second chunk's write started beside the first"
        finally:
            gate.release()
        call.join()
        assert call.error is None


def test_one_backend_with_a_hint_among_several_makes_the_chunks_go_one_at_a_time(
    registry: fallthrough.Registry,
) -> None:
    with fallthrough.connect(first="flaky://", second="sqlite://", registry=registry) as store:
        assert store.chunk_writes_in_flight == STREAM_WRITES_IN_FLIGHT  # nothing opened yet: nothing declared
        store.health(ping=True)
        assert store.chunk_writes_in_flight == 0


def test_a_chunk_write_that_fails_is_raised_and_no_write_outlives_the_call(store: fallthrough.Store) -> None:
    gate = _gate(store)
    gate.hold(HOOK)
    batch_id = uuid.uuid4()
    call = _Call(lambda: store.create_batch(_keys(CHUNKS * STREAM_CHUNK), batch_id=batch_id))
    try:
        assert gate.wait_held(2)
        gate.outage = True  # both chunks in flight fail as they leave the gate
    finally:
        gate.release()
    call.join()
    assert isinstance(call.error, FallthroughError) and not isinstance(call.error, InvalidInput)
    assert _stream_threads() == []
    calls = gate.calls[HOOK]
    gate.outage = False
    time.sleep(0.2)
    assert gate.calls[HOOK] == calls, "a chunk write started after the call had raised"
    # The stores failed: what was written is valid and stays (docs/semantics.md, "Streaming creates").
    assert store.get_batch(batch_id) is not None


def test_invalid_input_while_chunks_are_in_flight_takes_back_only_after_they_land(store: fallthrough.Store) -> None:
    """An add: its take-back deletes what it wrote by seq, so a write landing after it would stay behind."""
    batch = store.create_batch(["before"])
    gate = _gate(store)
    bad_at = 3 * STREAM_CHUNK + 5  # in the fourth chunk: the second and third are held when it is pulled
    keys = _keys(CHUNKS * STREAM_CHUNK, replace={bad_at: ""}, hold=gate)
    call = _Call(lambda: store.add_records(batch.id, keys))
    try:
        assert gate.wait_held(2)
        time.sleep(0.2)  # the call pulls the fourth chunk and meets the bad key
    finally:
        gate.release()
    call.join()
    assert isinstance(call.error, InvalidInput) and f"keys[{bad_at}]" in str(call.error)
    assert [record.key for record in store.records(batch.id)] == ["before"]
    assert _stream_threads() == []


def test_an_iterable_that_raises_while_chunks_are_in_flight_leaves_nothing_behind(store: fallthrough.Store) -> None:
    batch = store.create_batch(["before"])
    gate = _gate(store)

    class Boom(Exception):
        pass

    def failing() -> Iterator[str]:
        yield from _keys(3 * STREAM_CHUNK + 5, hold=gate)
        raise Boom("the source broke")

    call = _Call(lambda: store.add_records(batch.id, failing()))
    try:
        assert gate.wait_held(2)
        time.sleep(0.2)
    finally:
        gate.release()
    call.join()
    assert isinstance(call.error, Boom)
    assert [record.key for record in store.records(batch.id)] == ["before"]


def test_a_repeat_of_a_key_whose_chunk_is_still_in_flight_is_refused(store: fallthrough.Store) -> None:
    """The repeat check reads what earlier chunks wrote: it waits for the chunk writes in flight first."""
    gate = _gate(store)
    gate.hold(HOOK)
    batch_id = uuid.uuid4()
    # The third chunk opens with the first key of the second, whose write is held.
    keys = _keys(3 * STREAM_CHUNK, replace={2 * STREAM_CHUNK: f"k{STREAM_CHUNK:06d}"})
    call = _Call(lambda: store.create_batch(keys, batch_id=batch_id))
    try:
        assert gate.wait_held(1)
        time.sleep(0.2)  # the call pulls the third chunk and finds the suspect
    finally:
        gate.release()
    call.join()
    assert isinstance(call.error, InvalidInput) and "more than once" in str(call.error)
    assert store.get_batch(batch_id) is None


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

    writes = WritesInFlight(2)
    try:
        writes.submit(slow_failure)
        assert started.wait(10)
        writes.submit(quick_failure)  # fails first in time, second in order
        finish_first.set()
        with pytest.raises(BackendUnavailable, match="first"):
            writes.wait()
    finally:
        writes.close()

    counted = WritesInFlight(2)
    try:
        for answer in (1, 2, 3, 4):
            counted.submit(lambda answer=answer: answer)
        assert counted.wait() == 10
    finally:
        counted.close()


def test_writes_in_flight_with_no_threads_runs_each_write_when_submitted() -> None:
    ran: list[str] = []
    writes = WritesInFlight(0)
    writes.submit(lambda: ran.append(threading.current_thread().name) or 1)
    assert ran == [threading.current_thread().name]
    assert writes.wait() == 1
    writes.close()
    with pytest.raises(ValueError, match="0 or more"):
        WritesInFlight(-1)
