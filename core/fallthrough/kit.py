"""What every backend plugin needs and no plugin should write again.

Public API for plugin authors (see ``docs/writing-a-backend.md``). Each
helper here was, before it moved here, written in two to four of the
first-party plugins; what is left in a plugin is what only its store knows.

* **JSON text**: :func:`dump_json` and :func:`load_json`, the one spelling
  every plugin stores results and metadata in, so a value reads back equal
  type for type (``1``, ``1.0`` and ``True`` stay apart).
* **Datetimes in metadata**: :func:`tag_datetimes`, :func:`untag_datetimes`,
  :func:`dump_metadata`, :func:`load_metadata` and :func:`load_metadata_all`
  (``{"$dt": ...}`` objects),
  and :func:`rfc3339` / :func:`from_rfc3339` for stores that read RFC 3339.
* **Calls**: :func:`chunked`, to keep a statement or request under the
  store's limit.
* **Vectors**: :func:`cosine_similarity`, computed exactly as the reference
  model scores, so ties and near-ties order as the reference orders them;
  :func:`float32_vector`, a vector from packed little-endian float32;
  :func:`check_dimensions`, the all-or-nothing dimension check of an upsert,
  and :func:`check_fixed_dimension`, the check of a dimension a repair sends alone.
* **Reading back**: :func:`decode_document` and :func:`decode_hit`, a
  ``Document`` or ``Hit`` built from what the store holds without the
  checks user input gets (the core made them before the write).
* **The merge order**: :func:`lexicographic_below`, the ``(a, b, c) < (x, y, z)``
  comparison written out for a store with no row comparison.
* **Keyset pages**: :func:`page_from_seq_order`, a ``(seq, key)`` page from a
  store that can order by ``seq`` alone.
* **URLs**: :class:`UrlOptions` (query options: known names, numbers,
  integers, flags) and :class:`Endpoint` (how to name the store in messages
  without a secret, and how to redact any text).
* **Lifecycle**: :class:`Opened`, the resource a plugin builds in
  ``fallthrough_open`` and every other hook requires; :func:`require_modules`,
  the driver import that names the extra to install.

Nothing here does I/O or imports a driver.
"""

from __future__ import annotations

import array
import errno
import importlib
import json
import math
import re
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload

import attrs
from sqlalchemy.engine import URL

from .errors import BackendUnavailable, InvalidInput
from .types import JSON, Document, Hit, Metadata, Record, Status, from_micros, to_micros
from .urls import mask_url, redact, secrets_of
from .validation import check_collection

T = TypeVar("T")
V = TypeVar("V")

# --------------------------------------------------------------------------
# JSON text
# --------------------------------------------------------------------------

# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump_json(value: JSON) -> str:
    """``value`` as compact JSON text: UTF-8 characters unescaped, no spaces, no NaN.

    Floats are written by their ``repr``, so they read back bit for bit, and
    object keys keep their order. Keys are unescaped, so a SQL JSON path
    label matches them byte for byte.

    :param value: a JSON value (the core has checked it: finite numbers, str keys).
    :return: the text :func:`load_json` reads back to an equal value.
    :raises ValueError: ``value`` holds NaN or an infinity.
    """
    return _ENCODER.encode(value)


def load_json(text: str) -> JSON:
    """The value :func:`dump_json` wrote.

    :param text: JSON text.
    """
    loaded: JSON = json.loads(text)
    return loaded


def dump_json_optional(value: JSON) -> str | None:
    """None for None, else :func:`dump_json`: a store's NULL means "no result", as JSON ``null`` does.

    :param value: a JSON value, or None.
    """
    return None if value is None else dump_json(value)


def load_json_optional(text: str | None) -> JSON:
    """None for None, else :func:`load_json`.

    :param text: JSON text, or None (a NULL column).
    """
    return None if text is None else load_json(text)


# --------------------------------------------------------------------------
# Datetimes in document metadata
# --------------------------------------------------------------------------

DATETIME_TAG = "$dt"
"""The one key of the JSON object that stands for a datetime in stored metadata.

No metadata key may start with ``$`` (see
:func:`fallthrough.validation.check_metadata_key`), so an object whose one
key is ``$dt`` never comes from a user: at any depth it is a datetime, it
never reads back as a string or a number, and a store's filters tell the two
apart by JSON type (and, from a user's object, by that key).
"""


def tag_datetimes(value: object, spell: Callable[[datetime], JSON] = to_micros) -> JSON:
    """A metadata value (or a filter operand) as stored: each datetime becomes ``{"$dt": spell(dt)}``.

    :param value: a metadata value (a scalar, or an object or list of them, at any depth), or a tuple.
    :param spell: how a datetime is written inside the tag; by default
        :func:`~fallthrough.types.to_micros` (an integer that sorts in time
        order), or :func:`rfc3339` for a store that parses RFC 3339.
    :return: the JSON value to store; lists stay lists, objects objects.
    """
    if isinstance(value, datetime):
        return {DATETIME_TAG: spell(value)}
    if isinstance(value, list | tuple):
        return [tag_datetimes(element, spell) for element in value]
    if isinstance(value, Mapping):
        return {key: tag_datetimes(item, spell) for key, item in value.items()}
    stored: JSON = value
    return stored


def untag_datetimes(value: Any, read: Callable[[Any], datetime] = from_micros) -> Any:
    """What :func:`tag_datetimes` wrote: each tag becomes its aware UTC datetime again.

    :param value: a stored metadata value.
    :param read: the inverse of the ``spell`` it was written with; by
        default :func:`~fallthrough.types.from_micros`.
    """
    if isinstance(value, dict):
        if DATETIME_TAG in value:
            return read(value[DATETIME_TAG])
        return {key: untag_datetimes(item, read) for key, item in value.items()}
    if isinstance(value, list):
        return [untag_datetimes(element, read) for element in value]
    return value


def dump_metadata(metadata: Mapping[str, object], spell: Callable[[datetime], JSON] = to_micros) -> str:
    """Document metadata as JSON text, datetimes tagged (:func:`tag_datetimes`).

    :param metadata: a document's metadata, checked by the core.
    :param spell: as for :func:`tag_datetimes`.
    """
    return dump_json({field: tag_datetimes(value, spell) for field, value in metadata.items()})


_TAG_MARK = json.dumps(DATETIME_TAG)


def load_metadata(text: str, read: Callable[[Any], datetime] = from_micros) -> Metadata:
    """The metadata :func:`dump_metadata` wrote (text with no tag at all, as older versions wrote, too).

    :param text: the stored JSON text.
    :param read: as for :func:`untag_datetimes`.
    """
    loaded: dict[str, Any] = json.loads(text)
    if _TAG_MARK not in text:
        # No datetime anywhere: nothing to walk.
        return loaded
    return {field: untag_datetimes(value, read) for field, value in loaded.items()}


def load_metadata_all(texts: Sequence[str], read: Callable[[Any], datetime] = from_micros) -> list[Metadata]:
    """:func:`load_metadata` of each text, in one parse: for the rows of one page or one search.

    One ``json.loads`` of the texts joined as a JSON array costs a fraction
    of one call per text (about 4 µs against 12 µs for ten small objects).

    :param texts: JSON texts :func:`dump_metadata` wrote, each one object.
    :param read: as for :func:`untag_datetimes`.
    """
    joined = "[" + ",".join(texts) + "]"
    loaded: list[Any] = json.loads(joined)
    if len(loaded) != len(texts):
        # Only text that is no single JSON value each ("1, 2") parses to another count.
        raise ValueError("stored metadata is not one JSON object per row")
    if _TAG_MARK not in joined:
        return loaded
    return [{field: untag_datetimes(value, read) for field, value in one.items()} for one in loaded]


def rfc3339(value: datetime) -> str:
    """``value`` (aware) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Always four year digits and six fraction digits: exact to the
    microsecond, and sorting as text in time order.

    :param value: an aware datetime.
    """
    # isoformat pads the year to four digits; strftime("%Y") does not on every libc.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_rfc3339(text: str) -> datetime:
    """The aware UTC datetime that :func:`rfc3339` spelt.

    :param text: RFC 3339 text with an offset (``Z`` or ``+hh:mm``).
    :raises ValueError: it has no offset, or is no RFC 3339 text.
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"stored datetime {text!r} has no offset")
    return parsed.astimezone(UTC)


# --------------------------------------------------------------------------
# Calls and vectors
# --------------------------------------------------------------------------


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``, in order; nothing for an empty sequence.

    :param items: what one call would send.
    :param size: the most one statement or request may take (at least 1).
    :raises ValueError: ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two non-zero vectors of one dimension, as the reference model computes it.

    Products in float64 summed with :func:`math.fsum`, then the norms: a
    backend that scores candidates again with this gets the reference's
    scores to the bit, so its ties and near-ties order as the reference's.

    :param a: a vector.
    :param b: a vector of the same dimension.
    :raises ValueError: the dimensions differ.
    """
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return clamp_cosine(dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))))


_BIG_ENDIAN = sys.byteorder == "big"


def float32_vector(data: bytes | bytearray | memoryview) -> tuple[float, ...]:
    """A vector from its little-endian float32 bytes, each component exactly as stored.

    What a store that keeps vectors as packed float32 (a BLOB, base64 in a
    payload) reads back; :func:`decode_document` takes the bytes as they are.

    :param data: ``4 * dimension`` bytes, little-endian float32.
    :raises ValueError: the length is not a multiple of 4.
    """
    components = array.array("f")
    components.frombytes(data)  # ValueError for a length that is not a multiple of 4
    if _BIG_ENDIAN:
        components.byteswap()
    return tuple(components)


def clamp_cosine(score: float) -> float:
    """A cosine similarity brought within [-1, 1], where rounding can put it a few ulps outside.

    A vector against itself (or its negation) computes to 1.0000000000000002
    here, and to 1.0000001 in Qdrant's float32; the documented score is a
    cosine, which callers may pass to ``math.acos``.
    """
    return max(-1.0, min(1.0, float(score)))


def check_dimensions(collection: str, stored: int | None, documents: Iterable[Document]) -> int | None:
    """The one dimension of a call's vectors, checked against the collection's; call it before writing.

    The conformance suite calls ``fallthrough_upsert_documents`` directly, with
    a wrong vector late in a call of several chunks: checked first, the call
    writes nothing.

    :param collection: the collection, for the message.
    :param stored: the collection's dimension, or None while it holds no vector.
    :param documents: the call's documents.
    :return: the dimension of their vectors, or None when none has one.
    :raises InvalidInput: the vectors mix dimensions, or differ from ``stored``.
    """
    dimensions = {len(document.vector) for document in documents if document.vector is not None}
    if len(dimensions) > 1:
        raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
    if dimensions and stored is not None and dimensions != {stored}:
        raise InvalidInput(f"collection {collection!r} holds vectors of dimension {stored}, got {sorted(dimensions)}")
    return next(iter(dimensions), None)


def check_fixed_dimension(collection: str, stored: int | None, dimension: int) -> None:
    """Refuse to fix ``dimension`` on a collection that has another (``fallthrough_fix_collection_dimension``).

    :param collection: the collection, for the message.
    :param stored: the collection's dimension, or None while it has none.
    :param dimension: the dimension to fix.
    :raises InvalidInput: ``stored`` is another dimension.
    """
    if stored is not None and stored != dimension:
        raise InvalidInput(f"collection {collection!r} holds vectors of dimension {stored}, got {dimension}")


def is_collection_name(candidate: str) -> bool:
    """Whether the core accepts ``candidate`` as a collection name.

    For a plugin that finds names in its store (prefixed collections, shard
    directories) and must list only those that are a collection's.

    :param candidate: a name found in the store, its prefix taken off.
    """
    try:
        check_collection(candidate)
    except InvalidInput:
        return False
    return True


# --------------------------------------------------------------------------
# The merge order
# --------------------------------------------------------------------------


def lexicographic_below(key: Sequence[tuple[str, V]]) -> list[tuple[list[tuple[str, V]], tuple[str, V]]]:
    """The stored ``(f1, f2, ...)`` is below ``key``'s values, as alternatives a filter language can say.

    ``(a, b) < (x, y)`` is ``a < x``, or ``a == x and b < y``. For a store
    whose filters have no row comparison (Qdrant's), write each alternative
    as "every field before equals its value, and this field is below its
    value", and join the alternatives with "or".

    :param key: ``(field, value)`` pairs in significance order, the first
        the most significant (for the merge: attempt, rank, updated, tiebreak).
    :return: one ``(equal_before, (field, value))`` pair per field: the
        pairs that must be equal, and the pair whose stored value must be
        lower.
    """
    return [(list(key[:position]), pair) for position, pair in enumerate(key)]


def page_from_seq_order(
    fetched: Sequence[Mapping[str, Any]], fetch: int, after: tuple[int, str] | None, limit: int
) -> list[Mapping[str, Any]] | None:
    """A page of records in ``(seq, key)`` order from records a store ordered by ``seq`` alone; None if not certain.

    For a store that orders by an integer but not by a string after it
    (Qdrant): records that share a seq (two Stores that stamped the same
    number) come back in any order among themselves. Ask the store for
    ``fetch`` records from the cursor's seq on (``seq >= after[0]``), with
    ``fetch`` at least ``limit + 2`` (the cursor's own record and one past
    the page), so that with distinct seqs one fetch is enough; on None,
    fetch again with more (twice as many), until the page is certain.

    :param fetched: what the store returned, in seq order: mappings with
        ``"seq"`` and ``"key"``, as many as ``fetch`` or fewer if there were
        no more. When there were ``fetch``, the records at the last seq may
        continue past them, so only those below it are used.
    :param fetch: how many records the store was asked for.
    :param after: the cursor, ``(seq, key)`` of the last record of the
        previous page; None for the first page.
    :param limit: the page size.
    :return: up to ``limit`` of ``fetched`` after the cursor, in
        ``(seq, key)`` order; None when fewer than ``limit`` are certain.
    """
    exhausted = len(fetched) < fetch
    if not exhausted:
        last_seq = fetched[-1]["seq"]
        fetched = [record for record in fetched if record["seq"] < last_seq]
    ordered = sorted(fetched, key=lambda record: (record["seq"], record["key"]))
    if after is not None:
        ordered = [record for record in ordered if (record["seq"], record["key"]) > after]
    return ordered[:limit] if exhausted or len(ordered) >= limit else None


# --------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------


UNWRITABLE_STORAGE_ERRNOS: frozenset[int] = frozenset(
    {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES, errno.EPERM}
)
"""``OSError`` numbers that say an embedded store's files cannot be written: a disk read-only, full or
failing, or a directory the process may not write. Whatever the call, the store cannot serve until an
operator mends it: map them to :class:`~fallthrough.errors.BackendUnavailable`, as a server that is
down is, so the next store serves."""


@attrs.frozen
class Endpoint:
    """How a plugin names its store in messages, and the secrets no message may hold.

    Build one from the URL when the plugin is built; pass it to the error
    translator; use :attr:`text` in a repr and :meth:`redact` on any text a
    driver wrote.
    """

    backend: str
    """How the store is called in messages: ``"postgresql"``."""
    where: str
    """Which store: the URL with its secrets masked, or a path, or ``"in memory"``."""
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    """The password and secret option values of the URL (never shown)."""

    @property
    def text(self) -> str:
        """``"<backend> <where>"``, how every message of the plugin starts."""
        return f"{self.backend} {self.where}"

    def __str__(self) -> str:
        return self.text

    @classmethod
    def from_url(
        cls, backend: str, url: URL, secret_keys: Collection[str] = (), *, where: str | None = None
    ) -> Endpoint:
        """The endpoint of ``url``.

        :param backend: how the store is called in messages (``"postgresql"``).
        :param url: the backend URL.
        :param secret_keys: the query options this plugin declares secret
            (what its ``fallthrough_secret_url_keys`` hook returns).
        :param where: what to show instead of the masked URL (a path, or
            ``"in memory"``); it must hold no secret.
        """
        shown = mask_url(url, secret_keys) if where is None else where
        return cls(backend, shown, tuple(secrets_of(url, secret_keys)))

    def redact(self, text: str) -> str:
        """``text`` with every secret of the URL replaced by ``***``.

        :param text: a driver's message, or one built from it.
        """
        return redact(text, self.secrets)

    def unavailable(self, what: str, error: BaseException | None = None) -> BackendUnavailable:
        """A :class:`~fallthrough.errors.BackendUnavailable` that names this store, redacted.

        Raise it ``from None``: a driver exception may hold the secret in its
        attributes, and a chained one is reachable from the error.

        :param what: what happened (``"is unavailable"``, ``"is not open"``).
        :param error: the driver error, whose class and text are appended.
        """
        detail = f": {type(error).__name__}: {error}" if error is not None else ""
        return BackendUnavailable(self.redact(f"{self.text} {what}{detail}"))


class UrlOptions:
    """The query options of a backend URL, read and checked in one place.

    Every reader raises :class:`~fallthrough.errors.InvalidInput` naming the
    option and the accepted range, never the URL (which may hold a secret).
    An option given twice is refused: which of the two the user meant is
    not for the plugin to guess. (An option given with no value, ``?x=``,
    SQLAlchemy drops: it reads as absent.)

    :param url: the backend URL.
    :param backend: how the backend is called in messages (``"sqlite"``).
    :param known: every option the plugin reads; with it, any other option
        is refused, so a misspelt one fails loudly instead of being ignored.
        None accepts anything (the plugin checks the rest itself).
    :raises InvalidInput: an option is given twice, or is not in ``known``.
    """

    def __init__(self, url: URL, backend: str, known: Collection[str] | None = None) -> None:
        self._query = url.query
        self._backend = backend
        repeated = sorted(name for name, value in self._query.items() if not isinstance(value, str))
        if repeated:
            raise InvalidInput(f"the {backend} URL gives the options {repeated} more than once; give each once")
        if known is not None:
            unknown = sorted(set(self._query) - set(known))
            if unknown:
                raise InvalidInput(f"unknown {backend} URL options {unknown}; known: {sorted(known)}")

    def names(self) -> list[str]:
        """The options the URL gives, in its order."""
        return list(self._query)

    def text(self, name: str) -> str | None:
        """The option's value as given, or None when absent.

        :param name: the option.
        """
        raw = self._query.get(name)
        assert raw is None or isinstance(raw, str)  # repeated options were refused when built
        return raw

    def number(
        self,
        name: str,
        default: float,
        *,
        low: float,
        high: float,
        low_open: bool = False,
        high_open: bool = False,
        unit: str = "seconds",
    ) -> float:
        """A number option (a timeout, say), within ``[low, high]``: decimal ASCII digits, as ``2``, ``0.5``, ``1e1``.

        :param name: the option.
        :param default: the value when it is absent (not checked).
        :param low: the least accepted value.
        :param high: the greatest accepted value.
        :param low_open: refuse ``low`` itself.
        :param high_open: refuse ``high`` itself.
        :param unit: what the number counts, for the message.
        :raises InvalidInput: not a number, or out of range.
        """
        raw = self.text(name)
        if raw is None:
            return default
        value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):
            lower = "above" if low_open else "from"
            upper = "below" if high_open else "to"
            raise InvalidInput(
                f"the {self._backend} URL option {name} must be a number of {unit} {lower} {low:g} {upper} {high:g}, "
                f"got {raw!r}"
            )
        return value

    def integer(self, name: str, default: T, *, low: int, high: int | None = None) -> int | T:
        """An integer option (a pool size, say), at least ``low`` and at most ``high``.

        :param name: the option.
        :param default: the value when it is absent (not checked; may be None).
        :param low: the least accepted value.
        :param high: the greatest accepted value; None for no bound.
        :raises InvalidInput: not an integer, or out of range.
        """
        raw = self.text(name)
        if raw is None:
            return default
        number = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
        if not number.is_integer():
            raise InvalidInput(f"the {self._backend} URL option {name} must be an integer, got {raw!r}")
        value = int(number)
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise InvalidInput(f"the {self._backend} URL option {name} must be an integer {bound}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """A boolean option: ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``, any case.

        :param name: the option.
        :param default: the value when it is absent.
        :raises InvalidInput: any other value.
        """
        raw = self.text(name)
        if raw is None:
            return default
        folded = raw.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise InvalidInput(f"the {self._backend} URL option {name} must be true or false, got {raw!r}")


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A number as a URL spells one. ``float`` alone also takes ``1_0``, spaces and other scripts' digits.

One way to match any text (no digit run splits two ways), so a long run of digits fails in linear time."""
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------


def require_modules(backend: str, extra: str, *modules: str, install: str | None = None) -> None:
    """Import a plugin's driver modules, or fail with the command that installs them.

    Call it first in the plugin package's ``__init__``: the driver comes with
    an extra, not with fallthrough, and a bare ``ModuleNotFoundError`` would
    not say which one. The registry reports the error as the scheme's
    :class:`~fallthrough.errors.UnknownBackend`.

    :param backend: how the user knows the store (``"PostgreSQL"``).
    :param extra: the extra of fallthrough that installs the driver
        (``fallthrough[extra]``); ignored when ``install`` is given.
    :param modules: the modules to import.
    :param install: what ``pip install`` needs instead, for a plugin
        distributed on its own (``"fallthrough-mydb[driver]"``).
    :raises ModuleNotFoundError: one is missing; the message says what to install.
    """
    requirement = f"fallthrough[{extra}]" if install is None else install
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as missing:
            raise ModuleNotFoundError(
                f"{missing.msg}: the {backend} backend needs it; pip install '{requirement}'",
                name=missing.name,
            ) from missing


class Opened(Generic[T]):
    """The resource a plugin builds in ``fallthrough_open`` (an engine, a client, a shard) and every hook needs.

    ``fallthrough_open`` must be idempotent, ``fallthrough_close`` must work
    on a plugin never opened, and every other hook must raise
    :class:`~fallthrough.errors.BackendUnavailable` while it is closed. This
    holds those three rules in one place, thread-safe.

    :param endpoint: names the store in the "is not open" error.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._lock = threading.RLock()
        self._value: T | None = None

    @property
    def lock(self) -> threading.RLock:
        """Held while opening and closing; a plugin may hold it to serialise its own calls too."""
        return self._lock

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` built the resource and :meth:`close` has not taken it since."""
        return self._value is not None

    def open(self, build: Callable[[], T]) -> T:
        """Build the resource unless it is built already, and return it.

        :param build: connects and prepares the store (creates the schema);
            if it raises, the plugin stays closed and the error propagates.
        """
        with self._lock:
            if self._value is None:
                self._value = build()
            return self._value

    def close(self) -> T | None:
        """Forget the resource and hand it back, for the plugin to release; None when it was not open."""
        with self._lock:
            value, self._value = self._value, None
            return value

    def get(self) -> T:
        """The open resource.

        :raises BackendUnavailable: the plugin is not open.
        """
        value = self._value
        if value is None:
            raise self._endpoint.unavailable("is not open")
        return value


# -- records read back -------------------------------------------------------


class _Statuses(dict[str, Status]):
    """Status by stored value: one dict lookup, where ``Status(value)`` is an enum call per row."""

    def __missing__(self, value: str) -> Status:
        return Status(value)  # raises ValueError: the store holds no such status


_STATUSES = _Statuses({status.value: status for status in Status})


def decode_document(
    document_id: str, text: str, vector: Iterable[float] | bytes | bytearray | memoryview | None, metadata: Metadata
) -> Document:
    """A :class:`~fallthrough.types.Document` as a store read it back, without checking it again.

    :param document_id: the stored id.
    :param text: the stored text.
    :param vector: the stored components (rounded to float32 again), or their
        little-endian float32 bytes (``bytes``, ``bytearray`` or a byte
        ``memoryview``, read as :func:`float32_vector` reads them: the faster
        way, a third of the time for 1536 dimensions), or None. A
        ``memoryview`` of items wider than a byte (format ``"f"``, ``"d"``)
        holds components, as a list of them would.
    :param metadata: the stored metadata, decoded (datetimes restored).

    The core checked every document before any store wrote it, so a read
    does not pay for the checks again. More than speed: a document written
    under an older release's rules (a key such as ``"a.b"``, refused since
    metadata nests) must still be readable, so that it can be found, rewritten
    and copied by a repair, rather than failing every read that meets it.
    """
    document: Document = object.__new__(Document)
    assign = object.__setattr__
    assign(document, "id", document_id)
    assign(document, "text", text)
    assign(document, "vector", _stored_vector(vector))
    assign(document, "metadata", metadata)
    return document


def decode_hit(
    document_id: str,
    score: float,
    text: str,
    metadata: Metadata,
    vector: Iterable[float] | bytes | bytearray | memoryview | None = None,
) -> Hit:
    """A :class:`~fallthrough.types.Hit` built from what a store read back, without checking it again.

    :param document_id: the stored id.
    :param score: the hit's score, higher is better (a float).
    :param text: the stored text.
    :param metadata: the stored metadata, decoded (datetimes restored).
    :param vector: as :func:`decode_document` takes it; None when the search
        did not ask for vectors, or the document has none.

    For the reasons :func:`decode_document` gives. ``Hit(...)`` checks its
    vector as user input (``check_vector``: about 85 µs for 384 components);
    a search that asks for vectors paid that for every hit.
    """
    hit: Hit = object.__new__(Hit)
    assign = object.__setattr__
    assign(hit, "id", document_id)
    assign(hit, "score", score)
    assign(hit, "text", text)
    assign(hit, "metadata", metadata)
    assign(hit, "vector", _stored_vector(vector))
    return hit


def _stored_vector(vector: Iterable[float] | bytes | bytearray | memoryview | None) -> tuple[float, ...] | None:
    if vector is None:
        return None
    if isinstance(vector, bytes | bytearray) or (isinstance(vector, memoryview) and vector.itemsize == 1):
        return float32_vector(vector)  # packed float32; iterated, they would give byte values
    # Rounded to float32 again: a driver may hand back a float4 parsed from its text form (0.1, not
    # float32's 0.100000001...), and a stored vector is always float32 values.
    return tuple(array.array("f", vector))


class RecordPage(Sequence[Record]):
    """Records read back by a SQL store: a read-only sequence that builds each record as it is reached.

    Made by :func:`decode_records`; a backend returns it from
    ``fallthrough_list_records`` and the like as it would a list. It holds
    the rows, not the records: iterating a batch builds one record at a time
    and drops it when the caller moves on, so a page of records never lives
    long enough for the cyclic garbage collector to promote and re-scan it
    (a decoded list of 1,000 records did, and the collector's passes were a
    third of the time spent iterating a batch). Each iteration or index
    builds fresh, equal records; call ``list(page)`` to keep them. Equal to
    a list, or another page, of equal records in the same order. A row that
    cannot be decoded raises when its record is reached (the Store turns
    that into a :class:`~fallthrough.errors.PluginError` for its caller).

    Nothing is validated again: the core checked every value before the
    plugin wrote it. Rows of one page often share their ``updated_us`` (a
    create stamps all its records alike), so each distinct stamp becomes a
    datetime once per pass, shared by the records (datetimes are immutable);
    and records without a result that agree on every field but ``key`` and
    ``seq`` are built from a copy of the first one's fields.
    """

    __slots__ = ("_batch_id", "_rows")

    def __init__(self, batch_id: uuid.UUID, rows: Iterable[Sequence[Any]]) -> None:
        self._batch_id = batch_id
        # A list of its own, never a live cursor nor the caller's list: the records are built
        # after the store's read has ended, from the rows as they were then.
        self._rows: list[Sequence[Any]] = list(rows)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            return list(_decoded(self._batch_id, self._rows[index]))
        return next(_decoded(self._batch_id, (self._rows[index],)))

    def __iter__(self) -> Iterator[Record]:
        return _decoded(self._batch_id, self._rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, RecordPage)):
            return len(self) == len(other) and all(mine == theirs for mine, theirs in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        try:
            return f"RecordPage({list(self)!r})"
        except Exception:  # a row no record can be built from: say so rather than fail to print
            return f"<RecordPage of {len(self)} rows, not all decodable>"


# A Record's instance dict, written whole: attrs' __init__ is a Python call per record that
# writes the ten fields one by one, and iterating a batch builds a record per row. Records are
# frozen attrs classes with a __dict__ (see types.Record), so this builds the same object.
_new_object = object.__new__
_set_instance_dict = Record.__dict__["__dict__"].__set__


def _decoded(batch_id: uuid.UUID, rows: Iterable[Sequence[Any]]) -> Iterator[Record]:
    statuses = _STATUSES
    moments: dict[int, datetime] = {}
    new, set_dict = _new_object, _set_instance_dict
    # Records without a result that agree on everything but key and seq (a created batch's pending
    # records, as a rule) start from a copy of the first one's instance dict: a dict copy is one C
    # call, where building the dict decodes and stores ten fields. A record with a result is built
    # whole: its decoded JSON may be a dict or list, never shared between two records.
    templates: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, seq, status, attempt, result, error, updated_us, lease_owner, lease_us in rows:
        shared = None if result is not None else (status, attempt, error, updated_us, lease_owner, lease_us)
        template = None if shared is None else templates.get(shared)
        if template is not None:
            fields = template.copy()
            fields["key"] = key
            fields["seq"] = seq
        else:
            updated_at = moments.get(updated_us)
            if updated_at is None:
                updated_at = moments[updated_us] = from_micros(updated_us)
            fields = {
                "batch_id": batch_id,
                "key": key,
                "seq": seq,
                "status": statuses[status],
                "attempt": attempt,
                "result": None if result is None else load_json(result),
                "error": error,
                "updated_at": updated_at,
                "lease_owner": lease_owner,
                "lease_expires": None if lease_us is None else from_micros(lease_us),
            }
            if shared is not None:
                templates[shared] = fields.copy()  # never a record's own dict, which that record owns
        record = new(Record)
        set_dict(record, fields)
        yield record


def decode_records(batch_id: uuid.UUID, rows: Iterable[Sequence[Any]]) -> RecordPage:
    """Records from rows a SQL store read back, built as they are reached (see :class:`RecordPage`).

    :param batch_id: the batch every row belongs to.
    :param rows: rows of ``(key, seq, status, attempt, result, error,
        updated_us, lease_owner, lease_us)``: ``status`` its stored value,
        ``result`` JSON text or None, ``updated_us`` and ``lease_us``
        microseconds since the epoch (``lease_us`` None without a lease).
        Read whole now, so a cursor may be passed.
    :return: the :class:`~fallthrough.types.Record` of each row, in order.
        A row the core could not have written (an unknown status) raises
        ``ValueError`` when its record is reached.
    """
    return RecordPage(batch_id, rows)


__all__ = [
    "DATETIME_TAG",
    "UNWRITABLE_STORAGE_ERRNOS",
    "Endpoint",
    "Opened",
    "RecordPage",
    "UrlOptions",
    "check_dimensions",
    "check_fixed_dimension",
    "chunked",
    "clamp_cosine",
    "cosine_similarity",
    "decode_document",
    "decode_hit",
    "decode_records",
    "dump_json",
    "dump_json_optional",
    "dump_metadata",
    "float32_vector",
    "from_rfc3339",
    "is_collection_name",
    "lexicographic_below",
    "load_json",
    "load_json_optional",
    "load_metadata",
    "load_metadata_all",
    "page_from_seq_order",
    "require_modules",
    "rfc3339",
    "tag_datetimes",
    "untag_datetimes",
]
