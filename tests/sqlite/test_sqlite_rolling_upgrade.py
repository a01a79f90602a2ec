"""A process whose file a newer release migrated while it ran stops writing, instead of breaking the new schema.

Several processes share one SQLite file (docs/workers.md). In a rolling
upgrade, a process of the new release opens the file and migrates it while
processes of the old one still run. The schema version is read at open, so
those went on writing by their own rules: a release before schema version 7
kept inserting records for the insert trigger version 7 had dropped to count,
and the progress counts went wrong for good (a review's reproduction: a
runner over such a batch never returned). The migration here is what a newer
release's would be: DDL and a higher version, committed by another connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import fallthrough
from fallthrough_sqlite.schema import SCHEMA_VERSION
from tests.sqlite.helpers import file_url


def migrate_as_a_newer_release(path: Path, *, ddl: bool = True) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        if ddl:
            connection.execute("CREATE TABLE release_next_thing (x INTEGER)")
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        connection.execute("COMMIT")
    finally:
        connection.close()


@pytest.mark.parametrize("ddl", [True, False], ids=["tables-changed", "data-only"])
def test_writes_stop_once_a_newer_release_migrated_the_file_and_say_why(tmp_path: Path, ddl: bool) -> None:
    path = tmp_path / "shared.db"
    with fallthrough.connect(file_url(path)) as store:
        batch = store.create_batch(["sku-1", "sku-2"])
        migrate_as_a_newer_release(path, ddl=ddl)
        with pytest.raises(fallthrough.AllBackendsFailed) as raised:
            store.add_records(batch.id, ["sku-3"])
        (cause,) = raised.value.causes.values()
        assert isinstance(cause, fallthrough.BackendUnavailable)
        assert f"migrated to schema version {SCHEMA_VERSION + 1} by a newer release" in str(cause)
        with pytest.raises(fallthrough.AllBackendsFailed):
            store.update(batch.id, "sku-1", "completed")
        assert store.progress(batch.id).pending == 2  # reads still serve
    rows = sqlite3.connect(path).execute("SELECT key, status FROM records ORDER BY key").fetchall()
    assert rows == [("sku-1", "pending"), ("sku-2", "pending")]


def test_the_next_store_takes_the_writes_the_migrated_file_refuses(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = fallthrough.connect(file_url(path), "sqlite://")
    try:
        batch = store.create_batch(["sku-1"])
        migrate_as_a_newer_release(path)
        store.update(batch.id, "sku-1", "completed", result={"rows": 3})
        assert store.get_record(batch.id, "sku-1").status == "completed"  # type: ignore[union-attr]
        assert store.health()[0].pending_hints == 1
    finally:
        store.close(timeout=0)


def test_ddl_of_this_release_and_other_processes_of_it_do_not_stop_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with fallthrough.connect(file_url(path)) as first, fallthrough.connect(file_url(path)) as second:
        batch = first.create_batch(["sku-1"])
        connection = sqlite3.connect(path)
        with connection:
            connection.execute("CREATE TABLE application_audit (x INTEGER)")  # the application's own DDL
        connection.close()
        second.upsert_documents("materials", [fallthrough.Document("m1", "Цемент М500")])
        first.update(batch.id, "sku-1", "completed")
        second.update(batch.id, "sku-1", "failed", error="late")
        assert first.progress(batch.id).failed == 1


def test_a_version_table_dropped_by_hand_does_not_stop_the_writes(tmp_path: Path) -> None:
    """Nothing then says a newer release came: the writes go on, as they did before the check."""
    path = tmp_path / "shared.db"
    with fallthrough.connect(file_url(path)) as store:
        batch = store.create_batch(["sku-1"])
        connection = sqlite3.connect(path)
        with connection:
            connection.execute("DROP TABLE schema_version")
        connection.close()
        store.update(batch.id, "sku-1", "completed")
        assert store.progress(batch.id).completed == 1
