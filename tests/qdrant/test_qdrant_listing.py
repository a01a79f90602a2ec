"""A document listing page stays full when documents go between its id scroll and its fetch.

The listing scrolls the matching ids, sorts them, then fetches the page;
on a server another client may delete a document in between. A short page
ends ``Store.documents``, so every later document would be skipped: the
page is topped up from the next sorted ids instead. The deletion is made
here at that very point, by a Documents whose fetch deletes first.
"""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import QdrantClient

from fallthrough.testing.drivers import HookDriver
from fallthrough.types import Document
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.documents import Documents


class _DeletingBeforeFetch(Documents):
    """Documents that, on each fetch, first deletes the ids in ``victims`` (another client's delete)."""

    victims: list[str]

    def get(self, client: QdrantClient, collection: str, ids: Sequence[str]) -> list[Document]:
        if self.victims:
            self.delete(client, collection, self.victims, version=10**6)
            self.victims = []
        return super().get(client, collection, ids)


def _driver(victims: list[str]) -> HookDriver:
    backend = QdrantBackend("qdrant+memory://?prefix=lt_")
    documents = _DeletingBeforeFetch(backend._documents.names)
    documents.victims = []
    backend._documents = documents
    driver = HookDriver(backend, "qdrant")
    driver.open()
    driver.call(
        "fallthrough_upsert_documents",
        collection="c",
        documents=[Document(f"d{i}", "text", vector=[1.0, float(i)] if i % 2 else None) for i in range(8)],
        version=1,
    )
    documents.victims = victims
    return driver


def _list(driver: HookDriver, after: str | None, limit: int) -> list[str]:
    page: list[Document] = driver.call(
        "fallthrough_list_documents", collection="c", filter=None, after=after, limit=limit
    )
    return [document.id for document in page]


def test_a_page_losing_documents_before_its_fetch_is_topped_up_from_the_next_ids() -> None:
    assert _list(_driver(["d1", "d2"]), None, 3) == ["d0", "d3", "d4"]  # full: the listing goes on after d4
    assert _list(_driver(["d5"]), "d2", 3) == ["d3", "d4", "d6"]


def test_a_page_is_short_only_when_the_ids_run_out() -> None:
    assert _list(_driver(["d6"]), "d4", 3) == ["d5", "d7"]
    assert _list(_driver(["d6", "d7"]), "d4", 3) == ["d5"]
