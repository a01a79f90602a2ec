"""``FallthroughDocumentStore``: a Haystack ``DocumentStore`` over one collection of a fallthrough Store."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import fallthrough
from fallthrough.errors import FilterError as FallthroughFilterError
from fallthrough.errors import InvalidInput
from fallthrough.urls import mask_url
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils import Secret, deserialize_secrets_inplace
from sqlalchemy.engine import make_url
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
        return self

    def close(self) -> None:
        """Close the Store this object opened (one given to :meth:`from_store` stays open)."""
        if self._owns_store:
            self.store.close()

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
        urls: list[str | dict[str, Any]] = []
        for index, url in enumerate(self._urls):
            if isinstance(url, Secret):
                urls.append(url.to_dict())
            elif _holds_secret(url):
                raise ValueError(
                    f"urls[{index}] holds a password or API key; give it as Secret.from_env_var(...) to serialise it"
                )
            else:
                urls.append(url)
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
        """How many documents the collection holds."""
        return _count(self.store, self.collection, None)

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """How many documents match ``filters`` (Haystack's filter syntax)."""
        return _count(self.store, self.collection, self._filter(filters))

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """Every document matching ``filters`` (Haystack's syntax), in id order (code points).

        :raises haystack.errors.FilterError: a filter that Haystack or
            fallthrough refuses (see :mod:`haystack_fallthrough.filters`).
        """
        return [
            to_haystack(document.id, document.text, document.vector, document.metadata)
            for document in self._documents(self._filter(filters))
        ]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Write documents; ``policy`` says what happens to an id already stored.

        ``NONE`` is ``FAIL``, as in Haystack's in-memory store. ``FAIL`` and
        ``SKIP`` read the ids first and then write: another writer in between
        is not seen (fallthrough has no conditional insert; the last upsert
        wins). An id repeated within the call counts as a duplicate of itself:
        ``FAIL`` refuses the call, ``SKIP`` keeps the first, ``OVERWRITE`` the
        last. Nothing is written when the call raises.

        :returns: how many documents were written.
        :raises DuplicateDocumentError: under ``FAIL``, an id already stored
            or repeated.
        :raises ValueError: not a list of Documents, or one fallthrough
            cannot keep (a blob, a sparse embedding, refused metadata).
        """
        if not isinstance(documents, list):
            raise InvalidInput(f"documents must be a list of haystack Documents, not {type(documents).__name__}")
        converted = [to_fallthrough(document, index) for index, document in enumerate(documents)]
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL
        if policy == DuplicatePolicy.OVERWRITE:
            chosen = list({document.id: document for document in converted}.values())
        else:
            chosen = list({document.id: document for document in reversed(converted)}.values())[::-1]
            stored = {found.id for found in self.store.get_documents(self.collection, [d.id for d in chosen])}
            if policy == DuplicatePolicy.FAIL:
                if stored:
                    raise DuplicateDocumentError(f"documents with ids {sorted(stored)[:10]} already exist")
                if len(chosen) < len(converted):
                    again = sorted(id for id, n in Counter(d.id for d in converted).items() if n > 1)
                    raise DuplicateDocumentError(f"documents with ids {again[:10]} repeat within the call")
            chosen = [document for document in chosen if document.id not in stored]
        if chosen:
            self.store.upsert_documents(self.collection, chosen)
        return len(chosen)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete documents by id; an id not stored is ignored, a repeated one counted once."""
        ids = list(dict.fromkeys(document_ids))
        if ids:
            self.store.delete_documents(self.collection, ids)

    # -- beyond the protocol (Haystack's extended mixins) -------------------

    def delete_all_documents(self) -> None:
        """Empty the collection (fallthrough's ``drop_collection``: a replicated, versioned write)."""
        drop = getattr(self.store, "drop_collection", None)
        if drop is not None:
            drop(self.collection)
            return
        # Until Store.drop_collection exists on this fallthrough: delete by id, page by page.
        self._delete_matching(None)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents matching ``filters``; returns how many.

        It reads the matching ids, then deletes them (two calls): a document
        written in between is not deleted.
        """
        return self._delete_matching(self._filter(filters))

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """Merge ``meta`` into the metadata of every document matching ``filters``; returns how many.

        A read followed by an upsert of whole documents: a write to one of
        them in between is overwritten.
        """
        if not isinstance(meta, dict):
            raise InvalidInput(f"meta must be a dict, not {type(meta).__name__}")
        updated = 0
        for page in _pages(self._documents(self._filter(filters)), 1000):
            changed = []
            for index, stored in enumerate(page):
                document = to_haystack(stored.id, stored.text, stored.vector, stored.metadata)
                changed.append(to_fallthrough(replace(document, meta={**document.meta, **meta}), index))
            self.store.upsert_documents(self.collection, changed)
            updated += len(changed)
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
        embedding take part.
        """
        if top_k == 0:
            return []
        filter = self._filter(filters)
        if return_embedding and _searches_with_vectors(self.store):
            # Typed loosely until Store.search(with_vectors=) and Hit.vector (issue 11) are on main.
            search: Any = self.store.search
            result = search(self.collection, vector=query_embedding, filter=filter, limit=top_k, with_vectors=True)
            vectors = {hit.id: getattr(hit, "vector", None) for hit in result}
        else:
            result = self.store.search(self.collection, vector=query_embedding, filter=filter, limit=top_k)
            vectors = {}
            if return_embedding:  # a fallthrough without Hit.vector: one more read
                found = self.store.get_documents(self.collection, [hit.id for hit in result])
                vectors = {document.id: document.vector for document in found}
        return [
            to_haystack(
                hit.id,
                hit.text,
                vectors.get(hit.id),
                hit.metadata,
                (hit.score + 1) / 2 if scale_score else hit.score,
            )
            for hit in result
        ]

    # -- helpers ------------------------------------------------------------

    def _filter(self, filters: dict[str, Any] | None) -> Filter | None:
        translated = translate(filters)
        if translated is not None:
            try:
                fallthrough.filters.parse_filter(translated)
            except FallthroughFilterError as error:
                raise FilterError(str(error)) from None
        return translated

    def _documents(self, filter: Filter | None) -> Iterator[fallthrough.Document]:
        documents = getattr(self.store, "documents", None)
        if documents is not None:
            found: Iterator[fallthrough.Document] = documents(self.collection, filter=filter)
            return found
        return iter(_documents_by_search(self.store, self.collection, filter))

    def _delete_matching(self, filter: Filter | None) -> int:
        deleted = 0
        for page in _pages(self._documents(filter), 1000):
            deleted += self.store.delete_documents(self.collection, [document.id for document in page])
        return deleted


def _holds_secret(url: str) -> bool:
    """Whether fallthrough would mask part of ``url`` (a password, an API key) in a repr or a message."""
    try:
        return MASK in mask_url(make_url(url))
    except ArgumentError:  # unparsable: never write out what cannot be checked
        return True


MASK = "***"


def _searches_with_vectors(store: fallthrough.Store) -> bool:
    return "with_vectors" in inspect.signature(store.search).parameters


def _pages(documents: Iterator[fallthrough.Document], size: int) -> Iterator[list[fallthrough.Document]]:
    # Materialise before writing: a keyset iterator must not see the writes it causes.
    every = list(documents)
    for start in range(0, len(every), size):
        yield every[start : start + size]


def _count(store: fallthrough.Store, collection: str, filter: Filter | None) -> int:
    count = getattr(store, "count", None)
    if count is not None:
        found: int = count(collection, filter=filter)
        return found
    return len(_documents_by_search(store, collection, filter))


_SEARCH_CAP = 10_000


def _documents_by_search(
    store: fallthrough.Store, collection: str, filter: Filter | None
) -> list[fallthrough.Document]:
    """Before ``Store.documents``/``Store.count`` (issue 11): a filter-only search lists ids in id order, to its cap."""
    hits = store.search(collection, filter=filter, limit=_SEARCH_CAP)
    if len(hits) >= _SEARCH_CAP:
        raise InvalidInput(f"more than {_SEARCH_CAP} documents match: this fallthrough has no Store.documents to page")
    return store.get_documents(collection, [hit.id for hit in hits])
