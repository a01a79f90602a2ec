"""Local mode's batch order: each listed batch's ``(seq, key)`` order, kept beside the client.

qdrant-client's local mode evaluates every ``scroll``, ``count`` and
``facet`` in Python over every point of the collection: the filter is
checked point by point (about 50 µs a point on a records payload), and a
``scroll`` with ``order_by`` also sorts every point by the ordered field,
whatever ``start_from`` says. A keyset page therefore cost the whole
collection, and iterating a batch cost its size squared over the page size
(20,000 records: 16 s; 200,000: not done in 15 minutes). Only ``retrieve``
costs what it returns: one dictionary look-up per point id.

So a local-mode backend lists a batch from an index of its own: the
batch's ``seq`` values and keys, sorted, built by one pass over the
collection the first time the batch is listed. A page is a bisection to the
cursor and one ``retrieve`` of the next point ids (record point ids are
computed from the batch and key), so it costs the same wherever it is.
Claims read the same order, from past the records they found unclaimable
(:meth:`LocalOrder.claimable`).

The index is exact because nothing else writes the points: a local-mode
client is the only one on its data (in memory it is private; a directory is
locked by the one client that opened it), and every hook runs under the
backend's lock. The hooks that change which ``(seq, key)`` pairs a batch
holds (create, add, merge, delete) drop the batch's index, and the next
listing builds it again; updates, claims and retries change a record's
state but never its ``seq``, and the state is read from the points
themselves. A server needs none of this: its ``order_by`` reads the range
index on ``seq`` from ``start_from`` on (see :mod:`.records`).
"""

from __future__ import annotations

import bisect
import uuid
from array import array
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from qdrant_client import QdrantClient

from fallthrough.types import Status

from .schema import in_batch, record_point_id, scroll_whole

# A claim's reads of the batch's points grow from a claim's usual size to a bound on what one read holds.
_FIRST_READ = 128
_LARGEST_READ = 4096
_NO_LEASE_ENDS = 2**63


def is_claimable(payload: Mapping[str, Any], now_us: int) -> bool:
    """A record a claim at ``now_us`` may take: pending, or processing under a lease that ran out.

    What the server path's two scroll filters select (:mod:`.claims`); a
    processing record without a lease (set so by an update) is never claimed.
    """
    if payload["status"] == Status.PENDING.value:
        return True
    lease_us = _lease_us(payload)
    return lease_us is not None and lease_us <= now_us


def _lease_us(payload: Mapping[str, Any] | None) -> int | None:
    """When a processing record's lease ends; None for any other record, which no lease holds."""
    if payload is None or payload["status"] != Status.PROCESSING.value:
        return None
    lease_us = payload.get("lease_us")
    return lease_us if isinstance(lease_us, int) else None


@attrs.define
class _BatchOrder:
    """A batch's records sorted by (seq, key): seqs packed, keys beside them.

    ``passed`` is where a claim starts reading: no record before that index
    was claimable when a claim last read it (completed, failed, gone, or
    processing under a lease), and ``lease_ends`` is the earliest lease among
    those: from then on, one of them may be claimable again.
    """

    seqs: array[int]
    keys: list[str]
    passed: int = 0
    lease_ends: int = _NO_LEASE_ENDS

    def start(self, after: tuple[int, str] | None) -> int:
        """The index of the first record past ``after``: a bisection on seq, then past the ties."""
        if after is None:
            return 0
        seq, key = after
        index = bisect.bisect_left(self.seqs, seq)
        while index < len(self.seqs) and self.seqs[index] == seq and self.keys[index] <= key:
            index += 1
        return index


class LocalOrder:
    """The ``(seq, key)`` order of the batches a local-mode backend has listed (see the module docstring)."""

    def __init__(self, collection: str) -> None:
        self._collection = collection
        self._batches: dict[uuid.UUID, _BatchOrder] = {}

    def forget(self, batch_id: uuid.UUID | None = None) -> None:
        """Drop one batch's order (its records' seqs or membership changed), or every one's."""
        if batch_id is None:
            self._batches.clear()
        else:
            self._batches.pop(batch_id, None)

    def reopen(self, batch_id: uuid.UUID) -> None:
        """A write may have made a record of the batch claimable again: claims read it from its start."""
        order = self._batches.get(batch_id)
        if order is not None:
            order.passed, order.lease_ends = 0, _NO_LEASE_ENDS

    def leases_set(self, batch_id: uuid.UUID, until_us: int) -> None:
        """Leases of the batch were set to end at ``until_us``: claims start over from its start once that passes.

        An extension may shorten a lease that claims passed over, and whose
        end they noted as the earliest: without this they would skip the
        record until the old end.
        """
        order = self._batches.get(batch_id)
        if order is not None:
            order.lease_ends = min(order.lease_ends, until_us)

    def keys_from(self, client: QdrantClient, batch_id: uuid.UUID, after: tuple[int, str] | None) -> Iterator[str]:
        """The batch's keys in (seq, key) order after ``after``; the caller takes what it needs."""
        order = self._order(client, batch_id)
        index = order.start(after)
        keys = order.keys
        while index < len(keys):
            yield keys[index]
            index += 1

    def claimable(self, client: QdrantClient, batch_id: uuid.UUID, now_us: int) -> Iterator[dict[str, Any]]:
        """The payloads of the batch's records a claim at ``now_us`` may take, in (seq, key) order.

        Reading starts past the records found unclaimable before: one that
        is not claimable (completed, failed, gone, or processing under a
        lease) and follows only such records moves the start past itself.
        So a claim reads what changed since the last one and what it takes,
        not every record finished or held before them (a whole-collection
        ``scroll`` per claim made draining a batch cost its size squared).
        Once the earliest lease passed over ends, claims start over from the
        batch's start; a hook that can make a record claimable again
        otherwise calls :meth:`reopen`.
        """
        order = self._order(client, batch_id)
        if now_us >= order.lease_ends:
            order.passed, order.lease_ends = 0, _NO_LEASE_ENDS
        index = order.passed
        chunk = _FIRST_READ
        leading = True  # no record from order.passed to index is claimable
        while index < len(order.keys):
            keys = order.keys[index : index + chunk]
            points = client.retrieve(
                self._collection, [record_point_id(batch_id, key) for key in keys], with_payload=True
            )
            by_key = {payload["key"]: payload for payload in (point.payload or {} for point in points)}
            for key in keys:
                payload = by_key.get(key)
                if payload is not None and is_claimable(payload, now_us):
                    leading = False
                    yield payload
                elif leading:
                    order.passed = index + 1
                    held_until = _lease_us(payload)
                    if held_until is not None:
                        order.lease_ends = min(order.lease_ends, held_until)
                index += 1
            chunk = min(chunk * 2, _LARGEST_READ)

    @property
    def listed(self) -> int:
        """How many batches have an order built (for tests of when it is built and dropped)."""
        return len(self._batches)

    def _order(self, client: QdrantClient, batch_id: uuid.UUID) -> _BatchOrder:
        order = self._batches.get(batch_id)
        if order is None:
            order = self._batches[batch_id] = self._build(client, batch_id)
        return order

    def _build(self, client: QdrantClient, batch_id: uuid.UUID) -> _BatchOrder:
        """One pass over the batch's points: their seq and key, sorted."""
        points = scroll_whole(client, self._collection, in_batch(batch_id), ["seq", "key"])
        pairs = sorted(((point.payload or {})["seq"], (point.payload or {})["key"]) for point in points)
        return _BatchOrder(array("q", (seq for seq, _ in pairs)), [key for _, key in pairs])


__all__ = ["LocalOrder"]
