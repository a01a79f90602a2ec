"""A batch deletion cut short by a process that ended part way reads as done, and is finished at the next open.

``delete_batch`` marks the batch point, then removes the records, then the
point; local mode removes the records one by one. A ``kill -9`` during it
used to leave the batch point and part of its records: a smaller batch that
looked whole to every read, which a repair would copy to the other stores.
The state is made here with the deletion's own first step, on real local-mode
clients, as a process killed right after it (or part way through the records)
would leave it. While the mark stands, the backend is compared with the
reference model after a completed delete.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import models

import fallthrough
from fallthrough.errors import NotFound
from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.twin import Twin, at
from fallthrough.types import RecordUpdate, Status
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.schema import in_batch, record_point_id
from tests.qdrant.recording import server_paths

# The cut batch comes first in id order and newest in time, so each listing's first page must pass over it.
CUT = uuid.UUID(int=1)
KEPT = uuid.UUID(int=2)
KEYS = tuple(f"k{i}" for i in range(10))


def _begin_deletion(backend: QdrantBackend, batch_id: uuid.UUID, records_removed: tuple[str, ...] = ()) -> None:
    """The state a process killed during ``delete_batch`` leaves: the point marked, ``records_removed`` gone."""
    with backend._database.write() as client:
        backend._records.mark_deleting(client, batch_id)
        if records_removed:
            ids: list[models.ExtendedPointId] = [record_point_id(batch_id, key) for key in records_removed]
            client.delete(backend._database.names.records, models.PointIdsList(points=ids))


def _stored_records(backend: QdrantBackend, batch_id: uuid.UUID) -> int:
    """The batch's record points still stored, whatever any read says of the batch."""
    with backend._database.read() as client:
        return client.count(backend._database.names.records, count_filter=in_batch(batch_id), exact=True).count


def test_a_batch_deletion_cut_short_is_finished_when_the_store_opens_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"qdrant+local:///{tmp_path}/store"
    with fallthrough.connect(url) as store:
        store.create_batch(["k"], batch_id=KEPT)
        store.create_batch(KEYS, batch_id=CUT)
        store.update(CUT, "k5", "completed", result={"old": True})

    backend = QdrantBackend(url)
    backend.fallthrough_open()
    _begin_deletion(backend, CUT, records_removed=KEYS[:3])
    assert _stored_records(backend, CUT) == 7  # the state a kill left: most records still stored
    backend.fallthrough_close()

    with caplog.at_level(logging.WARNING, logger="fallthrough_qdrant"), fallthrough.connect(url) as store:
        assert store.get_batch(CUT) is None
        assert [listed.batch.id for listed in store.batches()] == [KEPT]
        with pytest.raises(NotFound):
            store.progress(CUT)
        assert [store.get_record(CUT, key) for key in KEYS] == [None] * len(KEYS)
        assert store.delete_batch(CUT) is False

        store.create_batch(["k5", "new"], batch_id=CUT)
        again = list(store.records(CUT))
        assert [(record.key, record.status, record.result) for record in again] == [
            ("k5", Status.PENDING, None),
            ("new", Status.PENDING, None),
        ]
        assert store.progress(CUT).total == 2
        assert [record.key for record in store.records(KEPT)] == ["k"]
    assert any(f"finished the deletions of batches ['{CUT}']" in record.getMessage() for record in caplog.records), (
        caplog.text
    )


@pytest.fixture(params=["local paths", "server paths"])
def twin_on_paths(request: pytest.FixtureRequest, url: str) -> Iterator[Twin]:
    """The backend beside the reference model, on local mode's own paths or on those a server takes."""
    backend = QdrantBackend(url)
    driver = HookDriver(server_paths(backend) if request.param == "server paths" else backend, "qdrant")
    yield Twin(driver, driver.open())
    driver.close()


def _cut_and_kept(twin: Twin) -> None:
    """Two batches on both; the cut one has a finished, a failed and a claimed record."""
    for batch_id, keys, created in ((KEPT, ("k",), at(10)), (CUT, KEYS, at(20))):
        twin.call(
            "fallthrough_create_batch", batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=created
        )
    twin.update(
        RecordUpdate(CUT, "k1", Status.COMPLETED, result=1),
        RecordUpdate(CUT, "k2", Status.FAILED, error="no"),
        at_time=at(30),
    )
    twin.call("fallthrough_claim_records", batch_id=CUT, worker="w", limit=1, claimed_at=at(40), lease_until=at(99))


def _qdrant(twin: Twin) -> QdrantBackend:
    backend = twin.backend.plugin
    assert isinstance(backend, QdrantBackend)
    return backend


def _deleted_on_the_reference_begun_on_the_backend(twin: Twin) -> None:
    assert twin.reference.call("fallthrough_delete_batch", batch_id=CUT) is True
    _begin_deletion(_qdrant(twin), CUT, records_removed=KEYS[5:])


def test_a_batch_whose_deletion_was_begun_reads_as_deleted(twin_on_paths: Twin) -> None:
    """Every hook that reads the batch point answers as the reference does after the whole delete."""
    twin = twin_on_paths
    _cut_and_kept(twin)
    held = twin.record(CUT, "k0")
    _deleted_on_the_reference_begun_on_the_backend(twin)

    assert twin.batch(CUT) is None
    assert [batch.id for batch in twin.call("fallthrough_list_batches", after=None, limit=1)] == [KEPT]
    listed = twin.call("fallthrough_list_batch_progress", before=None, limit=1)
    assert [row.batch.id for row in listed] == [KEPT]
    refused: dict[str, dict[str, object]] = {
        "fallthrough_progress": {},
        "fallthrough_list_records": {"status": None, "after": None, "limit": 10},
        "fallthrough_add_records": {"keys": ("more",), "first_seq": 50, "created_at": at(50)},
        "fallthrough_retry_failed": {"updated_at": at(50)},
        "fallthrough_merge_records": {"records": (held,)},
        "fallthrough_claim_records": {"worker": "v", "limit": 5, "claimed_at": at(50), "lease_until": at(99)},
        "fallthrough_extend_leases": {"keys": ("k0",), "worker": "w", "now": at(50), "lease_until": at(120)},
    }
    for hook, arguments in refused.items():
        with pytest.raises(NotFound):
            twin.call(hook, batch_id=CUT, **arguments)

    # A second delete finds no batch, and finishes the first one's work.
    assert twin.call("fallthrough_delete_batch", batch_id=CUT) is False
    assert twin.get_records(CUT, *KEYS) == []
    assert _stored_records(_qdrant(twin), CUT) == 0
    assert [batch.id for batch in twin.call("fallthrough_list_batches", after=None, limit=10)] == [KEPT]


@pytest.mark.parametrize("hook", ["fallthrough_create_batch", "fallthrough_repair_batch"])
def test_a_batch_made_again_while_its_deletion_is_unfinished_holds_only_its_new_records(
    twin_on_paths: Twin, hook: str
) -> None:
    twin = twin_on_paths
    _cut_and_kept(twin)
    _deleted_on_the_reference_begun_on_the_backend(twin)

    if hook == "fallthrough_create_batch":
        twin.call(hook, batch_id=CUT, keys=("k1", "new"), first_seq=60, metadata={"v": 2}, created_at=at(60))
    else:
        twin.repair_batch(CUT, {"v": 2}, at(60))
    batch = twin.batch(CUT)
    assert batch is not None and batch.metadata == {"v": 2}
    twin.records(CUT)
    twin.call("fallthrough_progress", batch_id=CUT)
    assert twin.get_records(CUT, *KEYS) == ([twin.record(CUT, "k1")] if hook == "fallthrough_create_batch" else [])
    assert _stored_records(_qdrant(twin), CUT) == batch.total
