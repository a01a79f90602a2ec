"""Document storage on the SQLite backend, checked against the reference model."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fallthrough.errors import InvalidInput
from fallthrough.testing.drivers import fresh_version
from fallthrough.types import Document, SearchQuery
from fallthrough.validation import check_vector
from tests.sqlite.helpers import Twin, file_url, open_backend


def upsert(twin: Twin, collection: str, *documents: Document) -> None:
    twin.call("fallthrough_upsert_documents", collection=collection, documents=list(documents), version=fresh_version())


def test_upsert_get_and_replace_whole(twin: Twin) -> None:
    upsert(
        twin,
        "docs",
        Document("b", "Цемент М-500", [0.1, 0.2, 0.3], {"price": 420, "tags": ["a", None, 1.5, True], "none": None}),
        Document("a", "", None, {}),
        Document("c", "text only", None, {"x": -0.0}),
    )
    twin.call("fallthrough_get_documents", collection="docs", ids=["c", "missing", "b", "a"])
    # Replacing is whole: the vector and the old metadata fields go.
    upsert(twin, "docs", Document("b", "песок", None, {"price": 90.5}))
    twin.call("fallthrough_get_documents", collection="docs", ids=["a", "b", "c"])
    assert twin.call("fallthrough_get_documents", collection="never-written", ids=["a"]) == []


def test_collections_are_separate(twin: Twin) -> None:
    upsert(twin, "one", Document("x", "first", [1.0, 0.0]))
    upsert(twin, "two", Document("x", "second", [0.0, 1.0, 0.0]))  # its own dimension
    twin.call("fallthrough_get_documents", collection="one", ids=["x"])
    twin.call("fallthrough_get_documents", collection="two", ids=["x"])
    assert twin.call("fallthrough_delete_documents", collection="one", ids=["x"], version=fresh_version()) == 1
    twin.call("fallthrough_get_documents", collection="two", ids=["x"])
    twin.search("two", text="second")
    assert twin.search("one", text="first") == []


def test_delete_counts_only_what_existed(twin: Twin) -> None:
    upsert(twin, "docs", *(Document(f"d{i}", f"doc {i}") for i in range(5)))
    assert (
        twin.call("fallthrough_delete_documents", collection="docs", ids=["d1", "zz", "d3"], version=fresh_version())
        == 2
    )
    assert twin.call("fallthrough_delete_documents", collection="docs", ids=["d1"], version=fresh_version()) == 0
    assert twin.call("fallthrough_delete_documents", collection="nowhere", ids=["d1"], version=fresh_version()) == 0
    twin.call("fallthrough_get_documents", collection="docs", ids=[f"d{i}" for i in range(5)])
    # Deleted documents are gone from the text index too.
    twin.search("docs", text="doc", limit=100)
    twin.search("docs", text="1")


def test_many_documents_in_one_call(twin: Twin) -> None:
    # More ids than one IN list chunk holds.
    ids = [f"id-{i:04d}" for i in range(1_234)]
    upsert(twin, "bulk", *(Document(i, f"word{int(i[3:]) % 7}", [1.0, float(n % 5)]) for n, i in enumerate(ids)))
    twin.call("fallthrough_get_documents", collection="bulk", ids=ids[::-1])
    assert twin.call("fallthrough_delete_documents", collection="bulk", ids=ids[::2], version=fresh_version()) == 617
    twin.search("bulk", vector=[1.0, 2.0], limit=50)
    twin.search("bulk", text="word3", limit=1_000)


def test_a_dimension_mismatch_writes_nothing(twin: Twin) -> None:
    upsert(twin, "docs", Document("keep", "original", [1.0, 0.0, 0.0], {"v": 1}))
    before = twin.call("fallthrough_get_documents", collection="docs", ids=["keep", "new"])
    with pytest.raises(InvalidInput):
        upsert(twin, "docs", Document("new", "added", None), Document("keep", "changed", [1.0, 2.0], {"v": 2}))
    assert twin.call("fallthrough_get_documents", collection="docs", ids=["keep", "new"]) == before
    # Neither the rows nor the text index changed.
    assert twin.search("docs", text="changed") == []
    assert twin.search("docs", text="added") == []
    twin.search("docs", text="original")
    with pytest.raises(InvalidInput):
        twin.search("docs", vector=[1.0, 0.0])
    twin.search("docs", vector=[0.0, 1.0, 0.0])


def test_the_first_vector_fixes_the_dimension_for_good(twin: Twin) -> None:
    upsert(twin, "docs", Document("t", "no vector yet"))
    twin.search("docs", vector=[1.0, 1.0])  # no dimension yet: no error, no hit
    upsert(twin, "docs", Document("v", "now one", [1.0, 1.0]))
    twin.call("fallthrough_delete_documents", collection="docs", ids=["v", "t"], version=fresh_version())
    # Empty again, the collection keeps its dimension.
    with pytest.raises(InvalidInput):
        upsert(twin, "docs", Document("w", "", [1.0, 1.0, 1.0]))
    with pytest.raises(InvalidInput):
        twin.search("docs", vector=[1.0, 1.0, 1.0])
    upsert(twin, "docs", Document("w", "", [3.0, 4.0]))
    twin.search("docs", vector=[1.0, 0.0])


def test_a_second_instance_sees_the_same_file(tmp_path: Path) -> None:
    url = file_url(tmp_path / "docs.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    first.fallthrough_upsert_documents(
        collection="c", documents=[Document("a", "alpha", [1.0, 0.0])], version=fresh_version()
    )
    assert [hit.id for hit in second.fallthrough_search(collection="c", query=_vector_query([1.0, 0.0]))] == ["a"]
    # The second instance's cached matrix must notice a write made by the first.
    first.fallthrough_upsert_documents(
        collection="c", documents=[Document("b", "beta", [1.0, 0.1])], version=fresh_version()
    )
    assert [hit.id for hit in second.fallthrough_search(collection="c", query=_vector_query([1.0, 0.1]))] == ["b", "a"]
    first.fallthrough_delete_documents(collection="c", ids=["b"], version=fresh_version())
    assert [hit.id for hit in second.fallthrough_search(collection="c", query=_vector_query([1.0, 0.1]))] == ["a"]
    with pytest.raises(InvalidInput):
        second.fallthrough_upsert_documents(
            collection="c", documents=[Document("x", "", [1.0])], version=fresh_version()
        )
    first.fallthrough_close()
    second.fallthrough_close()


def _vector_query(vector: list[float]) -> SearchQuery:
    return SearchQuery(vector=check_vector(vector), text=None, filter=None, limit=10)


def test_the_text_index_stays_in_step_with_the_rows(tmp_path: Path) -> None:
    """Inserts, whole replacements and deletes keep the external-content FTS index consistent."""
    path = tmp_path / "fts.db"
    _, hooks = open_backend(file_url(path))
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document(f"d{i}", f"цемент {i}") for i in range(20)], version=fresh_version()
    )
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document(f"d{i}", f"песок {i}") for i in range(0, 20, 2)], version=fresh_version()
    )
    hooks.fallthrough_delete_documents(collection="c", ids=[f"d{i}" for i in range(0, 20, 3)], version=fresh_version())
    hooks.fallthrough_upsert_documents(
        collection="c", documents=[Document("d0", "цемент снова")], version=fresh_version()
    )
    hooks.fallthrough_close()
    connection = sqlite3.connect(path)
    # FTS5 raises SQLITE_CORRUPT_VTAB if the index and the rows disagree.
    connection.execute("INSERT INTO documents_fts(documents_fts, rank) VALUES ('integrity-check', 1)")
    matched = connection.execute(
        "SELECT d.id FROM documents_fts JOIN documents d ON d.row_id = documents_fts.rowid "
        "WHERE documents_fts MATCH '\"цемент\"' ORDER BY d.id"
    ).fetchall()
    connection.close()
    assert [row[0] for row in matched] == sorted(["d0"] + [f"d{i}" for i in range(1, 20, 2) if i % 3])
