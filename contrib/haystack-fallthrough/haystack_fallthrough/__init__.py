"""Haystack integration for fallthrough: a ``DocumentStore`` and an embedding retriever over a fallthrough Store.

>>> from haystack import Document
>>> from haystack_fallthrough import FallthroughDocumentStore
>>> store = FallthroughDocumentStore(["sqlite://"], collection="docs")
>>> store.write_documents([Document(id="1", content="cement M-500", meta={"price": 420})])
1
>>> [d.id for d in store.filter_documents({"field": "meta.price", "operator": ">", "value": 400})]
['1']
>>> store.close()
"""

from __future__ import annotations

from .convert import DATETIME_SUFFIX
from .document_store import FallthroughDocumentStore
from .retriever import FallthroughEmbeddingRetriever

__all__ = ["DATETIME_SUFFIX", "FallthroughDocumentStore", "FallthroughEmbeddingRetriever"]
