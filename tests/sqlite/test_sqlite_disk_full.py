"""A SQLite file on a full disk is a store that cannot serve: the next store serves, as PostgreSQL's full disk does.

The disk is real: a 512 KiB tmpfs mounted for the test. SQLite rolls back the
write that met the full disk, so the next store may take it whole. Raised as
the driver's error, it was a plugin's bug (``PluginError``) that failed every
call at once, the other stores' too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import fallthrough

KEYS_PER_BATCH = 100


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs, unmounted after the test; the test skips, saying why, where mounting is not allowed."""
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(volume)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=True)


def _keys(batch: int) -> list[str]:
    return [f"batch-{batch}-key-{index}-" + "x" * 200 for index in range(KEYS_PER_BATCH)]


def test_a_full_disk_is_the_store_unavailable_and_the_next_store_serves(small_volume: Path) -> None:
    url = f"sqlite:///{small_volume}/store.sqlite"
    store = fallthrough.connect(url, "sqlite://")
    try:
        created = []
        for batch in range(100):
            created.append(store.create_batch(_keys(batch)))
            (on_disk, _) = store.health()
            if on_disk.last_error is not None:
                break
        assert on_disk.last_error is not None, "the volume never filled"
        assert "database or disk is full" in on_disk.last_error
        assert on_disk.missed_writes >= 1
        # Every batch was created, the last one by the store in memory alone, and reads find it there.
        last = created[-1]
        assert store.progress(last.id).total == KEYS_PER_BATCH
        assert [record.key for record in store.records(last.id)] == _keys(len(created) - 1)
    finally:
        store.close(timeout=0)  # the writes the full disk missed stay unreplayed: no wait for them
    with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match="disk is full"):
        alone.create_batch(_keys(1000))
