"""Datetimes and presence on real servers: what is stored, and that ranges use the field's index.

The shared suite checks the answers; this checks what only SQL can see:
the stored encoding (``{"$dt": micros}``, and the span summary kept for
filters), the GiST index a datetime field gets, and the plans of range
queries over more than 10,000 documents.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fallthrough.filters import matches, parse_filter
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document, SearchQuery
from fallthrough_postgresql.documents import MAX_DATETIME_FIELDS, datetime_index_name
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import Hooks, direct, filter_only_plan, open_backend

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = 12_000


def _unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def _ids(hooks: Hooks, collection: str, spec: dict[str, Any], limit: int = 100_000) -> list[str]:
    query = SearchQuery(None, None, parse_filter(spec), limit)
    return [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)]


def test_datetimes_are_stored_tagged_and_read_back_as_the_same_utc_instant(database: str) -> None:
    hooks = open_backend(database)
    collection = _unique("dt-store")
    plus_five = timezone(timedelta(hours=5))
    documents = [
        Document("a", "x", metadata={"at": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=plus_five), "s": "2024"}),
        Document("b", "x", metadata={"at": [None, datetime(1, 1, 1, tzinfo=UTC), T0, "t"], "n": 1}),
        Document("c", "x", metadata={"at": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}),
    ]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    read = hooks.fallthrough_get_documents(collection=collection, ids=["a", "b", "c"])
    assert [document.metadata for document in read] == [document.metadata for document in documents]
    moment = read[0].metadata["at"]
    assert moment == datetime(2024, 5, 6, 2, 8, 9, 123456, tzinfo=UTC) and moment.tzinfo is UTC
    with direct(database) as conn:
        rows = dict(
            conn.execute(
                "SELECT id, metadata::text FROM fallthrough_documents WHERE collection = %s ORDER BY id",
                (collection,),
            ).fetchall()
        )
        summary = conn.execute(
            "SELECT metadata_jsonb -> '' FROM fallthrough_documents WHERE collection = %s AND id = 'b'",
            (collection,),
        ).fetchone()
    micros = (datetime(2024, 5, 6, 2, 8, 9, 123456, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    assert json.loads(rows["a"]) == {"at": {"$dt": micros}, "s": "2024"}
    earliest = (datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    latest = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert json.loads(rows["b"])["at"] == [None, {"$dt": earliest}, {"$dt": latest}, "t"]
    # The summary (earliest, latest) is kept for filters only: reads come from the json column.
    assert summary == ({"at": [earliest, latest]},)


def test_presence_and_datetime_filters_agree_with_the_reference(database: str) -> None:
    hooks = open_backend(database)
    collection = _unique("dt-filters")
    field = "it's at"  # a quote in the name: the span's expression holds it as a literal
    metadata: list[dict[str, Any]] = [
        {field: T0},
        {field: T0 + timedelta(microseconds=1)},
        {field: [T0 - timedelta(days=3), None, T0 + timedelta(days=30)]},
        {field: [None]},
        {field: []},
        {field: None},
        {},
        {field: "2024-01-01T00:00:00+00:00"},
        {field: 1704067200000000},
        {field: [1, T0 + timedelta(days=1)], "n": 2},
    ]
    documents = [Document(f"d{index}", "x", metadata=item) for index, item in enumerate(metadata)]
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    specs: list[dict[str, Any]] = [
        {field: {"exists": True}},
        {field: {"exists": False}},
        {"not": {field: {"exists": True}}, "n": {"exists": False}},
        {field: T0},
        {field: {"ne": T0}},
        {field: {"in": [T0, "2024-01-01T00:00:00+00:00", 1704067200000000]}},
        {field: {"nin": [T0 + timedelta(days=index) for index in range(20)]}},
        {field: {"gt": T0}},
        {field: {"gte": T0}},
        {field: {"lt": T0 + timedelta(microseconds=1)}},
        {field: {"lte": T0}},
        {field: {"gt": T0, "lt": T0 + timedelta(days=2)}},
        # An empty intersection: a list may still hold an element after 10 days and one before 5.
        {field: {"gt": T0 + timedelta(days=10), "lt": T0 - timedelta(days=1)}},
        {"and": [{field: {"gte": T0}}, {field: {"lte": T0}}, {field: {"lt": T0 + timedelta(days=31)}}]},
        {"not": {field: {"gte": T0 - timedelta(days=1), "lte": T0 + timedelta(days=2)}}},
        {"or": [{field: {"lt": T0 - timedelta(days=1)}}, {field: {"gt": 1}}]},
        {field: {"gt": 0}},
    ]
    for spec in specs:
        node = parse_filter(spec)
        expected = sorted(document.id for document in documents if matches(node, document.metadata))
        assert _ids(hooks, collection, spec) == expected, spec


@pytest.fixture(scope="module")
def timeline(database: str) -> tuple[Hooks, str, list[Document]]:
    """12,000 documents half an hour apart (a few holding lists), in a collection of their own, analysed."""
    hooks = open_backend(database)
    collection = _unique("dt-plans")
    documents = []
    for index in range(ROWS):
        moment = T0 + timedelta(minutes=30 * index)
        value: Any = [moment, moment + timedelta(days=1)] if index % 100 == 0 else moment
        documents.append(Document(f"d{index:05}", "x", metadata={"at": value, "n": index}))
    hooks.fallthrough_upsert_documents(collection=collection, documents=documents, version=fresh_version())
    with direct(database) as conn:
        conn.execute("ANALYZE fallthrough_documents")
    return hooks, collection, documents


@pytest.mark.parametrize(
    "spec",
    [
        {"at": {"gte": T0 + timedelta(days=100), "lt": T0 + timedelta(days=101)}},
        {"at": {"lt": T0 + timedelta(days=2)}},
        {"at": {"gt": T0 + timedelta(days=248)}},
        {"or": [{"at": {"lt": T0 + timedelta(days=1)}}, {"at": {"gte": T0 + timedelta(days=249)}}]},
    ],
    ids=["window", "before", "after", "either-end"],
)
def test_a_selective_datetime_range_is_planned_on_the_fields_gist_index(
    timeline: tuple[Hooks, str, list[Document]], database: str, spec: dict[str, Any]
) -> None:
    hooks, collection, documents = timeline
    plan = filter_only_plan(database, collection, spec, 1000)
    assert datetime_index_name("at") in plan, plan
    node = parse_filter(spec)
    expected = sorted(document.id for document in documents if matches(node, document.metadata))
    assert 0 < len(expected) < ROWS // 20
    assert _ids(hooks, collection, spec, 1000) == expected


def test_a_range_matching_most_documents_is_not_planned_on_the_index(
    timeline: tuple[Hooks, str, list[Document]], database: str
) -> None:
    # The statistics make the estimate right: reading the index would be slower than the collection in id order.
    _, collection, _ = timeline
    plan = filter_only_plan(database, collection, {"at": {"gt": T0 + timedelta(days=2)}}, 1000)
    assert datetime_index_name("at") not in plan, plan


def test_the_search_hook_reads_the_datetime_index(timeline: tuple[Hooks, str, list[Document]], database: str) -> None:
    hooks, collection, _ = timeline
    name = datetime_index_name("at")
    statistic = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s"
    with direct(database) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        before = conn.execute(statistic, (name,)).fetchone()
        assert before is not None
        spec = {"at": {"gte": T0 + timedelta(days=50), "lt": T0 + timedelta(days=51)}}
        assert len(_ids(hooks, collection, spec, 1000)) == 48
        # The backend's connections report their statistics within a second or so of going idle.
        deadline = time.monotonic() + 10
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            after = conn.execute(statistic, (name,)).fetchone()
            assert after is not None
            if after[0] > before[0] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert after[0] > before[0]


def test_datetime_fields_get_an_index_each_up_to_the_limit(server: Server) -> None:
    database = server.new_database()
    hooks = open_backend(database)
    fields = [f"f{index:02}" for index in range(MAX_DATETIME_FIELDS + 2)]
    metadata: dict[str, Any] = {field: T0 + timedelta(hours=index) for index, field in enumerate(fields)}
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document("a", "x", metadata=metadata)], version=fresh_version()
    )
    # A second backend (as another process) finds the indexes there and adds none.
    other = open_backend(database)
    other.fallthrough_upsert_documents(
        collection="d", documents=[Document("b", "x", metadata=metadata)], version=fresh_version()
    )
    with direct(database) as conn:
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'fallthrough_dt%'")
        names = {row[0] for row in indexes}
        statistics = conn.execute(
            "SELECT count(*) FROM pg_statistic_ext WHERE stxname LIKE 'fallthrough_dt%'"
        ).fetchone()
    assert names == {datetime_index_name(field) for field in fields[:MAX_DATETIME_FIELDS]}
    assert statistics == (MAX_DATETIME_FIELDS,)
    # A field past the limit has no index, and its ranges still answer.
    last = fields[-1]
    assert _ids(other, "d", {last: {"gte": metadata[last]}}) == ["b"]
    assert _ids(other, "d", {last: {"gt": metadata[last]}}) == []
