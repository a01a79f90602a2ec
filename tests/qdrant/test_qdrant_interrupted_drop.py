"""A drop cut short by a process that ended between its two steps is finished when the store opens again.

A drop records its version in ``<prefix>drops``, then removes the points at
or below it; local mode removes them one by one. Reads do not hide points
the drop covers, so a drop a ``kill -9`` cut short would leave part of the
collection readable, and a repair would copy that part to the other stores.
The state is made here with the drop's own first step, on a real local-mode
directory, as a process killed right after it would leave it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import fallthrough
from fallthrough import Document
from fallthrough_qdrant import QdrantBackend


def test_a_drop_cut_short_is_finished_when_the_store_opens_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"qdrant+local:///{tmp_path}/store"
    with fallthrough.connect(url) as store:
        store.upsert_documents("kept", [Document("k", "stays")])
        store.upsert_documents("dropped", [Document(f"v{i}", "cement", vector=[1.0, i / 10]) for i in range(10)])
        store.upsert_documents("dropped", [Document(f"p{i}", "cement") for i in range(10)])
        store.delete_documents("dropped", ["p0"])  # a tombstone, which the drop covers too

    backend = QdrantBackend(make_url(url))
    backend.fallthrough_open()
    with backend._database.write() as client:
        backend._documents.record_drop(client, "dropped", time.time_ns() // 1000 + 1)
        assert backend._documents.count(client, "dropped", None) == 19  # the state a kill left: all still read
    backend.fallthrough_close()

    with caplog.at_level(logging.WARNING, logger="fallthrough_qdrant"), fallthrough.connect(url) as store:
        assert list(store.documents("dropped")) == []
        assert store.count("dropped") == 0
        assert list(store.search("dropped", text="cement")) == []
        assert [document.id for document in store.documents("kept")] == ["k"]
        store.upsert_documents("dropped", [Document("after", "cement")])  # newer than the drop: written
        assert [document.id for document in store.documents("dropped")] == ["after"]
    assert any("finished the drops of ['dropped']" in record.getMessage() for record in caplog.records)
