"""Haystack filters translated to fallthrough's filter language.

Haystack writes ``{"field": "meta.x", "operator": ">", "value": 3}`` and
``{"operator": "AND", "conditions": [...]}``; fallthrough writes
``{"x": {"gt": 3}}`` and ``{"and": [...]}`` (docs/semantics.md, "Filters").
The two agree on most things, including the ones that are easy to get wrong:
``!=`` and ``not in`` hold for a missing field in both. Where they differ the
translation makes Haystack's answer:

- ``== None`` is ``{"x": {"exists": False}}`` and ``!= None`` is
  ``{"x": {"exists": True}}`` (fallthrough refuses a None operand on purpose:
  it asks for ``exists``);
- ``>``, ``>=``, ``<``, ``<=`` with None match nothing, as in Haystack;
- an ISO-8601 string operand means its instant, as a datetime operand does:
  it is compared with the key's datetime shadow (see
  :mod:`haystack_fallthrough.convert`) and with a datetime stored under the
  key itself, in time order; any other string in a range is a
  :class:`haystack.errors.FilterError`, as in Haystack;
- ``==``/``!=``/``in``/``not in`` with an ISO string also match a stored date
  of the same instant written differently (``...T20:17:40`` and
  ``...T20:17:40Z``, or a datetime);
- ``in`` and ``not in`` take a list only (Haystack's tests refuse a tuple);
  a None in the list means "missing or None".

Only ``meta.*`` fields are filterable: fallthrough filters a document's
metadata, not its id, text or vector.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from haystack.errors import FilterError

from .convert import DATETIME_SUFFIX, aware, parse_iso_date

Filter = dict[str, Any]

_RANGES = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_LOGIC = {"AND", "OR", "NOT"}
_ALWAYS_PRESENT = "__haystack_nothing"
# A filter no document matches and its negation, for Haystack's "nothing compares to None":
# a field is never both present and absent. The field name is arbitrary.
NOTHING: Filter = {"and": [{_ALWAYS_PRESENT: {"exists": True}}, {_ALWAYS_PRESENT: {"exists": False}}]}
EVERYTHING: Filter = {"not": NOTHING}


def translate(filters: Mapping[str, Any] | None) -> Filter | None:
    """The fallthrough filter for a Haystack one; None (no filter) for None or ``{}``.

    :raises haystack.errors.FilterError: a malformed filter, an unknown
        operator, a field outside ``meta``, or a value Haystack itself refuses
        (a non-date string or a list in a range, a non-list after ``in``).
    """
    if filters is None or (isinstance(filters, Mapping) and not filters):
        return None
    return _node(filters)


def _node(node: object) -> Filter:
    if not isinstance(node, Mapping):
        raise FilterError(f"a filter must be a dict, not {type(node).__name__}")
    if "field" in node:
        return _comparison(node)
    if "operator" not in node:
        raise FilterError("a logical filter needs 'operator' (AND, OR or NOT) and 'conditions'")
    if "conditions" not in node:
        raise FilterError(f"the {node['operator']!r} filter has no 'conditions'")
    operator, conditions = node["operator"], node["conditions"]
    if not isinstance(operator, str) or operator not in _LOGIC:
        raise FilterError(f"unknown logical operator {operator!r}; use AND, OR or NOT")
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, not {type(conditions).__name__}")
    parts = [_node(condition) for condition in conditions]
    if operator == "OR":
        return {"or": parts} if parts else NOTHING
    combined: Filter = {"and": parts} if parts else EVERYTHING
    # Haystack's NOT negates the AND of its conditions.
    return {"not": combined} if operator == "NOT" else combined


def _comparison(node: Mapping[str, Any]) -> Filter:
    for key in ("operator", "value"):
        if key not in node:
            raise FilterError(f"the comparison on {node['field']!r} has no {key!r}")
    field, operator, value = node["field"], node["operator"], node["value"]
    if not isinstance(operator, str):
        raise FilterError(f"an operator is a string, not {type(operator).__name__}: {operator!r}")
    if not isinstance(field, str) or not field.startswith("meta.") or len(field) == len("meta."):
        raise FilterError(
            f"cannot filter on {field!r}: fallthrough filters documents by their metadata, so a field is 'meta.<key>'"
        )
    path = field[len("meta.") :]
    if operator == "==":
        return _equal(path, value)
    if operator == "!=":
        return {"not": _equal(path, value)}
    if operator in _RANGES:
        return _range(path, _RANGES[operator], value)
    if operator in ("in", "not in"):
        if not isinstance(value, list):
            raise FilterError(f"{operator!r} takes a list, not {type(value).__name__}")
        found = _one_of(path, value)
        return found if operator == "in" else {"not": found}
    raise FilterError(f"unknown comparison operator {operator!r}")


def _equal(path: str, value: Any) -> Filter:
    if value is None:
        return {path: {"exists": False}}
    instant = _instant(value)
    if instant is None:
        return {path: {"eq": value}}
    parts: list[Filter] = [{path: {"eq": instant}}, {path + DATETIME_SUFFIX: {"eq": instant}}]
    if isinstance(value, str):
        parts.append({path: {"eq": value}})
    return {"or": parts}


def _one_of(path: str, values: list[Any]) -> Filter:
    present = [aware(value) if isinstance(value, datetime) else value for value in values if value is not None]
    with_instants = [(value, _instant(value)) for value in present]
    instants = [instant for _, instant in with_instants if instant is not None]
    parts: list[Filter] = []
    if present:
        # An ISO string also names its instant, which a field may hold as a datetime.
        of_strings = [instant for value, instant in with_instants if instant is not None and isinstance(value, str)]
        parts.append({path: {"in": present + of_strings}})
    if instants:
        parts.append({path + DATETIME_SUFFIX: {"in": instants}})
    if len(present) < len(values):
        parts.append({path: {"exists": False}})
    if not parts:
        return NOTHING
    return parts[0] if len(parts) == 1 else {"or": parts}


def _range(path: str, operator: str, value: Any) -> Filter:
    if value is None:
        return NOTHING  # Haystack: None compares to nothing with >, >=, <, <=
    if isinstance(value, list):
        raise FilterError(f"a list cannot be compared with {operator!r}")
    if isinstance(value, str | datetime):
        instant = _instant(value)
        if instant is None:
            raise FilterError(f"strings compare with {operator!r} only as ISO-8601 dates, and {value!r} is not one")
        # The instant may be stored as a datetime, or as an ISO string (its shadow).
        return {"or": [{path: {operator: instant}}, {path + DATETIME_SUFFIX: {operator: instant}}]}
    return {path: {operator: value}}


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return aware(value)
    return parse_iso_date(value)
