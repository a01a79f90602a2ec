"""The filter tree compiled to an engine Filter, exactly where the engine can.

Metadata lives under the payload key ``meta`` (None and datetime elements left
out), its datetimes under ``meta_dt`` as RFC 3339 text, and the whole, for
an exact round trip, as JSON text beside them (:func:`fallthrough.kit.dump_metadata`). The
engine agrees with :func:`fallthrough.filters.matches` on much of the
language: a condition on a missing or null field fails, ``must_not`` of it
holds, a list field matches when some element does, a range skips strings
and bools, and a string never matches a number.

* **Datetimes** are exact: ``eq`` is ``RangeDateTime(gte=v, lte=v)`` on
  ``meta_dt.<field>`` (the same instant, to the microsecond), ranges with a
  datetime are ``RangeDateTime`` there, served by the datetime payload index
  each written ``meta_dt`` field gets (see :mod:`.documents`). A number range
  reads ``meta`` only, so it never holds for a datetime, and a string never
  equals one.
* **Presence** is exact: ``exists: True`` is "not ``is_empty``" on
  ``meta.<field>`` or on ``meta_dt.<field>``, ``exists: False`` is
  ``is_empty`` on both. The engine's ``is_empty`` holds for a missing key,
  null and ``[]`` but not for ``[null]`` (and ``is_null`` holds for
  ``[null, 1]``), which is why None elements are never stored under
  ``meta``. Documents written before that (no ``meta_layout``) may hold
  ``[null]`` there: in a collection that still has one, presence compiles to
  a superset (``is_null`` counted as possibly absent) checked again.

Where the engine is not exact, the compiled condition is a *superset* and
:func:`compile_filter` says it is inexact, so the caller keeps only the
points :func:`fallthrough.filters.matches` accepts on the exact metadata:

* Stored floats: qdrant-edge 0.9 parses payload floats with a last-digit
  error (``2.1617277352384918e17`` reads back as ``2.161727735238492e17``,
  about one value in seven), so a number is compared with its bounds
  widened by a relative ``1e-9``. A ``ne``/``nin`` on numbers cannot be
  widened into a superset, so it compiles to no condition.
* Bools: ``MatchValue(True)`` matches the integer 1 and not a stored
  ``true``; a comparison with a bool compiles to no condition.
* A top-level field name that is not a plain identifier (its JSON path
  would need quoting): no condition.

**Nested metadata.** A dotted path's values (as
:func:`fallthrough.filters.path_values` finds them: lists fanned out, lists
of objects walked through) are written apart, per path, under a
hex-encoded key that is always a plain identifier: ``meta_n.k<hex>`` (the
values that are not None, a datetime or an object), ``meta_ndt.k<hex>``
(datetimes) and ``meta_o.k<hex>`` (``[true]`` when some value is an object,
top-level fields included). A dotted filter is then the same condition as a
top-level one, on those keys, with the same exactness. The engine's own
nested keys (``a.b``, ``a[].b``) follow one shape each, an object or a list
of objects, where the filter language's path takes both, so they are not
used (the Qdrant plugin's page says more).

Under ``not``, a superset would become a subset, so an inexact clause there
drops the whole ``not`` to no condition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from fallthrough.filters import And, Comparison, Exists, FilterValue, Not, Or, field_path, path_values
from fallthrough.filters import Filter as FilterNode
from fallthrough.kit import rfc3339
from fallthrough.types import MetadataValue
from qdrant_edge import (
    FieldCondition,
    Filter,
    IsEmptyCondition,
    IsNullCondition,
    MatchValue,
    RangeDateTime,
    RangeFloat,
)

if TYPE_CHECKING:
    from qdrant_edge import ConditionType

_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
META = "meta"
META_DT = "meta_dt"
META_JSON = "meta_json"
META_LAYOUT = "meta_layout"
"""Payload key of a document's metadata layout: 2 since datetimes (None left out of ``meta``); absent before."""
LAYOUT = 2
META_NESTED = "meta_n"
"""Payload key of each dotted path's values (not None, datetimes or objects), by ``k<hex of the path>``."""
META_NESTED_DT = "meta_ndt"
"""Payload key of each dotted path's datetimes (RFC 3339 text), by ``k<hex of the path>``."""
META_OBJECTS = "meta_o"
"""Payload key of ``[true]`` for each path (top-level ones too) one of whose values is an object."""
_RELATIVE_MARGIN = 1e-9
_ABSOLUTE_MARGIN = 1e-300


@attrs.frozen
class Compiled:
    """``condition`` (None: every point) and whether it selects exactly what the tree does."""

    condition: ConditionType | None
    exact: bool


def is_plain(field: str) -> bool:
    """Whether the engine can address ``field`` as a path (no quoting needed)."""
    return _PLAIN_FIELD.fullmatch(field) is not None


def path_key(path: str) -> str:
    """The plain-identifier key of a (dotted) path: ``k`` and the hex of its UTF-8."""
    return "k" + path.encode("utf-8").hex()


def _targets(field: str) -> tuple[str, str] | None:
    """The payload keys of ``field``'s values and datetimes; None when the engine cannot address it."""
    if len(field_path(field)) > 1:
        key = path_key(field)
        return f"{META_NESTED}.{key}", f"{META_NESTED_DT}.{key}"
    if not is_plain(field):
        return None
    return f"{META}.{field}", f"{META_DT}.{field}"


def compile_filter(node: FilterNode, *, legacy: bool = False) -> Compiled:
    """The engine condition of ``node``.

    :param legacy: whether the collection may hold documents written before
        ``meta_layout`` 2, whose ``meta`` can hold ``[null]``.
    """
    if isinstance(node, And):
        parts = [compile_filter(clause, legacy=legacy) for clause in node.clauses]
        conditions = [part.condition for part in parts if part.condition is not None]
        return Compiled(Filter(must=conditions) if conditions else None, all(part.exact for part in parts))
    if isinstance(node, Or):
        parts = [compile_filter(clause, legacy=legacy) for clause in node.clauses]
        if any(part.condition is None for part in parts):
            return Compiled(None, False)
        return Compiled(
            Filter(should=[part.condition for part in parts if part.condition]), all(p.exact for p in parts)
        )
    if isinstance(node, Not):
        inner = compile_filter(node.clause, legacy=legacy)
        if not inner.exact or inner.condition is None:
            return Compiled(None, False)
        return Compiled(Filter(must_not=[inner.condition]), True)
    if isinstance(node, Exists):
        return _exists(node, legacy)
    return _comparison(node)


def _exists(node: Exists, legacy: bool) -> Compiled:
    targets = _targets(node.field)
    if targets is None:
        return Compiled(None, False)
    values, moments = targets
    objects = f"{META_OBJECTS}.{path_key(node.field)}"
    # Only a top-level field can be in a document written before layout 2.
    legacy = legacy and len(field_path(node.field)) == 1
    if node.present:
        present = Filter(
            should=[
                Filter(must_not=[IsEmptyCondition(values)]),
                Filter(must_not=[IsEmptyCondition(moments)]),
                Filter(must_not=[IsEmptyCondition(objects)]),
            ]
        )
        # An old document's [null] is not empty to the engine: a superset there.
        return Compiled(present, not legacy)
    if legacy:
        maybe_absent = Filter(should=[IsEmptyCondition(values), IsNullCondition(values)])
        return Compiled(Filter(must=[maybe_absent, IsEmptyCondition(moments), IsEmptyCondition(objects)]), False)
    return Compiled(Filter(must=[IsEmptyCondition(values), IsEmptyCondition(moments), IsEmptyCondition(objects)]), True)


def _comparison(node: Comparison) -> Compiled:
    targets = _targets(node.field)
    if targets is None:
        return Compiled(None, False)
    values, moments = targets
    if node.op in ("eq", "ne", "in", "nin"):
        options = node.value if isinstance(node.value, tuple) else (node.value,)
        equal = [_equals(values, moments, option) for option in options]
        if any(condition is None for condition, _ in equal):
            return Compiled(None, False)  # a bool
        conditions: list[ConditionType] = [condition for condition, _ in equal if condition is not None]
        exact = all(option_exact for _, option_exact in equal)
        positive: ConditionType = conditions[0] if len(conditions) == 1 else Filter(should=conditions)
        if node.op in ("ne", "nin"):
            return Compiled(Filter(must_not=[positive]), True) if exact else Compiled(None, False)
        return Compiled(positive, exact)
    if isinstance(node.value, datetime):
        moment = rfc3339(node.value)
        dates = {
            "lt": RangeDateTime(lt=moment),
            "lte": RangeDateTime(lte=moment),
            "gt": RangeDateTime(gt=moment),
            "gte": RangeDateTime(gte=moment),
        }
        return Compiled(FieldCondition(moments, range=dates[node.op]), True)
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    low, high = _widened(node.value)
    ranges = {
        "lt": RangeFloat(lt=high),
        "lte": RangeFloat(lte=high),
        "gt": RangeFloat(gt=low),
        "gte": RangeFloat(gte=low),
    }
    return Compiled(FieldCondition(values, range=ranges[node.op]), False)


def _widened(value: int | float) -> tuple[float, float]:
    """Bounds around ``value`` wide enough for the engine's float parsing error (see the module docstring)."""
    margin = abs(float(value)) * _RELATIVE_MARGIN + _ABSOLUTE_MARGIN
    return float(value) - margin, float(value) + margin


def _equals(values: str, moments: str, value: FilterValue) -> tuple[FieldCondition | None, bool]:
    """The condition that a field (keys ``values``, ``moments``) has an element equal to ``value``, and whether
    it is exact; None for a bool."""
    if isinstance(value, bool):
        return None, False
    if isinstance(value, str):
        return FieldCondition(values, match=MatchValue(value)), True
    if isinstance(value, datetime):
        moment = rfc3339(value)
        return FieldCondition(moments, range=RangeDateTime(gte=moment, lte=moment)), True
    # Numbers: a closed range, so an int and a float of one value are equal.
    low, high = _widened(value)
    return FieldCondition(values, range=RangeFloat(gte=low, lte=high)), False


# A document point keeps its metadata three ways (see :mod:`.documents`); the
# filters read the last two, which :func:`filter_views` builds:
# * ``meta_json``: JSON text, exact (:func:`fallthrough.kit.dump_metadata`).
#   JSON has no datetime, so a datetime value or list element is the object
#   ``{"$dt": "<RFC 3339 UTC>"}``. No metadata key starts with ``$`` (the
#   core refuses it), so no object of a user's, at any depth, reads as one.
# * ``meta``: what the engine filters on, every top-level field whose value
#   is not a datetime or an object, with None, datetime and object elements
#   left out of lists (a scalar None, datetime or object leaves the key out;
#   an object's presence is under ``meta_o``). So ``None``, ``[]`` and
#   ``[None]`` all read as empty to the engine's ``is_empty``, as the
#   reference says they are absent.
# * ``meta_dt``: each field's datetimes, as a list of RFC 3339 text, apart from
#   the strings under ``meta``, so a string that looks like a date never
#   equals a datetime nor falls in a datetime range.


def filter_views(metadata: Mapping[str, MetadataValue]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """``(meta, meta_dt)``: the payload objects the engine filters top-level fields on (see the comment above)."""
    plain: dict[str, Any] = {}
    datetimes: dict[str, list[str]] = {}
    for field, value in metadata.items():
        elements = value if isinstance(value, list) else [value]
        moments = [rfc3339(e) for e in elements if isinstance(e, datetime)]
        if moments:
            datetimes[field] = moments
        if isinstance(value, list):
            plain[field] = [e for e in value if e is not None and not isinstance(e, datetime | dict)]
        elif value is not None and not isinstance(value, datetime | dict):
            plain[field] = value
    return plain, datetimes


def nested_views(metadata: Mapping[str, MetadataValue]) -> dict[str, dict[str, list[Any]]]:
    """The ``meta_n``, ``meta_ndt`` and ``meta_o`` payload objects: each dotted path's values apart, by type."""
    views: dict[str, dict[str, list[Any]]] = {META_NESTED: {}, META_NESTED_DT: {}, META_OBJECTS: {}}
    for path, values in path_values(metadata).items():
        key = path_key(path)
        if any(isinstance(value, dict) for value in values):
            views[META_OBJECTS][key] = [True]
        if len(field_path(path)) == 1:
            continue  # under meta and meta_dt
        plain = [value for value in values if value is not None and not isinstance(value, datetime | dict)]
        moments = [rfc3339(value) for value in values if isinstance(value, datetime)]
        if plain:
            views[META_NESTED][key] = plain
        if moments:
            views[META_NESTED_DT][key] = moments
    return views


def datetime_paths(metadata: Mapping[str, MetadataValue]) -> list[str]:
    """The payload keys ``metadata`` writes a datetime to, each of which wants a datetime index."""
    top = [f"{META_DT}.{field}" for field in filter_views(metadata)[1] if is_plain(field)]
    return top + [f"{META_NESTED_DT}.{key}" for key in nested_views(metadata)[META_NESTED_DT]]


__all__ = [
    "LAYOUT",
    "META",
    "META_DT",
    "META_JSON",
    "META_LAYOUT",
    "META_NESTED",
    "META_NESTED_DT",
    "META_OBJECTS",
    "Compiled",
    "compile_filter",
    "datetime_paths",
    "filter_views",
    "is_plain",
    "nested_views",
    "path_key",
]
