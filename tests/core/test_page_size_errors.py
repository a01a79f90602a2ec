"""A bad page size is refused by its own name: the error says ``page_size``, not ``limit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import fallthrough
from fallthrough import Store

CALLS: dict[str, Callable[[Store, Any], object]] = {
    "records": lambda store, size: list(store.records(store.create_batch(["k"]).id, page_size=size)),
    "batches": lambda store, size: list(store.batches(page_size=size)),
    "documents": lambda store, size: list(store.documents("c", page_size=size)),
    "repair": lambda store, size: store.repair(page_size=size),
}


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_bad_page_size_is_named_page_size(name: str, bad: Any) -> None:
    with fallthrough.connect() as store, pytest.raises(fallthrough.InvalidInput) as raised:
        CALLS[name](store, bad)
    assert str(raised.value).startswith("page_size must be an int from 1 to "), str(raised.value)


def test_a_bad_limit_is_still_named_limit() -> None:
    with fallthrough.connect() as store:
        with pytest.raises(fallthrough.InvalidInput, match=r"^limit must be an int"):
            store.search("c", text="x", limit=0)
        with pytest.raises(fallthrough.InvalidInput, match=r"^limit must be an int of at least 1, got 0$"):
            list(store.batches(limit=0))
