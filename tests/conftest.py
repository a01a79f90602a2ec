from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytester must be enabled in the top-level conftest (pytest refuses
# pytest_plugins anywhere deeper); the conformance tests use it to run the
# suite in-process and inspect its outcome.
pytest_plugins = ["pytester"]


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KiB filesystem (tmpfs), unmounted after the test: a disk that fills up.

    The test skips, saying why, where mounting is not allowed (it needs CAP_SYS_ADMIN).
    """
    volume = tmp_path / "volume"
    volume.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(volume)], capture_output=True, text=True
        )
    except OSError as error:  # no mount command
        pytest.skip(f"a small tmpfs cannot be mounted here: {error}")
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=True)
