"""A backend whose outages a test switches on and off.

:class:`FaultInjectingBackend` puts a gate in front of every hook of another
backend: the reference model by default, or any installed backend named by
the ``inner`` query option (or, for a subclass, a backend object passed as
``inner``). The gate has an optional hook (the purge, the two dimension
hooks) only where its inner backend has it. It is registered like any
plugin, through the public registry, so router tests exercise the real
routing code::

    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    store = fallthrough.connect("flaky://?inner=sqlite://", "sqlite:///other.db", registry=registry)
    flaky = store.plugin_manager.get_plugin("flaky")
    flaky.outage = True        # every hook now raises BackendUnavailable

More query options shape it: ``text_only=1`` declares text and filter search
but no vector search, like PostgreSQL without pgvector; ``records_only=1``
declares no documents at all (and no claims); ``no_claims=1`` declares what the
inner backend does, less claims.

An ``inner`` URL that holds a secret (a password, a common secret option or
one the inner backend declares) is shown masked whole, ``inner=***``, in the
Store's repr, its health and its messages.

A gate can also *hold* calls: after ``hold("fallthrough_search")`` every
search waits inside the hook, before reaching the inner backend, until
``release()``; ``wait_held(n)`` lets a test wait until ``n`` calls are
waiting. Tests of callers that must not block (the asyncio API) or must
survive a cancelled call use it to have a call in flight for as long as
they need.

A gate can also fail some hooks only: ``failing.add("fallthrough_extend_leases")``
makes those calls raise ``BackendUnavailable`` while every other hook works.

A gate can also *slow* calls: ``delays["fallthrough_progress"] = 0.3`` makes
every progress call wait 0.3 s in the gate (``"*"`` for every hook), as a
store whose reads cost the collection does.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import cast
from urllib.parse import quote

import attrs
from sqlalchemy.engine import URL

from ..errors import BackendUnavailable
from ..filters import Filter
from ..hookspecs import hookimpl
from ..registry import Registry
from ..router import OPTIONAL_HOOKS
from ..store import Store, connect
from ..types import (
    Batch,
    BatchProgress,
    Capabilities,
    Document,
    Hit,
    Progress,
    Record,
    RecordUpdate,
    SearchQuery,
    Status,
    StoredDocument,
)
from ..urls import parse_url, secrets_of
from ..validation import JSON
from .model import ReferenceBackend


class FaultInjectingBackend:
    """Another backend behind a switchable outage, with a count of every hook call.

    :ivar inner: the backend behind the gate; tests read it directly to see
        what a store holds without going through the gate.
    :ivar outage: while true, every hook raises :class:`BackendUnavailable`.
    :ivar failing: names of hooks that raise :class:`BackendUnavailable`
        while the others work, as a store that fails one kind of statement
        (a lock it cannot get) does.
    :ivar error_message: the text of that error (a test may put a secret in
        it, as a careless driver might, to check the router redacts it).
    :ivar calls: how many times each hook was called, outages included.
    :ivar held: how many calls are waiting in a hold now.
    :ivar delays: seconds each call of a hook (``"*"``: of any hook without
        its own) waits in the gate before reaching the inner backend.
    """

    def __init__(self, url: URL | None = None, inner: object | None = None) -> None:
        """Build the gate; the registry calls it with the URL alone.

        :param url: the gate's URL, with the query options above.
        :param inner: a backend object to put behind the gate, for a subclass
            that builds its own (a plugin under development, say); not with
            the ``inner`` option.
        """
        query = url.query if url is not None else {}
        inner_url = query.get("inner")
        if inner is not None and inner_url:
            raise ValueError("give the inner backend as an object or as the inner URL option, not both")
        if inner is None:
            inner = Registry().create(str(inner_url)) if inner_url else ReferenceBackend()
        # Any backend has the reference model's hook methods (the optional ones aside); typed as it for the checker.
        self.inner = cast(ReferenceBackend, inner)
        self._inner_holds_secrets = bool(inner_url and secrets_of(parse_url(str(inner_url)), _declared(self.inner)))
        self.declared: Capabilities | None = None
        if query.get("records_only"):
            self.declared = Capabilities(records=True)
        elif query.get("text_only"):
            self.declared = Capabilities(records=True, documents=True, text_search=True, filter_search=True)
        self._no_claims = bool(query.get("no_claims"))
        self.outage = False
        self.failing: set[str] = set()
        self.error_message = "injected outage"
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()
        self._holding: frozenset[str] = frozenset()
        self._hold_changed = threading.Condition(self._calls_lock)
        self.held = 0
        self.delays: dict[str, float] = {}
        self._failures_due: Counter[str] = Counter()
        # An optional hook the inner backend lacks is hidden from pluggy (it registers routines only), so
        # the Store sees the gate lacking it too, as it would the inner backend alone: a purge or a repair
        # then leaves the gate out of that step rather than fail on the missing method.
        for hook in OPTIONAL_HOOKS:
            if not callable(getattr(self.inner, hook, None)):
                setattr(self, hook, None)

    def hold(self, *hooks: str) -> None:
        """Make calls of these hooks (every hook when none is named) wait in the gate until :meth:`release`.

        It replaces what was held: a call waiting for a hook no longer named goes on.
        """
        with self._hold_changed:
            self._holding = frozenset(hooks) if hooks else frozenset({"*"})
            self._hold_changed.notify_all()

    def release(self) -> None:
        """Let every held call, and every later one, through."""
        with self._hold_changed:
            self._holding = frozenset()
            self._hold_changed.notify_all()

    def fail_next(self, hook: str, count: int = 1) -> None:
        """Make the next ``count`` calls of ``hook`` raise :class:`BackendUnavailable`, the later ones work.

        Counted as calls reach the gate: a call waiting in a hold now is not one of them.
        """
        with self._calls_lock:
            self._failures_due[hook] += count

    def wait_held(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` calls are held; False when ``timeout`` seconds pass first."""
        with self._hold_changed:
            return self._hold_changed.wait_for(lambda: self.held >= count, timeout)

    def _gate(self, hook: str) -> None:
        with self._hold_changed:
            self.calls[hook] += 1
            failure_due = self._failures_due[hook] > 0
            if failure_due:
                self._failures_due[hook] -= 1
            if hook in self._holding or "*" in self._holding:
                self.held += 1
                self._hold_changed.notify_all()
                try:
                    self._hold_changed.wait_for(lambda: hook not in self._holding and "*" not in self._holding)
                finally:
                    # Also when the wait is interrupted (a KeyboardInterrupt in the main thread): it is held no more.
                    self.held -= 1
        delay = self.delays.get(hook, self.delays.get("*", 0.0))
        if delay > 0:
            time.sleep(delay)
        if self.outage or hook in self.failing or failure_due:
            raise BackendUnavailable(self.error_message)

    @hookimpl
    def fallthrough_secret_url_keys(self) -> Collection[str]:
        # The core masks only whole option values: an inner URL holding a secret is masked whole.
        return {"inner"} if self._inner_holds_secrets else ()

    @hookimpl
    def fallthrough_open(self) -> None:
        self._gate("fallthrough_open")
        self.inner.fallthrough_open()

    @hookimpl
    def fallthrough_close(self) -> None:
        self.inner.fallthrough_close()

    @hookimpl
    def fallthrough_ping(self) -> None:
        self._gate("fallthrough_ping")
        self.inner.fallthrough_ping()

    @hookimpl
    def fallthrough_capabilities(self) -> Capabilities:
        self._gate("fallthrough_capabilities")
        declared = self.declared or self.inner.fallthrough_capabilities()
        return attrs.evolve(declared, claims=False) if self._no_claims else declared

    @hookimpl
    def fallthrough_create_batch(
        self,
        batch_id: uuid.UUID,
        keys: Sequence[str],
        first_seq: int,
        metadata: Mapping[str, JSON],
        created_at: datetime,
    ) -> Batch:
        self._gate("fallthrough_create_batch")
        return self.inner.fallthrough_create_batch(batch_id, keys, first_seq, metadata, created_at)

    @hookimpl
    def fallthrough_add_records(
        self, batch_id: uuid.UUID, keys: Sequence[str], first_seq: int, created_at: datetime
    ) -> int:
        self._gate("fallthrough_add_records")
        return self.inner.fallthrough_add_records(batch_id, keys, first_seq, created_at)

    @hookimpl
    def fallthrough_delete_records(self, batch_id: uuid.UUID, keys: Sequence[str], seqs: Sequence[int]) -> int:
        self._gate("fallthrough_delete_records")
        return self.inner.fallthrough_delete_records(batch_id, keys, seqs)

    @hookimpl
    def fallthrough_update_records(
        self, updates: Sequence[RecordUpdate], updated_at: datetime
    ) -> Sequence[RecordUpdate]:
        self._gate("fallthrough_update_records")
        return self.inner.fallthrough_update_records(updates, updated_at)

    @hookimpl
    def fallthrough_retry_failed(self, batch_id: uuid.UUID, updated_at: datetime) -> Sequence[RecordUpdate]:
        self._gate("fallthrough_retry_failed")
        return self.inner.fallthrough_retry_failed(batch_id, updated_at)

    @hookimpl
    def fallthrough_delete_batch(self, batch_id: uuid.UUID) -> bool:
        self._gate("fallthrough_delete_batch")
        return self.inner.fallthrough_delete_batch(batch_id)

    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID) -> Batch | None:
        self._gate("fallthrough_get_batch")
        return self.inner.fallthrough_get_batch(batch_id)

    @hookimpl
    def fallthrough_get_record(self, batch_id: uuid.UUID, key: str) -> Record | None:
        self._gate("fallthrough_get_record")
        return self.inner.fallthrough_get_record(batch_id, key)

    @hookimpl
    def fallthrough_list_records(
        self, batch_id: uuid.UUID, status: Status | None, after: tuple[int, str] | None, limit: int
    ) -> Sequence[Record]:
        self._gate("fallthrough_list_records")
        return self.inner.fallthrough_list_records(batch_id, status, after, limit)

    @hookimpl
    def fallthrough_progress(self, batch_id: uuid.UUID) -> Progress:
        self._gate("fallthrough_progress")
        return self.inner.fallthrough_progress(batch_id)

    @hookimpl
    def fallthrough_list_batch_progress(
        self, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[BatchProgress]:
        self._gate("fallthrough_list_batch_progress")
        return self.inner.fallthrough_list_batch_progress(before, limit)

    @hookimpl
    def fallthrough_claim_records(
        self, batch_id: uuid.UUID, worker: str, limit: int, claimed_at: datetime, lease_until: datetime
    ) -> Sequence[Record]:
        self._gate("fallthrough_claim_records")
        return self.inner.fallthrough_claim_records(batch_id, worker, limit, claimed_at, lease_until)

    @hookimpl
    def fallthrough_extend_leases(
        self, batch_id: uuid.UUID, keys: Sequence[str], worker: str, now: datetime, lease_until: datetime
    ) -> Sequence[Record]:
        self._gate("fallthrough_extend_leases")
        return self.inner.fallthrough_extend_leases(batch_id, keys, worker, now, lease_until)

    @hookimpl
    def fallthrough_upsert_documents(self, collection: str, documents: Sequence[Document], version: int) -> None:
        self._gate("fallthrough_upsert_documents")
        self.inner.fallthrough_upsert_documents(collection, documents, version)

    @hookimpl
    def fallthrough_delete_documents(self, collection: str, ids: Sequence[str], version: int) -> int:
        self._gate("fallthrough_delete_documents")
        return self.inner.fallthrough_delete_documents(collection, ids, version)

    @hookimpl
    def fallthrough_get_documents(self, collection: str, ids: Sequence[str]) -> Sequence[Document]:
        self._gate("fallthrough_get_documents")
        return self.inner.fallthrough_get_documents(collection, ids)

    @hookimpl
    def fallthrough_search(self, collection: str, query: SearchQuery) -> Sequence[Hit]:
        self._gate("fallthrough_search")
        return self.inner.fallthrough_search(collection, query)

    @hookimpl
    def fallthrough_count_documents(self, collection: str, filter: Filter | None) -> int:
        self._gate("fallthrough_count_documents")
        return self.inner.fallthrough_count_documents(collection, filter)

    @hookimpl
    def fallthrough_list_documents(
        self, collection: str, filter: Filter | None, after: str | None, limit: int
    ) -> Sequence[Document]:
        self._gate("fallthrough_list_documents")
        return self.inner.fallthrough_list_documents(collection, filter, after, limit)

    @hookimpl
    def fallthrough_drop_collection(self, collection: str, version: int) -> bool:
        self._gate("fallthrough_drop_collection")
        return self.inner.fallthrough_drop_collection(collection, version)

    @hookimpl
    def fallthrough_list_live_collections(self) -> Sequence[str]:
        self._gate("fallthrough_list_live_collections")
        return self.inner.fallthrough_list_live_collections()

    @hookimpl
    def fallthrough_list_collections(self) -> Sequence[str]:
        self._gate("fallthrough_list_collections")
        return self.inner.fallthrough_list_collections()

    @hookimpl
    def fallthrough_scan_documents(self, collection: str, after: str | None, limit: int) -> Sequence[StoredDocument]:
        self._gate("fallthrough_scan_documents")
        return self.inner.fallthrough_scan_documents(collection, after, limit)

    @hookimpl
    def fallthrough_document_versions(self, collection: str, ids: Sequence[str]) -> Sequence[StoredDocument]:
        self._gate("fallthrough_document_versions")
        return self.inner.fallthrough_document_versions(collection, ids)

    @hookimpl
    def fallthrough_purge_tombstones(self, collection: str, before: int, limit: int) -> int:
        self._gate("fallthrough_purge_tombstones")
        return self.inner.fallthrough_purge_tombstones(collection, before, limit)

    @hookimpl
    def fallthrough_collection_dimension(self, collection: str) -> int | None:
        self._gate("fallthrough_collection_dimension")
        return self.inner.fallthrough_collection_dimension(collection)

    @hookimpl
    def fallthrough_fix_collection_dimension(self, collection: str, dimension: int) -> None:
        self._gate("fallthrough_fix_collection_dimension")
        self.inner.fallthrough_fix_collection_dimension(collection, dimension)

    @hookimpl
    def fallthrough_list_batches(self, after: uuid.UUID | None, limit: int) -> Sequence[Batch]:
        self._gate("fallthrough_list_batches")
        return self.inner.fallthrough_list_batches(after, limit)

    @hookimpl
    def fallthrough_get_records(self, batch_id: uuid.UUID, keys: Sequence[str]) -> Sequence[Record]:
        self._gate("fallthrough_get_records")
        return self.inner.fallthrough_get_records(batch_id, keys)

    @hookimpl
    def fallthrough_repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        self._gate("fallthrough_repair_batch")
        self.inner.fallthrough_repair_batch(batch_id, metadata, created_at)

    @hookimpl
    def fallthrough_merge_records(self, batch_id: uuid.UUID, records: Sequence[Record]) -> int:
        self._gate("fallthrough_merge_records")
        return self.inner.fallthrough_merge_records(batch_id, records)


def connect_with_a_text_only_fallback(inner: str = "sqlite://") -> Store:
    """A Store of two gated copies of ``inner``: ``flaky``, first, and ``textonly``, which cannot rank by vector.

    With ``store.plugin_manager.get_plugin("flaky").outage = True``, a vector
    search with a text or a filter is answered degraded by ``textonly``
    (``SearchResult.degraded``): what an adapter that hands hits on as the
    nearest documents must refuse. The registry is the Store's own.
    """
    registry = Registry()
    for name in ("flaky", "textonly"):
        registry.register(name, f"{__name__}:FaultInjectingBackend")
    gated = quote(inner, safe="")
    return connect(f"flaky://?inner={gated}", f"textonly://?inner={gated}&text_only=1", registry=registry)


def _declared(backend: object) -> Collection[str]:
    """The secret URL options ``backend`` declares, as the core would ask it."""
    declare = getattr(backend, "fallthrough_secret_url_keys", None)
    return (declare() or ()) if declare is not None else ()


__all__ = ["FaultInjectingBackend", "connect_with_a_text_only_fallback"]
