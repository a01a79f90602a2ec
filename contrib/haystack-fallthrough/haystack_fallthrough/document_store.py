"""``FallthroughDocumentStore``: a Haystack ``DocumentStore`` over one collection of a fallthrough Store."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import fallthrough
from fallthrough import Registry
from fallthrough.errors import FilterError as FallthroughFilterError
from fallthrough.errors import InvalidInput
from fallthrough.registry import default_registry
from fallthrough.types import check_search_count
from fallthrough.urls import mask_url
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils import Secret, deserialize_secrets_inplace
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .convert import to_fallthrough, to_haystack
from .filters import Filter, translate

DEFAULT_COLLECTION = "haystack"


class FallthroughDocumentStore:
    """Haystack documents kept in one collection of a fallthrough Store.

    Reads go to the first store that is up and up to date, writes to every
    store (or to the journal for those down): fallthrough's routing, unchanged
    (docs/semantics.md, "Routing"). Build it from URLs, in priority order::

        FallthroughDocumentStore(["qdrant://qdrant:6333", Secret.from_env_var("PG_URL")], collection="docs")

    A URL with a password or API key must be a :class:`haystack.utils.Secret`
    (from an environment variable) for :meth:`to_dict` to serialise it; a
    plain string with a secret in it is refused there, never written out.
    Or wrap a Store you opened yourself with :meth:`from_store` (then
    :meth:`to_dict` cannot describe it, and :meth:`close` leaves it open).

    Every method has an ``_async`` twin (``count_documents_async``, ...,
    ``embedding_retrieval_async``) for Haystack's async pipelines, run over
    :attr:`async_store`, a :class:`fallthrough.AsyncStore` wrapping the same
    Store: each call on a thread of its own pool, never on the event loop.

    :param urls: backend URLs, in priority order (strings or Secrets).
    :param collection: the fallthrough collection that holds the documents.
    :param connect_options: keyword arguments for :func:`fallthrough.connect`
        (``journal``, ``write_concern``, ``search_order``, ...), JSON values only.
    """

    def __init__(
        self,
        urls: Sequence[str | Secret] = ("sqlite://",),
        *,
        collection: str = DEFAULT_COLLECTION,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(urls, str | Secret):
            urls = [urls]
        self._urls = list(urls)
        self._connect_options = dict(connect_options or {})
        self.collection = collection  # checked by the Store at the first call (docs/semantics.md, "Documents")
        resolved = [url.resolve_value() if isinstance(url, Secret) else url for url in self._urls]
        if any(url is None for url in resolved):
            raise InvalidInput("a Secret given as a URL resolved to nothing (is its environment variable set?)")
        self.store: fallthrough.Store = fallthrough.connect(*[str(url) for url in resolved], **self._connect_options)
        self._owns_store = True
        self.async_store = fallthrough.AsyncStore(self.store, close_store=True)

    @classmethod
    def from_store(cls, store: fallthrough.Store, *, collection: str = DEFAULT_COLLECTION) -> FallthroughDocumentStore:
        """A document store over an open Store, which stays the caller's to close."""
        if not isinstance(store, fallthrough.Store):
            raise InvalidInput(f"store must be a fallthrough.Store, not {type(store).__name__}")
        self = cls.__new__(cls)
        self._urls = []
        self._connect_options = {}
        self.collection = collection
        self.store = store
        self._owns_store = False
        self.async_store = fallthrough.AsyncStore(store, close_store=False)
        return self

    async_store: fallthrough.AsyncStore
    """The Store for the ``_async`` methods: an AsyncStore over :attr:`store`, with a thread pool of its own
    (threads start at the first async call)."""

    def close(self) -> None:
        """Wait for the async calls under way, each ``_async`` method whole, then close the Store this object
        opened (one given to :meth:`from_store` stays open).

        A method of several store calls (``update_by_filter_async`` and
        ``delete_by_filter_async`` write a page at a time,
        ``write_documents_async`` reads then writes) runs to its end: the
        close refuses other new calls, and waits for the method's last page.

        Callable from inside a running event loop too (it blocks it, like any
        sync call), with one exception to the above: the ``_async`` methods
        of that same loop cannot go on while it is blocked, so they are not
        waited for (that would deadlock). Their store calls already running
        end, and their next call raises ``FallthroughError``, the pages
        before it written. In async code, ``await close_async()`` waits for
        them too.
        """
        self.async_store.close_sync()

    async def close_async(self) -> None:
        """:meth:`close` for async code: the event loop stays free while the methods under way end, each whole.

        :raises fallthrough.FallthroughError: called from inside one of this
            store's ``_async`` methods, which the close would wait for.
        """
        await self.async_store.close()

    def __repr__(self) -> str:
        return f"FallthroughDocumentStore({self.store!r}, collection={self.collection!r})"

    # -- serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Serialise the URLs, collection and connect options.

        :raises ValueError: the store came from :meth:`from_store`, or a URL
            given as a plain string holds a password or API key (give it as
            ``Secret.from_env_var(...)``; a token Secret refuses too).
        """
        if not self._owns_store:
            raise ValueError("a FallthroughDocumentStore made with from_store() wraps a Store it cannot describe")
        registry = self._connect_options.get("registry") or default_registry
        urls: list[str | dict[str, Any]] = []
        for index, url in enumerate(self._urls):
            if isinstance(url, Secret):
                urls.append(url.to_dict())
            elif _holds_secret(url, registry):
                raise ValueError(
                    f"urls[{index}] holds a password or API key; give it as Secret.from_env_var(...) to serialise it"
                )
            else:
                urls.append(url)
        for name, value in self._connect_options.items():
            # A named URL (connect's keyword arguments) is a URL too.
            if isinstance(value, str) and "://" in value and _holds_secret(value, registry):
                raise ValueError(
                    f"connect_options[{name!r}] holds a password or API key; "
                    "give the URL in urls, as Secret.from_env_var(...), to serialise it"
                )
        return default_to_dict(self, urls=urls, collection=self.collection, connect_options=self._connect_options)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FallthroughDocumentStore:
        """Rebuild a store from :meth:`to_dict`'s output (Secrets read from their environment variables)."""
        parameters = data.get("init_parameters", {})
        urls = parameters.get("urls", [])
        parameters["urls"] = [Secret.from_dict(url) if isinstance(url, dict) else url for url in urls]
        deserialize_secrets_inplace(parameters, keys=[])
        store: FallthroughDocumentStore = default_from_dict(cls, data)
        return store

    # -- the DocumentStore protocol ----------------------------------------

    def count_documents(self) -> int:
        """How many documents the collection holds (``Store.count``, counted by the store that serves it)."""
        return self.store.count(self.collection)

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """How many documents match ``filters`` (Haystack's filter syntax), counted natively."""
        return self.store.count(self.collection, self._filter(filters))

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Every document matching ``filters`` (Haystack's syntax), in id order (code points).

        Read through ``Store.documents``, a keyset page of :data:`PAGE_SIZE`
        at a time, so no collection is too large to list.

        :raises haystack.errors.FilterError: a filter that Haystack or
            fallthrough refuses (see :mod:`haystack_fallthrough.filters`).
        """
        filter = self._filter(filters)
        return [_to_haystack(document) for document in self.store.documents(self.collection, filter=filter)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write documents; ``policy`` says what happens to an id already stored.

        ``NONE`` is ``FAIL``, as in Haystack's in-memory store. ``FAIL`` and
        ``SKIP`` read the ids first and then write: another writer in between
        is not seen (fallthrough has no conditional insert; the last upsert
        wins). An id repeated within the call counts as a duplicate of itself:
        ``FAIL`` refuses the call, ``SKIP`` keeps the first, ``OVERWRITE`` the
        last. Nothing is written when the call raises.

        :returns: how many documents were written, as Haystack's in-memory
            store counts them (under ``OVERWRITE``, every one given).
        :raises DuplicateDocumentError: under ``FAIL``, an id already stored
            or repeated.
        :raises ValueError: not a list of Documents, or one fallthrough
            cannot keep (a blob, a sparse embedding, refused metadata).
        """
        plan = _WritePlan.of(documents, policy)
        stored = {found.id for found in self.store.get_documents(self.collection, plan.ids)} if plan.reads else set()
        chosen = plan.chosen(stored)
        if chosen:
            self.store.upsert_documents(self.collection, chosen)
        return plan.written(chosen)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete documents by id; an id not stored is ignored, a repeated one counted once."""
        if document_ids:
            self.store.delete_documents(self.collection, document_ids)

    # -- beyond the protocol (Haystack's extended mixins) -------------------

    def delete_all_documents(self) -> None:
        """Empty the collection: ``Store.drop_collection``, one replicated, versioned write.

        A store that is down gets the drop from the journal, and a write made
        before the drop and replayed after it cannot bring a document back
        (docs/semantics.md, "Versions and tombstones"). The collection keeps
        its vector dimension, so there is no index to recreate.
        """
        self.store.drop_collection(self.collection)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents matching ``filters``; returns how many.

        Each page of matching documents is read, then its ids deleted (two
        calls per page): a document written in between is not deleted.
        """
        matching = self.store.documents(self.collection, filter=self._narrowing(filters), page_size=PAGE_SIZE)
        return sum(
            self.store.delete_documents(self.collection, [document.id for document in page])
            for page in _pages(matching)
        )

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge ``meta`` into the metadata of every document matching ``filters``; returns how many.

        Every match is first merged and checked, a page at a time, writing
        nothing: a document the merge cannot store (another client's key one
        ``#datetime`` shadow too long, say) refuses the call before any is
        updated. Then each page is read again and upserted whole with the
        merged metadata: a write to one of them in between is overwritten.
        """
        _check_meta(meta)
        filter = self._narrowing(filters)
        for page in _pages(self.store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)):
            _merged(page, meta)
        updated = 0
        for page in _pages(self.store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)):
            self.store.upsert_documents(self.collection, _merged(page, meta))
            updated += len(page)
        return updated

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
    ) -> list[Document]:
        """The ``top_k`` documents nearest ``query_embedding``, best first.

        ``score`` is the cosine similarity (-1 to 1, on every backend), or
        ``(similarity + 1) / 2`` with ``scale_score``. Only documents with an
        embedding take part. With ``return_embedding`` the search asks for
        the vectors (``with_vectors``) in the same call.
        """
        if check_search_count(top_k, "top_k") == 0:
            return []
        result = self.store.search(
            self.collection,
            vector=query_embedding,
            filter=self._filter(filters),
            limit=top_k,
            with_vectors=return_embedding,
        )
        # A degraded answer (not ranked by the vector) raises rather than pass for the top_k nearest.
        return [_hit_to_haystack(hit, scale_score) for hit in result.ranked()]

    # -- asyncio: the same methods over fallthrough.AsyncStore ---------------

    async def count_documents_async(self) -> int:
        """:meth:`count_documents`, off the event loop."""
        return await self.async_store.count(self.collection)

    async def count_documents_by_filter_async(self, filters: dict[str, Any]) -> int:
        """:meth:`count_documents_by_filter`, off the event loop."""
        return await self.async_store.count(self.collection, self._filter(filters))

    async def filter_documents_async(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """:meth:`filter_documents`, a page per pool call, each page converted on the pool too (``run_sync``)."""
        filter = self._filter(filters)
        found: list[Document] = []
        async with self.async_store.keep_open():  # a close meanwhile waits for the last page
            matching = self.async_store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)
            async for page in _async_pages(matching):
                found.extend(await self.async_store.run_sync(_to_haystack_page, page))
        return found

    async def write_documents_async(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """:meth:`write_documents`, off the event loop (the same policies, the same read-then-write caveat).

        The documents are converted and checked on the AsyncStore's pool too
        (``run_sync``): for a few thousand embeddings that is hundreds of
        milliseconds of Python.
        """
        async with self.async_store.keep_open():  # a close meanwhile waits for the write
            plan = await self.async_store.run_sync(_WritePlan.of, documents, policy)
            stored = (
                {found.id for found in await self.async_store.get_documents(self.collection, plan.ids)}
                if plan.reads
                else set()
            )
            chosen = plan.chosen(stored)
            if chosen:
                await self.async_store.upsert_documents(self.collection, chosen)
        return plan.written(chosen)

    async def delete_documents_async(self, document_ids: list[str]) -> None:
        """:meth:`delete_documents`, off the event loop."""
        if document_ids:
            await self.async_store.delete_documents(self.collection, document_ids)

    async def delete_all_documents_async(self) -> None:
        """:meth:`delete_all_documents`, off the event loop."""
        await self.async_store.drop_collection(self.collection)

    async def delete_by_filter_async(self, filters: dict[str, Any]) -> int:
        """:meth:`delete_by_filter`, off the event loop."""
        filter = self._narrowing(filters)
        deleted = 0
        async with self.async_store.keep_open():  # a close meanwhile waits for the last page: none is left undone
            matching = self.async_store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)
            async for page in _async_pages(matching):
                deleted += await self.async_store.delete_documents(self.collection, [document.id for document in page])
        return deleted

    async def update_by_filter_async(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """:meth:`update_by_filter`, off the event loop: the same check of every match first."""
        _check_meta(meta)
        filter = self._narrowing(filters)
        updated = 0
        async with self.async_store.keep_open():  # a close meanwhile waits for the last page: none is left undone
            checking = self.async_store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)
            async for page in _async_pages(checking):
                await self.async_store.run_sync(_merged, page, meta)
            matching = self.async_store.documents(self.collection, filter=filter, page_size=PAGE_SIZE)
            async for page in _async_pages(matching):
                merged = await self.async_store.run_sync(_merged, page, meta)
                await self.async_store.upsert_documents(self.collection, merged)
                updated += len(page)
        return updated

    async def embedding_retrieval_async(
        self,
        query_embedding: list[float],
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
    ) -> list[Document]:
        """:meth:`embedding_retrieval`, off the event loop."""
        if check_search_count(top_k, "top_k") == 0:
            return []
        # Two pool calls: a close meanwhile waits for both, as for any one call.
        async with self.async_store.keep_open():
            result = await self.async_store.search(
                self.collection,
                vector=query_embedding,
                filter=self._filter(filters),
                limit=top_k,
                with_vectors=return_embedding,
            )
            # A degraded answer (not ranked by the vector) raises rather than pass for the top_k nearest.
            hits = result.ranked()
            # Thousands of hits, with their embeddings, take the loop tens of milliseconds to convert: on the pool.
            return await self.async_store.run_sync(_hits_to_haystack, hits, scale_score)

    # -- helpers ------------------------------------------------------------

    def _narrowing(self, filters: dict[str, Any] | None) -> Filter | None:
        """The filter of a filter-wide write; an empty one would reach every document, and Haystack refuses it."""
        if not filters:
            raise FilterError(
                f"an empty filter ({filters!r}) matches every document; to delete them all, call delete_all_documents()"
            )
        return self._filter(filters)

    def _filter(self, filters: dict[str, Any] | None) -> Filter | None:
        translated = translate(filters)
        if translated is not None:
            try:
                fallthrough.filters.parse_filter(translated)
            except FallthroughFilterError as error:
                raise FilterError(str(error)) from None
        return translated


PAGE_SIZE = 1000
"""Documents read per page, and written back per call, by the filter-wide methods (``Store.documents``' default)."""


@dataclass(frozen=True)
class _WritePlan:
    """What a ``write_documents`` call writes, apart from the one read (the ids already stored) that it may need.

    Shared by the sync and the async method, so the policies cannot drift
    apart; everything here is checked before anything is read or written.
    """

    documents: list[fallthrough.Document]
    """The converted documents, in call order (repeats kept)."""
    policy: DuplicatePolicy
    """FAIL, SKIP or OVERWRITE (NONE taken as FAIL)."""

    @classmethod
    def of(cls, documents: object, policy: DuplicatePolicy) -> _WritePlan:
        if not isinstance(documents, list):
            raise InvalidInput(f"documents must be a list of haystack Documents, not {type(documents).__name__}")
        converted = [to_fallthrough(document, index) for index, document in enumerate(documents)]
        return cls(converted, DuplicatePolicy.FAIL if policy == DuplicatePolicy.NONE else policy)

    @property
    def reads(self) -> bool:
        """Whether the policy needs the ids already stored (OVERWRITE does not)."""
        return self.policy != DuplicatePolicy.OVERWRITE and bool(self.documents)

    @property
    def ids(self) -> list[str]:
        """The distinct ids, in first-seen order."""
        return list(dict.fromkeys(document.id for document in self.documents))

    def chosen(self, stored: set[str]) -> list[fallthrough.Document]:
        """The documents to upsert, given the ids already ``stored``.

        :raises DuplicateDocumentError: under FAIL, an id stored or repeated.
        """
        if self.policy == DuplicatePolicy.OVERWRITE:  # the last of a repeated id wins
            return list({document.id: document for document in self.documents}.values())
        first = list({document.id: document for document in reversed(self.documents)}.values())[::-1]
        if self.policy == DuplicatePolicy.FAIL:
            if stored:
                raise DuplicateDocumentError(f"documents with ids {sorted(stored)[:10]} already exist")
            if len(first) < len(self.documents):
                again = sorted(id for id, n in Counter(d.id for d in self.documents).items() if n > 1)
                raise DuplicateDocumentError(f"documents with ids {again[:10]} repeat within the call")
        return [document for document in first if document.id not in stored]

    def written(self, chosen: list[fallthrough.Document]) -> int:
        """What ``write_documents`` returns once ``chosen`` is upserted, counted as Haystack's in-memory store counts.

        Under OVERWRITE that is every document given, a repeated id once for
        each time it was written over; otherwise the documents not skipped.
        """
        return len(self.documents) if self.policy == DuplicatePolicy.OVERWRITE else len(chosen)


def _to_haystack(document: fallthrough.Document) -> Document:
    return to_haystack(document.id, document.text, document.vector, document.metadata)


def _to_haystack_page(page: list[fallthrough.Document]) -> list[Document]:
    return [_to_haystack(document) for document in page]


def _hit_to_haystack(hit: fallthrough.Hit, scale_score: bool) -> Document:
    # hit.vector is None unless the search asked for vectors (return_embedding).
    score = (hit.score + 1) / 2 if scale_score else hit.score
    return to_haystack(hit.id, hit.text, hit.vector, hit.metadata, score)


def _check_meta(meta: object) -> None:
    if not isinstance(meta, dict):
        raise InvalidInput(f"meta must be a dict, not {type(meta).__name__}")


def _merged(page: list[fallthrough.Document], meta: dict[str, Any]) -> list[fallthrough.Document]:
    """``page`` with ``meta`` merged into each document's metadata (top-level keys replaced, as Haystack does)."""
    changed = []
    for index, stored in enumerate(page):
        document = _to_haystack(stored)
        changed.append(to_fallthrough(replace(document, meta={**document.meta, **meta}), index))
    return changed


def _pages(documents: Iterator[fallthrough.Document]) -> Iterator[list[fallthrough.Document]]:
    """``documents`` a page at a time.

    Writing a page before reading the next is safe: ``Store.documents``
    reads each page after the last id of the one before, so a write to
    those ids is never read again, and a document rewritten or deleted
    is neither repeated nor skipped.
    """
    while page := list(itertools.islice(documents, PAGE_SIZE)):
        yield page


async def _async_pages(documents: AsyncIterator[fallthrough.Document]) -> AsyncIterator[list[fallthrough.Document]]:
    """:func:`_pages` for an async iterator."""
    page: list[fallthrough.Document] = []
    async for document in documents:
        page.append(document)
        if len(page) == PAGE_SIZE:
            yield page
            page = []
    if page:
        yield page


def _hits_to_haystack(hits: Sequence[fallthrough.Hit], scale_score: bool) -> list[Document]:
    return [_hit_to_haystack(hit, scale_score) for hit in hits]


def _holds_secret(url: str, registry: Registry) -> bool:
    """Whether fallthrough would mask part of ``url`` (a password, an API key) in a repr or a message.

    Its plugin's own secret options count too (PostgreSQL's ``scram_client_key``): the plugin is built, with no
    I/O, to ask for them. Where that cannot be told, every option counts, for nothing unchecked is written out.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:  # unparsable: never write out what cannot be checked
        return True
    return MASK in mask_url(parsed, _declared_secret_keys(parsed, registry))


def _declared_secret_keys(url: URL, registry: Registry) -> Collection[str]:
    """The secret URL options ``url``'s plugin declares; all of them where that cannot be told."""
    try:
        return registry.declared_secret_keys(url)
    except fallthrough.FallthroughError:
        return tuple(url.query)


MASK = "***"
