"""The router's contract, shown with fault-injecting backends from the public registry."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest

import fallthrough
from fallthrough import hookimpl
from fallthrough.errors import (
    AllBackendsFailed,
    BackendUnavailable,
    InvalidInput,
    NotFound,
    PluginError,
    UnsupportedQuery,
)
from fallthrough.testing.faults import FaultInjectingBackend

from .conftest import FakeClock


def backend(store: fallthrough.Store, name: str) -> FaultInjectingBackend:
    plugin = store.plugin_manager.get_plugin(name)
    assert isinstance(plugin, FaultInjectingBackend)
    return plugin


def record_calls(plugin: FaultInjectingBackend) -> int:
    """Calls to record hooks, leaving out open and capabilities."""
    return sum(
        count for hook, count in plugin.calls.items() if hook not in ("fallthrough_open", "fallthrough_capabilities")
    )


# -- reads -------------------------------------------------------------------


def test_a_read_falls_through_to_the_next_backend_when_the_first_is_unavailable(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a", "b"])
    backend(pair, "primary").outage = True

    assert pair.get_batch(batch.id) == batch
    assert pair.progress(batch.id).total == 2
    primary = {entry.name: entry for entry in pair.health()}["primary"]
    assert primary.state == "open"
    assert primary.last_error is not None and "injected outage" in primary.last_error


def test_a_read_goes_to_the_first_backend_while_it_is_up(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    before = backend(pair, "secondary").calls["fallthrough_get_batch"]
    pair.get_batch(batch.id)
    assert backend(pair, "primary").calls["fallthrough_get_batch"] == 1
    assert backend(pair, "secondary").calls["fallthrough_get_batch"] == before


def test_records_iteration_carries_on_across_a_fall_through(pair: fallthrough.Store) -> None:
    keys = [f"k{i}" for i in range(10)]
    batch = pair.create_batch(keys)
    iterator = pair.records(batch.id, page_size=3)
    first = [next(iterator) for _ in range(3)]
    backend(pair, "primary").outage = True
    rest = list(iterator)
    assert [record.key for record in first + rest] == keys


def test_every_backend_unavailable_raises_all_backends_failed_with_each_cause(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    backend(pair, "primary").outage = True
    backend(pair, "secondary").outage = True
    with pytest.raises(AllBackendsFailed) as raised:
        pair.progress(batch.id)
    assert list(raised.value.causes) == ["primary", "secondary"]
    assert all(isinstance(cause, BackendUnavailable) for cause in raised.value.causes.values())


# -- writes ------------------------------------------------------------------


def test_a_write_reaches_every_backend(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    assert pair.update(batch.id, "a", "completed", result={"rows": 3})
    for name in ("primary", "secondary"):
        stored = backend(pair, name).fallthrough_get_record(batch.id, "a")
        assert stored is not None and stored.status is fallthrough.Status.COMPLETED and stored.result == {"rows": 3}


def test_a_write_still_reaches_the_others_when_the_first_is_down_and_the_miss_is_counted(
    pair: fallthrough.Store,
) -> None:
    batch = pair.create_batch(["a"])
    backend(pair, "primary").outage = True

    assert pair.update(batch.id, "a", "failed", error="timeout")

    stored = backend(pair, "secondary").fallthrough_get_record(batch.id, "a")
    assert stored is not None and stored.status is fallthrough.Status.FAILED and stored.error == "timeout"
    health = {entry.name: entry for entry in pair.health()}
    assert health["primary"].missed_writes == 1
    assert health["secondary"].missed_writes == 0


class Journal:
    """An observer that keeps every missed write, as a replay journal would."""

    def __init__(self) -> None:
        self.missed: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def fallthrough_missed_write(self, backend_name: str, operation: str, arguments: dict[str, Any]) -> None:
        self.missed.append((backend_name, operation, arguments))


def test_a_missed_write_is_announced_and_replaying_it_in_any_order_converges(registry: fallthrough.Registry) -> None:
    journal = Journal()
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, plugins=[journal])
    batch = store.create_batch(["a", "b"])
    primary, secondary = backend(store, "primary"), backend(store, "secondary")
    secondary.outage = True
    store.update(batch.id, "a", "failed", error="boom")  # no attempt given
    store.retry(batch.id)  # a -> pending, attempt 1
    store.update(batch.id, "b", "completed", result=[1])
    secondary.outage = False

    assert [(name, operation) for name, operation, _ in journal.missed] == [
        ("secondary", "fallthrough_update_records")
    ] * 3
    # Every missed write is pinned to its attempt, so its effect no longer
    # depends on what the store holds: replayed backwards, it still converges.
    for _, operation, arguments in reversed(journal.missed):
        getattr(secondary, operation)(**arguments)
    everything = (batch.id, None, None, 10)
    assert secondary.fallthrough_list_records(*everything) == primary.fallthrough_list_records(*everything)
    assert primary.fallthrough_get_record(batch.id, "a") == secondary.fallthrough_get_record(batch.id, "a")
    record = secondary.fallthrough_get_record(batch.id, "a")
    assert record is not None and (record.status, record.attempt) == (fallthrough.Status.PENDING, 1)


def test_the_other_stores_get_the_applied_updates_pinned_and_nothing_for_a_stale_one(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a", "b"])
    secondary = backend(pair, "secondary")
    pair.update(batch.id, "a", "completed")
    before = secondary.calls["fallthrough_update_records"]

    assert pair.update(batch.id, "a", "processing") is False  # not newer: nothing to replicate
    assert secondary.calls["fallthrough_update_records"] == before

    pair.update(batch.id, "b", "failed")
    assert pair.retry(batch.id) == 1
    assert secondary.calls["fallthrough_retry_failed"] == 0, "a retry must reach the others as pinned updates"
    stored = secondary.fallthrough_get_record(batch.id, "b")
    assert stored is not None and (stored.status, stored.attempt) == (fallthrough.Status.PENDING, 1)


def test_when_every_backend_is_down_a_write_fails_and_counts_no_miss(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    backend(pair, "primary").outage = True
    backend(pair, "secondary").outage = True
    with pytest.raises(AllBackendsFailed):
        pair.update(batch.id, "a", "completed")
    assert [entry.missed_writes for entry in pair.health()] == [0, 0]


# -- what does not fall through -----------------------------------------------


def test_invalid_input_is_rejected_before_any_backend_is_called(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a", "b"])
    calls_before = [record_calls(backend(pair, name)) for name in ("primary", "secondary")]
    good = fallthrough.RecordUpdate(batch.id, "a", "completed")

    with pytest.raises(InvalidInput):
        pair.update_many([good, fallthrough.RecordUpdate(batch.id, "a", "failed")])  # "a" twice
    with pytest.raises(InvalidInput):
        pair.update_many([good, "not an update"])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        pair.create_batch(["x", "y", "x"])
    with pytest.raises(InvalidInput):
        pair.search("materials", text="цемент", filter={"price": {"lt": "cheap"}})

    assert [record_calls(backend(pair, name)) for name in ("primary", "secondary")] == calls_before
    assert pair.progress(batch.id).pending == 2


def test_not_found_propagates_at_once_and_the_next_backend_is_not_asked(pair: fallthrough.Store) -> None:
    batch = pair.create_batch(["a"])
    secondary = backend(pair, "secondary")
    before = record_calls(secondary)

    with pytest.raises(NotFound):
        pair.update(batch.id, "no-such-key", "completed")
    with pytest.raises(NotFound):
        pair.progress(uuid.uuid4())

    assert record_calls(secondary) == before
    assert all(entry.state == "closed" for entry in pair.health())


# -- the circuit breaker --------------------------------------------------------


def test_an_open_breaker_skips_the_dead_backend_until_its_cooldown(pair: fallthrough.Store, clock: FakeClock) -> None:
    batch = pair.create_batch(["a"])
    primary = backend(pair, "primary")
    primary.outage = True
    pair.progress(batch.id)
    calls_after_failure = sum(primary.calls.values())

    for _ in range(5):
        pair.progress(batch.id)
        pair.get_record(batch.id, "a")
    assert sum(primary.calls.values()) == calls_after_failure, "a backend behind an open breaker was called"

    clock.advance(29.0)
    pair.progress(batch.id)
    assert sum(primary.calls.values()) == calls_after_failure

    clock.advance(1.0)  # the cooldown has passed: exactly one trial call
    pair.progress(batch.id)
    assert sum(primary.calls.values()) == calls_after_failure + 1
    pair.progress(batch.id)
    assert sum(primary.calls.values()) == calls_after_failure + 1, "a failed trial must reopen the breaker"

    primary.outage = False
    clock.advance(30.0)
    pair.progress(batch.id)
    assert {entry.name: entry.state for entry in pair.health()}["primary"] == "closed"
    served_before = primary.calls["fallthrough_progress"]
    pair.progress(batch.id)
    assert primary.calls["fallthrough_progress"] == served_before + 1


def test_a_backend_down_at_connect_time_is_opened_when_it_comes_back(
    registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy, clock: FakeClock
) -> None:
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, breaker=breaker)
    primary = backend(store, "primary")
    primary.outage = True
    batch = store.create_batch(["a"])
    assert primary.calls["fallthrough_open"] == 1 and primary.calls["fallthrough_create_batch"] == 0

    primary.outage = False
    clock.advance(30.0)
    store.create_batch(["b"], batch_id=batch.id)
    assert store.drain(timeout=10)
    assert primary.calls["fallthrough_open"] == 2
    assert primary.fallthrough_get_record(batch.id, "a") is not None
    assert primary.fallthrough_get_record(batch.id, "b") is not None


# -- search routing ---------------------------------------------------------------


@pytest.fixture
def search_pair(registry: fallthrough.Registry, breaker: fallthrough.BreakerPolicy) -> fallthrough.Store:
    store = fallthrough.connect(vectors="flaky://", words="flaky://?text_only=1", registry=registry, breaker=breaker)
    store.upsert_documents(
        "materials",
        [
            fallthrough.Document("m1", "Цемент М500", vector=[1.0, 0.0], metadata={"price": 420}),
            fallthrough.Document("m2", "Цемент М400", vector=[0.0, 1.0], metadata={"price": 380}),
            fallthrough.Document("m3", "Песок", vector=[1.0, 1.0], metadata={"price": 90}),
        ],
    )
    return store


def test_search_is_served_by_the_first_backend_that_supports_the_whole_query(
    search_pair: fallthrough.Store,
) -> None:
    result = search_pair.search("materials", text="цемент", vector=[0.0, 1.0])
    assert result.backend == "vectors" and not result.degraded and result.ranked() is result
    assert [hit.id for hit in result] == ["m2", "m1"]


def test_without_vector_search_left_a_text_query_is_answered_degraded(search_pair: fallthrough.Store) -> None:
    backend(search_pair, "vectors").outage = True
    result = search_pair.search("materials", text="цемент", vector=[0.0, 1.0], filter={"price": {"lt": 400}})
    assert result.backend == "words" and result.degraded
    assert [hit.id for hit in result] == ["m2"]
    # For a caller that hands hits on as the nearest: refused, naming who answered without the vector.
    with pytest.raises(BackendUnavailable, match="words answered without the vector"):
        result.ranked()


def test_a_degraded_search_still_returns_the_vectors_it_was_asked_for(search_pair: fallthrough.Store) -> None:
    backend(search_pair, "vectors").outage = True
    result = search_pair.search("materials", text="цемент", vector=[0.0, 1.0], with_vectors=True)
    assert result.degraded
    assert {hit.id: hit.vector for hit in result} == {"m1": (1.0, 0.0), "m2": (0.0, 1.0)}


def test_a_vector_only_query_with_no_vector_backend_is_unsupported(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect("flaky://?text_only=1", registry=registry)
    with pytest.raises(UnsupportedQuery):
        store.search("materials", vector=[1.0, 0.0])


def test_a_vector_query_with_its_only_vector_backend_down_fails_as_unavailable(
    search_pair: fallthrough.Store,
) -> None:
    backend(search_pair, "vectors").outage = True
    with pytest.raises(AllBackendsFailed):
        search_pair.search("materials", vector=[1.0, 0.0])


def test_search_order_puts_the_named_backends_first(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect(first="flaky://", second="flaky://", registry=registry, search_order=["second"])
    store.upsert_documents("c", [fallthrough.Document("d", "word")])
    assert store.search("c", text="word").backend == "second"
    batch = store.create_batch(["a"])
    store.progress(batch.id)
    assert backend(store, "first").calls["fallthrough_progress"] == 1


def test_search_order_must_name_known_backends(registry: fallthrough.Registry) -> None:
    with pytest.raises(InvalidInput, match="search_order"):
        fallthrough.connect("flaky://", registry=registry, search_order=["qdrant"])


def test_document_writes_skip_a_backend_without_documents(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect(records="flaky://?records_only=1", everything="flaky://", registry=registry)
    store.upsert_documents("c", [fallthrough.Document("d", "word")])
    assert backend(store, "records").calls["fallthrough_upsert_documents"] == 0
    assert {entry.name: entry.missed_writes for entry in store.health()} == {"records": 0, "everything": 0}
    assert store.search("c", text="word").backend == "everything"


# -- observability ------------------------------------------------------------------


def test_a_hook_wrapper_observes_every_call_to_every_backend(registry: fallthrough.Registry) -> None:
    class Metrics:
        def __init__(self) -> None:
            self.calls: list[str] = []

        @hookimpl(wrapper=True)
        def fallthrough_update_records(self) -> Any:
            self.calls.append("update")
            return (yield)

        @hookimpl(wrapper=True)
        def fallthrough_progress(self) -> Any:
            self.calls.append("progress")
            return (yield)

    metrics = Metrics()
    store = fallthrough.connect("flaky://", "flaky://", registry=registry, plugins=[metrics])
    batch = store.create_batch(["a"])
    store.update(batch.id, "a", "processing")
    store.progress(batch.id)
    assert metrics.calls == ["update", "update", "progress"]


def test_passwords_never_reach_repr_health_logs_or_errors(
    registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-pa55"
    store = fallthrough.connect(
        f"flaky://app:{secret}@db/app",
        f"flaky://app:{secret}@replica/app?api_key=k3y-{secret}&sslpassword=ssl-{secret}",
        registry=registry,
    )
    for name in store.backend_names:
        plugin = backend(store, name)
        plugin.outage = True
        plugin.error_message = f"could not connect as app:{secret} (api_key=k3y-{secret})"
    caplog.set_level(logging.DEBUG, logger="fallthrough")

    with pytest.raises(AllBackendsFailed) as raised:
        store.create_batch(["a"])

    texts = [repr(store), str(raised.value), repr(raised.value.causes), caplog.text]
    texts += [repr(entry) for entry in store.health()]
    assert "flaky" in caplog.text, "the failure was not logged at all"
    for text in texts:
        assert secret not in text


def test_a_driver_error_a_plugin_lets_through_shows_its_first_line_and_none_of_the_callers_keys(
    registry: fallthrough.Registry,
) -> None:
    registry.register("untranslated", "tests.core.plugins:UntranslatedDriverErrorBackend")
    store = fallthrough.connect("untranslated://", registry=registry)
    key = "customer-4711-price-list"

    with pytest.raises(PluginError) as raised:
        store.create_batch([key])

    text = str(raised.value)
    assert "RuntimeError" in text and "constraint failed" in text
    assert key not in text and "INSERT" not in text
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_a_replica_whose_driver_error_escapes_is_named_in_health_and_logs_by_its_first_line(
    registry: fallthrough.Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """The first store applied the write; the replica raised the untranslated error, which marks it for a repair."""
    registry.register("untranslated", "tests.core.plugins:UntranslatedDriverErrorBackend")
    store = fallthrough.connect("reference://", "untranslated://", registry=registry)
    key = "customer-4711-price-list"
    caplog.set_level(logging.DEBUG, logger="fallthrough")

    try:
        store.create_batch([key])
        (_, replica) = store.health()
    finally:
        store.close(timeout=0)
    assert replica.needs_repair
    assert replica.last_error is not None and "constraint failed" in replica.last_error
    assert "untranslated" in caplog.text and "constraint failed" in caplog.text
    for text in (replica.last_error, caplog.text):
        assert key not in text and "INSERT" not in text


# -- names and construction ------------------------------------------------------------


def test_backends_are_named_after_their_scheme_with_a_suffix_when_shared(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect("flaky://", "reference://", "flaky://", extra="reference://", registry=registry)
    assert store.backend_names == ["flaky", "reference", "flaky-2", "extra"]


def test_backend_names_must_be_distinct(registry: fallthrough.Registry) -> None:
    with pytest.raises(InvalidInput, match="distinct"):
        fallthrough.Store([("a", "flaky://"), ("a", "reference://")], registry=registry)


def test_connect_without_urls_is_the_embedded_sqlite_store() -> None:
    with fallthrough.connect() as store:
        assert store.backend_names == ["sqlite"]
        batch = store.create_batch(["a"])
        assert store.progress(batch.id).total == 1


# -- threads ---------------------------------------------------------------------------


def test_workers_sharing_a_store_keep_exact_counts_on_every_backend(pair: fallthrough.Store) -> None:
    keys = [f"item-{i}" for i in range(400)]
    batch = pair.create_batch(keys)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for key in keys[worker::8]:
                pair.update(batch.id, key, "processing")
                pair.update(batch.id, key, "failed" if key.endswith("7") else "completed")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    failed = sum(key.endswith("7") for key in keys)
    for name in ("primary", "secondary"):
        progress = backend(pair, name).fallthrough_progress(batch.id)
        assert (progress.completed, progress.failed, progress.pending) == (len(keys) - failed, failed, 0)


def test_health_with_ping_finds_an_outage_before_any_call_does(pair: fallthrough.Store) -> None:
    assert [entry.state for entry in pair.health(ping=True)] == ["closed", "closed"]
    backend(pair, "secondary").outage = True
    report = {entry.name: entry for entry in pair.health(ping=True)}
    assert report["secondary"].state == "open" and report["primary"].state == "closed"
    assert report["secondary"].last_error is not None


def test_a_store_without_a_records_backend_says_so(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect("flaky://?text_only=1", registry=registry)
    store.plugin_manager.get_plugin("flaky").declared = fallthrough.Capabilities(
        documents=True, text_search=True, filter_search=True
    )
    with pytest.raises(UnsupportedQuery, match="records"):
        store.create_batch(["a"])


def test_a_closed_store_refuses_calls(registry: fallthrough.Registry) -> None:
    store = fallthrough.connect("flaky://", registry=registry)
    batch = store.create_batch(["a"])
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(fallthrough.FallthroughError, match="closed"):
        store.progress(batch.id)
