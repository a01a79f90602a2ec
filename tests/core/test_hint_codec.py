"""The durable journal's codec keeps datetimes in document metadata, and refuses a damaged tag."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fallthrough import hint_codec
from fallthrough.errors import InvalidInput
from fallthrough.testing import strategies
from fallthrough.types import Document

KOLKATA = timezone(timedelta(hours=5, minutes=30))


def _round_trip(documents: tuple[Document, ...]) -> tuple[Document, ...]:
    arguments = {"collection": "c", "documents": documents, "version": 7}
    decoded = hint_codec.decode(
        "fallthrough_upsert_documents", hint_codec.encode("fallthrough_upsert_documents", arguments)
    )
    assert decoded["collection"] == "c" and decoded["version"] == 7
    result: tuple[Document, ...] = decoded["documents"]
    return result


def test_datetimes_in_metadata_come_back_as_the_same_utc_instant() -> None:
    moment = datetime(2024, 1, 1, 5, 30, 0, 1, tzinfo=KOLKATA)
    document = Document(
        "d",
        "text",
        metadata={
            "at": moment,
            "many": [None, moment, "2024-01-01T00:00:00+00:00", 0],
            "first": datetime(1, 1, 1, tzinfo=UTC),
            "last": datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            "dt": 5,
            "nested": {"at": moment, "deeper": [{"at": [moment, None]}, 1]},
        },
    )
    (back,) = _round_trip((document,))
    assert back == document
    assert back.metadata["at"] == datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert back.metadata["at"].tzinfo is UTC  # type: ignore[union-attr]
    assert type(back.metadata["many"][2]) is str  # type: ignore[index]
    assert back.metadata["dt"] == 5
    assert back.metadata["nested"]["deeper"][0]["at"][0] == moment  # type: ignore[call-overload,index]


@settings(max_examples=50, deadline=None)
@given(st.lists(strategies.documents(), max_size=3, unique_by=lambda document: document.id))
def test_any_documents_round_trip_exactly(documents: list[Document]) -> None:
    back = _round_trip(tuple(documents))
    assert back == tuple(documents)
    for original, copy in zip(documents, back, strict=True):
        for field, value in original.metadata.items():
            for was, now in zip(
                value if isinstance(value, list) else [value], _as_list(copy.metadata[field]), strict=True
            ):
                assert type(now) is type(was), (field, was, now)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(
    "damaged",
    [
        {"$dt": "5"},
        {"$dt": True},
        {"$dt": 5, "x": 1},
        {"$other": 5},
        {"inner": {"$dt": "5"}},
        {"$dt": 10**20},
        {"$dt": 1.5},
    ],
)
def test_a_damaged_datetime_tag_is_invalid_input(damaged: object) -> None:
    text = hint_codec.encode(
        "fallthrough_upsert_documents",
        {
            "collection": "c",
            "documents": (Document("d", metadata={"at": datetime(2024, 1, 1, tzinfo=UTC)}),),
            "version": 1,
        },
    )
    stored = json.loads(text)
    stored["arguments"]["documents"][0][3]["at"] = damaged
    with pytest.raises(InvalidInput):
        hint_codec.decode("fallthrough_upsert_documents", json.dumps(stored))
