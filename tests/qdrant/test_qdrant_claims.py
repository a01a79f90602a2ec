"""The Qdrant claim's conditional write: a claimer that read a record another claimer took since loses its write.

Against a server, two clients can read the same claimable record before
either writes. No server runs here, so the race is played out in local mode
by hand: one claim reads, another claim lands, then the first one's guarded
write is sent with what it read. It must match nothing, and the server path
(read back, then read again for what was lost) must hand the first claimer
other records instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from fallthrough.registry import Registry
from fallthrough.testing.twin import at
from fallthrough.types import Record, Status
from fallthrough_qdrant.backend import QdrantBackend
from fallthrough_qdrant.claims import Claims
from fallthrough_qdrant.schema import record_point_id


@pytest.fixture
def backend() -> Iterator[QdrantBackend]:
    plugin = Registry().create("qdrant+memory://")
    assert isinstance(plugin, QdrantBackend)
    plugin.fallthrough_open()
    yield plugin
    plugin.fallthrough_close()


def _batch(backend: QdrantBackend, keys: list[str]) -> uuid.UUID:
    batch_id = uuid.uuid4()
    backend.fallthrough_create_batch(batch_id, keys, 100, {}, at(0))
    return batch_id


def test_a_write_guarded_on_a_state_another_claimer_changed_is_lost(backend: QdrantBackend) -> None:
    batch_id = _batch(backend, ["a", "b"])
    claims = Claims(backend._connection.names, verify_writes=True)
    with backend._connection.session() as client:
        stale = claims._candidates(client, batch_id, 10, 1)
    assert [payload["key"] for payload in stale] == ["a"]
    # Another claimer takes "a" between this one's read and its write.
    (taken,) = backend.fallthrough_claim_records(batch_id, "other", 1, at(10), at(100))
    mine = Record(batch_id, "a", 100, Status.PROCESSING, 0, None, None, at(11), "me", at(111))
    with backend._connection.session() as client:
        landed = claims._write_guarded(client, [(record_point_id(batch_id, "a"), mine, stale[0])], 12345)
    assert landed == set()
    assert backend.fallthrough_get_record(batch_id, "a") == taken


def test_the_server_path_reads_back_and_claims_what_it_did_not_lose(backend: QdrantBackend) -> None:
    batch_id = _batch(backend, ["a", "b", "c"])
    backend._claims.verify_writes = True  # as against a server
    first = backend.fallthrough_claim_records(batch_id, "w1", 2, at(10), at(10) + timedelta(seconds=60))
    second = backend.fallthrough_claim_records(batch_id, "w2", 2, at(11), at(11) + timedelta(seconds=60))
    assert [record.key for record in first] == ["a", "b"]
    assert [record.key for record in second] == ["c"]
    assert backend.fallthrough_claim_records(batch_id, "w3", 2, at(12), at(13)) == []
    extended = backend.fallthrough_extend_leases(batch_id, ["a", "c"], "w1", at(20), at(200))
    assert [(record.key, record.lease_expires) for record in extended] == [("a", at(200))]
