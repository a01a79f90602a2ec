"""An interrupt in or just after a streamed create's first write takes back what the call wrote.

docs/semantics.md: an interrupted call (``KeyboardInterrupt``, ``SystemExit``,
wherever they arrive) removes what it wrote. The first write is counted
before it starts, as the later ones are, and whether it created the batch is
read back when the interrupt came before its answer.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

import fallthrough
from fallthrough.inflight import WritesInFlight
from fallthrough.validation import STREAM_CHUNK
from tests.core.helpers import gate, gated


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
    """A real SIGINT while the first write is being replicated to the second store: the first store keeps
    the batch (nothing is taken back, ranges is still empty), the second has none, and nothing is journaled."""
    assert threading.current_thread() is threading.main_thread()
    with fallthrough.connect(
        a=f"sqlite:///{tmp_path}/a.db", b=gated(f"sqlite:///{tmp_path}/b.db"), registry=registry
    ) as store:
        store.health(ping=True)
        second = gate(store, "b")
        second.hold("fallthrough_create_batch")
        batch_id = uuid.uuid4()

        def interrupt() -> None:
            try:
                assert second.wait_held(1, timeout=30)
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                time.sleep(0.2)
            finally:
                second.release()

        helper = threading.Thread(target=interrupt)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                store.create_batch((f"k{i:06d}" for i in range(3 * STREAM_CHUNK)), batch_id=batch_id)
        finally:
            helper.join()
        a_batch = store.plugin_manager.get_plugin("a").fallthrough_get_batch(batch_id=batch_id)
        b_batch = second.inner.fallthrough_get_batch(batch_id=batch_id)
        pending = {
            entry.name: (entry.pending_hints, entry.needs_repair, entry.serves_reads) for entry in store.health()
        }
        assert a_batch is None, (
            f"interrupted create left {a_batch.total} records in store a; store b has {b_batch}; "
            f"journal pending: {pending}"
        )
