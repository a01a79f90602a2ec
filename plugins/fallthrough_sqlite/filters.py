"""Compiling a :mod:`fallthrough.filters` tree into a SQL condition on the metadata JSON.

The semantics are those of :func:`fallthrough.filters.matches`, and every
rule there has its counterpart here:

* Each comparison is ``EXISTS (SELECT 1 FROM json_each(metadata, '$."field"')
  AS j WHERE <typed predicate on j.type and j.value>)``. ``json_each`` on a
  list yields its elements, on a scalar that one value, and on a missing
  field nothing, so "holds for some element" covers scalars and lists alike
  and a missing field fails.
* The predicate checks ``j.type`` before ``j.value``, which gives the typed
  equality: a JSON ``true`` is never the number 1, a string never equals a
  number, and ``integer`` and ``real`` compare numerically with each other.
  A JSON null matches no predicate, as None fails every comparison.
* ``ne`` and ``nin`` are ``NOT EXISTS`` of ``eq`` and ``in``: no element is
  equal / in the list (so a missing field passes), and ``not`` is SQL NOT.
  EXISTS is never NULL, so NOT never meets SQL's three-valued logic.

Values are bound as parameters. The JSON path is built from the field
name, which the core validated to hold no quote, backslash or control
character, and is bound as a parameter too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal_column, not_, or_, select

from fallthrough.filters import And, Comparison, Filter, FilterValue, Not, Or

_NUMBER_TYPES = ("integer", "real")


def compile_filter(node: Filter, metadata: ColumnElement[Any]) -> ColumnElement[bool]:
    """The SQL condition that holds exactly when ``matches(node, <row's metadata>)``."""
    if isinstance(node, And):
        return and_(*(compile_filter(clause, metadata) for clause in node.clauses))
    if isinstance(node, Or):
        return or_(*(compile_filter(clause, metadata) for clause in node.clauses))
    if isinstance(node, Not):
        return not_(compile_filter(node.clause, metadata))
    return _comparison(node, metadata)


def _comparison(node: Comparison, metadata: ColumnElement[Any]) -> ColumnElement[bool]:
    if node.op in ("ne", "nin"):
        positive = Comparison(node.field, "eq" if node.op == "ne" else "in", node.value)
        return not_(_comparison(positive, metadata))
    element = func.json_each(metadata, f'$."{node.field}"').table_valued("type", "value").alias()
    condition = _element_condition(node, element.c.type, element.c.value)
    return exists(select(literal_column("1")).select_from(element).where(condition))


def _element_condition(
    node: Comparison, json_type: ColumnElement[Any], value: ColumnElement[Any]
) -> ColumnElement[bool]:
    if node.op == "eq":
        assert not isinstance(node.value, tuple)
        return _equals_any([node.value], json_type, value)
    if node.op == "in":
        assert isinstance(node.value, tuple)
        return _equals_any(node.value, json_type, value)
    # Range operators: the core guarantees a number operand; only numbers compare.
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    is_number = json_type.in_(_NUMBER_TYPES)
    if node.op == "lt":
        return and_(is_number, value < node.value)
    if node.op == "lte":
        return and_(is_number, value <= node.value)
    if node.op == "gt":
        return and_(is_number, value > node.value)
    if node.op == "gte":
        return and_(is_number, value >= node.value)
    raise AssertionError(f"unknown filter operator {node.op!r}")


def _equals_any(
    options: Sequence[FilterValue], json_type: ColumnElement[Any], value: ColumnElement[Any]
) -> ColumnElement[bool]:
    """An element equal, by typed equality, to one of ``options``."""
    # bool first: it is an int to Python, but only ever equals a JSON boolean.
    bools = {option for option in options if isinstance(option, bool)}
    strings = [option for option in options if isinstance(option, str)]
    numbers = [option for option in options if not isinstance(option, bool | str)]
    alternatives: list[ColumnElement[bool]] = []
    if bools:
        alternatives.append(json_type.in_(sorted("true" if option else "false" for option in bools)))
    if strings:
        alternatives.append(and_(json_type == "text", value.in_(strings)))
    if numbers:
        alternatives.append(and_(json_type.in_(_NUMBER_TYPES), value.in_(numbers)))
    return or_(false(), *alternatives)


__all__ = ["compile_filter"]
