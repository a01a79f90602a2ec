"""A key is its characters: a str subclass with its own ``__eq__`` or ``__hash__`` is taken as a plain str.

The stores compare keys by their characters. Were the core to compare them
with the subclass's own ``__eq__`` and ``__hash__``, its checks (a key given
twice, the digests that find what a failed create wrote) would disagree with
the stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate
from fallthrough.errors import InvalidInput
from fallthrough.validation import STREAM_CHUNK


class CaseInsensitive(str):
    """A SKU type that compares without case, as some do."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.lower() == other.lower()

    def __hash__(self) -> int:
        return hash(self.lower())


class NeverEqual(str):
    """Equal to nothing, itself included."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


@pytest.fixture
def store() -> Iterator[fallthrough.Store]:
    with fallthrough.connect("sqlite://", "qdrant+memory://") as both:
        yield both


def test_two_keys_that_differ_in_characters_are_two_records(store: fallthrough.Store) -> None:
    batch = store.create_batch([CaseInsensitive("SKU-1"), CaseInsensitive("sku-1")])

    assert batch.total == 2
    assert [record.key for record in store.records(batch.id)] == ["SKU-1", "sku-1"]


def test_one_key_given_twice_is_refused_whatever_its_type_says(store: fallthrough.Store) -> None:
    with pytest.raises(InvalidInput, match="'k' more than once"):
        store.create_batch([NeverEqual("k"), NeverEqual("k")])
    batch = store.create_batch(["k"])
    twice = r"updates\[1\] names record 'k' .* more than once \(first at updates\[0\]\)"
    with pytest.raises(InvalidInput, match=twice):
        store.update_many([RecordUpdate(batch.id, NeverEqual("k"), "completed"), RecordUpdate(batch.id, "k", "failed")])
    with pytest.raises(InvalidInput, match="more than once"):
        store.upsert_documents("docs", [Document(NeverEqual("d"), "one"), Document("d", "two")])
    assert store.get_record(batch.id, "k").status is fallthrough.Status.PENDING  # type: ignore[union-attr]
    assert store.get_documents("docs", ["d"]) == []


def test_a_failed_add_of_such_keys_takes_back_every_record_it_wrote(store: fallthrough.Store) -> None:
    batch = store.create_batch(["seed"])
    keys = itertools.chain((CaseInsensitive(f"K{index:06d}") for index in range(STREAM_CHUNK + 5)), [""])

    with pytest.raises(InvalidInput, match=r"keys\[10005\]"):
        store.add_records(batch.id, keys)

    assert [record.key for record in store.records(batch.id)] == ["seed"]


def test_the_value_types_hold_plain_str() -> None:
    assert type(RecordUpdate("00000000-0000-0000-0000-000000000001", CaseInsensitive("k"), "completed").key) is str
    assert type(Document(CaseInsensitive("d"), "text").id) is str
