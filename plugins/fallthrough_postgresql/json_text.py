"""JSON values as the text stored in ``json`` columns.

``json`` keeps the text it is given, so a value reads back exactly as it
was written: ``1.0`` stays a float, ``1e300`` is not widened to an
integer, and an object keeps its key order, none of which ``jsonb`` does.
"""

from __future__ import annotations

import json

from fallthrough.types import JSON

# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump(value: JSON) -> str:
    return _ENCODER.encode(value)


def dump_optional(value: JSON) -> str | None:
    """None (no result) is SQL NULL, not the JSON text ``null``."""
    return None if value is None else dump(value)


def load(text: str) -> JSON:
    loaded: JSON = json.loads(text)
    return loaded


def load_optional(text: str | None) -> JSON:
    return None if text is None else load(text)


__all__ = ["dump", "dump_optional", "load", "load_optional"]
