"""The Store: the public API of fallthrough, and :func:`connect`.

Every public method validates its arguments whole, stamps writes (see
:mod:`fallthrough.clock`), then hands one hook call to the
:class:`~fallthrough.router.Router`, which picks the backends, keeps the
journal of missed writes and replays it. See ``docs/architecture.md``.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import attrs
import pluggy
from sqlalchemy.engine import URL

from . import hookspecs, validation
from .breaker import BreakerPolicy, CircuitBreaker
from .clock import Stamper
from .errors import FallthroughError, InvalidInput, NotFound, PluginError, Unsupported, UnsupportedQuery, scrubbed
from .filters import Filter, parse_filter
from .inflight import SHORT_FIRST_WRITE, STREAM_WRITES_IN_FLIGHT, WritesInFlight
from .journal import Journal, JournalPolicy, open_journal
from .kit import decode_document
from .ledger import WriteLedger
from .ownership import Owner
from .registry import Registry, checked_secret_keys, default_registry
from .router import ANY_SEQUENCE, BACKEND_HOOKS, Member, Replication, Router, WriteConcern
from .types import (
    BackendHealth,
    Batch,
    BatchProgress,
    Capabilities,
    Document,
    Progress,
    PurgeReport,
    Record,
    RecordUpdate,
    RepairReport,
    SearchQuery,
    SearchResult,
    Status,
    to_micros,
)
from .urls import backend_name, mask_url, parse_url, redact, secrets_of

logger = logging.getLogger("fallthrough")

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_URL = "sqlite://"
DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_LAG = 1000
DEFAULT_CLOSE_TIMEOUT = 5.0
DEFAULT_LEASE = 60.0
LATE_CLAIM_SHARE = 0.1
"""A claim whose answer came after this share of its lease extends the leases before handing records out."""
MAX_LEASE = validation.MAX_LEASE
MAX_CLAIM = validation.MAX_CLAIM
DEFAULT_BATCH_PAGE = 100
DEFAULT_DOCUMENT_PAGE = 1000


def _owned(method: Callable[Concatenate[Store, P], T]) -> Callable[Concatenate[Store, P], T]:
    """A public method that checks the process before anything else: before a lock, a validation or a return.

    A lock another thread held at a fork stays held in the child for good
    (the Store's clock, a breaker), so a child must be refused before it
    takes one, not when it reaches a backend.
    """

    @functools.wraps(method)
    def checked(self: Store, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._owner.check()
        return method(self, *args, **kwargs)

    return checked


class Store:
    """Batch records and document search over backends that stand in for each other.

    Build one with :func:`connect`. A Store is thread-safe: batch workers
    share one. It serves only the process that built it: in a forked child
    every call raises :class:`~fallthrough.errors.WrongProcess` (see
    :mod:`fallthrough.ownership`). Close it when done, or use it as a
    context manager.
    """

    def __init__(
        self,
        urls: Sequence[tuple[str, str | URL]],
        *,
        search_order: Sequence[str] | None = None,
        breaker: BreakerPolicy | None = None,
        plugins: Sequence[object] = (),
        registry: Registry | None = None,
        stamper: Stamper | None = None,
        journal: Journal | str | URL | None = None,
        journal_policy: JournalPolicy | None = None,
        write_concern: WriteConcern | str = WriteConcern.ALL,
        max_lag: int = DEFAULT_MAX_LAG,
    ) -> None:
        self._owner = Owner.of(self, "Store")
        if not urls:
            raise InvalidInput("a Store needs at least one backend URL")
        names = [name for name, _ in urls]
        if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
            raise InvalidInput(f"backend names must be distinct, non-empty strings, got {names}")
        concern = WriteConcern.coerce(write_concern)
        if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 1:
            raise InvalidInput(f"max_lag must be a positive int, got {max_lag!r}")
        registry = registry or default_registry
        policy = breaker or BreakerPolicy()
        self._stamper = stamper or Stamper()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._secrets: list[str] = []
        self._closed = False
        created: list[tuple[str, URL, object]] = []
        for name, raw_url in urls:
            url = parse_url(raw_url)
            self._secrets.extend(secrets_of(url))
            plugin = registry.create(url)
            try:
                self._pm.register(plugin, name=name)
            except (pluggy.PluginValidationError, ValueError) as error:
                raise PluginError(f"backend {name!r} ({mask_url(url)}): {self._redact(str(error))}") from None
            created.append((name, url, plugin))
        for plugin in plugins:
            self._pm.register(plugin)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as error:
            raise PluginError(self._redact(str(error))) from None
        members: list[Member] = []
        for name, url, plugin in created:
            secret_keys = self._declared_secret_keys(name, plugin, url)
            self._secrets.extend(secrets_of(url, secret_keys))
            members.append(Member(name, url, plugin, CircuitBreaker(policy), secret_keys=secret_keys))
        for member in members:
            others = [other.plugin for other in members if other is not member]
            member.callers = {hook: self._pm.subset_hook_caller(hook, others) for hook in BACKEND_HOOKS}
        self._router = Router(
            members,
            _order_for_search(members, search_order),
            self._pm,
            open_journal(journal, journal_policy),
            write_concern=concern,
            max_lag=max_lag,
            secrets=self._secrets,
        )
        # Not a close: closing may wait, which a collection or the interpreter's exit must not. It tells
        # what a memory journal loses with a Store never closed, as close() does.
        self._unclosed = weakref.finalize(self, _note_unclosed, self._router, self._owner.pid)

    # -- introspection -----------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding the backends; register hook wrappers or observers on it."""
        return self._pm

    @property
    def backend_names(self) -> list[str]:
        """The backends' names, in priority order for records."""
        return [member.name for member in self._router.members]

    @property
    def capabilities(self) -> dict[str, Capabilities | None]:
        """What each backend declared it can do, by name in priority order; None for one not opened yet.

        A backend opens at the first call that needs it, not when the Store
        is built, so a new Store knows none of them. No I/O: this reads what
        the backends declared when they opened (a new dict each time).
        """
        return {member.name: member.capabilities for member in self._router.members}

    @property
    def chunk_writes_in_flight(self) -> int:
        """How many chunk writes a streamed create or add keeps going at once after its first; 0: one at a time.

        :data:`~fallthrough.inflight.STREAM_WRITES_IN_FLIGHT` (2) when no
        opened backend of records declares
        :attr:`~fallthrough.types.Capabilities.parallel_calls` (servers,
        whose calls wait on sockets with the GIL released); else 0, each
        chunk written in turn in the calling thread (SQLite, where threads
        measured slower). A streamed call holds this many chunks and the one
        it is pulling, and runs its writes on threads of its own, outside an
        :class:`~fallthrough.aio.AsyncStore`'s bound. No I/O: it reads what
        the backends opened so far declared (see :attr:`capabilities`);
        a streamed call reads it after its first write has opened them.
        """
        for member in self._router.members:
            declared = member.capabilities
            if declared is not None and declared.records and declared.parallel_calls is not None:
                return 0
        return STREAM_WRITES_IN_FLIGHT

    @_owned
    def health(self, *, ping: bool = False) -> list[BackendHealth]:
        """Each backend's state: breaker, last error, journaled writes waiting, whether it serves reads.

        With ``ping``, first ask each backend whose breaker allows a call to answer.
        """
        if ping:
            for member in self._router.members:
                self._guarded(
                    self._router.attempt,
                    member,
                    "fallthrough_ping",
                    {},
                    "records" if member.able("records") else "documents",
                )
        return self._router.health()

    @_owned
    def drain(self, timeout: float | None = None) -> bool:
        """Replay every journaled write now, waiting up to ``timeout`` seconds (None: until done).

        Returns True when no backend has writes left to replay. A backend
        that stays down keeps its hints; the Store's replayer sends them when
        it comes back, without this call. The timeout is checked between
        replay calls: one already sent when it passes ends first, bounded by
        its backend's own timeout.
        """
        self._check_open()
        checked = None if timeout is None else validation.check_timeout(timeout)
        return self._guarded(self._router.drain, checked)

    @_owned
    def repair(
        self, batch_id: uuid.UUID | str | None = None, *, collection: str | None = None, page_size: int = 1000
    ) -> RepairReport:
        """Compare the stores and bring every one to the merge of all of them.

        For records: every batch and key any store has, each record at its
        greatest state under the merge order and its smallest ``seq``, each
        batch header by the rule in ``docs/semantics.md``. For documents: the
        newest version of each id, deletions (tombstones) included. It mends
        what the journal never saw: another process's missed writes, a crash
        between two stores, a store restored from an old backup.

        With ``batch_id`` only that batch is repaired, with ``collection`` only
        that collection; with neither, everything, and backends marked as
        needing a repair serve reads again afterwards. It streams (memory
        holds one page per store), is safe while workers write (every write
        it sends is conditional; a batch's repair and a ``delete_batch`` of it
        in this Store take turns), and a second repair of stores that agree
        sends nothing. Backends that cannot be reached are left out.

        :return: what each backend was sent.
        :raises BackendUnavailable: a backend taking part missed a write
            while the repair ran and cannot take it now: read before it
            did, it could hand back a batch the others deleted. What was
            sent stays sent; repair again once it is back.
        """
        self._check_open()
        checked_batch = None if batch_id is None else validation.check_batch_id(batch_id)
        checked_collection = None if collection is None else validation.check_collection(collection)
        limit = validation.check_limit(page_size, maximum=validation.MAX_PAGE_SIZE, what="page_size")
        return self._guarded(
            functools.partial(
                self._router.repair, batch_id=checked_batch, collection=checked_collection, page_size=limit
            )
        )

    @_owned
    def purge_tombstones(
        self, older_than: timedelta | float, *, collection: str | None = None, page_size: int = 1000
    ) -> PurgeReport:
        """Remove the tombstones that deletes left more than ``older_than`` ago, on every store that can take it now.

        A delete leaves a tombstone per id, so that a late replayed write or
        a repair cannot bring the document back; without a purge they are
        kept for good. Once purged, an upsert older than the tombstone is
        written again. So ``older_than`` is a grace period, as Cassandra's
        ``gc_grace_seconds``: choose it longer than any write may wait in a
        journal (a store's outage, a process down with its durable journal)
        and longer than the time between two repairs (``docs/semantics.md``,
        "Purging tombstones").

        :param older_than: the grace period: a :class:`~datetime.timedelta`,
            or seconds; at least a microsecond. Tombstones older than now
            minus it go; live documents, drops and dimensions stay.
        :param collection: purge that collection only; every collection
            otherwise.
        :param page_size: tombstones removed per backend call, 1 to 100,000.
        :return: per backend, how many tombstones it removed, and which
            backends it left out and why (unavailable, behind its journal, a
            repair pending, no purge hook, a hook that failed). Left-out backends keep their
            tombstones until a later purge; a repair meanwhile sends them
            back to the others, which is harmless.
        """
        self._check_open()
        age = validation.check_age(older_than)
        checked_collection = None if collection is None else validation.check_collection(collection)
        limit = validation.check_limit(page_size, maximum=validation.MAX_PAGE_SIZE, what="page_size")
        before = max(0, self._version() - age)
        return self._guarded(
            functools.partial(
                self._router.purge_tombstones, before=before, collection=checked_collection, page_size=limit
            )
        )

    def __repr__(self) -> str:
        inner = ", ".join(f"{member.name}={member.masked_url}" for member in self._router.members)
        return f"<Store {inner}>"

    def __reduce__(self) -> NoReturn:
        self._owner.refuse_pickling()

    # -- lifecycle ---------------------------------------------------------

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Replay what can be replayed within ``timeout`` seconds, then close every backend.

        Journaled writes left over stay in a durable journal for the next
        start; a memory journal loses them (logged). Errors are logged, not
        raised; closing twice is harmless. In a forked child it does nothing:
        the connections are the parent's, which closes them.
        """
        checked = validation.check_timeout(timeout)
        if self._closed or not self._owner.is_current():
            return
        self._closed = True
        self._unclosed.detach()
        self._router.close(checked)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- batches and records -----------------------------------------------

    @_owned
    def create_batch(
        self,
        keys: Iterable[str],
        *,
        batch_id: uuid.UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Create a batch with one pending record per key, in order.

        ``keys`` may be any iterable, a generator of millions included: it
        is read, validated and written :data:`~fallthrough.validation.STREAM_CHUNK`
        keys at a time, so memory holds a few chunks (the one being read and
        up to :attr:`chunk_writes_in_flight` being written) and a 60-bit
        digest per key, to refuse a key given twice. Records appear in the stores as
        their chunk is written. Invalid input anywhere (a bad key, a key
        given twice), or an exception from the iterable itself, removes
        what the call wrote and raises: nothing is left behind. When the
        stores fail instead, the call raises and what it wrote stays, a
        prefix of the input that calling again with the same ``batch_id``
        completes (``docs/semantics.md``, "Streaming creates").

        With the id of an existing batch this adds the keys that are new and
        leaves everything else as it was.
        """
        validation.check_iterable(keys, "keys")
        checked_id = uuid.uuid4() if batch_id is None else validation.check_batch_id(batch_id)
        checked_metadata = validation.check_json_object(metadata, "metadata")
        batch = self._stream_keys(checked_id, keys, checked_metadata).batch
        assert batch is not None
        return batch

    @_owned
    def add_records(self, batch_id: uuid.UUID | str, keys: Iterable[str]) -> int:
        """Append pending records; keys already in the batch are left untouched. Returns how many were added.

        ``keys`` streams as for :meth:`create_batch`, and invalid input
        removes what the call added.
        """
        validation.check_iterable(keys, "keys")
        return self._stream_keys(validation.check_batch_id(batch_id), keys, None).added

    def _stream_keys(self, batch_id: uuid.UUID, keys: Iterable[object], metadata: dict[str, Any] | None) -> _Streamed:
        """Validate and write ``keys`` chunk by chunk; on invalid input, take back what was written.

        ``metadata`` None means ``add_records`` (the batch must exist), else
        ``create_batch``. Each chunk is one ordinary replicated write (a full
        first chunk two), ``fallthrough_create_batch`` for the first of a
        create and ``fallthrough_add_records`` after, so a store that misses
        one gets a hint of one chunk at most.

        The first write is made in this thread (it creates the batch the
        others add to, and opens the backends; see :meth:`_stream_parts`);
        the later ones go to
        :class:`~fallthrough.inflight.WritesInFlight`, which keeps up to
        :attr:`chunk_writes_in_flight` of them going while this thread
        pulls and checks the next. Of the errors the call meets, the first in
        input order is raised (a chunk that failed before the input turned
        bad wins, as it would written in turn), and chunks written beside a
        failed one and after it are taken back, leaving a prefix. Before it
        returns or raises, every write it started has ended, so a take-back
        never races a write.
        """
        self._check_open()
        created_at = self._stamper.now()
        ledger = WriteLedger()  # every write made or submitted, and the digests of the keys read
        batch: Batch | None = None  # create_batch: the first chunk's answer
        created = False  # whether the first chunk created the batch
        added = 0  # records added by the first write of an add
        writes: WritesInFlight[tuple[int, int]] = WritesInFlight(0)  # the later chunks, tagged with their range
        chunks = validation.key_chunks(keys)
        try:
            try:
                for chunk in chunks:
                    suspects = ledger.suspects(chunk)
                    if suspects:
                        writes.wait()  # the check reads what the earlier chunks wrote
                        self._refuse_repeats(batch_id, suspects, ledger)
                    first_seq = self._stamper.reserve_seq(len(chunk))
                    for part, part_seq in self._stream_parts(chunk, first_seq, first=not ledger):
                        arguments: dict[str, Any] = {
                            "batch_id": batch_id,
                            "keys": part,
                            "first_seq": part_seq,
                            "created_at": created_at,
                        }
                        after_first = bool(ledger)
                        ledger.count(part_seq, len(part))  # before any write of it starts, the first too
                        if after_first:
                            writes.submit(functools.partial(self._add_chunk, arguments), (part_seq, len(part)))
                            continue
                        if metadata is not None:
                            batch = self._write(
                                "records", "fallthrough_create_batch", {**arguments, "metadata": metadata}, Batch
                            )
                            # Stamps are unique within a Store: the batch is this call's if it bears this call's stamp.
                            created = batch.created_at == created_at
                            writes = WritesInFlight(self.chunk_writes_in_flight)
                        else:
                            added = self._add_chunk(arguments)
                            writes = WritesInFlight(self.chunk_writes_in_flight)
                added += writes.wait()
            except Exception as later:
                earlier = writes.close()
                if earlier is not None:
                    # A chunk submitted before this error failed: written in turn, it would have been raised first.
                    raise earlier from later
                raise
            finally:
                writes.close()
        except BaseException as error:
            stores_failed = isinstance(error, FallthroughError) and not isinstance(error, InvalidInput)
            if not stores_failed or error is chunks.source_error:
                # Invalid input, the caller's iterable raised (a FallthroughError too, when it reads keys from
                # another Store), or an interrupt: the call did not finish, and what it wrote is taken back.
                if metadata is not None and batch is None and ledger:
                    # Interrupted in or just after the first write: whether it created the batch is read back.
                    try:
                        found = self.get_batch(batch_id)
                    except Exception:
                        found = None
                    created = found is not None and found.created_at == created_at
                self._take_back(batch_id, created, ledger)
            elif writes.failed is not None:
                # The stores failed, or refused a chunk: what was written before it is valid, and stays. Chunks
                # after it that were written at the same time are taken back, so that what stays is a prefix
                # of the input, which a second call with the same keys completes in order.
                failed_seq = writes.failed[0]
                self._take_back(batch_id, False, ledger.writes_after(failed_seq))
            raise
        if batch is not None:
            batch = attrs.evolve(batch, total=batch.total + added)
        return _Streamed(batch, added)

    @staticmethod
    def _stream_parts(chunk: tuple[str, ...], first_seq: int, *, first: bool) -> list[tuple[tuple[str, ...], int]]:
        """The writes of one chunk: ``(keys, first seq)``, one for the chunk as a rule.

        The first write of a streamed call runs alone, in the calling thread
        (it creates the batch and opens the backends): when the first chunk
        is full, so that more may follow, it is cut after
        :data:`~fallthrough.inflight.SHORT_FIRST_WRITE` keys and the rest
        goes with the writes in flight, which then start sooner.
        """
        if not first or len(chunk) < validation.STREAM_CHUNK:
            return [(chunk, first_seq)]
        return [(chunk[:SHORT_FIRST_WRITE], first_seq), (chunk[SHORT_FIRST_WRITE:], first_seq + SHORT_FIRST_WRITE)]

    def _add_chunk(self, arguments: dict[str, Any]) -> int:
        return self._write("records", "fallthrough_add_records", arguments, int)

    def _refuse_repeats(self, batch_id: uuid.UUID, suspects: Sequence[str], ledger: WriteLedger) -> None:
        """Raise InvalidInput for a suspect key this call already wrote; a digest collision passes.

        A suspect whose record bears the seq this call gave it was written by
        an earlier chunk: a repeat. One the batch does not hold, or holds
        with another seq, only shared a digest (or is a key the batch held
        before the call, which an add leaves untouched at every occurrence,
        even when another Store's seq for it falls in this call's ranges).
        """
        if not ledger:
            return
        arguments = {"batch_id": batch_id, "keys": tuple(suspects)}
        for record in self._read("records", "fallthrough_get_records", arguments, ANY_SEQUENCE):
            if isinstance(record, Record) and ledger.wrote(record.seq, record.key):
                raise InvalidInput(f"keys contains {record.key!r} more than once")

    def _take_back(self, batch_id: uuid.UUID, created: bool, ledger: WriteLedger) -> None:
        """Remove the writes in ``ledger`` of a streamed create or add that failed, as replicated writes.

        ``ledger`` holds all the call's writes, or those made beside a chunk
        that failed and after it in the input. A batch the call created is
        deleted (``created``: all its chunks go). Otherwise the batch's records
        are read in ``(seq, key)`` order from the ledger's first seq to its
        last, a page at a time, and those the call added (the seq it gave
        that key: :meth:`WriteLedger.wrote`) are deleted with
        ``fallthrough_delete_records``, which deletes a key only while its seq
        is still the one given. A failure here is logged; the caller gets the
        error that caused it.
        """
        if not ledger:
            return
        try:
            if created:
                self._write("records", "fallthrough_delete_batch", {"batch_id": batch_id}, bool)
                return
            end = ledger.end_seq
            # Strictly after (first - 1, ""): every record from the call's first seq on (and a few before, filtered).
            after: tuple[int, str] | None = (ledger.first_seq - 1, "")
            while after is not None:
                page = self._records_page(batch_id, None, after, validation.STREAM_CHUNK)
                doomed = [r for r in page if ledger.wrote(r.seq, r.key)]
                if doomed:
                    arguments = {
                        "batch_id": batch_id,
                        "keys": tuple(r.key for r in doomed),
                        "seqs": tuple(r.seq for r in doomed),
                    }
                    self._write("records", "fallthrough_delete_records", arguments, int)
                last = page[-1] if page else None
                after = (
                    None
                    if last is None or last.seq >= end or len(page) < validation.STREAM_CHUNK
                    else (
                        last.seq,
                        last.key,
                    )
                )
        except NotFound:
            pass  # the batch was deleted meanwhile, and what the call wrote with it: nothing is left to take back
        except Exception as error:
            logger.error(
                "a streamed create of batch %s failed, and removing what it wrote failed too: %s",
                batch_id,
                self._redact(f"{type(error).__name__}: {error}"),
            )

    @_owned
    def update(
        self,
        batch_id: uuid.UUID | str,
        key: str,
        status: Status | str,
        *,
        result: Any = None,
        error: str | None = None,
        attempt: int | None = None,
        write_concern: WriteConcern | str | None = None,
    ) -> bool:
        """Move one record to ``status``; returns whether the update was newer and applied.

        ``write_concern`` overrides the Store's for this call (``"all"`` or ``"first"``).
        """
        if attempt is not None:
            # What a caller may name (MAX_ATTEMPT), before RecordUpdate quotes the wider range a store may hold.
            validation.check_attempt(attempt)
        update = RecordUpdate(batch_id, key, status, result=result, error=error, attempt=attempt)
        return self.update_many([update], write_concern=write_concern) == 1

    @_owned
    def update_many(self, updates: Iterable[RecordUpdate], *, write_concern: WriteConcern | str | None = None) -> int:
        """Apply many updates at once; returns how many applied. One update per record per call."""
        checked = validation.check_items(updates, "updates")
        first_named_at: dict[tuple[uuid.UUID, str], int] = {}
        for index, update in enumerate(checked):
            if not isinstance(update, RecordUpdate):
                raise InvalidInput(f"updates[{index}] must be a RecordUpdate, not {type(update).__name__}")
            if update.attempt is not None:
                validation.check_attempt(update.attempt, f"updates[{index}].attempt")
            # A RecordUpdate is frozen but its result dict or list is not: checked again, since it may
            # have changed since construction (as upsert_documents does for a Document's metadata).
            validation.check_json(update.result, f"updates[{index}].result")
            first = first_named_at.setdefault((update.batch_id, update.key), index)
            if first != index:
                raise InvalidInput(
                    f"updates[{index}] names record {update.key!r} of batch {update.batch_id} more than once "
                    f"(first at updates[{first}]): one update per record per call"
                )
        if not checked:
            return 0
        updated_at = self._stamper.now()
        arguments = {"updates": checked, "updated_at": updated_at}
        follow = _replicate_updates(updated_at)
        applied = self._write("records", "fallthrough_update_records", arguments, ANY_SEQUENCE, follow, write_concern)
        return len(applied)

    @_owned
    def retry(self, batch_id: uuid.UUID | str) -> int:
        """Move failed records back to pending with ``attempt + 1``; returns how many."""
        updated_at = self._stamper.now()
        arguments = {"batch_id": validation.check_batch_id(batch_id), "updated_at": updated_at}
        follow = _replicate_updates(updated_at)
        return len(self._write("records", "fallthrough_retry_failed", arguments, ANY_SEQUENCE, follow))

    @_owned
    def delete_batch(self, batch_id: uuid.UUID | str) -> bool:
        """Delete a batch and its records; returns whether it existed."""
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._write("records", "fallthrough_delete_batch", arguments, bool)

    @_owned
    def get_batch(self, batch_id: uuid.UUID | str) -> Batch | None:
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._read("records", "fallthrough_get_batch", arguments, Batch, optional=True)

    @_owned
    def get_record(self, batch_id: uuid.UUID | str, key: str) -> Record | None:
        arguments = {"batch_id": validation.check_batch_id(batch_id), "key": validation.check_key(key)}
        return self._read("records", "fallthrough_get_record", arguments, Record, optional=True)

    @_owned
    def progress(self, batch_id: uuid.UUID | str) -> Progress:
        """Exact counts of the batch's records by status."""
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._read("records", "fallthrough_progress", arguments, Progress)

    @_owned
    def records(
        self,
        batch_id: uuid.UUID | str,
        *,
        status: Status | str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[Record]:
        """Iterate a batch's records in batch order, a page at a time.

        The first page is read at once, so an unknown batch raises here.
        Each later page is read from whichever backend is available then;
        since every store holds the same ``seq`` values, the iteration
        carries on across a fall-through.
        """
        checked_id = validation.check_batch_id(batch_id)
        checked_status = None if status is None else Status.coerce(status)
        limit = validation.check_limit(page_size, maximum=validation.MAX_PAGE_SIZE, what="page_size")
        first_page = self._records_page(checked_id, checked_status, None, limit)
        return self._iterate_records(checked_id, checked_status, first_page, limit)

    def _records_page(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Record]:
        arguments = {"batch_id": batch_id, "status": status, "after": after, "limit": limit}
        return self._read("records", "fallthrough_list_records", arguments, ANY_SEQUENCE)

    def _iterate_records(
        self, batch_id: uuid.UUID, status: Status | None, page: Sequence[Record], limit: int
    ) -> Iterator[Record]:
        # A backend's page may build its records as they are reached (kit.RecordPage), so a
        # stored row the backend cannot decode fails here, past the router: scrubbed as
        # _guarded would, it reaches the caller as a PluginError, never the decoder's own error.
        try:
            while True:
                yield from page
                if len(page) < limit:
                    return
                last = page[-1]
                page = self._records_page(batch_id, status, (last.seq, last.key), limit)
        except Exception as error:
            failure = scrubbed(error, self._redact)  # _records_page's errors are scrubbed already: no change
        raise failure

    # -- claims and leases -------------------------------------------------

    @_owned
    def claim(
        self, batch_id: uuid.UUID | str, *, worker: str, limit: int = 1, lease: float = DEFAULT_LEASE
    ) -> list[Record]:
        """Take up to ``limit`` records of the batch for ``worker``, for ``lease`` seconds.

        Atomically, on the first backend that can claim, the records that are
        pending, or processing under a lease that expired, are taken in batch
        order ``(seq, key)`` and become processing with ``lease_owner =
        worker`` and ``lease_expires = now + lease``. A pending record keeps
        its attempt; one whose lease expired is taken at ``attempt + 1``, so
        the late answer of the worker that lost it (pinned to its attempt)
        changes nothing. Two workers never hold one record at once on one
        store; what a failover can do is in ``docs/semantics.md``, "Claims and
        leases". ``now`` is this Store's clock: workers' clocks must agree to
        well within the lease. A claim that answers after more than
        :data:`LATE_CLAIM_SHARE` of its lease (it waited for a lock, or for a
        store that failed slowly) extends the leases before handing the
        records out, and hands out none whose lease ran out meanwhile.

        Give a record up by updating it, pinned to its ``attempt``: completed
        or failed, or pending at ``attempt + 1`` to hand it back at once.
        Any applied update clears the lease.

        :return: the claimed records in their new state, in batch order; empty
            when nothing is claimable now.
        :raises NotFound: the batch does not exist.
        :raises InvalidInput: ``worker``, ``limit`` or ``lease`` is out of range; nothing is written.
        :raises Unsupported: no backend of this Store can claim.
        """
        checked_id = validation.check_batch_id(batch_id)
        checked_worker = _check_worker(worker)
        checked_limit = validation.check_limit(limit, maximum=MAX_CLAIM)
        duration = _check_lease(lease)
        claimed_at = self._stamper.now()
        arguments = {
            "batch_id": checked_id,
            "worker": checked_worker,
            "limit": checked_limit,
            "claimed_at": claimed_at,
            "lease_until": claimed_at + duration,
        }
        claimed = self._claim_write("fallthrough_claim_records", arguments)
        if not claimed:
            return []
        return self._hand_out(checked_id, checked_worker, claimed, claimed_at, duration)

    def _hand_out(
        self, batch_id: uuid.UUID, worker: str, claimed: Sequence[Record], claimed_at: datetime, lease: timedelta
    ) -> list[Record]:
        """The claimed records, with what is left of their lease; extended first when the claim answered late.

        A lease runs from the claim's stamp, taken before the call, so what the
        call waited for (a store's write lock, a store failing slowly before
        another served, a catch-up) came off it, and a wait longer than the
        lease handed out records another worker could claim at once. When
        more than :data:`LATE_CLAIM_SHARE` of the lease went by before the
        answer, the leases are extended to now + ``lease`` first, and the
        records whose lease ran out meanwhile are not handed out: they may be
        another worker's already, and are taken again at the next attempt.
        """
        answered_at = self._stamper.now()
        if answered_at - claimed_at <= lease * LATE_CLAIM_SHARE:
            return list(claimed)
        arguments = {
            "batch_id": batch_id,
            "keys": tuple(record.key for record in claimed),
            "worker": worker,
            "now": answered_at,
            "lease_until": answered_at + lease,
        }
        try:
            extended = self._claim_write("fallthrough_extend_leases", arguments)
        except FallthroughError as error:
            # The claim stands; of its records, those whose lease is still running now are handed out as they are.
            logger.warning("a claim answered late, and its leases could not be extended: %s", error)
            failed_at = self._stamper.now()
            return [record for record in claimed if _lease_left(record, failed_at)]
        # An extension holds for the worker's name, whatever the attempt: a record whose lease ran out may have
        # been claimed again meanwhile under the same name (another thread), and that claim is not this one's.
        attempts = {record.key: record.attempt for record in claimed}
        mine = [record for record in extended if attempts.get(record.key) == record.attempt]
        return sorted(mine, key=lambda record: (record.seq, record.key))

    @_owned
    def extend_leases(
        self, batch_id: uuid.UUID | str, keys: Iterable[str], *, worker: str, lease: float = DEFAULT_LEASE
    ) -> int:
        """Extend to ``now + lease`` the leases ``worker`` still holds on these records; returns how many.

        A record is extended only while it is processing under ``worker``'s
        lease and that lease has not expired: once expired, another worker
        may have claimed it, and its old holder's work is no longer wanted.
        Keys the batch does not hold count as not extended.

        :raises NotFound: the batch does not exist.
        :raises InvalidInput: ``worker``, ``keys`` or ``lease`` is out of range; nothing is written.
        :raises Unsupported: no backend of this Store can claim.
        """
        checked_id = validation.check_batch_id(batch_id)
        checked_keys = validation.check_unique_keys(keys)
        checked_worker = _check_worker(worker)
        duration = _check_lease(lease)
        if not checked_keys:
            if self.get_batch(checked_id) is None:  # nothing to extend, but the batch must still exist
                raise NotFound(f"no batch {checked_id}")
            return 0
        now = self._stamper.now()
        arguments = {
            "batch_id": checked_id,
            "keys": checked_keys,
            "worker": checked_worker,
            "now": now,
            "lease_until": now + duration,
        }
        return len(self._claim_write("fallthrough_extend_leases", arguments))

    def _claim_write(self, hook: str, arguments: dict[str, Any]) -> Sequence[Record]:
        batch_id: uuid.UUID = arguments["batch_id"]
        try:
            return self._write("claims", hook, arguments, ANY_SEQUENCE, _replicate_records(batch_id))
        except UnsupportedQuery as error:
            raise Unsupported(f"no backend of this Store can claim records: {error}") from None

    @_owned
    def batches(self, *, limit: int | None = None, page_size: int = DEFAULT_BATCH_PAGE) -> Iterator[BatchProgress]:
        """Iterate the batches, newest first (``(created_at, id)`` descending), each with its progress.

        ``limit`` stops after that many (None: all of them). Pages are read
        ``page_size`` at a time with a keyset, so each page costs the same;
        the first page is read at once, and each later one from whichever
        backend serves reads then (every store orders batches alike).
        """
        checked_limit = None if limit is None else validation.check_limit(limit, maximum=None)
        size = validation.check_limit(page_size, maximum=validation.MAX_BATCH_PAGE_SIZE, what="page_size")
        if checked_limit is not None:
            size = min(size, checked_limit)
        first_page = self._batches_page(None, size)
        return self._iterate_batches(first_page, size, checked_limit)

    def _batches_page(self, before: tuple[datetime, uuid.UUID] | None, limit: int) -> Sequence[BatchProgress]:
        arguments = {"before": before, "limit": limit}
        page = self._read("records", "fallthrough_list_batch_progress", arguments, ANY_SEQUENCE)
        if not all(isinstance(item, BatchProgress) for item in page):
            raise PluginError("a backend listed batches that are not BatchProgress values")
        return page

    def _iterate_batches(self, page: Sequence[BatchProgress], size: int, limit: int | None) -> Iterator[BatchProgress]:
        left = limit
        while True:
            for item in page:
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield item
            if len(page) < size or left == 0:
                return
            last = page[-1].batch
            page = self._batches_page((last.created_at, last.id), size if left is None else min(size, left))

    # -- documents ---------------------------------------------------------

    @_owned
    def upsert_documents(
        self, collection: str, documents: Iterable[Document], *, write_concern: WriteConcern | str | None = None
    ) -> None:
        """Insert or replace documents whole. All must share one vector dimension.

        The call is stamped with a version; a store keeps a document only
        while no newer version of its id (an upsert or a delete) reached it.
        """
        checked_collection = validation.check_collection(collection)
        ids: set[str] = set()
        dimensions: set[int] = set()
        checked: list[Document] = []
        for index, document in enumerate(validation.check_items(documents, "documents")):
            if not isinstance(document, Document):
                raise InvalidInput(f"documents[{index}] must be a Document, not {type(document).__name__}")
            if document.id in ids:
                raise InvalidInput(f"documents contain id {document.id!r} more than once")
            ids.add(document.id)
            if document.vector is not None:
                dimensions.add(len(document.vector))
            # A Document is frozen but its metadata dict is not: it is checked again, since it may have
            # changed since construction, and the stores get the checked copy, which the caller cannot change
            # while a hint waits in the journal.
            metadata = validation.check_metadata(document.metadata, f"documents[{index}].metadata")
            checked.append(decode_document(document.id, document.text, document.vector, metadata))
        if len(dimensions) > 1:
            raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
        if checked:
            arguments = {"collection": checked_collection, "documents": checked, "version": self._version()}
            self._write("documents", "fallthrough_upsert_documents", arguments, None, None, write_concern)

    @_owned
    def delete_documents(
        self, collection: str, ids: Iterable[str], *, write_concern: WriteConcern | str | None = None
    ) -> int:
        """Delete documents by id; returns how many distinct ids existed (a repeated id counts once).

        Each store keeps a tombstone with the call's version, so an older
        upsert that arrives later (a replay, a repair) cannot bring it back.
        """
        arguments = {
            "collection": validation.check_collection(collection),
            "ids": validation.check_distinct_keys(ids, "ids"),
            "version": self._version(),
        }
        return self._write("documents", "fallthrough_delete_documents", arguments, int, None, write_concern)

    @_owned
    def get_documents(self, collection: str, ids: Iterable[str]) -> list[Document]:
        """Read documents by id; those not found are left out, a repeated id is returned once (first-asked order)."""
        arguments = {
            "collection": validation.check_collection(collection),
            "ids": validation.check_distinct_keys(ids, "ids"),
        }
        return list(self._read("documents", "fallthrough_get_documents", arguments, ANY_SEQUENCE))

    @_owned
    def collections(self) -> list[str]:
        """The names of the collections holding at least one live document, sorted by code point."""
        return list(self._read("documents", "fallthrough_list_live_collections", {}, ANY_SEQUENCE))

    @_owned
    def count(self, collection: str, filter: Mapping[str, Any] | None = None) -> int:
        """How many live documents of ``collection`` match ``filter`` (all without one); 0 for an unknown collection."""
        checked_collection = validation.check_collection(collection)
        parsed = parse_filter(filter)
        arguments = {"collection": checked_collection, "filter": parsed}
        return self._read(_filter_capability(parsed), "fallthrough_count_documents", arguments, int)

    @_owned
    def documents(
        self,
        collection: str,
        *,
        filter: Mapping[str, Any] | None = None,
        page_size: int = DEFAULT_DOCUMENT_PAGE,
    ) -> Iterator[Document]:
        """Every live document of ``collection`` matching ``filter``, ascending by id (code points).

        Read one page at a time, each a keyset after the last id of the one
        before (never OFFSET), so a page may come from another store after a
        failure without skipping or repeating an id. A page costs the same
        wherever it is on SQLite, PostgreSQL and Qdrant's local mode; a
        Qdrant server scrolls every matching id for each page
        (``docs/backends/qdrant.md``). Arguments are checked here, before the first page
        is asked for. Documents written while iterating may or may not show.
        """
        checked_collection = validation.check_collection(collection)
        parsed = parse_filter(filter)
        size = validation.check_limit(page_size, maximum=validation.MAX_PAGE_SIZE, what="page_size")
        first = self._documents_page(checked_collection, parsed, None, size)
        return self._iterate_documents(checked_collection, parsed, first, size)

    def _documents_page(self, collection: str, parsed: Filter | None, after: str | None, size: int) -> list[Document]:
        arguments = {"collection": collection, "filter": parsed, "after": after, "limit": size}
        return list(self._read(_filter_capability(parsed), "fallthrough_list_documents", arguments, ANY_SEQUENCE))

    def _iterate_documents(
        self, collection: str, parsed: Filter | None, page: list[Document], size: int
    ) -> Iterator[Document]:
        while True:
            yield from page
            if len(page) < size:
                return
            page = self._documents_page(collection, parsed, page[-1].id, size)

    @_owned
    def drop_collection(self, collection: str, *, write_concern: WriteConcern | str | None = None) -> bool:
        """Remove every document of ``collection``; True when it held a live one.

        Stamped with a version like every document write: a store that gets
        the drop refuses any older upsert of the collection afterwards (a
        replay, a repair), and an upsert made after the drop starts the
        collection again. Journaled and replicated like ``delete_documents``.
        """
        arguments = {"collection": validation.check_collection(collection), "version": self._version()}
        return self._write("documents", "fallthrough_drop_collection", arguments, bool, None, write_concern)

    @_owned
    def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        with_vectors: bool = False,
    ) -> SearchResult:
        """Search by vector (cosine), by text (every token present), by filter, or any mix.

        The first backend in search order that can evaluate the whole query
        serves it. When none that is available can, one that can serve all
        but the vector answers, and the result is marked ``degraded``.
        With ``with_vectors`` each hit carries its document's vector
        (``Hit.vector``; None for a document without one).
        """
        checked_collection = validation.check_collection(collection)
        if text is not None:
            validation.check_string(text, "text")
        if not isinstance(with_vectors, bool):
            raise InvalidInput(f"with_vectors must be a bool, not {type(with_vectors).__name__}")
        query = SearchQuery(
            vector=None if vector is None else validation.check_vector(vector),
            text=text,
            filter=parse_filter(filter),
            limit=validation.check_limit(limit),
            with_vectors=with_vectors,
        )
        if text is not None and not query.tokens:
            raise InvalidInput(f"text {text!r} has no letters or digits to search for")
        return self._search(checked_collection, query)

    def _search(self, collection: str, query: SearchQuery) -> SearchResult:
        self._check_open()
        return self._guarded(self._router.search, collection, query)

    # -- routing -----------------------------------------------------------

    def _read(
        self, capability: str, hook: str, arguments: dict[str, Any], expected: type[T], *, optional: bool = False
    ) -> T:
        self._check_open()
        return self._guarded(
            functools.partial(self._router.read, capability, hook, arguments, expected, optional=optional)
        )

    def _write(
        self,
        capability: str,
        hook: str,
        arguments: dict[str, Any],
        expected: type[T] | None,
        replicate: Callable[[Any], Replication | None] | None = None,
        write_concern: WriteConcern | str | None = None,
    ) -> T:
        self._check_open()
        concern = None if write_concern is None else WriteConcern.coerce(write_concern)
        return self._guarded(
            functools.partial(
                self._router.write, capability, hook, arguments, expected, replicate=replicate, write_concern=concern
            )
        )

    def _guarded(self, call: Callable[..., T], /, *arguments: Any) -> T:
        """Run ``call``; whatever it raises reaches the caller scrubbed (see :func:`fallthrough.errors.scrubbed`).

        The scrubbed error is raised outside the ``except`` block, so that
        Python does not chain the original to it as ``__context__``: the
        driver's exception, and the connection it holds, stay behind.
        """
        try:
            return call(*arguments)
        except Exception as error:
            clean = scrubbed(error, self._redact)
        raise clean

    def _version(self) -> int:
        """A document write's version: the Store's strictly increasing microsecond stamp."""
        return to_micros(self._stamper.now())

    def _check_open(self) -> None:
        # Public methods check the process on entry (_owned); this one catches an iterator made before a fork.
        self._owner.check()
        if self._closed:
            raise FallthroughError("this Store is closed")

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _declared_secret_keys(self, name: str, plugin: object, url: URL) -> frozenset[str]:
        """The secret URL options ``plugin`` declares (``fallthrough_secret_url_keys``), checked."""
        others = [other for other in self._pm.get_plugins() if other is not plugin]
        return checked_secret_keys(name, url, self._pm.subset_hook_caller("fallthrough_secret_url_keys", others))


@attrs.frozen
class _Streamed:
    """What a streamed create or add did: a create's batch (its total after the call), and how many records it added."""

    batch: Batch | None  # None for add_records
    added: int


def _replicate_records(batch_id: uuid.UUID) -> Callable[[Sequence[Record]], Replication | None]:
    """What the other stores get after a claim or an extension: the records' whole new states, as a merge."""

    def replicate(changed: Sequence[Record]) -> Replication | None:
        if not changed:
            return None
        records = tuple(changed)
        if not all(isinstance(record, Record) and record.batch_id == batch_id for record in records):
            raise PluginError("a backend returned claimed records that are not Records of the batch")
        return Replication("fallthrough_merge_records", {"batch_id": batch_id, "records": records}, "records")

    return replicate


def _check_worker(worker: object) -> str:
    return validation.check_key(worker, "worker")


def _lease_left(record: Record, now: datetime) -> bool:
    return record.lease_expires is not None and record.lease_expires > now


def _check_lease(lease: object) -> timedelta:
    """A lease in seconds: a positive finite number of at most :data:`MAX_LEASE`."""
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease <= MAX_LEASE:
        raise InvalidInput(f"lease must be a number of seconds above 0 and at most {MAX_LEASE}, got {lease!r}")
    return timedelta(microseconds=max(1, round(lease * 1_000_000)))


def _replicate_updates(updated_at: datetime) -> Callable[[Sequence[RecordUpdate]], Replication | None]:
    """What the other stores get after an update or a retry: the applied updates, pinned."""

    def replicate(applied: Sequence[RecordUpdate]) -> Replication | None:
        if not applied:
            return None
        pinned = tuple(applied)
        if not all(isinstance(update, RecordUpdate) and update.attempt is not None for update in pinned):
            raise PluginError("a backend returned updates that are not RecordUpdates pinned to an attempt")
        return Replication("fallthrough_update_records", {"updates": pinned, "updated_at": updated_at})

    return replicate


def _filter_capability(parsed: Filter | None) -> str:
    """What a backend needs to count or list: documents, and filters when there is one."""
    return "documents" if parsed is None else "filter_search"


def _note_unclosed(router: Router, owner_pid: int) -> None:
    """A Store collected, or left at the interpreter's exit, without :meth:`Store.close`: say what is lost.

    What a memory journal held: hints not replayed, and repair marks. A
    durable journal keeps both for the next start. A forked child keeps
    its parent's Store alive and says nothing of the parent's journal.
    """
    if os.getpid() != owner_pid or router.journal.durable:
        return
    lost = _lost_in_memory(router.journal, [member.name for member in router.members])
    if lost:
        logger.warning("a Store was never closed: %s; run Store.repair() when those stores are back", lost)


def _lost_in_memory(journal: Journal, names: Sequence[str]) -> str:
    """What ``journal`` holds for the backends ``names``, which only a repair makes good once it is gone; "" if none."""
    held = []
    for name in names:
        pending = journal.pending(name)
        if pending:  # marked or not: the writes are what it must not hide
            held.append(f"{name} misses {pending} journaled write{'s' if pending > 1 else ''}")
        elif journal.needs_repair(name):
            held.append(f"{name} needs a repair")
    return ", ".join(held) + (", lost with it" if held else "")


def _order_for_search(members: Sequence[Member], search_order: Sequence[str] | None) -> list[Member]:
    if search_order is None:
        return list(members)
    by_name = {member.name: member for member in members}
    if isinstance(search_order, str):
        raise InvalidInput("search_order must be a sequence of backend names, not a str")
    unknown = [name for name in search_order if name not in by_name]
    if unknown or len(set(search_order)) != len(search_order):
        raise InvalidInput(
            f"search_order must name distinct backends among {sorted(by_name)}, got {list(search_order)}"
        )
    listed = [by_name[name] for name in search_order]
    return listed + [member for member in members if member not in listed]


def connect(
    *urls: str | URL,
    search_order: Sequence[str] | None = None,
    breaker: BreakerPolicy | None = None,
    plugins: Sequence[object] = (),
    registry: Registry | None = None,
    journal: Journal | str | URL | None = None,
    journal_policy: JournalPolicy | None = None,
    write_concern: WriteConcern | str = WriteConcern.ALL,
    max_lag: int = DEFAULT_MAX_LAG,
    **named_urls: str | URL,
) -> Store:
    """Open a Store over the backends at ``urls``, in priority order.

    Positional URLs are named after their scheme's backend (``postgresql``,
    ``qdrant``, ``sqlite``), with ``-2``, ``-3`` ... when several share one.
    Keyword URLs are named by their keyword and come after the positional
    ones. With no URL at all, the Store is the embedded default,
    ``sqlite://`` in memory.

    :param search_order: backend names to try first for search, in order;
        the others follow in their priority order.
    :param breaker: the circuit breaker policy for every backend.
    :param plugins: extra pluggy plugins to register, such as hook wrappers
        for metrics or observers of missed writes.
    :param registry: where to look up plugins; the default registry when None.
    :param journal: where writes a backend missed wait for replay: None or
        ``"memory://"`` (this process's memory), or ``"sqlite:///path/hints.db"``
        (a local file that survives a restart; hints found there are replayed
        at once). A :class:`~fallthrough.journal.Journal` is used as it is.
    :param journal_policy: the journal's bound (hints and age per backend)
        before a backend is marked as needing a repair.
    :param write_concern: ``"all"`` (return once every available backend
        applied a write) or ``"first"`` (once the first did; the others get it
        from the journal in the background). Updates and document writes also
        take it per call.
    :param max_lag: under ``"first"``, how many journaled writes a reachable
        backend may have waiting before callers help replay them.
    :raises UnknownBackend: no plugin serves a URL's scheme.
    :raises InvalidInput: a URL cannot be parsed, a name repeats, or an option is out of range.
    """
    named: list[tuple[str, str | URL]] = []
    taken: set[str] = set(named_urls)
    for url in urls or (() if named_urls else (DEFAULT_URL,)):
        base = backend_name(parse_url(url))
        name, counter = base, 1
        while name in taken:
            counter += 1
            name = f"{base}-{counter}"
        taken.add(name)
        named.append((name, url))
    named.extend(named_urls.items())
    return Store(
        named,
        search_order=search_order,
        breaker=breaker,
        plugins=plugins,
        registry=registry,
        journal=journal,
        journal_policy=journal_policy,
        write_concern=write_concern,
        max_lag=max_lag,
    )


__all__ = ["Store", "WriteConcern", "connect"]
