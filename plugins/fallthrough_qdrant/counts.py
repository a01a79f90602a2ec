"""Local mode's status counts: each counted batch's records by status, kept beside the client.

qdrant-client's local mode answers a ``facet`` or a ``count`` by checking
its filter on every point of the collection (see :mod:`.order`), so a
batch's progress cost the whole collection: 1.2 s at 100,000 records, paid
under the backend's lock each time a runner reported progress.

So a local-mode backend counts a batch once, by the facet, and then moves
the counts with each write it makes: a claim moves records from pending (or
an expired processing) to processing, an update from the status it read to
the new one, a retry from failed to pending, an add adds pending records.
The counts are exact for the reasons :mod:`.order` gives: the client is the
only one on its data, and each hook reads the records' states and writes
them under the backend's lock, so what a write hook read is what its
conditional writes replaced. A hook whose effect on the counts is not known
without another read (create, merge, delete) drops the batch's counts, and
so does a write that fails part way (:meth:`LocalCounts.dropped_on_error`);
the next read counts the batch again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from qdrant_client import QdrantClient

from fallthrough.errors import NotFound
from fallthrough.types import Status

from .schema import in_batch


class LocalCounts:
    """The status counts of the batches a local-mode backend has counted (see the module docstring)."""

    def __init__(self, collection: str) -> None:
        self._collection = collection
        self._batches: dict[uuid.UUID, dict[str, int]] = {}

    def of(self, client: QdrantClient, batch_id: uuid.UUID) -> Mapping[str, int]:
        """The batch's count of records by status value: counted by one facet the first time."""
        counts = self._batches.get(batch_id)
        if counts is None:
            counts = self._batches[batch_id] = self._count(client, batch_id)
        return counts

    def known(self, batch_id: uuid.UUID) -> Mapping[str, int] | None:
        """The batch's counts if they are kept, without counting."""
        return self._batches.get(batch_id)

    def keep(self, batch_id: uuid.UUID, counts: Mapping[str, int]) -> None:
        """Keep counts read by the caller in this hook (a listing's facets), unless some are kept already."""
        self._batches.setdefault(batch_id, {status.value: counts.get(status.value, 0) for status in Status})

    def add_pending(self, batch_id: uuid.UUID, added: int) -> None:
        """``added`` new records of the batch, all pending."""
        counts = self._batches.get(batch_id)
        if counts is not None:
            counts[Status.PENDING.value] += added

    def move(self, batch_id: uuid.UUID, moves: Iterable[tuple[str, str]]) -> None:
        """Records of the batch went from one status value to another: one (before, after) pair each."""
        counts = self._batches.get(batch_id)
        if counts is None:
            return
        for before, after in moves:
            counts[before] -= 1
            counts[after] += 1

    def forget(self, batch_id: uuid.UUID | None = None) -> None:
        """Drop one batch's counts (a write changed them by what it did not read), or every batch's."""
        if batch_id is None:
            self._batches.clear()
        else:
            self._batches.pop(batch_id, None)

    @contextmanager
    def dropped_on_error(self) -> Iterator[None]:
        """A write that raises may have landed in part: no kept count is trusted after it.

        Except :class:`~fallthrough.errors.NotFound`, which the record hooks
        raise from their checks before they write anything: a worker polling a
        deleted batch must not make every batch's next read count it again.
        """
        try:
            yield
        except NotFound:
            raise
        except BaseException:
            self._batches.clear()
            raise

    @property
    def counted(self) -> int:
        """How many batches have counts kept (for tests of when they are kept and dropped)."""
        return len(self._batches)

    def _count(self, client: QdrantClient, batch_id: uuid.UUID) -> dict[str, int]:
        batch = in_batch(batch_id)
        facets = client.facet(self._collection, key="status", facet_filter=batch, limit=len(Status), exact=True)
        found = {str(hit.value): hit.count for hit in facets.hits}
        return {status.value: found.get(status.value, 0) for status in Status}


__all__ = ["LocalCounts"]
