"""Store.collections, count, documents and drop_collection end to end, and repeated ids in get and delete.

Real stores (SQLite files, the reference model behind fault gates): a drop
that one store missed must reach it by replay and by repair, and a page of
``Store.documents`` may come from another store after a failure without an
id repeated or skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import fallthrough
from fallthrough import Document
from fallthrough.breaker import BreakerPolicy
from fallthrough.errors import InvalidInput
from fallthrough.validation import MAX_PAGE_SIZE

from .conftest import FakeClock
from .helpers import gate, gated, sqlite_file

IDS = [f"doc-{n:03d}" for n in range(40)] + ["Д", "ä", "\U0001f600", "B", "b"]


def _fill(store: fallthrough.Store, collection: str = "c") -> None:
    store.upsert_documents(collection, [Document(i, text=i, metadata={"n": n}) for n, i in enumerate(IDS)])


def test_repeated_ids_are_read_and_deleted_once() -> None:
    with fallthrough.connect("sqlite://") as store:
        store.upsert_documents("c", [Document("a"), Document("b")])
        assert [document.id for document in store.get_documents("c", ["b", "a", "b", "missing", "a"])] == ["b", "a"]
        assert store.delete_documents("c", ["a", "a", "missing", "missing"]) == 1
        assert store.get_documents("c", ["a", "b"]) == [Document("b")]
        with pytest.raises(InvalidInput, match=r"ids\[1\]"):
            store.get_documents("c", ["a", ""])


def test_count_documents_and_collections_through_the_store() -> None:
    with fallthrough.connect("sqlite://") as store:
        assert store.collections() == []
        assert store.count("c") == 0
        _fill(store)
        store.upsert_documents("other", [Document("x")])
        store.delete_documents("gone", ["x"])
        assert store.collections() == ["c", "other"]
        assert store.count("c") == len(IDS)
        assert store.count("c", {"n": {"lt": 10}}) == 10
        listed = list(store.documents("c", page_size=7))
        assert [document.id for document in listed] == sorted(IDS)
        assert [d.id for d in store.documents("c", filter={"n": {"gte": 40}}, page_size=2)] == sorted(IDS[40:])


@pytest.mark.parametrize("page_size", [0, -1, MAX_PAGE_SIZE + 1, "10", None])
def test_documents_refuses_a_bad_page_size_before_reading(page_size: object) -> None:
    with fallthrough.connect("sqlite://") as store, pytest.raises(InvalidInput):
        store.documents("c", page_size=page_size)  # type: ignore[arg-type]


def test_search_refuses_a_with_vectors_that_is_not_a_bool() -> None:
    with fallthrough.connect("sqlite://") as store, pytest.raises(InvalidInput, match="with_vectors"):
        store.search("c", with_vectors=1)  # type: ignore[arg-type]


def test_documents_falls_through_between_pages_without_repeating_or_skipping(
    tmp_path: Path, registry: fallthrough.Registry, breaker: BreakerPolicy
) -> None:
    urls = {"a": sqlite_file(tmp_path, "a"), "b": gated("sqlite://")}
    with fallthrough.connect(**urls, registry=registry, breaker=breaker) as store:
        _fill(store)
        pages = store.documents("c", page_size=10)
        first = [next(pages) for _ in range(10)]
        gate(store, "a").outage = True  # the first store goes down between two pages
        rest = list(pages)
        assert [document.id for document in first + rest] == sorted(IDS)
        assert gate(store, "b").calls["fallthrough_list_documents"] >= 1


def test_a_drop_is_journaled_and_replayed_to_the_store_that_missed_it(
    registry: fallthrough.Registry, breaker: BreakerPolicy, clock: FakeClock
) -> None:
    with fallthrough.connect(a="flaky://", b="flaky://", registry=registry, breaker=breaker) as store:
        _fill(store)
        second = gate(store, "b")
        second.outage = True
        assert store.drop_collection("c") is True
        assert second.inner.fallthrough_count_documents("c", None) == len(IDS)
        second.outage = False
        clock.advance(60)  # past the breaker's cooldown
        assert store.drain(timeout=10)
        assert second.inner.fallthrough_count_documents("c", None) == 0
        # An upsert made before the drop, replayed late, stays out; one made after starts the collection again.
        (entry,) = second.inner.fallthrough_document_versions("c", ["doc-000"])
        second.inner.fallthrough_upsert_documents("c", [Document("doc-000")], entry.version - 1)
        assert store.count("c") == 0
        store.upsert_documents("c", [Document("new")])
        assert [document.id for document in store.documents("c")] == ["new"]
        assert store.collections() == ["c"]


def test_a_repair_sends_a_drop_to_a_store_that_missed_it(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    with fallthrough.connect(a, b) as both:
        _fill(both)
    with fallthrough.connect(b) as alone:
        # Only b ever held this one: a's drop must still remove it.
        alone.upsert_documents("c", [Document("only-in-b")])
    with fallthrough.connect(a) as alone:
        assert alone.drop_collection("c") is True
    with fallthrough.connect(a, b) as both:
        both.repair()
    for url in (a, b):
        with fallthrough.connect(url) as alone:
            assert alone.count("c") == 0, url
            assert alone.collections() == [], url
    with fallthrough.connect(a, b) as both:
        assert both.repair().sent_nothing
