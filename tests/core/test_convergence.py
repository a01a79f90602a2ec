"""Writes missed during outages, replayed later in any order, leave every store in the same state.

Two real SQLite stores (one in memory, one on file) sit behind fault
injectors from the public registry. Random calls go through a Store while
random outages come and go; an observer keeps every missed write, as a
replay journal would. Replaying them afterwards, the creations first and
then every update in a random order, must make the two stores identical.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import fallthrough
from fallthrough.errors import AllBackendsFailed
from fallthrough.testing import conformance_settings
from fallthrough.testing.faults import FaultInjectingBackend
from tests.journal import Journal

KEYS = ["a", "b", "c"]
CREATION = {"fallthrough_create_batch", "fallthrough_add_records"}


statuses = st.sampled_from(list(fallthrough.Status))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("outage"), st.sampled_from(["memory", "file"]), st.booleans()),
        st.tuples(st.just("add"), st.lists(st.sampled_from(KEYS), unique=True, min_size=1)),
        st.tuples(
            st.just("update"),
            st.lists(
                st.tuples(st.sampled_from(KEYS[:2]), statuses, st.none() | st.integers(0, 2)),
                min_size=1,
                max_size=2,
                unique_by=lambda update: update[0],
            ),
        ),
        st.tuples(st.just("retry")),
    ),
    max_size=30,
)


def run(store: fallthrough.Store, batch_id: uuid.UUID, operation: tuple[Any, ...], added: set[str]) -> None:
    if operation[0] == "add":
        # A key is added once: adding it again is first write wins (docs/semantics.md), not a merge.
        new_keys = [key for key in operation[1] if key not in added]
        if new_keys:
            store.add_records(batch_id, new_keys)
            added.update(new_keys)
    elif operation[0] == "update":
        store.update_many(
            [fallthrough.RecordUpdate(batch_id, key, status, attempt=attempt) for key, status, attempt in operation[1]]
        )
    else:
        store.retry(batch_id)


@settings(conformance_settings(), max_examples=max(100, conformance_settings().max_examples))
@given(operations=operations, data=st.data())
def test_missed_writes_replayed_in_any_order_converge(operations: list[tuple[Any, ...]], data: st.DataObject) -> None:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    journal = Journal()
    with tempfile.TemporaryDirectory() as folder:
        file_url = f"sqlite:///{Path(folder) / 'second.db'}"
        store = fallthrough.connect(
            memory="flaky://?inner=sqlite://",
            file=f"flaky://?inner={file_url}",
            registry=registry,
            plugins=[journal],
            breaker=fallthrough.BreakerPolicy(cooldown=1e-9),
        )
        flaky = {name: store.plugin_manager.get_plugin(name) for name in ("memory", "file")}
        assert all(isinstance(plugin, FaultInjectingBackend) for plugin in flaky.values())
        batch_id = store.create_batch(KEYS[:2]).id
        added = set(KEYS[:2])
        for operation in operations:
            if operation[0] == "outage":
                flaky[operation[1]].outage = operation[2]
                continue
            # A key not added yet, or both stores down: then nothing was written anywhere.
            with contextlib.suppress(fallthrough.NotFound, AllBackendsFailed):
                run(store, batch_id, operation, added)
        for plugin in flaky.values():
            plugin.outage = False
            plugin.inner.fallthrough_open()  # one that was down since the start was never opened

        for name, missed in journal.missed.items():
            inner = flaky[name].inner
            creations = [entry for entry in missed if entry[0] in CREATION]
            updates = [entry for entry in missed if entry[0] not in CREATION]
            for operation, arguments in creations + data.draw(st.permutations(updates), label=f"{name} replay"):
                getattr(inner, operation)(**arguments)

        everything = (batch_id, None, None, 1000)
        in_memory = flaky["memory"].inner.fallthrough_list_records(*everything)
        assert flaky["file"].inner.fallthrough_list_records(*everything) == in_memory
        store.close()
