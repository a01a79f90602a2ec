"""The filter tree compiled to a ``qdrant_client.models.Filter``, with the core's semantics exactly.

Qdrant's own typing is close to the core's but not the same: ``MatchValue``
takes no float, so equality on numbers needs a range, and whether ``1``
equals ``1.0`` or ``true`` would be the store's rule, not the core's. So that
the store's typing never decides, each metadata field is stored three more
times, split by type, under a hex-encoded name (metadata keys may hold ``.``
or ``[``, which Qdrant's key paths would read as structure)::

    s.k<hex>: [the field's strings]
    n.k<hex>: [the field's numbers]      (bool excluded)
    b.k<hex>: [the field's bools]

None elements are left out, so a missing field and a None value both have
no entry. Then every comparison has an exact form:

* ``eq`` on a str is ``MatchValue`` on ``s.``, on a bool ``MatchValue`` on
  ``b.``, on a number ``Range(gte=v, lte=v)`` on ``n.`` (so ``420 == 420.0``,
  and a bool never equals a number);
* ``lt``/``lte``/``gt``/``gte`` are ranges on ``n.``;
* ``in`` is a ``should`` of equalities; ``ne``, ``nin`` and ``not`` are
  ``must_not`` of the positive form, so they hold on a missing field;
* on a list, a Qdrant condition holds when one element satisfies it, which
  is the core's rule; ``ne``/``nin`` then mean "no element equal".

Numbers in metadata and filters lie within +-(2**53 - 1), so the float
bounds of a range hold them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from qdrant_client import models

from fallthrough.filters import And, Comparison, Filter, FilterValue, Not, Or, is_number
from fallthrough.types import Scalar


def field_key(field: str) -> str:
    """The hex-encoded payload key of a metadata field: only ``[0-9a-f]`` after a ``k``."""
    return "k" + field.encode("utf-8").hex()


def typed_fields(metadata: Mapping[str, Scalar | list[Scalar]]) -> dict[str, dict[str, list[Scalar]]]:
    """The ``s``/``n``/``b`` payload objects for ``metadata``."""
    strings: dict[str, list[Scalar]] = {}
    numbers: dict[str, list[Scalar]] = {}
    bools: dict[str, list[Scalar]] = {}
    for field, value in metadata.items():
        elements = value if isinstance(value, list) else [value]
        key = field_key(field)
        for element in elements:
            if isinstance(element, bool):
                bools.setdefault(key, []).append(element)
            elif isinstance(element, str):
                strings.setdefault(key, []).append(element)
            elif is_number(element):
                numbers.setdefault(key, []).append(element)
    return {"s": strings, "n": numbers, "b": bools}


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
    return _comparison(node)


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
    assert is_number(node.value)
    bound = float(node.value)  # type: ignore[arg-type]
    ranges = {"lt": models.Range(lt=bound), "lte": models.Range(lte=bound), "gt": models.Range(gt=bound)}
    return models.FieldCondition(key=f"n.{field_key(node.field)}", range=ranges.get(node.op, models.Range(gte=bound)))


def _equals(field: str, value: FilterValue) -> models.FieldCondition:
    key = field_key(field)
    if isinstance(value, bool):
        return models.FieldCondition(key=f"b.{key}", match=models.MatchValue(value=value))
    if isinstance(value, str):
        return models.FieldCondition(key=f"s.{key}", match=models.MatchValue(value=value))
    bound = float(value)
    return models.FieldCondition(key=f"n.{key}", range=models.Range(gte=bound, lte=bound))


__all__ = ["compile_filter", "field_key", "typed_fields"]
