"""Claims and updates through the hooks, at the suite's fixed times: what the local-mode cost tests repeat."""

from __future__ import annotations

import uuid

from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.twin import at
from fallthrough.types import Record, RecordUpdate, Status


def claim(driver: HookDriver, batch_id: uuid.UUID, worker: str, limit: int, now: int, lease: int) -> list[Record]:
    """Claim up to ``limit`` records at ``at(now)`` for a lease of ``lease`` microseconds."""
    records: list[Record] = driver.call(
        "fallthrough_claim_records",
        batch_id=batch_id,
        worker=worker,
        limit=limit,
        claimed_at=at(now),
        lease_until=at(now + lease),
    )
    return records


def update(driver: HookDriver, records: list[Record], status: Status, now: int) -> None:
    """Update each of ``records`` to ``status`` at its own attempt, at ``at(now)``."""
    updates = [RecordUpdate(record.batch_id, record.key, status, attempt=record.attempt) for record in records]
    driver.call("fallthrough_update_records", updates=updates, updated_at=at(now))
