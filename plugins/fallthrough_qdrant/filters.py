"""The filter tree compiled to a ``qdrant_client.models.Filter``, with the core's semantics exactly.

Qdrant's own typing is close to the core's but not the same: ``MatchValue``
takes no float, so equality on numbers needs a range, and whether ``1``
equals ``1.0`` or ``true`` would be the store's rule, not the core's. So that
the store's typing never decides, the values of each field are stored once
more, split by type, under a hex-encoded name (metadata keys may hold
characters Qdrant's key paths would read as structure)::

    s.k<hex>: [the field's strings]
    n.k<hex>: [the field's numbers]      (bool excluded)
    b.k<hex>: [the field's bools]
    d.k<hex>: [the field's datetimes]    (RFC 3339 UTC text: :func:`fallthrough.kit.rfc3339`)
    o.k<hex>: [true]                     (the field has an object among its values)

**Nested metadata.** A field is a dotted path (``dims.width``), and ``<hex>``
encodes the whole path. Its values are written per path, as
:func:`fallthrough.filters.path_values` finds them: every path of the
document, with a list fanned out and a list of objects walked through, as
:func:`fallthrough.filters.field_values` defines. Qdrant's own nested keys
were checked and do not fit: in qdrant-client's local mode (as on the
server) ``a.b`` takes key ``b`` of an object ``a`` but finds nothing when
``a`` is a list of objects, and ``a[].b`` the reverse, so a path whose
shape differs from one document to the next (an object here, a list there,
at any of its steps) would need every combination, 2**(steps - 1)
conditions, and a final list of lists would still differ. Keeping each
path's values flat makes every condition one condition on one key, whose
payload index (``d.`` keys get a datetime index) serves it at any depth.

None elements are left out, so a missing field, a None value, ``[]`` and
``[None]`` all have no entry. A datetime is kept apart from the strings: a
string that looks like a date is under ``s.``, never under ``d.``, so it
neither equals a datetime nor falls in a datetime range. Then every
comparison has an exact form:

* ``eq`` on a str is ``MatchValue`` on ``s.``, on a bool ``MatchValue`` on
  ``b.``, on a number ``Range(gte=v, lte=v)`` on ``n.`` (so ``420 == 420.0``,
  and a bool never equals a number), on a datetime
  ``DatetimeRange(gte=v, lte=v)`` on ``d.`` (the same instant);
* ``lt``/``lte``/``gt``/``gte`` are ranges on ``n.`` for a number and
  ``DatetimeRange`` on ``d.`` for a datetime (Qdrant's datetime range, which
  a ``datetime`` payload index serves: documents.py creates one on each
  ``d.`` field written);
* ``in`` is a ``should`` of equalities; ``ne``, ``nin`` and ``not`` are
  ``must_not`` of the positive form, so they hold on a missing field;
* ``exists: True`` is a ``should`` of "not ``is_empty``" on the field's five
  typed keys; ``exists: False`` is ``must`` of ``is_empty`` on all five
  (an object, even empty, is present; it is under ``o.`` only, so it never
  equals or ranges).
  ``is_empty`` holds for a missing key and ``[]``; since None elements are
  never stored, ``None`` and ``[None]`` are absent exactly as the reference
  says (Qdrant's own ``is_empty`` would not count ``[null]`` as empty, and
  ``is_null`` would count ``[null, 1]`` as null);
* on a list, a Qdrant condition holds when one element satisfies it, which
  is the core's rule; ``ne``/``nin`` then mean "no element equal".

Numbers in metadata and filters lie within +-(2**53 - 1), so the float
bounds of a range hold them exactly. Datetimes are compared by Qdrant to the
microsecond.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from qdrant_client import models

from fallthrough.filters import And, Comparison, Exists, Filter, FilterValue, Not, Or, is_number, path_values
from fallthrough.kit import rfc3339
from fallthrough.types import MetadataValue, Scalar

TYPED = ("s", "n", "b", "d", "o")
"""The payload objects holding a field's strings, numbers, bools, datetimes and (a marker of) objects."""


def field_key(field: str) -> str:
    """The hex-encoded payload key of a metadata field: only ``[0-9a-f]`` after a ``k``."""
    return "k" + field.encode("utf-8").hex()


def typed_fields(metadata: Mapping[str, MetadataValue]) -> dict[str, dict[str, list[Scalar]]]:
    """The ``s``/``n``/``b``/``d``/``o`` payload objects for ``metadata``, one key per dotted path."""
    typed: dict[str, dict[str, list[Scalar]]] = {kind: {} for kind in TYPED}
    for path, values in path_values(metadata).items():
        key = field_key(path)
        for element in values:
            if isinstance(element, bool):
                typed["b"].setdefault(key, []).append(element)
            elif isinstance(element, str):
                typed["s"].setdefault(key, []).append(element)
            elif isinstance(element, datetime):
                typed["d"].setdefault(key, []).append(rfc3339(element))
            elif isinstance(element, Mapping):
                typed["o"][key] = [True]
            elif is_number(element):
                typed["n"].setdefault(key, []).append(element)  # type: ignore[arg-type]
    return typed


def datetime_keys(metadata: Mapping[str, MetadataValue]) -> set[str]:
    """The ``d.k<hex>`` payload keys ``metadata`` writes a datetime to (each wants a datetime index)."""
    return {f"d.{key}" for key in typed_fields(metadata)["d"]}


def compile_filter(node: Filter) -> models.Filter:
    condition = _compile(node)
    return condition if isinstance(condition, models.Filter) else models.Filter(must=[condition])


def _compile(node: Filter) -> models.Condition:
    if isinstance(node, And):
        return models.Filter(must=[_compile(clause) for clause in node.clauses])
    if isinstance(node, Or):
        return models.Filter(should=[_compile(clause) for clause in node.clauses])
    if isinstance(node, Not):
        return models.Filter(must_not=[_compile(node.clause)])
    if isinstance(node, Exists):
        return _exists(node)
    return _comparison(node)


def _exists(node: Exists) -> models.Filter:
    key = field_key(node.field)
    empty: list[models.Condition] = [
        models.IsEmptyCondition(is_empty=models.PayloadField(key=f"{kind}.{key}")) for kind in TYPED
    ]
    if node.present:
        return models.Filter(should=[models.Filter(must_not=[condition]) for condition in empty])
    return models.Filter(must=empty)


def _comparison(node: Comparison) -> models.Condition:
    if node.op == "eq":
        assert not isinstance(node.value, tuple)
        return _equals(node.field, node.value)
    if node.op == "ne":
        assert not isinstance(node.value, tuple)
        return models.Filter(must_not=[_equals(node.field, node.value)])
    if node.op in ("in", "nin"):
        assert isinstance(node.value, tuple)
        options: list[models.Condition] = [_equals(node.field, option) for option in node.value]
        return models.Filter(should=options) if node.op == "in" else models.Filter(must_not=options)
    key = field_key(node.field)
    if isinstance(node.value, datetime):
        moment = node.value
        dates = {
            "lt": models.DatetimeRange(lt=moment),
            "lte": models.DatetimeRange(lte=moment),
            "gt": models.DatetimeRange(gt=moment),
            "gte": models.DatetimeRange(gte=moment),
        }
        return models.FieldCondition(key=f"d.{key}", range=dates[node.op])
    assert is_number(node.value)
    bound = float(node.value)  # type: ignore[arg-type]
    ranges = {"lt": models.Range(lt=bound), "lte": models.Range(lte=bound), "gt": models.Range(gt=bound)}
    return models.FieldCondition(key=f"n.{key}", range=ranges.get(node.op, models.Range(gte=bound)))


def _equals(field: str, value: FilterValue) -> models.FieldCondition:
    key = field_key(field)
    if isinstance(value, bool):
        return models.FieldCondition(key=f"b.{key}", match=models.MatchValue(value=value))
    if isinstance(value, str):
        return models.FieldCondition(key=f"s.{key}", match=models.MatchValue(value=value))
    if isinstance(value, datetime):
        return models.FieldCondition(key=f"d.{key}", range=models.DatetimeRange(gte=value, lte=value))
    bound = float(value)
    return models.FieldCondition(key=f"n.{key}", range=models.Range(gte=bound, lte=bound))


__all__ = ["TYPED", "compile_filter", "datetime_keys", "field_key", "typed_fields"]
