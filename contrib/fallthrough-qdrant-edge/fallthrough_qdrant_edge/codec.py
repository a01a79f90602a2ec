"""Metadata as the engine filters it, and as JSON text that reads back exactly; datetimes in both.

A document point keeps its metadata three ways (see :mod:`.documents`):

* ``meta_json``: JSON text, exact. JSON has no datetime, so a datetime value
  or list element is the object ``{"$dt": "<RFC 3339 UTC>"}``. Metadata is
  flat (a value is a scalar or a list of scalars), so no object at that level
  can come from a user: every object there is a datetime.
* ``meta``: what the engine filters on, every field whose value is not a
  datetime, with None elements and datetime elements left out of lists (a
  scalar None or datetime leaves the key out). So ``None``, ``[]`` and
  ``[None]`` all read as empty to the engine's ``is_empty``, as the
  reference says they are absent.
* ``meta_dt``: each field's datetimes, as a list of RFC 3339 text, apart from
  the strings under ``meta``, so a string that looks like a date never
  equals a datetime nor falls in a datetime range.

The RFC 3339 spelling is always ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (four-digit
year, six fraction digits, UTC): exact to the microsecond, and parsed by the
engine's datetime index and range check alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fallthrough.types import Scalar

DATETIME_TAG = "$dt"


def rfc3339(value: datetime) -> str:
    """``value`` (aware) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    # isoformat pads the year to four digits; strftime("%Y") does not on every libc.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_rfc3339(text: str) -> datetime:
    """The UTC datetime :func:`rfc3339` spelt."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"stored datetime {text!r} has no offset")
    return parsed.astimezone(UTC)


def metadata_json(metadata: Mapping[str, Scalar | list[Scalar]]) -> str:
    """The JSON text of ``metadata``, datetimes tagged."""
    encoded = {
        field: [_tagged(e) for e in value] if isinstance(value, list) else _tagged(value)
        for field, value in metadata.items()
    }
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def metadata_from_json(text: str) -> dict[str, Scalar | list[Scalar]]:
    """The metadata :func:`metadata_json` wrote (or an older version, which had no datetimes)."""
    loaded: dict[str, Any] = json.loads(text)
    return {
        field: [_untagged(e) for e in value] if isinstance(value, list) else _untagged(value)
        for field, value in loaded.items()
    }


def filter_views(metadata: Mapping[str, Scalar | list[Scalar]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``(meta, meta_dt)``: the payload objects the engine filters on (see the module docstring)."""
    plain: dict[str, Any] = {}
    datetimes: dict[str, list[str]] = {}
    for field, value in metadata.items():
        elements = value if isinstance(value, list) else [value]
        moments = [rfc3339(e) for e in elements if isinstance(e, datetime)]
        if moments:
            datetimes[field] = moments
        if isinstance(value, list):
            plain[field] = [e for e in value if e is not None and not isinstance(e, datetime)]
        elif value is not None and not isinstance(value, datetime):
            plain[field] = value
    return plain, datetimes


def _tagged(element: Scalar) -> Any:
    return {DATETIME_TAG: rfc3339(element)} if isinstance(element, datetime) else element


def _untagged(element: Any) -> Scalar:
    if isinstance(element, dict):
        return from_rfc3339(element[DATETIME_TAG])
    scalar: Scalar = element
    return scalar


__all__ = ["DATETIME_TAG", "filter_views", "from_rfc3339", "metadata_from_json", "metadata_json", "rfc3339"]
