from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
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


@pytest.fixture
def read_only() -> Iterator[Callable[[Sequence[Path]], None]]:
    """Make files immutable (``chattr +i``), as a disk remounted read-only would leave them; undone after the test.

    The test skips, saying why, where that is not allowed (it needs root and
    a filesystem with the attribute). Never pass a SQLite WAL index
    (``-shm``): it is mapped into memory, and an immutable one kills the
    process instead of failing the call.
    """
    frozen: list[Path] = []

    def freeze(paths: Sequence[Path]) -> None:
        assert paths and all(path.exists() for path in paths), f"nothing to make read-only in {paths}"
        done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"a file cannot be made immutable here (needs root and chattr): {done.stderr.strip()}")
        frozen.extend(paths)

    try:
        yield freeze
    finally:
        if frozen:
            subprocess.run(["chattr", "-i", *map(str, frozen)], check=True)
