"""What a server depends on: payload indexes, conditional writes, progress in a facet (listing: test_qdrant_paging)."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime
from typing import Any, cast

from qdrant_client import QdrantClient, models

from fallthrough.filters import parse_filter
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.testing.twin import at
from fallthrough.types import Document, RecordUpdate, SearchQuery
from fallthrough_qdrant import QdrantBackend
from tests.qdrant.recording import RecordingClient, indexing, server_paths


def _recorded(prefix: str = "idx_", server: bool = False) -> tuple[HookDriver, RecordingClient]:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend(f"qdrant+memory://?prefix={prefix}", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(indexing(server_paths(backend) if server else backend), "qdrant")
    driver.open()
    return driver, client


def _indexes(client: RecordingClient) -> dict[tuple[str, str], Any]:
    indexes = {}
    for args, kwargs in client.named("create_payload_index"):
        collection, field = args[:2]
        indexes[(collection, field)] = kwargs["field_schema"]
    return indexes


def test_open_creates_the_records_indexes_a_server_needs() -> None:
    driver, client = _recorded()
    indexes = _indexes(client)
    for field in ("batch_id", "key", "status"):
        assert indexes[("idx_processing_results", field)] == models.PayloadSchemaType.KEYWORD
    seq = indexes[("idx_processing_results", "seq")]
    assert isinstance(seq, models.IntegerIndexParams) and seq.range, "order_by on seq needs a range index"
    for field in ("attempt", "rank", "us_hi", "us_lo", "tb_hi", "tb_lo"):  # the merge filter's fields
        assert isinstance(indexes[("idx_processing_results", field)], models.IntegerIndexParams)
    created = {args[0]: kwargs for args, kwargs in client.named("create_collection")}
    assert created["idx_processing_results"]["vectors_config"] == {}, "records are payload-only points"
    # Opening looks for batch deletions a killed process left unfinished with a filter on the mark.
    assert indexes[("idx_batches", "deleting")] == models.PayloadSchemaType.BOOL
    driver.close()


def test_local_mode_creates_no_payload_index_so_it_warns_of_none() -> None:
    """Local mode ignores payload indexes and warns at the first one: every command line on it showed the warning."""
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=quiet_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(backend, "qdrant")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        driver.open()
        driver.call(
            "fallthrough_create_batch", batch_id=uuid.uuid4(), keys=["a"], first_seq=1, metadata={}, created_at=at(0)
        )
        documents = (Document("d", "x", vector=(1.0, 0.0), metadata={"at": datetime(2026, 12, 4, tzinfo=UTC)}),)
        driver.call("fallthrough_upsert_documents", collection="shop", documents=documents, version=fresh_version())
        driver.call("fallthrough_delete_documents", collection="shop", ids=["d"], version=fresh_version())
        driver.close()
    assert client.named("create_payload_index") == []
    assert [str(warning.message) for warning in caught] == []


def test_document_collections_get_the_token_and_id_indexes_and_cosine_vectors() -> None:
    driver, client = _recorded()
    driver.call(
        "fallthrough_upsert_documents",
        collection="shop",
        documents=(Document("a", "Цемент М-500"), Document("b", "x", vector=(1.0, 0.0))),
        version=fresh_version(),
    )
    indexes = _indexes(client)
    for collection in ("idx_docs_shop", "idx_vecs_shop"):
        assert indexes[(collection, "tokens")] == models.PayloadSchemaType.KEYWORD
        assert indexes[(collection, "id")] == models.PayloadSchemaType.KEYWORD
    created = {args[0]: kwargs for args, kwargs in client.named("create_collection")}
    assert created["idx_docs_shop"]["vectors_config"] == {}
    assert created["idx_vecs_shop"]["vectors_config"] == models.VectorParams(size=2, distance=models.Distance.COSINE)
    driver.close()


def test_updates_are_conditional_upserts_that_never_create_a_record() -> None:
    driver, client = _recorded()
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=["a", "b"], first_seq=1, metadata={}, created_at=at(0)
    )
    client.calls.clear()
    updates = (RecordUpdate(batch_id, "a", "completed"), RecordUpdate(batch_id, "b", "completed"))
    applied = driver.call("fallthrough_update_records", updates=updates, updated_at=at(1))
    assert [update.key for update in applied] == ["a", "b"]
    upserts = client.named("upsert")
    assert len(upserts) == 1, "updates sharing a merge key go in one conditional upsert"
    (_, kwargs) = upserts[0]
    assert kwargs["update_mode"] == models.UpdateMode.UPDATE_ONLY
    assert isinstance(kwargs["update_filter"], models.Filter) and kwargs["update_filter"].should
    driver.close()


def test_progress_on_the_server_path_is_one_facet_after_the_batch_check() -> None:
    driver, client = _recorded(server=True)
    batch_id = uuid.uuid4()
    driver.call(
        "fallthrough_create_batch", batch_id=batch_id, keys=["a", "b"], first_seq=1, metadata={}, created_at=at(0)
    )
    client.calls.clear()
    progress = driver.call("fallthrough_progress", batch_id=batch_id)
    assert (progress.total, progress.pending) == (2, 2)
    assert [name for name, _, _ in client.calls] == ["retrieve", "facet"]
    (_, kwargs) = client.named("facet")[0]
    assert kwargs["key"] == "status" and kwargs["exact"] is True
    driver.close()


def test_a_vector_search_sends_a_conjunction_flat_where_local_mode_checks_every_point() -> None:
    driver, client = _recorded()
    documents = tuple(Document(f"d{i}", "x", vector=(1.0, float(i)), metadata={"category": i % 3}) for i in range(6))
    driver.call("fallthrough_upsert_documents", collection="flat", documents=documents, version=fresh_version())

    def sent_filter(filter: dict[str, Any]) -> models.Filter:
        client.calls.clear()
        query = SearchQuery(vector=(1.0, 0.0), text=None, filter=parse_filter(filter), limit=2)
        hits = driver.call("fallthrough_search", collection="flat", query=query)
        assert [hit.id for hit in hits] == ["d1", "d4"]  # the two of category 1, nearest first
        ((_, kwargs),) = client.named("query_points")
        sent = kwargs["query_filter"]
        assert isinstance(sent, models.Filter)
        return sent

    one = sent_filter({"category": 1})
    assert one.should is None and one.must_not is None
    assert isinstance(one.must, list) and len(one.must) == 1 and isinstance(one.must[0], models.FieldCondition)
    both = sent_filter({"category": 1, "or": [{"category": 1}, {"category": 2}]})
    assert isinstance(both.must, list) and len(both.must) == 2  # the conjuncts, each as compiled
    assert isinstance(both.must[0], models.FieldCondition) and isinstance(both.must[1], models.Filter)
    driver.close()
