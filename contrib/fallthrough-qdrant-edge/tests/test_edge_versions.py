"""Document versions where the conformance suite cannot look: the engine's condition alone, and old stores.

Stores written before versions existed hold documents without a version
payload and have no index on ``kind`` in their collections; they must read
as version 0 and keep working.
"""

from __future__ import annotations

import base64
import json
import math
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from fallthrough.filters import parse_filter
from fallthrough.testing.drivers import HookDriver
from fallthrough.text import tokenize
from fallthrough.types import Document, SearchQuery, StoredDocument
from qdrant_edge import Distance, EdgeShard, PayloadSchemaType, Point, UpdateOperation

from fallthrough_qdrant_edge import QdrantEdgeBackend
from fallthrough_qdrant_edge.documents import _stored_version_at_most
from fallthrough_qdrant_edge.schema import (
    COLLECTION_POINT_ID,
    collection_path,
    document_point_id,
    shard_config,
    split_version,
)

BIG = (1 << 60) + 2


@pytest.mark.parametrize(
    "stored",
    [BIG + 1, BIG, BIG - 1, BIG - (1 << 31), BIG + (1 << 31), 0, -1, None],
)
def test_the_engine_version_condition_is_the_integer_order(store_dir: Path, stored: int | None) -> None:
    """The condition alone, without the read a delete makes first, writes exactly where stored <= new.

    Versions 1 apart above 2**53 are one float; the halves keep them apart. A
    point without a version (``None``, written before versions) is version 0.
    """
    shard = EdgeShard.create(str(store_dir / "s"), shard_config(None))
    try:
        for new in (BIG, -2):
            payload: dict[str, object] = {"v": "old"}
            if stored is not None:
                high, low = split_version(stored)
                payload |= {"version": stored, "version_high": high, "version_low": low}
            shard.update(UpdateOperation.upsert_points([Point(1, {}, payload)]))
            condition = _stored_version_at_most(new)
            shard.update(UpdateOperation.upsert_points([Point(1, {}, {"v": "new"})], condition=condition))
            # An absent point is written whatever the condition says.
            shard.update(UpdateOperation.upsert_points([Point(2, {}, {"v": "new"})], condition=condition))
            written = {point.id: (point.payload or {})["v"] for point in shard.retrieve([1, 2], True, False)}
            assert written == {1: "new" if (stored or 0) <= new else "old", 2: "new"}
            shard.update(UpdateOperation.delete_points([2]))
    finally:
        shard.close()


def _old_collection(root: Path, name: str, documents: list[Document]) -> None:
    """A collection shard exactly as the plugin wrote it before versions: no version, no index on kind."""
    path = collection_path(root, name)
    path.mkdir(parents=True)
    shard = EdgeShard.create(str(path), shard_config(None))
    try:
        shard.update(UpdateOperation.create_field_index("tokens", PayloadSchemaType.Keyword))
        shard.update(UpdateOperation.create_dense_vector("dense", 2, Distance.Cosine))
        shard.update(
            UpdateOperation.upsert_points([Point(COLLECTION_POINT_ID, {}, {"kind": "collection", "dimension": 2})])
        )
        points = []
        for document in documents:
            assert document.vector is not None
            norm = math.hypot(*document.vector)
            points.append(
                Point(
                    document_point_id(document.id),
                    {"dense": [component / norm for component in document.vector]},
                    {
                        "kind": "document",
                        "id": document.id,
                        "text": document.text,
                        "tokens": sorted(set(tokenize(document.text))),
                        "vector": base64.b64encode(np.asarray(document.vector, dtype="<f4").tobytes()).decode(),
                        "meta": document.metadata,
                        "meta_json": json.dumps(document.metadata, separators=(",", ":")),
                    },
                )
            )
        shard.update(UpdateOperation.upsert_points(points))
    finally:
        shard.close()


def test_a_store_written_before_versions_reads_as_version_zero_and_keeps_working(store_dir: Path) -> None:
    old = [
        Document("a", "red apple", (1.0, 0.0), {"n": 1}),
        Document("b", "green apple", (0.0, 1.0), {"n": 2}),
        Document("c", "red cherry", (1.0, 1.0), {"n": 3}),
    ]
    _old_collection(store_dir, "Fruit", old)
    driver = HookDriver(QdrantEdgeBackend(f"qdrant+edge:///{store_dir}"), "qdrant+edge")
    driver.open()
    try:
        assert driver.call("fallthrough_list_collections") == ["Fruit"]
        assert driver.call("fallthrough_get_documents", collection="Fruit", ids=("c", "a", "b")) == [
            old[2],
            old[0],
            old[1],
        ]
        entries = driver.call("fallthrough_document_versions", collection="Fruit", ids=("a", "b", "c"))
        assert entries == [StoredDocument(document.id, 0, document) for document in old]
        # Version 0 is >= 0: a write at 0 replaces an old document, a delete at 0 tombstones one.
        driver.call(
            "fallthrough_upsert_documents", collection="Fruit", documents=(Document("a", "red apple pie"),), version=0
        )
        assert driver.call("fallthrough_delete_documents", collection="Fruit", ids=("b",), version=0) == 1
        # Below 0 (no core stamps one, but the order is the integers'): an old document is newer.
        assert driver.call("fallthrough_delete_documents", collection="Fruit", ids=("c",), version=-1) == 0
        scanned = []
        after = None
        while page := driver.call("fallthrough_scan_documents", collection="Fruit", after=after, limit=1):
            scanned.extend(page)
            after = page[-1].id
        assert sorted(scanned, key=lambda entry: entry.id) == [
            StoredDocument("a", 0, Document("a", "red apple pie")),
            StoredDocument("b", 0, None),
            StoredDocument("c", 0, old[2]),
        ]

        def search(
            text: str | None = None, vector: tuple[float, ...] | None = None, filter: dict[str, object] | None = None
        ) -> list[str]:
            query = SearchQuery(vector=vector, text=text, filter=parse_filter(filter), limit=10)
            return [hit.id for hit in driver.call("fallthrough_search", collection="Fruit", query=query)]

        # The index on kind is created when the old shard is opened; the tombstone is in no result.
        assert search(text="red") == ["c", "a"]  # "a" has three tokens now, so a smaller share named
        assert search(vector=(0.0, 1.0)) == ["c"]  # "a" was rewritten without a vector
        assert search(filter={"not": {"n": 1}}) == ["a", "c"]
        assert search() == ["a", "c"]
    finally:
        driver.close()


def test_a_tombstone_is_in_no_search_and_a_newer_write_brings_the_id_back(store_dir: Path) -> None:
    driver = HookDriver(QdrantEdgeBackend(f"qdrant+edge:///{store_dir}"), "qdrant+edge")
    driver.open()
    try:
        documents = (Document("x", "hello world", (1.0, 0.0), {"k": "v"}), Document("y", "hello", (0.0, 1.0)))
        driver.call("fallthrough_upsert_documents", collection="c", documents=documents, version=10)
        assert driver.call("fallthrough_delete_documents", collection="c", ids=("x", "x", "never"), version=11) == 1
        for query in (
            SearchQuery(vector=None, text="hello", filter=None, limit=10),
            SearchQuery(vector=(1.0, 0.0), text=None, filter=None, limit=10),
            SearchQuery(vector=None, text=None, filter=parse_filter({"not": {"k": "zzz"}}), limit=10),
            SearchQuery(vector=None, text=None, filter=None, limit=10),
        ):
            assert [hit.id for hit in driver.call("fallthrough_search", collection="c", query=query)] == ["y"]
        # A replayed older write stays out; a newer one, or one at the tombstone's own version, comes back.
        driver.call("fallthrough_upsert_documents", collection="c", documents=documents[:1], version=10)
        assert driver.call("fallthrough_get_documents", collection="c", ids=("x",)) == []
        driver.call("fallthrough_upsert_documents", collection="c", documents=documents[:1], version=11)
        assert driver.call("fallthrough_get_documents", collection="c", ids=("x",)) == [documents[0]]
        query = SearchQuery(vector=None, text="world", filter=None, limit=10)
        assert [hit.id for hit in driver.call("fallthrough_search", collection="c", query=query)] == ["x"]
    finally:
        driver.close()


def test_threads_writing_and_deleting_at_shuffled_versions_leave_the_newest_entry(store_dir: Path) -> None:
    """Writes arrive out of version order from eight threads; each id ends at its greatest version.

    Versions are distinct, so exactly one entry per id is the newest: a document where that write was an
    upsert, a tombstone where it was a delete.
    """
    ids = [f"d{index}" for index in range(20)]
    writes = [(version, ids[version % len(ids)], version % 3 == 0) for version in range(1, 401)]
    random.Random(9).shuffle(writes)
    driver = HookDriver(QdrantEdgeBackend(f"qdrant+edge:///{store_dir}"), "qdrant+edge")
    driver.open()
    errors: list[BaseException] = []

    def work(share: list[tuple[int, str, bool]]) -> None:
        try:
            for version, document_id, delete in share:
                if delete:
                    driver.call("fallthrough_delete_documents", collection="c", ids=(document_id,), version=version)
                else:
                    document = Document(document_id, f"v{version}", (1.0, float(version)))
                    driver.call("fallthrough_upsert_documents", collection="c", documents=(document,), version=version)
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=work, args=(writes[worker::8],)) for worker in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        newest = {document_id: max(write for write in writes if write[1] == document_id) for document_id in ids}
        expected = [
            StoredDocument(
                document_id,
                version,
                None if delete else Document(document_id, f"v{version}", (1.0, float(version))),
            )
            for document_id, (version, _, delete) in newest.items()
        ]
        assert driver.call("fallthrough_document_versions", collection="c", ids=tuple(ids)) == expected
    finally:
        driver.close()
