"""The adapter's own contract, beyond langchain-tests' floor: filters, scores, MMR, errors, delete-all.

Every test runs on each kind of store the standard suite runs on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import fallthrough
import numpy as np
import pytest
from fallthrough import FallthroughError, FilterError, InvalidInput
from fallthrough.errors import BackendUnavailable
from fallthrough.testing.faults import connect_with_a_text_only_fallback
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_fallthrough import FallthroughVectorStore, relevance_from_cosine


class TableEmbeddings(Embeddings):
    """Texts to fixed vectors: the tests choose the geometry."""

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = table
        self.calls = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        return [list(self.table[text]) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return list(self.table[text])

    # Async without a thread: LangChain's default aembed_* would use the loop's default executor.
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


GEOMETRY: dict[str, Sequence[float]] = {
    "north": (1.0, 0.0, 0.0),
    "north again": (0.99, 0.01, 0.0),
    "north-east": (0.7, 0.7, 0.0),
    "east": (0.0, 1.0, 0.0),
    "south": (-1.0, 0.0, 0.0),
    "up": (0.0, 0.0, 1.0),
}


@pytest.fixture(params=["sqlite", "qdrant", "postgresql", "first_down"])
def store(request: pytest.FixtureRequest) -> Iterator[fallthrough.Store]:
    if request.param == "sqlite":
        with fallthrough.connect("sqlite://") as opened:
            yield opened
    elif request.param == "qdrant":
        with fallthrough.connect("qdrant+memory://") as opened:
            yield opened
    else:
        yield request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def vectorstore(store: fallthrough.Store, collection: str) -> FallthroughVectorStore:
    vectorstore = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection=collection)
    vectorstore.add_texts(
        list(GEOMETRY),
        [
            {"price": 100, "tags": ["a", "b"], "kind": "pole"},
            {"price": 200, "tags": ["a"], "kind": "pole"},
            {"price": 300, "tags": ["b"], "kind": "between"},
            {"price": 400, "tags": [], "kind": "axis", "note": None},
            {"price": 500, "kind": "pole"},
            {"price": 600.5, "kind": "axis", "when": datetime(2026, 1, 2, 3, tzinfo=UTC)},
        ],
        ids=list(GEOMETRY),
    )
    return vectorstore


def ids_of(documents: Sequence[Document]) -> list[str | None]:
    return [document.id for document in documents]


# -- filters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"kind": "pole"}, ["north", "north again", "south"]),
        ({"price": {"gte": 300}}, ["north-east", "east", "south", "up"]),
        ({"tags": "b"}, ["north", "north-east"]),
        ({"or": [{"price": {"lt": 150}}, {"kind": "axis"}]}, ["north", "east", "up"]),
        ({"not": {"kind": "pole"}}, ["north-east", "east", "up"]),
        ({"note": {"exists": False}, "kind": "axis"}, ["east", "up"]),
        ({"when": {"gt": datetime(2026, 1, 1, tzinfo=UTC)}}, ["up"]),
        ({"price": {"in": [200, 600.5]}}, ["north again", "up"]),
    ],
)
def test_filters_are_fallthroughs_language(vectorstore: FallthroughVectorStore, filter: dict, expected: list) -> None:
    found = vectorstore.similarity_search("north", k=6, filter=filter)
    assert sorted(ids_of(found)) == sorted(expected)
    # Best first among those matching.
    scores = [score for _, score in vectorstore.similarity_search_with_score("north", k=6, filter=filter)]
    assert scores == sorted(scores, reverse=True)


async def test_filters_async(vectorstore: FallthroughVectorStore) -> None:
    found = await vectorstore.asimilarity_search("north", k=6, filter={"kind": "pole"})
    assert ids_of(found) == ["north", "north again", "south"]


def test_a_malformed_filter_is_a_filter_error(vectorstore: FallthroughVectorStore) -> None:
    with pytest.raises(FilterError):
        vectorstore.similarity_search("north", filter={"price": {"between": [1, 2]}})


def test_unknown_keyword_arguments_are_refused_not_ignored(vectorstore: FallthroughVectorStore) -> None:
    with pytest.raises(TypeError, match="where"):
        vectorstore.similarity_search("north", where={"kind": "pole"})


# -- scores --------------------------------------------------------------------


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_scores_are_cosine_similarity(vectorstore: FallthroughVectorStore) -> None:
    found = vectorstore.similarity_search_with_score("north-east", k=6)
    assert ids_of([document for document, _ in found])[0] == "north-east"
    for document, score in found:
        assert score == pytest.approx(cosine(GEOMETRY["north-east"], GEOMETRY[str(document.id)]), abs=1e-5)


def test_relevance_scores_are_one_plus_cosine_over_two(vectorstore: FallthroughVectorStore) -> None:
    scored = vectorstore.similarity_search_with_relevance_scores("north", k=6)
    found = {document.id: relevance for document, relevance in scored}
    assert found["north"] == pytest.approx(1.0, abs=1e-5)
    assert found["south"] == pytest.approx(0.0, abs=1e-5)
    assert found["east"] == pytest.approx(0.5, abs=1e-5)
    assert all(0.0 <= relevance <= 1.0 for relevance in found.values())
    thresholded = vectorstore.similarity_search_with_relevance_scores("north", k=6, score_threshold=0.9)
    assert sorted(ids_of([document for document, _ in thresholded])) == ["north", "north again"]


async def test_relevance_scores_async(vectorstore: FallthroughVectorStore) -> None:
    found = await vectorstore.asimilarity_search_with_relevance_scores("south", k=1)
    assert [(document.id, pytest.approx(relevance, abs=1e-5)) for document, relevance in found] == [("south", 1.0)]


def test_relevance_from_cosine_clamps_rounding() -> None:
    assert relevance_from_cosine(1.0000001) == 1.0
    assert relevance_from_cosine(-1.0000001) == 0.0
    assert relevance_from_cosine(0.0) == 0.5


# -- max marginal relevance ----------------------------------------------------


def test_mmr_prefers_diversity_over_a_near_duplicate(vectorstore: FallthroughVectorStore) -> None:
    assert ids_of(vectorstore.similarity_search("north", k=2)) == ["north", "north again"]
    # north again: 0.4 * 1 - 0.6 * 1 = -0.2; north-east: 0.4 * 0.707 - 0.6 * 0.707 = -0.14.
    chosen = vectorstore.max_marginal_relevance_search("north", k=2, fetch_k=3, lambda_mult=0.4)
    assert ids_of(chosen) == ["north", "north-east"]
    # lambda 1 is plain relevance.
    assert ids_of(vectorstore.max_marginal_relevance_search("north", k=2, fetch_k=3, lambda_mult=1.0)) == [
        "north",
        "north again",
    ]


async def test_mmr_with_k_above_fetch_k_gives_the_candidates_as_langchains_in_memory_store(
    vectorstore: FallthroughVectorStore,
) -> None:
    langchains_own = InMemoryVectorStore(TableEmbeddings(GEOMETRY))
    langchains_own.add_texts(list(GEOMETRY))
    expected = len(langchains_own.max_marginal_relevance_search("north", k=5, fetch_k=3))
    assert expected == 3
    assert len(vectorstore.max_marginal_relevance_search("north", k=5, fetch_k=3)) == expected
    assert len(await vectorstore.amax_marginal_relevance_search("north", k=5, fetch_k=3)) == expected


async def test_mmr_async_runs_off_the_event_loop(
    vectorstore: FallthroughVectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over hundreds of candidates MMR takes seconds of CPU: on the loop's thread it stalled every other task."""
    import langchain_fallthrough.vectorstores as module

    ran_on: list[threading.Thread] = []
    langchains_mmr = module.maximal_marginal_relevance

    def observed(*args: Any, **kwargs: Any) -> list[int]:
        ran_on.append(threading.current_thread())
        return langchains_mmr(*args, **kwargs)

    monkeypatch.setattr(module, "maximal_marginal_relevance", observed)
    chosen = await vectorstore.amax_marginal_relevance_search("north", k=2, fetch_k=3, lambda_mult=0.4)
    assert ids_of(chosen) == ["north", "north-east"]
    assert ran_on and threading.current_thread() not in ran_on


async def test_an_aclose_during_mmr_by_vector_waits_for_the_whole_search() -> None:
    """The search and MMR are two pool calls: an aclose between them refused the second."""
    registry = fallthrough.Registry()
    registry.register("gated", "fallthrough.testing.faults:FaultInjectingBackend")
    store = fallthrough.connect("gated://?inner=sqlite://", registry=registry)
    gate = store.plugin_manager.get_plugin("gated")
    vectors = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY))
    try:
        await vectors.aadd_texts(list(GEOMETRY))
        gate.hold("fallthrough_search")
        searching = asyncio.ensure_future(
            vectors.amax_marginal_relevance_search_by_vector(list(GEOMETRY["north"]), k=2, fetch_k=3, lambda_mult=0.4)
        )
        assert await asyncio.to_thread(gate.wait_held, 1)
        closing = asyncio.ensure_future(vectors.aclose())
        await asyncio.sleep(0.1)  # the close has begun, and waits
        gate.release()
        assert [document.page_content for document in await searching] == ["north", "north-east"]
        await closing
    finally:
        gate.release()
        store.close()


async def test_mmr_async_with_a_filter(vectorstore: FallthroughVectorStore) -> None:
    chosen = await vectorstore.amax_marginal_relevance_search(
        "north", k=2, fetch_k=6, lambda_mult=0.4, filter={"kind": {"ne": "between"}}
    )
    # Without north-east, south is the most diverse: 0.4 * -1 - 0.6 * -1 = 0.2.
    assert ids_of(chosen) == ["north", "south"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lambda_mult": 1.5}, "lambda_mult"),
        ({"lambda_mult": "0.5"}, "lambda_mult"),
        ({"lambda_mult": None}, "lambda_mult"),
        ({"k": -3}, "k must be an int from 0 to 10000"),
        ({"k": None}, "k must be an int from 0 to 10000"),
        ({"k": 2.0}, "k must be an int from 0 to 10000"),
        ({"fetch_k": True}, "fetch_k must be an int from 1 to 10000"),
        ({"fetch_k": 0}, "fetch_k must be an int from 1 to 10000"),
        ({"fetch_k": 10_001}, "fetch_k must be an int from 1 to 10000"),
    ],
)
def test_mmr_checks_its_arguments(vectorstore: FallthroughVectorStore, arguments: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        vectorstore.max_marginal_relevance_search("north", **arguments)


@pytest.mark.parametrize("k", [-1, True, 1.0, None, 10_001])
def test_a_search_checks_k(vectorstore: FallthroughVectorStore, k: object) -> None:
    with pytest.raises(InvalidInput, match="k must be an int from 0 to 10000"):
        vectorstore.similarity_search("north", k=k)  # type: ignore[arg-type]


class EqualToEverything(int):
    """An int subclass that compares as it likes: the search takes the plain int it holds."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


async def test_a_k_of_an_int_subclass_is_taken_as_the_int_it_holds(vectorstore: FallthroughVectorStore) -> None:
    """It compared equal to 0, and every search answered nothing."""
    k, fetch_k = EqualToEverything(2), EqualToEverything(3)
    assert len(vectorstore.similarity_search("north", k=k)) == 2
    assert len(await vectorstore.asimilarity_search("north", k=k)) == 2
    assert len(vectorstore.max_marginal_relevance_search("north", k=k, fetch_k=fetch_k)) == 2
    assert len(await vectorstore.amax_marginal_relevance_search("north", k=k, fetch_k=fetch_k)) == 2


async def test_k_zero_finds_nothing_as_in_langchains_in_memory_store(vectorstore: FallthroughVectorStore) -> None:
    langchains_own = InMemoryVectorStore(TableEmbeddings(GEOMETRY))
    langchains_own.add_texts(list(GEOMETRY))
    assert langchains_own.similarity_search("north", k=1)
    assert langchains_own.similarity_search("north", k=0) == []
    assert vectorstore.similarity_search("north", k=1)  # the collection does hold a match
    assert vectorstore.similarity_search("north", k=0) == []
    assert vectorstore.similarity_search_with_score("north", k=0) == []
    assert vectorstore.max_marginal_relevance_search("north", k=0) == []
    assert await vectorstore.asimilarity_search("north", k=0) == []
    assert await vectorstore.amax_marginal_relevance_search("north", k=0) == []


@pytest.mark.parametrize(
    "add",
    [
        lambda store: store.add_documents([Document(page_content="north", id="")]),
        lambda store: store.add_documents([Document(page_content="north")], ids=[]),
        lambda store: store.add_texts(["north"], ids=[]),
        lambda store: store.add_texts(["north"], ids=[""]),
    ],
    ids=["empty Document.id", "add_documents ids=[]", "add_texts ids=[]", "add_texts ids=['']"],
)
def test_an_empty_id_or_empty_ids_gets_a_new_id_as_in_langchains_in_memory_store(
    vectorstore: FallthroughVectorStore, add: Callable[[Any], list[str]]
) -> None:
    (theirs,) = add(InMemoryVectorStore(TableEmbeddings(GEOMETRY)))
    (ours,) = add(vectorstore)
    assert str(uuid.UUID(theirs)) == theirs and str(uuid.UUID(ours)) == ours
    (stored,) = vectorstore.get_by_ids([ours])
    assert stored.page_content == "north"


# -- metadata round trip and refusals --------------------------------------------


def test_metadata_comes_back_as_given(vectorstore: FallthroughVectorStore) -> None:
    (up,) = vectorstore.get_by_ids(["up"])
    assert up.metadata == {"price": 600.5, "kind": "axis", "when": datetime(2026, 1, 2, 3, tzinfo=UTC)}
    (east,) = vectorstore.get_by_ids(["east"])
    assert east.metadata["note"] is None
    assert east.metadata["tags"] == []
    # A datetime in another zone comes back as the same instant in UTC.
    vectorstore.add_texts(["up"], [{"when": datetime(2026, 1, 2, 5, tzinfo=timezone(timedelta(hours=2)))}], ids=["z"])
    (z,) = vectorstore.get_by_ids(["z"])
    assert z.metadata["when"] == datetime(2026, 1, 2, 3, tzinfo=UTC)


def test_nested_metadata_comes_back_and_filters_by_dotted_path(vectorstore: FallthroughVectorStore) -> None:
    nested = {"dims": {"width": 2, "units": ["cm", {"alt": "in"}]}, "parts": [{"sku": "a"}, {"sku": "b"}]}
    vectorstore.add_texts(["north", "south"], [nested, {"dims": {"width": 3}}], ids=["n2", "s2"])
    (found,) = vectorstore.get_by_ids(["n2"])
    assert found.metadata == nested
    assert ids_of(vectorstore.similarity_search("north", k=6, filter={"dims.width": 2})) == ["n2"]
    # A list fans out: any element's sku.
    assert ids_of(vectorstore.similarity_search("north", k=6, filter={"parts.sku": "b"})) == ["n2"]
    assert ids_of(vectorstore.similarity_search("north", k=6, filter={"dims.width": {"gte": 3}})) == ["s2"]


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"deeper": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"pair": (1, 2)}, r"document 1 \(id 'bad'\): metadata\['pair'\] is a tuple"),
        ({"raw": b"x"}, r"metadata\['raw'\] must be a str, number.*not bytes"),
        ({"set": {1}}, r"metadata\['set'\] is a set"),
        ({"rows": [[1, 2]]}, r"metadata\['rows'\]\[0\] is a list inside a list"),
        ({"dims": {"when": datetime(2026, 1, 1)}}, r"metadata\['dims'\]\['when'\] .*timezone-aware"),
        ({"dims": {"a.b": 1}}, r"metadata\['dims'\] key 'a.b' contains '.'"),
        ({"$dt": 1}, r"metadata key '\$dt' starts with '\$'"),
        ({"deep": nested(9)}, r"deeper than 8 levels"),
        ({"and": 1}, r"document 1 \(id 'bad'\): metadata key 'and' is reserved"),
        ({1: "x"}, r"document 1 \(id 'bad'\): metadata has the key 1 of type int; metadata keys are str"),
        ({"when": datetime(2026, 1, 1)}, r"document 1 \(id 'bad'\): .*naive|timezone"),
        ({"big": 2**60}, r"document 1 \(id 'bad'\): .*2\*\*53|\(2⁵³|beyond|within"),
        ({"nan": math.nan}, r"document 1 \(id 'bad'\): .*finite|nan"),
    ],
)
def test_metadata_fallthrough_refuses_is_a_clear_error_and_nothing_is_written(
    vectorstore: FallthroughVectorStore, metadata: dict, message: str
) -> None:
    embeddings = vectorstore.embeddings
    assert isinstance(embeddings, TableEmbeddings)
    calls = embeddings.calls
    with pytest.raises(InvalidInput, match=message):
        vectorstore.add_texts(["north", "south"], [{"fine": 1}, metadata], ids=["good", "bad"])
    assert vectorstore.get_by_ids(["good", "bad"]) == []
    assert embeddings.calls == calls  # refused before anything was embedded


async def test_refused_metadata_async(vectorstore: FallthroughVectorStore) -> None:
    with pytest.raises(InvalidInput, match=r"metadata\['pair'\] is a tuple"):
        await vectorstore.aadd_documents([Document("north", metadata={"pair": (1, 2)}, id="bad")])
    assert await vectorstore.aget_by_ids(["bad"]) == []


def test_a_repeated_id_is_refused_before_anything_is_embedded(vectorstore: FallthroughVectorStore) -> None:
    embeddings = vectorstore.embeddings
    assert isinstance(embeddings, TableEmbeddings)
    calls = embeddings.calls
    with pytest.raises(InvalidInput, match="document 2 repeats the id 'x' of document 0"):
        vectorstore.add_texts(["north", "south", "east"], ids=["x", "y", "x"])
    with pytest.raises(InvalidInput, match="repeats the id"):
        asyncio.run(vectorstore.aadd_texts(["north", "north"], ids=["x", "x"]))
    assert embeddings.calls == calls
    assert vectorstore.get_by_ids(["x", "y"]) == []


@pytest.mark.parametrize(
    ("texts", "arguments", "message"),
    [
        (None, {}, "texts must be an iterable of strings, not NoneType"),
        ("north", {}, "texts must be an iterable of strings, not str"),
        (["north"], {"ids": 5}, "ids must be a list, one per text, not int"),
        (["north"], {"ids": "x"}, "ids must be a list, one per text, not str"),
        (["north"], {"metadatas": {"a": 1}}, "metadatas must be a list, one per text, not dict"),
    ],
)
def test_arguments_of_the_wrong_type_are_invalid_input(
    vectorstore: FallthroughVectorStore, texts: object, arguments: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        vectorstore.add_texts(texts, **arguments)  # type: ignore[arg-type]


def test_counts_must_match(vectorstore: FallthroughVectorStore) -> None:
    with pytest.raises(InvalidInput, match="2 metadatas for 1 texts"):
        vectorstore.add_texts(["north"], [{}, {}])
    with pytest.raises(InvalidInput, match="2 ids for 1 texts"):
        vectorstore.add_texts(["north"], ids=["a", "b"])


# -- ids, delete ---------------------------------------------------------------


def test_get_by_ids_reads_a_repeated_id_once_in_the_order_asked(vectorstore: FallthroughVectorStore) -> None:
    assert ids_of(vectorstore.get_by_ids(["east", "missing", "north", "east"])) == ["east", "north"]


def test_ids_argument_wins_over_document_ids(vectorstore: FallthroughVectorStore) -> None:
    assert vectorstore.add_documents([Document("up", id="from-doc")], ids=["from-kwarg"]) == ["from-kwarg"]
    assert vectorstore.get_by_ids(["from-doc"]) == []


def test_delete_without_ids_drops_the_collection(vectorstore: FallthroughVectorStore) -> None:
    store = vectorstore.store
    other = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection=vectorstore.collection + "x")
    other.add_texts(["north"], ids=["kept"])
    assert vectorstore.collection in store.collections()
    assert vectorstore.delete() is True
    assert vectorstore.collection not in store.collections()
    assert store.count(vectorstore.collection) == 0
    assert vectorstore.similarity_search("north", k=10) == []
    assert ids_of(other.get_by_ids(["kept"])) == ["kept"]  # another collection is left alone
    # The collection starts again with the next write.
    vectorstore.add_texts(["east"], ids=["again"])
    assert ids_of(vectorstore.similarity_search("north", k=10)) == ["again"]


async def test_adelete_without_ids_drops_the_collection(vectorstore: FallthroughVectorStore) -> None:
    assert await vectorstore.adelete() is True
    assert await vectorstore.async_store.count(vectorstore.collection) == 0
    assert await vectorstore.aget_by_ids(list(GEOMETRY)) == []


async def test_adelete_by_ids(vectorstore: FallthroughVectorStore) -> None:
    assert await vectorstore.adelete(["north", "north", "nowhere"]) is True
    assert ids_of(await vectorstore.aget_by_ids(["north", "east"])) == ["east"]


# -- construction --------------------------------------------------------------


def test_from_texts_opens_and_owns_a_store() -> None:
    vectorstore = FallthroughVectorStore.from_texts(
        ["north", "east"], TableEmbeddings(GEOMETRY), ids=["n", "e"], urls=["sqlite://"], collection="compass"
    )
    try:
        assert ids_of(vectorstore.similarity_search("east", k=1)) == ["e"]
    finally:
        vectorstore.close()
    with pytest.raises(fallthrough.FallthroughError):
        vectorstore.similarity_search("east", k=1)


def test_from_texts_on_a_callers_store_leaves_it_open() -> None:
    with fallthrough.connect("sqlite://") as store:
        vectorstore = FallthroughVectorStore.from_documents(
            [Document("north", id="n")], TableEmbeddings(GEOMETRY), store=store
        )
        vectorstore.close()
        assert ids_of(vectorstore.get_by_ids(["n"])) == ["n"]
        assert vectorstore.collection == "langchain"


def test_constructor_checks_its_arguments() -> None:
    with fallthrough.connect("sqlite://") as store:
        with pytest.raises(InvalidInput, match="collection"):
            FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection="no spaces")
        with pytest.raises(InvalidInput, match="Embeddings"):
            FallthroughVectorStore(store, object())  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="Store"):
            FallthroughVectorStore("sqlite://", TableEmbeddings(GEOMETRY))  # type: ignore[arg-type]


# -- fall-through ---------------------------------------------------------------


def test_a_degraded_answer_is_an_error_not_a_silent_id_order() -> None:
    """The store that ranks by vector is down and the other cannot: its hits would come in id order."""
    with connect_with_a_text_only_fallback("sqlite://") as store:
        vectorstore = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY))
        vectorstore.add_texts(["north", "south"], [{"on": True}, {"on": True}], ids=["n", "s"])
        on = {"on": True}
        assert ids_of(vectorstore.similarity_search("south", k=1, filter=on)) == ["s"]
        store.plugin_manager.get_plugin("flaky").outage = True
        # A filtered search can be served degraded (a vector-only one cannot be served at all).
        assert store.search("langchain", vector=GEOMETRY["south"], filter=on, limit=1).degraded
        with pytest.raises(BackendUnavailable, match="ranks by vector"):
            vectorstore.similarity_search("south", k=1, filter=on)


def test_a_store_going_down_mid_session_changes_no_answer(postgresql_url: str, collection: str) -> None:
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    with fallthrough.connect(
        f"flaky://?inner={quote('qdrant+memory://', safe='')}", postgresql_url, registry=registry
    ) as store:
        vectorstore = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection=collection)
        vectorstore.add_texts(list(GEOMETRY), ids=list(GEOMETRY))
        before = vectorstore.similarity_search_with_score("north-east", k=6)
        assert store.search(collection, vector=GEOMETRY["north"], limit=1).backend == "flaky"
        store.plugin_manager.get_plugin("flaky").outage = True
        after = vectorstore.similarity_search_with_score("north-east", k=6)
        assert store.search(collection, vector=GEOMETRY["north"], limit=1).backend == "postgresql"
        assert ids_of([d for d, _ in after]) == ids_of([d for d, _ in before])
        assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-5)


# -- the async pool ---------------------------------------------------------------


class RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails every call given to it."""

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> concurrent.futures.Future:
        raise AssertionError("the loop's default executor was used")


async def test_async_calls_run_on_the_adapters_asyncstore_not_the_default_executor(
    vectorstore: FallthroughVectorStore,
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(RefusingExecutor())
    threads: set[str] = set()
    search = vectorstore.store.search

    def recording_search(*args: object, **kwargs: object) -> fallthrough.SearchResult:
        threads.add(threading.current_thread().name)
        return search(*args, **kwargs)  # type: ignore[arg-type]

    vectorstore.store.search = recording_search  # type: ignore[method-assign]
    try:
        assert vectorstore.async_store.store is vectorstore.store
        await vectorstore.aadd_texts(["east"], [{"kind": "x"}], ids=["e2"])
        assert sorted(ids_of(await vectorstore.asimilarity_search("east", k=2))) == ["e2", "east"]
        assert ids_of(await vectorstore.asimilarity_search_by_vector([0.0, 0.0, 1.0], k=1)) == ["up"]
        assert len(await vectorstore.asimilarity_search_with_relevance_scores("east", k=2)) == 2
        assert len(await vectorstore.amax_marginal_relevance_search("east", k=2, fetch_k=3)) == 2
        assert ids_of(await vectorstore.aget_by_ids(["e2"])) == ["e2"]
        assert await vectorstore.adelete(["e2"]) is True
        assert await vectorstore.adelete() is True
    finally:
        del vectorstore.store.search
    assert threads and all(name.startswith("fallthrough-aio") for name in threads)


async def test_aclose_ends_the_pool_and_leaves_the_callers_store_open(
    store: fallthrough.Store, collection: str
) -> None:
    vectorstore = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection=collection, max_concurrency=2)
    assert vectorstore.async_store.max_concurrency == 2
    await vectorstore.aadd_texts(["north"], ids=["n"])
    with pytest.raises(FallthroughError, match="aclose"):
        vectorstore.close()  # would block the loop
    await vectorstore.aclose()
    with pytest.raises(FallthroughError, match="closed"):
        await vectorstore.aget_by_ids(["n"])
    assert ids_of(vectorstore.get_by_ids(["n"])) == ["n"]  # the Store is the caller's, still open
    vectorstore.delete()


class SlowEmbeddings(TableEmbeddings):
    """Embeddings whose async calls wait for ``go``: an aclose() can begin while one embeds."""

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        super().__init__(table)
        self.embedding = asyncio.Event()
        self.go = asyncio.Event()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedding.set()
        await self.go.wait()
        return await super().aembed_documents(texts)


async def test_an_aclose_during_the_embedding_of_aadd_texts_waits_for_its_write(
    store: fallthrough.Store, collection: str
) -> None:
    embeddings = SlowEmbeddings(GEOMETRY)
    vectorstore = FallthroughVectorStore(store, embeddings, collection=collection)
    adding = asyncio.ensure_future(vectorstore.aadd_texts(["north"], ids=["n"]))
    await embeddings.embedding.wait()
    closing = asyncio.ensure_future(vectorstore.aclose())
    await asyncio.sleep(0)
    with pytest.raises(FallthroughError, match="closed"):
        await vectorstore.aget_by_ids(["n"])  # another caller's call, once the close began
    embeddings.go.set()
    await closing
    assert adding.done()  # the close ended after the write
    assert await adding == ["n"]
    assert ids_of(vectorstore.get_by_ids(["n"])) == ["n"]
    vectorstore.delete()


def test_close_ends_the_pool_and_leaves_the_callers_store_open(store: fallthrough.Store, collection: str) -> None:
    vectorstore = FallthroughVectorStore(store, TableEmbeddings(GEOMETRY), collection=collection)
    vectorstore.add_texts(["north"], ids=["n"])
    vectorstore.close()
    with pytest.raises(FallthroughError, match="closed"):
        asyncio.run(vectorstore.aget_by_ids(["n"]))
    assert ids_of(vectorstore.get_by_ids(["n"])) == ["n"]
    vectorstore.delete()


async def test_the_pool_follows_the_backends_hint_unless_given() -> None:
    """No max_concurrency: the AsyncStore's default, 2 on SQLite (its parallel_calls) once the store opened."""
    vectorstore = await FallthroughVectorStore.afrom_texts(
        ["north"], TableEmbeddings(GEOMETRY), ids=["n"], urls=["sqlite://"]
    )
    try:
        assert vectorstore.async_store.max_concurrency == 2
    finally:
        await vectorstore.aclose()


async def test_afrom_texts_opens_and_owns_a_store() -> None:
    vectorstore = await FallthroughVectorStore.afrom_texts(
        ["north", "east"], TableEmbeddings(GEOMETRY), ids=["n", "e"], urls=["sqlite://"], max_concurrency=3
    )
    assert vectorstore.async_store.max_concurrency == 3
    try:
        assert ids_of(await vectorstore.asimilarity_search("east", k=1)) == ["e"]
    finally:
        await vectorstore.aclose()
    with pytest.raises(FallthroughError):
        vectorstore.similarity_search("east", k=1)  # the Store it opened is closed


async def test_afrom_documents_on_a_callers_store_leaves_it_open() -> None:
    with fallthrough.connect("sqlite://") as store:
        vectorstore = await FallthroughVectorStore.afrom_documents(
            [Document("north", id="n")], TableEmbeddings(GEOMETRY), store=store
        )
        await vectorstore.aclose()
        assert ids_of(vectorstore.get_by_ids(["n"])) == ["n"]
