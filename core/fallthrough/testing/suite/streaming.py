"""Conformance tests for streamed creates, through a whole :class:`~fallthrough.Store` on one backend.

``create_batch`` and ``add_records`` read any iterable a chunk at a time
(:data:`~fallthrough.validation.STREAM_CHUNK` keys) and write each chunk
as it comes, up to :attr:`~fallthrough.Store.chunk_writes_in_flight` of
them at once; invalid input in a later chunk takes back what the earlier
ones wrote (``docs/semantics.md``, "Streaming creates"). These tests check
both on a real store: the generator watches the store fill up behind it,
and a bad key or a repeat at position 25,000 leaves the store as it was.

Unlike the hook-level classes, this one needs a Store, so a subclass
provides a ``store_url`` fixture (a URL ``fallthrough.connect`` opens)
instead of ``backend``::

    class TestMyBackendStreaming(StreamingConformance):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mine:///{tmp_path}/x.db"
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import ClassVar

import pytest

from ...errors import AllBackendsFailed, BackendUnavailable, InvalidInput
from ...store import Store, connect
from ...types import Record, Status
from ...validation import STREAM_CHUNK


class _Boom(Exception):
    """What a caller's generator raises part-way."""


def _another_stores_outage() -> Exception:
    """What a generator raises when it reads its keys from another Store, all of whose backends are down."""
    return AllBackendsFailed("records", {"postgresql": BackendUnavailable("connection refused")})


_SOURCE_ERRORS = pytest.mark.parametrize(
    "make_error",
    [lambda: _Boom("the caller's source broke"), _another_stores_outage, KeyboardInterrupt],
    ids=["its-own-error", "a-fallthrough-error", "an-interrupt"],
)


class StreamingConformance:
    """Creating from a generator holds a few chunks, and invalid input in the middle leaves nothing behind."""

    generator_size: ClassVar[int] = 100_000
    """Keys the watching generator yields (the issue's test: 100,000, checked at key 50,000)."""

    bad_at: ClassVar[int] = 25_000
    """Where the bad key or the repeat sits: past two whole chunks, so two were written before it."""

    @pytest.fixture
    def store_url(self) -> str:
        pytest.fail(f"{type(self).__qualname__} must define a `store_url` fixture", pytrace=False)

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[Store]:
        with connect(store_url) as store:
            yield store

    # -- memory: the store fills up behind the generator ----------------------------------------

    def test_a_generator_is_written_behind_and_never_read_further_ahead_than_the_chunks_in_flight(
        self, store: Store
    ) -> None:
        batch_id = uuid.uuid4()
        checks: list[tuple[int, int]] = []
        store.health(ping=True)  # opens the backends, whose capabilities say how many chunks are written at once
        ahead = (1 + store.chunk_writes_in_flight) * STREAM_CHUNK  # the chunk being filled, and those being written

        def watching() -> Iterator[str]:
            for index in range(self.generator_size):
                if index % (STREAM_CHUNK // 2) == 0:
                    batch = store.get_batch(batch_id)
                    written = 0 if batch is None else batch.total
                    # Everything yielded before this key is written, except at most the chunks in hand.
                    assert index - written <= ahead, f"at key {index} only {written} records are written"
                    checks.append((index, written))
                yield f"sku-{index:08d}"

        batch = store.create_batch(watching(), batch_id=batch_id, metadata={"source": "generator"})
        assert batch.total == self.generator_size
        halfway = dict(checks)[self.generator_size // 2]
        assert halfway >= self.generator_size // 2 - ahead > 0, "at the half, the store held too little"
        progress = store.progress(batch_id)
        assert (progress.total, progress.pending) == (self.generator_size, self.generator_size)
        # Input order across chunks: seq grows from chunk to chunk (reading every record back is
        # the read benchmarks' business, and slow on some stores).
        probes = [0, STREAM_CHUNK - 1, STREAM_CHUNK, self.generator_size // 2, self.generator_size - 1]
        seqs = []
        for index in probes:
            record = store.get_record(batch_id, f"sku-{index:08d}")
            assert record is not None and record.status is Status.PENDING
            seqs.append(record.seq)
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"seq does not follow input order: {seqs}"
        first_page = [record.key for record, _ in zip(store.records(batch_id, page_size=3), range(3), strict=False)]
        assert first_page == ["sku-00000000", "sku-00000001", "sku-00000002"]

    # -- invalid input in the middle -----------------------------------------------------------

    def _keys_with(self, bad: str | None, total: int) -> Iterator[str]:
        for index in range(total):
            yield bad if index == self.bad_at and bad is not None else f"sku-{index:08d}"

    def _repeating(self, total: int) -> Iterator[str]:
        """Distinct keys, except that key ``bad_at`` repeats key 5 (written two chunks before)."""
        for index in range(total):
            yield "sku-00000005" if index == self.bad_at else f"sku-{index:08d}"

    @pytest.mark.parametrize("bad", ["", "x" * 513, "nul\x00"], ids=["empty", "too-long", "nul"])
    def test_a_bad_key_in_the_middle_of_a_create_leaves_no_batch(self, store: Store, bad: str) -> None:
        batch_id = uuid.uuid4()
        with pytest.raises(InvalidInput, match=rf"keys\[{self.bad_at}\]"):
            store.create_batch(self._keys_with(bad, self.bad_at + STREAM_CHUNK), batch_id=batch_id)
        assert store.get_batch(batch_id) is None
        assert all(item.batch.id != batch_id for item in store.batches())

    def test_a_key_repeated_across_chunks_of_a_create_leaves_no_batch(self, store: Store) -> None:
        batch_id = uuid.uuid4()
        with pytest.raises(InvalidInput, match="more than once"):
            store.create_batch(self._repeating(self.bad_at + STREAM_CHUNK), batch_id=batch_id)
        assert store.get_batch(batch_id) is None

    def _failing(self, error: BaseException) -> Iterator[str]:
        yield from self._keys_with(None, self.bad_at)
        raise error

    @_SOURCE_ERRORS
    def test_a_generator_that_raises_in_the_middle_leaves_no_batch(
        self, store: Store, make_error: Callable[[], BaseException]
    ) -> None:
        error = make_error()
        batch_id = uuid.uuid4()
        with pytest.raises(type(error)) as raised:
            store.create_batch(self._failing(error), batch_id=batch_id)
        assert raised.value is error
        assert store.get_batch(batch_id) is None

    @_SOURCE_ERRORS
    def test_a_generator_that_raises_in_the_middle_of_an_add_removes_only_what_it_added(
        self, store: Store, make_error: Callable[[], BaseException]
    ) -> None:
        """Whatever the generator raises, a FallthroughError too, is the caller's: the call's records go."""
        error = make_error()
        batch_id, one, seven = self._existing(store)
        with pytest.raises(type(error)) as raised:
            store.add_records(batch_id, self._failing(error))
        assert raised.value is error
        self._unchanged(store, batch_id, one, seven)

    def _existing(self, store: Store) -> tuple[uuid.UUID, Record, Record]:
        """A batch that holds keys before the add: one processed, one that the add names again."""
        batch = store.create_batch(["before-1", "sku-00000007"], metadata={"kept": True})
        store.update(batch.id, "before-1", "completed", result={"n": 1})
        one, seven = store.get_record(batch.id, "before-1"), store.get_record(batch.id, "sku-00000007")
        assert one is not None and seven is not None
        return batch.id, one, seven

    def _unchanged(self, store: Store, batch_id: uuid.UUID, one: Record, seven: Record) -> None:
        batch = store.get_batch(batch_id)
        assert batch is not None and (batch.total, batch.metadata) == (2, {"kept": True})
        assert [record.key for record in store.records(batch_id)] == ["before-1", "sku-00000007"]
        assert store.get_record(batch_id, "before-1") == one
        assert store.get_record(batch_id, "sku-00000007") == seven
        progress = store.progress(batch_id)
        assert (progress.total, progress.completed, progress.pending) == (2, 1, 1)

    def test_a_bad_key_in_the_middle_of_an_add_removes_only_what_it_added(self, store: Store) -> None:
        batch_id, one, seven = self._existing(store)
        with pytest.raises(InvalidInput, match=rf"keys\[{self.bad_at}\]"):
            store.add_records(batch_id, self._keys_with("", self.bad_at + STREAM_CHUNK))
        self._unchanged(store, batch_id, one, seven)

    def test_a_repeat_in_the_middle_of_an_add_removes_only_what_it_added(self, store: Store) -> None:
        batch_id, one, seven = self._existing(store)
        with pytest.raises(InvalidInput, match="more than once"):
            store.add_records(batch_id, self._repeating(self.bad_at + STREAM_CHUNK))
        self._unchanged(store, batch_id, one, seven)

    def test_a_create_naming_an_existing_batch_that_fails_keeps_the_batch(self, store: Store) -> None:
        batch_id, one, seven = self._existing(store)
        with pytest.raises(InvalidInput, match="more than once"):
            store.create_batch(self._repeating(self.bad_at + STREAM_CHUNK), batch_id=batch_id, metadata={"new": 1})
        self._unchanged(store, batch_id, one, seven)

    def test_records_claimed_before_the_failure_are_removed_too(self, store: Store) -> None:
        batch_id, one, seven = self._existing(store)

        def claiming() -> Iterator[str]:
            for index, key in enumerate(self._keys_with("", self.bad_at + STREAM_CHUNK)):
                if index == STREAM_CHUNK + 1:  # the first chunk is written: a worker takes and finishes one
                    record = store.get_record(batch_id, "sku-00000000")
                    assert record is not None and record.status is Status.PENDING
                    store.update(batch_id, "sku-00000000", "completed", result=1)
                yield key

        with pytest.raises(InvalidInput):
            store.add_records(batch_id, claiming())
        self._unchanged(store, batch_id, one, seven)


__all__ = ["StreamingConformance"]
