"""Document metadata as this backend stores it: JSON, with datetimes as tagged objects.

No metadata key starts with ``$`` (the core refuses it), so an object whose
one key is ``$dt`` never comes from a user, at any depth. That leaves it
free to tag what JSON has no type for: a timezone-aware :class:`~datetime.datetime` is stored
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
``"": {"f": [earliest, latest]}`` (a scalar datetime is both), and a dotted
path into nested metadata likewise (``"": {"dims.at": [...]}``: no key holds
a ``.``, so the path is a key of its own), over the datetimes that path
finds (:func:`fallthrough.filters.path_values`). "Some
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

from fallthrough.filters import path_values
from fallthrough.kit import dump_json, tag_datetimes
from fallthrough.types import to_micros

SUMMARY_KEY = ""
"""The key of ``metadata_jsonb`` that holds each datetime field's earliest and latest datetime."""


def has_datetime(value: object) -> bool:
    """Whether a metadata value is a datetime or holds one, at any depth."""
    if isinstance(value, list | tuple):
        return any(has_datetime(element) for element in value)
    if isinstance(value, Mapping):
        return any(has_datetime(item) for item in value.values())
    return isinstance(value, datetime)


def datetime_paths(metadata: Mapping[str, object]) -> dict[str, list[int]]:
    """Each (dotted) path that finds a datetime, with its earliest and latest, in micros."""
    summary: dict[str, list[int]] = {}
    if not any(has_datetime(value) for value in metadata.values()):
        return summary
    for path, values in path_values(metadata).items():
        moments = [to_micros(element) for element in values if isinstance(element, datetime)]
        if moments:
            summary[path] = [min(moments), max(moments)]
    return summary


def dump_for_filters(metadata: Mapping[str, object]) -> str:
    """The JSON text stored in ``metadata_jsonb``: :func:`dump`'s, and the datetime summary."""
    encoded: dict[str, Any] = {field: tag_datetimes(value) for field, value in metadata.items()}
    summary = datetime_paths(metadata)
    if summary:
        encoded[SUMMARY_KEY] = summary
    return dump_json(encoded)


__all__ = ["SUMMARY_KEY", "datetime_paths", "dump_for_filters", "has_datetime"]
