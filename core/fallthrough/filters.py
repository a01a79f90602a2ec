"""The filter language: parsing, and the reference evaluation.

A filter is a small dict::

    {"price": 420}                        # equality (for a list field: contains)
    {"price": {"lt": 500, "gte": 100}}    # several operators on one field: all must hold
    {"tags": {"in": ["a", "b"]}}          # any of
    {"sold": {"exists": False}}           # presence: missing, None, [] or [None]
    {"at": {"gte": datetime(2024, 1, 1, tzinfo=UTC)}}  # aware datetimes, in time order
    {"or": [{...}, {...}], "not": {...}}  # and / or / not; sibling keys are and-ed
    {"dims.width": {"gt": 2}}             # a dotted path into nested objects (and lists of them)

:func:`parse_filter` turns it into a tree of frozen nodes that backends
compile into their own query language; :func:`matches` is the executable
definition every compilation must agree with:

* A field is a dotted path ``a.b.c`` whose every segment is a valid
  metadata key (:func:`~fallthrough.validation.check_metadata_key`). Its
  *values* are what :func:`field_values` finds: walk the segments; at an
  object take the key; at a list go on from each element (an object
  element continues the walk, a scalar element reached before the last
  segment is dropped). At the end a list contributes its elements. Every
  rule below is about that set of values, as it was about a flat field's.
* An object value never equals, is never in, and is never in range of any
  operand, but it is present for ``exists``.
* A missing field, or a None value, fails every comparison except ``ne``,
  ``nin`` and ``not``.
* ints and floats compare numerically; a str never equals a number; a bool
  is not a number and equals only a bool.
* On a list field each operator holds when it holds for some element;
  ``ne`` and ``nin`` hold when no element is equal / in the list.
* A datetime (timezone-aware; normalised to UTC) equals only a datetime, the
  same instant; it never equals a str or a number.
* Range operators take a number or an aware datetime; anything else is a
  :class:`FilterError`. A number range holds only for numbers, a datetime
  range only for datetimes, compared in time order.
* ``{"exists": True}`` holds when the field has at least one non-None value
  (a scalar, or a list with a non-None element); ``{"exists": False}`` when it
  has none: the key is missing, or holds None, ``[]`` or only Nones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal, TypeAlias

import attrs

from .errors import FilterError, InvalidInput
from .validation import (
    MAX_METADATA_DEPTH,
    MAX_SAFE_INTEGER,
    PATH_SEPARATOR,
    MetadataValue,
    check_metadata_key,
    check_string,
    numpy_hint,
    plain_number,
    to_utc,
    type_name,
)

ComparisonOp: TypeAlias = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "nin"]
FilterValue: TypeAlias = str | int | float | bool | datetime
"""A comparison operand. A datetime is always aware and in UTC (the parser normalises it)."""
RANGE_OPS = frozenset({"lt", "lte", "gt", "gte"})
_OPS = frozenset({"eq", "ne", "in", "nin"}) | RANGE_OPS
_ALL_OPS = _OPS | {"exists"}
MAX_PATH_SEGMENTS = MAX_METADATA_DEPTH + 1
"""How many keys a dotted filter path may have: a top-level key and one per level of nested objects."""
MAX_FILTER_DEPTH = 32
"""How deeply ``and``/``or``/``not`` may nest."""
MAX_FILTER_TERMS = 256
"""How big a filter may be: every ``and``, ``or``, ``not``, comparison and ``exists`` counts one, and
each value of an ``in``/``nin`` list one more. SQLite's expression tree, PostgreSQL's planner and
Qdrant's condition lists all answer a filter of this size fast; an ``or`` of 5,000 conditions took
seconds to a minute, or failed, on some of them."""


@attrs.frozen
class Comparison:
    """``field op value``. For ``in``/``nin`` ``value`` is a non-empty tuple."""

    field: str
    op: ComparisonOp
    value: FilterValue | tuple[FilterValue, ...]


@attrs.frozen
class Exists:
    """``{field: {"exists": present}}``: whether ``field`` has a non-None value.

    A list value counts as present when some element is not None.
    """

    field: str
    present: bool


@attrs.frozen
class And:
    clauses: tuple[Filter, ...]


@attrs.frozen
class Or:
    clauses: tuple[Filter, ...]


@attrs.frozen
class Not:
    clause: Filter


Filter: TypeAlias = Comparison | Exists | And | Or | Not


def parse_filter(spec: Mapping[str, object] | None) -> Filter | None:
    """Validate a filter dict and return its tree; None or ``{}`` is no filter."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise FilterError(f"filter must be a dict, not {type(spec).__name__}")
    if not spec:
        return None
    node = _parse_mapping(spec, "filter", 0)
    size = filter_size(node)
    if size > MAX_FILTER_TERMS:
        raise FilterError(
            f"filter has {size} terms (operators, conditions and in/nin values), more than {MAX_FILTER_TERMS}; "
            "split the query, or tag the documents so that one condition selects them"
        )
    return node


def filter_size(node: Filter) -> int:
    """The number of terms of a parsed filter, as :data:`MAX_FILTER_TERMS` counts them."""
    if isinstance(node, And | Or):
        return 1 + sum(filter_size(clause) for clause in node.clauses)
    if isinstance(node, Not):
        return 1 + filter_size(node.clause)
    if isinstance(node, Comparison) and isinstance(node.value, tuple):
        return 1 + len(node.value)
    return 1


def _parse_mapping(spec: object, where: str, depth: int) -> Filter:
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"{where} is nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"{where} must be a non-empty dict, got {spec!r}")
    clauses: list[Filter] = []
    for name, value in spec.items():
        if name in ("and", "or"):
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{where}[{name!r}] must be a non-empty list of filters")
            parts = tuple(_parse_mapping(item, f"{where}[{name!r}][{i}]", depth + 1) for i, item in enumerate(value))
            clauses.append(And(parts) if name == "and" else Or(parts))
        elif name == "not":
            clauses.append(Not(_parse_mapping(value, f"{where}['not']", depth + 1)))
        else:
            clauses.extend(_parse_field(name, value, where))
    return clauses[0] if len(clauses) == 1 else And(tuple(clauses))


def check_field_path(name: object, what: str = "filter field") -> str:
    """A filter field: a dotted path of metadata keys (``dims.width``); errors name the bad segment.

    :raises FilterError: not a str, too many segments, or a segment that is not a valid metadata key.
    """
    try:
        name = check_string(name, what)  # a plain str: a store spells the path from it
        segments = name.split(PATH_SEPARATOR)
        if len(segments) == 1:
            check_metadata_key(name, what)
            return name
        if len(segments) > MAX_PATH_SEGMENTS:
            raise FilterError(
                f"{what} {name!r} has {len(segments)} segments; metadata nests at most "
                f"{MAX_METADATA_DEPTH} levels, so a path has at most {MAX_PATH_SEGMENTS}"
            )
        for index, segment in enumerate(segments):
            check_metadata_key(segment, f"{what} {name!r} segment {index}")
    except InvalidInput as error:
        raise FilterError(str(error)) from None
    return name


def field_path(field: str) -> tuple[str, ...]:
    """The keys of a (valid) dotted field path, in order."""
    return _split(field)


@functools.lru_cache(maxsize=1024)
def _split(field: str) -> tuple[str, ...]:
    return tuple(field.split(PATH_SEPARATOR))


def field_values(metadata: Mapping[str, object], field: str) -> list[MetadataValue]:
    """The values a dotted ``field`` finds in ``metadata``: the definition every backend follows.

    Walk the path's keys: at an object take the key, at a list go on from
    each element that is an object (a scalar element before the last key
    is dropped). At the end, a list contributes its elements, anything else
    itself (None and objects included). A missing key contributes nothing.
    """
    nodes: list[object] = [metadata]
    for key in _split(field):
        found: list[object] = []
        for node in nodes:
            if isinstance(node, Mapping):
                if key in node:
                    found.append(node[key])
            elif isinstance(node, list):
                found.extend(element[key] for element in node if isinstance(element, Mapping) and key in element)
        nodes = found
    values: list[MetadataValue] = []
    for node in nodes:
        if isinstance(node, list):
            values.extend(node)
        else:
            values.append(node)  # type: ignore[arg-type]
    return values


def path_values(metadata: Mapping[str, object]) -> dict[str, list[MetadataValue]]:
    """Every dotted path that finds something in ``metadata``, with what :func:`field_values` finds there.

    One walk over the metadata instead of one per path: a store that keeps
    each path's values apart (Qdrant's typed payload, PostgreSQL's datetime
    summary) builds them from this. A path that finds only an empty list
    maps to ``[]``.
    """
    found: dict[str, list[MetadataValue]] = {}

    def visit(value: object, path: str) -> None:
        values = found.setdefault(path, [])
        for element in value if isinstance(value, list) else (value,):
            values.append(element)  # type: ignore[arg-type]
            if isinstance(element, Mapping):
                for key, item in element.items():
                    visit(item, f"{path}{PATH_SEPARATOR}{key}")

    for key, value in metadata.items():
        visit(value, key)
    return found


def _parse_field(name: object, value: object, where: str) -> list[Filter]:
    field = check_field_path(name, f"{where} field")
    if not isinstance(value, Mapping):
        return [Comparison(field, "eq", _operand(value, f"{where}[{field!r}]"))]
    if not value:
        raise FilterError(f"{where}[{field!r}] has no operator")
    comparisons: list[Filter] = []
    for op, operand in value.items():
        if op not in _ALL_OPS:
            known = ", ".join(sorted(_ALL_OPS))
            raise FilterError(f"{where}[{field!r}] has unknown operator {op!r}; known: {known}")
        at = f"{where}[{field!r}][{op!r}]"
        if op == "exists":
            if not isinstance(operand, bool):
                raise FilterError(f"{at} must be True or False, got {operand!r}{numpy_hint(operand)}")
            comparisons.append(Exists(field, operand))
        elif op in ("in", "nin"):
            if not isinstance(operand, list | tuple) or not operand:
                raise FilterError(f"{at} must be a non-empty list of values")
            comparisons.append(Comparison(field, op, tuple(_operand(item, at) for item in operand)))
        elif op in RANGE_OPS:
            if isinstance(operand, bool) or not isinstance(operand, int | float | datetime):
                raise FilterError(
                    f"{at} must be a number or a timezone-aware datetime, got {operand!r}{numpy_hint(operand)}"
                )
            comparisons.append(Comparison(field, op, _operand(operand, at)))
        else:
            comparisons.append(Comparison(field, op, _operand(operand, at)))
    return comparisons


def _operand(value: object, at: str) -> FilterValue:
    if isinstance(value, str):
        try:
            return check_string(value, at)
        except InvalidInput as error:
            raise FilterError(str(error)) from None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise FilterError(f"{at} {value} is outside +-(2**53 - 1), the range every store compares exactly")
        return plain_number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{at} must be finite, got {value!r}")
        return plain_number(value)
    if isinstance(value, datetime):
        try:
            return to_utc(value, at)
        except InvalidInput as error:
            raise FilterError(str(error)) from None
    if isinstance(value, date):
        raise FilterError(f"{at} is a date, not a datetime; give a timezone-aware datetime (e.g. midnight UTC)")
    if value is None:
        raise FilterError(
            f"{at} is None; None matches no comparison, use {{'exists': False}} to find missing or None values"
        )
    raise FilterError(f"{at} must be a str, int, float, bool or timezone-aware datetime, not {type_name(value)}")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def scalar_equals(stored: MetadataValue, wanted: FilterValue) -> bool:
    """Typed equality: bool only equals bool, datetime only datetime, numbers compare numerically.

    An object or a list is never equal to anything.
    """
    if isinstance(wanted, datetime) or isinstance(stored, datetime):
        return isinstance(stored, datetime) and isinstance(wanted, datetime) and stored == wanted
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(wanted, str) or isinstance(stored, str):
        return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted
    return is_number(stored) and stored == wanted


def _element_holds(op: ComparisonOp, stored: MetadataValue, wanted: FilterValue | tuple[FilterValue, ...]) -> bool:
    if op in ("eq", "ne"):
        return scalar_equals(stored, wanted)  # type: ignore[arg-type]
    if op in ("in", "nin"):
        return any(scalar_equals(stored, option) for option in wanted)  # type: ignore[union-attr]
    if isinstance(wanted, datetime):
        if not isinstance(stored, datetime):
            return False
        return _ordered(op, stored, wanted)
    if not is_number(stored):
        return False
    assert isinstance(stored, int | float) and isinstance(wanted, int | float)
    return _ordered(op, stored, wanted)


def _ordered(op: ComparisonOp, stored: Any, wanted: Any) -> bool:
    if op == "lt":
        return bool(stored < wanted)
    if op == "lte":
        return bool(stored <= wanted)
    if op == "gt":
        return bool(stored > wanted)
    return bool(stored >= wanted)


def matches(node: Filter | Mapping[str, object] | None, metadata: Mapping[str, object]) -> bool:
    """The reference semantics: does ``metadata`` satisfy ``node``?

    :param node: a tree from :func:`parse_filter`, or a filter dict as
        ``search`` takes it (parsed here, so a malformed one is a
        :class:`FilterError`); None is no filter.
    :param metadata: a document's metadata.
    """
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(clause, metadata) for clause in node.clauses)
    if isinstance(node, Or):
        return any(matches(clause, metadata) for clause in node.clauses)
    if isinstance(node, Not):
        return not matches(node.clause, metadata)
    leaf: Comparison | Exists = node  # type: ignore[assignment]  # a Mapping is caught below; no cast() call
    try:
        field = leaf.field
    except AttributeError:
        # Found by the missing attribute, so that the backends' loops over parsed trees pay nothing for it.
        if isinstance(node, Mapping):
            return matches(parse_filter(node), metadata)
        raise FilterError(f"filter must be a dict or a parsed filter node, not {type(node).__name__}") from None
    present = [element for element in field_values(metadata, field) if element is not None]
    if isinstance(leaf, Exists):
        return bool(present) == leaf.present
    if leaf.op in ("ne", "nin"):
        positive: ComparisonOp = "eq" if leaf.op == "ne" else "in"
        return not any(_element_holds(positive, element, leaf.value) for element in present)
    return any(_element_holds(leaf.op, element, leaf.value) for element in present)


__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_TERMS",
    "MAX_PATH_SEGMENTS",
    "And",
    "Comparison",
    "ComparisonOp",
    "Exists",
    "Filter",
    "FilterValue",
    "Not",
    "Or",
    "check_field_path",
    "field_path",
    "field_values",
    "filter_size",
    "is_number",
    "matches",
    "parse_filter",
    "path_values",
    "scalar_equals",
]
