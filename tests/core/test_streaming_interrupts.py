"""An interrupt in or just after a streamed create's first write takes back what the call wrote.

docs/semantics.md: an interrupted call (``KeyboardInterrupt``, ``SystemExit``,
wherever they arrive) removes what it wrote. The first write is counted
before it starts, as the later ones are, and whether it created the batch is
read back when the interrupt came before its answer.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import fallthrough
from fallthrough.inflight import WritesInFlight
from fallthrough.validation import STREAM_CHUNK
from tests.core.helpers import gate, sigint_while_held, sqlite_file


def test_an_interrupt_just_after_the_first_write_of_a_create_leaves_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the first write returning and ``ranges.append`` runs Python code (``WritesInFlight.__init__``):
    a SIGINT landing there is an interrupt "wherever it arrives" (docs/semantics.md), yet nothing is taken back."""
    init = WritesInFlight.__init__
    made: list[int] = []

    def init_then_interrupt(self: WritesInFlight[object], limit: int) -> None:
        made.append(limit)
        if len(made) == 2:  # the one built right after the first write, before its range is counted
            raise KeyboardInterrupt
        init(self, limit)

    monkeypatch.setattr(WritesInFlight, "__init__", init_then_interrupt)
    batch_id = uuid.uuid4()
    with fallthrough.connect(f"sqlite:///{tmp_path}/a.db") as store:
        with pytest.raises(KeyboardInterrupt):
            store.create_batch((f"k{i:06d}" for i in range(3 * STREAM_CHUNK)), batch_id=batch_id)
        monkeypatch.undo()
        leftover = store.get_batch(batch_id)
        assert leftover is None, f"an interrupted create left {leftover.total} records behind"


def test_a_real_sigint_during_the_first_write_of_a_create_leaves_the_batch(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    """A real SIGINT while the first write replicates to the second store: the first store's batch is taken back."""
    with fallthrough.connect(a=f"sqlite:///{tmp_path}/a.db", b=sqlite_file(tmp_path, "b"), registry=registry) as store:
        store.health(ping=True)
        second = gate(store, "b")
        batch_id = uuid.uuid4()
        with sigint_while_held(second, "fallthrough_create_batch"), pytest.raises(KeyboardInterrupt):
            store.create_batch((f"k{i:06d}" for i in range(3 * STREAM_CHUNK)), batch_id=batch_id)

        assert store.get_batch(batch_id) is None  # read from a, the store that serves reads
        assert store.drain(10)  # b gets what it missed, the create and its take-back
        assert second.inner.fallthrough_get_batch(batch_id=batch_id) is None
