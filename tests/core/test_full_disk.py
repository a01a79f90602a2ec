"""A store on a full disk cannot serve: the next store serves, as for PostgreSQL's full disk (class 53).

The disk is real: a 512 KiB tmpfs mounted for the test (``small_volume``),
under a SQLite file and under qdrant-client's local mode, which keeps every
point in a SQLite file of its directory. Raised as the driver's
``sqlite3.OperationalError``, a full disk was a plugin's bug
(``PluginError``) that failed every call at once, the other stores' too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import fallthrough

KEYS_PER_BATCH = 100

ON_THE_VOLUME = {
    "sqlite": "sqlite:///{volume}/store.sqlite",
    "qdrant-local": "qdrant+local:///{volume}/qdrant",
}


def _keys(batch: int) -> list[str]:
    return [f"batch-{batch}-key-{index}-" + "x" * 200 for index in range(KEYS_PER_BATCH)]


@pytest.mark.parametrize("backend", sorted(ON_THE_VOLUME))
def test_a_full_disk_is_the_store_unavailable_and_the_next_store_serves(small_volume: Path, backend: str) -> None:
    url = ON_THE_VOLUME[backend].format(volume=small_volume)
    store = fallthrough.connect(url, "sqlite://")
    try:
        created = []
        for batch in range(100):
            created.append(store.create_batch(_keys(batch)))
            (on_disk, _) = store.health()
            if on_disk.last_error is not None:
                break
        assert on_disk.last_error is not None, "the volume never filled"
        assert "disk is full" in on_disk.last_error
        assert on_disk.missed_writes >= 1
        # Every batch was created, the last one at least by the store in memory, and reads find it there.
        last = created[-1]
        assert store.progress(last.id).total == KEYS_PER_BATCH
        assert [record.key for record in store.records(last.id)] == _keys(len(created) - 1)
    finally:
        store.close(timeout=0)  # the writes the full disk missed stay unreplayed: no wait for them
    with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match="disk is full"):
        for batch in range(1000, 1100):
            alone.create_batch(_keys(batch))


def _until_the_journal_is_full(store: fallthrough.Store) -> list[fallthrough.Batch]:
    """Create batches until the first store's missed write cannot be journaled either: it is marked instead."""
    created = []
    for batch in range(100):
        created.append(store.create_batch(_keys(batch)))
        if store.health()[0].needs_repair:
            return created
    raise AssertionError("the volume never filled")


def _remount(volume: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(volume)], check=True)


def test_a_repair_mark_the_full_disk_refused_is_saved_once_there_is_room_so_a_restart_keeps_it(
    small_volume: Path, tmp_path: Path
) -> None:
    """The obvious layout: the durable journal beside the SQLite file, on the disk that filled up."""
    urls = (f"sqlite:///{small_volume}/store.sqlite", f"sqlite:///{tmp_path}/other.sqlite")
    journal = f"sqlite:///{small_volume}/journal.sqlite"
    store = fallthrough.connect(*urls, journal=journal)
    try:
        created = _until_the_journal_is_full(store)
        _remount(small_volume, "4m")  # an operator frees space before the restart
    finally:
        store.close(timeout=0)
    with fallthrough.connect(*urls, journal=journal) as restarted:
        (full, other) = restarted.health()
        assert full.needs_repair and not full.serves_reads and other.serves_reads
        assert all(restarted.get_batch(batch.id) is not None for batch in created)


def test_closing_without_room_for_a_repair_mark_says_which_store_must_be_repaired(
    small_volume: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    urls = (f"sqlite:///{small_volume}/store.sqlite", f"sqlite:///{tmp_path}/other.sqlite")
    store = fallthrough.connect(*urls, journal=f"sqlite:///{small_volume}/journal.sqlite")
    try:
        (deleted, *_) = _until_the_journal_is_full(store)
        # A deletion the journal cannot take is kept in memory, and lost with the process: a repair would bring
        # the batch back from the store that missed it, so close names it.
        store.delete_batch(deleted.id)
        assert store.get_batch(deleted.id) is None
    finally:
        store.close(timeout=0)
    closing = [record.getMessage() for record in caplog.records if "closing the journal" in record.getMessage()]
    assert len(closing) == 2
    assert "without the repair marks of sqlite," in closing[0] and "Store.repair()" in closing[0]
    assert "without 1 deletions that backend sqlite missed" in closing[1]
    assert f"fallthrough_delete_batch of batch {deleted.id}" in closing[1]
