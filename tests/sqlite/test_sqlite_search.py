"""Search on the SQLite backend: text tokens, filter semantics and vector ranking, against the model."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fallthrough.errors import InvalidInput
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document
from fallthrough.validation import check_vector
from fallthrough_sqlite.schema import FTS_TOKENIZER
from tests.sqlite.helpers import Twin, file_url, open_backend


def upsert(twin: Twin, collection: str, *documents: Document) -> None:
    twin.call("fallthrough_upsert_documents", collection=collection, documents=list(documents), version=fresh_version())


# -- text ----------------------------------------------------------------------

MATERIALS = [
    Document("m1", "Цемент М-500, 2.5мм ПВХ/PVC", [1.0, 0.0, 0.0], {"price": 420}),
    Document("m2", "ЦЕМЕНТ белый М500", [0.9, 0.1, 0.0], {"price": 510.5}),
    Document("m3", "Ёлка и елка: два разных слова", [0.0, 1.0, 0.0], {"price": 90}),
    Document("m4", "Труба ПВХ 2.5 м, PVC pipe", None, {"price": 130}),
    Document("m5", "café CAFÉ cafe", [0.0, 0.0, 1.0], {}),
    Document("m6", "м 500 500 500", [0.5, 0.5, 0.0], {"price": 1}),
]


@pytest.mark.parametrize(
    "text",
    [
        "цемент",
        "ЦЕМЕНТ",  # casefolded by the core's tokens
        "М-500",  # м and 500
        "м500",
        "2.5мм",  # 2 and 5мм
        "5мм",
        "5",  # a token is whole: "5мм" does not hold "5"
        "ПВХ/PVC",
        "pvc",
        "ёлка",
        "елка",  # no diacritic folding: е and ё differ
        "cafe",
        "CAFÉ",
        "500 м",
        "and",  # a would-be FTS5 operator, as a plain token
        "NEAR OR NOT",
        "нет такого слова",
    ],
)
def test_text_matches_exactly_the_token_sets(twin: Twin, text: str) -> None:
    upsert(twin, "materials", *MATERIALS)
    twin.search("materials", text=text, limit=100)
    twin.search("materials", text=text, limit=1)
    twin.search("materials", text=text, filter={"price": {"gte": 100}})
    twin.search("materials", text=text, vector=[1.0, 0.2, 0.1])


def test_text_ranking_is_best_first_with_ties_by_id(twin: Twin) -> None:
    upsert(twin, "same", *(Document(f"d{9 - i}", "одинаковый текст") for i in range(10)))
    hits = twin.search("same", text="текст", limit=4)
    assert [hit.id for hit in hits] == ["d0", "d1", "d2", "d3"]  # equal relevance: id order


def test_unicode61_casefolds_cyrillic(tmp_path: Path) -> None:
    """The FTS5 tokenizer the index uses folds case in Cyrillic (and keeps е and ё apart)."""
    connection = sqlite3.connect(tmp_path / "fts.db")
    connection.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{FTS_TOKENIZER}')")
    connection.execute("INSERT INTO t(rowid, text) VALUES (1, 'ЦЕМЕНТ Ёлка ПВХ')")
    for query, expected in [('"цемент"', [1]), ('"ёлка"', [1]), ('"пвх"', [1]), ('"елка"', [])]:
        assert [rowid for (rowid,) in connection.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,))] == expected
    connection.close()
    # And in the backend's own index, written through the hooks:
    url = file_url(tmp_path / "store.db")
    _, hooks = open_backend(url)
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", "цемент")], version=fresh_version())
    hooks.fallthrough_close()
    connection = sqlite3.connect(tmp_path / "store.db")
    found = connection.execute("SELECT rowid FROM documents_fts WHERE documents_fts MATCH '\"ЦЕМЕНТ\"'").fetchall()
    connection.close()
    assert len(found) == 1


def test_tokens_the_fts5_tokenizer_cannot_see_still_match(twin: Twin) -> None:
    # U+19B0 is a letter to Python (so a token to the core) but a separator in
    # unicode61's Unicode 6.1 tables: FTS5 indexes nothing for it.
    upsert(
        twin,
        "rare",
        Document("a", "ᦰ"),
        Document("b", "ᦰ abc"),
        Document("c", "abc"),
        Document("d", "xᦰy"),
    )
    assert {hit.id for hit in twin.search("rare", text="ᦰ")} == {"a", "b"}
    assert {hit.id for hit in twin.search("rare", text="ᦰ ABC")} == {"b"}
    twin.search("rare", text="xᦰy")
    twin.search("rare", text="x y")  # split by unicode61, but not a match for the core
    twin.search("rare", text="ᦰ", vector=None, filter={"missing": {"ne": 1}})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(st.sampled_from("аБвЁеё AbcdéÉ1.2-/ᦰ²٣"), max_size=12), min_size=1, max_size=6),
    query=st.text(st.sampled_from("аБвЁеё AbcdéÉ1.2-/ᦰ²٣"), min_size=1, max_size=6),
)
def test_random_texts_match_as_the_model(twin: Twin, texts: list[str], query: str) -> None:
    from fallthrough.text import tokenize

    if not tokenize(query):
        return  # the core refuses a query without tokens
    collection = f"t{abs(hash((tuple(texts), query))) % 10**9}"
    upsert(twin, collection, *(Document(f"d{i}", text) for i, text in enumerate(texts)))
    twin.search(collection, text=query, limit=10)


# -- filters -------------------------------------------------------------------

FILTER_DOCUMENTS = [
    Document("int", metadata={"n": 420, "s": "420", "b": True, "tags": ["x", "y"]}),
    Document("float", metadata={"n": 420.0, "s": "a", "b": False, "tags": []}),
    Document("frac", metadata={"n": 0.5, "b": 1, "tags": ["x", 1, True, None]}),
    Document("true", metadata={"n": True, "b": "true", "tags": "x"}),
    Document("none", metadata={"n": None, "s": None, "tags": [None]}),
    Document("missing", metadata={}),
    Document("list", metadata={"n": [1, 500, "600"], "s": ["a", "b"], "b": [False, 0]}),
    Document("big", metadata={"n": 2**53 - 1, "s": "Z", "b": 0.0}),
    Document(
        "neg", metadata={"n": -0.0, "s": "", "b": [1.0], "odd key (0) $": 5, "o": {"odd key (0) $": [{"n": 2}, 3]}}
    ),
    Document("cyr", metadata={"n": -7, "s": "цемент", "ключ": "значение", "tags": ["ПВХ"]}),
]

FILTERS: list[dict[str, Any]] = [
    {"n": 420},
    {"n": 420.0},
    {"n": {"eq": 0}},  # -0.0 equals 0
    {"n": True},  # only the bool
    {"n": 1},  # True is not 1, but 1 in a list is
    {"n": "600"},
    {"n": {"ne": 420}},
    {"n": {"lt": 420}},
    {"n": {"lte": 420}},
    {"n": {"gt": 0.5}},
    {"n": {"gte": 500, "lt": 2**53 - 1}},
    {"n": {"gt": 9007199254740990.5}},
    {"n": {"in": [0.5, True, "600", -7]}},
    {"n": {"nin": [420, 1]}},
    {"s": "420"},
    {"s": {"in": ["a", "Z"]}},
    {"s": {"ne": "a"}},
    {"s": {"lt": 1000}},  # strings never satisfy a range
    {"s": ""},
    {"b": True},
    {"b": False},
    {"b": 1},
    {"b": 0},
    {"b": {"ne": False}},
    {"b": {"in": [True, 0]}},
    {"tags": "x"},
    {"tags": {"ne": "x"}},
    {"tags": {"nin": ["x", "ПВХ"]}},
    {"tags": {"in": [1]}},
    {"tags": True},
    {"nothing": {"ne": 1}},
    {"nothing": {"nin": ["a"]}},
    {"nothing": 1},
    {"not": {"nothing": 1}},
    {"not": {"n": {"gt": 1}}},
    {"odd key (0) $": {"gte": 5}},
    {"o.odd key (0) $.n": {"gte": 2}},
    {"o.odd key (0) $": 3},
    {"o": {"exists": True}},
    {"ключ": "значение"},
    {"s": "цемент"},
    {"or": [{"n": {"lt": 0}}, {"s": "a"}], "not": {"b": False}},
    {"and": [{"n": {"gte": 0}}, {"or": [{"tags": "x"}, {"tags": {"nin": ["y"]}}]}]},
]


@pytest.mark.parametrize("spec", FILTERS, ids=[repr(spec) for spec in FILTERS])
def test_filters_follow_the_reference_semantics(twin: Twin, spec: dict[str, Any]) -> None:
    upsert(twin, "filters", *FILTER_DOCUMENTS)
    twin.search("filters", filter=spec, limit=100)
    twin.search("filters", filter=spec, limit=2)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, 1e-300, 5e-324, 1e300]),
    st.sampled_from(["", "a", "A", "1", "true", "ё"]),
)
_operands = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 0.5, 1.0, 2.5, 1e-300, 5e-324]),
    st.sampled_from(["", "a", "1", "true", "ё"]),
)
_numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.0, 0.5, 2.5, -1e-300]))
_fields = st.sampled_from(["f", "g", "h.i"])


def _comparisons() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda f, v: {f: v}, _fields, _operands),
        st.builds(lambda f, op, v: {f: {op: v}}, _fields, st.sampled_from(["eq", "ne"]), _operands),
        st.builds(lambda f, op, v: {f: {op: v}}, _fields, st.sampled_from(["lt", "lte", "gt", "gte"]), _numbers),
        st.builds(
            lambda f, op, v: {f: {op: v}},
            _fields,
            st.sampled_from(["in", "nin"]),
            st.lists(_operands, min_size=1, max_size=3),
        ),
    )


_filters = st.recursive(
    _comparisons(),
    lambda inner: st.one_of(
        st.builds(lambda clauses: {"and": clauses}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda clauses: {"or": clauses}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda clause: {"not": clause}, inner),
    ),
    max_leaves=6,
)
# "h.i" is a dotted path: "h" holds an object, or a list of objects (and a scalar), with key "i".
_objects = st.fixed_dictionaries({}, optional={"i": st.one_of(_scalars, st.lists(_scalars, max_size=2))})
_metadata = st.dictionaries(
    st.sampled_from(["f", "g", "h"]),
    st.one_of(_scalars, st.lists(_scalars, max_size=3), _objects, st.lists(st.one_of(_objects, _scalars), max_size=3)),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadatas=st.lists(_metadata, min_size=1, max_size=8), spec=_filters)
def test_random_filters_agree_with_matches(twin: Twin, metadatas: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    upsert(twin, "random", *(Document(f"d{i}", metadata=metadata) for i, metadata in enumerate(metadatas)))
    twin.search("random", filter=spec, limit=100)
    twin.call(
        "fallthrough_delete_documents",
        collection="random",
        ids=[f"d{i}" for i in range(len(metadatas))],
        version=fresh_version(),
    )


# -- vectors -------------------------------------------------------------------


def test_vector_scores_order_and_ties_are_the_references(twin: Twin) -> None:
    upsert(
        twin,
        "vectors",
        Document("z-same", "", [1.0, 2.0, 3.0]),
        Document("a-same", "", [1.0, 2.0, 3.0]),  # an exact tie, settled by id
        Document("double", "", [2.0, 4.0, 6.0]),  # parallel: the same cosine, to the bit
        Document("triple", "", [3.0, 6.0, 9.0]),
        Document("near", "", [1.0, 2.0, 3.0001]),
        Document("opposite", "", [-1.0, -2.0, -3.0]),
        Document("orthogonal", "", [3.0, 0.0, -1.0]),
        Document("no-vector", "has none"),
        Document("tiny", "", [1e-15, 2e-15, 3e-15]),  # small, yet its squared length is a normal float32
    )
    for limit in (1, 2, 3, 5, 100):
        twin.search("vectors", vector=[1.0, 2.0, 3.0], limit=limit)
        twin.search("vectors", vector=[0.1, 0.7, -0.2], limit=limit)
    twin.search("vectors", vector=[1.0, 2.0, 3.0], filter={"missing": {"ne": 1}})
    assert twin.search("vectors", vector=[1.0, 2.0, 3.0], text="none") == []  # its one text match has no vector


def test_vector_search_sees_every_write(twin: Twin) -> None:
    upsert(twin, "v", Document("a", "", [1.0, 0.0]), Document("b", "", [0.0, 1.0]))
    twin.search("v", vector=[1.0, 0.1])
    upsert(twin, "v", Document("a", "", [0.0, -1.0]), Document("c", "", [1.0, 0.2]))
    twin.search("v", vector=[1.0, 0.1])
    upsert(twin, "v", Document("c", "now without a vector"))
    twin.search("v", vector=[1.0, 0.1])
    twin.call("fallthrough_delete_documents", collection="v", ids=["b"], version=fresh_version())
    twin.search("v", vector=[1.0, 0.1])


def _accepted(vector: list[float]) -> bool:
    """A query vector the core passes on: not all zeros, and a squared length float32 can hold."""
    try:
        check_vector(vector)
    except InvalidInput:
        return False
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    vectors=st.lists(
        st.lists(st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, 1e-3]), min_size=4, max_size=4).filter(any),
        min_size=1,
        max_size=30,
    ),
    query=st.lists(st.floats(-10, 10, width=32), min_size=4, max_size=4).filter(_accepted),
    limit=st.integers(1, 12),
)
def test_random_vectors_rank_as_the_model(
    twin: Twin, vectors: list[list[float]], query: list[float], limit: int
) -> None:
    # Few distinct components: many exact and near ties.
    upsert(twin, "rv", *(Document(f"d{i:02d}", "", vector) for i, vector in enumerate(vectors)))
    twin.search("rv", vector=query, limit=limit)
    twin.search("rv", vector=query, limit=limit, filter={"not": {"x": 1}})
    twin.call(
        "fallthrough_delete_documents",
        collection="rv",
        ids=[f"d{i:02d}" for i in range(len(vectors))],
        version=fresh_version(),
    )


def test_filter_only_lists_in_id_order(twin: Twin) -> None:
    upsert(
        twin, "list", *(Document(key, f"text {key}", None, {"k": key}) for key in ["b", "a", "Б", "A", "é", "10", "9"])
    )
    twin.search("list", limit=3)
    twin.search("list", limit=100)
    twin.search("list", filter={"k": {"nin": ["a"]}}, limit=100)
    assert twin.search("unknown", limit=5) == []
    assert twin.search("unknown", vector=[1.0]) == []
    assert twin.search("unknown", text="a") == []
