"""Fixed edge cases of presence and datetimes, for a backend's own tests of how it stores and indexes them.

The conformance suite draws such values at random; these are the corners a
backend's encoding is most likely to get wrong, written out once so every
backend's tests check the same ones: missing, None and empty-list fields, a
date-like string beside a real datetime, one microsecond apart, one instant
in two time zones, the first and last representable instants, an epoch
number, and a field name with characters a path syntax may treat specially;
and the same corners at depth: datetimes, None and empty lists inside
objects and lists of objects, a path that walks through a scalar, an empty
object (present), and two conditions on one list met by different elements.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ..kit import rfc3339
from ..types import Document


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


FIRST = utc(1, 1, 1)
LAST = utc(9999, 12, 31, 23, 59, 59, 999999)
NEW_YEAR = utc(2024, 1, 1)
MOSCOW = timezone(timedelta(hours=3))


ODD_KEY = "odd key-0:(x)/#é"
"""A metadata key with characters a store's path syntax may treat specially (``.``, ``[``, ``]`` and a leading
``$`` are refused by the core)."""


def presence_and_datetime_documents(odd_key: str = ODD_KEY) -> tuple[Document, ...]:
    """The documents; ``odd_key`` names a field with path-like characters (as many as the store's syntax allows)."""
    return (
        Document("missing", "x"),
        Document("none", "x", metadata={"f": None}),
        Document("empty", "x", metadata={"f": []}),
        Document("only-nones", "x", metadata={"f": [None, None]}),
        Document("none-and-one", "x", metadata={"f": [None, 1]}),
        Document("iso-string", "x", metadata={"f": rfc3339(NEW_YEAR)}),
        Document("new-year", "x", metadata={"f": NEW_YEAR}),
        Document("microsecond-later", "x", metadata={"f": NEW_YEAR + timedelta(microseconds=1)}),
        # 03:00 in Moscow is midnight UTC: the same instant as new-year.
        Document("moscow", "x", metadata={"f": [datetime(2024, 1, 1, 3, tzinfo=MOSCOW), "a"]}),
        Document("extremes", "x", metadata={"f": [FIRST, None, LAST], odd_key: NEW_YEAR}),
        Document("epoch-number", "x", metadata={"f": NEW_YEAR.timestamp()}),
        Document("false", "x", metadata={"f": False}),
        Document("nested-datetime", "x", metadata={"n": {"at": NEW_YEAR, "w": 2}}),
        Document("nested-none", "x", metadata={"n": {"at": None, "w": [None]}}),
        Document("nested-empty-object", "x", metadata={"n": {}}),
        Document(
            "list-of-objects",
            "x",
            metadata={"n": [{"at": [FIRST, None], "w": 1}, {"at": LAST, "w": 5, odd_key: {"deep": [NEW_YEAR]}}, 7]},
        ),
        Document("scalar-on-the-way", "x", metadata={"n": [3, "at"], "m": {"n": {"at": NEW_YEAR}}}),
        Document("iso-string-nested", "x", metadata={"n": [{"at": rfc3339(NEW_YEAR), "w": "5"}, {"w": True}]}),
    )


def presence_and_datetime_filters(odd_key: str = ODD_KEY) -> tuple[dict[str, Any], ...]:
    """Filters over :func:`presence_and_datetime_documents`; the reference model says what each selects."""
    return (
        {"f": {"exists": True}},
        {"f": {"exists": False}},
        {"not": {"f": {"exists": True}}},
        {"f": {"exists": True, "ne": 1}},
        {"or": [{"f": {"exists": False}}, {"f": False}]},
        {odd_key: {"exists": True}},
        {"nothing": {"exists": False}},
        {"f": NEW_YEAR},
        {"f": {"ne": NEW_YEAR}},
        {"f": {"gt": NEW_YEAR}},
        {"f": {"gte": NEW_YEAR}},
        {"f": {"lt": NEW_YEAR}},
        {"f": {"lte": FIRST}},
        {"f": {"gte": LAST}},
        {"f": {"gt": FIRST, "lt": LAST}},
        {"f": {"gt": datetime(2024, 1, 1, 2, 59, 59, tzinfo=MOSCOW)}},
        {"f": {"in": [LAST, "a", 1]}},
        {"f": {"nin": [NEW_YEAR, "a"]}},
        {"f": {"gt": 0}},
        {"f": rfc3339(NEW_YEAR)},
        {"f": NEW_YEAR.timestamp()},
        {odd_key: {"lte": NEW_YEAR}},
        {"n": {"exists": True}},
        {"n": {"exists": False}},
        {"n": {"ne": 7}},
        {"n": 7},
        {"n.at": {"exists": True}},
        {"n.at": {"exists": False}},
        {"n.w": {"exists": False}},
        {"n.at": NEW_YEAR},
        {"n.at": {"gte": NEW_YEAR}},
        {"n.at": {"lt": NEW_YEAR}},
        {"n.at": {"ne": LAST}},
        {"n.at": rfc3339(NEW_YEAR)},
        {"n.w": {"gt": 4, "lt": 2}},
        {"n.w": {"in": [5, "5", True]}},
        {"n.w": {"nin": [1, 2]}},
        {"n.w": 1, "n.at": LAST},
        {"n.at.x": {"exists": False}},
        {"m.n.at": {"lte": NEW_YEAR}},
        {f"n.{odd_key}.deep": NEW_YEAR},
        {f"n.{odd_key}": {"exists": True}},
        {"not": {"n.w": {"gte": 5}}},
    )
