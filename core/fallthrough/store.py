"""The Store: the public API, and the router that falls through between backends.

Every public method validates its arguments whole, stamps writes (see
:mod:`fallthrough.clock`), then hands one hook call to the backends:

* a read goes to the first backend, in order, that is available and able;
  only :class:`~fallthrough.errors.BackendUnavailable` moves it to the next;
* a write goes to every able backend in order. The first backend that
  answers decides the outcome: if it applies the write, the call succeeds
  and any backend that does not apply it is counted as having missed it;
  if it rejects the write (not found, invalid), the error propagates and no
  later backend is called.

The order is the order of the URLs given to :func:`connect` (and, for
search, ``search_order``). See ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pluggy
from sqlalchemy.engine import URL

from . import hookspecs, validation
from .breaker import BreakerPolicy, CircuitBreaker
from .clock import Stamper
from .errors import (
    AllBackendsFailed,
    BackendUnavailable,
    FallthroughError,
    InvalidInput,
    PluginError,
    UnsupportedQuery,
)
from .filters import parse_filter
from .registry import Registry, default_registry
from .types import (
    BackendHealth,
    Batch,
    Capabilities,
    Document,
    Progress,
    Record,
    RecordUpdate,
    SearchQuery,
    SearchResult,
    Status,
)
from .urls import backend_name, mask_url, parse_url, redact, secrets_of

logger = logging.getLogger("fallthrough")

T = TypeVar("T")

# Hooks may return any sequence (list, tuple); checked with isinstance.
_ANY_SEQUENCE: type[Sequence[Any]] = Sequence  # type: ignore[type-abstract]

DEFAULT_URL = "sqlite://"
DEFAULT_PAGE_SIZE = 1000

_LIFECYCLE_HOOKS = ("fallthrough_open", "fallthrough_close", "fallthrough_ping", "fallthrough_capabilities")
_RECORD_HOOKS = (
    "fallthrough_create_batch",
    "fallthrough_add_records",
    "fallthrough_update_records",
    "fallthrough_retry_failed",
    "fallthrough_delete_batch",
    "fallthrough_get_batch",
    "fallthrough_get_record",
    "fallthrough_list_records",
    "fallthrough_progress",
)
_DOCUMENT_HOOKS = (
    "fallthrough_upsert_documents",
    "fallthrough_delete_documents",
    "fallthrough_get_documents",
    "fallthrough_search",
)
BACKEND_HOOKS = _LIFECYCLE_HOOKS + _RECORD_HOOKS + _DOCUMENT_HOOKS


class _Backend:
    """One configured backend and the router's view of it."""

    def __init__(self, name: str, url: URL, plugin: object, breaker: CircuitBreaker) -> None:
        self.name = name
        self.url = url
        self.masked_url = mask_url(url)
        self.plugin = plugin
        self.breaker = breaker
        self.callers: dict[str, Callable[..., Any]] = {}
        self.open_lock = threading.Lock()
        self.opened = False
        self.capabilities: Capabilities | None = None
        self.stats_lock = threading.Lock()
        self.missed_writes = 0
        self.last_error: str | None = None

    def able(self, capability: str) -> bool:
        return self.capabilities is not None and bool(getattr(self.capabilities, capability))


class Store:
    """Batch records and document search over backends that stand in for each other.

    Build one with :func:`connect`. A Store is thread-safe: batch workers
    share one. Close it when done, or use it as a context manager.
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
    ) -> None:
        if not urls:
            raise InvalidInput("a Store needs at least one backend URL")
        names = [name for name, _ in urls]
        if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
            raise InvalidInput(f"backend names must be distinct, non-empty strings, got {names}")
        registry = registry or default_registry
        policy = breaker or BreakerPolicy()
        self._stamper = stamper or Stamper()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._backends: list[_Backend] = []
        self._secrets: list[str] = []
        self._closed = False
        for name, raw_url in urls:
            url = parse_url(raw_url)
            self._secrets.extend(secrets_of(url))
            plugin = registry.create(url)
            try:
                self._pm.register(plugin, name=name)
            except (pluggy.PluginValidationError, ValueError) as error:
                raise PluginError(f"backend {name!r} ({mask_url(url)}): {self._redact(str(error))}") from None
            self._backends.append(_Backend(name, url, plugin, CircuitBreaker(policy)))
        for plugin in plugins:
            self._pm.register(plugin)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as error:
            raise PluginError(self._redact(str(error))) from None
        for backend in self._backends:
            others = [other.plugin for other in self._backends if other is not backend]
            backend.callers = {hook: self._pm.subset_hook_caller(hook, others) for hook in BACKEND_HOOKS}
        self._search_backends = self._order_for_search(search_order)

    def _order_for_search(self, search_order: Sequence[str] | None) -> list[_Backend]:
        if search_order is None:
            return list(self._backends)
        by_name = {backend.name: backend for backend in self._backends}
        if isinstance(search_order, str):
            raise InvalidInput("search_order must be a sequence of backend names, not a str")
        unknown = [name for name in search_order if name not in by_name]
        if unknown or len(set(search_order)) != len(search_order):
            raise InvalidInput(
                f"search_order must name distinct backends among {sorted(by_name)}, got {list(search_order)}"
            )
        listed = [by_name[name] for name in search_order]
        return listed + [backend for backend in self._backends if backend not in listed]

    # -- introspection -----------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The pluggy manager holding the backends; register hook wrappers or observers on it."""
        return self._pm

    @property
    def backend_names(self) -> list[str]:
        """The backends' names, in priority order for records."""
        return [backend.name for backend in self._backends]

    def health(self, *, ping: bool = False) -> list[BackendHealth]:
        """Each backend's state. With ``ping``, first ask each reachable one to answer."""
        if ping:
            for backend in self._backends:
                if backend.breaker.try_acquire():
                    self._attempt(backend, "fallthrough_ping", {}, {}, None)
        report = []
        for backend in self._backends:
            with backend.stats_lock:
                missed, last_error = backend.missed_writes, backend.last_error
            report.append(
                BackendHealth(
                    name=backend.name,
                    url=backend.masked_url,
                    state=backend.breaker.state,
                    last_error=last_error,
                    missed_writes=missed,
                    capabilities=backend.capabilities,
                )
            )
        return report

    def __repr__(self) -> str:
        inner = ", ".join(f"{backend.name}={backend.masked_url}" for backend in self._backends)
        return f"<Store {inner}>"

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close every backend. Errors are logged, not raised; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        for backend in self._backends:
            try:
                backend.callers["fallthrough_close"]()
            except Exception as error:
                logger.warning("closing backend %s failed: %s", backend.name, self._describe(error))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- batches and records -----------------------------------------------

    def create_batch(
        self,
        keys: Iterable[str],
        *,
        batch_id: uuid.UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Batch:
        """Create a batch with one pending record per key, in order.

        With the id of an existing batch this adds the keys that are new and
        leaves everything else as it was.
        """
        checked_keys = validation.check_unique_keys(keys)
        checked_id = uuid.uuid4() if batch_id is None else validation.check_batch_id(batch_id)
        checked_metadata = validation.check_json_object(metadata, "metadata")
        arguments = {
            "batch_id": checked_id,
            "keys": checked_keys,
            "first_seq": self._stamper.reserve_seq(len(checked_keys)),
            "metadata": checked_metadata,
            "created_at": self._stamper.now(),
        }
        return self._write("records", "fallthrough_create_batch", arguments, Batch)

    def add_records(self, batch_id: uuid.UUID | str, keys: Iterable[str]) -> int:
        """Append pending records; keys already in the batch are left untouched. Returns how many were added."""
        checked_keys = validation.check_unique_keys(keys)
        arguments = {
            "batch_id": validation.check_batch_id(batch_id),
            "keys": checked_keys,
            "first_seq": self._stamper.reserve_seq(len(checked_keys)),
            "created_at": self._stamper.now(),
        }
        return self._write("records", "fallthrough_add_records", arguments, int)

    def update(
        self,
        batch_id: uuid.UUID | str,
        key: str,
        status: Status | str,
        *,
        result: Any = None,
        error: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Move one record to ``status``; returns whether the update was newer and applied."""
        update = RecordUpdate(batch_id, key, status, result=result, error=error, attempt=attempt)
        return self.update_many([update]) == 1

    def update_many(self, updates: Iterable[RecordUpdate]) -> int:
        """Apply many updates at once; returns how many applied. One update per record per call."""
        checked = tuple(updates)
        seen: set[tuple[uuid.UUID, str]] = set()
        for index, update in enumerate(checked):
            if not isinstance(update, RecordUpdate):
                raise InvalidInput(f"updates[{index}] must be a RecordUpdate, not {type(update).__name__}")
            target = (update.batch_id, update.key)
            if target in seen:
                raise InvalidInput(f"updates name record {update.key!r} of batch {update.batch_id} more than once")
            seen.add(target)
        if not checked:
            return 0
        updated_at = self._stamper.now()
        arguments = {"updates": checked, "updated_at": updated_at}
        follow = self._replicate_updates(updated_at)
        return len(self._write("records", "fallthrough_update_records", arguments, _ANY_SEQUENCE, follow))

    def retry(self, batch_id: uuid.UUID | str) -> int:
        """Move failed records back to pending with ``attempt + 1``; returns how many."""
        updated_at = self._stamper.now()
        arguments = {"batch_id": validation.check_batch_id(batch_id), "updated_at": updated_at}
        follow = self._replicate_updates(updated_at)
        return len(self._write("records", "fallthrough_retry_failed", arguments, _ANY_SEQUENCE, follow))

    def delete_batch(self, batch_id: uuid.UUID | str) -> bool:
        """Delete a batch and its records; returns whether it existed."""
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._write("records", "fallthrough_delete_batch", arguments, bool)

    def get_batch(self, batch_id: uuid.UUID | str) -> Batch | None:
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._read("records", "fallthrough_get_batch", arguments, Batch, optional=True)[1]

    def get_record(self, batch_id: uuid.UUID | str, key: str) -> Record | None:
        arguments = {"batch_id": validation.check_batch_id(batch_id), "key": validation.check_key(key)}
        return self._read("records", "fallthrough_get_record", arguments, Record, optional=True)[1]

    def progress(self, batch_id: uuid.UUID | str) -> Progress:
        """Exact counts of the batch's records by status."""
        arguments = {"batch_id": validation.check_batch_id(batch_id)}
        return self._read("records", "fallthrough_progress", arguments, Progress)[1]

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
        limit = validation.check_limit(page_size, maximum=100_000)
        first_page = self._records_page(checked_id, checked_status, None, limit)
        return self._iterate_records(checked_id, checked_status, first_page, limit)

    def _records_page(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Record]:
        arguments = {"batch_id": batch_id, "status": status, "after": after, "limit": limit}
        return self._read("records", "fallthrough_list_records", arguments, _ANY_SEQUENCE)[1]

    def _iterate_records(
        self, batch_id: uuid.UUID, status: Status | None, page: Sequence[Record], limit: int
    ) -> Iterator[Record]:
        while True:
            yield from page
            if len(page) < limit:
                return
            last = page[-1]
            page = self._records_page(batch_id, status, (last.seq, last.key), limit)

    # -- documents ---------------------------------------------------------

    def upsert_documents(self, collection: str, documents: Iterable[Document]) -> None:
        """Insert or replace documents whole. All must share one vector dimension."""
        checked_collection = validation.check_collection(collection)
        checked = tuple(documents)
        ids: set[str] = set()
        dimensions: set[int] = set()
        for index, document in enumerate(checked):
            if not isinstance(document, Document):
                raise InvalidInput(f"documents[{index}] must be a Document, not {type(document).__name__}")
            if document.id in ids:
                raise InvalidInput(f"documents contain id {document.id!r} more than once")
            ids.add(document.id)
            if document.vector is not None:
                dimensions.add(len(document.vector))
        if len(dimensions) > 1:
            raise InvalidInput(f"documents mix vector dimensions {sorted(dimensions)}; a collection has one")
        if checked:
            arguments = {"collection": checked_collection, "documents": checked}
            self._write("documents", "fallthrough_upsert_documents", arguments, None)

    def delete_documents(self, collection: str, ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed."""
        arguments = {
            "collection": validation.check_collection(collection),
            "ids": validation.check_unique_keys(ids, "ids"),
        }
        return self._write("documents", "fallthrough_delete_documents", arguments, int)

    def get_documents(self, collection: str, ids: Iterable[str]) -> list[Document]:
        """Read documents by id; those not found are left out."""
        arguments = {
            "collection": validation.check_collection(collection),
            "ids": validation.check_unique_keys(ids, "ids"),
        }
        return list(self._read("documents", "fallthrough_get_documents", arguments, _ANY_SEQUENCE)[1])

    def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> SearchResult:
        """Search by vector (cosine), by text (every token present), by filter, or any mix.

        The first backend in search order that can evaluate the whole query
        serves it. When none that is available can, one that can serve all
        but the vector answers, and the result is marked ``degraded``.
        """
        checked_collection = validation.check_collection(collection)
        if text is not None:
            validation.check_string(text, "text")
        query = SearchQuery(
            vector=None if vector is None else validation.check_vector(vector),
            text=text,
            filter=parse_filter(filter),
            limit=validation.check_limit(limit),
        )
        if text is not None and not query.tokens:
            raise InvalidInput(f"text {text!r} has no letters or digits to search for")
        return self._search(checked_collection, query)

    def _search(self, collection: str, query: SearchQuery) -> SearchResult:
        self._check_open()
        needs = query.needs
        fallback_needs = needs - {"vector"}
        degraded_candidates: list[_Backend] = []
        causes: dict[str, BaseException] = {}
        for backend in self._search_backends:
            if not self._open_for(backend, "documents", causes):
                continue
            assert backend.capabilities is not None
            if not backend.capabilities.serves(needs):
                backend.breaker.release()
                if "vector" in needs and fallback_needs and backend.capabilities.serves(fallback_needs):
                    degraded_candidates.append(backend)
                continue
            arguments = {"collection": collection, "query": query}
            served, hits = self._attempt(backend, "fallthrough_search", arguments, causes, _ANY_SEQUENCE)
            if served:
                return SearchResult(tuple(hits), backend.name, degraded=False)
        if degraded_candidates:
            reduced = SearchQuery(vector=None, text=query.text, filter=query.filter, limit=query.limit)
            for backend in degraded_candidates:
                if not backend.breaker.try_acquire():
                    causes.setdefault(backend.name, BackendUnavailable("circuit breaker open"))
                    continue
                arguments = {"collection": collection, "query": reduced}
                served, hits = self._attempt(backend, "fallthrough_search", arguments, causes, _ANY_SEQUENCE)
                if served:
                    logger.warning("search on %r served by %s without its vector (degraded)", collection, backend.name)
                    return SearchResult(tuple(hits), backend.name, degraded=True)
        if causes:
            raise AllBackendsFailed("search", self._redacted(causes))
        raise UnsupportedQuery(
            f"no backend can serve a search using {sorted(needs)}; capabilities: {self._capability_summary()}"
        )

    def _attempt(
        self,
        backend: _Backend,
        hook: str,
        arguments: dict[str, Any],
        causes: dict[str, BaseException],
        expected: type[T] | None,
        *,
        optional: bool = False,
    ) -> tuple[bool, T]:
        """Call a backend whose breaker the caller acquired.

        Returns ``(True, result)``, or ``(False, None)`` when the backend was
        unavailable (recorded in ``causes``). Any other error propagates.
        """
        try:
            result = self._call(backend, hook, arguments)
        except BackendUnavailable as error:
            self._record_unavailable(backend, hook, error)
            causes[backend.name] = error
            return False, None  # type: ignore[return-value]
        except BaseException:
            backend.breaker.release()
            raise
        backend.breaker.record_success()
        return True, self._check_result(backend, hook, result, expected, optional=optional)

    def _capability_summary(self) -> str:
        return ", ".join(f"{backend.name}: {backend.capabilities or 'not opened'}" for backend in self._backends)

    # -- routing -----------------------------------------------------------

    def _read(
        self, capability: str, hook: str, arguments: dict[str, Any], expected: type[T], *, optional: bool = False
    ) -> tuple[str, T]:
        self._check_open()
        causes: dict[str, BaseException] = {}
        for backend in self._backends:
            if not self._open_for(backend, capability, causes):
                continue
            served, result = self._attempt(backend, hook, arguments, causes, expected, optional=optional)
            if served:
                return backend.name, result
        raise self._nobody_served(hook, capability, causes)

    def _write(
        self,
        capability: str,
        hook: str,
        arguments: dict[str, Any],
        expected: type[T] | None,
        follow: Callable[[T], tuple[str, dict[str, Any]] | None] | None = None,
    ) -> T:
        """Send a write to every able backend; the first to answer decides.

        ``follow``, given the first answer, says what the other backends get
        instead of the original call (for example, the updates that applied,
        pinned to their attempts), or None when there is nothing to send.
        """
        self._check_open()
        causes: dict[str, BaseException] = {}
        missed: list[tuple[_Backend, BaseException]] = []
        answered = False
        outcome: Any = None
        for backend in self._backends:
            if backend.opened and not backend.able(capability):
                continue
            if not self._open_for(backend, capability, causes):
                if backend.name in causes:
                    missed.append((backend, causes[backend.name]))
                continue
            try:
                result = self._call(backend, hook, arguments)
            except BackendUnavailable as error:
                self._record_unavailable(backend, hook, error)
                causes[backend.name] = error
                missed.append((backend, error))
                continue
            except Exception as error:
                backend.breaker.release()
                if not answered:
                    raise
                # A later store rejected what an earlier one applied: they
                # have diverged. The caller's write stands.
                missed.append((backend, error))
                continue
            backend.breaker.record_success()
            if answered:
                continue
            answered = True
            outcome = self._check_result(backend, hook, result, expected, optional=expected is None)
            if follow is not None:
                replication = follow(outcome)
                if replication is None:
                    missed.clear()  # nothing changed, so nothing was missed
                    break
                hook, arguments = replication
        if not answered:
            raise self._nobody_served(hook, capability, causes)
        for backend, reason in missed:
            self._record_missed(backend, hook, arguments, reason)
        return outcome  # type: ignore[no-any-return]

    def _replicate_updates(self, updated_at: datetime) -> Callable[[Any], tuple[str, dict[str, Any]] | None]:
        """What the other stores get after an update or a retry: the applied updates, pinned."""

        def follow(applied: Sequence[RecordUpdate]) -> tuple[str, dict[str, Any]] | None:
            if not applied:
                return None
            pinned = tuple(applied)
            if not all(isinstance(update, RecordUpdate) and update.attempt is not None for update in pinned):
                raise PluginError("a backend returned updates that are not RecordUpdates pinned to an attempt")
            return "fallthrough_update_records", {"updates": pinned, "updated_at": updated_at}

        return follow

    def _check_open(self) -> None:
        if self._closed:
            raise FallthroughError("this Store is closed")

    def _nobody_served(self, hook: str, capability: str, causes: dict[str, BaseException]) -> FallthroughError:
        if causes:
            return AllBackendsFailed(hook.removeprefix("fallthrough_"), self._redacted(causes))
        return UnsupportedQuery(f"no backend of this Store supports {capability}: {self._capability_summary()}")

    def _open_for(self, backend: _Backend, capability: str, causes: dict[str, BaseException]) -> bool:
        """Acquire the breaker and make sure the backend is open and able.

        True: the caller holds the breaker and must end with
        ``record_success``, ``record_failure`` or ``release``. False: skip
        it (``causes`` says why when it was unavailable).
        """
        if not backend.breaker.try_acquire():
            causes[backend.name] = BackendUnavailable(f"{backend.name}: circuit breaker open, skipped")
            return False
        try:
            self._ensure_open(backend)
        except BackendUnavailable as error:
            self._record_unavailable(backend, "fallthrough_open", error)
            causes[backend.name] = error
            return False
        except BaseException:
            backend.breaker.release()
            raise
        if not backend.able(capability):
            backend.breaker.release()
            return False
        return True

    def _ensure_open(self, backend: _Backend) -> None:
        if backend.opened:
            return
        with backend.open_lock:
            if backend.opened:
                return
            backend.callers["fallthrough_open"]()
            capabilities = backend.callers["fallthrough_capabilities"]()
            if not isinstance(capabilities, Capabilities):
                raise PluginError(
                    f"backend {backend.name!r}: fallthrough_capabilities returned {capabilities!r}, not a Capabilities"
                )
            self._check_hooks(backend, capabilities)
            backend.capabilities = capabilities
            backend.opened = True

    def _check_hooks(self, backend: _Backend, capabilities: Capabilities) -> None:
        implemented = {caller.name for caller in self._pm.get_hookcallers(backend.plugin) or ()}
        required = list(_LIFECYCLE_HOOKS)
        if capabilities.records:
            required += _RECORD_HOOKS
        if capabilities.documents:
            required += _DOCUMENT_HOOKS
        missing = [hook for hook in required if hook not in implemented]
        if missing:
            raise PluginError(
                f"backend {backend.name!r} declares {capabilities} but does not implement {', '.join(missing)}"
            )

    def _call(self, backend: _Backend, hook: str, arguments: dict[str, Any]) -> Any:
        self._ensure_open(backend)
        return backend.callers[hook](**arguments)

    def _check_result(
        self, backend: _Backend, hook: str, result: Any, expected: type[Any] | None, *, optional: bool = False
    ) -> Any:
        if expected is None or (optional and result is None) or isinstance(result, expected):
            return result
        raise PluginError(
            f"backend {backend.name!r}: {hook} returned {type(result).__name__}, expected {expected.__name__}"
        )

    def _record_unavailable(self, backend: _Backend, hook: str, error: BaseException) -> None:
        was_closed = backend.breaker.state == "closed"
        backend.breaker.record_failure()
        description = self._describe(error)
        with backend.stats_lock:
            backend.last_error = description
        logger.warning(
            "backend %s (%s) unavailable in %s: %s%s",
            backend.name,
            backend.masked_url,
            hook,
            description,
            "; circuit breaker opened" if was_closed and backend.breaker.state != "closed" else "",
        )

    def _record_missed(self, backend: _Backend, hook: str, arguments: Mapping[str, Any], error: BaseException) -> None:
        with backend.stats_lock:
            backend.missed_writes += 1
        logger.warning("backend %s missed a write (%s): %s", backend.name, hook, self._describe(error))
        self._pm.hook.fallthrough_missed_write(
            backend_name=backend.name, operation=hook, arguments=dict(arguments), error=error
        )

    def _describe(self, error: BaseException) -> str:
        return self._redact(f"{type(error).__name__}: {error}")

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _redacted(self, causes: Mapping[str, BaseException]) -> dict[str, BaseException]:
        """Causes whose text holds a secret are replaced by a redacted copy."""
        clean: dict[str, BaseException] = {}
        for name, error in causes.items():
            text = str(error)
            safe = self._redact(text)
            if safe == text:
                clean[name] = error
            else:
                replacement = BackendUnavailable(safe)
                replacement.__cause__ = None
                clean[name] = replacement
        return clean


def connect(
    *urls: str | URL,
    search_order: Sequence[str] | None = None,
    breaker: BreakerPolicy | None = None,
    plugins: Sequence[object] = (),
    registry: Registry | None = None,
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
    :raises UnknownBackend: no plugin serves a URL's scheme.
    :raises InvalidInput: a URL cannot be parsed, or a name repeats.
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
    return Store(named, search_order=search_order, breaker=breaker, plugins=plugins, registry=registry)


__all__ = ["Store", "connect"]
