"""Presence and datetimes on the engine: stored apart from strings, indexed, filtered natively and exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fallthrough
import pytest
from fallthrough import Document
from fallthrough.filters import Filter, matches, parse_filter
from fallthrough.kit import rfc3339
from fallthrough.testing.cases import (
    FIRST,
    LAST,
    NEW_YEAR,
    presence_and_datetime_documents,
    presence_and_datetime_filters,
)
from qdrant_edge import EdgeShard, IsEmptyCondition, IsNullCondition, Point, ScrollRequest, UpdateOperation
from qdrant_edge import Filter as EngineFilter

from fallthrough_qdrant_edge.filters import compile_filter, path_key
from fallthrough_qdrant_edge.schema import collection_path, document_point_id, shard_config

DOCUMENTS = presence_and_datetime_documents("odd-key")
FILTERS = presence_and_datetime_filters("odd-key")


def url(directory: Path) -> str:
    return f"qdrant+edge:///{directory}"


def expected(spec: dict[str, Any], documents: tuple[Document, ...] = DOCUMENTS) -> list[str]:
    node = parse_filter(spec)
    return sorted(document.id for document in documents if matches(node, document.metadata))


def node(spec: dict[str, Any]) -> Filter:
    parsed = parse_filter(spec)
    assert parsed is not None
    return parsed


def test_datetimes_survive_reopening_as_the_same_instant_in_utc(store_dir: Path) -> None:
    ids = [document.id for document in DOCUMENTS]
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("c", DOCUMENTS)
    with fallthrough.connect(url(store_dir)) as store:
        got = store.get_documents("c", ids)
        assert got == list(DOCUMENTS)
        assert got[ids.index("moscow")].metadata["f"] == [NEW_YEAR, "a"]
        assert got[ids.index("iso-string")].metadata["f"] == rfc3339(NEW_YEAR), "a date-like string stays a string"
        for document in got:
            values = document.metadata.get("f")
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, datetime):
                    assert value.tzinfo is UTC, document.id
        assert [hit.id for hit in store.search("c", filter={"f": {"gte": NEW_YEAR}})] == expected(
            {"f": {"gte": NEW_YEAR}}
        )


def test_presence_and_datetime_filters_select_what_the_reference_selects(store_dir: Path) -> None:
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("c", DOCUMENTS)
        for spec in FILTERS:
            assert [hit.id for hit in store.search("c", filter=spec, limit=100)] == expected(spec), spec
    # The vector path filters the same way.
    with fallthrough.connect(url(store_dir)) as store:
        vectors = tuple(Document(d.id, d.text, (1.0, float(i)), d.metadata) for i, d in enumerate(DOCUMENTS))
        store.upsert_documents("v", vectors)
        for spec in FILTERS:
            found = sorted(hit.id for hit in store.search("v", vector=(1.0, 0.0), filter=spec, limit=100))
            assert found == expected(spec, vectors), spec


@pytest.mark.parametrize(
    "spec",
    [
        {"f": {"exists": True}},
        {"f": {"exists": False}},
        {"not": {"f": {"exists": False}}},
        {"f": NEW_YEAR},
        {"f": {"ne": NEW_YEAR}},
        {"f": {"nin": [NEW_YEAR, "a"]}},
        {"not": {"f": {"gt": FIRST, "lte": LAST}}},
        {"n.at": {"gte": NEW_YEAR}},
        {"n.at": NEW_YEAR},
        {"n.at": {"exists": True}},
        {"n.w": {"exists": False}},
        {"n": {"exists": True}},
        {"n.w": "5"},
        {"not": {"n.at": {"ne": LAST}}},
    ],
    ids=repr,
)
def test_presence_and_datetimes_compile_exactly_so_nothing_is_checked_again(spec: dict[str, Any]) -> None:
    compiled = compile_filter(node(spec))
    assert compiled.condition is not None and compiled.exact


def test_a_datetime_field_gets_a_datetime_index_in_its_shard(store_dir: Path) -> None:
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("c", [Document("a", metadata={"at": NEW_YEAR, "n": 1, "odd-key": NEW_YEAR})])
        store.upsert_documents("c", [Document("b", metadata={"at": [LAST], "o": [{"at": NEW_YEAR}, {"w": {}}]})])
    shard = EdgeShard.load(str(collection_path(store_dir, "c")), shard_config(None))
    try:
        schema = shard.info().payload_schema
        assert "meta_dt.at" in schema
        assert "meta.n" not in schema and not any("odd" in field for field in schema)
        assert f"meta_ndt.{path_key('o.at')}" in schema, "a datetime under a dotted path gets its index too"
        points = shard.retrieve([document_point_id("a")], True, False)
        payload = points[0].payload or {}
        assert payload["meta_dt"] == {"at": ["2024-01-01T00:00:00.000000Z"], "odd-key": ["2024-01-01T00:00:00.000000Z"]}
        assert "at" not in payload["meta"], "a datetime is not under meta, where strings are"
        (nested,) = shard.retrieve([document_point_id("b")], True, False)
        payload = nested.payload or {}
        assert payload["meta_ndt"] == {path_key("o.at"): ["2024-01-01T00:00:00.000000Z"]}
        assert payload["meta_o"] == {path_key("o"): [True], path_key("o.w"): [True]}
        assert not payload["meta"].get("o"), "an object is only under meta_o"
    finally:
        shard.close()


def test_the_engines_is_empty_misses_lists_of_none(store_dir: Path) -> None:
    """Why None elements are left out of ``meta``: is_empty misses [null], is_null also takes [null, 1]."""
    shard = EdgeShard.create(str(store_dir / "probe"), shard_config(None))
    try:
        values: dict[int, Any] = {1: [None], 2: [None, 1], 3: []}
        shard.update(UpdateOperation.upsert_points([Point(i, {}, {"f": v}) for i, v in values.items()]))

        def ids(condition: Any) -> set[int]:
            points, _ = shard.scroll(ScrollRequest(limit=10, filter=EngineFilter(must=[condition])))
            return {int(str(point.id)) for point in points}

        absent = {i for i, v in values.items() if matches(node({"f": {"exists": False}}), {"f": v})}
        assert absent == {1, 3}
        assert ids(IsEmptyCondition("f")) == {3}
        assert ids(IsNullCondition("f")) == {1, 2}
    finally:
        shard.close()


def test_documents_written_before_the_layout_still_filter_exactly(store_dir: Path) -> None:
    """An old document keeps None in ``meta``: its collection checks presence again on the exact metadata."""
    with fallthrough.connect(url(store_dir)) as store:
        store.upsert_documents("c", [Document("new", metadata={"f": [None]})])
    old = {
        "only-nones": [None, None],
        "none-and-one": [None, 1],
        "none": None,
        "one": 1,
    }
    shard = EdgeShard.load(str(collection_path(store_dir, "c")), shard_config(None))
    try:
        points = shard.retrieve([document_point_id("new")], True, False)
        template = dict(points[0].payload or {})
        assert template.pop("meta_layout") == 2
        template.pop("meta_dt")
        written = []
        for document_id, value in old.items():
            payload = {**template, "id": document_id, "meta": {"f": value}, "meta_json": json.dumps({"f": value})}
            written.append(Point(document_point_id(document_id), {}, payload))
        shard.update(UpdateOperation.upsert_points(written))
    finally:
        shard.close()
    documents = (
        Document("new", metadata={"f": [None]}),
        *(Document(document_id, metadata={"f": value}) for document_id, value in old.items()),
    )
    with fallthrough.connect(url(store_dir)) as store:
        for spec in ({"f": {"exists": True}}, {"f": {"exists": False}}, {"not": {"f": {"exists": True}}}):
            assert [hit.id for hit in store.search("c", filter=spec, limit=100)] == expected(spec, documents), spec
