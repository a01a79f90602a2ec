"""Batches and records as payload-only points, with the monotonic merge as a conditional upsert.

A record point's payload::

    batch_id, key, seq, status, rank, attempt, updated_us, tiebreak,
    us_hi, us_lo, tb_hi, tb_lo, result (JSON text or null), error,
    and, while claimed, lease_owner and lease_us (see :mod:`.claims`)

``result`` is kept as JSON text, so what is read back is exactly what was
written (payload JSON would turn ``1.0`` into ``1`` on some paths and cannot
hold every int). ``us_hi``/``us_lo`` and ``tb_hi``/``tb_lo`` split
``updated_us`` and the 56-bit ``tiebreak`` into 32-bit halves: Qdrant's
range conditions take a float bound, which holds integers exactly only
below 2**53, and a tiebreak reaches 2**56.

**The merge.** Each update is an ``upsert`` of the record's new payload with
``update_mode=UPDATE_ONLY`` (never create a record, nor bring back one that a
concurrent ``delete_batch`` removed) and an ``update_filter`` saying "the
stored (attempt, rank, updated_us, tiebreak) is lower than the new one",
written out lexicographically with ``should``/``must`` conditions. Qdrant
applies the filter to the stored point at write time, so the comparison and
the write are one step in the store.

Qdrant does not say which points a conditional upsert changed, so the
targets are read first: that read checks that every record exists (a missing
one voids the call before anything is written) and gives each unpinned
update the attempt it applies to. It does not decide anything the filter
does not decide again. On a local-mode client the hook holds the lock
throughout, and a path-mode directory has one client only, so the read is
exact; against a server another process can write in between, so the points
are read again after the write and an update is reported as applied only if
its state is the one stored.

**Deleting a batch** takes three steps: the batch point is marked
(:data:`~.schema.DELETING`), the records are removed, then the point. Local
mode removes points one by one and persists each, so a process killed part
way leaves a marked point and some of the records: every hook that reads the
batch point takes a marked batch for absent, a create or repair of the same
id finishes the deletion before it writes, and :meth:`Records.finish_deletions`
finishes every one left when the backend opens.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from qdrant_client import QdrantClient, models

from fallthrough.errors import NotFound
from fallthrough.kit import (
    chunked,
    dump_json,
    dump_json_optional,
    lexicographic_below,
    load_json,
    load_json_optional,
    page_from_seq_order,
)
from fallthrough.ordering import PENDING_TIEBREAK, merge_key, record_tiebreak
from fallthrough.types import JSON, Batch, Progress, Record, RecordUpdate, Status, from_micros, to_micros

from .counts import LocalCounts
from .order import LocalOrder
from .schema import DELETING, CollectionNames, being_deleted, halves, in_batch, record_point_id, scroll_all

_CHUNK = 2_000
# Upserts whose filter holds one clause per point: local mode checks each point against every clause.
_GUARDED_CHUNK = 25
_MERGE_FIELDS = ("attempt", "rank", "us_hi", "us_lo", "tb_hi", "tb_lo")
_STATE_FIELDS = ["key", "seq", "status", "attempt", "rank", "updated_us", "tiebreak"]

MergeKey = tuple[int, int, int, int]


class _Stored(NamedTuple):
    """A record's stored merge state, as read before a write (a tuple: updates read 20k of these per call)."""

    key: str
    seq: int
    status: str
    attempt: int
    rank: int
    updated_us: int
    tiebreak: int
    # The whole payload, when it was read (a merge that only lowers seq writes it back).
    payload: dict[str, Any]

    @property
    def order(self) -> MergeKey:
        return (self.attempt, self.rank, self.updated_us, self.tiebreak)


class Records:
    """The record hooks over one client. Every method runs inside the hook's session."""

    def __init__(
        self,
        names: CollectionNames,
        verify_writes: bool,
        local_order: LocalOrder | None = None,
        local_counts: LocalCounts | None = None,
    ) -> None:
        self.names = names
        # Read back after conditional writes: needed only when others can write in between.
        self.verify_writes = verify_writes
        # Local mode lists batches from this index (see :mod:`.order`); a server from its seq index.
        self.local_order = local_order
        # Local mode counts a batch once and then follows its writes (see :mod:`.counts`); a server facets.
        self.local_counts = local_counts

    # -- batches ------------------------------------------------------------

    def create_batch(
        self,
        client: QdrantClient,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        # The old batch's records must not join the new one.
        self._finish_deletion_begun(client, batch_id)
        # INSERT_ONLY: a batch that exists keeps its metadata and created_at.
        batch_point = models.PointStruct(
            id=str(batch_id),
            vector={},
            payload={"metadata": dump_json(dict(metadata)), "created_us": to_micros(created_at)},
        )
        client.upsert(self.names.batches, [batch_point], update_mode=models.UpdateMode.INSERT_ONLY)
        self._insert_pending(client, batch_id, list(enumerate(keys)), first_seq, created_at)
        batch = self.get_batch(client, batch_id)
        assert batch is not None
        return batch

    def add_records(
        self, client: QdrantClient, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        require_batch(client, self.names, batch_id)
        if not keys:
            return 0
        point_ids = [record_point_id(batch_id, key) for key in keys]
        # A key named twice is one new record, at its first place: the answer and the kept counts say so.
        taken = self._existing_ids(client, point_ids)
        absent: list[tuple[int, str]] = []
        for index, (key, point_id) in enumerate(zip(keys, point_ids, strict=True)):
            if point_id not in taken:
                taken.add(point_id)
                absent.append((index, key))
        self._insert_pending(client, batch_id, absent, first_seq, created_at)
        if self.local_counts is not None:
            self.local_counts.add_pending(batch_id, len(absent))
        return len(absent)

    def _insert_pending(
        self,
        client: QdrantClient,
        batch_id: uuid.UUID,
        keys: Sequence[tuple[int, str]],
        first_seq: int,
        created_at: datetime,
    ) -> None:
        created_us = to_micros(created_at)
        common: dict[str, Any] = {
            "batch_id": str(batch_id),
            "status": Status.PENDING.value,
            "rank": Status.PENDING.rank,
            "attempt": 0,
            "result": None,
            "error": None,
            **_stamps(created_us, PENDING_TIEBREAK),
        }
        points = [
            models.PointStruct(
                id=record_point_id(batch_id, key), vector={}, payload={**common, "key": key, "seq": first_seq + index}
            )
            for index, key in keys
        ]
        # INSERT_ONLY: a key already in the batch keeps its state and seq.
        for chunk in chunked(points, _CHUNK):
            client.upsert(self.names.records, chunk, update_mode=models.UpdateMode.INSERT_ONLY)

    def delete_records(
        self, client: QdrantClient, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]
    ) -> int:
        """Delete ``keys[i]`` where its stored seq is ``seqs[i]``: the records an add wrote, and no other.

        Read, then delete by id: a point whose seq a repair lowered in
        between (another store held the key first) is deleted all the same,
        as a repair would bring it back from that store.
        """
        expected = {record_point_id(batch_id, key): seq for key, seq in zip(keys, seqs, strict=True)}
        doomed: list[models.ExtendedPointId] = []
        for chunk in chunked(list(expected), _CHUNK):
            for point in client.retrieve(self.names.records, list(chunk), with_payload=["seq"]):
                if (point.payload or {}).get("seq") == expected[str(point.id)]:
                    doomed.append(point.id)
        for doomed_ids in chunked(doomed, _CHUNK):
            client.delete(self.names.records, models.PointIdsList(points=list(doomed_ids)))
        return len(doomed)

    def delete_batch(self, client: QdrantClient, batch_id: uuid.UUID) -> bool:
        """Mark the batch point, remove the records, then the point; whether the batch existed.

        A batch already marked did not exist for any read, so it did not
        exist here either; its deletion is finished all the same.
        """
        found = client.retrieve(self.names.batches, [str(batch_id)], with_payload=[DELETING])
        existed = bool(found) and not being_deleted(found[0].payload)
        if existed:
            self.mark_deleting(client, batch_id)
        self._remove_marked(client, batch_id, point_too=bool(found))
        return existed

    def mark_deleting(self, client: QdrantClient, batch_id: uuid.UUID) -> None:
        """The first step of :meth:`delete_batch`: from here on every read takes the batch for deleted.

        Selected by a filter, not by id: a point another client deleted
        meanwhile is no error.
        """
        batch_point = models.FilterSelector(filter=_the_batch(batch_id))
        client.set_payload(self.names.batches, {DELETING: True}, points=batch_point)

    def finish_deletions(self, client: QdrantClient) -> list[uuid.UUID]:
        """Remove every marked batch, records first; the ids of those found.

        A process killed during :meth:`delete_batch` left a marked point and
        part of its records. Idempotent: a deletion under way in another
        client removes the same points.
        """
        marked = scroll_all(
            client,
            self.names.batches,
            models.Filter(must=[_equals(DELETING, True)]),
            with_payload=False,
            page_size=_CHUNK,
        )
        batch_ids = [uuid.UUID(str(point.id)) for point in marked]
        for batch_id in batch_ids:
            self._remove_marked(client, batch_id, point_too=True)
        return batch_ids

    def _finish_deletion_begun(self, client: QdrantClient, batch_id: uuid.UUID) -> None:
        """Before a write that would make the batch exist again: finish its deletion, if one was begun."""
        found = client.retrieve(self.names.batches, [str(batch_id)], with_payload=[DELETING])
        if found and being_deleted(found[0].payload):
            self._remove_marked(client, batch_id, point_too=True)

    def _remove_marked(self, client: QdrantClient, batch_id: uuid.UUID, point_too: bool) -> None:
        """The rest of a deletion: every record of the batch, then, with ``point_too``, its point if still marked.

        A point no longer marked is a batch created again since, by another
        client: it stays.
        """
        # What local mode keeps of the batch goes with its records, whichever hook removes them.
        if self.local_order is not None:
            self.local_order.forget(batch_id)
        if self.local_counts is not None:
            self.local_counts.forget(batch_id)
        client.delete(self.names.records, models.FilterSelector(filter=in_batch(batch_id)))
        if point_too:
            marked = _the_batch(batch_id, _equals(DELETING, True))
            client.delete(self.names.batches, models.FilterSelector(filter=marked))

    def get_batch(self, client: QdrantClient, batch_id: uuid.UUID) -> Batch | None:
        found = client.retrieve(self.names.batches, [str(batch_id)], with_payload=True)
        if not found or being_deleted(found[0].payload):
            return None
        payload = found[0].payload or {}
        if self.local_counts is not None:
            total = sum(self.local_counts.of(client, batch_id).values())
        else:
            total = client.count(self.names.records, count_filter=in_batch(batch_id), exact=True).count
        return Batch(batch_id, total, load_json(payload["metadata"]), from_micros(payload["created_us"]))

    def list_batches(self, client: QdrantClient, after: uuid.UUID | None, limit: int) -> list[Batch]:
        """A keyset page of batches in point id order (the UUIDs' order), with their totals from one facet.

        ``scroll``'s offset is the first point id returned, so the page is
        asked from ``after`` itself with one more point, and ``after`` dropped.
        """
        page = self._listed_points(client, after, limit)
        if not page:
            return []
        ids = [str(point.id) for point in page]
        counts = self._kept_totals(ids)
        uncounted = [batch_id for batch_id in ids if batch_id not in counts]
        if uncounted:
            totals = client.facet(
                self.names.records,
                key="batch_id",
                facet_filter=models.Filter(
                    must=[models.FieldCondition(key="batch_id", match=models.MatchAny(any=uncounted))]
                ),
                limit=len(uncounted),
                exact=True,
            )
            counts.update((str(hit.value), hit.count) for hit in totals.hits)
        return [
            Batch(
                uuid.UUID(batch_id),
                counts.get(batch_id, 0),
                load_json((point.payload or {})["metadata"]),
                from_micros((point.payload or {})["created_us"]),
            )
            for batch_id, point in zip(ids, page, strict=True)
        ]

    def _listed_points(self, client: QdrantClient, after: uuid.UUID | None, limit: int) -> list[models.Record]:
        """Up to ``limit`` batch points past ``after``, passing over the marked ones (which read as deleted).

        Read on from where the scroll stopped only when marked points left
        the page short, so an unmarked store pays one scroll as before.
        """
        offset: models.ExtendedPointId | None = str(after) if after is not None else None
        page: list[models.Record] = []
        while True:
            points, offset = client.scroll(self.names.batches, limit=limit + 1, offset=offset, with_payload=True)
            page.extend(
                point
                for point in points
                if not being_deleted(point.payload) and (after is None or uuid.UUID(str(point.id)) != after)
            )
            if len(page) >= limit or offset is None:
                return page[:limit]

    def _kept_totals(self, batch_ids: Sequence[str]) -> dict[str, int]:
        """The totals of the batches whose counts local mode keeps (see :mod:`.counts`); none on a server."""
        if self.local_counts is None:
            return {}
        kept = {batch_id: self.local_counts.known(uuid.UUID(batch_id)) for batch_id in batch_ids}
        return {batch_id: sum(counts.values()) for batch_id, counts in kept.items() if counts is not None}

    def repair_batch(
        self, client: QdrantClient, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime
    ) -> None:
        """Create or overwrite the batch point: the repair has picked the header; records are other points.

        A batch whose deletion was begun is absent: it comes back with no records.
        """
        self._finish_deletion_begun(client, batch_id)
        batch_point = models.PointStruct(
            id=str(batch_id),
            vector={},
            payload={"metadata": dump_json(dict(metadata)), "created_us": to_micros(created_at)},
        )
        client.upsert(self.names.batches, [batch_point])

    # -- the merge ----------------------------------------------------------

    def update_records(
        self, client: QdrantClient, updates: Sequence[RecordUpdate], updated_at: datetime
    ) -> list[RecordUpdate]:
        if not updates:
            return []
        updated_us = to_micros(updated_at)
        point_ids = [record_point_id(update.batch_id, update.key) for update in updates]
        stored = self._stored_states(client, point_ids)
        for update, point_id in zip(updates, point_ids, strict=True):
            if point_id not in stored:
                raise NotFound(f"no record {update.key!r} in batch {update.batch_id}")
        # Conditional upserts share one filter, so updates are grouped by the
        # new merge key's parts that differ between them (updated_us is the call's).
        groups: dict[tuple[int, int, int], list[tuple[RecordUpdate, str, _Stored]]] = {}
        for update, point_id in zip(updates, point_ids, strict=True):
            state = stored[point_id]
            attempt = state.attempt if update.attempt is None else update.attempt
            if (attempt, update.status.rank, updated_us, update.tiebreak) <= state.order:
                continue  # the filter would refuse it too: nothing to send
            groups.setdefault((attempt, update.status.rank, update.tiebreak), []).append((update, point_id, state))
        sent: dict[str, RecordUpdate] = {}
        batch_texts: dict[uuid.UUID, str] = {}
        for (attempt, rank, tiebreak), members in groups.items():
            condition = _lower_than((attempt, rank, *halves(updated_us), *halves(tiebreak)))
            stamps = _stamps(updated_us, tiebreak)
            points = [
                models.PointStruct(
                    id=point_id,
                    vector={},
                    payload={
                        "batch_id": batch_texts.get(update.batch_id)
                        or batch_texts.setdefault(update.batch_id, str(update.batch_id)),
                        "key": update.key,
                        "seq": state.seq,
                        "status": update.status.value,
                        "rank": rank,
                        "attempt": attempt,
                        "result": dump_json_optional(update.result),
                        "error": update.error,
                        **stamps,
                    },
                )
                for update, point_id, state in members
            ]
            for chunk in chunked(points, _CHUNK):
                client.upsert(
                    self.names.records, chunk, update_filter=condition, update_mode=models.UpdateMode.UPDATE_ONLY
                )
            for update, point_id, _ in members:
                sent[point_id] = update.pinned(attempt)
            if self.local_counts is not None:
                for update, _, state in members:
                    self.local_counts.move(update.batch_id, [(state.status, update.status.value)])
        if self.local_counts is not None and len(set(point_ids)) < len(point_ids):
            # Out of the hook's contract (one update per record): the moves above counted a record twice.
            for update in updates:
                self.local_counts.forget(update.batch_id)
        if self.verify_writes and sent:
            landed = self._stored_states(client, list(sent))
            sent = {
                point_id: update
                for point_id, update in sent.items()
                if point_id in landed
                and landed[point_id].order == (update.attempt, update.status.rank, updated_us, update.tiebreak)
            }
        return [sent[point_id] for point_id in point_ids if point_id in sent]

    def merge_records(self, client: QdrantClient, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        """Merge full states: insert the absent, replace lower states, lower seqs; how many changed.

        Three conditional upserts per chunk, each point guarded by a clause
        of its own (``has_id`` and a condition on its stored payload) in one
        ``should`` filter:

        * absent records: ``INSERT_ONLY`` (a record that appeared meanwhile keeps its state);
        * a greater merge key: ``UPDATE_ONLY``, guarded by the stored key
          being lower (:func:`_lower_than`, as ``update_records``), with
          ``seq`` the lower of the stored and the given one;
        * only a lower seq: ``UPDATE_ONLY`` of the stored state with the new
          seq, guarded by the stored key being the one read and the stored
          seq being greater.

        The read before decides which records go in which write; the guards
        decide again at write time. Against a server, the points are read
        back and a record counts as changed only if it holds what was sent.
        """
        require_batch(client, self.names, batch_id)
        if not records:
            return 0
        point_ids = [record_point_id(batch_id, record.key) for record in records]
        stored = self._stored_states(client, point_ids, full=True)
        inserts: list[models.PointStruct] = []
        replaces: list[tuple[models.PointStruct, models.Condition]] = []
        lowers: list[tuple[models.PointStruct, models.Condition]] = []
        expected: dict[str, tuple[int, MergeKey]] = {}
        for record, point_id in zip(records, point_ids, strict=True):
            tiebreak = record_tiebreak(record)
            key = merge_key(record.attempt, record.status, record.updated_at, tiebreak)
            state = stored.get(point_id)
            if state is None:
                inserts.append(_merged_point(point_id, record, record.seq, tiebreak))
                expected[point_id] = (record.seq, key)
            elif key > state.order:
                seq = min(state.seq, record.seq)
                guard = models.Filter(must=[_has_id(point_id), _lower_than(_split(key))])
                replaces.append((_merged_point(point_id, record, seq, tiebreak), guard))
                expected[point_id] = (seq, key)
            elif record.seq < state.seq:
                payload = {**state.payload, "seq": record.seq}
                guard = models.Filter(
                    must=[
                        _has_id(point_id),
                        *(
                            _equals(field, value)
                            for field, value in zip(_MERGE_FIELDS, _split(state.order), strict=True)
                        ),
                        models.FieldCondition(key="seq", range=models.Range(gt=record.seq)),
                    ]
                )
                lowers.append((models.PointStruct(id=point_id, vector={}, payload=payload), guard))
                expected[point_id] = (record.seq, state.order)
        for chunk in chunked(inserts, _CHUNK):
            client.upsert(self.names.records, chunk, update_mode=models.UpdateMode.INSERT_ONLY)
        for guarded in (replaces, lowers):
            for start in range(0, len(guarded), _GUARDED_CHUNK):
                members = guarded[start : start + _GUARDED_CHUNK]
                client.upsert(
                    self.names.records,
                    [point for point, _ in members],
                    update_filter=models.Filter(should=[guard for _, guard in members]),
                    update_mode=models.UpdateMode.UPDATE_ONLY,
                )
        if not self.verify_writes:
            return len(expected)
        landed = self._stored_states(client, list(expected))
        return sum(
            1
            for point_id, (seq, key) in expected.items()
            if point_id in landed and (landed[point_id].seq, landed[point_id].order) == (seq, key)
        )

    def retry_failed(self, client: QdrantClient, batch_id: uuid.UUID, updated_at: datetime) -> list[RecordUpdate]:
        require_batch(client, self.names, batch_id)
        updated_us = to_micros(updated_at)
        failed = scroll_all(
            client,
            self.names.records,
            models.Filter(must=[in_batch(batch_id), _equals("status", Status.FAILED.value)]),
            with_payload=_STATE_FIELDS,
            page_size=_CHUNK,
        )
        by_attempt: dict[int, list[tuple[str, _Stored]]] = {}
        for point in failed:
            state = _state(point.payload or {})
            by_attempt.setdefault(state.attempt, []).append((str(point.id), state))
        moved: dict[str, tuple[int, str, int]] = {}
        for attempt, members in by_attempt.items():
            # Only a record still failed at this attempt moves, whatever happened since the scroll.
            condition = models.Filter(must=[_equals("status", Status.FAILED.value), _equals("attempt", attempt)])
            points = []
            for point_id, state in members:
                payload = {
                    "batch_id": str(batch_id),
                    "key": state.key,
                    "seq": state.seq,
                    "status": Status.PENDING.value,
                    "rank": Status.PENDING.rank,
                    "attempt": attempt + 1,
                    "result": None,
                    "error": None,
                    **_stamps(updated_us, PENDING_TIEBREAK),
                }
                points.append(models.PointStruct(id=point_id, vector={}, payload=payload))
                moved[point_id] = (state.seq, state.key, attempt + 1)
            for chunk in chunked(points, _CHUNK):
                client.upsert(
                    self.names.records, chunk, update_filter=condition, update_mode=models.UpdateMode.UPDATE_ONLY
                )
        if self.local_counts is not None:
            self.local_counts.move(batch_id, [(Status.FAILED.value, Status.PENDING.value)] * len(moved))
        if self.verify_writes and moved:
            landed = self._stored_states(client, list(moved))
            expected = {
                point_id: (attempt, Status.PENDING.rank, updated_us, PENDING_TIEBREAK)
                for point_id, (_, _, attempt) in moved.items()
            }
            moved = {
                point_id: row
                for point_id, row in moved.items()
                if point_id in landed and landed[point_id].order == expected[point_id]
            }
        return [
            RecordUpdate(batch_id, key, Status.PENDING, attempt=attempt) for seq, key, attempt in sorted(moved.values())
        ]

    def _stored_states(self, client: QdrantClient, point_ids: Sequence[str], full: bool = False) -> dict[str, _Stored]:
        """The stored states of these points; with ``full``, each keeps its whole payload too."""
        states: dict[str, _Stored] = {}
        for chunk in chunked(point_ids, _CHUNK):
            for point in client.retrieve(self.names.records, list(chunk), with_payload=True if full else _STATE_FIELDS):
                states[str(point.id)] = _state(point.payload or {})
        return states

    def _existing_ids(self, client: QdrantClient, point_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunked(point_ids, _CHUNK):
            found.update(
                str(point.id) for point in client.retrieve(self.names.records, list(chunk), with_payload=False)
            )
        return found

    # -- reads --------------------------------------------------------------

    def get_records(self, client: QdrantClient, batch_id: uuid.UUID, keys: Sequence[str]) -> list[Record]:
        """The records of ``keys`` in their order; an unknown batch has none (its records went with it).

        The batch point is not read (a round trip more on a server), so the
        records a deletion has not removed yet still read while it is under
        way in another client, or until the next open finishes one a killed
        client left. In local mode no hook sees that state: each holds the
        lock throughout, and the open finishes before any read.
        """
        found: dict[str, Record] = {}
        for chunk in chunked(keys, _CHUNK):
            points = client.retrieve(
                self.names.records, [record_point_id(batch_id, key) for key in chunk], with_payload=True
            )
            for point in points:
                record = _record(batch_id, point.payload or {})
                found[record.key] = record
        return [found[key] for key in keys if key in found]

    def get_record(self, client: QdrantClient, batch_id: uuid.UUID, key: str) -> Record | None:
        found = client.retrieve(self.names.records, [record_point_id(batch_id, key)], with_payload=True)
        return _record(batch_id, found[0].payload or {}) if found else None

    def list_records(
        self,
        client: QdrantClient,
        batch_id: uuid.UUID,
        status: Status | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Record]:
        """A keyset page in (seq, key) order, at a cost that does not depend on where the page is.

        Local mode reads it through :class:`~.order.LocalOrder`. A server
        reads it with ``order_by`` on ``seq``, ``start_from`` the cursor's
        seq, and ``seq >= `` that seq in the filter. A Qdrant segment plans
        such a scroll one of two ways (``read_ordered_filtered``): it
        streams its range index on ``seq`` from ``start_from`` on, checking
        the filter on each point until it has ``limit``; or, when the filter
        looks more selective than that walk, it reads the points the filter
        selects through the payload indexes and keeps the ``limit`` lowest.
        The range in the filter bounds the second plan to the records past
        the cursor (without it, every page of a batch sharing a collection
        with others would read the whole batch), and ``start_from`` the
        first; neither reads what lies before the cursor. Qdrant cannot order
        by a keyword, so records sharing a seq (two Stores stamping the same
        number) come in any order: a fetched page whose last seq might
        continue past the page is used only up to that seq, and the fetch
        grows until ``limit`` records are certain. It asks for two records
        more than the page, the cursor's own and one past the end, so that
        with distinct seqs one fetch is enough.
        """
        require_batch(client, self.names, batch_id)
        wanted = None if status is None else Status.coerce(status).value
        if self.local_order is not None:
            return self._list_local(client, self.local_order, batch_id, wanted, after, limit)
        conditions: list[models.Condition] = [in_batch(batch_id)]
        if wanted is not None:
            conditions.append(_equals("status", wanted))
        if after is not None:
            # Not needed for the answer: it keeps the server's pre-filtering plan past the cursor too.
            conditions.append(models.FieldCondition(key="seq", range=models.Range(gte=after[0])))
        scroll_filter = models.Filter(must=conditions)
        order_by = models.OrderBy(key="seq", start_from=after[0] if after is not None else None)
        fetch = limit + 2
        while True:
            points, _ = client.scroll(
                self.names.records, scroll_filter=scroll_filter, order_by=order_by, limit=fetch, with_payload=True
            )
            page = page_from_seq_order([point.payload or {} for point in points], fetch, after, limit)
            if page is not None:
                return [_record(batch_id, payload) for payload in page]
            fetch *= 2

    def _list_local(
        self,
        client: QdrantClient,
        order: LocalOrder,
        batch_id: uuid.UUID,
        wanted: str | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[Record]:
        """The page from the batch's order: ``retrieve`` the next keys' points, keep those of ``wanted`` status.

        Without a status the first ``limit`` keys are the page. With one,
        the keys are read on in growing chunks until ``limit`` records have
        that status: a page costs the records it passes, from the cursor on.
        """
        keys = order.keys_from(client, batch_id, after)
        page: list[Record] = []
        chunk = limit
        while len(page) < limit:
            taken = list(itertools.islice(keys, chunk))
            if not taken:
                break
            points = client.retrieve(
                self.names.records, [record_point_id(batch_id, key) for key in taken], with_payload=True
            )
            by_key = {payload["key"]: payload for payload in (point.payload or {} for point in points)}
            for key in taken:
                payload = by_key.get(key)
                if payload is not None and (wanted is None or payload["status"] == wanted):
                    page.append(_record(batch_id, payload))
                    if len(page) == limit:
                        break
            chunk = max(limit, min(chunk * 2, _CHUNK * 4))
        return page

    def progress(self, client: QdrantClient, batch_id: uuid.UUID) -> Progress:
        require_batch(client, self.names, batch_id)
        if self.local_counts is not None:
            return Progress.from_counts(dict(self.local_counts.of(client, batch_id)))
        # One facet call: the count of each status value among the batch's records.
        facets = client.facet(
            self.names.records, key="status", facet_filter=in_batch(batch_id), limit=len(Status), exact=True
        )
        return Progress.from_counts({str(hit.value): hit.count for hit in facets.hits})


def require_batch(client: QdrantClient, names: CollectionNames, batch_id: uuid.UUID) -> None:
    """Raise :class:`NotFound` unless the batch exists and its deletion was not begun (one ``retrieve``)."""
    found = client.retrieve(names.batches, [str(batch_id)], with_payload=[DELETING])
    if not found or being_deleted(found[0].payload):
        raise NotFound(f"no batch {batch_id}")


def _the_batch(batch_id: uuid.UUID, *more: models.Condition) -> models.Filter:
    """The batch's point (where ``more`` holds too), as a filter: a write selecting it is no error when it is gone."""
    return models.Filter(must=[models.HasIdCondition(has_id=[str(batch_id)]), *more])


def _stamps(updated_us: int, tiebreak: int) -> dict[str, int]:
    us_hi, us_lo = halves(updated_us)
    tb_hi, tb_lo = halves(tiebreak)
    return {
        "updated_us": updated_us,
        "us_hi": us_hi,
        "us_lo": us_lo,
        "tiebreak": tiebreak,
        "tb_hi": tb_hi,
        "tb_lo": tb_lo,
    }


def _lower_than(new_key: tuple[int, ...]) -> models.Filter:
    """Stored (attempt, rank, us_hi, us_lo, tb_hi, tb_lo) < ``new_key``, lexicographically."""
    alternatives: list[models.Condition] = []
    for equal_before, (field, value) in lexicographic_below(list(zip(_MERGE_FIELDS, new_key, strict=True))):
        lower_here = models.FieldCondition(key=field, range=models.Range(lt=value))
        alternatives.append(models.Filter(must=[*(_equals(*pair) for pair in equal_before), lower_here]))
    return models.Filter(should=alternatives)


def _state(payload: Mapping[str, Any]) -> _Stored:
    return _Stored(
        payload["key"],
        payload["seq"],
        payload["status"],
        payload["attempt"],
        payload["rank"],
        payload["updated_us"],
        payload["tiebreak"],
        # The caller's own copy (a fresh dict from the client), kept as is.
        dict(payload) if not isinstance(payload, dict) else payload,
    )


def _split(key: MergeKey) -> tuple[int, ...]:
    """A merge key as the stored fields the filters compare: (attempt, rank, us_hi, us_lo, tb_hi, tb_lo)."""
    attempt, rank, updated_us, tiebreak = key
    return (attempt, rank, *halves(updated_us), *halves(tiebreak))


def _has_id(point_id: str) -> models.HasIdCondition:
    return models.HasIdCondition(has_id=[point_id])


def _merged_point(point_id: str, record: Record, seq: int, tiebreak: int) -> models.PointStruct:
    """A record point holding exactly ``record``'s state, at ``seq``."""
    payload = {
        "batch_id": str(record.batch_id),
        "key": record.key,
        "seq": seq,
        "status": record.status.value,
        "rank": record.status.rank,
        "attempt": record.attempt,
        "result": dump_json_optional(record.result),
        "error": record.error,
        **_stamps(to_micros(record.updated_at), tiebreak),
        **lease_fields(record.lease_owner, record.lease_expires),
    }
    return models.PointStruct(id=point_id, vector={}, payload=payload)


def lease_fields(owner: str | None, expires: datetime | None) -> dict[str, Any]:
    """A claimed record's lease in its payload; absent (as in records stored before claims) when there is none.

    An upsert replaces the whole payload, so every write that sends none (an
    update, a retry) clears the lease, as the hook specification wants.
    """
    if owner is None or expires is None:
        return {}
    return {"lease_owner": owner, "lease_us": to_micros(expires)}


def _record(batch_id: uuid.UUID, payload: Mapping[str, Any]) -> Record:
    return Record(
        batch_id=batch_id,
        key=payload["key"],
        seq=payload["seq"],
        status=Status(payload["status"]),
        attempt=payload["attempt"],
        result=load_json_optional(payload["result"]),
        error=payload["error"],
        updated_at=from_micros(payload["updated_us"]),
        lease_owner=payload.get("lease_owner"),
        lease_expires=None if payload.get("lease_us") is None else from_micros(payload["lease_us"]),
    )


def _equals(field: str, value: str | int) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


__all__ = ["Records", "require_batch"]
