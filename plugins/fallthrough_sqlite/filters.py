"""Compiling a :mod:`fallthrough.filters` tree into a SQL condition on the metadata JSON.

The semantics are those of :func:`fallthrough.filters.matches`, and every
rule there has its counterpart here:

* A field is a dotted path (``dims.width``); its values are found as
  :func:`fallthrough.filters.field_values` defines, by walking the JSON with
  JSON1 alone. Each step is one ``json_each`` over the value at the next
  key, a list as its elements and anything else wrapped as a one-element
  array (``wrap``)::

      json_each(wrap(metadata -> '$."a"')) AS v1,
      json_each(wrap(CASE v1.type WHEN 'object' THEN v1.value -> '$."b"' END)) AS v2

  so a list fans out, an object element continues, a scalar element (or a
  missing key, a null) yields no object to go on from, and the last step's
  rows are the field's values, one each, an object or a datetime as one
  row of type ``object``. A comparison is ``EXISTS (SELECT 1 FROM <steps>
  WHERE <typed predicate on the last step's type and value>)``.
* The predicate checks ``type`` before ``value``, which gives the typed
  equality: a JSON ``true`` is never the number 1, a string never equals a
  number, and ``integer`` and ``real`` compare numerically with each other.
  A JSON null, a user's object and a datetime (both of type ``object``)
  match no such predicate.
* A datetime is stored as the object ``{"$dt": micros}`` (see
  :func:`fallthrough.kit.dump_metadata`); no user key starts with ``$``.
  On a top-level field, datetime operands (``eq``, ``in`` and the ranges)
  are answered by the ``document_datetimes`` table (:mod:`.schema`), which
  triggers keep equal to the top-level datetimes of every live document:
  ``row_id IN (SELECT row_id FROM document_datetimes WHERE collection = ?
  AND field = ? AND micros > ?)``, a range scan of its index, not
  correlated, so run once per query; the outer query still walks the
  collection's rows in id order, which serves ``ORDER BY id LIMIT``. On a
  dotted path they are the walk above with the predicate ``type = 'object'
  AND value ->> '$."$dt"' > ?`` (no index: nested datetimes are not copied
  out, since a trigger cannot run the recursive walk that would name them).
* ``exists`` is the walk with ``type != 'null'``: some value is a scalar,
  an object (empty or not) or a datetime. A missing key, null, ``[]`` and
  ``[null]`` yield no such row.
* ``ne`` and ``nin`` are ``NOT EXISTS`` of ``eq`` and ``in``: no value is
  equal / in the list (so a missing field passes), and ``not`` is SQL NOT.
  EXISTS and IN over non-null row ids are never NULL, so NOT never meets
  SQL's three-valued logic.

Values are bound as parameters. Each step's JSON path is built from one key
of the field, which the core validated to hold no quote, backslash or
control character, and is bound as a parameter too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import ColumnElement, and_, case, exists, false, func, literal_column, not_, or_, select, true

from fallthrough.filters import And, Comparison, Exists, Filter, FilterValue, Not, Or, field_path
from fallthrough.kit import DATETIME_TAG
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
        present = _walk(node.field, target, lambda kind, _: kind != "null")
        return present if node.present else not_(present)
    return _comparison(node, target)


def _wrap(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON value as ``json_each`` should walk it: a list as itself, anything else (NULL too) in a list of one."""
    return case((func.json_type(value) == "array", value), else_=func.json_array(func.json(value)))


def _elements(field: str, target: _Target) -> tuple[Any, list[Any]]:
    """The field's values as rows ``(key, type, value)``: the last step of the walk, and every step's FROM item."""
    steps: list[Any] = []
    current: ColumnElement[Any] = target.metadata
    for index, key in enumerate(field_path(field)):
        path = f'$."{key}"'
        if index:
            previous = steps[-1]
            current = case((previous.c.type == "object", previous.c.value.op("->")(path)))
        else:
            current = current.op("->")(path)
        steps.append(func.json_each(_wrap(current)).table_valued("key", "type", "value").alias())
    return steps[-1], steps


def _walk(field: str, target: _Target, predicate: Any) -> ColumnElement[bool]:
    """Some value of the field satisfies ``predicate(type, value)`` (which checks the JSON type itself)."""
    last, steps = _elements(field, target)
    # Each step reads the one before it (SQLite's table-valued functions see earlier FROM items):
    # an inner join on true, so that SQLAlchemy sees no cartesian product.
    walk = steps[0]
    for step in steps[1:]:
        walk = walk.join(step, true())
    query: Any = select(literal_column("1")).select_from(walk).where(predicate(last.c.type, last.c.value))
    return exists(query)


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
            alternatives.append(_walk(node.field, target, lambda kind, value: _equals_any(others, kind, value)))
        if moments:
            alternatives.append(_datetimes(node.field, target, lambda micros: micros.in_(moments)))
        return or_(false(), *alternatives)
    # Range operators: the core guarantees a number or a datetime operand.
    if isinstance(node.value, datetime):
        moment = to_micros(node.value)
        return _datetimes(node.field, target, lambda micros: _ordered(node.op, micros, moment))
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    bound = node.value
    return _walk(node.field, target, lambda kind, value: and_(kind.in_(_NUMBER_TYPES), _ordered(node.op, value, bound)))


def _datetime_rows(field: str, target: _Target, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """Some datetime of the field satisfies ``condition`` on ``document_datetimes.micros``.

    A top-level field is served by the index table; a dotted path walks the JSON (``condition`` is
    rebuilt there on the encoded micros).
    """
    if len(field_path(field)) > 1:
        raise AssertionError("dotted datetime comparisons go through _nested_datetimes")
    rows = select(document_datetimes.c.row_id).where(
        document_datetimes.c.collection == target.collection, document_datetimes.c.field == field, condition
    )
    return target.row_id.in_(rows)


def _datetimes(
    field: str, target: _Target, compare: Callable[[ColumnElement[Any]], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Some datetime of the field has micros satisfying ``compare``: the index table, or the walk for a dotted path."""
    if len(field_path(field)) == 1:
        return _datetime_rows(field, target, compare(document_datetimes.c.micros))
    return _walk(
        field,
        target,
        lambda kind, value: and_(kind == "object", compare(value.op("->>")(f'$."{DATETIME_TAG}"'))),
    )


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
