"""Local mode's document order: each listed collection's document ids in code-point order, kept beside the client.

A page of ``Store.documents`` is a keyset after a document id, in code-point
order. Qdrant cannot order by a string nor range over one, so the plugin
scrolls every matching id and sorts them for each page; in local mode that
scroll also checks its filter on every point of the collection in Python.
Iterating a collection cost its size squared over the page size: 20,000
documents took 58 s on ``qdrant+memory://``.

So a local-mode backend keeps, for each stored collection it has listed, the ids of
its entries (live documents and tombstones), sorted, built by one scroll of
the collection's two Qdrant collections the first time it is listed. A page
is a bisection to the cursor, then ``retrieve`` of the next ids (a document's
point id is computed from its id) in growing chunks, keeping the live
documents that the filter matches, checked by :func:`fallthrough.filters.matches`,
the reference's own rule, until the page is full. It costs the documents it
passes from the cursor on, not the collection.

The ids are a superset of the entries: an upsert adds the ids it names and a
delete the ids it replaced, whether or not an entry changed (a write older
than the stored entry writes nothing), and the page skips an id that has no
live document. They stay until the collection is dropped or purged, or the
backend closes. A drop removes entries, so it drops the collection's ids, and
the next listing builds them again; a purge drops them too, to free them.
Exact for the reasons :mod:`.order` gives: a local-mode client is the only
one on its data, and every hook runs under the backend's lock.

A repair's ``scan_documents`` reads the same ids, tombstones included, in
the same order: local mode's ``scroll`` sorts every point id for each page.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

import attrs
from qdrant_client import QdrantClient

from .schema import scroll_whole

# Ids added one by one up to this many a write; more are merged with one sort (two sorted runs: linear).
_FEW = 16


@attrs.define
class _Ids:
    ordered: list[str]
    members: set[str]

    def add(self, ids: Iterable[str]) -> None:
        new = sorted(set(ids) - self.members)
        if not new:
            return
        self.members.update(new)
        if len(new) <= _FEW:
            for document_id in new:
                bisect.insort(self.ordered, document_id)
        else:
            self.ordered.extend(new)
            self.ordered.sort()


class LocalDocumentOrder:
    """The sorted document ids of the collections a local-mode backend has listed (see the module docstring)."""

    def __init__(self) -> None:
        self._collections: dict[str, _Ids] = {}

    def ids_after(
        self, client: QdrantClient, collection: str, names: Sequence[str], after: str | None
    ) -> Iterator[str]:
        """The collection's ids past ``after`` in code-point order; ``names`` are its Qdrant collections that exist."""
        ids = self._collections.get(collection)
        if ids is None:
            if not names:
                return  # nothing stored, and nothing kept: listing unknown names must not grow memory
            ids = self._collections[collection] = self._build(client, names)
        ordered = ids.ordered
        index = 0 if after is None else bisect.bisect_right(ordered, after)
        while index < len(ordered):
            yield ordered[index]
            index += 1

    def add(self, collection: str, ids: Iterable[str]) -> None:
        """A write named these ids: each may have an entry now."""
        listed = self._collections.get(collection)
        if listed is not None:
            listed.add(ids)

    def forget(self, collection: str | None = None) -> None:
        """Drop one collection's ids (a drop removed entries), or every collection's."""
        if collection is None:
            self._collections.clear()
        else:
            self._collections.pop(collection, None)

    @property
    def listed(self) -> int:
        """How many collections have their ids kept (for tests of when they are kept and dropped)."""
        return len(self._collections)

    def _build(self, client: QdrantClient, names: Iterable[str]) -> _Ids:
        members: set[str] = set()
        for name in names:
            members.update((point.payload or {})["id"] for point in scroll_whole(client, name, None, ["id"]))
        return _Ids(sorted(members), members)


__all__ = ["LocalDocumentOrder"]
