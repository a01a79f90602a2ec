"""Two Stores (two processes, as a rule) streaming into one batch: a failed call takes back its own records only.

Each Store reserves ``seq`` ranges from its own clock, so two Stores that add
to one batch within a few milliseconds of each other reserve overlapping
ranges. docs/semantics.md: a failed add takes back the records *it* added,
and a key the batch held before the call is not touched; a key held before
the call and given twice is not refused. Both must hold when another Store's
records bear ``seq`` values inside this call's ranges (the one case the docs
except, another Store's record of the same key at the same ``seq``, is not
tested: it is not met).

The Stores here share one wall clock stopped at one instant, which makes
every range start at the same ``seq``: the overlap two processes get when
they add within a chunk's worth of microseconds, made certain.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import fallthrough
from fallthrough.clock import Stamper
from fallthrough.errors import InvalidInput
from fallthrough.validation import STREAM_CHUNK

INSTANT_NS = 1_800_000_000_000_000_000


def _store(path: Path) -> fallthrough.Store:
    return fallthrough.Store([("sqlite", f"sqlite:///{path}")], stamper=Stamper(lambda: INSTANT_NS))


@attrs.frozen
class Shared:
    """A batch ``a0, a1, a2`` the first Store made, seen from the second; every range of either starts at one seq."""

    second: fallthrough.Store
    batch: fallthrough.Batch
    before: dict[str, int]  # key: seq, as the first Store wrote them


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Shared]:
    with _store(tmp_path / "shared.db") as first, _store(tmp_path / "shared.db") as second:
        batch = first.create_batch(["a0", "a1", "a2"])
        before = _stored(first, batch)
        assert min(before.values()) == INSTANT_NS // 1000  # the second Store's ranges start here too
        yield Shared(second, batch, before)


def _stored(store: fallthrough.Store, batch: fallthrough.Batch) -> dict[str, int]:
    return {record.key: record.seq for record in store.records(batch.id)}


def _others(count: int) -> Iterator[str]:
    return (f"b{index:05d}" for index in range(count))


def test_a_failed_add_leaves_the_key_another_store_added_inside_its_seq_range(shared: Shared) -> None:
    # a1 comes first (held before the call: left untouched), then a whole chunk, then a bad key.
    keys = itertools.chain(["a1"], _others(STREAM_CHUNK), [""])
    with pytest.raises(InvalidInput, match=r"keys\[10001\]"):
        shared.second.add_records(shared.batch.id, keys)

    assert _stored(shared.second, shared.batch) == shared.before


def test_a_key_held_before_the_call_and_given_twice_is_not_refused_when_another_store_added_it(
    shared: Shared,
) -> None:
    # a1 at the start of the first chunk and again in the second: a repeat of a key held before the call.
    added = shared.second.add_records(shared.batch.id, itertools.chain(["a1"], _others(STREAM_CHUNK), ["a1"]))

    assert added == STREAM_CHUNK
    stored = _stored(shared.second, shared.batch)
    assert {key: stored[key] for key in shared.before} == shared.before
    assert len(stored) == len(shared.before) + STREAM_CHUNK


def test_a_key_this_call_wrote_and_gave_again_is_still_refused_beside_another_stores_records(shared: Shared) -> None:
    with pytest.raises(InvalidInput, match="'b00002' more than once"):
        shared.second.add_records(shared.batch.id, itertools.chain(_others(STREAM_CHUNK), ["b00002"]))

    assert _stored(shared.second, shared.batch) == shared.before
