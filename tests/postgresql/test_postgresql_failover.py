"""The original application's failure, replayed: one database stops, and the product goes on.

Batch statuses lived only in PostgreSQL and search only in Qdrant, so either
outage took half the product down (see the audit in the project's origin).
Here one Store holds both: PostgreSQL first for records, Qdrant first for
search. PostgreSQL is stopped for real (``pg_ctl stop -m immediate``). No
Qdrant server can run here, so Qdrant's outage is switched on in the
fault-injecting backend from the public registry, wrapped around a real
qdrant-client local-mode backend.

A journal observes the missed writes (the ``fallthrough_missed_write`` hook)
and replays them once PostgreSQL is back, after which both stores hold the
same records.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any

import pytest

import fallthrough
from fallthrough import Document
from fallthrough.errors import BackendUnavailable
from fallthrough.testing.faults import FaultInjectingBackend
from tests.journal import Journal
from tests.postgresql.servers import LocalCluster

KEYS = [f"sku-{index}" for index in range(12)]
EVERYTHING = 10_000
COOLDOWN = 0.2


def _records(plugin: Any, batch_id: uuid.UUID) -> list[Any]:
    return list(plugin.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=EVERYTHING))


def test_records_and_search_go_on_through_a_postgresql_outage_then_a_qdrant_outage(
    throwaway_cluster: LocalCluster,
) -> None:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    qdrant = "flaky://?inner=" + urllib.parse.quote("qdrant+memory://", safe="")
    journal = Journal()
    store = fallthrough.connect(
        postgresql=throwaway_cluster.url() + "?connect_timeout=2&pool_timeout=2",
        qdrant=qdrant,
        search_order=["qdrant"],
        breaker=fallthrough.BreakerPolicy(failure_threshold=1, cooldown=COOLDOWN),
        plugins=[journal],
        registry=registry,
    )
    with store:
        postgresql = store.plugin_manager.get_plugin("postgresql")
        flaky = store.plugin_manager.get_plugin("qdrant")
        assert isinstance(flaky, FaultInjectingBackend)
        batch = store.create_batch(KEYS, metadata={"source": "prices.csv"})
        store.upsert_documents(
            "materials",
            [
                Document("m1", "Цемент М-500, мешок 50 кг", vector=[1.0, 0.0], metadata={"price": 420}),
                Document("m2", "Песок речной", vector=[0.0, 1.0], metadata={"price": 90}),
            ],
        )
        for key in KEYS[:4]:
            store.update(batch.id, key, "completed", result={"rows": 1})
        assert store.search("materials", text="цемент").backend == "qdrant"

        # PostgreSQL stops: records carry on in Qdrant, search never noticed.
        throwaway_cluster.stop("immediate")
        for key in KEYS[4:8]:
            store.update(batch.id, key, "failed", error="supplier timeout")
        progress = store.progress(batch.id)
        assert (progress.completed, progress.failed, progress.pending) == (4, 4, 4)
        assert store.retry(batch.id) == 4
        hit = store.search("materials", text="м-500", vector=[0.9, 0.1], filter={"price": {"lt": 500}})
        assert [h.id for h in hit] == ["m1"] and hit.backend == "qdrant"
        assert {h.name: h.state for h in store.health()}["postgresql"] != "closed"
        with pytest.raises(BackendUnavailable):
            postgresql.fallthrough_progress(batch_id=batch.id)

        # PostgreSQL is back: the journal replays what it missed, in order.
        throwaway_cluster.start()
        missed = journal.missed.pop("postgresql")
        # Four updates, then the retry, which the other stores receive as its pinned pending updates.
        assert [operation for operation, _ in missed] == ["fallthrough_update_records"] * 5
        for operation, arguments in missed:
            getattr(postgresql, operation)(**arguments)
        assert _records(postgresql, batch.id) == _records(flaky.inner, batch.id)

        # Now Qdrant goes down: search and records carry on in PostgreSQL, once
        # its breaker's cooldown allows a trial call again.
        time.sleep(COOLDOWN * 1.5)
        flaky.outage = True
        result = store.search("materials", text="цемент", vector=[1.0, 0.0])
        assert [h.id for h in result][:1] == ["m1"] and result.backend == "postgresql"
        for key in KEYS[8:]:
            store.update(batch.id, key, "completed", result={"rows": 2})
        progress = store.progress(batch.id)
        assert (progress.total, progress.completed, progress.pending) == (12, 8, 4)
        assert [operation for operation, _ in journal.missed["qdrant"]] == ["fallthrough_update_records"] * 4
