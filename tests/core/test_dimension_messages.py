"""A vector of the wrong dimension is refused in the same words by every store, the model included."""

from __future__ import annotations

import pytest

import fallthrough
from fallthrough import Document
from fallthrough.errors import InvalidInput


@pytest.mark.parametrize("url", ["reference://", "sqlite://", "qdrant+memory://"])
@pytest.mark.parametrize(
    ("second_call", "message"),
    [
        (
            [Document("b", "b", vector=[1.0, 0.0])],
            "collection 'c' holds vectors of dimension 3, got [2]",
        ),
        (
            [Document("b", "b", vector=[1.0, 0.0, 0.0]), Document("d", "d", vector=[1.0, 0.0])],
            "documents mix vector dimensions [2, 3]; a collection has one",
        ),
    ],
)
def test_a_wrong_dimension_is_refused_alike_and_nothing_is_written(
    url: str, second_call: list[Document], message: str
) -> None:
    registry = fallthrough.Registry()
    registry.register("reference", "fallthrough.testing.model:ReferenceBackend")
    with fallthrough.connect(url, registry=registry) as store:
        store.upsert_documents("c", [Document("a", "a", vector=[1.0, 0.0, 0.0])])
        with pytest.raises(InvalidInput) as refused:
            store.upsert_documents("c", second_call)
        assert str(refused.value) == message
        assert [document.id for document in store.documents("c")] == ["a"]
