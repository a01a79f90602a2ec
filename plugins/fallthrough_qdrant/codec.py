"""Metadata as JSON text, datetimes included, and the RFC 3339 spelling Qdrant's datetime ranges read.

A document's metadata is kept in its payload as JSON text, so that it reads
back exactly as written (``1.0`` stays a float, key order is kept). JSON has
no datetime, so a datetime value or list element is written as the object
``{"$dt": "<RFC 3339 UTC>"}``. Metadata is flat (a value is a scalar or a
list of scalars), so no object at that level can come from a user: every
object found there is a datetime. (Nested metadata, if it comes, must escape
or refuse a user object of that one key.)

The RFC 3339 spelling is always ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: four-digit
years (``0001`` to ``9999``), six fraction digits, UTC. It is exact to the
microsecond, what a datetime holds, and Qdrant parses it both in its
datetime index (microseconds since the epoch, as an i64) and in an
unindexed range check; local mode parses it with ``strptime``.
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
    moment = value.astimezone(UTC).replace(tzinfo=None)
    # isoformat pads the year to four digits; strftime("%Y") does not on every libc.
    return moment.isoformat(timespec="microseconds") + "Z"


def from_rfc3339(text: str) -> datetime:
    """The UTC datetime :func:`rfc3339` spelt."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"stored datetime {text!r} has no offset")
    return parsed.astimezone(UTC)


def _encode_element(element: Scalar) -> Any:
    return {DATETIME_TAG: rfc3339(element)} if isinstance(element, datetime) else element


def _decode_element(element: Any) -> Scalar:
    if isinstance(element, dict):
        return from_rfc3339(element[DATETIME_TAG])
    scalar: Scalar = element
    return scalar


def metadata_json(metadata: Mapping[str, Scalar | list[Scalar]]) -> str:
    """The JSON text of ``metadata``, datetimes tagged."""
    encoded = {
        field: [_encode_element(e) for e in value] if isinstance(value, list) else _encode_element(value)
        for field, value in metadata.items()
    }
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def metadata_from_json(text: str) -> dict[str, Scalar | list[Scalar]]:
    """The metadata :func:`metadata_json` wrote (or an older version, which had no datetimes)."""
    loaded: dict[str, Any] = json.loads(text)
    return {
        field: [_decode_element(e) for e in value] if isinstance(value, list) else _decode_element(value)
        for field, value in loaded.items()
    }


__all__ = ["DATETIME_TAG", "from_rfc3339", "metadata_from_json", "metadata_json", "rfc3339"]
