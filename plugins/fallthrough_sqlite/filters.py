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
* A datetime is stored as the object ``{"$dt": micros}`` (see
  :func:`fallthrough.kit.dump_metadata`). ``json_each`` on a field holding one yields the
  object's member, keyed by the text ``"$dt"``, where a scalar's row has a
  NULL key and a list element's an integer one: the predicate above also
  requires a non-text key, so a datetime never equals, nor is ranged as, a
  number. A datetime element of a list has ``j.type = 'object'``, which no
  such predicate accepts.
* Datetime operands (``eq``, ``in`` and the ranges) are answered by the
  ``document_datetimes`` table (:mod:`.schema`), which triggers keep equal to
  the datetimes of every live document: ``row_id IN (SELECT row_id FROM
  document_datetimes WHERE collection = ? AND field = ? AND micros > ?)``.
  That subquery is a range scan of the ``document_datetimes_by_value`` index
  on ``(collection, field, micros, row_id)``, and is not correlated, so
  SQLite runs it once per query. Only datetimes are in that table, so a
  datetime range holds only for datetimes, in time order. Each operator is
  its own range (on a list, ``gte`` and ``lt`` may hold for different
  elements). The outer query still walks the collection's rows in id order,
  which serves ``ORDER BY id LIMIT``, probing the subquery's row ids: the
  index saves the per-row JSON parse of the datetime comparison, not the walk.
* ``exists`` is ``EXISTS (SELECT 1 FROM json_each(...) AS j WHERE j.type !=
  'null')``: some element, or the scalar, or a datetime's member, is not
  null. A missing key, null, ``[]`` and ``[null]`` yield no such row.
* ``ne`` and ``nin`` are ``NOT EXISTS`` of ``eq`` and ``in``: no element is
  equal / in the list (so a missing field passes), and ``not`` is SQL NOT.
  EXISTS and IN over non-null row ids are never NULL, so NOT never meets
  SQL's three-valued logic.

Values are bound as parameters. The JSON path is built from the field
name, which the core validated to hold no quote, backslash or control
character, and is bound as a parameter too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import ColumnElement, and_, exists, false, func, literal_column, not_, or_, select

from fallthrough.filters import And, Comparison, Exists, Filter, FilterValue, Not, Or
from fallthrough.types import to_micros

from .schema import document_datetimes

_NUMBER_TYPES = ("integer", "real")


@attrs.frozen
class _Target:
    """What a filter is evaluated against: the documents' metadata and row id, in one collection."""

    collection: str
    metadata: ColumnElement[Any]
    row_id: ColumnElement[Any]


def compile_filter(
    node: Filter, metadata: ColumnElement[Any], row_id: ColumnElement[Any], collection: str
) -> ColumnElement[bool]:
    """The SQL condition that holds exactly when ``matches(node, <row's metadata>)``.

    ``metadata`` and ``row_id`` are the documents table's columns, and
    ``collection`` the collection searched, for the datetime index.
    """
    return _compile(node, _Target(collection, metadata, row_id))


def _compile(node: Filter, target: _Target) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_compile(clause, target) for clause in node.clauses))
    if isinstance(node, Or):
        return or_(*(_compile(clause, target) for clause in node.clauses))
    if isinstance(node, Not):
        return not_(_compile(node.clause, target))
    if isinstance(node, Exists):
        element = _elements(node.field, target)
        present = exists(select(literal_column("1")).select_from(element).where(element.c.type != "null"))
        return present if node.present else not_(present)
    return _comparison(node, target)


def _elements(field: str, target: _Target) -> Any:
    return func.json_each(target.metadata, f'$."{field}"').table_valued("key", "type", "value").alias()


def _comparison(node: Comparison, target: _Target) -> ColumnElement[bool]:
    if node.op in ("ne", "nin"):
        positive = Comparison(node.field, "eq" if node.op == "ne" else "in", node.value)
        return not_(_comparison(positive, target))
    if node.op in ("eq", "in"):
        options = node.value if isinstance(node.value, tuple) else (node.value,)
        moments = [to_micros(option) for option in options if isinstance(option, datetime)]
        others = [option for option in options if not isinstance(option, datetime)]
        alternatives: list[ColumnElement[bool]] = []
        if others:
            alternatives.append(_some_element(node.field, target, lambda kind, value: _equals_any(others, kind, value)))
        if moments:
            alternatives.append(_datetime_rows(node.field, target, document_datetimes.c.micros.in_(moments)))
        return or_(false(), *alternatives)
    # Range operators: the core guarantees a number or a datetime operand.
    if isinstance(node.value, datetime):
        return _datetime_rows(node.field, target, _ordered(node.op, document_datetimes.c.micros, to_micros(node.value)))
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    bound = node.value
    return _some_element(
        node.field, target, lambda kind, value: and_(kind.in_(_NUMBER_TYPES), _ordered(node.op, value, bound))
    )


def _some_element(field: str, target: _Target, predicate: Any) -> ColumnElement[bool]:
    """Some element of the field (the scalar itself, or a list's element) that is not a datetime satisfies it."""
    element = _elements(field, target)
    # A text key is the member of an encoded datetime object, never a value of the user's.
    not_a_datetime_member = func.typeof(element.c.key) != "text"
    condition = and_(not_a_datetime_member, predicate(element.c.type, element.c.value))
    return exists(select(literal_column("1")).select_from(element).where(condition))


def _datetime_rows(field: str, target: _Target, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Some datetime of the field satisfies ``condition`` on ``document_datetimes.micros``; served by its index."""
    rows = select(document_datetimes.c.row_id).where(
        document_datetimes.c.collection == target.collection, document_datetimes.c.field == field, condition
    )
    return target.row_id.in_(rows)


def _ordered(op: str, left: ColumnElement[Any], right: int | float) -> ColumnElement[bool]:
    if op == "lt":
        return left < right
    if op == "lte":
        return left <= right
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    raise AssertionError(f"unknown filter operator {op!r}")


def _equals_any(
    options: Sequence[FilterValue], json_type: ColumnElement[Any], value: ColumnElement[Any]
) -> ColumnElement[bool]:
    """An element equal, by typed equality, to one of ``options`` (none of them a datetime)."""
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
