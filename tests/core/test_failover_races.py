"""Failover under concurrent calls: bounds that hold while the replayer works, writes that reach stores in order.

Real SQLite files behind the fault gate from the public registry; the faults
are the gate's (an outage, a slow hook, a held hook). Nothing in the router is
mocked.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fallthrough
from fallthrough import Document
from fallthrough.errors import AllBackendsFailed
from fallthrough.router import CATCH_UP_WAIT

from .helpers import eventually, gate, health, sqlite_file

SLOW_REPLAY_HINTS = 200
SLOW_REPLAY_CALL = 0.05  # seconds a hint's call takes: a slow store, answering well within any timeout


@pytest.fixture
def slow_to_catch_up(tmp_path: Path, registry: fallthrough.Registry) -> Iterator[fallthrough.Store]:
    """Two stores; "b" missed 200 writes and is being caught up by the replayer, 50 ms a write (10 s in all)."""
    store = fallthrough.connect(
        a=sqlite_file(tmp_path, "a"),
        b=sqlite_file(tmp_path, "b"),
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.01),
    )
    gate(store, "b").outage = True
    for index in range(SLOW_REPLAY_HINTS):
        store.upsert_documents("c", [Document(f"d{index}", text=f"text {index}")])
    assert health(store, "b").pending_hints == SLOW_REPLAY_HINTS
    gate(store, "b").delays["fallthrough_upsert_documents"] = SLOW_REPLAY_CALL
    gate(store, "b").outage = False
    # An outage fails at the gate of the open, so every upsert "b" gets from here on is a replayed hint.
    assert eventually(lambda: gate(store, "b").calls["fallthrough_upsert_documents"] >= 2)
    yield store
    store.close(timeout=0.1)  # the rest of the replay is not this test's business


def test_a_read_waits_at_most_catch_up_wait_for_a_store_the_replayer_is_catching_up(
    slow_to_catch_up: fallthrough.Store,
) -> None:
    """It waited for the replayer's whole catch-up (the replay lock), which grows with the hints: 22 s for 400."""
    store = slow_to_catch_up
    gate(store, "a").outage = True  # the one store up to date fails: only "b", still behind, is left
    started = time.monotonic()
    with pytest.raises(AllBackendsFailed, match="behind by"):
        store.get_documents("c", ["d0"])
    waited = time.monotonic() - started
    assert health(store, "b").pending_hints > 0  # the replay was still going: the bound was what ended it
    assert CATCH_UP_WAIT - 0.5 <= waited <= CATCH_UP_WAIT + 2


def test_drain_returns_at_its_timeout_while_the_replayer_catches_a_store_up(
    slow_to_catch_up: fallthrough.Store,
) -> None:
    store = slow_to_catch_up
    started = time.monotonic()
    assert store.drain(timeout=0.5) is False
    waited = time.monotonic() - started
    assert health(store, "b").pending_hints > 0
    assert waited < 2
