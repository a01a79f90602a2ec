"""The server stops in the middle of a run of updates (``pg_ctl stop -m immediate``) and comes back.

A server of its own is started for this, never the shared one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable
from fallthrough.types import RecordUpdate
from tests.postgresql.helpers import Hooks, at
from tests.postgresql.servers import LocalCluster

CONNECT_TIMEOUT = 2
KEYS = 150


def test_a_stopped_server_makes_calls_unavailable_at_once_and_a_restart_brings_the_same_store_back(
    throwaway_cluster: LocalCluster,
) -> None:
    url = throwaway_cluster.url() + f"?connect_timeout={CONNECT_TIMEOUT}&pool_timeout=2"
    breaker = fallthrough.BreakerPolicy(failure_threshold=1, cooldown=0.2)
    with fallthrough.connect(url, breaker=breaker) as store:
        batch = store.create_batch([f"k{index}" for index in range(KEYS)])
        done: list[str] = []
        failures: list[tuple[float, BaseException]] = []
        unexpected: list[BaseException] = []
        halfway = threading.Event()

        def worker() -> None:
            deadline = time.monotonic() + 60
            for index in range(KEYS):
                key = f"k{index}"
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    try:
                        store.update(batch.id, key, "completed", result={"n": index})
                    except BackendUnavailable as error:
                        failures.append((time.monotonic() - started, error))
                        time.sleep(0.02)
                        continue
                    except BaseException as error:
                        unexpected.append(error)
                        return
                    done.append(key)
                    break
                if len(done) == KEYS // 3:
                    halfway.set()

        thread = threading.Thread(target=worker)
        thread.start()
        assert halfway.wait(30)
        throwaway_cluster.stop("immediate")
        time.sleep(1.5)  # calls keep failing meanwhile
        throwaway_cluster.start()
        thread.join(90)
        assert not thread.is_alive()
        assert unexpected == []
        assert failures, "the outage was not observed"
        assert max(duration for duration, _ in failures) < CONNECT_TIMEOUT + 1
        assert done == [f"k{index}" for index in range(KEYS)]
        # The same Store, never rebuilt, reads and writes again.
        progress = store.progress(batch.id)
        assert (progress.total, progress.completed) == (KEYS, KEYS)
        record = store.get_record(batch.id, "k7")
        assert record is not None and record.result == {"n": 7}


def test_the_plugin_itself_raises_unavailable_while_the_server_is_down_and_recovers(
    throwaway_cluster: LocalCluster,
) -> None:
    hooks = Hooks(
        fallthrough.registry.Registry().create(throwaway_cluster.url() + f"?connect_timeout={CONNECT_TIMEOUT}")
    )
    hooks.fallthrough_open()
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a"], first_seq=1, metadata={}, created_at=at(0))
    throwaway_cluster.stop("immediate")
    try:
        calls: tuple[Callable[[], object], ...] = (
            lambda: hooks.fallthrough_ping(),
            lambda: hooks.fallthrough_progress(batch_id=batch_id),
            lambda: hooks.fallthrough_update_records(
                updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1)
            ),
        )
        for call in calls:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                call()
            assert time.monotonic() - started < CONNECT_TIMEOUT + 1
    finally:
        throwaway_cluster.start()
    applied = hooks.fallthrough_update_records(updates=[RecordUpdate(batch_id, "a", "completed")], updated_at=at(1))
    assert len(applied) == 1
    assert hooks.fallthrough_progress(batch_id=batch_id).completed == 1
    hooks.fallthrough_close()
