"""Nested metadata and dotted paths on real servers: answers, and that the indexes serve them.

The shared suite checks answers against the reference model on random
documents; here: the fixed corners of :mod:`fallthrough.testing.cases`
(presence and datetimes at depth, lists of objects), and the plans of dotted
filters over enough documents that the planner has a choice: an equality
on a dotted path is served by the GIN ``jsonb_path_ops`` index through its
``@?`` path, and a datetime range on one by that path's GiST index.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fallthrough.filters import matches, parse_filter
from fallthrough.testing.cases import presence_and_datetime_documents, presence_and_datetime_filters
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document, SearchQuery
from fallthrough_postgresql.documents import datetime_index_name
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import Hooks, direct, filter_only_plan, open_backend

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = 12_000


def _ids(hooks: Hooks, collection: str, spec: dict[str, Any], limit: int = 100_000) -> list[str]:
    query = SearchQuery(None, None, parse_filter(spec), limit)
    return [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)]


def test_nested_presence_and_datetimes_agree_with_the_reference(database: str) -> None:
    hooks = open_backend(database)
    collection = f"nested-{time.time_ns()}"
    documents = presence_and_datetime_documents()
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    read = hooks.fallthrough_get_documents(collection=collection, ids=[document.id for document in documents])
    assert read == list(documents)
    for spec in presence_and_datetime_filters():
        node = parse_filter(spec)
        expected = sorted(document.id for document in documents if matches(node, document.metadata))
        assert _ids(hooks, collection, spec) == expected, spec


@pytest.mark.parametrize(
    "value",
    ["x", 'Straße "quoted" \\ back', 2**53 - 1, -0.5, 1e308, 5e-324, True, 0],
    ids=repr,
)
def test_a_dotted_equality_compares_typed_values_exactly(database: str, value: Any) -> None:
    hooks = open_backend(database)
    collection = f"literal-{time.time_ns()}"
    others: list[Any] = ["1", 1, 1.0, True, False, 2**53 - 2, "x ", 0.5, None]
    documents = [
        Document(f"d{index}", "x", metadata={"p": [{"v": option}, 3]}) for index, option in enumerate([value, *others])
    ]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    for spec in ({"p.v": value}, {"p.v": {"ne": value}}, {"p.v": {"in": [value, "zz"]}}):
        node = parse_filter(spec)
        expected = sorted(document.id for document in documents if matches(node, document.metadata))
        assert _ids(hooks, collection, spec) == expected, spec


@pytest.fixture(scope="module")
def nested_database(server: Server) -> str:
    """A database of its own: the shared one may have used up its datetime indexes (MAX_DATETIME_FIELDS)."""
    return server.new_database()


@pytest.fixture(scope="module")
def nested(nested_database: str) -> tuple[Hooks, str, list[Document]]:
    """12,000 documents with a list of objects each (a datetime and a code per object), analysed."""
    database = nested_database
    hooks = open_backend(database)
    collection = f"nested-plans-{time.time_ns()}"
    documents = []
    for index in range(ROWS):
        moment = T0 + timedelta(minutes=30 * index)
        parts: Any = [{"at": moment, "code": f"c{index}"}, {"code": "common"}]
        metadata = {"parts": parts if index % 2 else {"at": moment, "code": f"c{index}"}, "n": index}
        documents.append(Document(f"d{index:05}", "x", metadata=metadata))
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    with direct(database) as conn:
        conn.execute("ANALYZE fallthrough_documents")
    return hooks, collection, documents


@pytest.mark.parametrize("code", ["c7", "c8"], ids=["in-a-list", "in-an-object"])
def test_a_dotted_equality_is_planned_on_the_gin_index(
    nested: tuple[Hooks, str, list[Document]], nested_database: str, code: str
) -> None:
    database = nested_database
    hooks, collection, documents = nested
    spec = {"parts.code": code}
    plan = filter_only_plan(database, collection, spec, 10)
    assert "fallthrough_documents_metadata" in plan, plan
    assert _ids(hooks, collection, spec) == [
        document.id for document in documents if document.id.endswith(code[1:].zfill(5))
    ]


def test_a_dotted_datetime_range_is_planned_on_the_paths_gist_index(
    nested: tuple[Hooks, str, list[Document]], nested_database: str
) -> None:
    database = nested_database
    hooks, collection, documents = nested
    spec = {"parts.at": {"gte": T0 + timedelta(days=100), "lt": T0 + timedelta(days=101)}}
    plan = filter_only_plan(database, collection, spec, 1000)
    assert datetime_index_name("parts.at") in plan, plan
    node = parse_filter(spec)
    expected = sorted(document.id for document in documents if matches(node, document.metadata))
    assert len(expected) == 48
    assert _ids(hooks, collection, spec, 1000) == expected


@pytest.mark.parametrize("value", [17, 17.0], ids=["int", "float"])
def test_a_top_level_equality_is_one_probe_of_the_gin_index(
    nested: tuple[Hooks, str, list[Document]], nested_database: str, value: float
) -> None:
    # The form a dotted path has: one @? probe, where two containment tests (the scalar and
    # the list form) each probed the index for the same entries and were ORed together.
    hooks, collection, _ = nested
    spec = {"n": value}
    plan = filter_only_plan(nested_database, collection, spec, 10)
    assert plan.count("Index Scan on fallthrough_documents_metadata") == 1, plan
    assert "BitmapOr" not in plan, plan
    assert _ids(hooks, collection, spec) == ["d00017"]
