"""Datetimes and presence on SQLite: what the conformance suite cannot see.

The suite checks the answers against the reference model. Here: how a
datetime is stored (``{"$dt": micros}``, never confused with user data), that
the ``document_datetimes`` index table follows every write, conditional ones
included, and that a datetime range is a range scan of its index.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from fallthrough.filters import matches, parse_filter
from fallthrough.types import Document, SearchQuery, to_micros
from fallthrough_sqlite.filters import NARROW
from fallthrough_sqlite.schema import SCHEMA_VERSION
from tests.sqlite.helpers import Twin, file_url, open_backend
from tests.sqlite.test_sqlite_versions import _Statements, _write_v1_file

NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
KOLKATA = timezone(timedelta(hours=5, minutes=30))


def _rows(path: Path, sql: str, *parameters: object) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def _indexed(path: Path) -> list[tuple[object, ...]]:
    """The datetime index table, as (collection, document id, field, micros), sorted."""
    return sorted(
        _rows(
            path,
            "SELECT t.collection, d.id, t.field, t.micros FROM document_datetimes AS t"
            " JOIN documents AS d ON d.row_id = t.row_id",
        )
    )


def _ids(hooks: object, collection: str, spec: dict[str, object]) -> list[str]:
    query = SearchQuery(None, None, parse_filter(spec), 100)
    return [hit.id for hit in hooks.fallthrough_search(collection=collection, query=query)]  # type: ignore[attr-defined]


def test_a_datetime_is_stored_as_an_object_of_its_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _, hooks = open_backend(file_url(path))
    moment = datetime(2024, 1, 1, 5, 30, 0, 7, tzinfo=KOLKATA)
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document("d", metadata={"at": moment, "many": [None, moment]})], version=1
    )
    micros = to_micros(moment)
    assert micros == to_micros(NEW_YEAR) + 7
    assert _rows(path, "SELECT metadata FROM documents WHERE id = 'd'") == [
        (f'{{"at":{{"$dt":{micros}}},"many":[null,{{"$dt":{micros}}}]}}',)
    ]
    (document,) = hooks.fallthrough_get_documents(collection="c", ids=["d"])
    assert document.metadata == {"at": NEW_YEAR + timedelta(microseconds=7), "many": [None, moment]}
    assert document.metadata["at"].tzinfo is UTC
    hooks.fallthrough_close()


def test_user_values_that_look_like_the_encoding_stay_user_values(twin: Twin) -> None:
    collection = "c"
    lookalikes = Document(
        "lookalike", metadata={"dt": 5, "s": '{"$dt":5}', "l": ['{"$dt":5}', 5], "o": {"dt": 5}, "e": {}}
    )
    real = Document("real", metadata={"dt": NEW_YEAR, "s": NEW_YEAR, "l": [NEW_YEAR], "o": {"dt": NEW_YEAR}})
    twin.upsert(collection, lookalikes, real)
    assert twin.get(collection, "lookalike", "real") == [lookalikes, real]
    # The Twin checks every answer against the model exactly.
    assert [hit.id for hit in twin.search(collection, filter={"dt": 5})] == ["lookalike"]
    assert [hit.id for hit in twin.search(collection, filter={"dt": NEW_YEAR})] == ["real"]
    assert [hit.id for hit in twin.search(collection, filter={"o.dt": 5})] == ["lookalike"]
    assert [hit.id for hit in twin.search(collection, filter={"o.dt": NEW_YEAR})] == ["real"]
    assert [hit.id for hit in twin.search(collection, filter={"o": 5})] == []
    assert [hit.id for hit in twin.search(collection, filter={"e": {"exists": True}})] == ["lookalike"]
    assert [hit.id for hit in twin.search(collection, filter={"s": '{"$dt":5}'})] == ["lookalike"]
    assert [hit.id for hit in twin.search(collection, filter={"l": {"gte": 5}})] == ["lookalike"]
    assert [hit.id for hit in twin.search(collection, filter={"s": {"gt": 0}})] == []
    micros = to_micros(NEW_YEAR)
    for field in ("dt", "s", "l", "o.dt"):
        assert [hit.id for hit in twin.search(collection, filter={field: micros})] == []
        assert [hit.id for hit in twin.search(collection, filter={field: {"gte": micros - 1}})] == []
        assert [hit.id for hit in twin.search(collection, filter={field: {"exists": True}})] == ["lookalike", "real"]


def test_the_datetime_index_follows_every_write(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    _, hooks = open_backend(file_url(path))
    later = NEW_YEAR + timedelta(days=1)
    first = [
        Document("a", metadata={"at": NEW_YEAR, "tags": ["x", later, None, NEW_YEAR], "n": 1}),
        Document("b", metadata={"n": 2}),
    ]
    hooks.fallthrough_upsert_documents(collection="c", documents=first, version=10)
    hooks.fallthrough_upsert_documents(
        collection="other", documents=[Document("a", metadata={"at": later})], version=10
    )
    m0, m1 = to_micros(NEW_YEAR), to_micros(later)
    assert _indexed(path) == sorted(
        [("c", "a", "at", m0), ("c", "a", "tags", m1), ("c", "a", "tags", m0), ("other", "a", "at", m1)]
    )
    # An upsert that loses to the stored version changes nothing.
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("a", metadata={"at": later})], version=9)
    assert ("c", "a", "at", m0) in _indexed(path)
    # A replacement without datetimes drops a's; one with a datetime adds b's.
    hooks.fallthrough_upsert_documents(
        collection="c",
        documents=[Document("a", metadata={"at": "now"}), Document("b", metadata={"at": later})],
        version=11,
    )
    assert _indexed(path) == [("c", "b", "at", m1), ("other", "a", "at", m1)]
    assert _ids(hooks, "c", {"at": {"gt": NEW_YEAR}}) == ["b"]
    # A delete leaves a tombstone, which holds no datetime.
    assert hooks.fallthrough_delete_documents(collection="c", ids=["b"], version=12) == 1
    assert _indexed(path) == [("other", "a", "at", m1)]
    assert _ids(hooks, "c", {"at": {"gt": NEW_YEAR}}) == []
    # The repair path writes through the same upsert; a tombstone brought back to life gets its rows again.
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("b", metadata={"at": [later]})], version=13)
    assert _indexed(path) == [("c", "b", "at", m1), ("other", "a", "at", m1)]
    assert _ids(hooks, "c", {"at": {"lte": later}}) == ["b"]
    assert _ids(hooks, "other", {"at": {"lte": later}}) == ["a"]
    hooks.fallthrough_close()


def test_a_datetime_range_is_a_range_scan_of_the_datetime_index(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    backend, hooks = open_backend(file_url(path))
    documents = [
        Document(f"d{index}", metadata={"at": NEW_YEAR + timedelta(hours=index), "n": index}) for index in range(200)
    ]
    hooks.fallthrough_upsert_documents(collection="c", documents=documents, version=1)
    statements = _Statements(backend)
    hits = _ids(hooks, "c", {"at": {"gte": NEW_YEAR + timedelta(hours=10), "lt": NEW_YEAR + timedelta(hours=13)}})
    assert hits == ["d10", "d11", "d12"]
    assert _ids(hooks, "c", {"at": {"in": [NEW_YEAR, "x"]}}) == ["d0"]
    plans = [plan for _, plan in statements.plans(path) if "document_datetimes" in plan]
    assert len(plans) == 2, plans
    index = "SEARCH document_datetimes USING COVERING INDEX document_datetimes_by_value"
    # The range's two operators are one range of the index, with both bounds: read once to count the
    # window (up to NARROW) and once for its row ids. No range with one bound (half the table) is read.
    assert plans[0].count(f"{index} (collection=? AND field=? AND micros>? AND micros<?)") == 2, plans[0]
    assert f"{index} (collection=? AND field=? AND micros>?)" not in plans[0], plans[0]
    assert f"{index} (collection=? AND field=? AND micros<?)" not in plans[0], plans[0]
    assert f"{index} (collection=? AND field=? AND micros=?)" in plans[1], plans[1]
    assert all("SCAN document_datetimes" not in plan for plan in plans), plans
    hooks.fallthrough_close()


def _range_documents() -> list[Document]:
    """Single datetimes spread over NARROW * 3 hours, and every other shape a range must get right."""
    at = [NEW_YEAR + timedelta(hours=index) for index in range(NARROW * 3)]
    documents = [Document(f"s{index:05}", metadata={"at": moment}) for index, moment in enumerate(at)]
    early, late = NEW_YEAR - timedelta(days=1), NEW_YEAR + timedelta(hours=NARROW * 4)
    mid = NEW_YEAR + timedelta(hours=NARROW)
    shapes: list[dict[str, object]] = [
        {"at": [early, late]},  # straddles every window: each bound holds for one element
        {"at": [late, early, "x", 3, None]},
        {"at": [mid]},
        {"at": [early, mid, late]},
        {"at": []},
        {"at": {"x": 1}},  # a user's object: never in range
        {"at": [{"x": 1}, mid]},
        {"at": str(mid)},
        {"at": to_micros(mid)},
        {"at": None},
        {"other": mid},
        {"at": mid, "deep": {"at": mid}},
        {"deep": {"at": [early, late]}},
        {"deep": [{"at": early}, {"at": late}]},
        {"deep": [{"at": mid}, 5, "x"]},
        {"deep": {"at": {"x": 1}}},
        {"deep": [{"at": [early, late]}, {"at": "x"}]},
    ]
    documents += [Document(f"x{index:02}", metadata=shape) for index, shape in enumerate(shapes)]
    return documents


def test_merged_datetime_ranges_agree_with_the_reference(tmp_path: Path) -> None:
    """A field's range operators are merged into one condition; the answers stay those of ``matches``.

    The windows are narrow (the index table's row ids) and wider than NARROW (the per-row test), on a
    top-level field and on dotted paths, with lists whose datetimes straddle a window, under ``not``,
    and split over ``and`` clauses.
    """
    path = tmp_path / "ranges.db"
    _, hooks = open_backend(file_url(path))
    documents = _range_documents()
    hooks.fallthrough_upsert_documents(collection="c", documents=documents, version=1)
    narrow_low, narrow_high = NEW_YEAR + timedelta(hours=NARROW - 5), NEW_YEAR + timedelta(hours=NARROW + 5)
    wide_low, wide_high = NEW_YEAR + timedelta(hours=10), NEW_YEAR + timedelta(hours=NARROW * 2)
    specs: list[dict[str, object]] = []
    for field in ("at", "deep.at"):
        for low, high in ((narrow_low, narrow_high), (wide_low, wide_high)):
            specs += [
                {field: {"gte": low, "lt": high}},
                {field: {"gt": low, "lte": high}},
                {field: {"gte": low}},
                {field: {"lt": high}},
                {field: {"gte": low, "gt": low + timedelta(hours=1), "lt": high, "lte": high}},
                {"not": {field: {"gte": low, "lt": high}}},
                {"and": [{field: {"gte": low}}, {"other": {"exists": False}}, {field: {"lt": high}}]},
                {"or": [{field: {"gte": low, "lt": high}}, {"other": {"exists": True}}]},
                {field: {"gte": high, "lt": low}},  # an empty window: only a straddling list
            ]
    for spec in specs:
        node = parse_filter(spec)
        query = SearchQuery(None, None, node, len(documents))
        found = [hit.id for hit in hooks.fallthrough_search(collection="c", query=query)]
        expected = sorted(document.id for document in documents if matches(node, document.metadata))
        assert found == expected, spec
    hooks.fallthrough_close()


def test_an_older_file_gains_the_datetime_index_and_takes_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _write_v1_file(path, uuid.uuid4())
    _, hooks = open_backend(file_url(path))
    assert _rows(path, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    hooks.fallthrough_upsert_documents(collection="c", documents=[Document("d3", metadata={"at": NEW_YEAR})], version=1)
    assert _ids(hooks, "c", {"at": {"gte": NEW_YEAR}}) == ["d3"]
    assert _ids(hooks, "c", {"at": {"exists": False}}) == ["d1", "d2"]
    assert _ids(hooks, "c", {"k": {"exists": True}}) == ["d1"]
    hooks.fallthrough_close()


def test_nested_objects_stay_out_of_the_index_and_a_file_with_the_old_triggers_loses_them(tmp_path: Path) -> None:
    """The index holds top-level datetimes only; nested ones are found by the JSON walk.

    A file written before nested metadata has datetime triggers that took
    every top-level object for a datetime (a user's object would fail their
    insert): opening it drops them.
    """
    path = tmp_path / "store.db"
    _, hooks = open_backend(file_url(path))
    hooks.fallthrough_close()
    connection = sqlite3.connect(path)
    connection.execute(
        """CREATE TRIGGER documents_datetimes_insert AFTER INSERT ON documents BEGIN
        INSERT INTO document_datetimes(row_id, collection, field, micros)
        SELECT new.row_id, new.collection, f.key, json_extract(f.value, '$."$dt"')
        FROM json_each(new.metadata) AS f WHERE f.type = 'object';
        END"""
    )
    # Such a file predates schema version 7, whose files never had these triggers.
    connection.execute("UPDATE schema_version SET version = 6")
    connection.commit()
    connection.close()
    _, hooks = open_backend(file_url(path))
    names = {row[0] for row in _rows(path, "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "documents_datetimes_insert" not in names
    assert "documents_datetimes_insert_v2" in names
    later = NEW_YEAR + timedelta(days=1)
    document = Document("a", metadata={"at": NEW_YEAR, "o": {"at": later, "l": [{"at": [later]}]}, "e": {}})
    hooks.fallthrough_upsert_documents(collection="c", documents=[document], version=1)
    assert _indexed(path) == [("c", "a", "at", to_micros(NEW_YEAR))]
    assert _ids(hooks, "c", {"o.at": {"gt": NEW_YEAR}}) == ["a"]
    assert _ids(hooks, "c", {"o.l.at": later}) == ["a"]
    assert _ids(hooks, "c", {"o.l.at": {"lt": later}}) == []
    assert _ids(hooks, "c", {"e": {"exists": True}}) == ["a"]
    hooks.fallthrough_close()
