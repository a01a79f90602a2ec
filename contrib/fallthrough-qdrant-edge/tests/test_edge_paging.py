"""Listing a batch reads from the cursor on, wherever the page is (issue 12 item 5).

The engine streams its ``seq`` index from ``order_by``'s ``start_from``;
without it, a page walks every point before the cursor (each failing the
range in the filter) before reaching its own. The engine does not report
the points it visits, so each page's scroll is watched on the real shard:
it must start at the cursor's seq and ask for one page, the cursor's
record and one more. Where seqs are distinct, as the core stamps them, that
one scroll is the page's only one. No timings.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fallthrough.testing.twin import at
from fallthrough.types import Record
from qdrant_edge import EdgeShard

from fallthrough_qdrant_edge import QdrantEdgeBackend
from fallthrough_qdrant_edge import records as record_store

SIZE = 2_000
PAGE = 100


class WatchedShard:
    """The real shard; the scroll requests made on it are kept."""

    def __init__(self, shard: EdgeShard) -> None:
        self._shard = shard
        self.scrolls: list[Any] = []

    def scroll(self, request: Any) -> Any:
        self.scrolls.append(request)
        return self._shard.scroll(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)


def test_every_page_streams_from_its_cursor(store_dir: Path) -> None:
    backend = QdrantEdgeBackend(f"qdrant+edge:///{store_dir / 'paging'}")
    backend.fallthrough_open()
    try:
        batch_id = uuid.uuid4()
        keys = [f"sku-{i:05d}" for i in range(SIZE)]
        backend.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=at(0))
        with backend._database.read() as shard:
            watched = WatchedShard(shard)
            seen: list[str] = []
            after: tuple[int, str] | None = None
            while True:
                watched.scrolls.clear()
                page: list[Record] = record_store.list_records(watched, batch_id, None, after, PAGE)  # type: ignore[arg-type]
                assert len(watched.scrolls) == 1, "a page of distinct seqs took more than one scroll"
                (request,) = watched.scrolls
                assert request.limit == PAGE + 2
                assert request.order_by.start_from == (None if after is None else after[0])
                seen += [record.key for record in page]
                if len(page) < PAGE:
                    break
                after = (page[-1].seq, page[-1].key)
        assert seen == keys
    finally:
        backend.fallthrough_close()
