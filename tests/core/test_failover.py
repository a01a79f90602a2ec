"""Lossless failover: the journal of missed writes, reads from stores that are behind, write concern, breaker details.

Backends are real (SQLite in memory or on file, the reference model) behind
the fault-injecting gate from the public registry; nothing in the router is
mocked.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fallthrough
from fallthrough import hint_codec, hookimpl
from fallthrough.errors import AllBackendsFailed, BackendBusy, InvalidInput, NotFound
from fallthrough.journal import JournalError, JournalPolicy, MemoryJournal, SqliteJournal, open_journal
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.types import Document, RecordUpdate, Status

from .conftest import FakeClock
from .helpers import gate, health, sqlite_file


@pytest.fixture
def quick_breaker() -> fallthrough.BreakerPolicy:
    return fallthrough.BreakerPolicy(cooldown=0.01)


@pytest.fixture
def trio(registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy) -> Iterator[fallthrough.Store]:
    store = fallthrough.connect(
        first="flaky://?inner=sqlite://",
        second="flaky://?inner=sqlite://",
        third="flaky://",
        registry=registry,
        breaker=quick_breaker,
    )
    yield store
    store.close()


# -- the outage of the original audit, in small ------------------------------------


def test_a_store_that_comes_back_serves_nothing_older_than_what_was_acknowledged(trio: fallthrough.Store) -> None:
    batch = trio.create_batch([f"k{i}" for i in range(20)])
    first = gate(trio, "first")
    first.outage = True
    for i in range(20):
        trio.update(batch.id, f"k{i}", "completed", result=i)
    during = trio.create_batch(["new"], metadata={"made": "during the outage"})
    first.outage = False

    # Whatever the replayer has done by now, no read may be older than the acknowledged writes.
    assert trio.progress(batch.id).completed == 20
    assert trio.get_batch(during.id) == during
    assert trio.drain(timeout=10)
    assert health(trio, "first").serves_reads
    # Read alone, the store that was down holds every acknowledged write.
    assert first.inner.fallthrough_progress(batch.id).completed == 20
    assert first.inner.fallthrough_get_batch(during.id) == during
    record = first.inner.fallthrough_get_record(batch.id, "k7")
    assert record is not None and record.result == 7


def test_a_backend_with_hints_serves_no_reads_until_replayed(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, breaker=breaker)
    batch = store.create_batch(["a"])
    primary = gate(store, "primary")
    primary.outage = True
    store.update(batch.id, "a", "completed")
    primary.outage = False  # reachable again, but its breaker is open for 30 s of the fake clock

    entry = health(store, "primary")
    assert (entry.pending_hints, entry.serves_reads, entry.state) == (1, False, "open")
    assert entry.lag is not None and entry.lag >= 0
    reads_before = primary.calls["fallthrough_get_record"]
    record = store.get_record(batch.id, "a")
    assert record is not None and record.status is Status.COMPLETED
    assert primary.calls["fallthrough_get_record"] == reads_before, "a backend that is behind served a read"

    clock.advance(30.0)
    assert store.drain(timeout=10)
    assert health(store, "primary").serves_reads
    store.get_record(batch.id, "a")
    assert primary.calls["fallthrough_get_record"] == reads_before + 1
    store.close()


def test_when_only_a_store_that_is_behind_remains_it_catches_up_before_it_answers(trio: fallthrough.Store) -> None:
    batch = trio.create_batch(["a", "b"])
    first, second, third = gate(trio, "first"), gate(trio, "second"), gate(trio, "third")
    second.outage = third.outage = True
    trio.update(batch.id, "a", "failed", error="x")
    trio.retry(batch.id)
    second.outage = False
    first.outage = True
    record = trio.get_record(batch.id, "a")  # only "second" can answer; it must replay first
    assert record is not None and (record.status, record.attempt) == (Status.PENDING, 1)
    assert health(trio, "second").pending_hints == 0


def test_replay_applies_a_batch_creation_before_the_updates_that_name_it(trio: fallthrough.Store) -> None:
    first = gate(trio, "first")
    first.outage = True
    batch = trio.create_batch(["a"])
    trio.add_records(batch.id, ["b"])
    trio.update_many([RecordUpdate(batch.id, "a", "completed"), RecordUpdate(batch.id, "b", "processing")])
    trio.delete_batch(batch.id)
    again = trio.create_batch(["c"], batch_id=batch.id)
    first.outage = False
    assert trio.drain(timeout=10)
    assert first.inner.fallthrough_get_batch(batch.id) == again
    assert [r.key for r in first.inner.fallthrough_list_records(batch.id, None, None, 10)] == ["c"]
    assert not health(trio, "first").needs_repair


def test_every_missed_write_is_still_announced_to_observers(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    seen: list[tuple[str, str]] = []

    class Observer:
        @hookimpl
        def fallthrough_missed_write(self, backend_name: str, operation: str) -> None:
            seen.append((backend_name, operation))

    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=quick_breaker, plugins=[Observer()]
    )
    batch = store.create_batch(["k"])
    gate(store, "b").outage = True
    store.update(batch.id, "k", "processing")
    store.update(batch.id, "k", "completed")
    assert seen == [("b", "fallthrough_update_records")] * 2
    assert health(store, "b").missed_writes == 2
    store.close()


# -- the durable journal ---------------------------------------------------------------


def test_hints_in_a_durable_journal_survive_a_restart_and_replay_at_connect(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    urls = {"first": sqlite_file(tmp_path, "first"), "second": sqlite_file(tmp_path, "second")}
    journal = f"sqlite:///{tmp_path}/hints.db"
    store = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    batch = store.create_batch(["a", "b"])
    gate(store, "first").outage = True
    store.update(batch.id, "a", "completed", result={"rows": 3})
    store.update_many([RecordUpdate(batch.id, "b", "failed", error="timeout")])
    store.upsert_documents("materials", [Document("m1", "Цемент", vector=[1.0, 0.0], metadata={"price": 420})])
    store.close(timeout=0.1)  # "first" is still down: the hints stay in the file

    restarted = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    assert health(restarted, "first").pending_hints == 3
    assert not health(restarted, "first").serves_reads
    assert restarted.drain(timeout=10)
    first = gate(restarted, "first").inner
    first.fallthrough_open()
    record = first.fallthrough_get_record(batch.id, "a")
    assert record is not None and record.result == {"rows": 3}
    failed = first.fallthrough_get_record(batch.id, "b")
    assert failed is not None and failed.error == "timeout"
    (document,) = first.fallthrough_get_documents("materials", ["m1"])
    assert document == Document("m1", "Цемент", vector=[1.0, 0.0], metadata={"price": 420})
    restarted.close()


def test_a_page_replayed_again_after_a_restart_marks_nothing_a_later_delete_explains(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy, tmp_path: Path
) -> None:
    """Hints leave the journal a page at a time: a crash after applying a page, before removing it, replays it again.

    Here "first" had applied all three hints when the process died: the
    update's batch has since been deleted and created again without that
    record, so the update replayed again is refused. The delete after it
    in the journal explains the refusal: the stores agree, and "first"
    must serve again once caught up, not wait for a repair.
    """
    urls = {"first": sqlite_file(tmp_path, "first"), "second": sqlite_file(tmp_path, "second")}
    journal = f"sqlite:///{tmp_path}/hints.db"
    store = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    batch = store.create_batch(["gone"])
    gate(store, "first").outage = True
    store.update(batch.id, "gone", "completed")
    store.delete_batch(batch.id)
    store.create_batch(["kept"], batch_id=batch.id)
    store.close(timeout=0.1)
    # What "first" held when the process died: everything the hints say, as "second" holds it.
    with sqlite3.connect(tmp_path / "second.db") as source, sqlite3.connect(tmp_path / "first.db") as target:
        source.backup(target)

    restarted = fallthrough.connect(**urls, registry=registry, breaker=quick_breaker, journal=journal)
    assert health(restarted, "first").pending_hints == 3
    assert restarted.drain(timeout=10)
    assert not health(restarted, "first").needs_repair
    assert health(restarted, "first").serves_reads
    first = gate(restarted, "first").inner
    assert [record.key for record in first.fallthrough_list_records(batch.id, None, None, 10)] == ["kept"]
    restarted.close()


def test_a_durable_journal_is_held_by_one_store_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "hints.db"
    held = SqliteJournal(path)
    with pytest.raises(JournalError, match=r"hints\.db"):
        SqliteJournal(path)
    held.close()
    SqliteJournal(path).close()


@pytest.mark.parametrize(
    "spec",
    [
        "postgresql://u:secret@h/db",
        "sqlite://",
        "memory:///x",
        42,
        # A host, credentials or options on a journal were ignored: the file was made, the rest dropped.
        "sqlite://u:secret@host/hints.db",
        "sqlite:///hints.db?timeout=1",
        "memory://u:secret@host",
    ],
)
def test_a_journal_spec_other_than_memory_or_a_sqlite_file_is_invalid(spec: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        open_journal(spec)  # type: ignore[arg-type]
    assert "secret" not in str(raised.value)


# Text every store holds: no NUL, no lone surrogates (validation refuses both).
STORABLE = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")

arguments_of_every_write = st.one_of(
    st.builds(
        lambda keys, seq, tag: (
            "fallthrough_create_batch",
            {
                "batch_id": uuid.uuid4(),
                "keys": tuple(keys),
                "first_seq": seq,
                "metadata": {"tag": tag, "nested": {"list": [1, 2.5, None]}},
                "created_at": fallthrough.types.from_micros(seq),
            },
        ),
        st.lists(st.text(STORABLE, min_size=1, max_size=5), unique=True, max_size=4),
        st.integers(1, 2**53),
        st.text(STORABLE, max_size=5),
    ),
    st.builds(
        lambda status, result, error, attempt: (
            "fallthrough_update_records",
            {
                "updates": (RecordUpdate(uuid.uuid4(), "k", status, result=result, error=error, attempt=attempt),),
                "updated_at": fallthrough.types.from_micros(1_800_000_000_000_000),
            },
        ),
        st.sampled_from(list(Status)),
        st.none() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
        st.none() | st.text(STORABLE, max_size=5),
        st.none() | st.integers(0, 5),
    ),
    st.builds(
        lambda vector, text, version: (
            "fallthrough_upsert_documents",
            {
                "collection": "c",
                "documents": (Document("d", text, vector=vector, metadata={"ф": [True, "x"]}),),
                "version": version,
            },
        ),
        st.none() | st.lists(st.floats(0.1, 10.0), min_size=1, max_size=3),
        st.text(STORABLE, max_size=10),
        st.integers(0, 2**62),
    ),
    st.builds(
        lambda ids, version: (
            "fallthrough_delete_documents",
            {"collection": "c", "ids": tuple(ids), "version": version},
        ),
        st.lists(st.text(STORABLE, min_size=1, max_size=4), unique=True, min_size=1, max_size=3),
        st.integers(0, 2**62),
    ),
    st.just(("fallthrough_delete_batch", {"batch_id": uuid.UUID(int=7)})),
)


@settings(max_examples=50, deadline=None)
@given(arguments_of_every_write)
def test_a_durable_journal_gives_back_exactly_the_arguments_it_was_given(call: tuple[str, dict[str, Any]]) -> None:
    operation, arguments = call
    assert hint_codec.decode(operation, hint_codec.encode(operation, arguments)) == arguments


# -- the journal's bound -------------------------------------------------------------


def test_past_its_bound_a_journal_drops_the_hints_and_marks_the_backend_for_repair(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="flaky://",
        b="flaky://",
        registry=registry,
        breaker=quick_breaker,
        journal_policy=JournalPolicy(max_hints=3),
    )
    batch = store.create_batch(["k"])
    gate(store, "b").outage = True
    for status in ("processing", "completed", "failed", "completed"):
        store.update(batch.id, "k", status)
    entry = health(store, "b")
    assert entry.needs_repair and not entry.serves_reads
    assert entry.pending_hints <= 3
    gate(store, "b").outage = False
    store.drain(timeout=5)
    assert not health(store, "b").serves_reads, "a backend whose hints were dropped must wait for a repair"
    store.close()


def test_hints_older_than_the_age_bound_are_dropped_for_a_repair() -> None:
    now = [1000.0]
    journal = MemoryJournal(JournalPolicy(max_age=60.0, clock=lambda: now[0]))
    deleted = uuid.uuid4()
    journal.record("b", "fallthrough_add_records", {"batch_id": uuid.uuid4()}, "records")
    journal.record("b", "fallthrough_delete_batch", {"batch_id": deleted}, "records")
    now[0] += 61.0
    # Batch deletions stay (a repair could not infer them); everything else is dropped for the repair.
    assert [hint.arguments["batch_id"] for _, hint in journal.peek("b", 10)] == [deleted]
    assert journal.needs_repair("b") and journal.pending("b") == 1


def test_a_journal_policy_refuses_bounds_that_are_not_positive() -> None:
    with pytest.raises(InvalidInput, match="max_hints"):
        JournalPolicy(max_hints=0)
    with pytest.raises(InvalidInput, match="max_age"):
        JournalPolicy(max_age=-1.0)


# -- write concern --------------------------------------------------------------------------


def test_write_concern_first_returns_after_one_store_and_the_replayer_sends_the_rest(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=quick_breaker, write_concern="first"
    )
    batch = store.create_batch(["k"])
    b = gate(store, "b")
    b.outage = True  # the call returns without waiting for b, or even trying it
    store.update(batch.id, "k", "completed", result=1)
    assert b.calls["fallthrough_update_records"] == 0
    assert store.get_record(batch.id, "k").status is Status.COMPLETED  # type: ignore[union-attr]
    b.outage = False
    assert store.drain(timeout=10)
    stored = b.inner.fallthrough_get_record(batch.id, "k")
    assert stored is not None and stored.result == 1
    assert health(store, "b").missed_writes == 0, "a deferred write is not a missed one"
    store.close()


def test_write_concern_first_keeps_the_lag_of_a_reachable_store_bounded(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=quick_breaker, write_concern="first", max_lag=5
    )
    batch = store.create_batch([f"k{i}" for i in range(50)])
    for i in range(50):
        store.update(batch.id, f"k{i}", "completed")
        assert health(store, "b").pending_hints <= 6
    store.close()


def test_write_concern_can_be_chosen_per_call(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=quick_breaker)
    batch = store.create_batch(["k"])
    b = gate(store, "b")
    b.outage = True  # "all" would record a miss; "first" does not even try b
    store.update(batch.id, "k", "completed", write_concern="first")
    assert b.calls["fallthrough_update_records"] == 0
    assert health(store, "b").missed_writes == 0
    with pytest.raises(InvalidInput, match="write_concern"):
        store.update(batch.id, "k", "failed", write_concern="most")
    store.close()


def test_close_replays_what_it_can_before_it_closes(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        a="flaky://", b="flaky://", registry=registry, breaker=quick_breaker, write_concern="first"
    )
    b = gate(store, "b")
    batch = store.create_batch(["k"])
    store.update(batch.id, "k", "completed")
    store.close(timeout=5)
    record = b.inner.fallthrough_get_record(batch.id, "k")
    assert record is not None and record.status is Status.COMPLETED


# -- breaker details -------------------------------------------------------------------------


def test_with_three_backends_a_read_falls_through_two_outages(trio: fallthrough.Store) -> None:
    batch = trio.create_batch(["a"])
    gate(trio, "first").outage = gate(trio, "second").outage = True
    assert trio.progress(batch.id).total == 1
    gate(trio, "third").outage = True
    with pytest.raises(AllBackendsFailed) as raised:
        trio.progress(batch.id)
    assert set(raised.value.causes) == {"first", "second", "third"}


def test_concurrent_callers_on_a_half_open_breaker_make_exactly_one_trial(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, breaker=breaker)
    batch = store.create_batch(["a"])
    primary = gate(store, "primary")
    primary.outage = True
    store.progress(batch.id)  # opens the breaker
    clock.advance(30.0)  # half-open: one trial allowed
    before = primary.calls["fallthrough_progress"]
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        store.progress(batch.id)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert primary.calls["fallthrough_progress"] == before + 1
    assert health(store, "primary").state == "open"
    store.close()


def test_a_domain_error_answering_a_trial_call_closes_the_breaker(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, breaker=breaker)
    primary = gate(store, "primary")
    primary.outage = True
    with pytest.raises(NotFound):
        store.progress(uuid.uuid4())  # falls through to secondary, which says NotFound
    primary.outage = False
    clock.advance(30.0)
    with pytest.raises(NotFound):
        store.progress(uuid.uuid4())  # the trial call on primary answers NotFound
    assert health(store, "primary").state == "closed"
    store.close()


def test_a_capability_skip_gives_back_the_trial_without_closing_the_breaker(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(textual="flaky://?text_only=1", full="flaky://", registry=registry, breaker=breaker)
    store.upsert_documents("c", [Document("d", "цемент", vector=[1.0, 0.0])])
    textual = gate(store, "textual")
    textual.outage = True
    store.search("c", text="цемент")  # opens textual's breaker, served by full
    clock.advance(30.0)
    textual.outage = True
    store.search("c", vector=[1.0, 0.0])  # textual cannot rank by vector: skipped, no call
    assert health(store, "textual").state == "half-open", "a skip must neither close nor reopen the breaker"
    assert textual.calls["fallthrough_search"] == 1


def test_when_every_backend_is_cooling_down_the_one_closest_to_its_trial_is_tried(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=breaker)
    batch = store.create_batch(["k"])
    a, b = gate(store, "a"), gate(store, "b")
    a.outage = b.outage = True
    with pytest.raises(AllBackendsFailed):
        store.progress(batch.id)  # a opens at t, b right after
    clock.advance(10.0)
    a.outage = False
    assert store.progress(batch.id).total == 1, "a call failed although a backend could serve it"
    assert health(store, "a").state == "closed" and health(store, "b").state == "open"
    store.close()


class BusyBackend(FaultInjectingBackend):
    """Answers progress with BackendBusy while ``busy``: a lock another process holds."""

    busy = False

    def _gate(self, hook: str) -> None:
        super()._gate(hook)
        if self.busy and hook == "fallthrough_progress":
            raise BackendBusy("database is locked")


def test_a_busy_store_falls_through_without_opening_its_breaker(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy
) -> None:
    registry.register("busy", f"{__name__}:BusyBackend")
    store = fallthrough.connect(primary="busy://", secondary="flaky://", registry=registry, breaker=breaker)
    batch = store.create_batch(["a"])
    primary = store.plugin_manager.get_plugin("primary")
    assert isinstance(primary, BusyBackend)
    primary.busy = True
    for _ in range(3):
        assert store.progress(batch.id).total == 1
    assert primary.calls["fallthrough_progress"] == 3, "a busy store must be tried again, not skipped"
    assert health(store, "primary").state == "closed"
    store.close()


def test_many_threads_writing_through_an_outage_lose_nothing(
    registry: fallthrough.Registry, quick_breaker: fallthrough.BreakerPolicy
) -> None:
    store = fallthrough.connect(
        first="flaky://?inner=sqlite://", second="flaky://?inner=sqlite://", registry=registry, breaker=quick_breaker
    )
    keys = [f"k{i}" for i in range(400)]
    batch = store.create_batch(keys)
    first = gate(store, "first")

    def work(part: int) -> None:
        for key in keys[part::4]:
            store.update(batch.id, key, "processing")
            store.update(batch.id, key, "completed", result=key)

    threads = [threading.Thread(target=work, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    first.outage = True
    time.sleep(0.1)
    first.outage = False
    for thread in threads:
        thread.join()
    assert store.progress(batch.id).completed == 400
    assert store.drain(timeout=20)
    for name in ("first", "second"):
        assert gate(store, name).inner.fallthrough_progress(batch.id).completed == 400, name
    store.close()
