"""JSON values as the text SQLite stores: results, batch metadata, document metadata.

The text must load back to a value equal type for type (1, 1.0 and True
stay apart; floats round-trip by their repr) and must be what SQLite's
JSON1 functions read in filters: keys are written unescaped, so that a
JSON path label matches them byte for byte.
"""

from __future__ import annotations

import json

from fallthrough.types import JSON


def dump(value: JSON) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def load(text: str) -> JSON:
    return json.loads(text)


def dump_optional(value: JSON) -> str | None:
    """SQL NULL for None: a result of None and a JSON null both mean "no result"."""
    return None if value is None else dump(value)


def load_optional(text: str | None) -> JSON:
    return None if text is None else json.loads(text)


__all__ = ["dump", "dump_optional", "load", "load_optional"]
