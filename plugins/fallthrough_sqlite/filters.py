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
  On a top-level field, datetime ``eq`` and ``in`` are answered by the
  ``document_datetimes`` table (:mod:`.schema`), which triggers keep equal
  to the top-level datetimes of every live document: ``row_id IN (SELECT
  row_id FROM document_datetimes WHERE collection = ? AND field = ? AND
  micros IN (...))``, a scan of its index, not correlated, so run once per
  query; the outer query still walks the collection's rows in id order,
  which serves ``ORDER BY id LIMIT``. On a dotted path they are the walk
  above with the predicate ``type = 'object' AND value ->> '$."$dt"' = ?``
  (no index: nested datetimes are not copied out, since a trigger cannot
  run the recursive walk that would name them).
* The and-ed datetime range operators of one field (``{"gte": a, "lt": b}``)
  are one condition (:func:`_datetime_range`): the field's latest datetime
  against the lower bounds, its earliest against the upper ones. A narrow
  window on a top-level field reads its row ids from one range of the index
  table with every bound; a wide one, and every dotted path, tests the
  row's stored datetime instead, so no list of half the collection is built.
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
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    case,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    type_coerce,
)

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
        return and_(*_conjunction(node.clauses, target))
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
        return _datetime_range(node.field, ((node.op, to_micros(node.value)),), target)
    assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
    bound = node.value
    return _walk(node.field, target, lambda kind, value: and_(kind.in_(_NUMBER_TYPES), _ordered(node.op, value, bound)))


_RANGE_OPS = frozenset({"lt", "lte", "gt", "gte"})
_LOWER_OPS = frozenset({"gt", "gte"})

NARROW = 1000
"""Fewer than this many datetimes in a range's window (of one field, in one collection): the window's row
ids are read from the index table; this many or more, and each row's stored datetime is tested instead. See
:func:`_datetime_range`."""


def _is_datetime_range(node: Filter) -> bool:
    return isinstance(node, Comparison) and node.op in _RANGE_OPS and isinstance(node.value, datetime)


def _conjunction(clauses: Sequence[Filter], target: _Target) -> list[ColumnElement[bool]]:
    """The and-ed clauses compiled, the datetime range operators of one field merged into one condition.

    ``{"at": {"gte": a, "lt": b}}`` is ``And(gte, lt)``; nested ``And`` clauses are flattened first, so
    ``{"and": [{"at": {"gte": a}}, {"at": {"lt": b}}]}`` merges too. The merged group takes the place of
    the field's first range clause.
    """
    flat: list[Filter] = []
    pending = list(reversed(clauses))
    while pending:
        clause = pending.pop()
        if isinstance(clause, And):
            pending.extend(reversed(clause.clauses))
        else:
            flat.append(clause)
    groups: dict[str, list[tuple[str, int]]] = {}
    for clause in flat:
        if _is_datetime_range(clause):
            assert isinstance(clause, Comparison) and isinstance(clause.value, datetime)
            groups.setdefault(clause.field, []).append((clause.op, to_micros(clause.value)))
    compiled: list[ColumnElement[bool]] = []
    for clause in flat:
        if not _is_datetime_range(clause):
            compiled.append(_compile(clause, target))
            continue
        assert isinstance(clause, Comparison)
        bounds = groups.pop(clause.field, None)
        if bounds is not None:  # None: the field's group is already in
            compiled.append(_datetime_range(clause.field, tuple(bounds), target))
    return compiled


def _datetime_range(field: str, bounds: tuple[tuple[str, int], ...], target: _Target) -> ColumnElement[bool]:
    """Every range operator in ``bounds`` holds for some datetime of the field (each maybe for another one).

    As each operator asks for *some* value, a lower bound holds when it holds for the field's latest
    datetime and an upper bound when it holds for the earliest, so the group holds exactly when the
    latest datetime passes every lower bound and the earliest every upper bound: for a single datetime,
    when it lies in the window. Two ways to find such rows, one condition:

    * the per-row test: the stored datetime at the field's path, read from the row's own JSON (a list,
      or a dotted path through a list, is walked once for its earliest and latest datetime). Its cost is
      per row visited, and an ``ORDER BY id LIMIT`` walk stops early when the window is wide.
    * the index table (top-level fields only): ``row_id IN`` the window's row ids, one range scan of
      ``document_datetimes`` with every bound, built once per statement, cheap to probe per row; its
      cost grows with the window's width. It finds the rows with one datetime inside the window; a list
      whose datetimes straddle the window with none inside is added by the per-row test on the rows
      whose text holds the field as a list (``instr``, see :data:`.schema.DATETIME_DDL` for why the
      stored text can be searched).

    SQLite's planner cannot tell a window's width, so the statement probes it: a count of the window's
    index entries stopped at :data:`NARROW`, an uncorrelated subquery run once. Fewer than :data:`NARROW`
    (a list of a few hundred microseconds to build) take the index; more take the per-row test, which
    never builds the list. A dotted path has no index table and always takes the per-row test.
    """
    lower = [(op, moment) for op, moment in bounds if op in _LOWER_OPS]
    upper = [(op, moment) for op, moment in bounds if op not in _LOWER_OPS]

    def passes(latest: ColumnElement[Any], earliest: ColumnElement[Any]) -> ColumnElement[bool]:
        return and_(
            *(_ordered(op, latest, moment) for op, moment in lower),
            *(_ordered(op, earliest, moment) for op, moment in upper),
        )

    keys = field_path(field)
    path = "$" + "".join(f'."{key}"' for key in keys)
    single = func.coalesce(passes(*[target.metadata.op("->>")(f'{path}."{DATETIME_TAG}"')] * 2), 0)
    spread = _span_walk(field, target, passes)
    # The value at the path when only objects lead there: a datetime (an object), a list, or a scalar
    # or a user's object (no datetime). NULL when the path is missing or runs through a list: only a
    # dotted path can do the latter, and only the walk follows it.
    kind = func.coalesce(func.json_type(target.metadata, path), "")
    whens: dict[str, Any] = {"object": single, "array": spread}
    if len(keys) > 1:
        whens[""] = spread
    per_row = case(whens, value=kind, else_=0)
    if len(keys) > 1:
        return type_coerce(per_row, Boolean())
    in_window = select(document_datetimes.c.row_id).where(
        document_datetimes.c.collection == target.collection,
        document_datetimes.c.field == field,
        passes(document_datetimes.c.micros, document_datetimes.c.micros),
    )
    entries = select(func.count()).select_from(in_window.limit(NARROW).subquery()).scalar_subquery()
    # CASE WHEN, not OR / AND: SQLite computes both operands of those inside a CASE's result, and
    # the walk would then run on every row. A WHEN is a jump: the walk runs only on the rows whose
    # text holds the field as a list and that the window's ids do not hold.
    indexed = case(
        (target.row_id.in_(in_window), 1),
        (func.instr(target.metadata, f'"{field}":[') > 0, spread),
        else_=0,
    )
    return type_coerce(case((entries < NARROW, indexed), else_=per_row), Boolean())


def _span_walk(
    field: str, target: _Target, passes: Callable[[ColumnElement[Any], ColumnElement[Any]], ColumnElement[bool]]
) -> ColumnElement[Any]:
    """1 when the field's latest and earliest datetimes, found by the walk, satisfy ``passes``; else 0."""
    last, steps = _elements(field, target)
    walk = steps[0]
    for step in steps[1:]:
        walk = walk.join(step, true())
    micros = case((last.c.type == "object", last.c.value.op("->>")(f'$."{DATETIME_TAG}"')))
    # An aggregate without GROUP BY gives one row; with no datetime both are NULL, and so is passes.
    span = select(passes(func.max(micros), func.min(micros))).select_from(walk).scalar_subquery()
    return func.coalesce(span, 0)


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
