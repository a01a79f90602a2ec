"""A backend and the reference model, called together.

:class:`Twin` is what the example-based suite's tests use, and what a plugin
author can use for tests of their own: every call goes to both, and their
answers must agree before the backend's is handed back::

    def test_something(twin):
        batch_id = twin.new_batch(["a", "b"])
        with pytest.raises(NotFound):  # both raised NotFound
            twin.call("fallthrough_progress", batch_id=uuid.uuid4())
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ..filters import parse_filter
from ..repair import DIMENSION_HOOKS
from ..types import Batch, Capabilities, Document, Hit, Record, SearchQuery, Status, StoredDocument, from_micros
from ..validation import JSON, check_limit, check_vector
from .compare import assert_same, assert_same_outcome, assert_same_set, assert_search_agrees
from .drivers import HookDriver, fresh_version
from .model import ReferenceBackend
from .stateful import EVERYTHING, walk_pages
from .strategies import BASE_SEQ


def at(offset: int) -> datetime:
    """The stamp ``offset`` microseconds after the suite's base time."""
    return from_micros(BASE_SEQ + offset)


class Twin:
    """An opened backend beside a fresh reference model.

    It remembers the batches and documents it wrote, and :meth:`clean_up`
    deletes them, so the suite can run against a store that outlives it.
    """

    def __init__(self, backend: HookDriver, capabilities: Capabilities) -> None:
        self.backend = backend
        self.capabilities = capabilities
        self.reference = HookDriver(ReferenceBackend(), "reference")
        self.reference.open()
        self._prefix = f"ft{uuid.uuid4().hex[:12]}"
        self._collections = 0
        self._batch_ids: list[uuid.UUID] = []
        self._written: dict[str, set[str]] = {}
        self._latest_version = BASE_SEQ

    def call(self, hook: str, **arguments: Any) -> Any:
        """Call ``hook`` on both; they must agree. Returns the backend's result, or raises its error."""
        expected = self.reference.outcome(hook, **arguments)
        actual = self.backend.outcome(hook, **arguments)
        assert_same_outcome(actual, expected, f"{self.backend.name}: {hook}")
        return actual.unwrap()

    # -- records -----------------------------------------------------------

    def new_batch(
        self,
        keys: Sequence[str],
        *,
        first_seq: int = BASE_SEQ,
        created_at: datetime | None = None,
        metadata: Mapping[str, JSON] | None = None,
    ) -> uuid.UUID:
        """Create a batch with a fresh id, as ``Store.create_batch`` would, and return the id."""
        batch_id = uuid.uuid4()
        self._batch_ids.append(batch_id)
        self.call(
            "fallthrough_create_batch",
            batch_id=batch_id,
            keys=tuple(keys),
            first_seq=first_seq,
            metadata=dict(metadata or {}),
            created_at=created_at or at(0),
        )
        return batch_id

    def batch(self, batch_id: uuid.UUID) -> Batch | None:
        result: Batch | None = self.call("fallthrough_get_batch", batch_id=batch_id)
        return result

    def record(self, batch_id: uuid.UUID, key: str) -> Record:
        """A record that must exist."""
        record = self.call("fallthrough_get_record", batch_id=batch_id, key=key)
        assert isinstance(record, Record), f"record {key!r} of batch {batch_id} is missing"
        return record

    def records(
        self,
        batch_id: uuid.UUID,
        *,
        status: Status | None = None,
        after: tuple[int, str] | None = None,
        limit: int = EVERYTHING,
    ) -> list[Record]:
        return list(self.call("fallthrough_list_records", batch_id=batch_id, status=status, after=after, limit=limit))

    def update(self, *updates: Any, at_time: datetime) -> int:
        """Apply updates stamped ``at_time``; returns how many applied (the applied updates must agree too)."""
        return len(self.call("fallthrough_update_records", updates=tuple(updates), updated_at=at_time))

    def repair_batch(self, batch_id: uuid.UUID, metadata: Mapping[str, JSON], created_at: datetime) -> None:
        """``fallthrough_repair_batch`` on both; the batch is deleted at clean-up like those of :meth:`new_batch`."""
        if batch_id not in self._batch_ids:
            self._batch_ids.append(batch_id)
        self.call("fallthrough_repair_batch", batch_id=batch_id, metadata=dict(metadata), created_at=created_at)

    def merge(self, batch_id: uuid.UUID, *records: Record) -> int:
        """``fallthrough_merge_records`` on both; returns how many records changed (both must agree)."""
        changed: int = self.call("fallthrough_merge_records", batch_id=batch_id, records=records)
        return changed

    def get_records(self, batch_id: uuid.UUID, *keys: str) -> list[Record]:
        return list(self.call("fallthrough_get_records", batch_id=batch_id, keys=keys))

    def all_batches(self, limit: int) -> list[Batch]:
        """Every batch this twin made, as both list them, paging ``limit`` at a time.

        The backend may hold batches of others (a persistent store), so its
        pages are walked to the end and only this twin's batches compared,
        as a set: the order is the backend's own. Each page must hold at
        most ``limit`` batches, and no batch may come twice.
        """
        where = f"{self.backend.name}: fallthrough_list_batches(limit={limit})"
        listed = walk_pages(
            functools.partial(self.backend.call, "fallthrough_list_batches", limit=limit),
            lambda batch: batch.id,
            limit,
            where,
        )
        expected = self.reference.call("fallthrough_list_batches", after=None, limit=EVERYTHING)
        mine = set(self._batch_ids)
        ours = [batch for batch in listed if batch.id in mine]
        assert_same_set(ours, expected, lambda batch: batch.id, where)
        return ours

    # -- documents ---------------------------------------------------------

    def new_collection(self) -> str:
        """A collection name no earlier run has used."""
        self._collections += 1
        return f"{self._prefix}-{self._collections}"

    def next_version(self) -> int:
        """A version newer than every one this twin has sent, as the core's stamper hands them out.

        Wall-clock based like :func:`~fallthrough.testing.drivers.fresh_version`, so that tests
        mixing the two still send their writes in order.
        """
        self._latest_version = max(self._latest_version + 1, fresh_version())
        return self._latest_version

    def _version(self, version: int | None) -> int:
        if version is None:
            return self.next_version()
        self._latest_version = max(self._latest_version, version)
        return version

    def upsert(self, collection: str, *documents: Document, version: int | None = None) -> None:
        """Upsert at ``version``, by default a new one newer than all before."""
        self._written.setdefault(collection, set()).update(document.id for document in documents)
        self.call(
            "fallthrough_upsert_documents", collection=collection, documents=documents, version=self._version(version)
        )

    def delete(self, collection: str, *ids: str, version: int | None = None) -> int:
        """Delete at ``version``, by default a new one newer than all before; returns how many live ones went."""
        self._written.setdefault(collection, set()).update(ids)
        deleted: int = self.call(
            "fallthrough_delete_documents", collection=collection, ids=ids, version=self._version(version)
        )
        return deleted

    def entries(self, collection: str, *ids: str) -> list[StoredDocument]:
        """``fallthrough_document_versions``: the stored entries, tombstones included, in the order asked."""
        return list(self.call("fallthrough_document_versions", collection=collection, ids=ids))

    def scan(self, collection: str, limit: int) -> list[StoredDocument]:
        """Every entry of a collection, walking the backend's pages of ``limit``; compared as a set."""
        where = f"{self.backend.name}: fallthrough_scan_documents({collection!r}, limit={limit})"
        listed = walk_pages(
            functools.partial(self.backend.call, "fallthrough_scan_documents", collection=collection, limit=limit),
            lambda entry: entry.id,
            limit,
            where,
        )
        expected = self.reference.call(
            "fallthrough_scan_documents", collection=collection, after=None, limit=EVERYTHING
        )
        assert_same_set(listed, expected, lambda entry: entry.id, where)
        return listed

    def collections(self) -> list[str]:
        """The collections this twin wrote that the backend lists: sorted, distinct, and the model's."""
        return self._names("fallthrough_list_collections")

    def live_collections(self) -> list[str]:
        """``fallthrough_list_live_collections``, this twin's names: sorted, distinct, and the model's."""
        return self._names("fallthrough_list_live_collections")

    def _names(self, hook: str) -> list[str]:
        """The collection names ``hook`` lists that are this twin's, checked against the model's."""
        listed = list(self.backend.call(hook))
        where = f"{self.backend.name}: {hook}()"
        assert all(isinstance(name, str) for name in listed), f"{where}: not all str: {listed!r}"
        assert listed == sorted(set(listed)), f"{where}: not sorted and distinct: {listed!r}"
        ours = [name for name in listed if name.startswith(f"{self._prefix}-")]
        assert_same(ours, self.reference.call(hook), where)
        return ours

    def count(self, collection: str, filter: Mapping[str, Any] | None = None) -> int:
        """``fallthrough_count_documents`` on both; they must agree."""
        counted: int = self.call("fallthrough_count_documents", collection=collection, filter=parse_filter(filter))
        return counted

    def documents(self, collection: str, filter: Mapping[str, Any] | None = None, *, page_size: int) -> list[Document]:
        """Every live matching document, walked page by page; each page must be the model's page."""
        parsed = parse_filter(filter)
        found: list[Document] = []
        after: str | None = None
        while True:
            page = list(
                self.call(
                    "fallthrough_list_documents", collection=collection, filter=parsed, after=after, limit=page_size
                )
            )
            found.extend(page)
            if len(page) < page_size:
                return found
            after = page[-1].id

    def drop(self, collection: str, *, version: int | None = None) -> bool:
        """Drop at ``version``, by default a new one newer than all before; whether a live document went."""
        removed: bool = self.call("fallthrough_drop_collection", collection=collection, version=self._version(version))
        return removed

    def purge(self, collection: str, *, before: int, limit: int = 1000) -> int:
        """``fallthrough_purge_tombstones`` on both; they must agree on how many tombstones went."""
        assert self.backend.implements("fallthrough_purge_tombstones"), (
            f"{self.backend.name} does not implement fallthrough_purge_tombstones. The hook is optional: a backend "
            f"that keeps its tombstones for good opts out of the purge tests with @conformance_skip(reason=...)"
        )
        purged: int = self.call("fallthrough_purge_tombstones", collection=collection, before=before, limit=limit)
        return purged

    def dimension(self, collection: str) -> int | None:
        """``fallthrough_collection_dimension`` on both; they must agree."""
        self._require_dimension_hooks()
        dimension: int | None = self.call("fallthrough_collection_dimension", collection=collection)
        return dimension

    def fix_dimension(self, collection: str, dimension: int) -> None:
        """``fallthrough_fix_collection_dimension`` on both; they must agree (both raise, or neither)."""
        self._require_dimension_hooks()
        self.call("fallthrough_fix_collection_dimension", collection=collection, dimension=dimension)

    def _require_dimension_hooks(self) -> None:
        missing = [hook for hook in DIMENSION_HOOKS if not self.backend.implements(hook)]
        assert not missing, (
            f"{self.backend.name} does not implement {', '.join(missing)}. The two hooks are optional: a backend "
            f"whose repair does not carry dimensions opts out of their tests with @conformance_skip(reason=...)"
        )

    def get(self, collection: str, *ids: str) -> list[Document]:
        return list(self.call("fallthrough_get_documents", collection=collection, ids=ids))

    def search(
        self,
        collection: str,
        *,
        vector: Sequence[float] | None = None,
        text: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """Search both, validated as the Store validates; the hits must agree as :mod:`.compare` defines."""
        query = SearchQuery(
            vector=None if vector is None else check_vector(vector),
            text=text,
            filter=parse_filter(filter),
            limit=check_limit(limit),
            with_vectors=with_vectors,
        )
        expected = self.reference.outcome("fallthrough_search", collection=collection, query=query)
        actual = self.backend.outcome("fallthrough_search", collection=collection, query=query)
        where = f"{self.backend.name}: fallthrough_search({collection!r}, {query!r})"
        if expected.error is not None or actual.error is not None:
            assert_same_outcome(actual, expected, where)
            actual.unwrap()
        every_match = self.reference.call(
            "fallthrough_search", collection=collection, query=attrs.evolve(query, limit=EVERYTHING)
        )
        assert_search_agrees(actual.value, query, every_match, where=where)
        return list(actual.value)

    # -- cleanup -----------------------------------------------------------

    def clean_up(self) -> None:
        """Delete what this twin wrote to the backend."""
        if self.capabilities.records:
            for batch_id in self._batch_ids:
                self.backend.call("fallthrough_delete_batch", batch_id=batch_id)
        if self.capabilities.documents:
            for collection, ids in self._written.items():
                self.backend.call(
                    "fallthrough_delete_documents",
                    collection=collection,
                    ids=tuple(sorted(ids)),
                    version=self.next_version(),
                )


__all__ = ["Twin", "at"]
