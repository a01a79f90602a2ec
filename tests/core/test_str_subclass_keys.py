"""A key is its characters: a str subclass with its own ``__eq__`` or ``__hash__`` is taken as a plain str.

The stores compare keys by their characters. Were the core to compare them
with the subclass's own ``__eq__`` and ``__hash__``, its checks (a key given
twice, the digests that find what a failed create wrote) would disagree with
the stores. So are collection names, metadata keys and filter fields, which
a store may spell into its own names and paths (with ``__format__``, which
an ``Enum`` spells otherwise), and batch ids of a ``UUID`` subclass.
"""

from __future__ import annotations

import enum
import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import fallthrough
from fallthrough import Document, RecordUpdate, filters
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


class Names(str, enum.Enum):  # noqa: UP042 (a StrEnum formats as its value: not the case under test)
    """Names an application keeps in an Enum; ``f"{Names.MATERIALS}"`` is ``'Names.MATERIALS'``."""

    MATERIALS = "materials"
    WIDTH = "width"


class LabelledId(uuid.UUID):
    """A UUID that prints as something else."""

    def __str__(self) -> str:
        return f"batch {super().__str__()}"


EACH_STORE_FIRST = pytest.mark.parametrize(
    "urls", [("sqlite://", "qdrant+memory://"), ("qdrant+memory://", "sqlite://")], ids=["sqlite", "qdrant"]
)
"""Reads are served by the first store: each case reads what one of the two wrote."""


@EACH_STORE_FIRST
def test_a_collection_named_by_a_str_enum_is_the_collection_of_its_characters(urls: tuple[str, str]) -> None:
    with fallthrough.connect(*urls) as store:
        store.upsert_documents(Names.MATERIALS, [Document("m1", "cement")])

        assert [document.id for document in store.documents("materials")] == ["m1"]
        assert [hit.id for hit in store.search(Names.MATERIALS, text="cement")] == ["m1"]


@EACH_STORE_FIRST
def test_metadata_keys_and_filter_fields_of_a_str_enum_are_their_characters(urls: tuple[str, str]) -> None:
    metadata = {Names.WIDTH: 3, "dims": {Names.WIDTH: 2}}
    with fallthrough.connect(*urls) as store:
        store.upsert_documents("docs", [Document("d", "x", metadata=metadata)])

        (stored,) = store.get_documents("docs", ["d"])
        assert stored.metadata == {"width": 3, "dims": {"width": 2}}
        assert all(type(key) is str for key in [*stored.metadata, *stored.metadata["dims"]])  # type: ignore[misc]
        wheres: list[dict[str, Any]] = [
            {"width": 3},
            {"dims.width": 2},
            {"dims.width": {"gt": 1}},
            {Names.WIDTH: {"exists": True}},
        ]
        for where in wheres:
            assert [hit.id for hit in store.search("docs", filter=where)] == ["d"], where


@pytest.mark.parametrize("field", [Names.WIDTH, CaseInsensitive("dims.width")], ids=["one key", "a path"])
def test_a_filter_field_reaches_the_stores_as_a_plain_str(field: str) -> None:
    # A backend may spell its own path from the field (a third party's f-string).
    parsed = filters.parse_filter({field: {"exists": True}})

    assert isinstance(parsed, filters.Exists) and type(parsed.field) is str and parsed.field == str.__str__(field)


def test_metadata_that_names_one_key_twice_by_its_characters_is_refused() -> None:
    with pytest.raises(InvalidInput, match="has the key 'k' twice"):
        Document("d", metadata={NeverEqual("k"): 1, "k": 2})


def test_a_result_or_batch_metadata_that_names_one_key_twice_by_its_characters_writes_nothing(
    store: fallthrough.Store,
) -> None:
    """JSON writes a key's characters: both values went out under one key, and the last was read back."""
    with pytest.raises(InvalidInput, match=r"metadata names a key twice"):
        store.create_batch(["a"], metadata={"x": 1, NeverEqual("x"): 2})
    assert list(store.batches()) == []
    batch = store.create_batch(["a"], metadata={NeverEqual("y"): 1})
    with pytest.raises(InvalidInput, match=r"result\['deep'\] names a key twice"):
        store.update(batch.id, "a", "completed", result={"deep": {NeverEqual("k"): 1, "k": 2}})
    record = store.get_record(batch.id, "a")
    assert record is not None and (record.status, record.result) == (fallthrough.Status.PENDING, None)
    assert store.get_batch(batch.id).metadata == {"y": 1}  # type: ignore[union-attr]


@EACH_STORE_FIRST
def test_a_batch_id_of_a_uuid_subclass_names_the_batch_of_its_value(urls: tuple[str, str]) -> None:
    other = uuid.uuid4()
    labelled = LabelledId(int=uuid.uuid4().int)
    with fallthrough.connect(*urls) as store:
        store.create_batch(["o"], batch_id=other)
        batch = store.create_batch(["m"], batch_id=labelled)

        assert type(batch.id) is uuid.UUID and batch.id == labelled
        assert [record.key for record in store.records(uuid.UUID(int=labelled.int))] == ["m"]
        assert [record.key for record in store.records(other)] == ["o"]
