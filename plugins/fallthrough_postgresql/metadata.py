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

``metadata_jsonb`` (never read back) holds one key more where some field
holds a datetime: the empty key, which no field can be (a field has 1 to
256 characters), maps each such field to its earliest and latest datetime,
``"": {"f": [earliest, latest]}`` (a scalar datetime is both). "Some
element is before t" is "the earliest is before t", and "some element is
after t" is "the latest is after t", so a datetime range on ``f`` is one
``bigint`` comparison of ``(metadata_jsonb -> '' -> 'f' ->> 0)::bigint``
(or ``->> 1``), built-in operators only, which a btree index on that
expression serves (see :func:`.filters.datetime_expression`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fallthrough.kit import dump_json, tag_datetimes
from fallthrough.types import to_micros

SUMMARY_KEY = ""
"""The key of ``metadata_jsonb`` that holds each datetime field's earliest and latest datetime."""


def has_datetime(value: object) -> bool:
    """Whether a metadata value is a datetime or a list holding one."""
    if isinstance(value, list | tuple):
        return any(isinstance(element, datetime) for element in value)
    return isinstance(value, datetime)


def dump_for_filters(metadata: Mapping[str, object]) -> str:
    """The JSON text stored in ``metadata_jsonb``: :func:`dump`'s, and the datetime summary."""
    encoded: dict[str, Any] = {field: tag_datetimes(value) for field, value in metadata.items()}
    summary = {}
    for field, value in metadata.items():
        moments = [
            to_micros(element)
            for element in (value if isinstance(value, list) else [value])
            if isinstance(element, datetime)
        ]
        if moments:
            summary[field] = [min(moments), max(moments)]
    if summary:
        encoded[SUMMARY_KEY] = summary
    return dump_json(encoded)


__all__ = ["SUMMARY_KEY", "dump_for_filters", "has_datetime"]
