"""Haystack's own document-store tests (``haystack.testing.document_store`` and ``document_store_async``), run on
every store of conftest.STORES.

The mixins are subclassed, never copied: what is overridden is what the
mixins ask a store to define (``test_write_documents``, whose default policy
is the store's to choose) and ``assert_documents_are_equal``, which the
mixins document as the place for a store's deliberate differences. Every
skip names the rule of docs/semantics.md behind it; the README lists them.
"""

from __future__ import annotations

import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.testing.document_store import CountDocumentsByFilterTest, DocumentStoreBaseExtendedTests
from haystack.testing.document_store_async import (
    CountDocumentsAsyncTest,
    CountDocumentsByFilterAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    UpdateByFilterAsyncTest,
    WriteDocumentsAsyncTest,
)

from haystack_fallthrough import FallthroughDocumentStore


def _as_stored(document: Document) -> Document:
    """``document`` as fallthrough reads it back: the embedding rounded to float32 (docs/semantics.md, "Documents")."""
    if document.embedding is None:
        return document
    rounded = [float(component) for component in np.asarray(document.embedding, dtype=np.float32)]
    return Document(id=document.id, content=document.content, meta=document.meta, embedding=rounded)


class _AsStored:
    """What both suites override alike (the mixins' documented place for a store's deliberate differences)."""

    @pytest.fixture
    def document_store(self, fallthrough_document_store: FallthroughDocumentStore) -> FallthroughDocumentStore:
        return fallthrough_document_store

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        """Equal as sets of documents, with embeddings compared as float32.

        Two deliberate differences from Haystack's in-memory store: documents
        come back in id order (docs/semantics.md, "Listing, counting, paging
        and dropping": ``Store.documents`` is in id order), not in insertion
        order; and a vector is rounded to float32 when it is made
        (docs/semantics.md, "Documents": every store holds and returns the
        same float32 values).
        """
        assert sorted(received, key=lambda d: d.id) == sorted(map(_as_stored, expected), key=lambda d: d.id)


class TestHaystackSuite(_AsStored, DocumentStoreBaseExtendedTests, CountDocumentsByFilterTest):
    def test_write_documents(self, document_store: FallthroughDocumentStore) -> None:
        """The default policy (NONE) is FAIL, as in Haystack's in-memory store."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        assert document_store.write_documents([doc], policy=DuplicatePolicy.OVERWRITE) == 1
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


class TestHaystackSuiteAsync(
    _AsStored,
    CountDocumentsAsyncTest,
    WriteDocumentsAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    UpdateByFilterAsyncTest,
    CountDocumentsByFilterAsyncTest,
):
    """Haystack's async mixins: the same stores, through the ``_async`` methods (fallthrough.AsyncStore)."""

    @pytest.mark.asyncio
    async def test_write_documents_async(self, document_store: FallthroughDocumentStore) -> None:
        """The default policy (NONE) is FAIL, as in the sync suite."""
        doc = Document(content="test doc")
        assert await document_store.write_documents_async([doc]) == 1
        self.assert_documents_are_equal(await document_store.filter_documents_async(), [doc])
        with pytest.raises(DuplicateDocumentError):
            await document_store.write_documents_async([doc])
        assert await document_store.write_documents_async([doc], policy=DuplicatePolicy.OVERWRITE) == 1
        self.assert_documents_are_equal(await document_store.filter_documents_async(), [doc])
