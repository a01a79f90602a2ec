"""A database of schema version 2 (before claims) gains the lease columns and indexes in place; its records claim."""

from __future__ import annotations

import uuid

from fallthrough.types import Status
from fallthrough_postgresql.schema import SCHEMA_VERSION
from tests.postgresql.conftest import Server
from tests.postgresql.helpers import at, direct, open_backend


def test_a_version_2_database_gains_leases_and_its_records_can_be_claimed(server: Server) -> None:
    url = server.new_database()
    hooks = open_backend(url)
    batch_id = uuid.uuid4()
    hooks.fallthrough_create_batch(batch_id=batch_id, keys=["a", "b"], first_seq=1, metadata={}, created_at=at(1))
    hooks.fallthrough_close()
    with direct(url) as connection:
        # What version 2 had: no lease columns, no claim or listing index.
        connection.execute("ALTER TABLE processing_results DROP COLUMN lease_owner, DROP COLUMN lease_us")
        connection.execute("DROP INDEX processing_results_claimable")
        connection.execute("DROP INDEX fallthrough_batches_by_created")
        connection.execute("DELETE FROM fallthrough_schema_version")
        connection.execute("INSERT INTO fallthrough_schema_version VALUES (2)")
    again = open_backend(url)
    (claimed,) = again.fallthrough_claim_records(
        batch_id=batch_id, worker="w", limit=1, claimed_at=at(5), lease_until=at(50)
    )
    assert (claimed.key, claimed.status, claimed.lease_owner, claimed.lease_expires) == (
        "a",
        Status.PROCESSING,
        "w",
        at(50),
    )
    (listed,) = [
        item for item in again.fallthrough_list_batch_progress(before=None, limit=10) if item.batch.id == batch_id
    ]
    assert (listed.progress.pending, listed.progress.processing) == (1, 1)
    again.fallthrough_close()
    with direct(url) as connection:
        assert connection.execute("SELECT max(version) FROM fallthrough_schema_version").fetchone() == (SCHEMA_VERSION,)
        indexes = {row[0] for row in connection.execute("SELECT indexname FROM pg_indexes")}
        assert {"processing_results_claimable", "fallthrough_batches_by_created"} <= indexes
