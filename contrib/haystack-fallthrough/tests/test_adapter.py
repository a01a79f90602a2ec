"""What the adapter adds to Haystack's suite: what it refuses, how it serialises, dates, the retriever, failover."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import fallthrough
import numpy
import pytest
from fallthrough.testing.faults import connect_with_a_text_only_fallback
from haystack import Document, Pipeline
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils import Secret

from haystack_fallthrough import DATETIME_SUFFIX, FallthroughDocumentStore, FallthroughEmbeddingRetriever
from haystack_fallthrough.document_store import PAGE_SIZE
from haystack_fallthrough.filters import translate


@pytest.fixture
def sqlite_store() -> Iterator[FallthroughDocumentStore]:
    store = FallthroughDocumentStore(["sqlite://"], collection="docs")
    yield store
    store.close()


@pytest.mark.parametrize(
    ("document", "what"),
    [
        (Document(content="x", blob=ByteStream(b"pdf")), "blob"),
        (Document(content="x", sparse_embedding=SparseEmbedding(indices=[1], values=[0.5])), "sparse_embedding"),
        (Document(content="x", meta={f"date{DATETIME_SUFFIX}": 1}), "reserved"),
    ],
)
def test_what_cannot_be_kept_is_refused_and_nothing_written(
    sqlite_store: FallthroughDocumentStore, document: Document, what: str
) -> None:
    with pytest.raises(fallthrough.InvalidInput, match=what):
        sqlite_store.write_documents([Document(content="fine"), document])
    assert sqlite_store.count_documents() == 0


@pytest.mark.parametrize(
    ("meta", "hint"),
    [({"n": numpy.int64(3)}, r"give value\.item\(\)"), ({"score": math.nan}, "for a missing value give None")],
    ids=["numpy-int64", "nan"],
)
def test_a_meta_refused_in_a_bulk_write_names_its_document_and_the_way_out(
    sqlite_store: FallthroughDocumentStore, meta: dict[str, object], hint: str
) -> None:
    """What a DataFrame's rows hold: the message says which of the documents, and what to give instead."""
    documents = [Document(id=f"d{i}", content="fine", meta={"n": 1}) for i in range(3)]
    with pytest.raises(fallthrough.InvalidInput, match=rf"documents\[3\] \(id 'bad'\): metadata.*{hint}"):
        sqlite_store.write_documents([*documents, Document(id="bad", content="x", meta=meta)])
    assert sqlite_store.count_documents() == 0


def test_a_repeated_id_fails_under_fail_and_skip_keeps_the_first(
    sqlite_store: FallthroughDocumentStore,
) -> None:
    first, second = Document(id="1", content="first"), Document(id="1", content="second")
    with pytest.raises(DuplicateDocumentError, match="repeat"):
        sqlite_store.write_documents([first, second], policy=DuplicatePolicy.FAIL)
    assert sqlite_store.count_documents() == 0
    assert sqlite_store.write_documents([first, second], policy=DuplicatePolicy.SKIP) == 1
    assert [d.content for d in sqlite_store.filter_documents()] == ["first"]
    sqlite_store.write_documents([first, second], policy=DuplicatePolicy.OVERWRITE)
    assert [d.content for d in sqlite_store.filter_documents()] == ["second"]


@pytest.mark.parametrize("policy", [DuplicatePolicy.SKIP, DuplicatePolicy.OVERWRITE])
def test_write_documents_counts_what_it_wrote_as_haystacks_in_memory_store_does(
    sqlite_store: FallthroughDocumentStore, policy: DuplicatePolicy
) -> None:
    """Haystack's own store is the judge of the count, a repeated id and an id stored before included."""
    peer = InMemoryDocumentStore()
    stored = Document(id="stored", content="before")
    calls = [
        [stored],
        [Document(id="1", content="first"), Document(id="1", content="second"), Document(id="stored", content="x")],
        [Document(id="2", content="a"), Document(id="3", content="b")],
    ]
    for documents in calls:
        assert sqlite_store.write_documents(documents, policy=policy) == peer.write_documents(documents, policy=policy)
    assert sqlite_store.filter_documents() == sorted(peer.filter_documents(), key=lambda d: d.id)

    again = [Document(id="4", content="c"), Document(id="4", content="d"), Document(id="2", content="e")]

    async def write_again() -> int:
        return await sqlite_store.write_documents_async(again, policy=policy)

    assert asyncio.run(write_again()) == peer.write_documents(again, policy=policy)


def test_an_iso_date_reads_back_as_written_and_compares_as_an_instant(sqlite_store: FallthroughDocumentStore) -> None:
    documents = [
        Document(id="naive", content="a", meta={"date": "1969-07-21T20:17:40"}),
        Document(id="offset", content="b", meta={"date": "1969-07-21T21:17:40+01:00"}),
        Document(id="later", content="c", meta={"date": "1989-11-09"}),
        Document(id="number", content="d", meta={"date": "2025"}),  # not an ISO date: a plain string
    ]
    sqlite_store.write_documents(documents)
    assert sqlite_store.filter_documents() == sorted(documents, key=lambda d: d.id)  # shadows never come out
    same_instant = {"field": "meta.date", "operator": "==", "value": "1969-07-21T20:17:40Z"}
    assert [d.id for d in sqlite_store.filter_documents(same_instant)] == ["naive", "offset"]
    assert [d.id for d in sqlite_store.filter_documents({**same_instant, "operator": "!="})] == ["later", "number"]
    after = {"field": "meta.date", "operator": ">", "value": datetime(1970, 1, 1, tzinfo=UTC)}
    assert [d.id for d in sqlite_store.filter_documents(after)] == ["later"]
    with pytest.raises(FilterError, match="ISO-8601"):
        sqlite_store.filter_documents({"field": "meta.date", "operator": "<", "value": "2025"})


def test_the_chunks_of_an_overlapping_split_are_written_with_their_ranges_as_lists(
    sqlite_store: FallthroughDocumentStore,
) -> None:
    # DocumentSplitter keeps each overlap's range as a tuple; a JSON store keeps a list.
    from haystack.components.preprocessors import DocumentSplitter

    splitter = DocumentSplitter(split_by="word", split_length=5, split_overlap=2)
    chunks = splitter.run([Document(content=" ".join(f"w{n}" for n in range(12)))])["documents"]
    ranges = [overlap["range"] for chunk in chunks for overlap in chunk.meta["_split_overlap"]]
    assert ranges and all(isinstance(found, tuple) for found in ranges)
    assert sqlite_store.write_documents(chunks) == len(chunks)
    read = {document.id: document.meta for document in sqlite_store.filter_documents()}
    for chunk in chunks:
        as_lists = [{**overlap, "range": list(overlap["range"])} for overlap in chunk.meta["_split_overlap"]]
        assert read[chunk.id] == {**chunk.meta, "_split_overlap": as_lists}


def test_a_tuple_anywhere_in_meta_is_kept_as_a_list_and_its_dates_are_shadowed(
    sqlite_store: FallthroughDocumentStore,
) -> None:
    meta = {"span": ("1989-11-09", "1990-10-03"), "parts": ({"at": ("x", 1)},)}
    sqlite_store.write_documents([Document(id="t", content="t", meta=meta)])
    [read] = sqlite_store.filter_documents()
    assert read.meta == {"span": ["1989-11-09", "1990-10-03"], "parts": [{"at": ["x", 1]}]}
    after = {"field": "meta.span", "operator": ">", "value": "1990-01-01"}
    assert [d.id for d in sqlite_store.filter_documents(after)] == ["t"]


@pytest.mark.parametrize("operator", ["==", "!=", "in", "not in", ">", ">=", "<", "<="])
def test_an_iso_string_operand_finds_what_haystack_finds_among_stored_datetimes_and_strings(
    fallthrough_document_store: FallthroughDocumentStore, operator: str
) -> None:
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    moon = datetime(1969, 7, 21, 20, 17, 40, tzinfo=UTC)
    documents = [
        Document(id="datetime", content="a", meta={"date": moon}),
        Document(id="string", content="b", meta={"date": "1969-07-21T21:17:40+01:00"}),
        Document(id="earlier datetime", content="f", meta={"date": datetime(1945, 5, 8, tzinfo=UTC)}),
        Document(id="earlier string", content="g", meta={"date": "1945-05-08"}),
        Document(id="later datetime", content="c", meta={"date": datetime(1989, 11, 9, tzinfo=UTC)}),
        Document(id="later string", content="d", meta={"date": "1989-11-09T00:00:00+00:00"}),
        Document(id="no date", content="e", meta={}),
    ]
    haystack_own = InMemoryDocumentStore()
    haystack_own.write_documents(documents)
    fallthrough_document_store.write_documents(documents)
    operand = "1969-07-21T20:17:40Z"
    value: Any = [operand] if operator.endswith("in") else operand
    condition = {"field": "meta.date", "operator": operator, "value": value}
    expected = sorted(document.id for document in haystack_own.filter_documents(condition))
    assert expected  # every operator finds something here, so a filter matching nothing fails
    assert sorted(document.id for document in fallthrough_document_store.filter_documents(condition)) == expected


def test_filters_translate_none_and_logic() -> None:
    assert translate({"field": "meta.x", "operator": "==", "value": None}) == {"x": {"exists": False}}
    assert translate({"field": "meta.x", "operator": "!=", "value": None}) == {"not": {"x": {"exists": False}}}
    assert translate({"field": "meta.x", "operator": "not in", "value": [1, None]}) == {
        "not": {"or": [{"x": {"in": [1]}}, {"x": {"exists": False}}]}
    }
    assert translate({}) is None
    with pytest.raises(FilterError, match="metadata"):
        translate({"field": "content", "operator": "==", "value": "x"})
    with pytest.raises(FilterError, match="unknown"):
        translate({"field": "meta.x", "operator": "~", "value": 1})


@pytest.mark.parametrize("empty", [None, {}])
def test_a_filter_wide_write_with_an_empty_filter_is_refused_and_touches_nothing(
    sqlite_store: FallthroughDocumentStore, empty: dict[str, Any] | None
) -> None:
    """As Haystack's own store: an empty filter would delete or rewrite every document."""
    sqlite_store.write_documents([Document(id="a", content="x"), Document(id="b", content="y")])
    with pytest.raises(FilterError, match="delete_all_documents"):
        sqlite_store.delete_by_filter(empty)  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="matches every document"):
        sqlite_store.update_by_filter(empty, {"touched": True})  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="delete_all_documents"):
        asyncio.run(sqlite_store.delete_by_filter_async(empty))  # type: ignore[arg-type]
    with pytest.raises(FilterError, match="matches every document"):
        asyncio.run(sqlite_store.update_by_filter_async(empty, {"touched": True}))  # type: ignore[arg-type]
    assert [(d.id, d.meta) for d in sqlite_store.filter_documents()] == [("a", {}), ("b", {})]


@pytest.mark.parametrize(
    "filters",
    [
        {"operator": ["AND"], "conditions": []},
        {"field": "meta.x", "operator": ["=="], "value": 1},
        {"field": "meta.x", "operator": None, "value": 1},
    ],
)
def test_an_operator_that_is_not_a_string_is_a_filter_error(filters: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        translate(filters)


def test_a_value_fallthrough_refuses_is_a_haystack_filter_error(sqlite_store: FallthroughDocumentStore) -> None:
    with pytest.raises(FilterError, match="must be a str"):
        sqlite_store.filter_documents({"field": "meta.x", "operator": "==", "value": {"a": [1]}})


def test_to_dict_keeps_secrets_out(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    plain = FallthroughDocumentStore(["sqlite://"], collection="c1", connect_options={"write_concern": "first"})
    data = plain.to_dict()
    assert data["init_parameters"] == {
        "urls": ["sqlite://"],
        "collection": "c1",
        "connect_options": {"write_concern": "first"},
    }
    again = FallthroughDocumentStore.from_dict(data)
    assert again.collection == "c1"
    again.close()

    def unconnected(urls: list[str], connect_options: dict[str, Any]) -> FallthroughDocumentStore:
        """As built from these arguments, with no server to connect to: to_dict reads only what it was given."""
        store = FallthroughDocumentStore.__new__(FallthroughDocumentStore)
        store._urls, store._connect_options, store._owns_store = urls, connect_options, True  # type: ignore[assignment]
        store.collection = "c"
        return store

    with pytest.raises(ValueError, match=r"urls\[0\] holds .*Secret\.from_env_var") as raised:
        unconnected(["postgresql://app:hunter2@db/app"], {}).to_dict()
    assert "hunter2" not in str(raised.value)
    # A secret option only the plugin knows (it declares it): the core masks it, so it is a secret here too.
    with pytest.raises(ValueError, match=r"urls\[1\] holds") as raised:
        unconnected(["sqlite://", "postgresql+psycopg://app@db/app?scram_client_key=c2VjcmV0"], {}).to_dict()
    assert "c2VjcmV0" not in str(raised.value)
    # A named URL is a URL too.
    with pytest.raises(ValueError, match=r"connect_options\['pg'\] holds") as raised:
        unconnected(["sqlite://"], {"pg": "postgresql+psycopg://app:hunter2@db/app"}).to_dict()
    assert "hunter2" not in str(raised.value)
    named = unconnected(["sqlite://"], {"local": "sqlite://", "write_concern": "first"}).to_dict()
    assert named["init_parameters"]["connect_options"] == {"local": "sqlite://", "write_concern": "first"}

    monkeypatch.setenv("HS_FT_URL", "sqlite://")
    secret = FallthroughDocumentStore([Secret.from_env_var("HS_FT_URL")], collection="c2")
    data = secret.to_dict()
    assert data["init_parameters"]["urls"] == [{"type": "env_var", "env_vars": ["HS_FT_URL"], "strict": True}]
    FallthroughDocumentStore.from_dict(data).close()

    wrapped = FallthroughDocumentStore.from_store(fallthrough.connect("sqlite://"))
    with pytest.raises(ValueError, match="from_store"):
        wrapped.to_dict()
    wrapped.store.close()


def test_async_embedding_retrieval_builds_its_documents_off_the_event_loop(
    sqlite_store: FallthroughDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of hits with their embeddings took the loop's thread tens of milliseconds to convert."""
    import haystack_fallthrough.document_store as module

    sqlite_store.write_documents([Document(id="east", content="e", embedding=[1.0, 0.0])])
    built_on: list[threading.Thread] = []
    convert = module._hit_to_haystack

    def observed(*args: Any) -> Document:
        built_on.append(threading.current_thread())
        return convert(*args)

    monkeypatch.setattr(module, "_hit_to_haystack", observed)

    async def retrieve() -> tuple[list[Document], threading.Thread]:
        found = await sqlite_store.embedding_retrieval_async([1.0, 0.1], top_k=5, return_embedding=True)
        return found, threading.current_thread()

    found, loop_thread = asyncio.run(retrieve())
    assert [(document.id, document.embedding) for document in found] == [("east", [1.0, 0.0])]
    assert built_on and loop_thread not in built_on


def test_a_close_during_async_embedding_retrieval_waits_for_the_whole_retrieval() -> None:
    """The search and the conversion are two pool calls: a close between them refused the second."""
    registry = fallthrough.Registry()
    registry.register("gated", "fallthrough.testing.faults:FaultInjectingBackend")
    store = fallthrough.connect("gated://?inner=sqlite://", registry=registry)
    gate = store.plugin_manager.get_plugin("gated")
    documents = FallthroughDocumentStore.from_store(store)
    documents.write_documents([Document(id="east", content="e", embedding=[1.0, 0.0])])

    async def main() -> list[Document]:
        gate.hold("fallthrough_search")
        retrieving = asyncio.ensure_future(documents.embedding_retrieval_async([1.0, 0.1], top_k=5))
        assert await asyncio.to_thread(gate.wait_held, 1)
        closing = asyncio.ensure_future(documents.close_async())
        await asyncio.sleep(0.1)  # the close has begun, and waits
        gate.release()
        found = await retrieving
        await closing
        return found

    try:
        assert [document.id for document in asyncio.run(main())] == ["east"]
    finally:
        gate.release()
        store.close()


def test_the_retriever_ranks_by_cosine_in_a_pipeline(sqlite_store: FallthroughDocumentStore) -> None:
    sqlite_store.write_documents(
        [
            Document(id="east", content="e", embedding=[1.0, 0.0], meta={"kind": "a"}),
            Document(id="north", content="n", embedding=[0.0, 1.0], meta={"kind": "b"}),
            Document(id="none", content="no vector"),
        ]
    )
    pipeline = Pipeline()
    pipeline.add_component("retriever", FallthroughEmbeddingRetriever(sqlite_store, top_k=5))
    found = pipeline.run({"retriever": {"query_embedding": [1.0, 0.1]}})["retriever"]["documents"]
    assert [d.id for d in found] == ["east", "north"]
    assert found[0].score == pytest.approx(0.995, abs=1e-3)
    assert found[0].embedding is None

    retriever = FallthroughEmbeddingRetriever(
        sqlite_store, filters={"field": "meta.kind", "operator": "==", "value": "b"}
    )
    result = retriever.run(query_embedding=[1.0, 0.1], scale_score=True, return_embedding=True)["documents"]
    assert [(d.id, d.embedding) for d in result] == [("north", [0.0, 1.0])]
    assert result[0].score == pytest.approx((0.0995 + 1) / 2, abs=1e-3)
    assert FallthroughEmbeddingRetriever.from_dict(retriever.to_dict()).filters == retriever.filters


@pytest.mark.parametrize("top_k", [-1, 10_001, True, 2.0])
def test_a_top_k_the_store_cannot_serve_is_refused_by_its_name(
    sqlite_store: FallthroughDocumentStore, top_k: Any
) -> None:
    sqlite_store.write_documents([Document(id="east", content="e", embedding=[1.0, 0.0])])
    with pytest.raises(fallthrough.InvalidInput, match="top_k must be an int from 0 to 10000"):
        sqlite_store.embedding_retrieval([1.0, 0.0], top_k=top_k)
    with pytest.raises(fallthrough.InvalidInput, match="top_k must be an int from 0 to 10000"):
        asyncio.run(sqlite_store.embedding_retrieval_async([1.0, 0.0], top_k=top_k))
    retriever = FallthroughEmbeddingRetriever(sqlite_store, top_k=3)
    with pytest.raises(ValueError, match="top_k must be"):  # a negative one by the retriever's own check
        retriever.run(query_embedding=[1.0, 0.0], top_k=top_k)


def test_a_retriever_is_refused_a_top_k_above_the_stores_limit_when_it_is_built(
    sqlite_store: FallthroughDocumentStore,
) -> None:
    with pytest.raises(ValueError, match="top_k must be at most 10000"):
        FallthroughEmbeddingRetriever(sqlite_store, top_k=10_001)
    assert FallthroughEmbeddingRetriever(sqlite_store, top_k=10_000).top_k == 10_000


def test_the_failover_store_serves_while_its_first_store_is_down(
    open_store: Callable[[str], fallthrough.Store],
) -> None:
    store = open_store("failover")
    documents = FallthroughDocumentStore.from_store(store, collection="docs")
    documents.write_documents([Document(id="1", content="x")])
    assert documents.count_documents() == 1
    health = {backend.name: backend for backend in store.health()}
    assert health["flaky"].pending_hints == 1  # the write waits in the journal for the store that is down
    assert not health["flaky"].serves_reads

    store.plugin_manager.get_plugin("flaky").outage = False
    assert store.drain(timeout=10)
    result = store.search("docs", filter={"x": {"exists": False}})
    assert (result.backend, [hit.id for hit in result]) == ("flaky", ["1"])  # the store that was down caught up


def test_the_package_docstring_example_runs() -> None:
    import doctest

    import haystack_fallthrough

    result = doctest.testmod(haystack_fallthrough)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_degraded_answer_is_an_error_not_a_silent_id_order() -> None:
    """The store that ranks by vector is down and the other cannot: its hits would come in id order, unranked."""
    with connect_with_a_text_only_fallback("sqlite://") as store:
        documents = FallthroughDocumentStore.from_store(store, collection="docs")
        # "a-far" points away from the query and comes first in id order.
        documents.write_documents(
            [
                Document(id="a-far", content="x", embedding=[-1.0, 0.0], meta={"on": True}),
                Document(id="b-near", content="x", embedding=[1.0, 0.0], meta={"on": True}),
            ]
        )
        on = {"field": "meta.on", "operator": "==", "value": True}
        retriever = FallthroughEmbeddingRetriever(documents, filters=on, top_k=1)
        assert [d.id for d in retriever.run(query_embedding=[1.0, 0.0])["documents"]] == ["b-near"]

        store.plugin_manager.get_plugin("flaky").outage = True
        assert store.search("docs", vector=[1.0, 0.0], filter={"on": True}, limit=1).degraded
        with pytest.raises(fallthrough.errors.BackendUnavailable, match="ranks by vector"):
            documents.embedding_retrieval([1.0, 0.0], filters=on, top_k=1)
        with pytest.raises(fallthrough.errors.BackendUnavailable, match="ranks by vector"):
            retriever.run(query_embedding=[1.0, 0.0])
        with pytest.raises(fallthrough.errors.BackendUnavailable, match="ranks by vector"):
            asyncio.run(documents.embedding_retrieval_async([1.0, 0.0], filters=on, top_k=1))
        documents.close()


def test_a_close_that_overtakes_update_by_filter_async_waits_for_every_page(tmp_path: Any) -> None:
    # The upsert of the first page is held in a fault gate while the close begins; released, the other
    # pages are read and written too (the close waits for the whole method), while another caller's new
    # call is refused.
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    url = "flaky://?inner=" + quote(f"sqlite:///{tmp_path}/halves.db", safe="")
    documents = FallthroughDocumentStore.from_store(fallthrough.connect(url, registry=registry))
    total = 2 * PAGE_SIZE + 500
    documents.write_documents([Document(id=f"d{i:05}", content="c", meta={"k": 1}) for i in range(total)])
    gate = documents.store.plugin_manager.get_plugin("flaky")

    async def main() -> int:
        gate.hold("fallthrough_upsert_documents")
        updating = asyncio.ensure_future(
            documents.update_by_filter_async({"field": "meta.k", "operator": "==", "value": 1}, {"tag": "new"})
        )
        assert await asyncio.to_thread(gate.wait_held, 1)
        closing = asyncio.ensure_future(documents.close_async())
        await asyncio.sleep(0)
        with pytest.raises(fallthrough.FallthroughError, match="AsyncStore is closed"):
            await documents.count_documents_async()  # another caller's call, once the close began
        gate.release()
        await closing
        assert updating.done()  # the close ended after the method
        return await updating

    try:
        assert asyncio.run(main()) == total
        tagged = documents.filter_documents({"field": "meta.tag", "operator": "==", "value": "new"})
        assert len(tagged) == total
    finally:
        documents.store.close()


def test_a_sync_close_on_the_loop_of_an_update_under_way_does_not_deadlock(tmp_path: Any) -> None:
    # close() blocks the loop that the update needs to go on: it cannot wait for it, and must not try. A
    # child process with a timeout, so that a deadlock fails the test rather than hanging the run.
    script = tmp_path / "close_in_loop.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            import fallthrough
            from haystack import Document
            from haystack_fallthrough import FallthroughDocumentStore
            from haystack_fallthrough.document_store import PAGE_SIZE

            async def main():
                documents = FallthroughDocumentStore(["sqlite://"], collection="docs")
                total = 2 * PAGE_SIZE + 500
                await documents.write_documents_async(
                    [Document(id=f"d{i:05}", content="c", meta={"k": 1}) for i in range(total)]
                )
                updating = asyncio.ensure_future(
                    documents.update_by_filter_async({"field": "meta.k", "operator": "==", "value": 1}, {"t": 1})
                )
                await asyncio.sleep(0)  # the update has begun: it waits for its first page
                documents.close()  # on this loop's thread, blocking it
                try:
                    await updating
                except fallthrough.FallthroughError as error:
                    print("stopped:", error)
                else:
                    print("finished")

            asyncio.run(main())
            """
        ),
        encoding="utf-8",
    )
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError("close() inside the running loop deadlocked") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped: this AsyncStore is closed"
