"""Ctrl-C while a write replicates: the backends it had not reached yet get it from the journal.

The write stands on the backend that decided it; without a hint, the others
would miss it for good, and still serve reads.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

import fallthrough
from fallthrough import Status
from tests.core.helpers import gate, gated, health


def test_an_update_interrupted_while_it_replicates_is_journaled_for_the_backend_it_had_not_reached(
    registry: fallthrough.Registry, tmp_path: Path
) -> None:
    assert threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    with fallthrough.connect(
        a=f"sqlite:///{tmp_path}/a.db", b=gated(f"sqlite:///{tmp_path}/b.db"), registry=registry
    ) as store:
        batch = store.create_batch(["k"])
        second = gate(store, "b")
        second.hold("fallthrough_update_records")

        def interrupt_then_release() -> None:
            try:
                assert second.wait_held(1, timeout=30)
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                time.sleep(0.2)
            finally:
                second.release()

        interrupter = threading.Thread(target=interrupt_then_release)
        interrupter.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                store.update(batch.id, "k", Status.COMPLETED)
        finally:
            interrupter.join()

        assert health(store, "b").pending_hints == 1
        assert not health(store, "b").serves_reads
        assert store.drain(10)
        answered = second.inner.fallthrough_get_record(batch_id=batch.id, key="k")
        assert answered is not None and answered.status is Status.COMPLETED
