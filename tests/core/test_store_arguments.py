"""Arguments that steer the Store itself (how long to wait) and the edges of the claim API get typed errors too."""

from __future__ import annotations

import math
import uuid

import pytest

import fallthrough
from fallthrough.errors import InvalidInput, NotFound
from fallthrough.validation import MAX_TIMEOUT


@pytest.mark.parametrize("timeout", ["abc", math.nan, math.inf, -1, MAX_TIMEOUT + 1, True, [1]])
def test_drain_and_close_refuse_a_timeout_that_is_not_a_number_of_seconds(timeout: object) -> None:
    store = fallthrough.connect("sqlite://")
    try:
        with pytest.raises(InvalidInput, match="timeout"):
            store.drain(timeout)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="timeout"):
            store.close(timeout)  # type: ignore[arg-type]
        assert store.drain(0) is True
    finally:
        store.close(MAX_TIMEOUT)


def test_extending_no_leases_of_an_unknown_batch_is_not_found() -> None:
    with fallthrough.connect("sqlite://") as store:
        with pytest.raises(NotFound):
            store.extend_leases(uuid.uuid4(), [], worker="w")
        batch = store.create_batch(["a"])
        assert store.extend_leases(batch.id, [], worker="w") == 0
