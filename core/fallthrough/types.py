"""The value types that cross the public API and the hook boundary.

All are frozen attrs classes. Those a caller builds (:class:`RecordUpdate`,
:class:`Document`) validate themselves on construction, so an invalid value
never reaches a backend; those a backend builds for the core to return
(:class:`Batch`, :class:`Record`, :class:`Progress`, :class:`Hit`) check only
what is cheap, because they are made in bulk.

``JSON`` (any JSON value), ``Scalar`` (a metadata scalar), ``MetadataValue``
(a scalar, or an object or list of them) and ``Metadata`` (a document's
metadata) are the type aliases the hook signatures use; a plugin imports them from here.
"""

from __future__ import annotations

import enum
import operator
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import overload

import attrs

from . import validation
from .errors import BackendUnavailable, InvalidInput
from .filters import Filter
from .text import token_set
from .validation import JSON, Metadata, MetadataValue, Scalar

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


class Status(enum.StrEnum):
    """The status of a record. Its string value is accepted wherever it is."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Position in the merge order: pending < processing < completed = failed."""
        return _RANK[self]

    @classmethod
    def coerce(cls, value: object) -> Status:
        if isinstance(value, Status):
            return value
        try:
            return cls(value)  # type: ignore[arg-type]
        except ValueError:
            names = ", ".join(repr(status.value) for status in cls)
            raise InvalidInput(f"status must be one of {names}, got {value!r}") from None


_RANK = {Status.PENDING: 0, Status.PROCESSING: 1, Status.COMPLETED: 2, Status.FAILED: 2}


@attrs.frozen
class Batch:
    """A batch of records.

    ``total`` is the number of records it holds now. ``metadata`` is the
    JSON object given when the batch was first created; later
    ``create_batch`` calls with the same id leave it as it was.
    """

    id: uuid.UUID
    total: int
    metadata: dict[str, JSON]
    created_at: datetime


# Not slotted: a frozen attrs class with a __dict__ builds its instances by
# writing that dict, about twice as fast as the ten object.__setattr__ calls
# of a slotted one, and a page of records is built at every read (issue 12).
# It costs about 100 bytes more per record held.
@attrs.frozen(slots=False)
class Record:
    """One item of a batch and where its processing stands.

    ``seq`` orders a batch's records by when they were added, and within one
    call by input order. The core stamps it (it is microsecond-based, not a
    0-based position), so every store holds the same value.

    ``lease_owner`` and ``lease_expires`` say which worker holds a record it
    claimed (``Store.claim``) and until when: both set while a claimed record
    is processing, both None otherwise. Any applied update clears them, so a
    record is held only between a claim (or an extension) and the next
    update. ``lease_expires`` is stamped by the core, like ``updated_at``.
    """

    batch_id: uuid.UUID
    key: str
    seq: int
    status: Status
    attempt: int
    result: JSON
    error: str | None
    updated_at: datetime
    lease_owner: str | None = None
    lease_expires: datetime | None = None


def _status(value: object) -> Status:
    return Status.coerce(value)


@attrs.frozen
class RecordUpdate:
    """A request to move one record to ``status``.

    ``result`` (any JSON value) and ``error`` replace the stored ones.
    ``attempt`` pins the update to one attempt: an update for an attempt
    older than the stored one is not applied, so a slow worker cannot
    overwrite a record that was retried meanwhile. Left as None, the update
    applies to whatever attempt the record is on.
    """

    batch_id: uuid.UUID = attrs.field(converter=validation.check_batch_id)
    key: str = attrs.field(converter=validation.plain_str)
    status: Status = attrs.field(converter=_status)
    result: JSON = attrs.field(default=None)
    error: str | None = attrs.field(default=None)
    attempt: int | None = attrs.field(default=None)

    @key.validator
    def _check_key(self, _: attrs.Attribute[str], value: str) -> None:
        validation.check_key(value)

    @result.validator
    def _check_result(self, _: attrs.Attribute[JSON], value: JSON) -> None:
        validation.check_json(value, "result")

    @error.validator
    def _check_error(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            validation.check_string(value, "error")

    @attempt.validator
    def _check_attempt(self, _: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None:
            # What a store may hold: a backend builds these for retried records too. What a caller
            # may name is narrower, and Store.update_many checks it (MAX_ATTEMPT).
            validation.check_attempt(value, maximum=validation.MAX_STORED_ATTEMPT)

    def pinned(self, attempt: int) -> RecordUpdate:
        """This update pinned to ``attempt``: what a backend reports for an update that applied there.

        Unlike ``attrs.evolve``, this does not validate the other fields again:
        they were checked when this update was made, and in a bulk merge of
        100k updates re-checking every key and result is most of the Python time.
        """
        if self.attempt == attempt:
            return self
        # Retries may have taken the record past what a caller may name, never past what a store holds.
        validation.check_attempt(attempt, maximum=validation.MAX_STORED_ATTEMPT)
        pinned: RecordUpdate = object.__new__(RecordUpdate)
        assign = object.__setattr__
        # The names once per class (_UPDATE_FIELDS): attrs.fields() per call was half the cost of a pin.
        for name in _UPDATE_FIELDS:
            assign(pinned, name, getattr(self, name))
        assign(pinned, "attempt", attempt)
        return pinned

    @cached_property
    def tiebreak(self) -> int:
        """The last key of the merge order; see :func:`fallthrough.ordering.content_tiebreak`."""
        from .ordering import content_tiebreak

        return content_tiebreak(self.status, self.result, self.error)


_UPDATE_FIELDS = tuple(field.name for field in attrs.fields(RecordUpdate))


@attrs.frozen
class Progress:
    """Counts of a batch's records by status.

    ``done`` counts finished records (completed or failed). ``fraction`` is
    ``done / total``, and 1.0 for an empty batch: nothing is left to do.
    """

    total: int
    pending: int
    processing: int
    completed: int
    failed: int

    def __attrs_post_init__(self) -> None:
        if self.pending + self.processing + self.completed + self.failed != self.total:
            raise InvalidInput(f"progress counts do not add up to total: {self!r}")

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @classmethod
    def from_counts(cls, counts: dict[Status, int] | dict[str, int]) -> Progress:
        """Build from a status -> count mapping; missing statuses count 0."""
        by_status = {Status.coerce(status): count for status, count in counts.items()}
        values = {status.value: by_status.get(status, 0) for status in Status}
        return cls(total=sum(values.values()), **values)


@attrs.frozen
class BatchProgress:
    """A batch and the counts of its records, as ``Store.batches`` lists them."""

    batch: Batch
    progress: Progress


def _vector(value: object) -> tuple[float, ...] | None:
    return None if value is None else validation.check_vector(value)


def _text(value: object) -> str:
    return validation.check_string(value, "document text")


@attrs.frozen
class Document:
    """A searchable document of a collection.

    ``vector`` is rounded to float32 on construction; ``metadata`` is a dict
    of str, int, float, bool, None, timezone-aware datetime, objects (dicts
    with str keys) and lists of scalars and objects, nested at most
    ``MAX_METADATA_DEPTH`` levels (see :func:`fallthrough.validation.check_metadata`).
    Datetimes are converted to UTC (the same instant): that is what
    every store holds and reads back, to the microsecond.
    """

    id: str = attrs.field(converter=validation.plain_str)
    text: str = attrs.field(default="", converter=_text)
    vector: tuple[float, ...] | None = attrs.field(default=None, converter=_vector)
    metadata: Metadata = attrs.field(factory=dict, converter=validation.check_metadata)

    @id.validator
    def _check_id(self, _: attrs.Attribute[str], value: str) -> None:
        validation.check_key(value, "document id")

    @cached_property
    def tokens(self) -> frozenset[str]:
        """The distinct text tokens, as :func:`fallthrough.text.tokenize` defines them."""
        return token_set(self.text)


@attrs.frozen
class StoredDocument:
    """A collection's entry for one id, as stored, with its version: a live document or a tombstone.

    ``version`` is the stamp of the write that left the entry (see
    ``fallthrough_upsert_documents``). ``document`` is None for a tombstone,
    the entry a delete leaves so that an older upsert, replayed late or
    copied by a repair from another store, cannot bring the document back.
    Backends build these in bulk, so nothing is checked.
    """

    id: str
    version: int
    document: Document | None

    @property
    def live(self) -> bool:
        """True for a document, False for a tombstone."""
        return self.document is not None


@attrs.frozen
class Hit:
    """One search hit. ``score`` is higher-is-better on every backend."""

    id: str
    score: float
    text: str
    metadata: Metadata
    # Filled only when the search asked for vectors (``with_vectors``) and the
    # document has one: most callers never look at it, and a vector is the
    # largest part of a hit to read and send.
    vector: tuple[float, ...] | None = attrs.field(default=None, converter=_vector)


@attrs.frozen
class SearchQuery:
    """A validated search, as the core hands it to a backend.

    At least one of ``vector``, ``text`` or ``filter`` may be set; with none,
    the query lists the collection in id order.
    """

    vector: tuple[float, ...] | None
    text: str | None
    filter: Filter | None
    limit: int
    # Whether each hit carries its document's vector (``Hit.vector``); never a
    # capability: every backend can return what it stores.
    with_vectors: bool = False

    @cached_property
    def tokens(self) -> frozenset[str]:
        """The distinct query tokens (empty when there is no text)."""
        return token_set(self.text) if self.text is not None else frozenset()

    @property
    def needs(self) -> frozenset[str]:
        """The capabilities this query uses: some of vector, text and filter."""
        parts = []
        if self.vector is not None:
            parts.append("vector")
        if self.text is not None:
            parts.append("text")
        if self.filter is not None:
            parts.append("filter")
        return frozenset(parts)


@attrs.frozen
class SearchResult(Sequence[Hit]):
    """The hits of a search, best first, and who answered.

    ``backend`` names the backend that served the query. ``degraded`` is
    true when no available backend could serve the whole query and the
    vector ranking was dropped: the hits match the text and filter, ordered
    as for a query without a vector.
    """

    hits: tuple[Hit, ...]
    backend: str
    degraded: bool = False

    @overload
    def __getitem__(self, index: int) -> Hit: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Hit]: ...
    def __getitem__(self, index: int | slice) -> Hit | Sequence[Hit]:
        return self.hits[index]

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def ranked(self) -> SearchResult:
        """This result, unless it is degraded: then :class:`~fallthrough.errors.BackendUnavailable`.

        A degraded result's hits are in text or id order, not ranked by the
        vector. A caller that hands hits on as the nearest documents (the
        LangChain and Haystack adapters) would give a silent wrong answer.
        """
        if self.degraded:
            raise BackendUnavailable(
                f"no store that ranks by vector could serve the search; {self.backend} answered without the vector"
            )
        return self


MAX_PARALLEL_CALLS = 64
"""The largest :attr:`Capabilities.parallel_calls` a backend may declare."""

MAX_SEARCH_LIMIT = validation.MAX_SEARCH_LIMIT
"""The largest :attr:`SearchQuery.limit`, the most hits one search returns (an integration checks its own
``k`` or ``top_k`` against it with :func:`check_search_count`)."""


def check_search_count(value: object, name: str, *, least: int = 0) -> int:
    """An integration's count of hits (LangChain's ``k``, Haystack's ``top_k``), as a plain int.

    Refused by the name its caller gave it: the store's own refusal would
    speak of its search's ``limit``.

    :param value: the count as the caller gave it.
    :param name: the caller's name for it, for the message.
    :param least: the smallest count accepted (0: a search for nothing, which
        the integration answers itself).
    :raises InvalidInput: not an int (a bool is not one), or outside ``least``
        to :data:`MAX_SEARCH_LIMIT`.
    """
    # The plain int it holds, compared: a subclass may compare, or print itself, as it likes (see check_limit).
    number = operator.index(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if number is not None and least <= number <= MAX_SEARCH_LIMIT:
        return number
    raise InvalidInput(
        f"{name} must be an int from {least} to {MAX_SEARCH_LIMIT} (the store's search limit), not {value!r}"
    )


@attrs.frozen
class Capabilities:
    """What a backend can do; the router routes by it.

    :param records: batches and records.
    :param documents: document storage with filter-only listing.
    :param vector_search: the backend ranks documents by a query vector itself.
    :param text_search: the backend ranks documents by a query text itself.
    :param filter_search: the backend evaluates a metadata filter itself.
    :param claims: the backend can hand records to workers under a lease,
        atomically (``fallthrough_claim_records`` and
        ``fallthrough_extend_leases``); it needs ``records``.
    :param parallel_calls: a hint, not a rule: how many calls to this backend
        are worth running at once from one process (1 to
        :data:`MAX_PARALLEL_CALLS`), or None when the backend sets no limit
        of its own. A backend whose calls run mostly Python under the GIL
        and serialise on a lock anyway (SQLite: 2) gains no throughput from
        more, and each extra thread lengthens an asyncio loop's stalls; one
        that waits on a socket with the GIL released (a database server)
        leaves it None. Declare one only where a measurement shows it helps.
        :class:`~fallthrough.aio.AsyncStore` sizes its default bound by it,
        and a streamed create writes its chunks one at a time where a
        backend declares it (:attr:`~fallthrough.Store.chunk_writes_in_flight`);
        the router ignores it.
    """

    records: bool = False
    documents: bool = False
    vector_search: bool = False
    text_search: bool = False
    filter_search: bool = False
    claims: bool = False
    parallel_calls: int | None = attrs.field(default=None)

    @parallel_calls.validator
    def _check_parallel_calls(self, _: attrs.Attribute[int | None], value: int | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"parallel_calls must be None or an int, got {value!r}")
        if not 1 <= value <= MAX_PARALLEL_CALLS:
            raise InvalidInput(f"parallel_calls must be between 1 and {MAX_PARALLEL_CALLS}, got {value}")

    def serves(self, needs: frozenset[str]) -> bool:
        """True if this backend can evaluate every part in ``needs``."""
        return self.documents and needs <= self.search_parts

    @property
    def search_parts(self) -> frozenset[str]:
        parts = {"vector": self.vector_search, "text": self.text_search, "filter": self.filter_search}
        return frozenset(name for name, supported in parts.items() if supported)


@attrs.frozen
class BackendHealth:
    """One backend as the router sees it.

    ``state`` is the circuit breaker's: ``"closed"`` (in use), ``"open"``
    (skipped until its cooldown ends) or ``"half-open"`` (one trial call
    allowed). ``missed_writes`` counts writes this backend did not apply
    while another did. ``url`` has its password and API key masked.

    ``pending_hints`` is how many journaled writes wait to be replayed to it,
    and ``lag`` how many seconds the oldest has waited (None when none
    does). ``needs_repair`` is true when its journal overflowed or it refused
    a write the others applied: only ``Store.repair`` clears it.
    ``serves_reads`` is false while it has hints or needs a repair: it
    still takes writes, but reads go to the next backend.
    """

    name: str
    url: str
    state: str
    last_error: str | None
    missed_writes: int
    capabilities: Capabilities | None
    pending_hints: int = 0
    lag: float | None = None
    needs_repair: bool = False
    serves_reads: bool = True


@attrs.frozen
class BackendInfo:
    """An installed backend plugin, as :func:`fallthrough.available_backends` lists it."""

    name: str
    target: str
    distribution: str | None
    version: str | None
    error: str | None = None


@attrs.frozen
class RepairCounts:
    """What a repair sent to one backend: how many of each kind of entry it had to fix there."""

    batches: int = 0
    records: int = 0
    documents: int = 0
    tombstones: int = 0
    dimensions: int = 0
    """Collections whose vector dimension was sent alone, with no document to carry it."""

    @property
    def total(self) -> int:
        return self.batches + self.records + self.documents + self.tombstones + self.dimensions


@attrs.frozen
class RepairReport:
    """What :func:`fallthrough.repair.repair_stores` (and ``Store.repair``) sent, per backend name.

    ``sent`` maps every backend the repair looked at to its
    :class:`RepairCounts`, zeros included. A repair of stores that already
    agree sends nothing; :attr:`sent_nothing` says so.
    """

    sent: dict[str, RepairCounts] = attrs.field(factory=dict)

    @property
    def sent_nothing(self) -> bool:
        return all(counts.total == 0 for counts in self.sent.values())

    def __getitem__(self, backend_name: str) -> RepairCounts:
        return self.sent.get(backend_name, RepairCounts())


@attrs.frozen
class PurgeReport:
    """What ``Store.purge_tombstones`` removed, per backend name, and which backends it left out.

    ``purged`` maps every backend that took part to how many tombstones it
    removed there, zeros included. ``left_out`` maps every backend of
    documents that kept its tombstones to why (unavailable, behind its
    journaled writes, no purge hook, a repair pending, a hook that failed).
    A purge that left none out is :attr:`complete`.
    """

    purged: dict[str, int] = attrs.field(factory=dict)
    left_out: dict[str, str] = attrs.field(factory=dict)

    @property
    def complete(self) -> bool:
        return not self.left_out

    @property
    def total(self) -> int:
        return sum(self.purged.values())


__all__ = [
    "JSON",
    "MAX_PARALLEL_CALLS",
    "MAX_SEARCH_LIMIT",
    "check_search_count",
    "BackendHealth",
    "BackendInfo",
    "Batch",
    "BatchProgress",
    "Capabilities",
    "Document",
    "Hit",
    "Metadata",
    "MetadataValue",
    "Progress",
    "PurgeReport",
    "Record",
    "RecordUpdate",
    "RepairCounts",
    "RepairReport",
    "SearchQuery",
    "Scalar",
    "SearchResult",
    "Status",
    "StoredDocument",
    "from_micros",
    "to_micros",
]
