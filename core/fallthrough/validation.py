"""Checks shared by the value types and the Store.

Every check raises :class:`~fallthrough.errors.InvalidInput` with a message
that names the offending argument, so a caller can fix the call without
reading the source. Nothing here touches a backend.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import uuid
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, date, datetime, timedelta
from typing import Any, SupportsFloat, SupportsIndex, TypeAlias, cast

from .errors import InvalidInput

MAX_KEY_LENGTH = 512
# PostgreSQL keeps ``attempt`` in an ``integer`` column, the narrowest of the
# stores: 2**31 - 1 is the greatest attempt a store may have to hold. An
# update may name attempts up to 2**30, so that more than a billion retries
# (each adds one) still fit.
MAX_STORED_ATTEMPT = 2**31 - 1
MAX_ATTEMPT = 2**30
MAX_FIELD_LENGTH = 256
MAX_SEARCH_LIMIT = 10_000
MAX_PAGE_SIZE = 100_000
MAX_BATCH_PAGE_SIZE = 10_000
MAX_CLAIM = 10_000
MAX_LEASE = 30 * 86_400
MAX_TIMEOUT = 86_400
MAX_JSON_DEPTH = 64
MAX_METADATA_DEPTH = 8
"""How many levels of objects and lists a metadata value may nest (a scalar is 0, ``[1]`` and ``{"a": 1}`` are 1)."""
STREAM_CHUNK = 10_000
"""Keys a streamed create or add validates and writes at a time (see :func:`key_chunks`)."""
_DIGEST_MASK = (1 << 60) - 1
MAX_VECTOR_DIMENSION = 65536
# Integers outside +-(2**53 - 1) cannot be compared exactly by every store
# (Qdrant's range filter, for one, takes doubles), so metadata refuses them
# rather than answer filters differently from one backend to the next.
MAX_SAFE_INTEGER = 2**53 - 1
# JSON results may hold any int a store can keep: Qdrant payloads and
# SQLite's JSON functions stop at signed 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A vector's squared length must be a normal, finite float32, or a store
# computing cosine in float32 (pgvector) divides by zero or infinity.
FLOAT32_TINY, FLOAT32_MAX = 1.1754943508222875e-38, 3.4028234663852886e38
RESERVED_FIELDS = frozenset({"and", "or", "not"})

_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")
_FIELD_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f"\\]')
_KEY_FORBIDDEN = re.compile(r"[.\[\]]")

JSON: TypeAlias = Any
"""A JSON value: dict with str keys, list, str, int, float, bool or None."""

Scalar: TypeAlias = str | int | float | bool | datetime | None
"""A metadata scalar: a str, number, bool, None, or an aware datetime (held in UTC)."""

MetadataValue: TypeAlias = Scalar | list["MetadataValue"] | dict[str, "MetadataValue"]
"""A metadata value: a scalar, an object (str keys) or a list of scalars and objects, nested up to
:data:`MAX_METADATA_DEPTH` levels. A list never holds a list directly."""

Metadata: TypeAlias = dict[str, MetadataValue]
"""A document's metadata: an object whose values are :data:`MetadataValue`."""

PATH_SEPARATOR = "."
"""What separates the keys of a dotted filter path (``dims.width``); no metadata key may hold it."""


def check_string(value: object, what: str) -> str:
    """Return ``value`` if it is a str every store can hold: no NUL, valid UTF-8."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, not {type(value).__name__}")
    # The characters are checked, not what a subclass's own __contains__ or encode say of them.
    characters = plain_str(value)
    if "\x00" in characters:
        raise InvalidInput(f"{what} contains a NUL character, which no store can hold")
    try:
        characters.encode("utf-8")
    except UnicodeEncodeError:
        pass  # raised below, outside the handler: the encode error, as its context, would hold the whole string
    else:
        return characters
    raise InvalidInput(f"{what} contains a lone surrogate and is not valid Unicode")


def check_key(value: object, what: str = "key") -> str:
    """A record key or document id: 1 to 512 characters, no NUL; returned as a plain str (:func:`plain_str`)."""
    check_string(value, what)
    assert isinstance(value, str)
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise InvalidInput(f"{what} must be 1 to {MAX_KEY_LENGTH} characters, got {len(value)}")
    return plain_str(value)


def plain_str(value: str) -> str:
    """A str subclass's characters as a plain str; a plain str, or anything else, as it is.

    A key is its characters, which is all a store compares. A subclass's own
    ``__eq__`` or ``__hash__`` (a case-insensitive SKU type) would have the
    core's repeat checks and digests disagree with the stores: two keys
    refused as one, one key given twice let through, a failed create's
    records left behind. Typed ``str`` for the value types' converters;
    a value that is no str passes through to the validator, which refuses it.
    """
    if isinstance(value, str) and type(value) is not str:
        return str.__str__(value)
    return value


def check_keys(keys: Sequence[object], what: str = "keys", offset: int = 0) -> Sequence[str]:
    """Check every key as :func:`check_key` does; an error names the first bad one by position.

    :param keys: the keys.
    :param what: the argument's name, for messages (``keys[25000]``).
    :param offset: the position of ``keys[0]`` in the whole input (a streamed chunk's).
    :return: the keys as plain str (:func:`plain_str`): ``keys`` itself when
        they all are.

    Creating a batch checks every key, so this is on the way of a million:
    the common case, a sequence of plain str keys, is checked a whole
    sequence at a time in C (their types, lengths, one join for NUL and
    one encode for lone surrogates), about a tenth of the per-key calls'
    cost; anything else, and any sequence that fails, goes key by key, so
    the error is :func:`check_key`'s own about the first bad key.
    """
    if not isinstance(keys, Sequence):
        keys = list(keys)  # a one-pass iterable: the checks below read it more than once
    if all(_plain_keys(keys[start : start + STREAM_CHUNK]) for start in range(0, len(keys), STREAM_CHUNK)):
        return cast("Sequence[str]", keys)
    return [check_key(key, f"{what}[{offset + index}]") for index, key in enumerate(keys)]


def _plain_keys(keys: Sequence[object]) -> bool:
    """Whether ``keys`` (not empty) are all of type str, 1 to :data:`MAX_KEY_LENGTH` long, no NUL, valid Unicode."""
    if set(map(type, keys)) != {str}:
        return False  # a subclass of str, or not a str: key by key
    lengths = list(map(len, keys))  # type: ignore[arg-type]
    if min(lengths) < 1 or max(lengths) > MAX_KEY_LENGTH:
        return False
    joined = "".join(keys)  # type: ignore[arg-type]  # one slice's keys at a time: a bounded copy
    if "\x00" in joined:
        return False
    if not joined.isascii():
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def check_items(values: object, what: str) -> tuple[object, ...]:
    """The items of an iterable argument, as a tuple; anything else (None, a number, a str) is InvalidInput.

    A str or bytes is refused although it iterates: one key given where a list
    of them was meant would otherwise become one record per character.
    """
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Iterable):
        raise InvalidInput(f"{what} must be an iterable (a list or tuple), not {type(values).__name__}")
    return tuple(values)


def check_unique_keys(values: Iterable[object], what: str = "keys") -> tuple[str, ...]:
    """Validate a whole list of keys before anything is written."""
    keys = tuple(check_keys(check_items(values, what), what))
    _refuse_repeats(keys, what)
    return keys


def _refuse_repeats(keys: Sequence[str], what: str) -> None:
    """Raise InvalidInput naming the first key of ``keys`` that repeats one before it."""
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        for key in keys:
            if key in seen:
                raise InvalidInput(f"{what} contains {key!r} more than once")
            seen.add(key)


def check_distinct_keys(values: Iterable[object], what: str = "keys") -> tuple[str, ...]:
    """Validate a whole list of keys that may repeat; the distinct ones, in first-seen order.

    For reads and deletes by id, where a repeated id asks for the same thing
    twice: it is counted once (LangChain's ``get_by_ids`` sends repeats).
    """
    return tuple(dict.fromkeys(check_keys(check_items(values, what), what)))


def check_iterable(values: object, what: str) -> Iterable[object]:
    """``values`` if it is an iterable other than a str or bytes, which would iterate by character."""
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Iterable):
        raise InvalidInput(f"{what} must be an iterable (a list or tuple), not {type(values).__name__}")
    return values


def key_chunks(values: Iterable[object], what: str = "keys", size: int = STREAM_CHUNK) -> KeyChunks:
    """Pull ``values`` ``size`` at a time, and yield each chunk once it is valid whole.

    Each key is checked as :func:`check_key` does, and a chunk may not hold
    a key twice; errors name the key's position in the whole input
    (``keys[25000]``). A key that is not a str is refused as soon as it is
    pulled; a str's length and characters are checked once its chunk is
    complete (in C, for the whole chunk: see :func:`check_keys`). Repeats across chunks are :class:`KeyDigests`' job.
    At least one chunk is yielded, empty for an empty input, so a create
    of no keys still creates its batch. Only one chunk is held at a time.
    What ``values`` itself raises is kept in :attr:`KeyChunks.source_error`.
    """
    return KeyChunks(values, what, size)


class KeyChunks:
    """The chunks of a streamed call's keys, as :func:`key_chunks` describes; iterate once."""

    def __init__(self, values: Iterable[object], what: str, size: int) -> None:
        self._values = values
        self._what = what
        self._size = size
        self.source_error: Exception | None = None
        """What the caller's iterable raised while it was pulled, if it did.

        Told apart from the checks' own errors, and from anything else: an
        iterable may raise a FallthroughError of its own (keys read from
        another Store during its outage), which is no failure of this
        call's stores.
        """

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        what, size = self._what, self._size
        values = check_iterable(self._values, what)
        try:
            iterator = iter(values)
        except Exception as error:
            self.source_error = error
            raise
        offset = 0
        while True:
            pulled: list[object] = []
            refused: InvalidInput | None = None
            try:
                for value in itertools.islice(iterator, size):
                    if type(value) is not str:
                        # Refused before another item is pulled, as the caller's source may fail or block next.
                        try:
                            value = check_key(value, f"{what}[{offset + len(pulled)}]")
                        except InvalidInput as error:
                            refused = error
                            break
                    pulled.append(value)
            except Exception as error:
                self.source_error = error
                raise
            if refused is not None:
                raise refused
            chunk = check_keys(pulled, what, offset)
            _refuse_repeats(chunk, what)
            if chunk or not offset:
                yield tuple(chunk)
            offset += len(chunk)
            if len(chunk) < size:
                return


class KeyDigests:
    """The keys of a streamed call seen so far, as 60-bit digests: bounded memory, and no false refusal.

    A digest is the key's ``hash()`` (SipHash, randomised per process, which
    is all one call needs) cut to 60 bits, so that it is a small int. In
    CPython that costs about 80 bytes a key (the int and its set slot, and
    8 bytes in input order): some 80 MB per million keys, against about
    1 KB a key to hold the keys and their rows. Two different keys share a
    digest with probability about n**2 / 2**61 (1 in 2 million for a
    million keys), so a digest seen before only makes a key *suspect*: the
    caller confirms with the store whether it is really a repeat, and never
    refuses on the digest alone.
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._in_order = array("Q")

    def __contains__(self, key: str) -> bool:
        """Whether ``key``'s digest was seen (so ``key`` may have been: confirm with the store)."""
        return hash(key) & _DIGEST_MASK in self._seen

    def read_at(self, position: int, key: str) -> bool:
        """Whether the key read at ``position`` (from 0, in input order) has ``key``'s digest."""
        return 0 <= position < len(self._in_order) and self._in_order[position] == hash(key) & _DIGEST_MASK

    def suspects(self, chunk: Sequence[str]) -> list[str]:
        """The keys of ``chunk`` whose digest an earlier chunk had; then remember ``chunk``'s."""
        seen = self._seen
        # Mapped in C (a create digests every key): hash, then the mask.
        digests = list(map(int.__and__, map(hash, chunk), itertools.repeat(_DIGEST_MASK)))
        if seen.isdisjoint(digests):
            suspects = []
        else:
            suspects = [key for key, digest in zip(chunk, digests, strict=True) if digest in seen]
        seen.update(digests)
        self._in_order.extend(digests)
        return suspects


def check_batch_id(value: object) -> uuid.UUID:
    """A batch id: a :class:`uuid.UUID` or its string form; returned as a plain UUID.

    A subclass's own ``__str__`` or ``__hash__`` would have the stores name
    another batch than the one the core checks and returns.
    """
    if isinstance(value, uuid.UUID):
        return value if type(value) is uuid.UUID else uuid.UUID(int=value.int)
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"batch id must be a UUID, got {value!r}")


def check_collection(value: object) -> str:
    """A collection name: 1 to 63 of ASCII letters, digits, '_' and '-'; returned as a plain str.

    A str subclass (an ``Enum`` of collection names) would be spelt by its
    own ``__format__`` where a store builds a name from it (``Names.DOCS``).
    """
    name = plain_str(value) if isinstance(value, str) else None
    if name is None or not _COLLECTION_NAME.fullmatch(name):
        raise InvalidInput(
            f"collection must be 1 to 63 ASCII letters, digits, '_' or '-' (not starting with '-'), got {value!r}"
        )
    return name


def check_field_name(value: object, what: str = "field") -> str:
    """A metadata key, also usable as a filter field; returned as a plain str (:func:`plain_str`)."""
    value = check_string(value, what)
    if not 1 <= len(value) <= MAX_FIELD_LENGTH:
        raise InvalidInput(f"{what} must be 1 to {MAX_FIELD_LENGTH} characters, got {value!r}")
    if _FIELD_FORBIDDEN.search(value):
        raise InvalidInput(f"{what} {value!r} contains a quote, a backslash or a control character")
    if value in RESERVED_FIELDS:
        raise InvalidInput(f"{what} {value!r} is reserved by the filter language")
    return value


def check_attempt(value: object, what: str = "attempt", maximum: int = MAX_ATTEMPT) -> int:
    """An attempt number: an int from 0 to ``maximum`` (:data:`MAX_ATTEMPT` for what a caller names)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidInput(f"{what} must be an int from 0 to {maximum} or None, got {value!r}")
    return value


def check_number(value: object, what: str) -> int | float:
    """An int or finite float, never a bool, exactly comparable everywhere."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number, not {type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{what} must be finite, got {value!r}")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise InvalidInput(f"{what} {value} is outside +-(2**53 - 1), the range every store compares exactly")
    return plain_number(value)


_MISSING_VALUE = "; for a missing value give None (pandas reads an empty cell as NaN)"


def type_name(value: object) -> str:
    """The name of ``value``'s type in an error, with the way out for a numpy scalar (:func:`numpy_hint`)."""
    kind = type(value)
    if kind.__module__ == "numpy":
        return f"numpy.{kind.__name__}{numpy_hint(value)}"
    return kind.__name__


def numpy_hint(value: object) -> str:
    """For a numpy scalar, an error's hint at the plain Python value to give instead; otherwise nothing.

    numpy's ``float64`` is a float and passes; its ``int64``, ``float32`` and
    ``bool_`` are no int, float or bool, and a DataFrame's columns hold those.
    Told apart by their ``dtype.kind``, so that the core need not import numpy.
    """
    if type(value).__module__ != "numpy":
        return ""
    if getattr(value, "ndim", 0):
        return " (a numpy array: give value.tolist(), a list of plain Python values)"
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("b", "i", "u", "f"):
        return " (a numpy scalar: give value.item(), its plain Python value)"
    if kind == "M":
        return " (a numpy datetime64: give a timezone-aware datetime)"
    return ""


def plain_number(value: int | float) -> int | float:
    """A subclass's value as a plain int or float (numpy's float64 is a float; an IntEnum is an int).

    Stores write a number by its type's spelling, and ``repr(np.float64(1.5))``
    is ``np.float64(1.5)``: a plain value is what every store reads alike.
    """
    if type(value) is int or type(value) is float:
        return value
    return float(value) if isinstance(value, float) else int(value)


def to_utc(value: datetime, what: str) -> datetime:
    """An aware datetime as the same instant in UTC, a plain ``datetime`` with ``tzinfo=UTC``.

    A naive datetime names no instant, so it is refused; so is one whose UTC
    instant falls outside years 1 to 9999, which no store's datetime holds.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} {value.isoformat()} must be timezone-aware (give it a tzinfo, e.g. UTC)")
    try:
        moment = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{what} {value.isoformat()} is outside years 1 to 9999 once converted to UTC") from None
    # A subclass (pandas' Timestamp, say) becomes a plain datetime: what every store reads back.
    return datetime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=UTC,
    )


def check_scalar(value: object, what: str) -> Scalar:
    """A metadata scalar: str, int, float, bool, None or an aware datetime (returned in UTC)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_string(value, what)
    if isinstance(value, datetime):
        return to_utc(value, what)
    if isinstance(value, date):
        raise InvalidInput(f"{what} is a date, not a datetime; give a timezone-aware datetime (e.g. midnight UTC)")
    return check_number(value, what)


def check_metadata_key(value: object, what: str = "metadata key") -> str:
    """A key of metadata at any level, also a segment of a dotted filter path.

    Everything :func:`check_field_name` asks, and no ``.`` (the path
    separator), ``[`` or ``]`` (path syntax on some stores), and no leading
    ``$`` (reserved: stored encodings tag datetimes with ``$dt``-style keys).
    """
    value = check_field_name(value, what)
    if _KEY_FORBIDDEN.search(value):
        raise InvalidInput(f"{what} {value!r} contains '.', '[' or ']', which a dotted filter path would misread")
    if value.startswith("$"):
        raise InvalidInput(f"{what} {value!r} starts with '$', which is reserved for stored encodings")
    return value


def check_metadata(value: object, what: str = "metadata") -> Metadata:
    """Metadata: an object of scalars, objects and lists, nested at most :data:`MAX_METADATA_DEPTH` levels.

    Returns a copy (plain dicts and lists) with datetimes in UTC. Every error
    names the path of the bad value, as ``metadata['dims']['width']``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a dict, not {type(value).__name__}")
    return _check_object(value, what, 0)


def _check_object(value: Mapping[object, object], what: str, depth: int) -> dict[str, MetadataValue]:
    checked: dict[str, MetadataValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise InvalidInput(f"{what} has the key {key!r} of type {type(key).__name__}; metadata keys are str")
        # The key's characters are what a store keeps and a dotted path names, not its subclass's spelling.
        plain = check_metadata_key(key, f"{what} key")
        if plain in checked:
            raise InvalidInput(f"{what} has the key {plain!r} twice (a str subclass that compares otherwise)")
        checked[plain] = _check_value(item, f"{what}[{plain!r}]", depth)
    return checked


def _check_value(value: object, what: str, depth: int) -> MetadataValue:
    """A metadata value found ``depth`` levels of objects and lists below the metadata itself."""
    if isinstance(value, Mapping | list):
        if depth >= MAX_METADATA_DEPTH:
            raise InvalidInput(f"{what} nests objects and lists deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, Mapping):
            return _check_object(value, what, depth + 1)
        elements: list[MetadataValue] = []
        for index, element in enumerate(value):
            at = f"{what}[{index}]"
            if isinstance(element, list):
                raise InvalidInput(f"{at} is a list inside a list; a list holds scalars and objects only")
            elements.append(_check_value(element, at, depth + 1))
        return elements
    if isinstance(value, tuple | AbstractSet):
        raise InvalidInput(
            f"{what} is a {type(value).__name__}; give a list, so that what is read back is what was written"
        )
    if value is not None and not isinstance(value, str | int | float | date):
        raise InvalidInput(
            f"{what} must be a str, number, bool, None, aware datetime, dict or list, not {type_name(value)}"
        )
    if isinstance(value, float) and math.isnan(value):
        raise InvalidInput(f"{what} is NaN, which no store compares alike{_MISSING_VALUE}")
    return check_scalar(value, what)


def check_json(value: object, what: str) -> JSON:
    """A JSON value with finite numbers, str keys and no NUL in any string.

    Tuples and other sequences are refused rather than silently turned into
    lists: what is stored must be what is read back.
    """
    _check_json(value, what, 0)
    return value


def _check_json(value: object, what: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"{what} holds {value}, beyond the signed 64-bit range every store can keep")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            missing = _MISSING_VALUE if math.isnan(value) else ""
            raise InvalidInput(f"{what} contains {value!r}; JSON has no NaN or infinity{missing}")
        return
    if isinstance(value, str):
        check_string(value, what)
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{what}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        subclassed = False
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{what} has the key {key!r} of type {type(key).__name__}; JSON keys are str")
            check_string(key, f"{what} key")
            subclassed = subclassed or type(key) is not str
            _check_json(item, f"{what}[{key!r}]", depth + 1)
        # JSON writes a key's characters: a str subclass that compares otherwise would write one key twice,
        # and only one value would be read back.
        if subclassed and len({plain_str(key) for key in value}) < len(value):
            raise InvalidInput(f"{what} names a key twice (a str subclass that compares otherwise)")
        return
    raise InvalidInput(f"{what} contains a {type_name(value)}, which is not a JSON value")


def check_json_object(value: object, what: str) -> dict[str, JSON]:
    """A JSON object (dict with str keys); None stands for an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a dict, not {type(value).__name__}")
    check_json(value, what)
    return dict(value)


def check_vector(value: object, what: str = "vector") -> tuple[float, ...]:
    """A non-zero vector of finite floats, rounded to float32.

    Every store keeps vectors as float32; rounding here means every store
    holds, and returns, the identical values.
    """
    # An unordered collection has no component order to keep.
    if isinstance(value, str | bytes | Mapping | AbstractSet) or not isinstance(value, Iterable):
        raise InvalidInput(f"{what} must be a sequence of floats, not {type(value).__name__}")
    items = list(value)
    if not 1 <= len(items) <= MAX_VECTOR_DIMENSION:
        raise InvalidInput(f"{what} must have 1 to {MAX_VECTOR_DIMENSION} components, got {len(items)}")
    floats: list[float] = []
    for index, item in enumerate(items):
        if type(item) is float:
            # The common case, passed as is: the protocol checks below cost ~15 µs a component.
            floats.append(item)
            continue
        if isinstance(item, bool):
            raise InvalidInput(f"{what}[{index}] is a bool, not a number")
        if not isinstance(item, SupportsFloat | SupportsIndex):
            raise InvalidInput(f"{what}[{index}] is not a number: {type(item).__name__}")
        # numpy scalars and the like convert through float(); an int too
        # large for a double (10**400) overflows there rather than in array().
        try:
            floats.append(float(item))
        except OverflowError:
            raise InvalidInput(f"{what}[{index}] is too large for a float") from None
        except (TypeError, ValueError):
            raise InvalidInput(f"{what}[{index}] is not a number: {type(item).__name__}") from None
    components = tuple(array("f", floats))
    if not all(math.isfinite(component) for component in components):
        raise InvalidInput(f"{what} has a NaN or infinite component (after rounding to float32)")
    if not any(components):
        raise InvalidInput(f"{what} is all zeros, which has no direction under cosine")
    squared_length = math.fsum(component * component for component in components)
    if not FLOAT32_TINY <= squared_length <= FLOAT32_MAX:
        raise InvalidInput(
            f"{what} has a squared length of {squared_length:.3g}, outside float32's normal range; "
            f"scale it (cosine does not depend on length)"
        )
    return components


def check_timeout(value: object, what: str = "timeout") -> float:
    """Seconds to wait: a finite number from 0 to :data:`MAX_TIMEOUT`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIMEOUT:
        raise InvalidInput(f"{what} must be a number of seconds from 0 to {MAX_TIMEOUT}, got {value!r}")
    return float(value)


def check_age(value: object, what: str = "older_than") -> int:
    """An age in microseconds, given as a :class:`~datetime.timedelta` or a number of seconds, above 0."""
    if isinstance(value, timedelta):
        micros = value // timedelta(microseconds=1)
    elif isinstance(value, int) and not isinstance(value, bool):
        micros = value * 1_000_000
    elif isinstance(value, float) and math.isfinite(value * 1_000_000):
        micros = round(value * 1_000_000)
    else:
        raise InvalidInput(f"{what} must be a timedelta or a finite number of seconds, got {value!r}")
    if micros < 1:
        raise InvalidInput(f"{what} must be at least a microsecond, got {value!r}")
    return micros


def check_limit(value: object, maximum: int | None = MAX_SEARCH_LIMIT, what: str = "limit") -> int:
    """A count from 1 to ``maximum`` (None: no upper bound); ``what`` names the argument in the error."""
    # An exact int, whatever the type: a subclass may compare, or print itself (a plugin
    # may put a limit into SQL as a literal), as anything it likes.
    number = operator.index(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if number is None or number < 1 or (maximum is not None and number > maximum):
        bounds = "of at least 1" if maximum is None else f"from 1 to {maximum}"
        raise InvalidInput(f"{what} must be an int {bounds}, got {value!r}{numpy_hint(value)}")
    return number
