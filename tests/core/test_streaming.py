"""Streamed creates through the router: per-chunk hints converge after an outage, and digests never refuse alone.

The Store-level rules on each real backend are in
:mod:`fallthrough.testing.suite.streaming`; these tests need two stores
and a fault-injecting one among them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

import fallthrough
from fallthrough import validation
from fallthrough.errors import AllBackendsFailed, BackendUnavailable, InvalidInput
from fallthrough.testing.faults import FaultInjectingBackend
from fallthrough.validation import STREAM_CHUNK

SIZE = 2 * STREAM_CHUNK + STREAM_CHUNK // 2


def _flaky(store: fallthrough.Store, name: str) -> FaultInjectingBackend:
    return cast(FaultInjectingBackend, store.plugin_manager.get_plugin(name))


@pytest.fixture
def two(registry: fallthrough.Registry, tmp_path: Path) -> Iterator[fallthrough.Store]:
    """Two SQLite stores behind fault gates, with a durable journal (the hints go through its codec)."""
    store = fallthrough.connect(
        first="flaky://?inner=sqlite://",
        second="flaky://?inner=sqlite://",
        registry=registry,
        breaker=fallthrough.BreakerPolicy(cooldown=0.01),
        journal=f"sqlite:///{tmp_path}/hints.db",
    )
    yield store
    store.close()


def _keys(down: FaultInjectingBackend, *, bad_at: int | None = None) -> Iterator[str]:
    """SIZE keys; the second store goes down once the first chunk is written, and comes back at the third."""
    for index in range(SIZE):
        if index == STREAM_CHUNK + 1:
            down.outage = True
        if index == 2 * STREAM_CHUNK + 1:
            down.outage = False
        yield "" if index == bad_at else f"k{index:06d}"


def _records(store: FaultInjectingBackend, batch_id: uuid.UUID) -> list[tuple[int, str, str]]:
    page = store.inner.fallthrough_list_records(batch_id=batch_id, status=None, after=None, limit=10 * SIZE)
    return [(record.seq, record.key, record.status.value) for record in page]


def test_a_store_down_during_a_streamed_create_gets_one_hint_per_chunk_and_converges(two: fallthrough.Store) -> None:
    first, second = _flaky(two, "first"), _flaky(two, "second")
    batch = two.create_batch(_keys(second))
    assert batch.total == SIZE
    health = {item.name: item for item in two.health()}
    # Chunk 2 missed it; chunk 3 queued behind that hint, in order: a hint per chunk, never the whole batch.
    assert health["second"].pending_hints in (1, 2)
    assert two.drain(timeout=30)
    assert _records(first, batch.id) == _records(second, batch.id)
    assert len(_records(second, batch.id)) == SIZE


def test_the_take_back_of_an_invalid_streamed_create_is_journaled_too(two: fallthrough.Store) -> None:
    first, second = _flaky(two, "first"), _flaky(two, "second")
    batch_id = uuid.uuid4()
    with pytest.raises(InvalidInput, match=rf"keys\[{2 * STREAM_CHUNK + 5}\]"):
        two.create_batch(_keys(second, bad_at=2 * STREAM_CHUNK + 5), batch_id=batch_id)
    second.outage = True  # still down when the take-back runs: it is a hint as well
    assert two.get_batch(batch_id) is None
    second.outage = False
    assert two.drain(timeout=30)
    assert first.inner.fallthrough_get_batch(batch_id=batch_id) is None
    assert second.inner.fallthrough_get_batch(batch_id=batch_id) is None


def test_an_add_taken_back_while_a_store_was_down_converges_to_the_batch_as_it_was(two: fallthrough.Store) -> None:
    first, second = _flaky(two, "first"), _flaky(two, "second")
    batch = two.create_batch(["before"])
    with pytest.raises(InvalidInput):
        two.add_records(batch.id, _keys(second, bad_at=SIZE - 1))
    assert two.drain(timeout=30)
    assert _records(first, batch.id) == _records(second, batch.id)
    assert [key for _, key, _ in _records(second, batch.id)] == ["before"]


def test_a_digest_collision_does_not_refuse_a_valid_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every digest equal, every key of a later chunk is a suspect; the store clears them all."""
    monkeypatch.setattr(validation, "_DIGEST_MASK", 0)
    with fallthrough.connect() as store:
        batch = store.create_batch(f"k{index}" for index in range(SIZE))
        assert batch.total == SIZE
        with pytest.raises(InvalidInput, match="'k3' more than once"):
            store.create_batch(f"k{index}" for index in [*range(SIZE), 3])


def test_key_digests_report_only_keys_seen_in_earlier_chunks() -> None:
    digests = validation.KeyDigests()
    assert digests.suspects(["a", "b"]) == []
    assert digests.suspects(["c", "a"]) == ["a"]
    assert "b" in digests and "zzz" not in digests


def test_chunks_hold_at_most_the_chunk_size_and_name_positions_in_the_whole_input() -> None:
    chunks = validation.key_chunks((f"k{index}" for index in range(25)), size=10)
    assert [len(chunk) for chunk in chunks] == [10, 10, 5]
    assert list(validation.key_chunks([], size=10)) == [()]
    assert [len(chunk) for chunk in validation.key_chunks([f"k{index}" for index in range(20)], size=10)] == [10, 10]
    with pytest.raises(InvalidInput, match=r"keys\[13\]"):
        list(validation.key_chunks(["k"] * 0 + [f"k{index}" for index in range(13)] + [7], size=10))
    with pytest.raises(InvalidInput, match="must be an iterable"):
        list(validation.key_chunks("abc"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (7, "must be a str, not int"),
        ("", "must be 1 to 512 characters, got 0"),
        ("x" * 513, "must be 1 to 512 characters, got 513"),
        ("a\x00b", "contains a NUL character"),
        ("a\ud800b", "contains a lone surrogate"),
    ],
)
def test_a_bad_key_among_plain_ones_is_named_by_its_position_with_check_keys_own_message(
    bad: object, message: str
) -> None:
    # The whole-sequence check of plain keys must refuse exactly what the key-by-key one does.
    keys: list[object] = [f"ключ-{index}" for index in range(30)]
    keys[23] = bad
    for checked in (
        lambda: list(validation.key_chunks(keys, size=10)),
        lambda: validation.check_unique_keys(keys),
        lambda: validation.check_distinct_keys(keys, "ids"),
    ):
        with pytest.raises(InvalidInput, match=rf"\[23\] {message}"):
            checked()
    assert validation.check_distinct_keys(keys[:23] + keys[:23], "ids") == tuple(keys[:23])


def test_keys_of_a_str_subclass_are_checked_one_by_one_and_kept() -> None:
    class Sku(str):
        pass

    keys = [Sku("a"), "b", Sku("c" * 512)]
    assert validation.check_unique_keys(keys) == tuple(keys)
    with pytest.raises(InvalidInput, match=r"keys\[1\] must be 1 to 512"):
        validation.check_unique_keys([Sku("a"), Sku("")])


def test_a_key_that_is_not_a_str_is_refused_before_the_next_is_pulled() -> None:
    pulled: list[object] = []

    def source() -> Iterator[object]:
        for value in ("ok-1", 42):
            pulled.append(value)
            yield value
        raise ConnectionResetError("the caller's feed dropped")  # never reached: 42 is refused first

    with pytest.raises(InvalidInput, match=r"keys\[1\] must be a str, not int"):
        list(validation.key_chunks(source(), size=10))
    assert pulled == ["ok-1", 42]


class _Sku(str):
    pass


@pytest.mark.parametrize(
    "keys",
    [["a", 7], ["a", ""], ["a", "a"], [_Sku("a"), _Sku("\x00")]],
    ids=["not-a-str", "empty", "repeat", "bad-str-subclass"],
)
def test_key_chunks_do_not_take_their_own_refusal_for_the_iterables_error(keys: list[object]) -> None:
    chunks = validation.key_chunks(keys, size=10)
    with pytest.raises(InvalidInput):
        list(chunks)
    assert chunks.source_error is None


def test_key_chunks_keep_what_the_iterable_raised_a_fallthrough_error_too() -> None:
    outage = AllBackendsFailed("records", {"postgresql": BackendUnavailable("connection refused")})

    def source() -> Iterator[str]:
        yield from (f"k{index}" for index in range(15))
        raise outage

    chunks = validation.key_chunks(source(), size=10)
    pulled = iter(chunks)
    assert len(next(pulled)) == 10
    assert chunks.source_error is None
    with pytest.raises(AllBackendsFailed):
        next(pulled)
    assert chunks.source_error is outage


def test_key_chunks_keep_what_an_iterables_iter_raised() -> None:
    class Unopenable:
        def __iter__(self) -> Iterator[str]:
            raise OSError("the feed will not open")

    chunks = validation.key_chunks(Unopenable())
    with pytest.raises(OSError, match="will not open"):
        list(chunks)
    assert isinstance(chunks.source_error, OSError)


def test_check_keys_reads_a_one_pass_iterable_once() -> None:
    validation.check_keys(iter(["a", "b"]))
    with pytest.raises(InvalidInput, match=r"keys\[1\] must be 1 to 512"):
        validation.check_keys(iter(["a", ""]))
