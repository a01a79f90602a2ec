"""The filter tree compiled to an engine Filter, exactly where the engine can.

Metadata lives under the payload key ``meta`` (and, for an exact round
trip, as JSON text beside it). The engine agrees with
:func:`fallthrough.filters.matches` on much of the language: a condition on
a missing or null field fails, ``must_not`` of it holds, a list field
matches when some element does, a range skips strings and bools, and a
string never matches a number.

Where it does not, the compiled condition is a *superset* and
:func:`compile_filter` says it is inexact, so the caller keeps only the
points :func:`fallthrough.filters.matches` accepts on the exact metadata:

* Stored floats: qdrant-edge 0.9 parses payload floats with a last-digit
  error (``2.1617277352384918e17`` reads back as ``2.161727735238492e17``,
  about one value in seven), so a number is compared with its bounds
  widened by a relative ``1e-9``. A ``ne``/``nin`` on numbers cannot be
  widened into a superset, so it compiles to no condition.
* Bools: ``MatchValue(True)`` matches the integer 1 and not a stored
  ``true``; a comparison with a bool compiles to no condition.
* A field name that is not a plain identifier (its JSON path would need
  quoting): no condition.

Under ``not``, a superset would become a subset, so an inexact clause there
drops the whole ``not`` to no condition.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs
from fallthrough.filters import And, Comparison, FilterValue, Not, Or
from fallthrough.filters import Filter as FilterNode
from qdrant_edge import FieldCondition, Filter, MatchValue, RangeFloat

if TYPE_CHECKING:
    from qdrant_edge import ConditionType

_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
META = "meta"
META_JSON = "meta_json"
_RELATIVE_MARGIN = 1e-9
_ABSOLUTE_MARGIN = 1e-300


@attrs.frozen
class Compiled:
    """``condition`` (None: every point) and whether it selects exactly what the tree does."""

    condition: ConditionType | None
    exact: bool


def compile_filter(node: FilterNode) -> Compiled:
    if isinstance(node, And):
        parts = [compile_filter(clause) for clause in node.clauses]
        conditions = [part.condition for part in parts if part.condition is not None]
        return Compiled(Filter(must=conditions) if conditions else None, all(part.exact for part in parts))
    if isinstance(node, Or):
        parts = [compile_filter(clause) for clause in node.clauses]
        if any(part.condition is None for part in parts):
            return Compiled(None, False)
        return Compiled(
            Filter(should=[part.condition for part in parts if part.condition]), all(p.exact for p in parts)
        )
    if isinstance(node, Not):
        inner = compile_filter(node.clause)
        if not inner.exact or inner.condition is None:
            return Compiled(None, False)
        return Compiled(Filter(must_not=[inner.condition]), True)
    return _comparison(node)


def _comparison(node: Comparison) -> Compiled:
    if not _PLAIN_FIELD.fullmatch(node.field):
        return Compiled(None, False)
    path = f"{META}.{node.field}"
    if node.op in ("eq", "ne", "in", "nin"):
        options = node.value if isinstance(node.value, tuple) else (node.value,)
        if any(isinstance(option, bool) for option in options):
            return Compiled(None, False)
        numeric = any(not isinstance(option, str) for option in options)
        equal = [_equals(path, option) for option in options]
        positive: ConditionType = equal[0] if len(equal) == 1 else Filter(should=list(equal))
        if node.op in ("ne", "nin"):
            return Compiled(None, False) if numeric else Compiled(Filter(must_not=[positive]), True)
        return Compiled(positive, not numeric)
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    low, high = _widened(node.value)
    ranges = {
        "lt": RangeFloat(lt=high),
        "lte": RangeFloat(lte=high),
        "gt": RangeFloat(gt=low),
        "gte": RangeFloat(gte=low),
    }
    return Compiled(FieldCondition(path, range=ranges[node.op]), False)


def _widened(value: int | float) -> tuple[float, float]:
    """Bounds around ``value`` wide enough for the engine's float parsing error (see the module docstring)."""
    margin = abs(float(value)) * _RELATIVE_MARGIN + _ABSOLUTE_MARGIN
    return float(value) - margin, float(value) + margin


def _equals(path: str, value: FilterValue) -> FieldCondition:
    if isinstance(value, str):
        return FieldCondition(path, match=MatchValue(value))
    # Numbers: a closed range, so an int and a float of one value are equal.
    low, high = _widened(value)
    return FieldCondition(path, range=RangeFloat(gte=low, lte=high))


__all__ = ["META", "META_JSON", "Compiled", "compile_filter"]
