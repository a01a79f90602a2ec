"""A file of schema version 3 (before claims) gains the lease columns and the batches index in place."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from fallthrough.registry import Registry
from fallthrough.testing.twin import at
from fallthrough.types import Status
from fallthrough_sqlite.schema import SCHEMA_VERSION


def test_a_version_3_file_gains_leases_and_its_records_can_be_claimed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    backend = Registry().create(url)
    backend.fallthrough_open()  # type: ignore[attr-defined]
    batch_id = uuid.uuid4()
    backend.fallthrough_create_batch(batch_id, ["a", "b"], 1, {}, at(1))  # type: ignore[attr-defined]
    backend.fallthrough_close()  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "old.db") as connection:
        # What version 3 had: no lease columns, no index for listing batches newest first.
        connection.execute("ALTER TABLE records DROP COLUMN lease_owner")
        connection.execute("ALTER TABLE records DROP COLUMN lease_us")
        connection.execute("DROP INDEX batches_by_created")
        connection.execute("UPDATE schema_version SET version = 3")
    connection.close()
    again = Registry().create(url)
    again.fallthrough_open()  # type: ignore[attr-defined]
    (claimed,) = again.fallthrough_claim_records(batch_id, "w", 1, at(5), at(50))  # type: ignore[attr-defined]
    assert (claimed.key, claimed.status, claimed.lease_owner, claimed.lease_expires) == (
        "a",
        Status.PROCESSING,
        "w",
        at(50),
    )
    again.fallthrough_close()  # type: ignore[attr-defined]
    with sqlite3.connect(tmp_path / "old.db") as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "batches_by_created" in indexes
    connection.close()
