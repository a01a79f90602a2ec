"""``FallthroughVectorStore``: LangChain's ``VectorStore`` interface over a fallthrough ``Store``.

One LangChain vector store is one fallthrough collection. The adapter turns
texts into vectors with the caller's ``Embeddings``, and everything else is
the Store's: which store answers, falling through when one is down, the
replication of writes, the metadata rules (nested dicts included) and the
filter language (``docs/semantics.md`` of fallthrough). It adds no state of
its own beyond the collection's name and its async pool.

Scores. ``similarity_search_with_score`` returns fallthrough's own score, the
cosine similarity in [-1, 1] (higher is better). The relevance scores LangChain
asks to be in [0, 1] (``similarity_search_with_relevance_scores``) are
``(1 + cosine) / 2``: LangChain's own ``_cosine_relevance_score_fn`` is
``1 - distance``, which for a cosine distance in [0, 2] gives [-1, 1], outside
the range its interface promises; the affine map keeps the order and
the promise.

Async. Every ``a…`` method awaits the same call on a ``fallthrough.AsyncStore``
over the same Store: a thread pool of this vector store's own, bounded by
``max_concurrency``, never asyncio's default executor. Embeddings go through
the caller's ``aembed_*``.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Self

import fallthrough
import numpy as np
from fallthrough import AsyncStore, FallthroughError, InvalidInput, Metadata, SearchResult, Store
from fallthrough.kit import is_collection_name
from fallthrough.types import check_search_count
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

DEFAULT_COLLECTION = "langchain"
"""The collection ``from_texts`` writes to when none is named."""


def relevance_from_cosine(score: float) -> float:
    """A cosine similarity in [-1, 1] mapped to a relevance in [0, 1] (clamped against float rounding)."""
    return min(1.0, max(0.0, (1.0 + score) / 2.0))


class FallthroughVectorStore(VectorStore):
    """A LangChain vector store over one collection of a fallthrough ``Store``.

    The Store is the caller's: the adapter never closes it (except one that
    ``from_texts`` or ``afrom_texts`` opened itself, through :meth:`close` or
    :meth:`aclose`). Every store the Store was connected with holds the
    documents, so when the first is down a search is answered by the next,
    with the same results.

    The async methods run on :attr:`async_store`, a ``fallthrough.AsyncStore``
    over the same Store made here with ``close_store=False`` (the Store stays
    the caller's). Its threads start as calls need them and end at
    :meth:`close` / :meth:`aclose`, or when this vector store is collected.

    :param store: the fallthrough Store, e.g. ``fallthrough.connect("qdrant://q:6333", "postgresql://…")``.
    :param embedding: turns texts (documents and queries) into vectors.
    :param collection: the fallthrough collection this vector store is.
    :param write_concern: passed to every write (``"all"``, ``"first"``, or the Store's default when None).
    :param max_concurrency: how many async calls run on the Store at once (the AsyncStore's pool); None:
        the AsyncStore's default, which follows the backends' ``parallel_calls`` (2 on SQLite, 8 on PostgreSQL).
    """

    def __init__(
        self,
        store: Store,
        embedding: Embeddings,
        *,
        collection: str = DEFAULT_COLLECTION,
        write_concern: str | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        if not isinstance(store, Store):
            raise InvalidInput(f"store must be a fallthrough Store, not {type(store).__name__}")
        if not isinstance(embedding, Embeddings):
            raise InvalidInput(f"embedding must be a langchain_core Embeddings, not {type(embedding).__name__}")
        if not isinstance(collection, str) or not is_collection_name(collection):
            raise InvalidInput(
                f"collection {collection!r} is not a fallthrough collection name "
                "(1 to 63 ASCII letters, digits, _ or -, not starting with -)"
            )
        self.store = store
        self.collection = collection
        self._embedding = embedding
        self._write_concern = write_concern
        self.async_store = AsyncStore(store, max_concurrency=max_concurrency, close_store=False)
        """The AsyncStore the ``a…`` methods call: the same Store, this vector store's own pool."""

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def _own(self, async_store: AsyncStore) -> None:
        """Take over a Store this class opened: ``async_store`` wraps it and closes it (``close_store=True``)."""
        self.async_store = async_store  # the one __init__ made never ran a call: it has no thread to end

    def close(self) -> None:
        """End the async pool once the ``a…`` methods under way end, each whole; close the Store if
        ``from_texts`` opened it.

        A method of several steps (``aadd_texts`` checks, embeds, then
        writes; a search by query embeds, then searches) runs to its end,
        so an ``aadd_texts`` still embedding when the close begins writes
        what it embedded; new calls are refused. A Store the caller gave
        stays open and the sync methods keep working on it. In async code,
        await :meth:`aclose`: this would block the running loop, and
        refuses to.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.async_store.close_sync()
            return
        raise FallthroughError("close() would block the running event loop: await aclose() instead")

    async def aclose(self) -> None:
        """:meth:`close` for async code: the pool and an opened Store close on a thread, not on the loop.

        :raises FallthroughError: called from inside one of this vector
            store's ``a…`` methods under way (by its embeddings, say), which the
            close would wait for.
        """
        await self.async_store.close()

    # -- writes --------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed the texts and upsert them; returns their ids (generated as UUID4 strings where not given)."""
        _no_extra(kwargs, "add_texts")
        return self._add(_texts(texts), metadatas, ids)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert LangChain documents; ``ids=`` wins over each ``Document.id``, which wins over a new UUID4."""
        ids = kwargs.pop("ids", None)
        _no_extra(kwargs, "add_documents")
        return self._add(*_from_documents(documents, ids))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        _no_extra(kwargs, "aadd_texts")
        return await self._aadd(_texts(texts), metadatas, ids)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = kwargs.pop("ids", None)
        _no_extra(kwargs, "aadd_documents")
        return await self._aadd(*_from_documents(documents, ids))

    def _add(
        self, texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
    ) -> list[str]:
        prepared = _prepare(texts, metadatas, ids)
        vectors = self._embedding.embed_documents([text for _, text, _ in prepared]) if prepared else []
        documents = _with_vectors(prepared, vectors)
        if documents:
            self.store.upsert_documents(self.collection, documents, write_concern=self._write_concern)
        return [document.id for document in documents]

    async def _aadd(
        self, texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
    ) -> list[str]:
        # Checking thousands of documents and their vectors is Python work of a second or so: on the
        # AsyncStore's pool, like the Store calls, so that the event loop does not wait for it.
        async with self.async_store.keep_open():  # an aclose() during the embedding waits for the write
            prepared = await self.async_store.run_sync(_prepare, texts, metadatas, ids)
            vectors = await self._embedding.aembed_documents([text for _, text, _ in prepared]) if prepared else []
            documents = await self.async_store.run_sync(_with_vectors, prepared, vectors)
            if documents:
                await self.async_store.upsert_documents(self.collection, documents, write_concern=self._write_concern)
        return [document.id for document in documents]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete by ids (unknown or repeated ids are no error); with ``ids=None``, the whole collection.

        Deleting everything is ``Store.drop_collection``: one versioned,
        replicated write like any other (a store that missed it is mended by
        replay or repair, and no older write comes back on it), not a
        listing and a delete per page. True, or an error raised.
        """
        _no_extra(kwargs, "delete")
        if ids is None:
            self.store.drop_collection(self.collection, write_concern=self._write_concern)
        else:
            self.store.delete_documents(self.collection, ids, write_concern=self._write_concern)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        _no_extra(kwargs, "adelete")
        if ids is None:
            await self.async_store.drop_collection(self.collection, write_concern=self._write_concern)
        else:
            await self.async_store.delete_documents(self.collection, ids, write_concern=self._write_concern)
        return True

    # -- reads ---------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents found, in the order first asked, each once (the Store's rule for repeated ids)."""
        return [_to_langchain(found) for found in self.store.get_documents(self.collection, ids)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_to_langchain(found) for found in await self.async_store.get_documents(self.collection, ids)]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents nearest to the query's embedding; ``filter=`` in fallthrough's filter language."""
        return [document for document, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [document for document, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to the query, in [-1, 1], best first."""
        _no_extra(kwargs, "similarity_search_with_score")
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter=filter)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        _no_extra(kwargs, "asimilarity_search_with_score")
        async with self.async_store.keep_open():  # an aclose() during the embedding waits for the search
            vector = await self._embedding.aembed_query(query)
            return await self.asimilarity_search_with_score_by_vector(vector, k, filter=filter)

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, *, filter: Mapping[str, Any] | None = None
    ) -> list[tuple[Document, float]]:
        """Documents with their cosine similarity to ``embedding``, in [-1, 1], best first; none for ``k=0``."""
        k = check_search_count(k, "k")
        if k == 0:  # nothing is searched, as in LangChain's in-memory store
            return []
        result = self.store.search(self.collection, vector=embedding, filter=filter, limit=k)
        return [(_to_langchain(hit), hit.score) for hit in result.ranked()]

    async def asimilarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, *, filter: Mapping[str, Any] | None = None
    ) -> list[tuple[Document, float]]:
        k = check_search_count(k, "k")
        if k == 0:
            return []
        result = await self.async_store.search(self.collection, vector=embedding, filter=filter, limit=k)
        return [(_to_langchain(hit), hit.score) for hit in result.ranked()]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs, "similarity_search_by_vector")
        return [document for document, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs, "asimilarity_search_by_vector")
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, filter=filter)
        return [document for document, _ in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance_from_cosine

    # -- max marginal relevance ----------------------------------------------

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        async with self.async_store.keep_open():  # an aclose() during the embedding waits for the search
            vector = await self._embedding.aembed_query(query)
            return await self.amax_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, **kwargs)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` of the ``fetch_k`` nearest documents, chosen for relevance and diversity (LangChain's MMR).

        A ``k`` above ``fetch_k`` gets the ``fetch_k`` candidates, as from
        LangChain's own stores (a retriever set up with ``k=25`` and the
        default ``fetch_k`` of 20 gets 20).

        The candidates' vectors come with the search itself
        (``with_vectors=True``): one read of one store, so they are the
        vectors of the very hits ranked.
        """
        _no_extra(kwargs, "max_marginal_relevance_search_by_vector")
        k, fetch_k = _checked_mmr(k, fetch_k, lambda_mult)
        if k == 0:
            return []
        result = self.store.search(self.collection, vector=embedding, filter=filter, limit=fetch_k, with_vectors=True)
        return _mmr(embedding, result.ranked(), k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        *,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        _no_extra(kwargs, "amax_marginal_relevance_search_by_vector")
        k, fetch_k = _checked_mmr(k, fetch_k, lambda_mult)
        if k == 0:
            return []
        # Two pool calls: an aclose() meanwhile waits for both, as for any one call.
        async with self.async_store.keep_open():
            result = await self.async_store.search(
                self.collection, vector=embedding, filter=filter, limit=fetch_k, with_vectors=True
            )
            # MMR over hundreds of vectors takes the loop's thread for a second or more: on the pool, as LangChain does.
            return await self.async_store.run_sync(_mmr, embedding, result.ranked(), k, lambda_mult)

    # -- construction --------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: Store | None = None,
        urls: Sequence[str] = (),
        collection: str = DEFAULT_COLLECTION,
        write_concern: str | None = None,
        max_concurrency: int | None = None,
        **kwargs: Any,
    ) -> Self:
        """A vector store holding the texts, over ``store`` or over ``fallthrough.connect(*urls)`` (then its own).

        With neither, ``fallthrough.connect()``: SQLite in memory, for trying things out.
        """
        _no_extra(kwargs, "from_texts")
        if store is not None and urls:
            raise InvalidInput("give store or urls, not both")
        make = functools.partial(
            cls,
            embedding=embedding,
            collection=collection,
            write_concern=write_concern,
            max_concurrency=max_concurrency,
        )
        if store is not None:
            vectorstore = make(store)
            vectorstore.add_texts(texts, metadatas, ids=ids)
            return vectorstore
        opened = fallthrough.connect(*urls)
        try:
            vectorstore = make(opened)
            vectorstore._own(AsyncStore(opened, max_concurrency=max_concurrency, close_store=True))
            vectorstore.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            opened.close()
            raise
        return vectorstore

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: Store | None = None,
        urls: Sequence[str] = (),
        collection: str = DEFAULT_COLLECTION,
        write_concern: str | None = None,
        max_concurrency: int | None = None,
        **kwargs: Any,
    ) -> Self:
        """:meth:`from_texts` for async code: a Store of its own is opened by ``fallthrough.connect_async``."""
        _no_extra(kwargs, "afrom_texts")
        if store is not None and urls:
            raise InvalidInput("give store or urls, not both")
        make = functools.partial(
            cls,
            embedding=embedding,
            collection=collection,
            write_concern=write_concern,
            max_concurrency=max_concurrency,
        )
        if store is not None:
            vectorstore = make(store)
            await vectorstore.aadd_texts(texts, metadatas, ids=ids)
            return vectorstore
        opened = await fallthrough.connect_async(*urls, max_concurrency=max_concurrency)
        try:
            vectorstore = make(opened.store)
            vectorstore._own(opened)
            await vectorstore.aadd_texts(texts, metadatas, ids=ids)
        except BaseException:
            await opened.close()
            raise
        return vectorstore


def _to_langchain(found: fallthrough.Document | fallthrough.Hit) -> Document:
    """A fallthrough document or hit as LangChain's Document (its vector and score left out)."""
    return Document(id=found.id, page_content=found.text, metadata=dict(found.metadata))


def _checked_mmr(k: int, fetch_k: int, lambda_mult: float) -> tuple[int, int]:
    """``k`` and ``fetch_k`` as plain ints, once the three are checked; :class:`InvalidInput` names the one refused."""
    checked = check_search_count(k, "k"), check_search_count(fetch_k, "fetch_k", least=1)
    if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, int | float):
        raise InvalidInput(f"lambda_mult must be a number in [0, 1], not {lambda_mult!r}")
    if not 0.0 <= lambda_mult <= 1.0:
        raise InvalidInput(f"lambda_mult must lie in [0, 1], not {lambda_mult!r}")
    return checked


def _mmr(embedding: Sequence[float], hits: SearchResult, k: int, lambda_mult: float) -> list[Document]:
    """LangChain's MMR over hits that carry their vectors."""
    if not hits:
        return []
    vectors = []
    for hit in hits:
        # A vector search finds only documents with a vector, and with_vectors returns it.
        assert hit.vector is not None, f"hit {hit.id!r} of a with_vectors search came without its vector"
        vectors.append(hit.vector)
    # One array, not lists: LangChain would turn a list of lists into an array again at every step (3x slower).
    matrix: Any = np.asarray(vectors, dtype=np.float64)
    chosen = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float64), matrix, lambda_mult=lambda_mult, k=k)
    return [_to_langchain(hits[index]) for index in chosen]


def _no_extra(kwargs: Mapping[str, Any], method: str) -> None:
    """Refuse keyword arguments this store does not know, rather than ignore them silently."""
    if kwargs:
        raise TypeError(f"FallthroughVectorStore.{method}() got unexpected keyword arguments {sorted(kwargs)}")


def _from_documents(
    documents: Sequence[Document], ids: Sequence[str | None] | None
) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
    if _no_ids(ids):
        ids = None
    if ids is not None and len(ids) != len(documents):
        raise InvalidInput(f"got {len(ids)} ids for {len(documents)} documents")
    chosen = list(ids) if ids is not None else [document.id for document in documents]
    return [document.page_content for document in documents], [document.metadata for document in documents], chosen


def _texts(texts: Iterable[str]) -> list[str]:
    """The texts as a list; a single string or a non-iterable is refused (each text is checked later)."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        raise InvalidInput(f"texts must be an iterable of strings, not {type(texts).__name__}")
    return list(texts)


def _no_ids(ids: object) -> bool:
    """``ids=None`` or an empty list: no ids given, as LangChain's ``InMemoryVectorStore`` reads ``ids=[]``."""
    return ids is None or (isinstance(ids, list | tuple) and not ids)


def _prepare(
    texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
) -> list[tuple[str, str, Metadata]]:
    """Ids, texts and checked metadata, every one of them checked before anything is embedded or written.

    The checks are the Store's own (``fallthrough.Document``): their errors
    name the bad value's path (``metadata['dims']['width']``) and what it
    is; this adds which document.
    """
    for name, given in (("metadatas", metadatas), ("ids", ids)):
        if given is not None and (isinstance(given, str | bytes | Mapping) or not isinstance(given, Sequence)):
            raise InvalidInput(f"{name} must be a list, one per text, not {type(given).__name__}")
    if metadatas is not None and len(metadatas) != len(texts):
        raise InvalidInput(f"got {len(metadatas)} metadatas for {len(texts)} texts")
    if _no_ids(ids):
        ids = None
    if ids is not None and len(ids) != len(texts):
        raise InvalidInput(f"got {len(ids)} ids for {len(texts)} texts")
    prepared = []
    first_of: dict[str, int] = {}
    for index, text in enumerate(texts):
        id_ = ids[index] if ids is not None else None
        # An empty id is no id, as in InMemoryVectorStore (Document.id defaults to None, but "" is common).
        chosen = str(uuid.uuid4()) if id_ is None or id_ == "" else id_
        metadata = metadatas[index] if metadatas is not None else None
        try:
            checked = fallthrough.Document(chosen, text, metadata=metadata)
        except InvalidInput as error:
            raise InvalidInput(f"document {index} (id {chosen!r}): {error}") from None
        earlier = first_of.setdefault(checked.id, index)
        if earlier != index:
            raise InvalidInput(f"document {index} repeats the id {checked.id!r} of document {earlier}")
        prepared.append((checked.id, checked.text, checked.metadata))
    return prepared


def _with_vectors(prepared: list[tuple[str, str, Metadata]], vectors: list[list[float]]) -> list[fallthrough.Document]:
    """The prepared documents with the vectors the embeddings returned for them."""
    if len(vectors) != len(prepared):
        raise InvalidInput(f"the embeddings returned {len(vectors)} vectors for {len(prepared)} texts")
    documents = []
    for index, ((id_, text, metadata), vector) in enumerate(zip(prepared, vectors, strict=True)):
        try:
            documents.append(fallthrough.Document(id_, text, vector=vector, metadata=metadata))
        except InvalidInput as error:
            raise InvalidInput(f"document {index} (id {id_!r}): {error}") from None
    return documents
