"""Fault schedules: no acknowledged write is lost, none is resurrected, no read is stale.

A Hypothesis state machine drives random operations through a Store over two
or three real backends, each behind a fault-injecting gate from the public
registry, while it takes backends down and up at random and, with a durable
journal, "restarts" the application (closes the Store and opens a new one on
the same files). Beside it runs the reference model, fed only the writes the
Store acknowledged, with the same stamps: both Stores' clocks are one fake
wall clock that jumps a second before every operation, so a write carries the
same ``updated_at``, ``seq`` and version on both.

Every answer the Store gives while faults come and go must equal the model's
(a stale read from a store that came back fails here). At the end the faults
clear, the journal drains, and every backend, read alone, must hold exactly
what the model holds.

``HYPOTHESIS_PROFILE=thorough`` runs 1,000 schedules per configuration.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

import fallthrough
from fallthrough.clock import Stamper
from fallthrough.errors import AllBackendsFailed, FallthroughError
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.types import Document, RecordUpdate, Status

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
SCHEDULES = settings(
    max_examples=1000 if THOROUGH else 30,
    stateful_step_count=60 if THOROUGH else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
DOCUMENT_IDS = st.sampled_from(["m1", "m2", "m3", "m4"])
COLLECTION = "materials"
EVERYTHING = 10_000


def _inner(url: str) -> str:
    return "flaky://?inner=" + quote(url, safe="")


class FaultSchedule(RuleBasedStateMachine):
    """The Store under random faults, against the reference model."""

    # Set by the subclasses below: how the backends are stored, and whether the process may restart.
    inner_urls: Callable[[str], dict[str, str]]
    durable = False

    batches = Bundle("batches")

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="fallthrough-faults-")
        self.registry = fallthrough.Registry()
        self.registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
        self.registry.register("reference", "fallthrough.testing.model:ReferenceBackend")
        self.wall_ns = 1_800_000_000 * 10**9
        self.urls = type(self).inner_urls(self.directory)
        self.down: set[str] = set()
        self.journal = f"sqlite:///{self.directory}/hints.db" if self.durable else None
        self.store = self._open()
        self.model = fallthrough.Store(
            [("model", "reference://")], registry=self.registry, stamper=Stamper(self._clock)
        )
        self.batch_ids: list[uuid.UUID] = []
        self.document_ids: set[str] = set()

    def _clock(self) -> int:
        return self.wall_ns

    def _open(self) -> fallthrough.Store:
        store = fallthrough.Store(
            [(name, _inner(url)) for name, url in self.urls.items()],
            registry=self.registry,
            stamper=Stamper(self._clock),
            journal=self.journal,
            breaker=fallthrough.BreakerPolicy(cooldown=0.001),
        )
        for name in self.down:
            self._gate(store, name).outage = True
        return store

    @staticmethod
    def _gate(store: fallthrough.Store, name: str) -> FaultInjectingBackend:
        plugin = store.plugin_manager.get_plugin(name)
        assert isinstance(plugin, FaultInjectingBackend)
        return plugin

    def both(self, operation: Callable[[fallthrough.Store], Any]) -> Any:
        """Run ``operation`` on the Store and, if the Store acknowledged it, on the model; they must agree."""
        self.wall_ns += 10**9
        try:
            actual = operation(self.store)
        except AllBackendsFailed:
            assert self.down, "every backend failed while none was down"
            return None
        except FallthroughError as error:
            with pytest.raises(type(error)):
                operation(self.model)
            return None
        expected = operation(self.model)
        assert actual == expected, f"the Store answered {actual!r}, the model {expected!r}"
        return actual

    # -- faults --------------------------------------------------------------

    @rule(data=st.data())
    def take_one_down(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.urls)))
        self.down.add(name)
        self._gate(self.store, name).outage = True

    @rule(data=st.data())
    def bring_one_up(self, data: st.DataObject) -> None:
        if self.down:
            name = data.draw(st.sampled_from(sorted(self.down)))
            self.down.discard(name)
            self._gate(self.store, name).outage = False

    @precondition(lambda self: self.durable)
    @rule()
    def restart_the_application(self) -> None:
        self.store.close(timeout=0.0)
        self.store = self._open()

    # -- writes ----------------------------------------------------------------

    @rule(target=batches, keys=st.lists(KEYS, unique=True, max_size=4), tag=st.integers(0, 3))
    def create_batch(self, keys: list[str], tag: int) -> uuid.UUID:
        batch_id = uuid.uuid4()
        self.batch_ids.append(batch_id)
        self.both(lambda store: store.create_batch(keys, batch_id=batch_id, metadata={"tag": tag}))
        return batch_id

    @rule(batch_id=batches, keys=st.lists(KEYS, unique=True, min_size=1, max_size=3))
    def add_records(self, batch_id: uuid.UUID, keys: list[str]) -> None:
        self.both(lambda store: store.add_records(batch_id, keys))

    @rule(
        batch_id=batches,
        key=KEYS,
        status=st.sampled_from(list(Status)),
        attempt=st.none() | st.integers(0, 2),
        result=st.none() | st.integers(0, 9),
    )
    def update(self, batch_id: uuid.UUID, key: str, status: Status, attempt: int | None, result: int | None) -> None:
        self.both(lambda store: store.update(batch_id, key, status, result=result, attempt=attempt))

    @rule(
        batch_id=batches, keys=st.lists(KEYS, unique=True, min_size=1, max_size=3), status=st.sampled_from(list(Status))
    )
    def update_many(self, batch_id: uuid.UUID, keys: list[str], status: Status) -> None:
        self.both(lambda store: store.update_many([RecordUpdate(batch_id, key, status) for key in keys]))

    @rule(batch_id=batches)
    def retry(self, batch_id: uuid.UUID) -> None:
        self.both(lambda store: store.retry(batch_id))

    @rule(batch_id=batches)
    def delete_batch(self, batch_id: uuid.UUID) -> None:
        self.both(lambda store: store.delete_batch(batch_id))

    @rule(ids=st.lists(DOCUMENT_IDS, unique=True, min_size=1, max_size=3), text=st.sampled_from(["цемент", "песок"]))
    def upsert_documents(self, ids: list[str], text: str) -> None:
        self.document_ids.update(ids)
        documents = [Document(document_id, text, metadata={"n": len(document_id)}) for document_id in ids]
        self.both(lambda store: store.upsert_documents(COLLECTION, documents))

    @rule(ids=st.lists(DOCUMENT_IDS, unique=True, min_size=1, max_size=3))
    def delete_documents(self, ids: list[str]) -> None:
        self.both(lambda store: store.delete_documents(COLLECTION, ids))

    # -- reads: never stale ----------------------------------------------------

    @rule(batch_id=batches, key=KEYS)
    def get_record(self, batch_id: uuid.UUID, key: str) -> None:
        self.both(lambda store: store.get_record(batch_id, key))

    @rule(batch_id=batches)
    def progress_and_records(self, batch_id: uuid.UUID) -> None:
        self.both(lambda store: store.progress(batch_id))
        self.both(lambda store: list(store.records(batch_id)))

    @rule(ids=st.lists(DOCUMENT_IDS, unique=True, min_size=1, max_size=4))
    def get_documents(self, ids: list[str]) -> None:
        self.both(lambda store: store.get_documents(COLLECTION, ids))

    @invariant()
    def health_says_who_serves_reads(self) -> None:
        for entry in self.store.health():
            assert entry.serves_reads == (entry.pending_hints == 0 and not entry.needs_repair)

    # -- the end: every store alone equals the model ---------------------------

    def teardown(self) -> None:
        try:
            for name in list(self.down):
                self._gate(self.store, name).outage = False
            self.down.clear()
            assert self.store.drain(timeout=30), f"the journal did not drain: {self.store.health()}"
            model = self.model.plugin_manager.get_plugin("model")
            for name in self.urls:
                inner = self._gate(self.store, name).inner
                inner.fallthrough_open()  # idempotent; a backend no call reached is not open yet
                for batch_id in self.batch_ids:
                    expected_batch = model.fallthrough_get_batch(batch_id)
                    assert inner.fallthrough_get_batch(batch_id) == expected_batch, f"{name}: batch {batch_id}"
                    if expected_batch is not None:
                        assert inner.fallthrough_list_records(batch_id, None, None, EVERYTHING) == (
                            model.fallthrough_list_records(batch_id, None, None, EVERYTHING)
                        ), f"{name}: records of {batch_id}"
                ids = sorted(self.document_ids)
                assert list(inner.fallthrough_get_documents(COLLECTION, ids)) == list(
                    model.fallthrough_get_documents(COLLECTION, ids)
                ), f"{name}: documents"
        finally:
            self.store.close(timeout=0.0)
            self.model.close()
            shutil.rmtree(self.directory, ignore_errors=True)


class InMemoryStores(FaultSchedule):
    """SQLite in memory, Qdrant local mode in memory, and SQLite on file; a memory journal."""

    @staticmethod
    def inner_urls(directory: str) -> dict[str, str]:
        return {"first": "sqlite://", "second": "qdrant+memory://", "third": f"sqlite:///{directory}/third.db"}


class RestartingApplication(FaultSchedule):
    """Two SQLite files and a durable journal; the application process restarts at random."""

    durable = True

    @staticmethod
    def inner_urls(directory: str) -> dict[str, str]:
        return {"first": f"sqlite:///{directory}/first.db", "second": f"sqlite:///{directory}/second.db"}


TestInMemoryStores = InMemoryStores.TestCase
TestInMemoryStores.settings = SCHEDULES
TestRestartingApplication = RestartingApplication.TestCase
TestRestartingApplication.settings = SCHEDULES
