"""The router: which backend serves a call, and how every store gets every write.

The :class:`~fallthrough.store.Store` validates and stamps; the router takes
one hook call from there:

* a **read** (and a search) goes to the first backend, in order, that is up
  to date, available and able; only :class:`~fallthrough.errors.BackendUnavailable`
  moves it to the next. A backend with hints to replay, or marked as needing a
  repair, is *behind* and serves no reads until it has caught up;
* a **write** is decided by the first backend that is up to date, available and
  able: if it applies the write, the call succeeds; if it rejects it (not
  found, invalid), the error propagates and no other backend is called. What
  it applied (a :class:`Replication`) then goes to every other able backend:
  directly, or, when that backend is behind, down, or the write concern is
  ``FIRST``, as a hint in the :mod:`journal <fallthrough.journal>` that the
  :class:`Replayer` sends later, in order.

Every call to one backend goes through :meth:`Router.attempt`, which owns the
circuit breaker bookkeeping. See ``docs/architecture.md``.
"""

from __future__ import annotations

import enum
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import attrs
import pluggy
from sqlalchemy.engine import URL

from . import replay
from .breaker import CircuitBreaker
from .errors import (
    AllBackendsFailed,
    BackendBusy,
    BackendUnavailable,
    FallthroughError,
    InvalidInput,
    NotFound,
    PluginError,
    UnsupportedQuery,
    shown_text,
)
from .journal import Hint, Journal, JournalError
from .repair import DIMENSION_HOOKS, repair_stores
from .turns import Turns
from .types import BackendHealth, Capabilities, PurgeReport, RepairReport, SearchQuery, SearchResult
from .urls import mask_url, redact

logger = logging.getLogger("fallthrough")

T = TypeVar("T")

# Hooks may return any sequence (list, tuple); checked with isinstance.
ANY_SEQUENCE: type[Sequence[Any]] = Sequence  # type: ignore[type-abstract]

LIFECYCLE_HOOKS = ("fallthrough_open", "fallthrough_close", "fallthrough_ping", "fallthrough_capabilities")
RECORD_HOOKS = (
    "fallthrough_create_batch",
    "fallthrough_add_records",
    "fallthrough_delete_records",
    "fallthrough_update_records",
    "fallthrough_retry_failed",
    "fallthrough_delete_batch",
    "fallthrough_get_batch",
    "fallthrough_get_record",
    "fallthrough_list_records",
    "fallthrough_progress",
    "fallthrough_list_batch_progress",
    # What a repair reads and sends.
    "fallthrough_list_batches",
    "fallthrough_get_records",
    "fallthrough_repair_batch",
    "fallthrough_merge_records",
)
DOCUMENT_HOOKS = (
    "fallthrough_upsert_documents",
    "fallthrough_delete_documents",
    "fallthrough_get_documents",
    "fallthrough_search",
    "fallthrough_count_documents",
    "fallthrough_list_documents",
    "fallthrough_drop_collection",
    "fallthrough_list_live_collections",
    # What a repair reads.
    "fallthrough_list_collections",
    "fallthrough_scan_documents",
    "fallthrough_document_versions",
)
CLAIM_HOOKS = ("fallthrough_claim_records", "fallthrough_extend_leases")
PURGE_HOOK = "fallthrough_purge_tombstones"
"""Optional: a backend of documents without it keeps its tombstones (``Store.purge_tombstones`` leaves it out)."""
OPTIONAL_HOOKS = (PURGE_HOOK, *DIMENSION_HOOKS)
"""Hooks no capability requires: a backend without one is left out of the step that calls it."""
BACKEND_HOOKS = LIFECYCLE_HOOKS + RECORD_HOOKS + DOCUMENT_HOOKS + CLAIM_HOOKS + OPTIONAL_HOOKS


def unimplemented_hooks(capabilities: Capabilities, callers: Iterable[pluggy.HookCaller]) -> list[str]:
    """The hooks ``capabilities`` need that none of ``callers`` (a plugin's hook callers) is, in spec order."""
    implemented = {caller.name for caller in callers}
    required = list(LIFECYCLE_HOOKS)
    if capabilities.records:
        required += RECORD_HOOKS
    if capabilities.documents:
        required += DOCUMENT_HOOKS
    if capabilities.claims:
        required += CLAIM_HOOKS
    return [hook for hook in required if hook not in implemented]


REPLAY_PAGE = 500
"""Hints replayed per breaker acquisition."""

BATCH_ADDS = frozenset({"fallthrough_create_batch", "fallthrough_add_records"})
"""Writes that add to a batch: they share its turn (:mod:`.turns`)."""
BATCH_REMOVALS = frozenset({"fallthrough_delete_batch", "fallthrough_delete_records"})
"""Writes that remove from a batch: each takes its turn alone."""

CATCH_UP_WAIT = 5.0
"""Seconds a call waits for a backend that is behind to catch up, when no up-to-date backend can serve it."""


def _never() -> bool:
    return False


def _passed(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _stopped_or_passed(stop: Callable[[], bool], deadline: float) -> bool:
    return stop() or _passed(deadline)


class WriteConcern(enum.StrEnum):
    """When a write returns.

    ``ALL`` (the default): once every available, up-to-date backend has
    applied it; a backend that is down or behind gets a hint. ``FIRST``: once
    the first backend has applied it; every other backend gets a hint that
    the Store's replayer sends in the background, so a call pays the latency
    of one store. The lag is bounded: a caller helps the replayer when a
    reachable backend has more than ``max_lag`` hints waiting.
    """

    ALL = "all"
    FIRST = "first"

    @classmethod
    def coerce(cls, value: object) -> WriteConcern:
        if isinstance(value, WriteConcern):
            return value
        try:
            return cls(value)  # type: ignore[arg-type]
        except ValueError:
            raise InvalidInput(f"write_concern must be 'all' or 'first', got {value!r}") from None


@attrs.frozen
class Replication:
    """What the other backends get after the first one applied a write.

    ``capability`` is what a backend needs to take it, when that differs
    from what deciding the write needed: a claim is decided by a backend
    with ``claims``, and its records go to every backend with ``records``.
    """

    hook: str
    arguments: Mapping[str, Any]
    capability: str | None = None


class Member:
    """One configured backend and the router's view of it."""

    def __init__(
        self, name: str, url: URL, plugin: object, breaker: CircuitBreaker, *, secret_keys: Collection[str] = ()
    ) -> None:
        self.name = name
        self.url = url
        self.masked_url = mask_url(url, secret_keys)
        # What a durable journal knows the store by: masked by option names only, so that it does not
        # change with the password (which masked_url also masks inside other options).
        self.identity = mask_url(url, secret_keys, inside_options=False)
        self.plugin = plugin
        self.breaker = breaker
        self.callers: dict[str, Callable[..., Any]] = {}
        self.open_lock = threading.Lock()
        self.replay_lock = threading.Lock()
        self.opened = False
        self.open_failures = 0
        self.last_open_error: str | None = None
        self.capabilities: Capabilities | None = None
        self.stats_lock = threading.Lock()
        self.missed_writes = 0
        self.last_error: str | None = None

    def able(self, capability: str) -> bool:
        return self.capabilities is not None and bool(getattr(self.capabilities, capability))

    def unable(self, capability: str) -> bool:
        """Known not to have ``capability`` (a backend never opened is not known either way)."""
        return self.opened and not self.able(capability)


class _Outcome(enum.Enum):
    SERVED = "served"
    UNAVAILABLE = "unavailable"  # called, and it could not serve
    SKIPPED = "skipped"  # not called: its circuit breaker is open
    UNABLE = "unable"  # not called: it cannot do what the call needs


@attrs.frozen
class Attempt:
    """How one call to one backend ended, unless it raised a domain error."""

    outcome: _Outcome
    result: Any = None
    error: BackendUnavailable | None = None

    @property
    def served(self) -> bool:
        return self.outcome is _Outcome.SERVED


_UNABLE = Attempt(_Outcome.UNABLE)


@attrs.frozen
class Served:
    """The backend that served a call, its answer, and why the ones before it did not."""

    member: Member
    result: Any
    causes: Mapping[str, BaseException]


class Router:
    """Routes hook calls over the members, keeps the journal and replays it. Thread-safe."""

    def __init__(
        self,
        members: Sequence[Member],
        search_members: Sequence[Member],
        plugin_manager: pluggy.PluginManager,
        journal: Journal,
        *,
        write_concern: WriteConcern,
        max_lag: int,
        secrets: Sequence[str],
    ) -> None:
        self.members = list(members)
        self.search_members = list(search_members)
        self._pm = plugin_manager
        self.journal = journal
        self.write_concern = write_concern
        self.max_lag = max_lag
        self._secrets = list(secrets)
        self.batch_turns = Turns()
        """Keeps a batch's creation and removal in one order on every store (:mod:`.turns`)."""
        self._writes = threading.Condition()  # guards _in_flight and _closing
        self._in_flight = 0
        self._closing = False
        journal.bind({member.name: member.identity for member in self.members})
        self.replayer = Replayer(self)
        if journal.backends_with_hints():
            self.replayer.wake()

    # -- one backend -------------------------------------------------------

    def attempt(
        self,
        member: Member,
        hook: str,
        arguments: Mapping[str, Any],
        capability: str | None,
        *,
        search_needs: frozenset[str] = frozenset(),
        early: bool = False,
    ) -> Attempt:
        """Call ``hook`` on ``member`` alone, under its circuit breaker.

        Returns whether it served, was unavailable, was skipped for its open
        breaker, or cannot do ``capability`` (and, for a search, every part
        in ``search_needs``), in which case no call is made. ``capability``
        None (a ping) needs nothing. A domain error
        (``NotFound``, ``InvalidInput``, a ``PluginError``) propagates: the
        backend answered.
        """
        if not member.breaker.try_acquire(early=early):
            return Attempt(_Outcome.SKIPPED, error=BackendUnavailable(f"{member.name}: circuit breaker open"))
        try:
            self.ensure_open(member)
            unable = capability is not None and not member.able(capability)
            if unable or (search_needs and not self._serves(member, search_needs)):
                member.breaker.abandon()
                return _UNABLE
            result = member.callers[hook](**arguments)
        except BackendBusy as error:
            member.breaker.record_answer()
            self._note_error(member, hook, error, opened_breaker=False)
            return Attempt(_Outcome.UNAVAILABLE, error=error)
        except BackendUnavailable as error:
            was_closed = member.breaker.state == "closed"
            member.breaker.record_failure()
            self._note_error(member, hook, error, opened_breaker=was_closed and member.breaker.state != "closed")
            return Attempt(_Outcome.UNAVAILABLE, error=error)
        except BaseException:
            member.breaker.record_answer()
            raise
        member.breaker.record_success()
        return Attempt(_Outcome.SERVED, result=result)

    @staticmethod
    def _serves(member: Member, search_needs: frozenset[str]) -> bool:
        return member.capabilities is not None and member.capabilities.serves(search_needs)

    def ensure_open(self, member: Member) -> None:
        """Open ``member`` once. Threads that waited while an attempt failed get its failure, not a turn of their own.

        Otherwise four threads behind a dead server would wait one, two, three
        and four connect timeouts.
        """
        if member.opened:
            return
        failures_seen = member.open_failures
        with member.open_lock:
            if member.opened:
                return
            if member.open_failures != failures_seen and member.last_open_error is not None:
                raise BackendUnavailable(member.last_open_error)
            try:
                member.callers["fallthrough_open"]()
            except BackendUnavailable as error:
                member.open_failures += 1
                member.last_open_error = redact(str(error), self._secrets)
                raise
            capabilities = member.callers["fallthrough_capabilities"]()
            if not isinstance(capabilities, Capabilities):
                raise PluginError(
                    f"backend {member.name!r}: fallthrough_capabilities returned {capabilities!r}, not a Capabilities"
                )
            self._check_hooks(member, capabilities)
            member.capabilities = capabilities
            member.opened = True

    def _check_hooks(self, member: Member, capabilities: Capabilities) -> None:
        if capabilities.claims and not capabilities.records:
            raise PluginError(f"backend {member.name!r} declares claims without records: {capabilities}")
        missing = unimplemented_hooks(capabilities, self._pm.get_hookcallers(member.plugin) or ())
        if missing:
            raise PluginError(
                f"backend {member.name!r} declares {capabilities} but does not implement {', '.join(missing)}"
            )

    # -- reads ---------------------------------------------------------------

    def read(
        self, capability: str, hook: str, arguments: Mapping[str, Any], expected: type[T], *, optional: bool = False
    ) -> T:
        """The answer of the first up-to-date backend that serves ``hook``."""
        served = self._first_served(self.members, capability, hook, arguments)
        if isinstance(served, Exception):
            raise served
        return self._checked(served.member, hook, served.result, expected, optional=optional)  # type: ignore[no-any-return]

    def search(self, collection: str, query: SearchQuery) -> SearchResult:
        """Serve a search on the first backend able to evaluate all of it, or degraded without its vector."""
        needs = query.needs
        fallback = needs - {"vector"}
        arguments = {"collection": collection, "query": query}
        served = self._first_served(self.search_members, "documents", "fallthrough_search", arguments, needs)
        if not isinstance(served, Exception):
            hits = self._checked(served.member, "fallthrough_search", served.result, ANY_SEQUENCE)
            return SearchResult(tuple(hits), served.member.name)
        causes = served.causes if isinstance(served, AllBackendsFailed) else {}
        if "vector" in needs and fallback:
            # Everything but the vector, with_vectors included: a degraded hit still carries what was asked of it.
            reduced = attrs.evolve(query, vector=None)
            degraded_members = [
                m
                for m in self.search_members
                if m.capabilities is not None and not m.capabilities.serves(needs) and m.capabilities.serves(fallback)
            ]
            reduced_arguments = {"collection": collection, "query": reduced}
            degraded = self._first_served(
                degraded_members, "documents", "fallthrough_search", reduced_arguments, fallback
            )
            if not isinstance(degraded, Exception):
                name = degraded.member.name
                logger.warning("search on %r served by %s without its vector (degraded)", collection, name)
                hits = self._checked(degraded.member, "fallthrough_search", degraded.result, ANY_SEQUENCE)
                return SearchResult(tuple(hits), name, degraded=True)
            if isinstance(degraded, AllBackendsFailed):
                causes = {**degraded.causes, **causes}
        if causes:
            raise AllBackendsFailed("search", causes)
        raise UnsupportedQuery(
            f"no backend can serve a search using {sorted(needs)}; capabilities: {self.capability_summary()}"
        )

    def _first_served(
        self,
        members: Sequence[Member],
        capability: str,
        hook: str,
        arguments: Mapping[str, Any],
        search_needs: frozenset[str] = frozenset(),
    ) -> Served | FallthroughError:
        """Try ``members`` in order; the first up-to-date one that serves wins.

        When none does, the backends that are behind get a chance to catch up
        first, and if every backend was skipped only for its breaker's
        cooldown, the one whose cooldown ends first gets its trial now.
        Returns the error to raise otherwise.
        """
        causes: dict[str, BaseException] = {}
        behind: list[Member] = []
        cooling: list[Member] = []
        failed = False
        for member in members:
            if self.journal.behind(member.name):
                behind.append(member)
                continue
            attempt = self.attempt(member, hook, arguments, capability, search_needs=search_needs)
            if attempt.served:
                return Served(member, attempt.result, causes)
            if attempt.error is not None:
                causes[member.name] = attempt.error
                failed = failed or attempt.outcome is _Outcome.UNAVAILABLE
                if attempt.outcome is _Outcome.SKIPPED:
                    cooling.append(member)
        for member in behind:
            # Nothing up to date could serve: replay now, with an early trial if its breaker is cooling down.
            try:
                caught_up = self.catch_up(member, wait=True, early=True, deadline=time.monotonic() + CATCH_UP_WAIT)
            except JournalError as error:  # its hints are unknown now: it is marked, and serves nothing
                causes[member.name] = error
                continue
            if caught_up and not self.journal.behind(member.name):
                attempt = self.attempt(member, hook, arguments, capability, search_needs=search_needs)
                if attempt.served:
                    return Served(member, attempt.result, causes)
                if attempt.error is not None:
                    causes[member.name] = attempt.error
                    failed = failed or attempt.outcome is _Outcome.UNAVAILABLE
            else:
                self.replayer.wake()
                causes[member.name] = BackendUnavailable(self._behind_reason(member))
        if cooling and not failed:
            # Nothing was actually tried: rather than fail, give the backend closest to its trial the trial now.
            member = min(cooling, key=lambda m: m.breaker.cooldown_left())
            attempt = self.attempt(member, hook, arguments, capability, search_needs=search_needs, early=True)
            if attempt.served:
                return Served(member, attempt.result, causes)
            if attempt.error is not None:
                causes[member.name] = attempt.error
        if causes:
            return AllBackendsFailed(hook.removeprefix("fallthrough_"), self.redacted(causes))
        return UnsupportedQuery(f"no backend of this Store supports {capability}: {self.capability_summary()}")

    # -- writes --------------------------------------------------------------

    def write(
        self,
        capability: str,
        hook: str,
        arguments: Mapping[str, Any],
        expected: type[T] | None,
        *,
        replicate: Callable[[Any], Replication | None] | None = None,
        write_concern: WriteConcern | None = None,
    ) -> T:
        """Apply a write on the first up-to-date backend, then bring it to every other one.

        ``replicate``, given the first answer, says what the other backends
        get (for an update: the updates that applied, pinned); by default the
        same call. None from it means nothing changed, so nothing is sent.
        """
        with self._writes:
            if self._closing:
                raise FallthroughError("this Store is closed")
            self._in_flight += 1
        try:
            self.journal.writing()
            with self._batch_turn(hook, arguments):
                return self._write(
                    capability, hook, arguments, expected, replicate, write_concern or self.write_concern
                )
        finally:
            with self._writes:
                self._in_flight -= 1
                if not self._in_flight:
                    self._writes.notify_all()

    def _batch_turn(self, hook: str, arguments: Mapping[str, Any]) -> AbstractContextManager[None]:
        """The batch's turn a write that adds to it or removes from it takes, for its whole fan-out (:mod:`.turns`)."""
        if hook in BATCH_ADDS:
            return self.batch_turns.shared(arguments["batch_id"])
        if hook in BATCH_REMOVALS:
            return self.batch_turns.alone(arguments["batch_id"])
        return nullcontext()

    def _write(
        self,
        capability: str,
        hook: str,
        arguments: Mapping[str, Any],
        expected: type[T] | None,
        replicate: Callable[[Any], Replication | None] | None,
        concern: WriteConcern,
    ) -> T:
        decided = self._first_served(self.members, capability, hook, arguments)
        if isinstance(decided, Exception):
            raise decided
        decider = decided.member
        outcome = self._checked(decider, hook, decided.result, expected, optional=expected is None)
        replication = replicate(outcome) if replicate is not None else Replication(hook, arguments)
        if replication is None:
            return outcome  # type: ignore[no-any-return]
        capability = replication.capability or capability
        others = [member for member in self.members if member is not decider and not member.unable(capability)]
        for position, member in enumerate(others):
            if concern is WriteConcern.FIRST:
                self.hint(member, replication, capability, None)
                continue
            if member.name in decided.causes:
                # Tried already while deciding, and unavailable: no second call.
                self.hint(member, replication, capability, decided.causes[member.name])
                continue
            if self.journal.pending(member.name):
                # Behind its own hints: this write takes its turn after them, in order.
                queued = BackendUnavailable(f"{member.name}: behind, queued after its journaled writes")
                self.hint(member, replication, capability, queued)
                continue
            try:
                attempt = self.attempt(member, replication.hook, replication.arguments, capability)
            except Exception as error:
                self._diverged(member, replication, error)
                continue
            except BaseException as interrupt:
                # Ctrl-C while replicating: the write stands on the first backend, so this one (which may or may
                # not have applied it: replaying is harmless) and those after it get it from the journal.
                for missed in others[position:]:
                    self.hint(missed, replication, capability, interrupt)
                raise
            if attempt.error is not None:
                self.hint(member, replication, capability, attempt.error)
        if concern is WriteConcern.FIRST:
            self._hold_lag()
        return outcome  # type: ignore[no-any-return]

    def hint(self, member: Member, replication: Replication, capability: str, error: BaseException | None) -> None:
        """Journal a write ``member`` did not apply, and tell observers.

        The first miss of an outage is a warning; the rest are debug lines,
        since a backend down under load would otherwise log every write.
        """
        first_miss = not self.journal.pending(member.name)
        journaled = self.journal.record(member.name, replication.hook, replication.arguments, capability)
        if error is not None:
            with member.stats_lock:
                member.missed_writes += 1
            logger.log(
                logging.WARNING if first_miss else logging.DEBUG,
                "backend %s missed a write (%s), %s: %s",
                member.name,
                replication.hook,
                "journaled for replay" if journaled else "left to a repair",
                self.describe(error),
            )
            self._announce_missed(member, replication, error)
        if member.breaker.cooldown_left() == 0:
            self.replayer.wake()
        else:
            # Cooling down (this very miss may have opened the breaker): the replayer's own
            # round tries it once the cooldown lets a call through, so it must be running.
            self.replayer.start()

    def _diverged(self, member: Member, replication: Replication, error: Exception) -> None:
        """A backend rejected what another applied: the stores differ, and only a repair can tell how."""
        if isinstance(error, NotFound) and self._deleted_everywhere(member, [replication.arguments]):
            logger.info("%s: %s came after its batch was deleted, as on the others", member.name, replication.hook)
            return
        with member.stats_lock:
            member.missed_writes += 1
            member.last_error = self.describe(error)
        self.journal.mark_needs_repair(
            member.name,
            f"it rejected {replication.hook} that another backend applied: {self.describe(error)}",
            drop_hints=False,
        )
        self._announce_missed(member, replication, error)

    def _deleted_everywhere(self, member: Member, writes: Sequence[Mapping[str, Any]]) -> bool:
        """Whether every batch these record writes name is gone from every other backend of records, up to date.

        Then a ``NotFound`` from ``member`` means only that a ``delete_batch``
        reached it first (workers updating a batch as it is cancelled): the
        stores agree, and there is nothing to repair. Where any answers
        otherwise, or cannot answer, or no other backend is up to date, the
        refusal stands as a difference.
        """
        batch_ids = _batches_named(writes)
        others = [
            other
            for other in self.members
            if other is not member and other.able("records") and not self.journal.behind(other.name)
        ]
        if not batch_ids or not others:
            return False
        for other in others:
            for batch_id in batch_ids:
                answer = self.attempt(other, "fallthrough_get_batch", {"batch_id": batch_id}, "records")
                if not answer.served or answer.result is not None:
                    return False
        return True

    def _announce_missed(self, member: Member, replication: Replication, error: BaseException) -> None:
        """Tell observers; one that raises must not keep the write from the backends after ``member``."""
        try:
            self._pm.hook.fallthrough_missed_write(
                backend_name=member.name, operation=replication.hook, arguments=dict(replication.arguments), error=error
            )
        except Exception as observer_error:
            logger.error("an observer of fallthrough_missed_write failed: %s", self.describe(observer_error))

    def _hold_lag(self) -> None:
        """Under ``FIRST``, the caller replays for a reachable backend whose queue passed ``max_lag``."""
        for member in self.members:
            if self.journal.pending(member.name) > self.max_lag and member.breaker.state == "closed":
                self._caught_up(member, early=False)  # the write was applied: a broken journal must not undo that

    # -- replay ------------------------------------------------------------

    def catch_up(
        self,
        member: Member,
        *,
        wait: bool = False,
        early: bool = False,
        deadline: float | None = None,
        stop: Callable[[], bool] = _never,
    ) -> bool:
        """Replay ``member``'s hints in order; True when none is left.

        Without ``wait``, it returns False at once if another thread is
        replaying this backend already; with it, it waits for that thread,
        until ``deadline`` (a ``time.monotonic()`` time) if one is given:
        the replayer holds the backend for its whole catch-up, which grows
        with the hints. It stops at the first hint the backend cannot take
        now (unavailable, busy) and leaves the rest, and between two runs of
        hints once ``stop()`` is true (the replayer stopping) or the deadline
        has passed. ``early`` lets it make its breaker's trial call before
        the cooldown ends.
        """
        if not self.journal.pending(member.name):
            return True
        if not early and member.breaker.cooldown_left() > 0:
            return False  # its breaker would refuse the call: no need to read a page of hints first
        if not wait:
            acquired = member.replay_lock.acquire(blocking=False)
        elif deadline is None:
            acquired = member.replay_lock.acquire()
        else:
            acquired = member.replay_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
            stop = functools.partial(_stopped_or_passed, stop, deadline)
        if not acquired:
            return False
        try:
            while not stop():
                page = self.journal.peek(member.name, REPLAY_PAGE)
                if not page:
                    return True
                if not self._replay_page(member, page, early=early, stop=stop):
                    return False
            return not self.journal.pending(member.name)
        finally:
            member.replay_lock.release()

    def _replay_page(
        self, member: Member, page: Sequence[tuple[int, Hint]], *, early: bool, stop: Callable[[], bool]
    ) -> bool:
        """Replay one page of hints in order; runs of updates go as one merge per batch (:mod:`.replay`)."""
        if not member.breaker.try_acquire(early=early):
            return False
        done: list[int] = []  # ids of the hints applied (or passed over for a repair), in order
        try:
            self.ensure_open(member)
            for run in _runs(page):
                if stop():
                    break
                hint = run[0][1]
                if member.able(hint.capability):
                    self._replay_run(member, run, page)
                done.extend(hint_id for hint_id, _ in run)
            if not done:
                member.breaker.abandon()  # stopped before any call: the trial proved nothing
                return False
        except BackendBusy:
            member.breaker.record_answer()
            self._forget(member, done)
            return False
        except BackendUnavailable as error:
            # Logged once when the breaker opens, not at every retry of the replayer.
            was_closed = member.breaker.state == "closed"
            member.breaker.record_failure()
            if was_closed:
                self._note_error(member, "replay", error, opened_breaker=True)
            self._forget(member, done)
            return False
        except BaseException:
            member.breaker.record_answer()
            self._forget(member, done)
            raise
        member.breaker.record_success()
        self._forget(member, done)
        return len(done) == len(page)

    def _replay_run(self, member: Member, run: Sequence[tuple[int, Hint]], page: Sequence[tuple[int, Hint]]) -> None:
        """Apply a run of hints of ``page``; a refusal means the stores differ in a way only a repair can mend.

        Unless the refusal is explained: a ``NotFound`` for a batch that a
        later hint of the page deletes, or that every other store lacks too.
        """
        operation = run[0][1].operation
        try:
            if operation == replay.UPDATE_HOOK and len(run) > 1:
                call = functools.partial(_call_hook, member)
                missing = replay.apply_greatest(call, [hint.arguments for _, hint in run])
                if missing:
                    raise NotFound(f"records the other stores hold are missing: {', '.join(missing[:5])}")
            else:
                (_, hint), *_ = run
                member.callers[operation](**hint.arguments)
        except BackendUnavailable:
            raise
        except Exception as error:
            writes = [hint.arguments for _, hint in run]
            if isinstance(error, NotFound) and _deleted_later(writes, run[-1][0], page):
                logger.info("%s: replayed %s refused for a batch a later hint deletes", member.name, operation)
                return
            if isinstance(error, NotFound) and self._deleted_everywhere(member, writes):
                logger.info("%s: replayed %s came after its batch was deleted, as elsewhere", member.name, operation)
                return
            self.journal.mark_needs_repair(
                member.name, f"replaying {operation} failed: {self.describe(error)}", drop_hints=False
            )

    def _forget(self, member: Member, done: Sequence[int]) -> None:
        if done:
            self.journal.remove_through(member.name, done[-1])

    def _caught_up(self, member: Member, *, early: bool = True) -> bool:
        """:meth:`catch_up`, waiting; a journal that cannot be read is logged, and is not caught up."""
        try:
            return self.catch_up(member, wait=True, early=early)
        except JournalError as error:
            logger.error("the journaled writes of %s cannot be replayed: %s", member.name, error)
            return False

    def drain(self, timeout: float | None) -> bool:
        """Replay every backend's hints, waiting up to ``timeout`` seconds; True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waiting = [m for m in self.members if self.journal.pending(m.name)]
            if not waiting:
                return True
            for member in waiting:
                self.catch_up(member, wait=True, deadline=deadline)
            if not any(self.journal.pending(m.name) for m in self.members):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- repair ------------------------------------------------------------------

    def repair(self, *, batch_id: uuid.UUID | None, collection: str | None, page_size: int) -> RepairReport:
        """Bring every reachable backend to the merge of all of them (:func:`fallthrough.repair.repair_stores`).

        Backends that cannot be reached, or whose journaled writes cannot be
        replayed first, are left out (logged; their repair mark stays). Repair
        marks are cleared only by a whole repair (no ``batch_id`` or
        ``collection``) in which every backend took part, and not where a
        newer mark came while the repair ran: with a backend left out, what
        the others missed may be only there.
        """
        targets: list[RepairTarget] = []
        for member in self.members:
            attempt = self.attempt(member, "fallthrough_ping", {}, None, early=True)
            if not attempt.served:
                reason = "it serves nothing" if attempt.error is None else self.describe(attempt.error)
                logger.warning("repair leaves out %s, which is unavailable: %s", member.name, reason)
            elif not self._caught_up(member):
                # Read before its hints are applied, it would hand the others what they deleted since.
                logger.warning("repair leaves out %s, whose journaled writes cannot be replayed now", member.name)
            else:
                targets.append(RepairTarget(self, member))
        marks = {target.name: self.journal.repair_generation(target.name) for target in targets}
        report = repair_stores(
            targets,
            batch_id=batch_id,
            collection=collection,
            page_size=page_size,
            batch_turn=functools.partial(self._repair_turn, [target.member for target in targets]),
        )
        if batch_id is None and collection is None and len(targets) == len(self.members):
            for name, generation in marks.items():
                self.journal.clear_repair(name, generation)
        return report

    @contextmanager
    def _repair_turn(self, members: Sequence[Member], batch_id: uuid.UUID) -> Iterator[None]:
        """The batch's turn for its repair, every store repaired caught up first.

        A ``delete_batch`` one of them missed since the repair began is in the
        journal only: read before it is replayed, that store would hand the
        batch back to the stores that deleted it, and nothing would tell. A
        batch has no tombstone to settle it, as a document has.
        """
        with self.batch_turns.shared(batch_id):
            for member in members:
                if self.journal.pending(member.name) and not self._caught_up(member):
                    raise BackendUnavailable(
                        f"{member.name} missed writes during the repair and cannot take them now; repair again later"
                    )
            yield

    def purge_tombstones(self, *, before: int, collection: str | None, page_size: int) -> PurgeReport:
        """Remove the tombstones older than ``before`` from every backend of documents that can take it now.

        In two phases. First every backend is pinged and its own journaled
        writes are replayed (a replayed upsert older than a purged tombstone
        would bring its document back); one that is unavailable, cannot
        replay now or does not implement the hook is left out, and keeps its
        tombstones. Then, unless any backend is marked as needing a repair
        (it may hold documents the others deleted, which the repair would
        copy back over purged tombstones; a replay that failed just now marks
        one too), the others are purged, a page at a time. A mark that
        appears meanwhile, found before every page, stops the purge there.
        """
        left_out: dict[str, str] = {}
        ready: list[Member] = []
        for member in self.members:
            if member.unable("documents"):
                continue  # nothing to purge there, up or down
            ping = self.attempt(member, "fallthrough_ping", {}, None, early=True)
            if ping.served and not member.able("documents"):
                continue
            reason = self._purge_blocker(member, ping)
            if reason is None:
                ready.append(member)
            else:
                left_out[member.name] = reason
        purged: dict[str, int] = {}
        for member in ready:
            marked = self._marked_for_repair()
            if marked:
                left_out[member.name] = f"{', '.join(marked)} must be repaired first (Store.repair())"
                continue
            purged[member.name] = 0
            target = RepairTarget(self, member)
            try:
                names = target.call("fallthrough_list_collections") if collection is None else [collection]
                for name in names:
                    self._purge_collection(target, name, before, page_size, purged)
            except _MarkedForRepair as marked_meanwhile:
                left_out[member.name] = f"{marked_meanwhile} was marked as needing a repair during the purge"
            except (BackendUnavailable, PluginError) as error:
                left_out[member.name] = f"it failed: {self.describe(error)}"
        for name, reason in left_out.items():
            logger.warning("purging tombstones leaves out %s: %s", name, reason)
        return PurgeReport(purged=purged, left_out=left_out)

    def implements(self, member: Member, hook: str) -> bool:
        """Whether ``member``'s plugin implements ``hook`` (an optional one may be missing)."""
        return any(caller.name == hook for caller in self._pm.get_hookcallers(member.plugin) or ())

    def _purge_blocker(self, member: Member, ping: Attempt) -> str | None:
        """Why ``member``, a backend of documents that answered ``ping`` (or not), cannot be purged now."""
        if not ping.served:
            return "it serves nothing" if ping.error is None else f"it is unavailable: {self.describe(ping.error)}"
        if not self.implements(member, PURGE_HOOK):
            return f"its plugin does not implement {PURGE_HOOK}"
        if not self._caught_up(member):
            return "its journaled writes cannot be replayed now"
        return None

    def _purge_collection(
        self, target: RepairTarget, collection: str, before: int, page_size: int, purged: dict[str, int]
    ) -> None:
        """Purge one collection of ``target`` a page at a time, adding each page's count to ``purged``."""
        while True:
            marked = self._marked_for_repair()
            if marked:
                raise _MarkedForRepair(", ".join(marked))
            arguments = {"collection": collection, "before": before, "limit": page_size}
            count = target.call(PURGE_HOOK, **arguments)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= page_size:
                raise PluginError(
                    f"backend {target.name!r}: {PURGE_HOOK} returned {count!r}, not a count up to {page_size}"
                )
            purged[target.name] += count
            if count < page_size:
                return

    def _marked_for_repair(self) -> list[str]:
        return [member.name for member in self.members if self.journal.needs_repair(member.name)]

    # -- reporting -----------------------------------------------------------

    def health(self) -> list[BackendHealth]:
        report = []
        for member in self.members:
            with member.stats_lock:
                missed, last_error = member.missed_writes, member.last_error
            report.append(
                BackendHealth(
                    name=member.name,
                    url=member.masked_url,
                    state=member.breaker.state,
                    last_error=last_error,
                    missed_writes=missed,
                    capabilities=member.capabilities,
                    pending_hints=self.journal.pending(member.name),
                    lag=self.journal.lag(member.name),
                    needs_repair=self.journal.needs_repair(member.name),
                    serves_reads=not self.journal.behind(member.name),
                )
            )
        return report

    def capability_summary(self) -> str:
        return ", ".join(f"{m.name}: {m.capabilities or 'not opened'}" for m in self.members)

    def _behind_reason(self, member: Member) -> str:
        pending = self.journal.pending(member.name)
        if self.journal.needs_repair(member.name):
            return f"{member.name}: needs a repair (Store.repair) before it serves reads"
        return f"{member.name}: behind by {pending} journaled writes, not replayed yet"

    def _checked(
        self, member: Member, hook: str, result: Any, expected: type[Any] | None, *, optional: bool = False
    ) -> Any:
        if expected is None or (optional and result is None) or isinstance(result, expected):
            return result
        raise PluginError(
            f"backend {member.name!r}: {hook} returned {type(result).__name__}, expected {expected.__name__}"
        )

    def _note_error(self, member: Member, hook: str, error: BaseException, *, opened_breaker: bool) -> None:
        description = self.describe(error)
        with member.stats_lock:
            member.last_error = description
        logger.warning(
            "backend %s (%s) unavailable in %s: %s%s",
            member.name,
            member.masked_url,
            hook,
            description,
            "; circuit breaker opened" if opened_breaker else "",
        )

    def describe(self, error: BaseException) -> str:
        return redact(f"{type(error).__name__}: {shown_text(error)}", self._secrets)

    def redacted(self, causes: Mapping[str, BaseException]) -> dict[str, BaseException]:
        """Causes whose text holds a secret are replaced by a redacted copy with no chain."""
        clean: dict[str, BaseException] = {}
        for name, error in causes.items():
            text = str(error)
            safe = redact(text, self._secrets)
            if safe == text:
                clean[name] = error
            else:
                replacement = BackendUnavailable(safe)
                replacement.__cause__ = None
                clean[name] = replacement
        return clean

    # -- shutdown --------------------------------------------------------------

    def close(self, timeout: float) -> None:
        """Refuse new writes, let those in flight finish, replay what can be replayed, close everything.

        Writes already under way are waited for whatever ``timeout`` says
        (each is bounded by its backend's own timeout): one that returned
        after the journal closed would lose its hints. ``timeout`` bounds the
        replay that follows.
        """
        with self._writes:
            self._closing = True
            if not self._writes.wait_for(lambda: self._in_flight == 0, timeout):
                logger.warning("close() waits for %d writes still under way", self._in_flight)
                self._writes.wait_for(lambda: self._in_flight == 0)
        deadline = time.monotonic() + timeout
        self.replayer.stop()
        try:
            drained = self.drain(max(0.0, deadline - time.monotonic()))
        except Exception as error:  # closing must still close the backends and release the journal
            logger.error("replaying journaled writes at close failed: %s", self.describe(error))
            drained = False
        left = {m.name: self.journal.pending(m.name) for m in self.members if self.journal.pending(m.name)}
        if not drained:
            if self.journal.durable:
                logger.warning("closing with journaled writes left for the next start: %s", left)
            else:
                logger.warning("closing with journaled writes that are lost with this process: %s", left)
                for name in left:
                    self.journal.mark_needs_repair(name, "its journaled writes were lost at close", drop_hints=True)
        if not self.journal.durable:
            # A mark with no hints left (the journal gave up on a store down too long) goes with the process too.
            marked = [m.name for m in self.members if self.journal.needs_repair(m.name) and m.name not in left]
            if marked:
                logger.warning(
                    "closing with %s marked as needing a repair, a mark lost with this process: run Store.repair() "
                    "when %s back",
                    ", ".join(marked),
                    "it is" if len(marked) == 1 else "they are",
                )
        for member in self.members:
            try:
                member.callers["fallthrough_close"]()
            except Exception as error:
                logger.warning("closing backend %s failed: %s", member.name, self.describe(error))
        self.journal.close()


def _runs(page: Sequence[tuple[int, Hint]]) -> list[list[tuple[int, Hint]]]:
    """Consecutive update hints form one run; every other hint is a run of its own."""
    runs: list[list[tuple[int, Hint]]] = []
    for entry in page:
        operation = entry[1].operation
        if runs and operation == replay.UPDATE_HOOK and runs[-1][0][1].operation == replay.UPDATE_HOOK:
            runs[-1].append(entry)
        else:
            runs.append([entry])
    return runs


class _MarkedForRepair(Exception):
    """A backend got a repair mark while a purge ran: the purge stops (its text names the backends)."""


def _batches_named(writes: Iterable[Mapping[str, Any]]) -> set[uuid.UUID]:
    """The batches record writes name: a ``batch_id`` argument, or each update's."""
    batch_ids = {write["batch_id"] for write in writes if "batch_id" in write}
    batch_ids.update(update.batch_id for write in writes for update in write.get("updates", ()))
    return batch_ids


def _deleted_later(writes: Sequence[Mapping[str, Any]], last_id: int, page: Sequence[tuple[int, Hint]]) -> bool:
    """Whether hints of ``page`` after ``last_id`` delete every batch ``writes`` name.

    What such writes would have left, the delete removes: a refusal of them
    is no difference between the stores. It is how a journal that survived
    a crash replays again the part of a page it applied before (hints leave
    it a page at a time): the batch may since have been deleted, and
    created again without the records the writes name.
    """
    deleted = {
        hint.arguments["batch_id"]
        for hint_id, hint in page
        if hint_id > last_id and hint.operation == "fallthrough_delete_batch"
    }
    named = _batches_named(writes)
    return bool(named) and named <= deleted


def _call_hook(member: Member, hook: str, /, **arguments: Any) -> Any:
    return member.callers[hook](**arguments)


class RepairTarget:
    """One backend as :func:`~fallthrough.repair.repair_stores` (and a purge) sees it: calls go through its breaker."""

    def __init__(self, router: Router, member: Member) -> None:
        self._router = router
        self.member = member
        self.name = member.name
        self.capabilities = member.capabilities

    def call(self, hook: str, /, **arguments: Any) -> Any:
        capability = "documents" if hook in _DOCUMENT_REPAIR_HOOKS else "records"
        attempt = self._router.attempt(self.member, hook, arguments, capability)
        if not attempt.served:
            if attempt.error is None:
                raise PluginError(f"backend {self.name!r} cannot take {hook}")
            raise self._router.redacted({self.name: attempt.error})[self.name]
        return attempt.result

    def implements(self, hook: str) -> bool:
        return self._router.implements(self.member, hook)


_DOCUMENT_REPAIR_HOOKS = frozenset(
    {
        "fallthrough_list_collections",
        "fallthrough_scan_documents",
        "fallthrough_document_versions",
        "fallthrough_upsert_documents",
        "fallthrough_delete_documents",
        "fallthrough_drop_collection",
        PURGE_HOOK,
        *DIMENSION_HOOKS,
    }
)


class Replayer:
    """A Store's background thread that replays journaled writes.

    It starts with the first hint (a Store that never misses a write runs no
    thread), wakes when a hint is recorded or a read finds a backend behind,
    and otherwise looks every ``interval`` seconds: a backend whose breaker is
    open is tried when its cooldown lets a call through. Once woken it waits
    ``gather`` seconds, so that the writes of that moment go as one merge (a
    group commit): under the ``"first"`` write concern this halves what the
    replay costs the caller's machine, for 20 ms more lag.
    """

    interval = 0.5
    gather = 0.02

    def __init__(self, router: Router) -> None:
        self._router = router
        self._event = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the thread, if it is not running yet, without waking it."""
        with self._lock:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._run, name="fallthrough-replayer", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Run the thread, and have it look at every backend now."""
        if self._stopped.is_set():
            return
        self.start()
        self._event.set()

    def stop(self) -> None:
        self._stopped.set()
        self._event.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while not self._stopped.is_set():
            if self._event.wait(self.interval):
                # Woken by a hint: let the writes of the next moment join it, so that one
                # merge carries many (a group commit) instead of one call per write.
                self._stopped.wait(self.gather)
            self._event.clear()
            for member in self._router.members:
                if self._stopped.is_set():
                    return
                if self._router.journal.pending(member.name):
                    try:
                        self._router.catch_up(member, stop=self._stopped.is_set)
                    except JournalError as error:  # the journal marked the backend, and logged why, once
                        logger.debug("replaying to %s failed: %s", member.name, self._router.describe(error))
                    except Exception as error:  # a broken plugin must not kill the thread
                        logger.error("replaying to %s failed: %s", member.name, self._router.describe(error))


__all__ = [
    "ANY_SEQUENCE",
    "BACKEND_HOOKS",
    "CLAIM_HOOKS",
    "OPTIONAL_HOOKS",
    "Member",
    "Replication",
    "Router",
    "WriteConcern",
]
