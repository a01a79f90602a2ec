"""The adapter over fallthrough's collection API: nested meta, dotted filters, paging, drops, vectors, async close.

Every test here runs on every store of conftest.STORES unless it needs one in particular.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fallthrough
import pytest
from haystack import Document

from haystack_fallthrough import DATETIME_SUFFIX, FallthroughDocumentStore, FallthroughEmbeddingRetriever
from haystack_fallthrough import document_store as document_store_module

NESTED = [
    Document(
        id="a",
        content="lidded box",
        meta={
            "dims": {"width": 30, "unit": "cm"},
            "made": {"on": "2024-03-01T10:00:00Z"},
            "parts": [{"name": "lid", "since": "2020-01-01"}, {"name": "box"}],
        },
    ),
    Document(
        id="b",
        content="open box",
        meta={"dims": {"width": 50}, "made": {"on": "2025-06-01"}, "parts": [{"name": "box"}], "tags": ["x", "y"]},
    ),
    Document(id="c", content="flat", meta={"dims": {"width": 10}}),
]


def _ids(store: FallthroughDocumentStore, field: str, operator: str, value: Any) -> list[str]:
    return [d.id for d in store.filter_documents({"field": field, "operator": operator, "value": value})]


def test_nested_meta_reads_back_as_written(fallthrough_document_store: FallthroughDocumentStore) -> None:
    store = fallthrough_document_store
    assert store.write_documents(NESTED) == 3
    assert store.filter_documents() == NESTED  # the shadows at every depth stay inside the store


def test_a_dotted_haystack_field_filters_the_nested_path(fallthrough_document_store: FallthroughDocumentStore) -> None:
    store = fallthrough_document_store
    store.write_documents(NESTED)
    assert _ids(store, "meta.dims.width", ">", 20) == ["a", "b"]
    assert _ids(store, "meta.dims.unit", "==", "cm") == ["a"]
    assert _ids(store, "meta.dims.unit", "==", None) == ["b", "c"]  # missing at the end of the path
    assert _ids(store, "meta.parts.name", "==", "lid") == ["a"]  # a list of objects: some element holds
    assert _ids(store, "meta.parts.name", "not in", ["lid"]) == ["b", "c"]
    assert store.count_documents_by_filter({"field": "meta.parts.name", "operator": "==", "value": "box"}) == 2
    # ISO dates below the top level compare in time order through the shadow beside them.
    assert _ids(store, "meta.made.on", ">", "2025-01-01") == ["b"]
    assert _ids(store, "meta.made.on", "==", "2024-03-01T11:00:00+01:00") == ["a"]  # the same instant
    assert _ids(store, "meta.parts.since", "<", "2021-01-01") == ["a"]  # and inside a list's objects


def test_the_shadow_sits_beside_its_nested_key_for_other_clients(
    fallthrough_document_store: FallthroughDocumentStore,
) -> None:
    store = fallthrough_document_store
    store.write_documents(NESTED)
    [raw] = store.store.get_documents(store.collection, ["a"])
    assert raw.metadata["made"] == {
        "on": "2024-03-01T10:00:00Z",
        f"on{DATETIME_SUFFIX}": datetime(2024, 3, 1, 10, tzinfo=UTC),
    }
    assert raw.metadata["parts"][0][f"since{DATETIME_SUFFIX}"] == datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("meta", "what"),
    [
        ({"a.b": 1}, "'.'"),  # fallthrough's key rule: a dot would be misread as a path
        ({"dims": {"$w": 1}}, "'\\$'"),
        ({"made": {f"on{DATETIME_SUFFIX}": 1}}, "reserved"),  # the adapter's, at any depth
        ({"grid": [[1, 2]]}, "list"),
    ],
)
def test_nested_meta_fallthrough_refuses_is_a_value_error_and_nothing_written(
    fallthrough_document_store: FallthroughDocumentStore, meta: dict[str, Any], what: str
) -> None:
    store = fallthrough_document_store
    with pytest.raises(ValueError, match=what):
        store.write_documents([Document(id="fine", content="x"), Document(id="bad", content="y", meta=meta)])
    assert store.count_documents() == 0


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pages of 3, so ten documents take four pages and every write lands behind the keyset cursor."""
    monkeypatch.setattr(document_store_module, "PAGE_SIZE", 3)
    return 3


def _ten(status: str) -> list[Document]:
    return [Document(id=f"d{n:02}", content=f"doc {n}", meta={"status": status, "n": n}) for n in range(10)]


def test_update_and_delete_by_filter_page_through_every_match(
    fallthrough_document_store: FallthroughDocumentStore, small_pages: int
) -> None:
    store = fallthrough_document_store
    store.write_documents(_ten("old"))
    old = {"field": "meta.status", "operator": "==", "value": "old"}
    # The update takes each page out of the filter it pages through: nothing may be skipped or repeated.
    assert store.update_by_filter(old, {"status": "new"}) == 10
    assert store.count_documents_by_filter({"field": "meta.status", "operator": "==", "value": "new"}) == 10
    assert [d.meta["n"] for d in store.filter_documents()] == list(range(10))
    assert store.delete_by_filter({"field": "meta.n", "operator": ">=", "value": 2}) == 8
    assert [d.id for d in store.filter_documents()] == ["d00", "d01"]


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_update_by_filter_checks_every_match_before_it_updates_any(
    fallthrough_document_store: FallthroughDocumentStore, small_pages: int, twin: str
) -> None:
    """Another client stored an ISO date under a 250-character key: its ``#datetime`` shadow is too long to write."""
    store = fallthrough_document_store
    store.write_documents(_ten("old"))
    store.store.upsert_documents(
        store.collection, [fallthrough.Document("d09", "doc 9", metadata={"status": "old", "k" * 250: "2024-01-01"})]
    )
    old = {"field": "meta.status", "operator": "==", "value": "old"}
    with pytest.raises(fallthrough.InvalidInput, match="key"):
        if twin == "sync":
            store.update_by_filter(old, {"touched": True})
        else:
            asyncio.run(store.update_by_filter_async(old, {"touched": True}))
    assert store.count_documents_by_filter({"field": "meta.touched", "operator": "==", "value": True}) == 0


@pytest.mark.asyncio
async def test_the_async_twins_page_through_every_match(
    fallthrough_document_store: FallthroughDocumentStore, small_pages: int
) -> None:
    store = fallthrough_document_store
    await store.write_documents_async(_ten("old"))
    old = {"field": "meta.status", "operator": "==", "value": "old"}
    assert await store.update_by_filter_async(old, {"status": "new"}) == 10
    assert await store.count_documents_by_filter_async({**old, "value": "new"}) == 10
    assert len(await store.filter_documents_async()) == 10
    assert await store.delete_by_filter_async({"field": "meta.n", "operator": ">=", "value": 2}) == 8
    assert [d.id for d in await store.filter_documents_async()] == ["d00", "d01"]


def _vectors() -> list[Document]:
    return [
        Document(id="east", content="e", embedding=[1.0, 0.0], meta={"at": {"x": 1}}),
        Document(id="north", content="n", embedding=[0.0, 1.0], meta={"at": {"x": 0}}),
    ]


def test_embeddings_come_back_only_when_asked(fallthrough_document_store: FallthroughDocumentStore) -> None:
    store = fallthrough_document_store
    store.write_documents(_vectors())
    plain = store.embedding_retrieval([1.0, 0.1], top_k=2)
    assert [(d.id, d.embedding) for d in plain] == [("east", None), ("north", None)]
    asked = store.embedding_retrieval(
        [1.0, 0.1], top_k=2, return_embedding=True, filters={"field": "meta.at.x", "operator": "==", "value": 0}
    )
    assert [(d.id, d.embedding, d.meta) for d in asked] == [("north", [0.0, 1.0], {"at": {"x": 0}})]


@pytest.mark.asyncio
async def test_the_retriever_runs_async(fallthrough_document_store: FallthroughDocumentStore) -> None:
    store = fallthrough_document_store
    await store.write_documents_async(_vectors())
    retriever = FallthroughEmbeddingRetriever(store, top_k=1, return_embedding=True)
    [found] = (await retriever.run_async(query_embedding=[0.1, 1.0]))["documents"]
    assert (found.id, found.embedding) == ("north", [0.0, 1.0])
    assert found.score == pytest.approx(0.995, abs=1e-3)
    assert await retriever.run_async(query_embedding=[0.1, 1.0], top_k=0) == {"documents": []}


def test_delete_all_stays_done_on_the_store_that_was_down(open_store: Callable[[str], fallthrough.Store]) -> None:
    store = open_store("failover")
    documents = FallthroughDocumentStore.from_store(store, collection="docs")
    documents.write_documents([Document(id="1", content="written while the first store was down")])
    documents.delete_all_documents()
    assert documents.count_documents() == 0

    # The first store gets the write, then the drop, from the journal: the document must not come back there.
    store.plugin_manager.get_plugin("flaky").outage = False
    assert store.drain(timeout=10)
    result = store.search("docs", filter={"x": {"exists": False}})
    assert (result.backend, list(result)) == ("flaky", [])
    documents.write_documents([Document(id="2", content="after the drop")])
    assert [d.id for d in documents.filter_documents()] == ["2"]
    documents.close()


@pytest.mark.asyncio
async def test_close_works_inside_a_running_loop_and_refuses_later_async_calls() -> None:
    store = FallthroughDocumentStore(["sqlite://"], collection="docs")
    assert await store.write_documents_async([Document(id="1", content="x")]) == 1
    store.close()  # a sync close from async code: the AsyncStore is closed on a thread of its own
    with pytest.raises(fallthrough.FallthroughError, match="closed"):
        await store.count_documents_async()

    other = FallthroughDocumentStore(["sqlite://"], collection="docs")
    await other.close_async()
    with pytest.raises(fallthrough.FallthroughError, match="closed"):
        other.count_documents()  # close_async closed the Store it opened too
