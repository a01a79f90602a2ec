"""``FallthroughVectorStore``: LangChain's ``VectorStore`` interface over a fallthrough ``Store``.

One LangChain vector store is one fallthrough collection. The adapter turns
texts into vectors with the caller's ``Embeddings``, and everything else is
the Store's: which store answers, falling through when one is down, the
replication of writes, and the filter language (``docs/semantics.md`` of
fallthrough). It adds no state of its own beyond the collection's name.

Scores. ``similarity_search_with_score`` returns fallthrough's own score, the
cosine similarity in [-1, 1] (higher is better). The relevance scores LangChain
asks to be in [0, 1] (``similarity_search_with_relevance_scores``) are
``(1 + cosine) / 2``: LangChain's own ``_cosine_relevance_score_fn`` is
``1 - distance``, which for a cosine distance in [0, 2] gives [-1, 1], outside
the range its interface promises; the affine map keeps the order and the
promise.
"""

from __future__ import annotations

import asyncio
import datetime
import numbers
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, Self, TypeVar

import fallthrough
import numpy as np
from fallthrough import InvalidInput, Store
from fallthrough.errors import BackendUnavailable
from fallthrough.kit import is_collection_name
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

DEFAULT_COLLECTION = "langchain"
"""The collection ``from_texts`` writes to when none is named."""

_LIST_PAGE = 10_000
"""The most documents one search lists (fallthrough's largest ``limit``): the page of a delete-all."""

_SCALARS = (str, int, float, bool, datetime.datetime)
_NESTED_METADATA = hasattr(fallthrough, "Metadata")
"""Whether this fallthrough keeps nested metadata (the ``Metadata`` type is exported from the release that does)."""

P = ParamSpec("P")
T = TypeVar("T")


def relevance_from_cosine(score: float) -> float:
    """A cosine similarity in [-1, 1] mapped to a relevance in [0, 1] (clamped against float rounding)."""
    return min(1.0, max(0.0, (1.0 + score) / 2.0))


class FallthroughVectorStore(VectorStore):
    """A LangChain vector store over one collection of a fallthrough ``Store``.

    The Store is the caller's: the adapter never closes it (except one that
    ``from_texts`` opened itself, through :meth:`close`). Every store the
    Store was connected with holds the documents, so when the first is down a
    search is answered by the next, with the same results.

    :param store: the fallthrough Store, e.g. ``fallthrough.connect("qdrant://q:6333", "postgresql://…")``.
    :param embedding: turns texts (documents and queries) into vectors.
    :param collection: the fallthrough collection this vector store is.
    :param write_concern: passed to every write (``"all"``, ``"first"``, or the Store's default when None).
    """

    def __init__(
        self,
        store: Store,
        embedding: Embeddings,
        *,
        collection: str = DEFAULT_COLLECTION,
        write_concern: str | None = None,
    ) -> None:
        if not isinstance(store, Store):
            raise InvalidInput(f"store must be a fallthrough Store, not {type(store).__name__}")
        if not isinstance(embedding, Embeddings):
            raise InvalidInput(f"embedding must be a langchain_core Embeddings, not {type(embedding).__name__}")
        self.store = store
        if not isinstance(collection, str) or not is_collection_name(collection):
            raise InvalidInput(
                f"collection {collection!r} is not a fallthrough collection name "
                "(1 to 63 ASCII letters, digits, _ or -, not starting with -)"
            )
        self.collection = collection
        self._embedding = embedding
        self._write_concern = write_concern
        self._owns_store = False

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def close(self) -> None:
        """Close the Store if ``from_texts`` opened it; a Store the caller gave stays open."""
        if self._owns_store:
            self.store.close()

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
        return self._add(list(texts), metadatas, ids)

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
        return await self._aadd(list(texts), metadatas, ids)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        ids = kwargs.pop("ids", None)
        _no_extra(kwargs, "aadd_documents")
        return await self._aadd(*_from_documents(documents, ids))

    def _add(
        self, texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
    ) -> list[str]:
        prepared = _prepare(texts, metadatas, ids)
        vectors = self._embedding.embed_documents([text for _, text, _ in prepared]) if prepared else []
        return self._upsert(prepared, vectors)

    async def _aadd(
        self, texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
    ) -> list[str]:
        prepared = _prepare(texts, metadatas, ids)
        vectors = await self._embedding.aembed_documents([text for _, text, _ in prepared]) if prepared else []
        return await _off_loop(self._upsert, prepared, vectors)

    def _upsert(self, prepared: list[tuple[str, str, dict[str, Any]]], vectors: list[list[float]]) -> list[str]:
        if len(vectors) != len(prepared):
            raise InvalidInput(f"the embeddings returned {len(vectors)} vectors for {len(prepared)} texts")
        documents = []
        for index, ((id_, text, metadata), vector) in enumerate(zip(prepared, vectors, strict=True)):
            try:
                documents.append(fallthrough.Document(id_, text, vector=vector, metadata=metadata))
            except InvalidInput as error:
                raise InvalidInput(f"document {index} (id {id_!r}): {error}") from None
        if documents:
            self.store.upsert_documents(self.collection, documents, write_concern=self._write_concern)
        return [id_ for id_, _, _ in prepared]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete by ids (unknown ids are no error); with ``ids=None``, every document of the collection.

        Deleting everything lists the collection a page at a time (a search
        without a query, in id order) and deletes each page, until a listing
        comes back empty. Each delete is a versioned, replicated write like
        any other, so a store that missed it is mended by replay or repair.
        Returns False, leaving the rest, if a listed page deleted nothing.
        """
        _no_extra(kwargs, "delete")
        if ids is None:
            while hits := self.store.search(self.collection, limit=_LIST_PAGE):
                page = [hit.id for hit in hits]
                if not self.store.delete_documents(self.collection, page, write_concern=self._write_concern):
                    # Listed but not deleted (newer writes won on the store that answered): no spinning.
                    return False
            return True
        unique = list(dict.fromkeys(ids))
        if unique:
            self.store.delete_documents(self.collection, unique, write_concern=self._write_concern)
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        _no_extra(kwargs, "adelete")
        return await _off_loop(self.delete, ids)

    # -- reads ---------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents found, in the order asked, each once (a repeated id is read once)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            return []
        return [_to_langchain(found) for found in self.store.get_documents(self.collection, unique)]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await _off_loop(self.get_by_ids, ids)

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
        return self._search(self._embedding.embed_query(query), k, filter)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        _no_extra(kwargs, "asimilarity_search_with_score")
        vector = await self._embedding.aembed_query(query)
        return await _off_loop(self._search, vector, k, filter)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs, "similarity_search_by_vector")
        return [document for document, _ in self._search(embedding, k, filter)]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, *, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        _no_extra(kwargs, "asimilarity_search_by_vector")
        return [document for document, _ in await _off_loop(self._search, embedding, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return relevance_from_cosine

    def _search(
        self, vector: Sequence[float], k: int, filter: Mapping[str, Any] | None
    ) -> list[tuple[Document, float]]:
        result = self.store.search(self.collection, vector=vector, filter=filter, limit=k)
        if result.degraded:
            # The hits are in id order, not by similarity: handing them on as the
            # nearest documents would be a silent wrong answer.
            raise BackendUnavailable(
                f"no store that ranks by vector could serve collection {self.collection!r}; "
                f"{result.backend} answered without the vector ranking"
            )
        return [(_to_langchain(hit), hit.score) for hit in result]

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

        The candidates' vectors come from a second read (``get_documents``) of
        the same Store; a candidate deleted in between is left out.
        """
        _no_extra(kwargs, "max_marginal_relevance_search_by_vector")
        if not 0.0 <= lambda_mult <= 1.0:
            raise InvalidInput(f"lambda_mult must lie in [0, 1], not {lambda_mult!r}")
        if k > fetch_k:
            raise InvalidInput(f"k ({k}) must not exceed fetch_k ({fetch_k})")
        candidates = self._search(embedding, fetch_k, filter)
        if not candidates:
            return []
        ids = [str(document.id) for document, _ in candidates]
        vectors = {found.id: found.vector for found in self.store.get_documents(self.collection, ids)}
        kept = [document for document, _ in candidates if vectors.get(str(document.id)) is not None]
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float64),
            [list(vectors[str(document.id)] or ()) for document in kept],
            lambda_mult=lambda_mult,
            k=k,
        )
        return [kept[index] for index in chosen]

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
        return await _off_loop(
            self.max_marginal_relevance_search_by_vector, embedding, k, fetch_k, lambda_mult, filter=filter
        )

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
        **kwargs: Any,
    ) -> Self:
        """A vector store holding the texts, over ``store`` or over ``fallthrough.connect(*urls)`` (then its own).

        With neither, ``fallthrough.connect()``: SQLite in memory, for trying things out.
        """
        _no_extra(kwargs, "from_texts")
        if store is not None and urls:
            raise InvalidInput("give store or urls, not both")
        owned = store is None
        opened = fallthrough.connect(*urls) if store is None else store
        try:
            vectorstore = cls(opened, embedding, collection=collection, write_concern=write_concern)
            vectorstore._owns_store = owned
            vectorstore.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            if owned:
                opened.close()
            raise
        return vectorstore


def _to_langchain(found: fallthrough.Document | fallthrough.Hit) -> Document:
    """A fallthrough document or hit as LangChain's Document (its vector and score left out)."""
    return Document(id=found.id, page_content=found.text, metadata=dict(found.metadata))


def _no_extra(kwargs: Mapping[str, Any], method: str) -> None:
    """Refuse keyword arguments this store does not know, rather than ignore them silently."""
    if kwargs:
        raise TypeError(f"FallthroughVectorStore.{method}() got unexpected keyword arguments {sorted(kwargs)}")


def _from_documents(
    documents: Sequence[Document], ids: Sequence[str | None] | None
) -> tuple[list[str], list[dict[str, Any]], list[str | None]]:
    if ids is not None and len(ids) != len(documents):
        raise InvalidInput(f"got {len(ids)} ids for {len(documents)} documents")
    chosen = list(ids) if ids is not None else [document.id for document in documents]
    return [document.page_content for document in documents], [document.metadata for document in documents], chosen


def _prepare(
    texts: list[str], metadatas: Sequence[Mapping[str, Any] | None] | None, ids: Sequence[str | None] | None
) -> list[tuple[str, str, dict[str, Any]]]:
    """Ids, texts and checked metadata, every one of them checked before anything is embedded or written."""
    if metadatas is not None and len(metadatas) != len(texts):
        raise InvalidInput(f"got {len(metadatas)} metadatas for {len(texts)} texts")
    if ids is not None and len(ids) != len(texts):
        raise InvalidInput(f"got {len(ids)} ids for {len(texts)} texts")
    prepared = []
    for index, text in enumerate(texts):
        id_ = ids[index] if ids is not None else None
        chosen = str(uuid.uuid4()) if id_ is None else id_
        metadata = metadatas[index] if metadatas is not None else None
        where = f"document {index} (id {chosen!r})"
        if not isinstance(text, str):
            raise InvalidInput(f"{where}: the text must be a str, not {type(text).__name__}")
        checked = _check_metadata({} if metadata is None else metadata, where)
        try:
            fallthrough.Document(chosen, text, metadata=checked)  # the Store's own rules, before any embedding
        except InvalidInput as error:
            raise InvalidInput(f"{where}: {error}") from None
        prepared.append((chosen, text, checked))
    return prepared


def _check_metadata(metadata: object, where: str) -> dict[str, Any]:
    """A copy of ``metadata``, or InvalidInput naming the first value fallthrough would refuse, and why.

    fallthrough's own checks say what a number must be; LangChain metadata
    arrives with whatever a loader put in it (nested dicts, tuples, bytes),
    so the value's place and kind are named here, rather than "must be a number".
    """
    if not isinstance(metadata, Mapping):
        raise InvalidInput(f"{where}: metadata must be a dict, not {type(metadata).__name__}")
    for key, value in metadata.items():
        _check_value(value, f"metadata[{key!r}]", where, depth=0)
    return dict(metadata)


def _check_value(value: object, path: str, where: str, *, depth: int) -> None:
    if value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, list):
        for index, element in enumerate(value):
            if isinstance(element, list):
                raise InvalidInput(f"{where}: {path}[{index}] is a list inside a list, which fallthrough does not keep")
            _check_value(element, f"{path}[{index}]", where, depth=depth + 1)
        return
    if isinstance(value, Mapping):
        if not _NESTED_METADATA:
            raise InvalidInput(
                f"{where}: {path} is a dict; this fallthrough keeps flat metadata only "
                f"(str, int, float, bool, None, aware datetime, or lists of those): "
                f"flatten it into keys of their own"
            )
        for key, element in value.items():
            _check_value(element, f"{path}[{key!r}]", where, depth=depth + 1)
        return
    if isinstance(value, datetime.date):
        return  # fallthrough's own check explains what to give instead of a date
    if isinstance(value, numbers.Number):
        return  # fallthrough's own check says which numbers it keeps
    kinds = "str, int, float, bool, None, aware datetime, lists of those" + (", dicts" if _NESTED_METADATA else "")
    raise InvalidInput(f"{where}: {path} is a {type(value).__name__}; fallthrough keeps {kinds}")


async def _off_loop(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking Store call in a worker thread, so the event loop is never blocked by it."""
    return await asyncio.to_thread(call, *args, **kwargs)
