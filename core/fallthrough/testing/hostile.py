"""Malformed and extreme arguments for every public Store method, as a hostile caller would send them.

:data:`HOSTILE_CALLS` maps each public :class:`~fallthrough.Store` method to
a builder of a Hypothesis strategy for its arguments: a new public method is
one more entry. Each argument is drawn from a mix of values the core must
refuse (None, numbers past every limit, NUL and lone surrogates, wrong
types, filters too big or too deep, vectors with ``10**400``) and values it
accepts (a real batch, a real collection, valid keys), so that refused and
accepted calls alike reach as far as they can.

:func:`call_store` runs one :class:`HostileCall` and says how it ended; the
hostile suite (:mod:`fallthrough.testing.suite.hostile`) asserts that only
:data:`DOCUMENTED_ERRORS` come out, and that a refused call left the store
exactly as it was.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import strategies as st

from ..errors import InvalidInput, NotFound, Unsupported, UnsupportedQuery
from ..filters import MAX_FILTER_DEPTH, MAX_FILTER_TERMS
from ..types import Document, RecordUpdate
from ..validation import MAX_ATTEMPT, MAX_KEY_LENGTH, MAX_LEASE, MAX_SAFE_INTEGER, MAX_STORED_ATTEMPT, MAX_TIMEOUT
from . import strategies

DOCUMENTED_ERRORS: tuple[type[Exception], ...] = (InvalidInput, NotFound, UnsupportedQuery, Unsupported)
"""What a healthy backend may answer a hostile call with: refused input, a missing batch or record,
a query no backend of the Store can evaluate, or a claim where no backend can claim. ``FilterError``
is an ``InvalidInput``. Anything else, ``PluginError`` included, means a backend or the core let bad
input through."""


@attrs.frozen
class Target:
    """The real things a hostile call may aim at: a batch with keys, a collection with documents."""

    batch_id: uuid.UUID
    keys: tuple[str, ...]
    collection: str
    document_ids: tuple[str, ...]
    dimension: int


@attrs.frozen
class HostileCall:
    """One call of a public Store method: its name and its arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        shown = [_short(arg) for arg in self.args] + [f"{k}={_short(v)}" for k, v in self.kwargs.items()]
        return f"store.{self.method}({', '.join(shown)})"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else f"{text[:300]}... ({len(text)} characters)"


class _Opaque:
    """An object that is nothing fallthrough knows."""

    def __repr__(self) -> str:
        return "<opaque>"


# -- single values -----------------------------------------------------------

HUGE_INTS = (2**31 - 1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**100, 10**400, -(2**63) - 1)
BAD_STRINGS = ("", "\x00", "a\x00b", "\ud800", "x\udfffy", "a" * (MAX_KEY_LENGTH + 1), " ", "\n")
STRANGE_FLOATS = (math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0)


def junk(*, names: bool = True) -> st.SearchStrategy[Any]:
    """Any value of a wrong or extreme kind; with ``names=False``, no short text that could name a real collection."""
    anything = st.one_of(
        st.sampled_from(
            [None, True, False, 0, -1, *HUGE_INTS, *STRANGE_FLOATS, *BAD_STRINGS, b"bytes", bytearray(b"x")]
        ),
        st.sampled_from(
            [
                [],
                {},
                [None],
                [[1]],
                {"a": {"b": 1}},
                (1, 2),
                {1, 2},
                frozenset(),
                _Opaque(),
                datetime(2024, 1, 1),
                date(2024, 1, 1),
                uuid.UUID(int=0),
                Document,
            ]
        ),
        st.integers(),
        st.floats(),
    )
    return st.one_of(anything, st.text(max_size=5)) if names else anything


def keys_or_junk() -> st.SearchStrategy[Any]:
    """A key: valid, as long as allowed, one past it, or anything else."""
    longest = st.sampled_from(["k" * MAX_KEY_LENGTH, "\U0001f600" * MAX_KEY_LENGTH, "k" * (MAX_KEY_LENGTH + 1)])
    return st.one_of(strategies.keys(), longest, junk())


def key_lists(target: Target) -> st.SearchStrategy[Any]:
    element = st.one_of(st.sampled_from(target.keys), keys_or_junk())
    return st.one_of(
        st.lists(element, max_size=5),
        st.lists(st.sampled_from(target.keys), min_size=2, max_size=4),  # duplicates
        st.lists(element, max_size=3).map(tuple),
        junk(),
    )


def batch_ids(target: Target) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(target.batch_id),
        st.just(str(target.batch_id)),
        st.uuids(),
        st.sampled_from(["not-a-uuid", str(target.batch_id).upper() + "\x00", f"{{{target.batch_id}}}"]),
        junk(),
    )


def attempts() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.sampled_from([0, 1, MAX_ATTEMPT, MAX_ATTEMPT + 1, MAX_STORED_ATTEMPT, -1, *HUGE_INTS]),
        junk(),
    )


def json_or_junk(depth: int = 3) -> st.SearchStrategy[Any]:
    """A JSON-like value with extremes at any level: NaN, huge ints, NUL, tuples, non-str keys."""
    leaf = st.one_of(
        strategies.json_values(max_leaves=2),
        st.sampled_from([math.nan, math.inf, 2**63, -(2**63) - 1, 10**400, "\x00", "\ud800", (1,), _Opaque()]),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(
                st.one_of(st.text(max_size=3), st.sampled_from([1, None, "\x00", "\ud800"])), inner, max_size=3
            ),
        ),
        max_leaves=6,
    )


def deep_json(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def results() -> st.SearchStrategy[Any]:
    return st.one_of(json_or_junk(), st.sampled_from([64, 65, 500]).map(deep_json))


def metadata_values() -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        strategies.metadata_scalars(),
        st.sampled_from(
            [
                math.nan,
                math.inf,
                MAX_SAFE_INTEGER,
                MAX_SAFE_INTEGER + 1,
                -(2**60),
                "\x00",
                "\ud800",
                {"nested": 1},
                [1],
                (1,),
                datetime(2024, 1, 1),
                date(2024, 1, 1),
                datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
                _Opaque(),
            ]
        ),
    )
    return st.one_of(scalar, st.lists(scalar, max_size=3))


def metadata() -> st.SearchStrategy[Any]:
    field = st.one_of(
        st.sampled_from(
            ["n", "tag", "and", "or", "not", "", "a\x00", "\ud800", 'q"', "b\\", "c\n", "x" * 257, 1, None]
        ),
        st.text(max_size=4),
    )
    return st.one_of(st.dictionaries(field, metadata_values(), max_size=3), junk())


def vectors(dimension: int) -> st.SearchStrategy[Any]:
    component = st.one_of(
        st.floats(width=32, allow_nan=False, allow_infinity=False),
        st.sampled_from([*HUGE_INTS, *STRANGE_FLOATS, 1e-30, 1e30, 3.5e38, True, "1.0", None, [1.0]]),
    )
    return st.one_of(
        st.lists(component, min_size=dimension, max_size=dimension),
        st.lists(component, max_size=dimension + 2),
        st.just([0.0] * dimension),
        st.just([1e-30] * dimension),
        st.just([1e20] * dimension),
        st.just({1.0: 2.0}),
        st.just({1.0, 2.0}),
        st.just("12"),
        junk(),
    )


def documents(target: Target) -> st.SearchStrategy[Any]:
    """A Document built from hostile parts (which may itself be refused), or something else altogether."""
    ids = st.one_of(st.sampled_from(target.document_ids), keys_or_junk())
    texts = st.one_of(strategies.texts(), st.sampled_from(["\x00", "\ud800", "a" * 10_000]), junk())
    built = st.builds(
        _build_document,
        ids,
        texts,
        st.one_of(st.none(), vectors(target.dimension)),
        metadata(),
    )
    return st.one_of(built, junk())


def _build_document(identifier: Any, text: Any, vector: Any, metadata: Any) -> Any:
    try:
        return Document(identifier, text=text, vector=vector, metadata=metadata)
    except InvalidInput as error:
        # Refused on construction: the call gets what cannot be a Document.
        return _Refused(error)


@attrs.frozen
class _Refused:
    """A value whose construction was refused (with a documented error); passed on as it is."""

    error: Exception


def updates(target: Target) -> st.SearchStrategy[Any]:
    built = st.builds(
        _build_update,
        batch_ids(target),
        st.one_of(st.sampled_from(target.keys), keys_or_junk()),
        st.one_of(strategies.statuses(), st.sampled_from(["done", "", None, 2, "COMPLETED"])),
        results(),
        st.one_of(st.none(), st.sampled_from(["boom", "\x00", "\ud800"]), junk()),
        attempts(),
    )
    return st.one_of(built, junk())


def _build_update(batch_id: Any, key: Any, status: Any, result: Any, error: Any, attempt: Any) -> Any:
    try:
        return RecordUpdate(batch_id, key, status, result=result, error=error, attempt=attempt)
    except InvalidInput as refused:
        return _Refused(refused)


def collections(target: Target) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(target.collection),
        st.sampled_from(["", "-a", "a" * 64, "a b", "a\x00", "\ud800", "é", "a/b", "a.b", "A" * 63 + "\n"]),
        junk(names=False),
    )


# -- filters -------------------------------------------------------------------

FIELDS = ("n", "tag", "missing")


def filter_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        strategies.filter_operands(),
        st.sampled_from(
            [
                None,
                "\x00",
                "\ud800",
                "a\udfff",
                MAX_SAFE_INTEGER + 1,
                10**400,
                math.nan,
                math.inf,
                datetime(2024, 1, 1),
                date(2024, 1, 1),
                [],
                {},
                (1,),
                _Opaque(),
            ]
        ),
    )


def _conditions() -> st.SearchStrategy[Any]:
    ops = st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists", "like", "", "$eq"])
    operand = st.one_of(filter_values(), st.lists(filter_values(), max_size=3), st.booleans())
    return st.one_of(filter_values(), st.dictionaries(ops, operand, max_size=2))


def filters() -> st.SearchStrategy[Any]:
    """Filters small and malformed, or at and past the size and depth limits."""
    field = st.one_of(st.sampled_from(FIELDS), st.sampled_from(["and ", "", "\ud800", "a\x00", 'q"', 5]))
    leaf = st.dictionaries(field, _conditions(), min_size=1, max_size=2)
    nested = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.dictionaries(st.sampled_from(["and", "or"]), st.lists(inner, max_size=3), min_size=1, max_size=1),
            st.builds(lambda clause: {"not": clause}, inner),
        ),
        max_leaves=5,
    )
    return st.one_of(
        st.none(),
        nested,
        st.integers(1, MAX_FILTER_TERMS + 2).map(_wide_or),
        st.sampled_from([MAX_FILTER_DEPTH, MAX_FILTER_DEPTH + 1, 200]).map(_deep_not),
        st.integers(1, MAX_FILTER_TERMS + 2).map(lambda size: {"n": {"in": list(range(size))}}),
        st.just(5000).map(_wide_or),
        junk(),
    )


def _wide_or(size: int) -> dict[str, Any]:
    return {"or": [{"n": index} for index in range(size)]}


def _deep_not(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"n": 1}
    for _ in range(depth):
        spec = {"not": spec}
    return spec


def page_sizes() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from([1, 2, 10_000, 100_000, 100_001, 0, -1, 2**63, 1.5, True]), junk())


def leases() -> st.SearchStrategy[Any]:
    """Seconds of a lease: valid, the longest, one past it, zero, negative, not finite, or anything else."""
    edges = [0.001, 1, 60.0, MAX_LEASE, MAX_LEASE + 1, 0, -1.0, math.nan, math.inf, 10**400, True]
    return st.one_of(st.sampled_from(edges), junk())


def timeouts() -> st.SearchStrategy[Any]:
    """Seconds to wait: none, zero, some, the longest, one past it, negative, not finite, or anything else."""
    edges = [None, 0, 0.01, 1, MAX_TIMEOUT, MAX_TIMEOUT + 1, -1, math.nan, math.inf, 10**400, True]
    return st.one_of(st.sampled_from(edges), junk())


def grace_periods() -> st.SearchStrategy[Any]:
    """A purge's ``older_than``: seconds or a timedelta, valid, zero, negative, not finite, huge, or anything else."""
    edges = [
        timedelta(days=10),
        timedelta.max,
        timedelta(0),
        timedelta(microseconds=-1),
        86_400,
        0.5,
        0,
        -1.0,
        math.nan,
        math.inf,
        1e303,
        10**400,
        True,
    ]
    return st.one_of(st.sampled_from(edges), junk())


def write_concerns() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.sampled_from(["all", "first", "ALL", "", "some"]), junk())


# -- the table -------------------------------------------------------------------

CallStrategy = Callable[[Target], st.SearchStrategy[HostileCall]]


def _call(
    method: str,
    *args: st.SearchStrategy[Any],
    required: Mapping[str, st.SearchStrategy[Any]] | None = None,
    **kwargs: st.SearchStrategy[Any],
) -> st.SearchStrategy[HostileCall]:
    """A call of ``method``: every positional argument, the ``required`` keywords, and any of the optional ones."""
    keywords = st.fixed_dictionaries(dict(required or {}), optional=kwargs)
    return st.builds(HostileCall, st.just(method), st.tuples(*args), keywords)


HOSTILE_CALLS: dict[str, CallStrategy] = {
    "create_batch": lambda t: _call(
        "create_batch",
        key_lists(t),
        batch_id=st.one_of(st.none(), batch_ids(t)),
        metadata=st.one_of(results(), metadata()),
    ),
    "add_records": lambda t: _call("add_records", batch_ids(t), key_lists(t)),
    "update": lambda t: _call(
        "update",
        batch_ids(t),
        st.one_of(st.sampled_from(t.keys), keys_or_junk()),
        st.one_of(strategies.statuses(), junk()),
        result=results(),
        error=st.one_of(st.none(), st.sampled_from(["\x00", "\ud800"]), junk()),
        attempt=attempts(),
        write_concern=write_concerns(),
    ),
    "update_many": lambda t: _call(
        "update_many", st.one_of(st.lists(updates(t), max_size=4), junk()), write_concern=write_concerns()
    ),
    "retry": lambda t: _call("retry", batch_ids(t)),
    # The target batch stays: the other calls aim at it.
    "delete_batch": lambda t: _call("delete_batch", batch_ids(t).filter(lambda b: str(b).lower() != str(t.batch_id))),
    "get_batch": lambda t: _call("get_batch", batch_ids(t)),
    "get_record": lambda t: _call("get_record", batch_ids(t), st.one_of(st.sampled_from(t.keys), keys_or_junk())),
    "progress": lambda t: _call("progress", batch_ids(t)),
    "records": lambda t: _call(
        "records", batch_ids(t), status=st.one_of(st.none(), strategies.statuses(), junk()), page_size=page_sizes()
    ),
    "claim": lambda t: _call(
        "claim", batch_ids(t), required={"worker": keys_or_junk()}, limit=page_sizes(), lease=leases()
    ),
    "extend_leases": lambda t: _call(
        "extend_leases", batch_ids(t), key_lists(t), required={"worker": keys_or_junk()}, lease=leases()
    ),
    "drain": lambda t: _call("drain", timeouts()),
    "batches": lambda t: _call("batches", limit=st.one_of(st.none(), page_sizes()), page_size=page_sizes()),
    "upsert_documents": lambda t: _call(
        "upsert_documents",
        collections(t),
        st.one_of(st.lists(documents(t), max_size=3), junk()),
        write_concern=write_concerns(),
    ),
    "delete_documents": lambda t: _call(
        "delete_documents", collections(t), st.one_of(st.lists(keys_or_junk(), max_size=3), junk())
    ),
    "get_documents": lambda t: _call(
        "get_documents",
        collections(t),
        st.one_of(st.lists(st.one_of(st.sampled_from(t.document_ids), keys_or_junk()), max_size=3), junk()),
    ),
    "search": lambda t: _call(
        "search",
        collections(t),
        text=st.one_of(st.none(), strategies.query_texts(), st.sampled_from(["", "!!", "\x00", "\ud800"]), junk()),
        vector=st.one_of(st.none(), vectors(t.dimension)),
        filter=filters(),
        limit=page_sizes(),
        with_vectors=st.one_of(st.booleans(), junk()),
    ),
    "count": lambda t: _call("count", collections(t), filters()),
    "documents": lambda t: _call("documents", collections(t), filter=filters(), page_size=page_sizes()),
    # The target collection stays: the other calls aim at it.
    "drop_collection": lambda t: _call(
        "drop_collection",
        st.one_of(st.just("dropped"), collections(t).filter(lambda c: c != t.collection)),
        write_concern=write_concerns(),
    ),
    "repair": lambda t: _call(
        "repair",
        st.one_of(st.none(), batch_ids(t)),
        collection=st.one_of(st.none(), collections(t)),
        page_size=page_sizes(),
    ),
    "purge_tombstones": lambda t: _call(
        "purge_tombstones",
        grace_periods(),
        collection=st.one_of(st.none(), collections(t)),
        page_size=page_sizes(),
    ),
}
"""Every public Store method that takes arguments, with a strategy for hostile calls of it."""


def hostile_calls(target: Target) -> st.SearchStrategy[HostileCall]:
    """A call of any method of :data:`HOSTILE_CALLS`."""
    return st.one_of(*(build(target) for build in HOSTILE_CALLS.values()))


def run_call(store: Any, call: HostileCall) -> Any:
    """Make ``call`` on ``store``; an argument refused while it was built is raised as it was."""
    for value in (*call.args, *call.kwargs.values()):
        _raise_refused(value)
    result = getattr(store, call.method)(*call.args, **call.kwargs)
    if call.method in ("records", "batches", "documents"):
        return list(result)
    return result


def _raise_refused(value: object) -> None:
    if isinstance(value, _Refused):
        raise value.error
    if isinstance(value, list):
        for item in value:
            _raise_refused(item)


__all__ = [
    "DOCUMENTED_ERRORS",
    "HOSTILE_CALLS",
    "HostileCall",
    "Target",
    "hostile_calls",
    "junk",
    "run_call",
]
