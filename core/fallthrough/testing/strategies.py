"""Hypothesis strategies for valid fallthrough inputs, aimed at where stores differ.

Every strategy yields values the core accepts, so a failure is the
backend's. They lean on the places where stores tend to disagree: keys and
ids whose order differs between code-point and collation order, JSON values
that ``==`` would confuse (``1``, ``1.0``, ``True``), float32 vectors with
exact and near ties, text whose tokens need NFC and casefolding, datetimes
whose stored instant equals a number or spells a string of the pool, and
filters (presence included) over fields that are missing, None, lists, or of
another type than the operand.

Examples stay small (a handful of keys, 3-dimensional vectors, shallow
filters) so the default profile runs fast; rare cases come from the
choice of values, not from size.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, ParamSpec, TypeVar

from hypothesis import strategies as st

from ..filters import RANGE_OPS
from ..text import token_set
from ..types import Document, Record, RecordUpdate, Status, from_micros, to_micros
from ..validation import JSON, MAX_SAFE_INTEGER, Metadata, MetadataValue, Scalar, check_vector
from . import profiles  # noqa: F401  (importing it registers the ci and thorough profiles)

P = ParamSpec("P")
T = TypeVar("T")


# Strategies are immutable and costly to build (Hypothesis validates and
# labels each new one), so every builder below is cached.
def cached(builder: Callable[P, T]) -> Callable[P, T]:
    """:func:`functools.cache` that keeps the builder's signature for type checkers."""
    return functools.cache(builder)  # type: ignore[return-value]


# Any character a store can hold: no NUL, no lone surrogate (category Cs).
_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_STORABLE_CHARACTERS = st.characters(exclude_categories=_SURROGATES, exclude_characters="\x00")

# --------------------------------------------------------------------------
# Keys and ids
# --------------------------------------------------------------------------

# Characters whose code-point order differs from common collations: case,
# Cyrillic (incl. ё, which sorts apart from е), punctuation, a character
# above the BMP (UTF-16 collations order it before U+FFxx), whitespace.
KEY_CHARACTERS = "aAbBzZ09_-.,/:;'\"\\ \tабвгдеёжАБЕЁЖüßÄ\uff21\U0001f600"


@cached
def keys(max_size: int = 8) -> st.SearchStrategy[str]:
    """A record key or document id: 1 to ``max_size`` characters, no NUL, no lone surrogate."""
    characters = st.one_of(
        st.sampled_from(KEY_CHARACTERS),
        _STORABLE_CHARACTERS,
    )
    return st.text(characters, min_size=1, max_size=max_size)


DOCUMENT_IDS = ("a", "A", "b", "B", "a-1", "a1", "a_1", "ä", "д", "Д", "ё", "z", "\U0001f600")
"""A small pool of ids, so documents get replaced and ties are broken by id often."""


@cached
def document_ids() -> st.SearchStrategy[str]:
    """Mostly ids from :data:`DOCUMENT_IDS`, sometimes any key."""
    return st.one_of(st.sampled_from(DOCUMENT_IDS), keys(max_size=4))


# --------------------------------------------------------------------------
# JSON values
# --------------------------------------------------------------------------

# Results must round-trip exactly. Integers stay within int64: the core does
# not bound them, but no JSON column of a mainstream store keeps more.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@cached
def json_strings(max_size: int = 8) -> st.SearchStrategy[str]:
    """Any text a store can hold: no NUL, no lone surrogate."""
    return st.text(_STORABLE_CHARACTERS, max_size=max_size)


@cached
def json_values(max_leaves: int = 6) -> st.SearchStrategy[JSON]:
    """A JSON value: null, bools, int64 ints, finite floats (incl. -0.0 and extremes), strings, lists, objects."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([0, 1, 0.0, 1.0, -0.0, 2**53 + 1, INT64_MAX, INT64_MIN, 1e308, 5e-324, 0.1]),
        st.integers(INT64_MIN, INT64_MAX),
        st.floats(allow_nan=False, allow_infinity=False),
        json_strings(),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(json_strings(max_size=4), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )


@cached
def json_objects(max_leaves: int = 4) -> st.SearchStrategy[dict[str, JSON]]:
    """A JSON object, such as batch metadata."""
    return st.dictionaries(json_strings(max_size=4), json_values(max_leaves=max_leaves), max_size=3)


# --------------------------------------------------------------------------
# Stamps and record updates
# --------------------------------------------------------------------------

BASE_TIME = datetime(2025, 1, 1, 12, 0, 0, 123_456, tzinfo=UTC)
"""The earliest stamp drawn: a realistic time with a non-zero microsecond part."""

BASE_SEQ = to_micros(BASE_TIME)
"""The smallest ``first_seq`` drawn; the core's seq follows the microsecond clock."""


@cached
def timestamps(spread: int = 12) -> st.SearchStrategy[datetime]:
    """Stamps within ``spread`` microseconds of :data:`BASE_TIME`.

    The window is narrow on purpose: successive draws are often equal or go
    back in time, which is how updates race, and equal stamps send the merge
    to its tiebreak.
    """
    return st.integers(0, spread).map(lambda offset: from_micros(BASE_SEQ + offset))


@cached
def first_seqs(spread: int = 12) -> st.SearchStrategy[int]:
    """A ``first_seq`` near :data:`BASE_SEQ`; ranges of different calls overlap, so keys share seqs."""
    return st.integers(0, spread).map(lambda offset: BASE_SEQ + offset)


@cached
def statuses() -> st.SearchStrategy[Status]:
    return st.sampled_from(list(Status))


@cached
def attempts() -> st.SearchStrategy[int | None]:
    """Unpinned (None) or pinned to one of the first few attempts."""
    return st.one_of(st.none(), st.integers(0, 3))


@cached
def errors() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), json_strings(max_size=6))


def record_updates(batch_id: uuid.UUID, key: str) -> st.SearchStrategy[RecordUpdate]:
    """An update of one record to any status, result, error and attempt."""
    return _update_contents().map(
        lambda contents: RecordUpdate(batch_id, key, contents[0], contents[1], contents[2], contents[3])
    )


@cached
def _update_contents() -> st.SearchStrategy[tuple[Status, JSON, str | None, int | None]]:
    return st.tuples(statuses(), json_values(max_leaves=3), errors(), attempts())


WORKERS = ("w1", "w2", "воркер-3")
"""Workers that hold leases: few, so that they meet on the same records."""


@cached
def lease_lengths() -> st.SearchStrategy[timedelta]:
    """Leases as long as the stamps' window, which later steps see end (often at the very microsecond), or longer."""
    return st.one_of(
        st.integers(1, 16).map(lambda us: timedelta(microseconds=us)),
        st.integers(1, 10**7).map(lambda us: timedelta(microseconds=us)),
    )


def full_records(batch_id: uuid.UUID, key: str) -> st.SearchStrategy[Record]:
    """A record's full state, as a repair sends it to ``fallthrough_merge_records``.

    Sometimes a claimed state: processing, with no result or error, under a
    lease (``lease_owner`` and ``lease_expires`` both set, as a claim leaves
    them); otherwise no lease, both None. A backend that merges records
    carries leases whether or not it claims: beside a backend that claims,
    claims reach it this way.
    """
    unleased = st.builds(
        Record,
        batch_id=st.just(batch_id),
        key=st.just(key),
        seq=first_seqs(),
        status=statuses(),
        attempt=st.integers(0, 3),
        result=json_values(max_leaves=3),
        error=errors(),
        updated_at=timestamps(),
    )
    claimed = st.builds(
        lambda seq, attempt, updated_at, owner, lease: Record(
            batch_id, key, seq, Status.PROCESSING, attempt, None, None, updated_at, owner, updated_at + lease
        ),
        first_seqs(),
        st.integers(0, 3),
        timestamps(),
        st.sampled_from(WORKERS),
        lease_lengths(),
    )
    return st.one_of(unleased, claimed)


# --------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------

# Components drawn from a few round values make exact ties (parallel vectors,
# cosine exactly 1 in float64) and near ties once a store computes in float32.
_ROUND_COMPONENTS = (-1.0, 0.0, 0.5, 1.0, 2.0)


@cached
def vectors(dimension: int = 3) -> st.SearchStrategy[tuple[float, ...]]:
    """A float32 vector of ``dimension`` components, as the core stores it.

    Its largest component is at least 0.01 in magnitude: the core accepts a
    vector whose squared norm underflows float32, but no float32 store can
    rank it, and that is not what these tests are about.
    """
    component = st.one_of(
        st.sampled_from(_ROUND_COMPONENTS),
        st.floats(-4.0, 4.0, allow_subnormal=False, width=32),
    )
    return (
        st.lists(component, min_size=dimension, max_size=dimension)
        .filter(lambda items: max(abs(item) for item in items) >= 0.01)
        .map(check_vector)
    )


FIELD_NAMES = ("price", "qty", "tags", "name", "flag", "цвет")
"""Metadata fields; filters also name :data:`MISSING_FIELD`, which no document has."""

MISSING_FIELD = "absent"

DATETIMES: tuple[datetime, ...] = (
    datetime(1970, 1, 1, tzinfo=UTC),  # 0 microseconds: must not equal the number 0
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # 1 microsecond: must not equal 1
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before the epoch
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),  # one microsecond apart
    datetime(2024, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # the same instant as 2024-01-01
    datetime(2024, 6, 30, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
)
"""Datetimes shared by metadata and filters: ties, microsecond neighbours, the extremes, and one given
in another time zone (it is the same instant as ``2024-01-01T00:00Z``)."""

_OFFSETS = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))

# Values chosen to collide across types: 1, 1.0, True and "1" must stay apart.
# Metadata and filters draw mostly from this one small pool, so that filters
# often match, and often match differently from what ``==`` would say.
_SCALAR_POOL: tuple[Scalar, ...] = (
    None,
    True,
    False,
    0,
    1,
    2,
    10,
    MAX_SAFE_INTEGER,
    1.0,
    2.5,
    -0.5,
    "1",
    "a",
    "Цемент",
    "цемент",
    "2024-01-01T00:00:00+00:00",  # a string spelling a datetime of the pool: never equal to it
    *DATETIMES,
)


def _mostly(common: st.SearchStrategy[T], rare: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``common`` about three times in four, ``rare`` otherwise.

    ``st.one_of`` will not do: it merges repeated branches and flattens
    nested ones, so the weights would be lost.
    """
    return st.sampled_from((common, common, common, rare)).flatmap(lambda chosen: chosen)


@cached
def datetimes() -> st.SearchStrategy[datetime]:
    """Aware datetimes in assorted time zones, whose UTC instant lies within years 1 to 9999.

    Mostly from :data:`DATETIMES`; otherwise any instant to the microsecond.
    """
    anything = st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.sampled_from(_OFFSETS)
    )
    return _mostly(st.sampled_from(DATETIMES), anything)


@cached
def metadata_scalars() -> st.SearchStrategy[Scalar]:
    """Mostly values from a small pool shared with filters; sometimes any int, float, string or datetime."""
    anything = st.one_of(
        st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        st.floats(allow_nan=False, allow_infinity=False),
        json_strings(max_size=4),
        datetimes(),
    )
    return _mostly(st.sampled_from(_SCALAR_POOL), anything)


_EMPTY_LISTS: tuple[list[Scalar], ...] = ([], [None], [None, None])


NESTED_KEYS = ("w", "d")
"""Keys of nested objects; dotted filter paths in :data:`FILTER_FIELDS` go through them."""


def _nested_values(levels: int) -> st.SearchStrategy[MetadataValue]:
    """A metadata value with at most ``levels`` more levels of objects below it (lists of objects count once more)."""
    flat: st.SearchStrategy[MetadataValue] = st.one_of(
        metadata_scalars(),
        st.lists(metadata_scalars(), max_size=3),
        st.sampled_from(_EMPTY_LISTS),
    )
    if levels <= 0:
        return flat
    inner = _nested_values(levels - 1)
    objects = st.dictionaries(st.sampled_from(NESTED_KEYS), inner, max_size=2)
    # A list of objects, sometimes with a scalar or None among them (dropped by a path walking on).
    lists_of_objects = st.lists(st.one_of(objects, objects, metadata_scalars()), min_size=1, max_size=3)
    return _mostly(flat, st.one_of(objects, lists_of_objects))


@cached
def metadata() -> st.SearchStrategy[Metadata]:
    """Metadata: scalars of every type (datetimes too), None, short lists, and nested objects.

    Fields are often missing, None, ``[]`` or ``[None]``, which is where
    ``exists`` is decided. About one value in four is an object or a list
    of objects (two levels of objects at most, keys :data:`NESTED_KEYS`),
    so that the dotted paths of :data:`FILTER_FIELDS` find values at depth,
    through lists, and sometimes stop at a scalar or an object.
    """
    return st.dictionaries(st.sampled_from(FIELD_NAMES), _nested_values(2), max_size=4)


VOCABULARY = (
    "Цемент",
    "цемент",
    "ЦЕМЕНТ",
    "М-500",
    "2.5мм",
    "ПВХ/PVC",
    "pvc",
    "straße",
    "STRASSE",
    "ёлка",
    "Ёлка",
    "e\u0301te",  # decomposed: NFC makes it "éte"
    "\u00e9te",
    "ﬁle",  # the "fi" ligature casefolds to "fi"
    "FILE",
    "труба",
    "pipe",
    "500",
    "x_y",  # "_" separates tokens
)
"""Words whose tokens only match under NFC and casefolding, or split at punctuation."""

_SEPARATORS = (" ", ", ", "/", " - ", "\n", "_", "")


@cached
def texts(max_words: int = 5) -> st.SearchStrategy[str]:
    """Document text: words from :data:`VOCABULARY` joined by assorted separators."""
    words = st.lists(st.sampled_from(VOCABULARY), max_size=max_words)
    return words.flatmap(
        lambda chosen: st.lists(st.sampled_from(_SEPARATORS), min_size=len(chosen), max_size=len(chosen)).map(
            lambda separators: "".join(word + sep for word, sep in zip(chosen, separators, strict=True)).strip()
        )
    )


@cached
def query_texts() -> st.SearchStrategy[str]:
    """Search text: one or two vocabulary words; always has at least one token."""
    return st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=2).map(" ".join).filter(token_set)


@cached
def documents(dimension: int = 3, ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Document]:
    """A document with text, metadata and, usually, a vector of ``dimension``.

    Ids come from ``ids``, or from :func:`document_ids` by default.
    """
    return st.builds(
        Document,
        id=ids if ids is not None else document_ids(),
        text=texts(),
        vector=st.one_of(st.none(), vectors(dimension), vectors(dimension)),
        metadata=metadata(),
    )


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------

NESTED_FIELDS = ("price.w", "tags.d", "name.w.d", "qty.d.w", "flag.w", "tags.absent")
"""Dotted filter paths into :func:`metadata`'s nested objects (one never present)."""

FILTER_FIELDS = (*FIELD_NAMES, MISSING_FIELD, *NESTED_FIELDS)


@cached
def filter_operands() -> st.SearchStrategy[str | int | float | bool | datetime]:
    """An operand for eq/ne/in/nin: any scalar but None (datetimes too), mostly from the metadata pool."""
    pool = [value for value in _SCALAR_POOL if value is not None]
    return _mostly(st.sampled_from(pool), st.one_of(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), datetimes()))


@cached
def range_operands() -> st.SearchStrategy[int | float | datetime]:
    """An operand for lt/lte/gt/gte: ints and floats (never a bool), or an aware datetime."""
    pool = [
        value for value in _SCALAR_POOL if isinstance(value, int | float | datetime) and not isinstance(value, bool)
    ]
    return _mostly(st.sampled_from(pool), st.one_of(st.floats(-20, 20), st.integers(-20, 20), datetimes()))


@cached
def _operand_for(op: str) -> st.SearchStrategy[object]:
    if op == "exists":
        return st.booleans()
    if op in RANGE_OPS:
        return range_operands()
    if op in ("in", "nin"):
        return st.lists(filter_operands(), min_size=1, max_size=3)
    return filter_operands()


@cached
def _conditions() -> st.SearchStrategy[object]:
    operators = st.lists(
        st.sampled_from(("eq", "ne", "lt", "lte", "gt", "gte", "in", "nin", "exists")), min_size=1, max_size=2
    )
    by_operator = operators.flatmap(
        lambda ops: st.fixed_dictionaries({op: _operand_for(op) for op in dict.fromkeys(ops)})
    )
    return st.one_of(filter_operands(), by_operator)


@cached
def _field_clauses(fields: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    one_field = st.builds(lambda field, condition: {field: condition}, st.sampled_from(fields), _conditions())
    return _mostly(one_field, st.dictionaries(st.sampled_from(fields), _conditions(), min_size=2, max_size=2))


def filters(fields: Sequence[str] = FILTER_FIELDS, max_leaves: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """A valid filter dict (see :mod:`fallthrough.filters`) over ``fields``.

    It uses every operator (``exists`` too), ``and``/``or``/``not``, sibling
    keys and-ed together, numbers against strings, bools and datetimes, and a
    field no document has.
    """
    return _filters(tuple(fields), max_leaves)


@cached
def _filters(fields: tuple[str, ...], max_leaves: int) -> st.SearchStrategy[dict[str, Any]]:

    def combine(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        combinators = st.one_of(
            st.builds(lambda clauses: {"and": clauses}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda clauses: {"or": clauses}, st.lists(inner, min_size=1, max_size=2)),
            st.builds(lambda clause: {"not": clause}, inner),
        )
        with_siblings = st.builds(
            lambda clause, combinator: {**clause, **combinator}, _field_clauses(fields), combinators
        )
        return _mostly(combinators, with_siblings)

    return st.recursive(_field_clauses(fields), combine, max_leaves=max_leaves)


__all__ = [
    "BASE_SEQ",
    "BASE_TIME",
    "DATETIMES",
    "DOCUMENT_IDS",
    "FIELD_NAMES",
    "FILTER_FIELDS",
    "KEY_CHARACTERS",
    "MISSING_FIELD",
    "NESTED_FIELDS",
    "NESTED_KEYS",
    "VOCABULARY",
    "WORKERS",
    "attempts",
    "datetimes",
    "document_ids",
    "documents",
    "errors",
    "filter_operands",
    "filters",
    "first_seqs",
    "json_objects",
    "json_strings",
    "json_values",
    "keys",
    "lease_lengths",
    "metadata",
    "metadata_scalars",
    "query_texts",
    "range_operands",
    "full_records",
    "record_updates",
    "statuses",
    "texts",
    "timestamps",
    "vectors",
]
