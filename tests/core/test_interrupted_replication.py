"""Ctrl-C while a write replicates: the backends it had not reached yet get it from the journal.

The write stands on the backend that decided it; without a hint, the others
would miss it for good, and still serve reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import fallthrough
from fallthrough import Status
from tests.core.helpers import gate, health, sigint_while_held, sqlite_file


def test_an_update_interrupted_while_it_replicates_is_journaled_for_the_backend_it_had_not_reached(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    with fallthrough.connect(a=f"sqlite:///{tmp_path}/a.db", b=sqlite_file(tmp_path, "b"), registry=registry) as store:
        batch = store.create_batch(["k"])
        second = gate(store, "b")
        with sigint_while_held(second, "fallthrough_update_records"), pytest.raises(KeyboardInterrupt):
            store.update(batch.id, "k", Status.COMPLETED)

        assert health(store, "b").pending_hints == 1
        assert not health(store, "b").serves_reads
        assert store.drain(10)
        answered = second.inner.fallthrough_get_record(batch_id=batch.id, key="k")
        assert answered is not None and answered.status is Status.COMPLETED
