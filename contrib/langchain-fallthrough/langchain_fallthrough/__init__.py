"""LangChain's ``VectorStore`` over a fallthrough Store: search that falls through when a store is down."""

from __future__ import annotations

from .vectorstores import DEFAULT_COLLECTION, FallthroughVectorStore, relevance_from_cosine

__all__ = ["DEFAULT_COLLECTION", "FallthroughVectorStore", "relevance_from_cosine"]
