"""Versions, tombstones and the repair reads, where Qdrant's own layout shows.

The conformance suite checks what every backend answers. These tests check
what only this layout can get wrong: a store written before versions
existed, versions past 2**53 (float range bounds), tombstones as payload-only
points that every read leaves out, an id split over the two collections of a
document collection, paging by point id with scroll's inclusive offset, the
collection names spelt back from Qdrant's, and the guarded upserts of a merge.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import cast

import pytest
from qdrant_client import QdrantClient, models

from fallthrough.ordering import content_tiebreak
from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.twin import Twin, at
from fallthrough.types import Document, Record, SearchQuery, Status, StoredDocument
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.documents import encode
from fallthrough_qdrant.schema import document_point_id, point_order
from tests.qdrant.recording import RecordingClient, indexing, server_paths

V = 1_700_000_000_000_000  # a version, microseconds since the epoch


def _recorded(prefix: str = "v_", indexed: bool = False, server: bool = False) -> tuple[HookDriver, RecordingClient]:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend(f"qdrant+memory://?prefix={prefix}", client_factory=lambda: cast(QdrantClient, client))
    if server:
        server_paths(backend)
    driver = HookDriver(indexing(backend) if indexed else backend, "qdrant")
    driver.open()
    return driver, client


def _query(text: str | None = None, limit: int = 10) -> SearchQuery:
    return SearchQuery(vector=None, text=text, filter=None, limit=limit)


# -- a store written before versions ----------------------------------------


def _old_point(document: Document) -> models.PointStruct:
    """A document point as the plugin wrote it before versions: no version fields, no tombstone flag."""
    return models.PointStruct(
        id=document_point_id(document.id),
        vector=list(document.vector) if document.vector is not None else {},
        payload=encode(document),
    )


def test_documents_written_before_versions_are_read_and_count_as_version_0(tmp_path: Path) -> None:
    path = tmp_path / "old"
    old = QdrantClient(path=str(path))
    old.create_collection("fallthrough_docs_shop", vectors_config={})
    old.create_collection(
        "fallthrough_vecs_shop", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE)
    )
    old.upsert("fallthrough_docs_shop", [_old_point(Document("a", "red brick", None, {"n": 1}))])
    old.upsert("fallthrough_vecs_shop", [_old_point(Document("b", "blue tile", (1.0, 0.0)))])
    old.close()

    driver = HookDriver(QdrantBackend(f"qdrant+local:///{path}"), "qdrant")
    driver.open()
    try:
        assert driver.call("fallthrough_get_documents", collection="shop", ids=["a", "b"]) == [
            Document("a", "red brick", None, {"n": 1}),
            Document("b", "blue tile", (1.0, 0.0)),
        ]
        assert [hit.id for hit in driver.call("fallthrough_search", collection="shop", query=_query("brick"))] == ["a"]
        assert driver.call("fallthrough_list_collections") == ["shop"]
        versions = driver.call("fallthrough_document_versions", collection="shop", ids=["a", "b"])
        assert [(entry.id, entry.version) for entry in versions] == [("a", 0), ("b", 0)]
        # Version 0 is older than any write: both give way.
        driver.call("fallthrough_upsert_documents", collection="shop", documents=[Document("a", "new")], version=1)
        assert driver.call("fallthrough_delete_documents", collection="shop", ids=["b"], version=1) == 1
        assert driver.call("fallthrough_get_documents", collection="shop", ids=["a", "b"]) == [Document("a", "new")]
    finally:
        driver.close()


# -- versions stored and compared exactly ------------------------------------


def test_versions_past_2_53_are_compared_exactly(twin: Twin) -> None:
    """2**62 and 2**62 + 1 are one float; the halves tell them apart."""
    collection = twin.new_collection()
    big = 2**62
    twin.upsert(collection, Document("a", "newer"), version=big + 1)
    twin.upsert(collection, Document("a", "older by one microsecond"), version=big)
    assert twin.get(collection, "a") == [Document("a", "newer")]
    assert twin.delete(collection, "a", version=big) == 0
    assert twin.delete(collection, "a", version=big + 1) == 1
    entries = twin.call("fallthrough_document_versions", collection=collection, ids=["a"])
    assert entries == [StoredDocument("a", big + 1, None)]


def test_the_conditional_write_is_the_stores_not_the_read_before() -> None:
    """The upsert carries the version filter: replayed over a newer entry, Qdrant itself refuses it.

    The versions are 2**62 and 2**62 + 1, one float: only a comparison of the halves keeps them apart.
    """
    driver, client = _recorded()
    big = 2**62
    driver.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "older")], version=big)
    (args, kwargs) = client.named("upsert")[-1]
    assert isinstance(kwargs["update_filter"], models.Filter)
    driver.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "newer")], version=big + 1)
    client.upsert(*args, **kwargs)
    assert driver.call("fallthrough_get_documents", collection="c", ids=["a"]) == [Document("a", "newer")]
    # The delete's filter too: a tombstone at big does not replace the document at big + 1.
    driver.call("fallthrough_delete_documents", collection="c", ids=["a"], version=big)
    driver.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "newest")], version=big + 1)
    assert driver.call("fallthrough_get_documents", collection="c", ids=["a"]) == [Document("a", "newest")]
    driver.close()


# -- tombstones ---------------------------------------------------------------


def test_a_tombstone_is_a_payload_only_point_and_the_vector_point_goes() -> None:
    driver, client = _recorded()
    driver.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "x", (1.0, 0.0))], version=V)
    assert driver.call("fallthrough_delete_documents", collection="c", ids=["a", "never"], version=V + 1) == 1
    assert client.count("v_vecs_c", exact=True).count == 0
    points, _ = client.scroll("v_docs_c", with_payload=True, with_vectors=True)
    assert sorted((point.payload or {})["id"] for point in points) == ["a", "never"]
    for point in points:
        assert point.vector == {}
        assert (point.payload or {})["tombstone"] is True
        assert "text" not in (point.payload or {}) and "metadata" not in (point.payload or {})
    # Vector and filter-only searches see nothing.
    assert driver.call("fallthrough_search", collection="c", query=_query()) == []
    vector_query = SearchQuery(vector=(1.0, 0.0), text=None, filter=None, limit=5)
    assert driver.call("fallthrough_search", collection="c", query=vector_query) == []
    driver.close()


def test_delete_in_a_collection_never_seen_creates_it_with_tombstones(twin: Twin) -> None:
    collection = twin.new_collection()
    version = twin.next_version()
    assert twin.delete(collection, "ghost", version=version) == 0
    assert collection in twin.call("fallthrough_list_collections")
    twin.upsert(collection, Document("ghost", "back from an older write"), version=version - 1)
    assert twin.get(collection, "ghost") == []


def test_an_id_in_both_collections_reads_as_its_newer_entry() -> None:
    """Two writers moving one id between the collections at once (a server) may leave a point in each."""
    driver, client = _recorded()
    driver.call(
        "fallthrough_upsert_documents", collection="c", documents=[Document("a", "vector", (1.0, 0.0))], version=V
    )
    stale = Document("a", "stale plain")
    client.create_collection("v_docs_c", vectors_config={})
    client.upsert(
        "v_docs_c",
        [models.PointStruct(id=document_point_id("a"), vector={}, payload={**encode(stale), "version": V - 1})],
    )
    assert driver.call("fallthrough_get_documents", collection="c", ids=["a"]) == [Document("a", "vector", (1.0, 0.0))]
    versions = driver.call("fallthrough_document_versions", collection="c", ids=["a"])
    assert [(entry.id, entry.version) for entry in versions] == [("a", V)]
    assert [entry.id for entry in driver.call("fallthrough_scan_documents", collection="c", after=None, limit=5)] == [
        "a"
    ]
    driver.close()


# -- paging: by point id on a server, by document id in local mode ----------------


@pytest.mark.parametrize("server", [True, False], ids=["server paths", "local order"])
def test_scan_pages_both_collections_with_tombstones_in_the_paths_order(url: str, server: bool) -> None:
    """A server pages by point id (what its scroll gives); local mode by document id, from the ids it keeps."""
    backend = QdrantBackend(url)
    driver = HookDriver(server_paths(backend) if server else backend, "qdrant")
    driver.open()
    ids = [f"d{i}" for i in range(12)]
    with_vectors = [Document(i, i, (1.0, float(n))) for n, i in enumerate(ids[:5])]
    without = [Document(i, i) for i in ids[5:]]
    driver.call("fallthrough_upsert_documents", collection="c", documents=with_vectors + without, version=V)
    driver.call("fallthrough_delete_documents", collection="c", ids=["d0", "d7", "x"], version=V + 1)
    seen: list[StoredDocument] = []
    after = None
    while True:
        page = driver.call("fallthrough_scan_documents", collection="c", after=after, limit=4)
        seen.extend(page)
        if len(page) < 4:
            break
        after = page[-1].id
    expected = sorted([*ids, "x"], key=lambda i: point_order(document_point_id(i)) if server else i)
    assert [entry.id for entry in seen] == expected
    tombstones = {entry.id for entry in seen if entry.document is None}
    assert tombstones == {"d0", "d7", "x"}
    assert all(entry.version == (V + 1 if entry.id in tombstones else V) for entry in seen)
    assert driver.call("fallthrough_scan_documents", collection="nowhere", after=None, limit=4) == []
    driver.close()


def test_scan_and_list_batches_scroll_from_the_cursors_point_id_on_a_server() -> None:
    driver, client = _recorded(server=True)
    driver.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "x")], version=V)
    batch_id = uuid.uuid4()
    driver.call("fallthrough_create_batch", batch_id=batch_id, keys=["k"], first_seq=1, metadata={}, created_at=at(0))
    client.calls.clear()
    driver.call("fallthrough_scan_documents", collection="c", after="a", limit=3)
    driver.call("fallthrough_list_batches", after=batch_id, limit=3)
    scrolls = client.named("scroll")
    assert [kwargs["offset"] for _, kwargs in scrolls] == [document_point_id("a"), str(batch_id)]
    assert all(kwargs["limit"] == 4 for _, kwargs in scrolls), "one more than the page: the offset is inclusive"
    driver.close()


def test_list_batches_pages_in_uuid_order_with_totals(twin: Twin) -> None:
    batch_ids = sorted(twin.new_batch(["a", "b"][: n % 3]) for n in range(7))
    seen = []
    after = None
    while True:
        page = twin.call("fallthrough_list_batches", after=after, limit=3)
        seen.extend(page)
        if len(page) < 3:
            break
        after = page[-1].id
    assert [batch.id for batch in seen] == batch_ids
    assert sorted(batch.total for batch in seen) == sorted(min(n % 3, 2) for n in range(7))


# -- collection names ---------------------------------------------------------


def test_list_collections_spells_names_back_and_keeps_to_its_prefix() -> None:
    driver, client = _recorded(prefix="p_")
    for name in ("Docs", "docs", "a-B_c", "vecs_x"):
        driver.call("fallthrough_upsert_documents", collection=name, documents=[Document("1", "x")], version=V)
    driver.call("fallthrough_delete_documents", collection="Gone", ids=["1"], version=V)
    # Another prefix's collections, and one of this prefix's that holds nothing, are not listed.
    client.create_collection("p_docs_empty", vectors_config={})
    client.create_collection("p_x_docs_other", vectors_config={})
    client.upsert("p_x_docs_other", [models.PointStruct(id=str(uuid.uuid4()), vector={}, payload={"id": "1"})])
    assert driver.call("fallthrough_list_collections") == sorted(["Docs", "Gone", "a-B_c", "docs", "vecs_x"])
    driver.close()


# -- merging records ----------------------------------------------------------


def _record(batch_id: uuid.UUID, key: str, seq: int, status: str, attempt: int, micros: int) -> Record:
    result = {"ok": key} if status == "completed" else None
    return Record(batch_id, key, seq, Status(status), attempt, result, None, at(micros))


def test_merge_sends_inserts_and_guarded_conditional_upserts() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=["a", "b", "c"], first_seq=10, metadata={}, created_at=at(0)
    )
    client.calls.clear()
    records = [
        _record(batch_id, "a", 11, "completed", 0, 5),  # greater state, later seq: state only
        _record(batch_id, "b", 3, "pending", 0, 0),  # the same state, lower seq: seq only
        _record(batch_id, "c", 12, "pending", 0, 0),  # nothing to change
        _record(batch_id, "new", 7, "failed", 2, 9),  # absent: inserted as is
    ]
    assert driver.call("fallthrough_merge_records", batch_id=batch_id, records=records) == 3
    upserts = client.named("upsert")
    assert [kwargs.get("update_mode") for _, kwargs in upserts] == [
        models.UpdateMode.INSERT_ONLY,
        models.UpdateMode.UPDATE_ONLY,
        models.UpdateMode.UPDATE_ONLY,
    ]
    for _, kwargs in upserts[1:]:
        clauses = kwargs["update_filter"].should
        assert len(clauses) == 1 and isinstance(clauses[0].must[0], models.HasIdCondition)
    got = driver.call("fallthrough_get_records", batch_id=batch_id, keys=["new", "a", "b", "c", "nope"])
    assert [(r.key, r.seq, r.status, r.attempt) for r in got] == [
        ("new", 7, Status.FAILED, 2),
        ("a", 10, Status.COMPLETED, 0),
        ("b", 3, Status.PENDING, 0),
        ("c", 12, Status.PENDING, 0),
    ]
    stored, _ = client.scroll("v_processing_results", with_payload=True, limit=10)
    payload = next(point.payload or {} for point in stored if (point.payload or {})["key"] == "a")
    assert payload["tiebreak"] == content_tiebreak(Status.COMPLETED, {"ok": "a"}, None)
    assert json.loads(payload["result"]) == {"ok": "a"}
    # A second merge of the same states changes nothing and sends no conditional upsert.
    client.calls.clear()
    assert driver.call("fallthrough_merge_records", batch_id=batch_id, records=records) == 0
    assert client.named("upsert") == []
    driver.close()


def test_merge_guards_refuse_what_changed_since_the_read() -> None:
    """Replayed as sent, over a state that moved on, the guarded upserts write nothing."""
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=["a", "b"], first_seq=10, metadata={}, created_at=at(0)
    )
    records = [_record(batch_id, "a", 10, "processing", 0, 5), _record(batch_id, "b", 4, "pending", 0, 0)]
    client.calls.clear()
    driver.call("fallthrough_merge_records", batch_id=batch_id, records=records)
    sent = client.named("upsert")
    newer = [_record(batch_id, "a", 10, "completed", 0, 9), _record(batch_id, "b", 4, "processing", 0, 9)]
    driver.call("fallthrough_merge_records", batch_id=batch_id, records=newer)
    before = driver.call("fallthrough_get_records", batch_id=batch_id, keys=["a", "b"])
    # b's stored seq is lowered further by hand, so its seq guard must fail too.
    for args, kwargs in sent:
        client.upsert(*args, **kwargs)
    assert driver.call("fallthrough_get_records", batch_id=batch_id, keys=["a", "b"]) == before
    driver.close()


def test_merge_into_a_missing_batch_writes_nothing(twin: Twin) -> None:
    from fallthrough.errors import NotFound

    batch_id = uuid.uuid4()
    with pytest.raises(NotFound):
        twin.call("fallthrough_merge_records", batch_id=batch_id, records=[_record(batch_id, "a", 1, "pending", 0, 0)])
    assert twin.call("fallthrough_get_records", batch_id=batch_id, keys=["a"]) == []


def test_repair_batch_overwrites_the_header_and_keeps_the_records(twin: Twin) -> None:
    batch_id = twin.new_batch(["a"], metadata={"v": 2}, created_at=at(5))
    twin.call("fallthrough_repair_batch", batch_id=batch_id, metadata={"v": 1}, created_at=at(1))
    batch = twin.batch(batch_id)
    assert batch is not None and (batch.metadata, batch.created_at, batch.total) == ({"v": 1}, at(1), 1)
    fresh = uuid.uuid4()
    twin.call("fallthrough_repair_batch", batch_id=fresh, metadata={}, created_at=at(2))
    assert twin.call("fallthrough_get_batch", batch_id=fresh).total == 0


def test_collections_from_before_versions_get_the_version_indexes_at_their_first_write() -> None:
    """A server in strict mode refuses the version filter on fields without an index."""
    driver, client = _recorded(indexed=True)
    client.create_collection("v_docs_c", vectors_config={})
    client.create_collection("v_vecs_c", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE))
    client.calls.clear()
    driver.call("fallthrough_delete_documents", collection="c", ids=["a"], version=V)
    indexed = {(args[0], args[1]) for args, _ in client.named("create_payload_index")}
    for collection in ("v_docs_c", "v_vecs_c"):
        assert {(collection, field) for field in ("tombstone", "v_hi", "v_lo")} <= indexed
    driver.close()


def test_versions_and_tombstones_survive_reopening_a_directory(tmp_path: Path) -> None:
    url = f"qdrant+local:///{tmp_path}/q"
    first = HookDriver(QdrantBackend(url), "qdrant")
    first.open()
    first.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "x", (0.0, 1.0))], version=V)
    first.call("fallthrough_delete_documents", collection="c", ids=["a"], version=V + 1)
    first.call("fallthrough_upsert_documents", collection="c", documents=[Document("b", "y")], version=2**62)
    first.close()
    second = HookDriver(QdrantBackend(url), "qdrant")
    second.open()
    try:
        second.call("fallthrough_upsert_documents", collection="c", documents=[Document("a", "late")], version=V)
        second.call(
            "fallthrough_upsert_documents", collection="c", documents=[Document("b", "late")], version=2**62 - 1
        )
        entries = second.call("fallthrough_document_versions", collection="c", ids=["a", "b"])
        assert entries == [StoredDocument("a", V + 1, None), StoredDocument("b", 2**62, Document("b", "y"))]
    finally:
        second.close()
