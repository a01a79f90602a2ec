"""Presence and datetimes: stored apart from strings, read back exactly, filtered natively and exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from qdrant_client import QdrantClient, models

from fallthrough.filters import matches, parse_filter
from fallthrough.kit import dump_metadata, from_rfc3339, load_metadata, rfc3339
from fallthrough.testing.cases import (
    FIRST,
    LAST,
    NEW_YEAR,
    ODD_KEY,
    presence_and_datetime_documents,
    presence_and_datetime_filters,
)
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.types import Document, SearchQuery
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.filters import compile_filter, field_key
from fallthrough_qdrant.schema import document_point_id
from tests.qdrant.recording import RecordingClient, indexing

DOCUMENTS = presence_and_datetime_documents()
FILTERS = presence_and_datetime_filters()


def _search(driver: HookDriver, spec: dict[str, Any]) -> list[str]:
    query = SearchQuery(vector=None, text=None, filter=parse_filter(spec), limit=100)
    return [hit.id for hit in driver.call("fallthrough_search", collection="c", query=query)]


def _expected(spec: dict[str, Any]) -> list[str]:
    node = parse_filter(spec)
    return sorted(document.id for document in DOCUMENTS if matches(node, document.metadata))


def test_datetimes_read_back_as_the_same_instant_in_utc_to_the_microsecond(driver: HookDriver) -> None:
    driver.call("fallthrough_upsert_documents", collection="c", documents=DOCUMENTS, version=fresh_version())
    ids = tuple(document.id for document in DOCUMENTS)
    got = driver.call("fallthrough_get_documents", collection="c", ids=ids)
    assert got == list(DOCUMENTS)
    moscow = next(document for document in got if document.id == "moscow")
    assert moscow.metadata["f"] == [NEW_YEAR, "a"]
    extremes = next(document for document in got if document.id == "extremes")
    assert extremes.metadata == {"f": [FIRST, None, LAST], ODD_KEY: NEW_YEAR}
    nested = next(document for document in got if document.id == "list-of-objects")
    assert nested.metadata["n"][1]["at"] is not None and nested.metadata["n"][1][ODD_KEY]["deep"] == [NEW_YEAR]  # type: ignore[call-overload,index]
    for document in got:
        values = document.metadata.get("f")
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, datetime):
                assert value.tzinfo is UTC, document.id
    # A string that spells a date stays a string.
    assert next(document for document in got if document.id == "iso-string").metadata["f"] == rfc3339(NEW_YEAR)


@pytest.mark.parametrize("spec", FILTERS, ids=repr)
def test_presence_and_datetime_filters_select_what_the_reference_selects(driver: HookDriver, spec: Any) -> None:
    driver.call("fallthrough_upsert_documents", collection="c", documents=DOCUMENTS, version=fresh_version())
    assert _search(driver, spec) == _expected(spec)


def test_datetimes_survive_reopening_a_directory(tmp_path: Path) -> None:
    url = f"qdrant+local:///{tmp_path}/q"
    first = HookDriver(QdrantBackend(url), "qdrant")
    first.open()
    first.call("fallthrough_upsert_documents", collection="c", documents=DOCUMENTS, version=fresh_version())
    first.close()
    again = HookDriver(QdrantBackend(url), "qdrant")
    again.open()
    try:
        ids = tuple(document.id for document in DOCUMENTS)
        assert again.call("fallthrough_get_documents", collection="c", ids=ids) == list(DOCUMENTS)
        assert _search(again, {"f": {"gte": NEW_YEAR}}) == _expected({"f": {"gte": NEW_YEAR}})
    finally:
        again.close()


def test_metadata_json_tags_datetimes_and_nothing_else() -> None:
    metadata = {"at": NEW_YEAR, "list": [FIRST, "2024-01-01T00:00:00.000000Z", None, 1.0], "n": 1}
    text = dump_metadata(metadata, rfc3339)
    assert json.loads(text) == {
        "at": {"$dt": "2024-01-01T00:00:00.000000Z"},
        "list": [{"$dt": "0001-01-01T00:00:00.000000Z"}, "2024-01-01T00:00:00.000000Z", None, 1.0],
        "n": 1,
    }
    decoded = load_metadata(text, from_rfc3339)
    assert (
        decoded == metadata and isinstance(decoded["n"], int) and isinstance(cast(list[Any], decoded["list"])[3], float)
    )
    # Metadata written before datetimes existed reads as it did.
    assert load_metadata('{"a":[1,"x",null],"b":true}', from_rfc3339) == {"a": [1, "x", None], "b": True}


def test_a_datetime_is_stored_apart_from_strings_with_a_datetime_index() -> None:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=dt_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(indexing(backend), "qdrant")
    driver.open()
    try:
        documents = (
            Document("plain", metadata={"at": NEW_YEAR, "s": "2024-01-01T00:00:00.000000Z"}),
            Document("vector", vector=(1.0, 0.0), metadata={"at": [LAST]}),
        )
        for _ in range(2):
            driver.call("fallthrough_upsert_documents", collection="c", documents=documents, version=fresh_version())
        created = [(args[:2], kwargs["field_schema"]) for args, kwargs in client.named("create_payload_index")]
        at, s = field_key("at"), field_key("s")
        datetime_indexes = [(where, schema) for where, schema in created if where[1].startswith("d.")]
        # One per collection written, and once only: the second write asks for none.
        assert sorted(datetime_indexes) == [
            (("dt_docs_c", f"d.{at}"), models.PayloadSchemaType.DATETIME),
            (("dt_vecs_c", f"d.{at}"), models.PayloadSchemaType.DATETIME),
        ]
        raw = QdrantClient.retrieve(
            cast(QdrantClient, client), "dt_docs_c", [document_point_id("plain")], with_payload=True
        )
        payload = raw[0].payload or {}
        assert payload["d"] == {at: ["2024-01-01T00:00:00.000000Z"]}
        assert payload["s"] == {s: ["2024-01-01T00:00:00.000000Z"]}, "the date-like string is a string only"
    finally:
        driver.close()


def _leaves(condition: Any) -> list[Any]:
    """The field and is_empty conditions of a compiled filter, depth first."""
    if not isinstance(condition, models.Filter):
        return [condition]
    clauses = [*(condition.must or []), *(condition.should or []), *(condition.must_not or [])]
    return [leaf for clause in clauses for leaf in _leaves(clause)]


def test_the_filters_compile_to_qdrant_conditions_without_a_check_in_python() -> None:
    at = field_key("at")
    ranged = _leaves(compile_filter(cast(Any, parse_filter({"at": {"gte": NEW_YEAR, "lt": LAST}}))))
    assert [(leaf.key, type(leaf.range)) for leaf in ranged] == [(f"d.{at}", models.DatetimeRange)] * 2
    equal = _leaves(compile_filter(cast(Any, parse_filter({"at": {"in": [NEW_YEAR, "x"]}}))))
    assert [leaf.key for leaf in equal] == [f"d.{at}", f"s.{at}"]
    for present in (True, False):
        leaves = _leaves(compile_filter(cast(Any, parse_filter({"at": {"exists": present}}))))
        assert all(isinstance(leaf, models.IsEmptyCondition) for leaf in leaves)
        assert [leaf.is_empty.key for leaf in leaves] == [f"{kind}.{at}" for kind in "snbdo"]


def test_qdrants_own_is_empty_and_is_null_disagree_with_the_reference_on_lists_of_none() -> None:
    """Why None elements are never stored: is_empty misses [null], is_null also takes [null, 1]."""
    client = QdrantClient(location=":memory:")
    client.create_collection("t", vectors_config={})
    values: dict[int, Any] = {1: [None], 2: [None, 1], 3: []}
    client.upsert("t", [models.PointStruct(id=i, vector={}, payload={"f": v}) for i, v in values.items()])

    def ids(condition: models.Condition) -> set[int]:
        points, _ = client.scroll("t", models.Filter(must=[condition]), limit=10)
        return {int(point.id) for point in points}

    absent_by_reference = {
        i for i, v in values.items() if not matches(parse_filter({"f": {"exists": False}}), {"f": v})
    }
    assert {i for i in values if i not in absent_by_reference} == {1, 3}
    assert ids(models.IsEmptyCondition(is_empty=models.PayloadField(key="f"))) == {3}
    assert ids(models.IsNullCondition(is_null=models.PayloadField(key="f"))) == {1, 2}
    client.close()


def test_qdrants_own_nested_keys_follow_one_shape_only_which_is_why_paths_are_stored_flat() -> None:
    """In qdrant-client's local mode, ``a.b`` misses a list of objects and ``a[].b`` misses an object.

    A dotted path of the filter language finds both (the reference fans out
    over lists), so the backend stores each path's values under one key
    instead of compiling to Qdrant's nested keys (see filters.py).
    """
    client = QdrantClient(location=":memory:")
    client.create_collection("t", vectors_config={})
    payloads: dict[int, Any] = {1: {"a": {"b": 1}}, 2: {"a": [{"b": 1}, {"b": 2}]}}
    client.upsert("t", [models.PointStruct(id=i, vector={}, payload=p) for i, p in payloads.items()])

    def ids(key: str) -> set[int]:
        condition = models.FieldCondition(key=key, range=models.Range(gte=1, lte=1))
        points, _ = client.scroll("t", models.Filter(must=[condition]), limit=10)
        return {int(point.id) for point in points}

    assert ids("a.b") == {1}
    assert ids("a[].b") == {2}
    assert [i for i, p in payloads.items() if matches(parse_filter({"a.b": 1}), p)] == [1, 2]


def test_a_nested_datetime_gets_its_own_key_and_datetime_index() -> None:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=nd_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(indexing(backend), "qdrant")
    driver.open()
    try:
        document = Document("a", metadata={"n": [{"at": NEW_YEAR}, {"at": [LAST], "w": {}}]})
        driver.call("fallthrough_upsert_documents", collection="c", documents=(document,), version=fresh_version())
        indexed = {args[1] for args, _ in client.named("create_payload_index")}
        assert f"d.{field_key('n.at')}" in indexed
        assert _search(driver, {"n.at": {"gt": NEW_YEAR}}) == ["a"]
        assert _search(driver, {"n.w": {"exists": True}}) == ["a"]
        assert _search(driver, {"n": {"exists": False}}) == []
    finally:
        driver.close()
