"""Listing documents on local mode costs the page, wherever the page is: the documents' own ``records()`` problem.

Local mode checks a scroll's filter on every point of the collection, and
Qdrant cannot order by a string, so a page of ``Store.documents`` scrolled
every matching id for each page: iterating 20,000 documents took 58 s. On
local mode a page after the first must make no call that visits the whole
collection, and ``retrieve`` only the ids from its cursor on, at the start,
the middle and the end alike. The server path (``server_paths``) is the
scroll, and the conformance suite runs on it (test_qdrant_paging). No
timings: the calls are the measure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from qdrant_client import QdrantClient

from fallthrough.filters import parse_filter
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.types import Document
from fallthrough_qdrant import QdrantBackend
from tests.qdrant.recording import RecordingClient

SIZE = 3_000
PAGE = 100
WHOLE_COLLECTION = {"scroll", "count", "facet", "query_points", "query_batch_points"}


def _recorded() -> tuple[HookDriver, RecordingClient]:
    client = RecordingClient(QdrantClient(location=":memory:"))
    backend = QdrantBackend("qdrant+memory://?prefix=dp_", client_factory=lambda: cast(QdrantClient, client))
    driver = HookDriver(backend, "qdrant")
    driver.open()
    return driver, client


def _ids(count: int) -> list[str]:
    return [f"doc-{i:05d}" for i in range(count)]


def _write(driver: HookDriver, documents: list[Document]) -> None:
    for start in range(0, len(documents), 500):
        chunk = tuple(documents[start : start + 500])
        driver.call("fallthrough_upsert_documents", collection="c", documents=chunk, version=fresh_version())


def _pages(driver: HookDriver, filter: dict[str, Any] | None = None) -> Iterator[list[Document]]:
    after = None
    while True:
        page: list[Document] = driver.call(
            "fallthrough_list_documents", collection="c", filter=parse_filter(filter), after=after, limit=PAGE
        )
        yield page
        if len(page) < PAGE:
            return
        after = page[-1].id


def _ids_retrieved(client: RecordingClient) -> int:
    """Ids asked of the documents' collections, once per id (each is asked of both collections of the pair)."""
    asked = [len(args[1]) for args, _ in client.named("retrieve") if args[0].startswith("dp_docs_")]
    return sum(asked)


def _whole_documents_retrieved(client: RecordingClient) -> int:
    return sum(
        len(args[1])
        for args, kwargs in client.named("retrieve")
        if args[0].startswith("dp_docs_") and kwargs.get("with_payload") is True
    )


def _listed(driver: HookDriver, filter: dict[str, Any] | None = None) -> list[str]:
    return [document.id for page in _pages(driver, filter) for document in page]


def test_local_document_pages_after_the_first_visit_only_their_own_ids() -> None:
    driver, client = _recorded()
    # Half with a vector, half without: the two Qdrant collections of one fallthrough collection.
    _write(driver, [Document(i, "x", vector=(1.0, 0.0) if n % 2 else None) for n, i in enumerate(_ids(SIZE))])
    client.calls.clear()
    pages = _pages(driver)
    seen = [document.id for document in next(pages)]
    # The first page builds the collection's sorted ids: one pass over each Qdrant collection.
    assert len([name for name, _, _ in client.calls if name in WHOLE_COLLECTION]) == 2
    visited = []
    while True:
        client.calls.clear()
        page = next(pages, None)
        if page is None:
            break
        seen += [document.id for document in page]
        assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        visited.append(_ids_retrieved(client))
    assert seen == _ids(SIZE)
    assert visited[:-1] == [PAGE] * (SIZE // PAGE - 1)
    driver.close()


def test_a_filtered_page_visits_the_documents_from_its_cursor_only() -> None:
    driver, client = _recorded()
    _write(driver, [Document(i, "x", metadata={"tenth": n % 10 == 0}) for n, i in enumerate(_ids(SIZE))])
    client.calls.clear()
    listed: list[str] = []
    visited = []
    for number, page in enumerate(_pages(driver, {"tenth": True})):
        listed += [document.id for document in page]
        visited.append(_ids_retrieved(client))
        # The passed documents' metadata is read to check the filter; only the matches are read whole.
        assert _whole_documents_retrieved(client) == len(page)
        if number:  # the first page builds the sorted ids
            assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        client.calls.clear()
    assert listed == _ids(SIZE)[::10]
    # A page of 100 matches lies within 1,000 documents: it reads at most twice that, never the collection.
    assert max(visited[1:]) <= 2 * 10 * PAGE
    assert sum(visited) <= 2 * SIZE
    driver.close()


def test_the_local_ids_follow_upserts_deletes_and_drops_between_pages() -> None:
    driver, _ = _recorded()
    _write(driver, [Document(i, "x") for i in ["b", "d", "f"]])
    assert _listed(driver) == ["b", "d", "f"]
    # Written after the ids were built: a new id before the cursor, one after it, one moved to the vectors.
    _write(driver, [Document("a", "x"), Document("e", "x"), Document("d", "y", vector=(0.0, 1.0))])
    assert _listed(driver) == ["a", "b", "d", "e", "f"]
    driver.call("fallthrough_delete_documents", collection="c", ids=["b", "zz"], version=fresh_version())
    assert _listed(driver) == ["a", "d", "e", "f"]
    # Many new ids at once are merged in, not inserted one by one; the order holds.
    _write(driver, [Document(f"c{n:03d}", "x") for n in range(40)])
    assert _listed(driver) == ["a", *[f"c{n:03d}" for n in range(40)], "d", "e", "f"]
    driver.call("fallthrough_drop_collection", collection="c", version=fresh_version())
    assert _listed(driver) == []
    _write(driver, [Document("g", "x")])
    assert _listed(driver) == ["g"]
    driver.close()


def test_a_local_scan_for_repair_pages_from_the_same_ids_tombstones_included() -> None:
    driver, client = _recorded()
    _write(driver, [Document(i, "x") for i in _ids(SIZE)])
    driver.call("fallthrough_delete_documents", collection="c", ids=_ids(SIZE)[::3], version=fresh_version())
    client.calls.clear()
    seen: list[str] = []
    tombstones = 0
    visited = []
    after = None
    while True:
        page = driver.call("fallthrough_scan_documents", collection="c", after=after, limit=PAGE)
        if after is not None:  # the first page builds the sorted ids
            assert not [name for name, _, _ in client.calls if name in WHOLE_COLLECTION]
        visited.append(_ids_retrieved(client))
        client.calls.clear()
        seen += [entry.id for entry in page]
        tombstones += sum(1 for entry in page if entry.document is None)
        if len(page) < PAGE:
            break
        after = page[-1].id
    assert seen == _ids(SIZE)
    assert tombstones == len(_ids(SIZE)[::3])
    assert visited[:-1] == [PAGE] * (SIZE // PAGE)
    driver.close()


def test_listing_or_scanning_a_collection_never_written_keeps_nothing() -> None:
    driver, _ = _recorded()
    backend = driver.plugin
    assert isinstance(backend, QdrantBackend) and backend._documents.local_order is not None
    for number in range(50):
        assert (
            driver.call("fallthrough_list_documents", collection=f"n{number}", filter=None, after=None, limit=9) == []
        )
        assert driver.call("fallthrough_scan_documents", collection=f"n{number}", after=None, limit=9) == []
    assert backend._documents.local_order.listed == 0
    _write(driver, [Document("a", "x")])
    assert _listed(driver) == ["a"]
    assert backend._documents.local_order.listed == 1
    driver.close()
