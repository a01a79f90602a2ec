"""The runner: :func:`process` calls a function on every record of a batch, in a pool of threads.

One ``process`` call is one *worker* in the sense of :meth:`Store.claim
<fallthrough.Store.claim>`: a name that holds leases. Inside it:

* a **coordinator** thread makes every store call: it claims records a chunk
  at a time (never more than the pool can start soon), hands them to the
  pool, writes what the pool returns with one ``update_many`` per round,
  extends the leases of records still held (the heartbeat), reads progress
  for ``on_progress``, and releases what it holds when it stops;
* ``workers`` **pool** threads call the handler and turn what it returns or
  raises into a :class:`~fallthrough.RecordUpdate` pinned to the record's
  attempt, never touching the store;
* the **caller's** thread only waits, so a Ctrl-C there reaches the runner as
  a request to stop, never in the middle of a store call.

Many ``process`` calls (threads, processes, machines) can share one batch
through a shared store: claims hand each record to one of them at a time.
``docs/semantics.md`` ("The runner") says what is at-least-once and what is
exactly-once.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

import attrs

from . import validation
from .errors import BackendUnavailable, FallthroughError, InvalidInput
from .types import JSON, Progress, Record, RecordUpdate, Status

if TYPE_CHECKING:
    from .store import Store

logger = logging.getLogger("fallthrough.runner")

T = TypeVar("T")

Handler = Callable[[Record], JSON]
"""What :func:`process` calls: a record in, a JSON result out (or an exception)."""

Backoff = Callable[[int], float]
"""Seconds to wait before the attempt after ``attempt`` failed (attempts count from 0)."""

MAX_ERROR_LENGTH = 8192
"""Error texts longer than this are cut: an exception's message can be a whole response body."""

PROGRESS_INTERVAL = 0.5
"""At most one ``on_progress`` call (and one progress read) per this many seconds."""

PROGRESS_SHARE = 0.1
"""And progress reads take at most this share of the run: after a read of d seconds, the next comes d / share later.

A store whose progress costs the batch (a facet at a million records on a
Qdrant server or qdrant-edge: 0.6 s) would otherwise spend the coordinator's
time, and the store's, reading it twice a second.
"""

MAX_WORKERS = 1024
MIN_LEASE = 0.05
MAX_LEASE = validation.MAX_LEASE  # the Store's own bound on a claim's lease
_IDLE_POLL = 0.25
_MIN_BACKOFF = 0.001
CLAIM_HORIZON = 0.5
"""Seconds of work, at the pool's measured pace, that one runner holds at most (and never under 2 per thread)."""
MAX_HELD = 1000
_LEASE_PAGE = 100


def exponential_backoff(base: float = 1.0, cap: float = 60.0) -> Backoff:
    """A backoff of ``base * 2 ** attempt`` seconds, at most ``cap``: 1, 2, 4, ... 60 by default.

    Deterministic on purpose: a failed record waits on its own lease, not on
    a shared timer, so retries of many records do not arrive together unless
    their failures did.
    """
    if not (isinstance(base, int | float) and isinstance(cap, int | float)) or base < 0 or cap < 0:
        raise InvalidInput(f"backoff base and cap must be non-negative numbers, got {base!r} and {cap!r}")

    def backoff(attempt: int) -> float:
        return float(min(cap, base * 2.0 ** min(attempt, 64)))

    return backoff


def default_worker_name() -> str:
    """``host:pid:random``: unique per ``process`` call, and says where a lease holder runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process(
    store: Store,
    batch_id: uuid.UUID | str,
    handler: Handler,
    *,
    workers: int = 4,
    lease: float = 60.0,
    max_attempts: int = 3,
    backoff: Backoff | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    worker: str | None = None,
    stop: threading.Event | None = None,
) -> Progress:
    """Call ``handler(record)`` on every record of a batch that is pending, in ``workers`` threads.

    Records are taken with :meth:`Store.claim` under the lease holder
    ``worker``, a chunk at a time (back-pressure: it holds what the pool
    finishes in half a second at its measured pace, at least two records per
    thread and at most the larger of 1,000 and that, and claims again when
    half of it is gone). What the handler returns is stored as the record's
    result (``completed``); what it raises is stored as ``"TypeName:
    message"`` (``module.TypeName`` outside the built-ins; ``failed``), even
    an exception that is no ``Exception`` (asyncio's ``CancelledError`` from
    an ``asyncio.run`` inside the handler); only ``KeyboardInterrupt`` and
    ``SystemExit``, alone or in an exception group, stop the run instead. A
    return value that is not JSON (see ``docs/semantics.md``), or that
    raises while it is read (a mapping whose ``items()`` fails), is a
    failure saying so, never a lost result or a stopped run. Every update is pinned to
    the attempt the record was claimed at, so the answer of a worker whose
    lease ran out, after someone else took the record, changes nothing.

    **Attempts.** An attempt is the record's ``attempt`` number in the store:
    a claim of a pending record keeps it, a claim of a record whose lease
    expired takes it at ``attempt + 1``, ``Store.retry`` and a release move it
    to ``attempt + 1``. The handler is called at most once per attempt by
    this runner. When the call at attempt ``n`` fails and ``n + 1 <
    max_attempts``, the record stays ``processing`` under this worker's lease,
    cut to ``backoff(n)`` seconds, and is not touched: when that lease runs
    out, any runner (this one or another) takes it at ``n + 1``. So the
    backoff holds across processes and survives this one dying. Otherwise the
    failure is final: ``failed``, with the error. A record taken at an attempt
    already at or past ``max_attempts`` (its holder died, it was released, or
    ``Store.retry`` moved it) is still called once, with no retry after a
    failure: a record is never failed without a call.

    **Leases.** A heartbeat extends the leases of records held (waiting for
    a thread or in a call) every ``lease / 3`` seconds, so a call may run
    longer than ``lease``. Leases are judged by the Stores' clocks: runners
    on several machines need clocks that agree to well within ``lease``.

    **Stopping.** Setting ``stop``, or Ctrl-C in the calling thread (when it
    is the main thread), stops claiming: records not yet started are released
    at once (``pending`` at ``attempt + 1``), calls under way finish and are
    written, then ``process`` returns (after ``stop``) or raises
    ``KeyboardInterrupt`` (after Ctrl-C). A second Ctrl-C (or a Ctrl-C after
    ``stop`` was set) releases the calls under way too and returns without
    waiting for them; their late answers are no-ops. Ctrl-C after that
    waits for the release (one store call) rather than leave records held.
    Nothing is left ``processing`` for a full lease; a record waiting out a
    backoff stays ``processing`` until its backoff ends.

    **Resuming.** Running ``process`` again on the batch takes what is
    pending, and what is ``processing`` under an expired lease, where it was.

    **Store errors.** A store that goes down is the Store's business (calls
    fall through to the next). When a call fails on every store
    (:class:`~fallthrough.errors.BackendUnavailable`), the runner retries it
    with backoff for up to ``lease`` seconds (after that its leases are gone
    anyway), then releases what it can and raises the last error; after a
    Ctrl-C it raises ``KeyboardInterrupt``, that error as its ``__cause__``
    (records whose release no store took stay ``processing`` until their
    lease ends). Other errors (``NotFound`` for an unknown or deleted batch,
    ``Unsupported`` for a Store whose backends cannot claim) are raised at
    once.

    :param store: a Store whose record backends support claims.
    :param batch_id: the batch to process; ``NotFound`` if it does not exist.
    :param handler: called with each claimed :class:`~fallthrough.Record`
        (``status`` processing, its ``attempt``), from a pool thread; it must
        be thread-safe. It may run more than once for one record (see
        ``docs/semantics.md``, "At-least-once and exactly-once").
    :param workers: pool threads, 1 to 1024.
    :param lease: seconds a claim holds a record before others may take it.
    :param max_attempts: attempts at which a failure is retried, counted
        from attempt 0 (see above); at least 1.
    :param backoff: seconds to wait after the failure of attempt ``n``;
        :func:`exponential_backoff` (1, 2, 4, ... 60 s) by default.
    :param on_progress: called from the coordinator thread with the batch's
        :class:`~fallthrough.Progress`, at most every 0.5 s (less often when
        a progress read is slow: reads take at most a tenth of the run, see
        :data:`PROGRESS_SHARE`) and once at the end. An exception it raises
        stops the run at once and is raised: every record held is released
        (``pending`` at ``attempt + 1``), those whose calls are under way
        included, so they are called again later.
    :param worker: the lease holder's name; ``host:pid:random`` by default.
        Two concurrent ``process`` calls must not share one.
    :param stop: set it (from any thread) to stop cleanly, as above.
    :return: the batch's progress when the run ended: when nothing was left
        pending or processing, or when it stopped.
    """
    from .store import Store

    if not isinstance(store, Store):
        raise InvalidInput(f"store must be a fallthrough.Store, not {type(store).__name__}")
    checked_batch = validation.check_batch_id(batch_id)
    if not callable(handler):
        raise InvalidInput(f"handler must be callable, not {type(handler).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"workers must be an int from 1 to {MAX_WORKERS}, got {workers!r}")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not MIN_LEASE <= lease <= MAX_LEASE:
        raise InvalidInput(f"lease must be a number of seconds from {MIN_LEASE} to {MAX_LEASE:.0f}, got {lease!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidInput(f"max_attempts must be a positive int, got {max_attempts!r}")
    for name, value in (("backoff", backoff), ("on_progress", on_progress)):
        if value is not None and not callable(value):
            raise InvalidInput(f"{name} must be callable or None, not {type(value).__name__}")
    if stop is not None and not isinstance(stop, threading.Event):
        raise InvalidInput(f"stop must be a threading.Event or None, not {type(stop).__name__}")
    name = default_worker_name() if worker is None else validation.check_key(worker, "worker")
    run = _Run(
        store,
        checked_batch,
        handler,
        workers=workers,
        lease=float(lease),
        max_attempts=max_attempts,
        backoff=backoff or exponential_backoff(),
        on_progress=on_progress,
        worker=name,
        stop=stop or threading.Event(),
    )
    return run.start_and_wait()


class _Pace:
    """How many records to hold: what the pool finishes in ``horizon`` seconds, at least two per thread.

    A pool of slow calls holds two records per thread (one running, one
    ready), so a record waits for a thread at most one call; a pool of quick
    calls holds more, so that one claim and one ``update_many`` cover many
    records instead of a few. The pace is measured, not guessed: records
    finished per second, a moving average over half-second samples.
    """

    def __init__(self, workers: int, *, horizon: float) -> None:
        self.floor = 2 * workers
        self.horizon = horizon
        self.rate = 0.0
        self.count = 0
        self.since = time.monotonic()

    def finished(self, count: int) -> None:
        self.count += count
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed >= 0.5:
            sample = self.count / elapsed
            self.rate = sample if self.rate == 0.0 else (self.rate + sample) / 2
            self.count, self.since = 0, now

    def target(self) -> int:
        return max(self.floor, min(MAX_HELD, int(self.rate * self.horizon)))


@attrs.frozen
class _Outcome:
    """What a pool thread made of one call: the update to write, and the record it answers."""

    record: Record
    update: RecordUpdate
    retry_in: float | None = None  # seconds of backoff when the failure is to be retried
    fatal: BaseException | None = None  # what the handler raised that stops the run (stops_a_run)


class _Run:
    """The state of one ``process`` call. Only the coordinator thread calls the store."""

    def __init__(
        self,
        store: Store,
        batch_id: uuid.UUID,
        handler: Handler,
        *,
        workers: int,
        lease: float,
        max_attempts: int,
        backoff: Backoff,
        on_progress: Callable[[Progress], None] | None,
        worker: str,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.handler = handler
        self.workers = workers
        self.lease = lease
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.on_progress = on_progress
        self.worker = worker
        self.stop = stop
        # Held: claimed by us and not given up (waiting in `work` or in a call).
        # A claim leaves it only through its own answer, a release, a newer claim of the record, or
        # the run's end: an answer whose claim is not the one held is an older call's (_superseded).
        self.held: dict[str, Record] = {}
        self.work: queue.Queue[Record | None] = queue.Queue()
        self.outcomes: queue.Queue[_Outcome] = queue.Queue()
        self.pace = _Pace(workers, horizon=min(CLAIM_HORIZON, lease / 10))
        self.heartbeat_every = lease / 3
        self.abandon = threading.Event()  # a second Ctrl-C: release everything, do not wait
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.result: Progress | None = None
        self.last_progress_at = 0.0
        self.progress_gap = PROGRESS_INTERVAL  # the least time between two reports (PROGRESS_SHARE)
        # Given up, and the update_many writing them has not returned yet: each update with the claim it answers.
        self.unwritten: list[tuple[Record, RecordUpdate]] = []
        # Failed, to be retried after a backoff whose lease cut is not written yet: the claim and its error,
        # by key, so that a release after an error keeps it, as it keeps a retried failure's error.
        self.uncut: dict[str, tuple[Record, str | None]] = {}

    # -- the caller's thread -------------------------------------------------

    def start_and_wait(self) -> Progress:
        # Unknown batch: NotFound here, before any thread starts.
        first = self._timed_progress()
        pool = [
            threading.Thread(target=self._pool_thread, name=f"fallthrough-runner-{index}", daemon=True)
            for index in range(self.workers)
        ]
        for thread in pool:
            thread.start()
        coordinator = threading.Thread(target=self._coordinate, args=(first,), name="fallthrough-runner", daemon=True)
        coordinator.start()
        interrupted = handled = 0
        try:
            while True:
                try:
                    # Each Ctrl-C is counted in the handler below and acted on here, inside the try: one that
                    # comes while the last is acted on (a wrapper forwarding the terminal's signal a moment
                    # later) is caught and counted too, instead of leaving this call with the run going on.
                    while handled < interrupted:
                        handled += 1
                        self._step_down()
                    while not self.finished.wait(0.2):
                        pass
                    break
                except KeyboardInterrupt:
                    interrupted += 1
        finally:
            if not self.finished.is_set():
                # Leaving before the run ended all the same (an interrupt between two instructions above):
                # the run must not go on claiming behind the caller's back. Let go of what it holds.
                self.stop.set()
                self.abandon.set()
        if interrupted and isinstance(self.error, BackendUnavailable):
            # Told to stop, and every store failed while it let go: the stop is the outcome. The outage is
            # reported, and kept as the cause: records whose release no store took stay processing until their
            # lease ends. Anything else (a handler's exit, NotFound for a deleted batch) is raised as it is.
            logger.warning("runner %s: while stopping: %s", self.worker, _describe(self.error))
            raise KeyboardInterrupt from self.error
        if self.error is not None and not self.abandon.is_set():
            raise self.error
        if interrupted:
            if self.error is not None:
                # Told twice to stop now: that is the outcome; what failed while letting go is only reported.
                logger.warning("runner %s: while stopping: %s", self.worker, _describe(self.error))
            raise KeyboardInterrupt
        assert self.result is not None
        return self.result

    def _step_down(self) -> None:
        """What one Ctrl-C does: stop claiming and finish the calls under way; then release them; then wait.

        The event is set before the line is logged: a Ctrl-C that interrupts
        the logging finds the step already taken.
        """
        if not self.stop.is_set():
            self.stop.set()
            logger.info("runner %s: interrupted; finishing the calls under way", self.worker)
        elif not self.abandon.is_set():
            # Told to stop already (a Ctrl-C, the caller's stop, SIGTERM in the command line).
            self.abandon.set()
            logger.info("runner %s: interrupted again; releasing the calls under way", self.worker)
        else:
            # Leaving now would strand what the coordinator is releasing (a store call or two, not
            # retried once abandoned): processing for a whole lease. Wait for it.
            logger.info("runner %s: interrupted again; still releasing what it holds", self.worker)

    # -- pool threads ----------------------------------------------------------

    def _pool_thread(self) -> None:
        while True:
            record = self.work.get()
            if record is None:
                return
            try:
                outcome = self._call(record)
            except BaseException as error:  # a bug here must not strand the record in a dead thread
                outcome = _Outcome(record, _released(record), fatal=error)
            self.outcomes.put(outcome)

    def _call(self, record: Record) -> _Outcome:
        try:
            value = self.handler(record)
        except BaseException as error:
            if stops_a_run(error):
                return _Outcome(record, _released(record), fatal=error)
            # The handler's failure is data: asyncio's CancelledError included.
            return self._failure(record, _describe(error))
        try:
            update = RecordUpdate(record.batch_id, record.key, Status.COMPLETED, result=value, attempt=record.attempt)
            return _Outcome(record, update)
        except InvalidInput as error:
            return self._failure(record, _cut(f"handler returned a result that cannot be stored: {error}"))
        except Exception as error:
            # Checking the value ran its own code (a mapping whose items() raises, a dict another thread
            # is still filling): that is this record's failure too, not a reason to stop every record's run.
            return self._failure(record, _cut(f"handler returned a result that cannot be read: {_describe(error)}"))

    def _failure(self, record: Record, error: str) -> _Outcome:
        update = RecordUpdate(record.batch_id, record.key, Status.FAILED, error=error, attempt=record.attempt)
        if record.attempt + 1 >= self.max_attempts:
            return _Outcome(record, update)
        try:
            # A lease holds the record through its backoff, so the delay is bounded like a lease.
            delay = min(max(0.0, float(self.backoff(record.attempt))), validation.MAX_LEASE)
        except Exception as problem:  # a broken backoff must not lose the record: retry at once
            logger.error("runner %s: backoff(%d) raised %s", self.worker, record.attempt, _describe(problem))
            delay = 0.0
        return _Outcome(record, update, retry_in=delay)

    # -- the coordinator -------------------------------------------------------

    def _coordinate(self, first: Progress) -> None:
        try:
            if self.on_progress is not None:
                self._emit(first)
            self._loop()
            if self.abandon.is_set():
                self.result = self._quick_progress(first)
            else:
                self.result = self._store_call(lambda: self.store.progress(self.batch_id))
                if self.on_progress is not None:
                    self._emit(self.result)
        except BaseException as error:
            self.error = error
            self._release_quietly()
        finally:
            for _ in range(self.workers):
                self.work.put(None)
            self.finished.set()

    def _loop(self) -> None:
        next_heartbeat = time.monotonic() + self.heartbeat_every
        next_claim = 0.0
        idle_poll = min(_IDLE_POLL, self.lease / 4)
        while True:
            if self.abandon.is_set():
                self._unstarted()  # out of the pool's reach; every one of them is held already
                self._give_up_now()
                return
            stopping = self.stop.is_set()
            if stopping:
                self._release(self._unstarted())
            self._write(self._drain_outcomes(wait=0.0))
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + self.heartbeat_every
            if stopping:
                if not self.held:
                    return
                self._write(self._drain_outcomes(wait=idle_poll))
                continue
            target = self.pace.target()
            free = target - len(self.held)
            # Back-pressure: hold no more than the pool will start within the horizon; claim when half is gone.
            if (free * 2 >= target or not self.held) and now >= next_claim:
                claim = functools.partial(
                    self.store.claim, self.batch_id, worker=self.worker, limit=free, lease=self.lease
                )
                claimed = self._store_call(claim)
                for record in claimed:
                    self.held[record.key] = record
                    self.work.put(record)
                if claimed:
                    next_claim = 0.0
                elif self.held:
                    next_claim = now + idle_poll
                else:
                    progress = self._read_progress()
                    if progress.pending == 0 and (progress.processing == 0 or self._only_unleased_in_flight()):
                        return
                    if _impossible(progress) and self._nothing_left_by_the_records(progress):
                        return
                    # Records others hold (or ours waiting out a backoff): look again when leases may have run out.
                    next_claim = now + (0.02 if progress.pending > 0 else idle_poll)
            if self.on_progress is not None and time.monotonic() - self.last_progress_at >= self.progress_gap:
                self._read_progress()
            if self.held:
                wait = min(idle_poll, max(0.0, next_heartbeat - time.monotonic()))
                self._write(self._drain_outcomes(wait=wait))
            elif next_claim > time.monotonic():
                self.stop.wait(min(idle_poll, next_claim - time.monotonic()))

    def _nothing_left_by_the_records(self, progress: Progress) -> bool:
        """With counts that cannot be right, whether the records themselves show nothing left to run.

        Counts below zero mean records were written that the counts never saw
        (a process of an older release inserting into a SQLite file a newer
        one had migrated: docs/workers.md), and a runner waiting for them to
        reach zero would wait for ever. So the records are read instead: no
        pending one, no processing one under a lease, and still no pending one
        after that (a record given back meanwhile), in one retried store call.
        """

        def pending_left() -> bool:
            return next(iter(self.store.records(self.batch_id, status=Status.PENDING, page_size=1)), None) is not None

        def left() -> bool:
            return pending_left() or self._unleased_processing() is None or pending_left()

        if self._store_call(left):
            return False
        logger.error(
            "batch %s: its progress counts cannot be right (%s): records were written that they never saw. "
            "The records show nothing left to run, so this runner ends; the counts stay wrong",
            self.batch_id,
            progress,
        )
        return True

    def _only_unleased_in_flight(self) -> bool:
        """Whether the records in flight are only ones no runner will end: processing without a lease.

        A record set processing by hand has no lease: it is never claimable,
        so waiting for it would never end. Progress is read again after the
        leases, and must count no pending record and exactly the unleased
        ones found: a record that moved in between (given back as pending by
        a runner that stops, or claimed again by another runner) shows as a
        pending record or as one processing record too many, and the runner
        looks again rather than return while it is in flight. The leases are
        read inside one retried store call, up to the first leased record.
        """

        found = self._store_call(self._unleased_processing)
        if found is None:
            return False
        progress = self._read_progress()
        return progress.pending == 0 and progress.processing == found

    def _unleased_processing(self) -> int | None:
        """How many records are processing without a lease; None at the first one under a lease (read lazily)."""
        count = 0
        for record in self.store.records(self.batch_id, status=Status.PROCESSING, page_size=_LEASE_PAGE):
            if record.lease_expires is not None:
                return None
            count += 1
        return count

    def _read_progress(self) -> Progress:
        progress = self._store_call(self._timed_progress)
        if self.on_progress is not None and time.monotonic() - self.last_progress_at >= self.progress_gap:
            self._emit(progress)
        return progress

    def _timed_progress(self) -> Progress:
        """The batch's progress; how long it took sets the least time to the next report."""
        started = time.monotonic()
        progress = self.store.progress(self.batch_id)
        self.progress_gap = max(PROGRESS_INTERVAL, (time.monotonic() - started) / PROGRESS_SHARE)
        return progress

    def _emit(self, progress: Progress) -> None:
        assert self.on_progress is not None
        self.last_progress_at = time.monotonic()
        self.on_progress(progress)

    def _quick_progress(self, fallback: Progress) -> Progress:
        try:
            return self.store.progress(self.batch_id)
        except FallthroughError:
            return fallback

    def _drain_outcomes(self, *, wait: float) -> list[_Outcome]:
        """What the pool finished: waits up to ``wait`` seconds for the first, then takes all that are there."""
        found: list[_Outcome] = []
        try:
            found.append(self.outcomes.get(timeout=wait) if wait > 0 else self.outcomes.get_nowait())
        except queue.Empty:
            return found
        while True:
            try:
                found.append(self.outcomes.get_nowait())
            except queue.Empty:
                return found

    def _write(self, outcomes: list[_Outcome]) -> None:
        """Give up what the pool finished: one ``update_many`` for results, final failures and releases."""
        if not outcomes:
            return
        given_up: list[tuple[Record, RecordUpdate]] = []
        waiting: list[_Outcome] = []
        for outcome in outcomes:
            if self._superseded(outcome.record):
                # An older call's answer: this run claimed the record again since (at attempt + 1, or at
                # the same attempt through a failover Store). Written, it could replace the newer call's
                # result, and one update_many may not name the record twice.
                logger.info(
                    "runner %s: %r answered at attempt %d, claimed again since",
                    self.worker,
                    outcome.record.key,
                    outcome.record.attempt,
                )
            elif outcome.retry_in is None:
                given_up.append((outcome.record, outcome.update))
            elif outcome.retry_in < _MIN_BACKOFF:
                given_up.append((outcome.record, _released(outcome.record, outcome.update.error)))
            else:
                waiting.append(outcome)
        for outcome in waiting:
            self.uncut[outcome.record.key] = (outcome.record, outcome.update.error)
        fatal = next((outcome.fatal for outcome in outcomes if outcome.fatal is not None), None)
        if fatal is not None:
            # An exit stops the run at once, even with every store down: the release after the error writes
            # these answers, once (`unwritten`), and gives back the records waiting out a backoff, their error kept.
            self.unwritten = given_up
            raise fatal
        if given_up:
            # Given up now: should the lease cuts below fail, the release after the
            # error must not overwrite these with pending at attempt + 1.
            self._write_given_up(given_up, self._store_call)
        by_delay: dict[float, list[_Outcome]] = {}
        for outcome in waiting:
            by_delay.setdefault(outcome.retry_in or 0.0, []).append(outcome)
        for delay, alike in by_delay.items():
            self._wait_out(alike, delay)
        # Each answered claim has left `held` by now: through its update_many, or its lease cut.
        self.pace.finished(len(outcomes))

    def _wait_out(self, failed: list[_Outcome], delay: float) -> None:
        """Cut failed records' leases to their backoff, ``delay``: when it runs out, a claim takes each at attempt + 1.

        One store call for every record of one delay (a call per record was a
        transaction per failure: 25x the time of a run that succeeds, on SQLite).
        """
        for outcome in failed:
            logger.info(
                "runner %s: %r failed at attempt %d (%s); retrying in %.3g s",
                self.worker,
                outcome.record.key,
                outcome.record.attempt,
                outcome.update.error,
                delay,
            )
        keys = [outcome.record.key for outcome in failed]
        self._store_call(lambda: self.store.extend_leases(self.batch_id, keys, worker=self.worker, lease=delay))
        for outcome in failed:
            # Its lease now ends with the backoff: a release after a later error must not cut that short.
            self._forget(outcome.record)
            del self.uncut[outcome.record.key]

    def _heartbeat(self) -> None:
        keys = list(self.held)
        if not keys:
            return
        extended = self._store_call(
            lambda: self.store.extend_leases(self.batch_id, keys, worker=self.worker, lease=self.lease)
        )
        if extended < len(keys):
            # Lost leases (a stall longer than the lease): the late answers will be no-ops.
            logger.warning("runner %s: %d of %d leases had expired", self.worker, len(keys) - extended, len(keys))

    def _unstarted(self) -> list[Record]:
        taken: list[Record] = []
        while True:
            try:
                record = self.work.get_nowait()
            except queue.Empty:
                return taken
            if record is not None:
                taken.append(record)

    def _release(self, records: Iterable[Record]) -> None:
        """Give records back at once: ``pending`` at ``attempt + 1``, so anyone may take them now."""
        # An old claim still queued behind this run's new claim of the same record is dropped with it.
        chosen = [record for record in records if not self._superseded(record)]
        if not chosen:
            return
        self._write_given_up([(record, _released(record)) for record in chosen], self._store_call)

    def _give_up_now(self) -> None:
        """Abandon: write the answers the pool has finished, release every other record held, in one call.

        The calls under way are not waited for: their records go back
        ``pending`` at ``attempt + 1`` and their late answers change nothing.
        """
        answered = self._last_answers(self._drain_outcomes(wait=0.0))
        # Should this call fail, the release after the error writes the answers again (`unwritten`), not pending.
        self._write_given_up(
            answered + [(record, _released(record)) for record in self._held_except(answered)], self._store_call
        )
        self.held.clear()

    def _release_quietly(self) -> None:
        """After an error: write what the pool finished, release the rest, as far as the store lets us."""
        # First, before any store call can fail: out of the pool's reach, so that no
        # handler starts on them once the run has raised. Those still held are released below.
        self._unstarted()
        try:
            finished = self._drain_outcomes(wait=0.0)
            # An answer that came in since replaces the release an abandon meant to write for its record.
            given_up = {
                record.key: (record, update) for record, update in self.unwritten + self._last_answers(finished)
            }
            refused: dict[str, str] = {}
            try:
                refused = self._write_answers_quietly(list(given_up.values()))
            except Exception as error:
                logger.warning("runner %s: could not write the answers it had: %s", self.worker, _describe(error))
            # What is still held, answers refused or not written above included, goes back to pending;
            # a refused answer's reason is kept as the error, for whoever takes the record next.
            releases = [
                (record, _released(record, refused.get(record.key) or self._failure_waiting(record)))
                for record in self.held.values()
            ]
            self._write_given_up(releases, _call_once)
            self.held.clear()
        except Exception as error:
            logger.warning("runner %s: could not release what it held: %s", self.worker, _describe(error))

    def _write_answers_quietly(self, answers: list[tuple[Record, RecordUpdate]]) -> dict[str, str]:
        """Write the answers of a run that ended in an error, leaving out those the Store refuses.

        The error may be the Store refusing one of them (a result the handler
        changed after returning it, checked again by ``update_many``): the same
        call would fail again, so the results are checked here as it checks
        them, and the others written in one call. A refused answer's record
        stays held, and is released with the rest.

        :return: why each refused answer was refused, by key.
        """
        try:
            self._write_given_up(answers, _call_once)
            return {}
        except InvalidInput:
            pass
        accepted: list[tuple[Record, RecordUpdate]] = []
        refused: dict[str, str] = {}
        for record, update in answers:
            try:
                validation.check_json(update.result, "result")
            except InvalidInput as error:
                logger.warning("runner %s: the answer for %r is refused: %s", self.worker, record.key, _describe(error))
                refused[record.key] = _cut(f"the handler's result could not be stored: {error}")
            else:
                accepted.append((record, update))
        self._write_given_up(accepted, _call_once)
        return refused

    def _last_answers(self, outcomes: list[_Outcome]) -> list[tuple[Record, RecordUpdate]]:
        """What to write for the pool's answers when the run ends early: no lease cut, no raising.

        A failure to retry is released now, its error kept for whoever takes it
        next; what a handler raised to stop the run is only reported, since the
        run is stopping already.
        """
        answers: list[tuple[Record, RecordUpdate]] = []
        for outcome in outcomes:
            if self._superseded(outcome.record):
                continue
            if outcome.fatal is not None:
                logger.warning("runner %s: while stopping: %s", self.worker, _describe(outcome.fatal))
            elif outcome.retry_in is None:
                answers.append((outcome.record, outcome.update))
            else:
                answers.append((outcome.record, _released(outcome.record, outcome.update.error)))
        return answers

    def _write_given_up(
        self, given_up: list[tuple[Record, RecordUpdate]], call: Callable[[Callable[[], int]], int]
    ) -> None:
        """One ``update_many`` for records given up; until it returns they stay in ``unwritten``."""
        if not given_up:
            return
        self.unwritten = given_up
        updates = [update for _, update in given_up]
        call(lambda: self.store.update_many(updates))
        self.unwritten = []
        for record, _ in given_up:
            self._forget(record)

    def _forget(self, record: Record) -> None:
        """No longer held: this claim of the record only.

        An answer may come from an attempt whose lease ran out and which this run
        claimed again since: that later claim stays held until its own answer.
        """
        if self.held.get(record.key) is record:
            del self.held[record.key]

    def _failure_waiting(self, record: Record) -> str | None:
        """The error of ``record``'s failure when this claim waits for its backoff's lease cut, else None."""
        claim, error = self.uncut.get(record.key, (None, None))
        return error if claim is record else None

    def _superseded(self, record: Record) -> bool:
        """Whether ``record`` is no longer the claim this run holds: its call's answer must change nothing.

        Compared by identity, not by attempt: a failover Store may hand a
        record out again at the same attempt, and the newest claim may be
        answered (and let go) before the older calls answer.
        """
        return self.held.get(record.key) is not record

    def _held_except(self, given_up: list[tuple[Record, RecordUpdate]]) -> list[Record]:
        answered = {id(record) for record, _ in given_up}
        return [record for record in self.held.values() if id(record) not in answered]

    def _store_call(self, call: Callable[[], T]) -> T:
        """A store call, retried with backoff while every store is down, for up to one lease."""
        deadline = time.monotonic() + self.lease
        delay = 0.05
        while True:
            started = time.monotonic()
            try:
                answer = call()
            except BackendUnavailable as error:
                left = deadline - time.monotonic()
                if left <= 0 or self.abandon.is_set():
                    raise
                pause = min(delay, left)
                logger.warning("runner %s: store unavailable (%s); retrying in %.2f s", self.worker, error, pause)
                time.sleep(pause)
                delay = min(delay * 2, 2.0)
                continue
            took = time.monotonic() - started
            if took > self.heartbeat_every:
                # The heartbeat waited as long: leases may run out under a store this slow.
                logger.warning("runner %s: a store call took %.2f s (lease %.3g s)", self.worker, took, self.lease)
            return answer


def _call_once(call: Callable[[], T]) -> T:
    return call()


def _released(record: Record, error: str | None = None) -> RecordUpdate:
    """A record given back early: ``pending`` at ``attempt + 1`` (pending at its own attempt would be a no-op)."""
    return RecordUpdate(record.batch_id, record.key, Status.PENDING, error=error, attempt=record.attempt + 1)


def stops_a_run(error: BaseException) -> bool:
    """Whether a handler's ``error`` stops the run: a Ctrl-C or an exit, alone or in an exception group.

    Task groups (trio's, anyio's, asyncio's) wrap what a task raised, a
    ``sys.exit()`` too, in a ``BaseExceptionGroup``. Anything else a handler
    raises is the record's failure.
    """
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup((KeyboardInterrupt, SystemExit)) is not None
    return isinstance(error, KeyboardInterrupt | SystemExit)


def _describe(error: BaseException) -> str:
    """``TypeName: message`` of an exception, made storable: no NUL, valid UTF-8, at most 8 KiB."""
    try:
        message = str(error)
    except Exception:
        message = "<unprintable message>"
    name = type(error).__qualname__
    module = type(error).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return _cut(f"{name}: {message}" if message else name)


def _cut(text: str) -> str:
    cleaned = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(cleaned) > MAX_ERROR_LENGTH:
        cleaned = cleaned[: MAX_ERROR_LENGTH - 1] + "…"
    return cleaned


def _impossible(progress: Progress) -> bool:
    """Whether some count is below zero, which no sequence of counted writes gives."""
    return min(progress.pending, progress.processing, progress.completed, progress.failed) < 0


__all__ = ["Backoff", "Handler", "default_worker_name", "exponential_backoff", "process", "stops_a_run"]
