"""Hostile input: every public Store method, called as a hostile caller would, answers only with documented errors.

The backend is put behind a real :class:`~fallthrough.Store` (the core's
validation is half of what is tested), and Hypothesis sends it calls from
:mod:`fallthrough.testing.hostile`. After each call:

* it returned, or raised one of
  :data:`~fallthrough.testing.hostile.DOCUMENTED_ERRORS` (never a
  ``TypeError``, an ``OverflowError``, a driver's error or a ``PluginError``);
* if it raised, the store holds exactly what it held before the call: every
  batch id, and the header and records of every batch and the entries of
  every collection the test made, compared value by value.

Each example makes :func:`~fallthrough.testing.profiles.hostile_calls_per_example`
calls; the ``thorough`` profile makes at least 10,000 per backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from ...errors import FallthroughError
from ...registry import Registry
from ...store import Store
from ...types import Capabilities, Document
from ..compare import describe_difference
from ..drivers import HookDriver
from ..hostile import DOCUMENTED_ERRORS, HostileCall, Target, hostile_calls, run_call
from ..profiles import conformance_settings, hostile_calls_per_example
from ._base import ConformanceSuite

_PAGE = 1000


class _OnePlugin(Registry):
    """A registry that serves every URL with one given plugin object."""

    def __init__(self, plugin: object) -> None:
        super().__init__(entry_point_group=None)
        self._plugin = plugin

    def create(self, url: str | URL) -> object:
        return self._plugin


@attrs.define
class Hostile:
    """A Store over the backend alone, what the test aims at, and a way to read everything back."""

    store: Store
    hooks: HookDriver
    capabilities: Capabilities
    target: Target
    known_batches: frozenset[uuid.UUID]
    made_batches: set[uuid.UUID] = attrs.field(factory=set)

    def batch_ids(self) -> frozenset[uuid.UUID]:
        found: set[uuid.UUID] = set()
        after: uuid.UUID | None = None
        while True:
            page = list(self.hooks.call("fallthrough_list_batches", after=after, limit=_PAGE))
            found.update(batch.id for batch in page)
            if len(page) < _PAGE:
                return frozenset(found)
            after = page[-1].id

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused call must leave as it was."""
        state: dict[str, Any] = {}
        if self.capabilities.records:
            ids = self.batch_ids()
            self.made_batches |= ids - self.known_batches
            state["batch ids"] = sorted(ids)
            for batch_id in sorted(ids - self.known_batches):
                state[f"batch {batch_id}"] = self.hooks.call("fallthrough_get_batch", batch_id=batch_id)
                state[f"records of {batch_id}"] = list(
                    self.hooks.call("fallthrough_list_records", batch_id=batch_id, status=None, after=None, limit=10**6)
                )
        if self.capabilities.documents:
            state["collections"] = list(self.hooks.call("fallthrough_list_collections"))
            entries = self.hooks.call(
                "fallthrough_scan_documents", collection=self.target.collection, after=None, limit=10**6
            )
            state[f"collection {self.target.collection}"] = sorted(entries, key=lambda entry: entry.id)
        return state

    def clean_up(self) -> None:
        if self.capabilities.records:
            self.made_batches |= self.batch_ids() - self.known_batches
            for batch_id in self.made_batches:
                self.store.delete_batch(batch_id)
        if self.capabilities.documents:
            entries = self.hooks.call(
                "fallthrough_scan_documents", collection=self.target.collection, after=None, limit=10**6
            )
            if entries:
                self.store.delete_documents(self.target.collection, [entry.id for entry in entries])


def check_call(hostile: Hostile, call: HostileCall) -> None:
    """Make ``call``; it must return or raise a documented error, and a refused call changes nothing."""
    before = hostile.snapshot()
    try:
        run_call(hostile.store, call)
    except DOCUMENTED_ERRORS:
        after = hostile.snapshot()
        difference = describe_difference(after, before, "store")
        assert difference is None, f"{call!r} was refused but changed the store: {difference}"
    except Exception as error:
        documented = ", ".join(kind.__name__ for kind in DOCUMENTED_ERRORS)
        kind = (
            "a FallthroughError of the wrong kind" if isinstance(error, FallthroughError) else "an undocumented error"
        )
        raise AssertionError(
            f"{call!r} raised {kind}, {type(error).__module__}.{type(error).__name__}: {error} (allowed: {documented})"
        ) from error


class HostileInputConformance(ConformanceSuite):
    """Malformed and extreme arguments to every public Store method: documented errors only, nothing written."""

    @pytest.fixture
    def hostile(self, backend: object) -> Iterator[Hostile]:
        store = Store([("backend", "hostile://")], registry=_OnePlugin(backend))
        try:
            store.health(ping=True)
            hooks = HookDriver(backend, type(self).__qualname__)
            capabilities = hooks.open()
            self._fail_unless_declared(capabilities)
            hostile = self._prepare(store, hooks, capabilities)
            try:
                yield hostile
            finally:
                hostile.clean_up()
        finally:
            store.close()

    @staticmethod
    def _prepare(store: Store, hooks: HookDriver, capabilities: Capabilities) -> Hostile:
        batch_id = uuid.uuid4()
        keys = ("a", "b", "k" * 512)
        collection = f"ft{uuid.uuid4().hex[:12]}-hostile"
        document_ids = ("d1", "d2")
        dimension = 3
        target = Target(batch_id, keys, collection, document_ids, dimension)
        known: frozenset[uuid.UUID] = frozenset()
        hostile = Hostile(store, hooks, capabilities, target, known)
        if capabilities.records:
            known = hostile.batch_ids()
            store.create_batch(keys, batch_id=batch_id)
            store.update(batch_id, "a", "failed", error="boom")
        if capabilities.documents:
            vectors = capabilities.vector_search
            store.upsert_documents(
                collection,
                [
                    Document("d1", text="red apple", vector=(1.0, 0.0, 0.5) if vectors else None, metadata={"n": 1}),
                    Document(
                        "d2", text="green pear", vector=(0.0, 1.0, 0.5) if vectors else None, metadata={"tag": ["x"]}
                    ),
                ],
            )
        return attrs.evolve(hostile, known_batches=known, made_batches={batch_id} if capabilities.records else set())

    def test_hostile_calls_answer_with_documented_errors_and_change_nothing(self, hostile: Hostile) -> None:
        calls_per_example = hostile_calls_per_example(conformance_settings())
        calls = st.lists(hostile_calls(hostile.target), min_size=calls_per_example, max_size=calls_per_example)

        @conformance_settings()
        @given(calls)
        def run(drawn: list[HostileCall]) -> None:
            for call in drawn:
                check_call(hostile, call)

        run()

    def test_the_limits_hold_at_their_edges(self, hostile: Hostile) -> None:
        """The documented maximum is accepted and one past it refused, the same on every backend."""
        from ...errors import InvalidInput
        from ...validation import MAX_ATTEMPT, MAX_KEY_LENGTH

        store, target = hostile.store, hostile.target
        if hostile.capabilities.records:
            longest = "\U0001f600" * MAX_KEY_LENGTH
            store.add_records(target.batch_id, [longest])
            record = store.get_record(target.batch_id, longest)
            assert record is not None and record.key == longest
            assert store.update(target.batch_id, "b", "completed", attempt=MAX_ATTEMPT)
            record = store.get_record(target.batch_id, "b")
            assert record is not None and record.attempt == MAX_ATTEMPT
            for call in (
                HostileCall("add_records", (target.batch_id, ["k" * (MAX_KEY_LENGTH + 1)])),
                HostileCall("update", (target.batch_id, "b", "completed"), {"attempt": MAX_ATTEMPT + 1}),
                HostileCall("update", (target.batch_id, "b", "completed"), {"attempt": 2**31}),
                HostileCall("update", (target.batch_id, "b", "completed"), {"attempt": 2**63}),
                HostileCall("update", (target.batch_id, "b", "completed"), {"attempt": 2**100}),
            ):
                check_call(hostile, call)
                with pytest.raises(InvalidInput):
                    run_call(store, call)
        if hostile.capabilities.documents:
            longest_id = "\U0001f600" * MAX_KEY_LENGTH
            store.upsert_documents(target.collection, [Document(longest_id, text="edge")])
            assert [document.id for document in store.get_documents(target.collection, [longest_id])] == [longest_id]
            with pytest.raises(InvalidInput):
                store.get_documents(target.collection, ["x" * (MAX_KEY_LENGTH + 1)])


__all__ = ["Hostile", "HostileInputConformance", "check_call"]
