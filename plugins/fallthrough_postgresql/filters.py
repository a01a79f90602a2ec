"""Compiling a :mod:`fallthrough.filters` tree into SQL over the ``metadata_jsonb`` column.

The semantics are those of :func:`fallthrough.filters.matches`:

* Equality and ``in`` are jsonb containment: ``m @> '{"f": v}'`` (the field
  is ``v``) or ``m @> '{"f": [v]}'`` (the field is a list holding ``v``).
  jsonb compares typed values: ``1`` equals ``1.0`` (both numbers), never
  ``true`` or ``"1"``; strings compare byte for byte. A missing field or a
  JSON null contains nothing. Containment is what the GIN
  ``jsonb_path_ops`` index serves.
* Ranges look at the field's elements (a scalar is its own one element)
  and compare only those whose ``jsonb_typeof`` is ``number``, as
  ``numeric``: exact for every int and every float's shortest decimal
  form, so 2**53 - 1 and 2**53 - 2 stay apart, and a bool or a string
  never takes part.
* ``ne`` and ``nin`` are NOT of ``eq`` and ``in`` (so a missing field
  passes), and ``not`` is NOT. Every predicate is true or false, never
  NULL (``coalesce``), so NOT never meets SQL's three-valued logic.

Values are bound as parameters; the field name goes into a jsonb
parameter too, never into the SQL text.
"""

from __future__ import annotations

import json
from typing import Any

from fallthrough.filters import And, Comparison, Filter, FilterValue, Not, Or

_RANGE_SQL = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class FilterCompiler:
    """Builds one SQL condition and its parameters; parameter names are numbered per query."""

    def __init__(self, column: str, prefix: str = "f") -> None:
        self.column = column
        self.prefix = prefix
        self.parameters: dict[str, Any] = {}

    def compile(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.compile(clause) for clause in node.clauses) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.compile(clause) for clause in node.clauses) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.compile(node.clause)})"
        return self._comparison(node)

    def _bind(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.parameters)}"
        self.parameters[name] = value
        return f"%({name})s"

    def _comparison(self, node: Comparison) -> str:
        if node.op in ("ne", "nin"):
            positive = Comparison(node.field, "eq" if node.op == "ne" else "in", node.value)
            return f"(NOT {self._comparison(positive)})"
        if node.op in ("eq", "in"):
            options = node.value if isinstance(node.value, tuple) else (node.value,)
            return "(" + " OR ".join(self._contains(node.field, option) for option in options) + ")"
        return self._range(node)

    def _contains(self, field: str, value: FilterValue) -> str:
        scalar = self._bind(json.dumps({field: value}))
        listed = self._bind(json.dumps({field: [value]}))
        return f"({self.column} @> {scalar}::jsonb OR {self.column} @> {listed}::jsonb)"

    def _range(self, node: Comparison) -> str:
        assert isinstance(node.value, int | float) and not isinstance(node.value, bool)
        field = self._bind(node.field)
        bound = self._bind(json.dumps(node.value))
        operator = _RANGE_SQL[node.op]
        # A scalar field is wrapped as a one-element list, so lists and
        # scalars are both "some element holds".
        return (
            "coalesce((SELECT bool_or((e.value)::numeric "
            f"{operator} {bound}::jsonb::numeric) FROM jsonb_array_elements("
            f"CASE jsonb_typeof({self.column} -> {field}::text) WHEN 'array' THEN {self.column} -> {field}::text "
            f"ELSE jsonb_build_array({self.column} -> {field}::text) END) AS e(value) "
            "WHERE jsonb_typeof(e.value) = 'number'), false)"
        )


def compile_filter(node: Filter, column: str) -> tuple[str, dict[str, Any]]:
    """The SQL condition (psycopg ``%(name)s`` style) that holds exactly when ``matches(node, metadata)``."""
    compiler = FilterCompiler(column)
    return compiler.compile(node), compiler.parameters


__all__ = ["FilterCompiler", "compile_filter"]
