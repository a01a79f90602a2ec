"""Document metadata as this backend stores it: JSON, with datetimes as tagged objects.

Metadata is flat (a dict of scalars and lists of scalars), so no value a
user writes is ever a JSON object. That leaves objects free to tag what
JSON has no type for: a timezone-aware :class:`~datetime.datetime` is stored
as ``{"$dt": <microseconds since the Unix epoch, UTC>}``, in both metadata
columns (``metadata json``, as written, and ``metadata_jsonb``, for
filters), as a value or as a list element. An integer keeps every instant
of years 1 to 9999 exact to the microsecond (``bigint`` holds them all),
sorts in time order, and is never equal to a string or a number in jsonb:
containment and equality compare the object, and a SQL/JSON path range on
a number never holds for an object. Read back, every tagged object becomes
the UTC datetime it encodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fallthrough.types import JSON, from_micros, to_micros

from . import json_text

DATETIME_KEY = "$dt"
"""The one key of the object that stands for a datetime."""


def encode_value(value: object) -> JSON:
    """A metadata value (or filter operand) as stored: a datetime becomes its tagged object."""
    if isinstance(value, datetime):
        return {DATETIME_KEY: to_micros(value)}
    if isinstance(value, list | tuple):
        return [encode_value(element) for element in value]
    return value


def decode_value(value: JSON) -> Any:
    """A stored value as written: a tagged object becomes its UTC datetime."""
    if isinstance(value, dict):
        return from_micros(int(value[DATETIME_KEY]))
    if isinstance(value, list):
        return [decode_value(element) for element in value]
    return value


def has_datetime(value: object) -> bool:
    """Whether a metadata value is a datetime or a list holding one."""
    if isinstance(value, list | tuple):
        return any(isinstance(element, datetime) for element in value)
    return isinstance(value, datetime)


def dump(metadata: Mapping[str, object]) -> str:
    """The JSON text stored for ``metadata``."""
    return json_text.dump({field: encode_value(value) for field, value in metadata.items()})


def load(text: str) -> dict[str, Any]:
    """The metadata whose JSON text is ``text``."""
    loaded = json_text.load(text)
    assert isinstance(loaded, dict)
    return {field: decode_value(value) for field, value in loaded.items()}


__all__ = ["DATETIME_KEY", "decode_value", "dump", "encode_value", "has_datetime", "load"]
