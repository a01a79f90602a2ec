"""The asyncio API: :class:`AsyncStore` and :func:`connect_async`.

An AsyncStore wraps a :class:`~fallthrough.store.Store` and runs each of its
calls on a thread pool of its own, bounded by ``max_concurrency``, so that a
store call never blocks the event loop. Unless the caller sets that bound, it
follows the backends: the smallest ``parallel_calls`` their
:class:`~fallthrough.types.Capabilities` declare, at most
:data:`DEFAULT_MAX_CONCURRENCY` (SQLite declares 2: more threads of GIL-bound
Python only lengthen the loop's stalls, at the same wall time). Every public
method of the Store has a twin here with the same name, parameters and
errors; the iterators (``records``, ``batches``, ``documents``) become async
iterators that read each page on the pool.

Why threads and not the drivers' own async APIs (psycopg's ``AsyncConnection``,
qdrant-client's ``AsyncQdrantClient``): a call is more than a driver round trip.
The router's breakers, the journal of missed writes, its replay and the
streamed creates are synchronous code shared with the sync Store and the
runner, and every backend plugin would need a second, async implementation
of each hook. ``docs/architecture.md`` ("The asyncio API") has the numbers.

Cancellation: cancelling a caller that awaits a call never interrupts the
call. A call that had not started yet does not run at all; one that had
goes on to the end in its thread, its result (or error) is dropped, and its
pool slot is free again when it ends. So a cancelled write may or may not
have been applied, exactly as when a caller gives up on a timeout. Read
back to know, or repeat it where that is harmless (an update, an upsert, a
delete, a ``create_batch`` given its ``batch_id``); ``docs/architecture.md``,
"The asyncio API", says which are not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Generic, NoReturn, TypeVar

import attrs
import pluggy
from sqlalchemy.engine import URL

from . import validation
from .breaker import BreakerPolicy
from .errors import FallthroughError, InvalidInput
from .journal import Journal, JournalPolicy
from .ownership import Owner
from .registry import Registry
from .router import WriteConcern
from .store import (
    DEFAULT_BATCH_PAGE,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_DOCUMENT_PAGE,
    DEFAULT_LEASE,
    DEFAULT_MAX_LAG,
    DEFAULT_PAGE_SIZE,
    Store,
    connect,
)
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
    SearchResult,
    Status,
)

T = TypeVar("T")

logger = logging.getLogger("fallthrough")

DEFAULT_MAX_CONCURRENCY = 8
"""The bound when neither the caller nor any backend's ``parallel_calls`` sets a lower one."""
MAX_CONCURRENCY = 1024
"""The largest ``max_concurrency`` a caller may set."""


class AsyncStore:
    """A :class:`~fallthrough.store.Store` for asyncio code: every call a coroutine, run off the event loop.

    Build one with :func:`connect_async`, or wrap a Store you already have::

        async with await fallthrough.connect_async("sqlite://") as store:
            batch = await store.create_batch(["a", "b"])
            async for record in store.records(batch.id):
                ...

    At most :attr:`max_concurrency` calls run at once, each on a thread of
    this AsyncStore's own pool; the calls beyond wait their turn without
    blocking the loop. Routing, fall-through, the journal and the errors are
    the wrapped Store's: a call raises what the Store's method raises. Like
    a Store, it serves only the process that built it: in a forked child
    every call raises :class:`~fallthrough.errors.WrongProcess`.

    :param store: the Store whose calls this runs.
    :param max_concurrency: how many calls may run at once (1 to
        :data:`MAX_CONCURRENCY`), whatever the backends declare. None (the
        default): the smallest ``parallel_calls`` declared in the
        :class:`~fallthrough.types.Capabilities` of the Store's backends,
        at most :data:`DEFAULT_MAX_CONCURRENCY` (8). A backend declares them
        when it opens, at the first call that needs it, so the bound is
        looked up again for every call: until then that backend sets no
        limit, and the first calls of a new Store may run up to 8 at once.
        A PostgreSQL backend (no hint) keeps ``pool_size`` (5) connections
        and opens up to ``max_overflow`` (10) more: past their sum, calls
        wait for a connection instead of a thread.
    :param close_store: whether :meth:`close` closes ``store`` too. False by
        default: whoever opened a Store closes it, and a Store wrapped here
        may still serve sync code. :func:`connect_async` opens its Store and
        passes True.
    """

    def __init__(self, store: Store, *, max_concurrency: int | None = None, close_store: bool = False) -> None:
        if not isinstance(store, Store):
            raise InvalidInput(f"store must be a fallthrough.Store, not {type(store).__name__}")
        _check_max_concurrency(max_concurrency)
        if not isinstance(close_store, bool):
            raise InvalidInput(f"close_store must be a bool, got {close_store!r}")
        self._owner = Owner.of(self, "AsyncStore")
        self._store = store
        self._chosen = max_concurrency
        self._close_store = close_store
        # The pool has threads for the largest bound this AsyncStore may have; the gate lets fewer run at once.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrency or DEFAULT_MAX_CONCURRENCY, thread_name_prefix="fallthrough-aio"
        )
        self._submit_lock = threading.Lock()  # a call is either submitted before the pool shuts down, or refused
        # The keep_open() blocks under way. A block's mark in a context (_BLOCKS) is honoured only while its
        # token is here, so a copy of the mark (a task spawned in the block, an async generator's caller)
        # dies with the block. The close shuts the pool once this is empty.
        self._live_blocks: set[_Block] = set()
        self._blocks_ended = threading.Condition(self._submit_lock)
        self._pool_thread = threading.local()  # of_this_store: set on this AsyncStore's pool threads
        # Only pool threads take the gate, never the loop: the loop must not wait for a lock a busy thread holds.
        self._gate = threading.Condition(threading.Lock())
        self._running = 0
        self._closed = False
        self._closing: concurrent.futures.Future[None] | None = None

    # -- introspection -----------------------------------------------------

    @property
    def store(self) -> Store:
        """The wrapped Store (its calls block: call it from threads, not from the event loop)."""
        return self._store

    @property
    def max_concurrency(self) -> int:
        """How many calls may run at once now: the number given, or what the backends opened so far declare.

        With ``max_concurrency=None`` it is the smallest ``parallel_calls``
        among the backends whose capabilities are known
        (:attr:`Store.capabilities <fallthrough.store.Store.capabilities>`),
        at most :data:`DEFAULT_MAX_CONCURRENCY`; it can only fall as more of
        them open.
        """
        if self._chosen is not None:
            return self._chosen
        return _hinted_concurrency(self._store.capabilities.values())

    async def run_sync(self, function: Callable[..., T], /, *args: Any) -> T:
        """``function(*args)`` on this AsyncStore's pool, under its bound, without blocking the loop.

        For an integration's own blocking or CPU-heavy work around Store
        calls (converting and checking thousands of documents before an
        upsert): it takes a slot like a Store call, so the pool stays the one
        bound on this AsyncStore's threads, and it runs in a copy of the
        caller's context. Cancelling behaves as for the Store's calls.
        """
        return await self._run(functools.partial(function, *args))

    @property
    def capabilities(self) -> dict[str, Capabilities | None]:
        """:attr:`Store.capabilities <fallthrough.store.Store.capabilities>` (no I/O)."""
        return self._store.capabilities

    @property
    def chunk_writes_in_flight(self) -> int:
        """:attr:`Store.chunk_writes_in_flight <fallthrough.store.Store.chunk_writes_in_flight>` (no I/O)."""
        return self._store.chunk_writes_in_flight

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The wrapped Store's pluggy manager."""
        return self._store.plugin_manager

    @property
    def backend_names(self) -> list[str]:
        """The backends' names, in priority order for records."""
        return self._store.backend_names

    def __repr__(self) -> str:
        return f"<AsyncStore max_concurrency={self.max_concurrency} {self._store!r}>"

    def __reduce__(self) -> NoReturn:
        self._owner.refuse_pickling()

    async def health(self, *, ping: bool = False) -> list[BackendHealth]:
        """:meth:`Store.health <fallthrough.store.Store.health>`."""
        return await self._run(functools.partial(self._store.health, ping=ping))

    async def drain(self, timeout: float | None = None) -> bool:
        """:meth:`Store.drain <fallthrough.store.Store.drain>`: it holds one pool slot while it waits."""
        return await self._run(functools.partial(self._store.drain, timeout))

    async def repair(
        self, batch_id: uuid.UUID | str | None = None, *, collection: str | None = None, page_size: int = 1000
    ) -> RepairReport:
        """:meth:`Store.repair <fallthrough.store.Store.repair>`, as one call on one pool slot."""
        return await self._run(
            functools.partial(self._store.repair, batch_id, collection=collection, page_size=page_size)
        )

    async def purge_tombstones(
        self, older_than: timedelta | float, *, collection: str | None = None, page_size: int = 1000
    ) -> PurgeReport:
        """:meth:`Store.purge_tombstones <fallthrough.store.Store.purge_tombstones>`, as one call on one pool slot."""
        return await self._run(
            functools.partial(self._store.purge_tombstones, older_than, collection=collection, page_size=page_size)
        )

    # -- lifecycle ---------------------------------------------------------

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Refuse new calls, wait for those accepted to finish, then close the Store if this AsyncStore owns it.

        Calls already running or waiting for a slot run to their end (a
        call blocked on a hung server ends with the backend's own timeout),
        and so do the :meth:`keep_open` blocks under way: their later calls
        are still accepted, and the pool shuts down once every block has
        ended and every call with it. ``timeout`` is the Store's: how long
        its close may replay journaled writes. Closing twice waits for the
        first close; cancelling the caller leaves the close going on in its
        thread. In a forked child it does nothing: the pool and the Store
        are the parent's.

        :raises FallthroughError: called inside a :meth:`keep_open` block of
            this AsyncStore (or a task started in one, while it lasts),
            whose end the close would wait for.
        """
        checked = validation.check_timeout(timeout)
        if not self._owner.is_current():
            return
        closing = self._begin_close(checked, loop_blocked=None)
        await asyncio.shield(asyncio.wrap_future(closing))

    def close_sync(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """:meth:`close` for synchronous code: it blocks the calling thread until the close has ended.

        For a sync ``close()`` of an integration, which may be called from
        a thread running an event loop. That loop's :meth:`keep_open`
        blocks cannot end while this blocks it, so they are not waited for
        (waiting would deadlock): their calls already accepted run to their
        end, and their later calls are refused like anyone's. The blocks of
        other threads' loops are waited for, as by :meth:`close`, while
        those loops run (a block whose loop stops is cut). In async code
        await :meth:`close`, which leaves the loop free and so waits for
        every block.

        :raises FallthroughError: called inside a :meth:`keep_open` block of
            this AsyncStore, or in a call on its own pool (:meth:`run_sync`),
            which the close would wait for.
        """
        checked = validation.check_timeout(timeout)
        if not self._owner.is_current():
            return
        if getattr(self._pool_thread, "of_this_store", False):
            raise FallthroughError("close_sync() in a call of this AsyncStore would wait for that call: await close()")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        self._begin_close(checked, loop_blocked=running).result()

    def _begin_close(
        self, timeout: float, *, loop_blocked: asyncio.AbstractEventLoop | None
    ) -> concurrent.futures.Future[None]:
        """Refuse new calls, start the close on its own thread (once), and return its future.

        :param loop_blocked: a loop the caller is about to block until the
            close ends: its blocks stop being waited for (nor honoured).
        """
        with self._submit_lock:
            if self._holds_live_block():
                raise FallthroughError(
                    "close() inside keep_open() would wait for its own block to end (an async generator "
                    "suspended inside a block counts as inside it until it is closed: contextlib.aclosing)"
                )
            self._closed = True
            if loop_blocked is not None:
                # Cut, not waited for: a block of the blocked loop cannot run to its end. Cutting it also
                # lets a close already waiting (begun by an async close() elsewhere) go on.
                self._cut({block for block in self._live_blocks if block.loop is loop_blocked})
            if self._closing is None:
                self._closing = _in_own_thread(
                    functools.partial(self._finish, timeout), "fallthrough-aio-close", daemon=False
                )
            return self._closing

    def _finish(self, timeout: float) -> None:
        with self._blocks_ended:
            # No block can begin from here on: new ones are refused, and a nested one needs a live block.
            while self._live_blocks:
                # A block whose loop has stopped (or closed) cannot go on until someone runs that loop
                # again, which may be never (the thread that ran it is the one waiting for this close):
                # it is cut, as close_sync cuts its own loop's.
                self._cut({block for block in self._live_blocks if not block.loop.is_running()})
                self._blocks_ended.wait(_STALLED_LOOP_CHECK)
        self._executor.shutdown(wait=True)
        if self._close_store:
            self._store.close(timeout)

    def keep_open(self) -> AbstractAsyncContextManager[None]:
        """A block of several calls that make one operation, which a :meth:`close` waits for, whole.

        For an integration whose one operation is several calls (pages read
        and written one at a time; a read, then a write)::

            async with store.keep_open():
                async for document in store.documents(collection):
                    ...

        A close that begins during the block refuses everyone else's new
        calls, but still accepts the block's (its task's, those of tasks it
        starts and of blocks nested in it), and shuts the pool only once
        the block has ended; so a close does not cut the operation in two.
        The block's mark dies with it: a task it started, or a page
        iterator it made, is refused like anyone once the block has ended
        and a close has begun. A block that never ends holds the close for
        as long, while its loop runs; a close from inside the block is
        refused, as it would wait for itself. :meth:`close_sync` on the
        block's own loop does not wait for it (it could not end), nor does
        any close once that loop has stopped.

        :raises FallthroughError: the AsyncStore is closed or closing, and
            this block is not nested in one of its blocks under way.
        """
        return _KeepOpen(self)

    def _enter_block(self) -> _Block:
        self._owner.check()
        block = _Block(asyncio.get_running_loop())
        with self._submit_lock:
            if self._closed and not self._holds_live_block():
                raise FallthroughError("this AsyncStore is closed")
            self._live_blocks.add(block)
        _BLOCKS.set((*(marked for marked in _BLOCKS.get() if marked.live), block))
        return block

    def _exit_block(self, block: _Block) -> None:
        # The context may differ from the one entered (an async generator resumed by another task): drop only
        # this block's mark from it. A copy left elsewhere is harmless (the token is no longer live), and is
        # dropped from that context when it next enters a block.
        _BLOCKS.set(tuple(marked for marked in _BLOCKS.get() if marked is not block))
        with self._blocks_ended:
            self._cut({block})  # already cut if its loop stopped or was blocked by close_sync

    def _cut(self, blocks: set[_Block]) -> None:
        """End ``blocks`` for the close (lock held): their marks stop counting, and the close stops waiting for them."""
        if blocks:
            for block in blocks:
                block.live = False
            self._live_blocks -= blocks
            self._blocks_ended.notify_all()

    def _holds_live_block(self) -> bool:
        """Whether the current context is inside a block of this AsyncStore still under way (lock held)."""
        return any(block in self._live_blocks for block in _BLOCKS.get())

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- batches and records -----------------------------------------------

    async def create_batch(
        self,
        keys: Iterable[str],
        *,
        batch_id: uuid.UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Batch:
        """:meth:`Store.create_batch <fallthrough.store.Store.create_batch>`.

        ``keys`` is read on the pool's thread: a generator is fine, an async
        iterable is not (collect it first, or create the batch and
        :meth:`add_records` chunk by chunk).
        """
        return await self._run(functools.partial(self._store.create_batch, keys, batch_id=batch_id, metadata=metadata))

    async def add_records(self, batch_id: uuid.UUID | str, keys: Iterable[str]) -> int:
        """:meth:`Store.add_records <fallthrough.store.Store.add_records>`; ``keys`` as for :meth:`create_batch`."""
        return await self._run(functools.partial(self._store.add_records, batch_id, keys))

    async def update(
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
        """:meth:`Store.update <fallthrough.store.Store.update>`."""
        return await self._run(
            functools.partial(
                self._store.update,
                batch_id,
                key,
                status,
                result=result,
                error=error,
                attempt=attempt,
                write_concern=write_concern,
            )
        )

    async def update_many(
        self, updates: Iterable[RecordUpdate], *, write_concern: WriteConcern | str | None = None
    ) -> int:
        """:meth:`Store.update_many <fallthrough.store.Store.update_many>`."""
        return await self._run(functools.partial(self._store.update_many, updates, write_concern=write_concern))

    async def retry(self, batch_id: uuid.UUID | str) -> int:
        """:meth:`Store.retry <fallthrough.store.Store.retry>`."""
        return await self._run(functools.partial(self._store.retry, batch_id))

    async def delete_batch(self, batch_id: uuid.UUID | str) -> bool:
        """:meth:`Store.delete_batch <fallthrough.store.Store.delete_batch>`."""
        return await self._run(functools.partial(self._store.delete_batch, batch_id))

    async def get_batch(self, batch_id: uuid.UUID | str) -> Batch | None:
        """:meth:`Store.get_batch <fallthrough.store.Store.get_batch>`."""
        return await self._run(functools.partial(self._store.get_batch, batch_id))

    async def get_record(self, batch_id: uuid.UUID | str, key: str) -> Record | None:
        """:meth:`Store.get_record <fallthrough.store.Store.get_record>`."""
        return await self._run(functools.partial(self._store.get_record, batch_id, key))

    async def progress(self, batch_id: uuid.UUID | str) -> Progress:
        """:meth:`Store.progress <fallthrough.store.Store.progress>`."""
        return await self._run(functools.partial(self._store.progress, batch_id))

    def records(
        self,
        batch_id: uuid.UUID | str,
        *,
        status: Status | str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[Record]:
        """:meth:`Store.records <fallthrough.store.Store.records>` as an async iterator, a page per pool call.

        Nothing is read until the first ``async for`` step, so bad
        arguments and an unknown batch raise there, not here.
        """
        return _Pages(
            self, functools.partial(self._store.records, batch_id, status=status, page_size=page_size), page_size
        )

    async def claim(
        self, batch_id: uuid.UUID | str, *, worker: str, limit: int = 1, lease: float = DEFAULT_LEASE
    ) -> list[Record]:
        """:meth:`Store.claim <fallthrough.store.Store.claim>`.

        A cancelled claim that had started may have taken records: they come
        back to be claimed when their lease runs out.
        """
        return await self._run(functools.partial(self._store.claim, batch_id, worker=worker, limit=limit, lease=lease))

    async def extend_leases(
        self, batch_id: uuid.UUID | str, keys: Iterable[str], *, worker: str, lease: float = DEFAULT_LEASE
    ) -> int:
        """:meth:`Store.extend_leases <fallthrough.store.Store.extend_leases>`."""
        return await self._run(functools.partial(self._store.extend_leases, batch_id, keys, worker=worker, lease=lease))

    def batches(self, *, limit: int | None = None, page_size: int = DEFAULT_BATCH_PAGE) -> AsyncIterator[BatchProgress]:
        """:meth:`Store.batches <fallthrough.store.Store.batches>` as an async iterator, a page per pool call.

        Nothing is read until the first ``async for`` step.
        """
        return _Pages(self, functools.partial(self._store.batches, limit=limit, page_size=page_size), page_size)

    # -- documents ---------------------------------------------------------

    async def upsert_documents(
        self, collection: str, documents: Iterable[Document], *, write_concern: WriteConcern | str | None = None
    ) -> None:
        """:meth:`Store.upsert_documents <fallthrough.store.Store.upsert_documents>`."""
        await self._run(
            functools.partial(self._store.upsert_documents, collection, documents, write_concern=write_concern)
        )

    async def delete_documents(
        self, collection: str, ids: Iterable[str], *, write_concern: WriteConcern | str | None = None
    ) -> int:
        """:meth:`Store.delete_documents <fallthrough.store.Store.delete_documents>`."""
        return await self._run(
            functools.partial(self._store.delete_documents, collection, ids, write_concern=write_concern)
        )

    async def get_documents(self, collection: str, ids: Iterable[str]) -> list[Document]:
        """:meth:`Store.get_documents <fallthrough.store.Store.get_documents>`."""
        return await self._run(functools.partial(self._store.get_documents, collection, ids))

    async def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        with_vectors: bool = False,
    ) -> SearchResult:
        """:meth:`Store.search <fallthrough.store.Store.search>`."""
        return await self._run(
            functools.partial(
                self._store.search,
                collection,
                text=text,
                vector=vector,
                filter=filter,
                limit=limit,
                with_vectors=with_vectors,
            )
        )

    # -- collections --------------------------------------------------------

    async def collections(self) -> list[str]:
        """:meth:`Store.collections <fallthrough.store.Store.collections>`."""
        return await self._run(self._store.collections)

    async def count(self, collection: str, filter: Mapping[str, Any] | None = None) -> int:
        """:meth:`Store.count <fallthrough.store.Store.count>`."""
        return await self._run(functools.partial(self._store.count, collection, filter))

    def documents(
        self, collection: str, *, filter: Mapping[str, Any] | None = None, page_size: int = DEFAULT_DOCUMENT_PAGE
    ) -> AsyncIterator[Document]:
        """:meth:`Store.documents <fallthrough.store.Store.documents>` as an async iterator, a page per pool call.

        Nothing is read until the first ``async for`` step.
        """
        pages = functools.partial(self._store.documents, collection, filter=filter, page_size=page_size)
        return _Pages(self, pages, page_size)

    async def drop_collection(self, collection: str, *, write_concern: WriteConcern | str | None = None) -> bool:
        """:meth:`Store.drop_collection <fallthrough.store.Store.drop_collection>`."""
        return await self._run(functools.partial(self._store.drop_collection, collection, write_concern=write_concern))

    # -- the pool ------------------------------------------------------------

    async def _run(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the pool and wait for it without blocking the loop.

        The call runs in a copy of the caller's context (its contextvars:
        tracing, request ids). Cancelling the caller cancels a call that
        has not started; one that has runs to its end, and its outcome is
        dropped.
        """
        return await asyncio.wrap_future(self._submit(call))

    def _submit(self, call: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Hand ``call`` to the pool; a pool thread runs it once fewer than :attr:`max_concurrency` calls run.

        The gate, not the pool's size, bounds the calls, because the bound
        may fall while calls wait (a backend declares its ``parallel_calls``
        when it opens). The future returned stays pending until the call
        passes the gate, so cancelling it before then means it never runs.
        """
        # In a forked child the pool has no threads and the lock may be held for good: refuse first.
        self._owner.check()
        queued = _Call(concurrent.futures.Future(), contextvars.copy_context(), call)
        with self._submit_lock:
            if self._closed and not self._holds_live_block():
                raise FallthroughError("this AsyncStore is closed")
            try:
                self._executor.submit(self._execute, queued)
            except RuntimeError:  # the pool was shut down under us: at the interpreter's exit, say
                raise FallthroughError("this AsyncStore is closed (its thread pool has shut down)") from None
        return queued.future

    def _execute(self, queued: _Call[Any]) -> None:
        """On a pool thread: wait at the gate, run one call in its caller's context, settle its future."""
        self._pool_thread.of_this_store = True
        future = queued.future
        with self._gate:
            self._gate.wait_for(lambda: future.cancelled() or self._running < self.max_concurrency)
            if not future.set_running_or_notify_cancel():
                return  # cancelled while it waited: it never runs
            self._running += 1
        try:
            result = queued.context.run(queued.call)
        except (StopIteration, StopAsyncIteration) as error:
            # An asyncio future cannot hold these (the awaiting coroutine would never wake),
            # as a generator cannot raise them (PEP 479): the same RuntimeError, the cause kept.
            wrapped = RuntimeError(f"the call raised {type(error).__name__}")
            wrapped.__cause__ = error
            future.set_exception(wrapped)
        except BaseException as error:
            future.set_exception(error)
        else:
            future.set_result(result)
        finally:
            with self._gate:
                self._running -= 1
                self._gate.notify_all()


@attrs.frozen
class _Call(Generic[T]):
    """A call waiting at (or past) an AsyncStore's gate: its future, its caller's contextvars, and the call."""

    future: concurrent.futures.Future[T]
    context: contextvars.Context
    call: Callable[[], T]


class _Block:
    """The token of one :meth:`AsyncStore.keep_open` block: honoured while it is in its AsyncStore's live set."""

    __slots__ = ("live", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        """The loop the block runs on: a close that blocks this loop, or finds it stopped, does not wait for it."""
        self.live = True
        """False once it ended or was cut: a context holding its mark drops it at its next block."""


_STALLED_LOOP_CHECK = 0.05
"""Seconds between a close's looks for blocks whose loop has stopped, while it waits for blocks to end."""

_BLOCKS: contextvars.ContextVar[tuple[_Block, ...]] = contextvars.ContextVar("fallthrough_aio_blocks", default=())
"""The keep_open blocks this context is inside (copied into the tasks it starts), of any AsyncStore."""


class _KeepOpen(AbstractAsyncContextManager[None]):
    """What :meth:`AsyncStore.keep_open` returns; entering and leaving never suspend, so a coroutine closed
    without being resumed (a task destroyed pending) still ends its block."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._block: _Block | None = None

    async def __aenter__(self) -> None:
        if self._block is not None:
            raise RuntimeError("a keep_open() block cannot be entered twice; call keep_open() again")
        self._block = self._store._enter_block()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._block is not None:
            self._store._exit_block(self._block)


def _log_abandoned_build(future: concurrent.futures.Future[Any]) -> None:
    error = None if future.cancelled() else future.exception()
    if error is not None:  # connect's own errors: built by the core, secrets masked
        logger.warning("a cancelled connect_async failed to build its Store: %s: %s", type(error).__name__, error)


def _retrieve_quietly(future: asyncio.Future[Any]) -> None:
    """Read a settled future's outcome, so that asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _hinted_concurrency(capabilities: Iterable[Capabilities | None]) -> int:
    """The smallest ``parallel_calls`` among ``capabilities`` (None: not opened yet), at most the default 8.

    What :attr:`AsyncStore.max_concurrency` is when the caller did not set it.
    """
    hints = [c.parallel_calls for c in capabilities if c is not None and c.parallel_calls is not None]
    return min([DEFAULT_MAX_CONCURRENCY, *hints])


class _Pages(AsyncIterator[T], Generic[T]):
    """An async iterator over a Store iterator, advanced on the pool a page at a time.

    Each step on the pool takes ``page_size`` items from the Store's
    iterator, which reads one page for them (the first step also makes the
    iterator, so its argument checks and first read happen there). A step
    whose awaiting caller was cancelled is not lost: the next ``__anext__``
    waits for it and uses its page, so the Store's iterator is never
    advanced by two threads at once and no item is skipped. Tasks sharing
    one iterator each get distinct items: of the callers waiting for one
    read, only the first installs its page, and the others take the items
    after the one it took (or wait for the next read).
    """

    def __init__(self, owner: AsyncStore, start: Callable[[], Iterator[T]], page_size: object) -> None:
        self._owner = owner
        self._start = start
        # A bad page_size is refused by the Store on the first step; any chunk size serves until then.
        self._chunk = (
            page_size if isinstance(page_size, int) and not isinstance(page_size, bool) and page_size > 0 else 1
        )
        self._iterator: Iterator[T] | None = None
        self._buffer: list[T] = []
        self._position = 0
        self._exhausted = False
        self._pending: asyncio.Future[list[T]] | None = None

    def __aiter__(self) -> _Pages[T]:
        return self

    async def __anext__(self) -> T:
        while self._position >= len(self._buffer):
            if self._exhausted:
                raise StopAsyncIteration
            if self._pending is None:
                self._pending = asyncio.wrap_future(self._owner._submit(self._step))
            pending = self._pending
            try:
                page = await asyncio.shield(pending)  # cancelled: the step goes on, and the next call waits for it
            except asyncio.CancelledError:
                raise
            except BaseException:
                if self._pending is pending:
                    self._pending = None
                    self._exhausted = True
                raise  # every caller that waited for the failed read hears of it
            if self._pending is not pending:
                continue  # another caller waiting for the same read installed its page: take the next item
            self._pending = None
            self._buffer, self._position = page, 0
            if len(page) < self._chunk:
                self._exhausted = True
        item = self._buffer[self._position]
        self._position += 1
        return item

    def _step(self) -> list[T]:
        if self._iterator is None:
            self._iterator = self._start()
        return list(itertools.islice(self._iterator, self._chunk))


def _check_max_concurrency(max_concurrency: object) -> None:
    if max_concurrency is None:
        return
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise InvalidInput(f"max_concurrency must be None or an int, got {max_concurrency!r}")
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(f"max_concurrency must be between 1 and {MAX_CONCURRENCY}, got {max_concurrency}")


def _in_own_thread(call: Callable[[], None], name: str, *, daemon: bool) -> concurrent.futures.Future[None]:
    """Run ``call`` on a thread of its own (not a pool's: the pool may be full, or shutting down).

    :param daemon: whether the interpreter may exit with the call unfinished.
        A close is not a daemon: its caller may have been cancelled and the
        program be ending, and a close cut short leaves journaled writes
        unreplayed. It is bounded (its timeout, and the backends' own) once
        the :meth:`AsyncStore.keep_open` blocks under way have ended, which
        it waits for while their loops run.
    """
    future: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            call()
        except BaseException as error:
            future.set_exception(error)
        else:
            future.set_result(None)

    threading.Thread(target=run, name=name, daemon=daemon).start()
    return future


async def connect_async(
    *urls: str | URL,
    max_concurrency: int | None = None,
    search_order: Sequence[str] | None = None,
    breaker: BreakerPolicy | None = None,
    plugins: Sequence[object] = (),
    registry: Registry | None = None,
    journal: Journal | str | URL | None = None,
    journal_policy: JournalPolicy | None = None,
    write_concern: WriteConcern | str = WriteConcern.ALL,
    max_lag: int = DEFAULT_MAX_LAG,
    **named_urls: str | URL,
) -> AsyncStore:
    """Open a Store as :func:`~fallthrough.store.connect` does, and wrap it in an :class:`AsyncStore` that owns it.

    The Store is built on a thread of its own (building one may import a
    driver and open a journal file), so this too leaves the loop free.
    Closing the AsyncStore closes the Store.

    :param max_concurrency: how many calls run at once at most; None (the
        default) follows the backends' ``parallel_calls``, as
        :class:`AsyncStore` says.
    :raises InvalidInput: ``max_concurrency`` or an option of ``connect`` is out of range.
    """
    _check_max_concurrency(max_concurrency)
    built: list[Store] = []
    opening = functools.partial(
        connect,
        *urls,
        search_order=search_order,
        breaker=breaker,
        plugins=plugins,
        registry=registry,
        journal=journal,
        journal_policy=journal_policy,
        write_concern=write_concern,
        max_lag=max_lag,
        **named_urls,
    )
    # A daemon: a build its caller left need not hold the interpreter's exit (nothing is written yet).
    building = _in_own_thread(lambda: built.append(opening()), "fallthrough-aio-connect", daemon=True)
    waited = asyncio.wrap_future(building)
    try:
        await asyncio.shield(waited)
    except asyncio.CancelledError:
        # The caller is gone; the Store it would have got is closed once it exists, not left open,
        # and a build that failed is logged once, not reported by asyncio as never retrieved.
        # A build that ended before this task resumed runs the callback at once, here on the
        # loop's thread: the close (a replay, a pool's disposal) goes to a thread of its own.
        def close_built(_: object) -> None:
            for store in built:
                _in_own_thread(store.close, "fallthrough-aio-close", daemon=False)

        building.add_done_callback(close_built)
        # Logged from the build's own future, in its thread: the caller's loop may have ended by then
        # (asyncio.run returned), and a callback on the loop's future would never run.
        building.add_done_callback(_log_abandoned_build)
        waited.add_done_callback(_retrieve_quietly)
        raise
    return AsyncStore(built[0], max_concurrency=max_concurrency, close_store=True)


__all__ = ["DEFAULT_MAX_CONCURRENCY", "MAX_CONCURRENCY", "AsyncStore", "connect_async"]
