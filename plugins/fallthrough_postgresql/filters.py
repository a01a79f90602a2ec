"""Compiling a :mod:`fallthrough.filters` tree into SQL over the ``metadata_jsonb`` column.

The semantics are those of :func:`fallthrough.filters.matches`:

* Equality and a short ``in`` are SQL/JSON path tests holding the value,
  ``m @? '$."f"[*] ? (@ == v)'`` (the field is ``v``, or a list holding
  ``v``; a dotted path below). The path language compares typed values:
  ``1`` equals ``1.0`` (both numbers), never ``true`` or ``"1"``; strings
  compare code point for code point. A missing field or a JSON null holds
  nothing equal. The GIN ``jsonb_path_ops`` index serves ``@?`` with an
  equality, as it serves containment, in one probe.
* A long ``in`` (more than :data:`CONTAINMENT_OPTIONS` values) looks up
  the field's elements in the list instead (jsonb equality, as typed as
  the path's, in a hashed set): thousands of path tests ORed together
  would take the planner far longer than the query.
* Ranges are SQL/JSON path filters over the field's elements (a scalar
  is its own one element): only numbers compare with a number, as
  ``numeric``: exact for every int and every float's shortest decimal
  form, so 2**53 - 1 and 2**53 - 2 stay apart, and a bool or a string
  never takes part.
* Datetimes are stored as ``{"$dt": micros}`` (see :mod:`.metadata`), and
  an ``eq``/``in`` operand that is a datetime compares with that member
  (``$."f"[*]."$dt" ? (@ == micros)``; a long ``in``, jsonb equality with
  the same encoding), so it finds the same instant and never a string or
  a number.
* A range with a datetime operand holds when some datetime element is in
  it: ``lt b`` when the earliest is before b, ``gt a`` when the latest is
  after a. :mod:`.metadata` keeps each field's earliest and latest datetime
  in ``metadata_jsonb``, and a range is an overlap test of the span between
  them, ``int8range(earliest, latest, '[]') && int8range(low, high, '[]')``
  (microseconds; an open side unbounded); the ranges of one field that are
  and-ed together are one test, of their intersection, when that is not
  empty. The field name is a literal in the span's expression, so that it
  is the expression of the field's GiST index (created when the field first
  holds a datetime, see :func:`.documents.create_datetime_index`), in a
  generic plan too. A field holding no datetime has no span: false.
* ``exists`` is a SQL/JSON path test for an element that is not null:
  ``$."f"[*] ? (@.type() != "null")`` (a missing field, null, ``[]`` and
  ``[null]`` have none).
* A dotted path (``dims.width``, see :func:`fallthrough.filters.field_values`)
  is a SQL/JSON path in lax mode, ``$."dims"."width"[*]``: lax mode takes
  a member of every object of a list it meets (the fan-out over lists of
  objects), finds nothing in a scalar it meets on the way, and ``[*]``
  takes a final list's elements or a scalar as its own one: exactly the
  reference's walk. Its ``eq``/short ``in`` is the same ``@?`` test as a
  top-level field's, over the longer path (the literal is in the path,
  where the index can see it; containment could not fan out over a list
  without one pattern per shape). Ranges,
  ``exists`` and a long ``in`` use the same path. A datetime range uses the
  datetime summary, kept per dotted path (see :mod:`.metadata`), and its
  GiST index, as a top-level field does.
* ``ne`` and ``nin`` are NOT of ``eq`` and ``in`` (so a missing field
  passes), and ``not`` is NOT. Every predicate is true or false, never
  NULL (``coalesce``, ``EXISTS``), so NOT never meets SQL's three-valued
  logic.

Values and field names are bound as parameters, never put in the SQL text,
except the field name of a datetime range (a quoted literal: field names
hold no backslash, and a quote is doubled).
Every value is its own parameter, referenced once: the server copies a
parameter's value into every place that names it when it plans, so one
large value shared by many comparisons would cost memory in the square
of its size. A long ``in`` list is one
parameter, so a statement's 65,535-parameter limit bounds the number of
comparisons in a filter, never the number of values.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fallthrough.filters import And, Comparison, Exists, Filter, FilterValue, Not, Or, field_path
from fallthrough.kit import DATETIME_TAG, tag_datetimes
from fallthrough.types import to_micros

from .metadata import SUMMARY_KEY

_RANGE_SQL = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}

CONTAINMENT_OPTIONS = 16
"""Up to this many ``in`` values are path tests (indexed); more are one lookup in a hashed set, one parameter."""


class FilterCompiler:
    """Builds one SQL condition and its parameters; parameter names are numbered per query."""

    def __init__(self, column: str, prefix: str = "f") -> None:
        self.column = column
        self.prefix = prefix
        self.parameters: dict[str, Any] = {}

    def compile(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self._conjunction(node.clauses)) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.compile(clause) for clause in node.clauses) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.compile(node.clause)})"
        if isinstance(node, Exists):
            return self._exists(node)
        return self._comparison(node)

    def _conjunction(self, clauses: tuple[Filter, ...]) -> list[str]:
        """The clauses' conditions, a field's datetime ranges merged into one span where it is not empty.

        "The latest is after a" and "the earliest is before b" hold together
        exactly when the span from the earliest to the latest meets (a, b), if
        that is not empty: one overlap test, which the planner estimates from
        the span's statistics as a whole, where two separate ones would be
        taken as independent and overestimated.
        """
        spans: dict[str, tuple[int | None, int | None]] = {}
        for clause in clauses:
            if is_datetime_range(clause):
                assert isinstance(clause, Comparison)
                low, high = datetime_bounds(clause)
                known_low, known_high = spans.get(clause.field, (None, None))
                spans[clause.field] = (_tighter(max, known_low, low), _tighter(min, known_high, high))
        conditions = []
        merged: set[str] = set()
        for clause in clauses:
            if is_datetime_range(clause):
                assert isinstance(clause, Comparison)
                low, high = spans[clause.field]
                if low is None or high is None or low <= high:
                    # The first of the field's ranges stands for them all.
                    if clause.field not in merged:
                        merged.add(clause.field)
                        conditions.append(self._datetime_bounds(clause.field, low, high))
                    continue
            conditions.append(self.compile(clause))
        return conditions

    def _bind(self, value: object) -> str:
        """SQL for the jsonb ``value`` (a stored form: see :func:`fallthrough.kit.tag_datetimes`)."""
        return self._bind_text(json.dumps(value)) + "::jsonb"

    def _bind_text(self, value: str) -> str:
        """SQL for the text ``value``."""
        name = f"{self.prefix}{len(self.parameters)}"
        self.parameters[name] = value
        return f"%({name})s::text"

    def _comparison(self, node: Comparison) -> str:
        if node.op in ("ne", "nin"):
            positive = Comparison(node.field, "eq" if node.op == "ne" else "in", node.value)
            return f"(NOT {self._comparison(positive)})"
        if node.op in ("eq", "in"):
            options = node.value if isinstance(node.value, tuple) else (node.value,)
            if len(options) > CONTAINMENT_OPTIONS:
                return self._one_of(node.field, options)
            return "(" + " OR ".join(self._path_equals(node.field, option) for option in options) + ")"
        return self._range(node)

    def _path_equals(self, field: str, value: FilterValue) -> str:
        """Some value at ``field`` (dotted or not) equals ``value``: a ``@?`` path holding the value (GIN-served).

        One index probe: a top-level field was two containment tests, ``m @>
        '{"f": v}' OR m @> '{"f": [v]}'``, whose probes find the same entries
        (``jsonb_path_ops`` hashes a path and a value, lists aside) and cost a
        filtered vector search about a sixth more (docs/benchmarks.md,
        "LangChain adapter").
        """
        if isinstance(value, datetime):
            path = f'{json_path(field)}."{DATETIME_TAG}" ? (@ == {to_micros(value)})'
        else:
            path = f"{json_path(field)} ? (@ == {path_literal(value)})"
        # Bare, like containment, so that the index and the planner's estimate see the operator. It is
        # NULL only where containment is (a tombstone's NULL metadata_jsonb, which every query leaves
        # out by ``text IS NOT NULL``): in lax mode nothing in this path can fail (a key of a non-object
        # is empty, ``==`` between types is unknown, not an error), and only a suppressed failure makes
        # ``@?`` NULL on a value.
        return f"{self.column} @? {self._bind_text(path)}::jsonpath"

    def _elements(self, field: str) -> str:
        """The field's elements, as rows ``e(value)``: a list's, or a scalar as its own one (a missing field: null)."""
        if len(field_path(field)) > 1:
            return f"jsonb_path_query({self.column}, {self._bind_text(json_path(field))}::jsonpath) AS e(value)"
        value = f"{self.column} -> {self._bind_text(field)}"
        return (
            f"jsonb_array_elements(CASE jsonb_typeof({value}) WHEN 'array' THEN {value} "
            f"ELSE jsonb_build_array({value}) END) AS e(value)"
        )

    def _one_of(self, field: str, options: tuple[FilterValue, ...]) -> str:
        listed = self._bind(tag_datetimes(list(options)))
        return f"EXISTS (SELECT FROM {self._elements(field)} WHERE e.value IN (SELECT jsonb_array_elements({listed})))"

    def _exists(self, node: Exists) -> str:
        # Lax mode: a missing field gives no element, a scalar is its own one.
        path = self._bind_text(f'{json_path(node.field)} ? (@.type() != "null")')
        present = f"coalesce(jsonb_path_exists({self.column}, {path}::jsonpath, '{{}}', true), false)"
        return present if node.present else f"(NOT {present})"

    def _range(self, node: Comparison) -> str:
        if isinstance(node.value, datetime):
            return self._datetime_bounds(node.field, *datetime_bounds(node))
        assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
        # SQL/JSON path in lax mode: ``[*]`` takes a list's elements and a
        # scalar as its own one, a missing field gives none, and comparing a
        # number with a string, bool or null is "unknown", which the filter
        # drops. Numbers compare as numeric. A path, not a subquery: a subplan
        # per range made a large ``or`` of ranges exhaust the server's memory.
        # Field names hold no quotes or backslashes (the core checks), so
        # quoting one as a path key is exact.
        path = self._bind_text(f"{json_path(node.field)} ? (@ {_RANGE_SQL[node.op]} $bound)")
        bound = self._bind({"bound": node.value})
        return f"coalesce(jsonb_path_exists({self.column}, {path}::jsonpath, {bound}, true), false)"

    def _datetime_bounds(self, field: str, low: int | None, high: int | None) -> str:
        """The field holds a datetime in ``[low, high]`` (micros; None: unbounded), given its datetime summary."""
        low_name = f"{self.prefix}{len(self.parameters)}"
        self.parameters[low_name] = low
        high_name = f"{self.prefix}{len(self.parameters)}"
        self.parameters[high_name] = high
        # The field's name is a literal in these two expressions (the GiST
        # index's expression must match), in SQL that psycopg formats: its
        # '%' is doubled here, and the server sees the index's expression.
        summary = summary_expression(self.column, field).replace("%", "%%")
        span = datetime_expression(self.column, field).replace("%", "%%")
        # Never NULL (for NOT): a field without a datetime has no summary, so
        # the first condition is false. Two plain conditions, so that the
        # field's partial GiST index serves the second.
        return f"({summary} IS NOT NULL AND {span} && int8range(%({low_name})s::int8, %({high_name})s::int8, '[]'))"


def _tighter(pick: Any, known: int | None, new: int | None) -> int | None:
    if known is None:
        return new
    if new is None:
        return known
    result: int = pick(known, new)
    return result


def datetime_bounds(node: Comparison) -> tuple[int | None, int | None]:
    """The micros a datetime range admits, as inclusive ``(low, high)`` (None: unbounded)."""
    assert isinstance(node.value, datetime)
    micros = to_micros(node.value)
    if node.op == "lt":
        return None, micros - 1
    if node.op == "lte":
        return None, micros
    if node.op == "gt":
        return micros + 1, None
    return micros, None


def is_datetime_range(node: Filter) -> bool:
    return isinstance(node, Comparison) and node.op in _RANGE_SQL and isinstance(node.value, datetime)


def summary_expression(column: str, field: str) -> str:
    """The field's ``[earliest, latest]`` datetimes as jsonb (see :mod:`.metadata`); NULL when it holds none."""
    return f"({column} -> {quote(SUMMARY_KEY)} -> {quote(field)})"


def datetime_expression(column: str, field: str) -> str:
    """The span from the field's earliest to its latest datetime, as ``int8range``: its GiST index's expression."""
    summary = summary_expression(column, field)
    return f"int8range(({summary} ->> 0)::int8, ({summary} ->> 1)::int8, '[]')"


def json_path(field: str) -> str:
    """The lax SQL/JSON path of a (dotted) field's values: ``$."a"."b"[*]``.

    Keys hold no quote, backslash or control character (the core checks), so
    each is exact as a quoted path key.
    """
    return "$" + "".join(f'."{key}"' for key in field_path(field)) + "[*]"


def path_literal(value: str | int | float | bool) -> str:
    """``value`` as a SQL/JSON path literal: JSON's spelling, which the path language reads the same way."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, float) else str(value)


def quote(text: str) -> str:
    """A SQL string literal; field names hold no backslash or control character (the core checks)."""
    return "'" + text.replace("'", "''") + "'"


def compile_filter(node: Filter, column: str) -> tuple[str, dict[str, Any]]:
    """The SQL condition (psycopg ``%(name)s`` style) that holds exactly when ``matches(node, metadata)``."""
    compiler = FilterCompiler(column)
    return compiler.compile(node), compiler.parameters


__all__ = [
    "CONTAINMENT_OPTIONS",
    "FilterCompiler",
    "compile_filter",
    "datetime_bounds",
    "datetime_expression",
    "json_path",
    "path_literal",
    "quote",
    "summary_expression",
]
