"""Outages are BackendUnavailable, fast: a closed port, a server that never answers, a directory in use.

No Qdrant server runs here, so REST and gRPC are pointed at local ports: one
nothing listens on, and one that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable
from fallthrough.testing.drivers import HookDriver
from fallthrough_qdrant import QdrantBackend

SECRET = "never-show-this-key"


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never says a word; closed after the test."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+grpc"])
def test_a_closed_port_is_unavailable_at_once(scheme: str, closed_port: int) -> None:
    driver = HookDriver(QdrantBackend(f"{scheme}://127.0.0.1:{closed_port}?api_key={SECRET}&timeout=2"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as raised:
        driver.call("fallthrough_open")
    assert time.monotonic() - started < 2, "a refused connection must not wait for the timeout"
    assert SECRET not in str(raised.value)
    assert str(closed_port) in str(raised.value)  # the message names the store
    driver.close()


@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+grpc"])
def test_a_server_that_never_answers_times_out_as_unavailable(scheme: str, silent_port: int) -> None:
    driver = HookDriver(QdrantBackend(f"{scheme}://127.0.0.1:{silent_port}?timeout=1"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        driver.call("fallthrough_open")
    assert time.monotonic() - started < 1 * 3 + 2, "the timeout must bound a call"
    driver.close()


def test_hooks_of_a_backend_that_never_opened_are_unavailable() -> None:
    driver = HookDriver(QdrantBackend("qdrant+memory://"))
    with pytest.raises(BackendUnavailable, match="not open"):
        driver.call("fallthrough_ping")
    driver.close()  # closing a never-opened backend is fine


def test_a_directory_open_in_another_client_is_unavailable_and_says_why(tmp_path: Path) -> None:
    url = f"qdrant+local:///{tmp_path}/store"
    first = HookDriver(QdrantBackend(url))
    first.open()
    second = HookDriver(QdrantBackend(url))
    with pytest.raises(BackendUnavailable, match="already open by another Qdrant client"):
        second.call("fallthrough_open")
    # Once the first lets go, the core's next open attempt succeeds.
    first.close()
    second.open()
    second.call("fallthrough_ping")
    second.close()


def test_a_directory_turned_read_only_is_unavailable_and_the_next_store_serves(
    tmp_path: Path, read_only: Callable[[Sequence[Path]], None]
) -> None:
    """Local mode keeps each collection's points in a SQLite file: one made read-only refuses the write."""
    url = f"qdrant+local:///{tmp_path}/qdrant"
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["customer-4711-cement"])
    read_only(sorted(tmp_path.glob("qdrant/collection/*/storage.sqlite")))

    with fallthrough.connect(url, "sqlite://") as store:
        assert store.progress(batch.id).total == 1  # reads still work
        created = store.create_batch(["customer-4711-sand"])
        (on_disk, _) = store.health()
        assert on_disk.last_error is not None and "readonly database" in on_disk.last_error
        assert "customer-4711" not in on_disk.last_error
        assert on_disk.pending_hints == 1 and not on_disk.serves_reads
        assert store.progress(created.id).total == 1  # served by the store in memory


def test_a_disk_remounted_read_only_is_unavailable_from_the_open_and_the_next_store_serves(
    small_volume: Path,
) -> None:
    """The realistic case: the whole disk read-only (as after errors), so even the directory's lock cannot be taken."""
    url = f"qdrant+local:///{small_volume}/qdrant"
    with fallthrough.connect(url) as store:
        batch = store.create_batch(["customer-4711-cement"])
    subprocess.run(["mount", "-o", "remount,ro", str(small_volume)], check=True)

    with fallthrough.connect(url, "sqlite://") as store:
        created = store.create_batch(["customer-4711-sand"])
        assert store.progress(created.id).total == 1  # served by the store in memory
        (on_disk, _) = store.health()
        assert on_disk.last_error is not None and "cannot use its files" in on_disk.last_error
        assert "Read-only file system" in on_disk.last_error and ".lock" in on_disk.last_error
        with pytest.raises(fallthrough.NotFound):  # the one store serving never had it
            store.progress(batch.id)
