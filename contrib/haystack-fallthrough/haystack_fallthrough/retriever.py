"""``FallthroughEmbeddingRetriever``: a Haystack component that searches a ``FallthroughDocumentStore`` by vector."""

from __future__ import annotations

from typing import Any

from fallthrough.types import MAX_SEARCH_LIMIT
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from .document_store import FallthroughDocumentStore


@component
class FallthroughEmbeddingRetriever:
    """The documents nearest a query embedding (cosine), from a :class:`FallthroughDocumentStore`.

    Shaped like Haystack's ``InMemoryEmbeddingRetriever``: the same parameters
    and output, so a pipeline swaps one for the other. The search is served by
    the first store that is up and can rank by vector (docs/semantics.md,
    "Routing"). When only stores without vector search are up, the search
    raises ``BackendUnavailable`` rather than hand on documents that were not
    ranked by the query embedding.

    :param document_store: where to search.
    :param filters: Haystack filters applied to every search.
    :param top_k: how many documents to return (1 to 10,000).
    :param scale_score: scores as ``(cosine + 1) / 2``, in [0, 1], instead of the cosine.
    :param return_embedding: fill each document's ``embedding``.
    :param filter_policy: how run-time filters combine with ``filters``.
    """

    def __init__(
        self,
        document_store: FallthroughDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, FallthroughDocumentStore):
            raise TypeError("document_store must be a FallthroughDocumentStore")
        if top_k <= 0:
            raise ValueError(f"top_k must be greater than 0, but got {top_k}")
        if top_k > MAX_SEARCH_LIMIT:
            raise ValueError(f"top_k must be at most {MAX_SEARCH_LIMIT} (the store's search limit), but got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.scale_score = scale_score
        self.return_embedding = return_embedding
        self.filter_policy = filter_policy

    def to_dict(self) -> dict[str, Any]:
        """Serialise the component, its document store included."""
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            filters=self.filters,
            top_k=self.top_k,
            scale_score=self.scale_score,
            return_embedding=self.return_embedding,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FallthroughEmbeddingRetriever:
        """Rebuild the component from :meth:`to_dict`'s output."""
        parameters = data.get("init_parameters", {})
        parameters["document_store"] = FallthroughDocumentStore.from_dict(parameters["document_store"])
        if "filter_policy" in parameters:
            parameters["filter_policy"] = FilterPolicy.from_str(parameters["filter_policy"])
        retriever: FallthroughEmbeddingRetriever = default_from_dict(cls, data)
        return retriever

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
    ) -> dict[str, list[Document]]:
        """Retrieve the documents nearest ``query_embedding``; arguments given here override the component's."""
        documents = self.document_store.embedding_retrieval(
            query_embedding, **self._arguments(filters, top_k, scale_score, return_embedding)
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
    ) -> dict[str, list[Document]]:
        """:meth:`run` for Haystack's async pipelines: the search runs off the event loop."""
        documents = await self.document_store.embedding_retrieval_async(
            query_embedding, **self._arguments(filters, top_k, scale_score, return_embedding)
        )
        return {"documents": documents}

    def _arguments(
        self,
        filters: dict[str, Any] | None,
        top_k: int | None,
        scale_score: bool | None,
        return_embedding: bool | None,
    ) -> dict[str, Any]:
        chosen = top_k if top_k is not None else self.top_k
        if chosen < 0:
            raise ValueError(f"top_k must be greater than or equal to 0, but got {chosen}")
        return {
            "filters": apply_filter_policy(self.filter_policy, self.filters, filters),
            "top_k": chosen,
            "scale_score": self.scale_score if scale_score is None else scale_score,
            "return_embedding": self.return_embedding if return_embedding is None else return_embedding,
        }
