"""A delete_batch during a streamed create cuts the create short instead of waiting it out.

Each add gives its turn back before it commits, so without a queue the adds'
share locks on the batch row could pass from one to the next and keep the
DELETE waiting for the whole create. The race does not show on every
create: three creates per server make it all but certain where it exists.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough.errors import NotFound

KEYS = 600_000
STARTED_AT = 50_000
CUT_SHORT_WITHIN = 1.5  # seconds; the create left alone would run for seconds more


@pytest.mark.parametrize("attempt", range(3))
def test_a_delete_during_a_streamed_create_cuts_it_short(database: str, attempt: int) -> None:
    with fallthrough.connect(database) as store, fallthrough.connect(database) as other:
        batch_id = uuid.uuid4()
        started = threading.Event()
        timings: dict[str, float] = {}

        def keys() -> Iterator[str]:
            for index in range(KEYS):
                if index == STARTED_AT:
                    started.set()
                yield f"key-{index:07d}"

        def delete() -> None:
            assert started.wait(60)
            time.sleep(0.05)
            timings["asked"] = time.monotonic()
            other.delete_batch(batch_id)
            timings["deleted"] = time.monotonic()

        deleter = threading.Thread(target=delete)
        deleter.start()
        with pytest.raises(NotFound):
            store.create_batch(keys(), batch_id=batch_id)
        deleter.join(120)
        assert timings["deleted"] - timings["asked"] < CUT_SHORT_WITHIN
        assert store.get_batch(batch_id) is None
