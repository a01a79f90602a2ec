"""Several backend instances on one file writing the same records at once.

Many threads sharing one backend are the conformance suite's
``test_eight_threads_updating_one_batch_end_with_exact_progress``.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fallthrough.ordering import merge_key
from fallthrough.types import RecordUpdate, Status
from tests.sqlite.helpers import file_url, open_backend

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_racing_updates_of_one_record_from_two_instances_keep_the_greatest(tmp_path: Path) -> None:
    """Two backends on one file (as two processes would be) race on the same records; the merge decides."""
    url = file_url(tmp_path / "race.db")
    _, first = open_backend(url)
    _, second = open_backend(url)
    batch_id = uuid.uuid4()
    keys = [f"k{i}" for i in range(20)]
    first.fallthrough_create_batch(batch_id=batch_id, keys=keys, first_seq=1, metadata={}, created_at=START)
    # Each writer sends the same 60 updates per key, in opposite orders.
    calls = [
        (
            [RecordUpdate(batch_id, key, status, result=f"{status}-{step}") for key in keys],
            START + timedelta(microseconds=step % 7),
        )
        for step, status in enumerate([Status.PROCESSING, Status.COMPLETED, Status.FAILED] * 20)
    ]
    errors: list[BaseException] = []

    def send(relay: object, ordered: list[tuple[list[RecordUpdate], datetime]]) -> None:
        try:
            for updates, when in ordered:
                relay.fallthrough_update_records(updates=updates, updated_at=when)  # type: ignore[attr-defined]
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=send, args=(first, calls)),
        threading.Thread(target=send, args=(second, calls[::-1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for key in keys:
        record = first.fallthrough_get_record(batch_id=batch_id, key=key)
        best = max(
            (merge_key(0, update.status, when, update.tiebreak), update)
            for updates, when in calls
            for update in updates
            if update.key == key
        )[1]
        assert (record.status, record.result) == (best.status, best.result)
    first.fallthrough_close()
    second.fallthrough_close()
