"""JSON values as the text SQLite stores: results, batch metadata, document metadata.

The text must load back to a value equal type for type (1, 1.0 and True
stay apart; floats round-trip by their repr) and must be what SQLite's
JSON1 functions read in filters: keys are written unescaped, so that a
JSON path label matches them byte for byte.

Document metadata may also hold datetimes (always aware, in UTC: the core
normalises them). A datetime is stored as the JSON object
``{"$dt": <microseconds since the Unix epoch>}``, an integer that sorts in
time order. Document metadata is flat (str, number, bool, null, or a list
of those), so no value a user gives is ever an object, and an object in a
stored metadata value is always a datetime: the encoding cannot collide
with user data, a datetime never reads back as a string or a number, and
filters tell the two apart by JSON type. :func:`dump_metadata` and
:func:`load_metadata` are the only places that know the encoding; the
filters (:mod:`.filters`) and the datetime index (:mod:`.schema`) read it
through JSON1.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fallthrough.types import JSON, Scalar, from_micros, to_micros

DATETIME_KEY = "$dt"
"""The one key of the object that stands for a datetime in document metadata."""

DATETIME_MARK = '{"$dt":'
"""How every encoded datetime starts in the stored text; no other stored metadata text holds it.

A str value holding it is written with its quotes escaped (``\\"``) and a field
name cannot hold a quote, so the triggers of :mod:`.schema` can skip, with one
``instr``, the metadata that holds no datetime.
"""


def dump(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load(text: str) -> JSON:
    return json.loads(text)


def dump_optional(value: JSON) -> str | None:
    """SQL NULL for None: a result of None and a JSON null both mean "no result"."""
    return None if value is None else dump(value)


def load_optional(text: str | None) -> JSON:
    return None if text is None else json.loads(text)


def _encode_datetime(value: object) -> object:
    if isinstance(value, datetime):
        return {DATETIME_KEY: to_micros(value)}
    raise TypeError(f"{type(value).__name__} is not a metadata value")


def dump_metadata(metadata: dict[str, Scalar | list[Scalar]]) -> str:
    """Document metadata as stored text, datetimes as ``{"$dt": micros}``."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_encode_datetime)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return from_micros(value[DATETIME_KEY])
    if isinstance(value, list):
        return [from_micros(item[DATETIME_KEY]) if isinstance(item, dict) else item for item in value]
    return value


def load_metadata(text: str) -> dict[str, Scalar | list[Scalar]]:
    """What :func:`dump_metadata` wrote: datetimes back as aware UTC datetimes."""
    stored: dict[str, Any] = json.loads(text)
    if DATETIME_MARK not in text:
        return stored
    return {field: _decode(value) for field, value in stored.items()}


__all__ = [
    "DATETIME_KEY",
    "DATETIME_MARK",
    "dump",
    "dump_metadata",
    "dump_optional",
    "load",
    "load_metadata",
    "load_optional",
]
