"""URL spellings, options, and keeping the API key out of every text."""

from __future__ import annotations

import logging

import pytest

from fallthrough import connect
from fallthrough.errors import InvalidInput
from fallthrough.registry import Registry
from fallthrough_qdrant import QdrantBackend
from fallthrough_qdrant.connection import API_KEY_VARIABLE, DEFAULT_PREFIX, DEFAULT_TIMEOUT

SECRET = "s3cr3t-api-key-value"


@pytest.mark.parametrize(
    ("url", "mode", "host", "port", "path"),
    [
        ("qdrant://db.example:6333", "rest", "db.example", 6333, None),
        ("qdrant://db.example", "rest", "db.example", 6333, None),
        ("qdrant+http://db.example:7000", "rest", "db.example", 7000, None),
        ("qdrant+https://db.example:6333", "https", "db.example", 6333, None),
        ("qdrant+grpc://db.example:6334", "grpc", "db.example", 6334, None),
        ("qdrant+grpc://db.example", "grpc", "db.example", 6334, None),
        ("qdrant+grpcs://db.example", "grpcs", "db.example", 6334, None),
        ("qdrant+local:///relative/dir", "local", None, None, "relative/dir"),
        ("qdrant+local:////absolute/dir", "local", None, None, "/absolute/dir"),
        ("qdrant+memory://", "memory", None, None, None),
    ],
)
def test_every_spelling_is_served_by_the_registered_plugin(
    url: str, mode: str, host: str | None, port: int | None, path: str | None
) -> None:
    backend = Registry().create(url)
    assert isinstance(backend, QdrantBackend)
    settings = backend.settings
    assert (settings.mode, settings.host, settings.port, settings.path) == (mode, host, port, path)
    assert settings.prefix == DEFAULT_PREFIX and settings.timeout == DEFAULT_TIMEOUT


@pytest.mark.parametrize("url", ["qdrant+edge:///dir", "qdrant+psycopg://h", "qdrant+rest://h"])
def test_unknown_drivers_are_refused_by_name(url: str) -> None:
    with pytest.raises(InvalidInput, match="does not serve") as raised:
        QdrantBackend(url)
    assert all(f"qdrant+{driver}" in str(raised.value) for driver in ("http", "https", "grpcs", "local", "memory"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("qdrant+memory://?timeout=0", "timeout"),
        ("qdrant+memory://?timeout=soon", "timeout"),
        ("qdrant+memory://?prefix=a/b", "prefix"),
        ("qdrant+memory://?colour=blue", "unknown qdrant URL option"),
        ("qdrant+memory://?prefix=a_&prefix=b_", r"\['prefix'\] more than once"),
        ("qdrant+memory:///some/dir", "takes no path"),
        ("qdrant+local://", "needs a directory"),
        ("qdrant+local://host/dir", "takes no host"),
        ("qdrant+local:///dir?api_key=a%20b", "no api_key"),
        ("qdrant+memory://?api_key=k3y", "no api_key"),
    ],
)
def test_bad_options_are_invalid_input(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        QdrantBackend(url)


def test_options_are_read_from_the_query() -> None:
    settings = QdrantBackend("qdrant://h:1?prefix=app_&timeout=0.5").settings
    assert (settings.prefix, settings.timeout) == ("app_", 0.5)


@pytest.mark.parametrize(
    "url",
    [
        f"qdrant+https://h:6333?api_key={SECRET}",
        f"qdrant+https://:{SECRET}@h:6333",
        f"qdrant+grpc://user:{SECRET}@h",
    ],
)
def test_the_api_key_comes_from_the_url_and_never_shows(url: str) -> None:
    backend = QdrantBackend(url)
    assert backend.settings.api_key == SECRET
    for text in (repr(backend), repr(backend.settings), backend.settings.name, str(vars(backend))):
        assert SECRET not in text


def test_the_api_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_VARIABLE, SECRET)
    backend = QdrantBackend("qdrant+https://h")
    assert backend.settings.api_key == SECRET
    assert SECRET not in repr(backend.settings)
    # The URL's own key wins over the environment.
    assert QdrantBackend("qdrant+https://h?api_key=other").settings.api_key == "other"


def test_a_store_never_shows_the_key_in_health_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """An unreachable server with a key: the error, the health report and the log all leave it out."""
    caplog.set_level(logging.DEBUG)
    store = connect(f"qdrant://127.0.0.1:9?api_key={SECRET}&timeout=1", "qdrant+memory://")
    try:
        batch = store.create_batch(["a"])  # the first backend is down; the memory one applies it
        assert store.get_batch(batch.id) is not None
        texts = [repr(health) for health in store.health()] + [record.getMessage() for record in caplog.records]
        assert any("Unavailable" in text or "unavailable" in text for text in texts)
        assert all(SECRET not in text for text in texts)
    finally:
        store.close()


@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+https", "qdrant+grpc"])
def test_a_server_at_an_ipv6_literal_is_down_not_a_broken_url(scheme: str) -> None:
    # Nothing listens on port 9: the call falls through to the next store, as for any server that is down.
    # Without its brackets the host read 'http://::1:9', which qdrant-client's HTTP layer refused as a URL.
    store = connect(f"{scheme}://[::1]:9?timeout=1", "qdrant+memory://")
    try:
        batch = store.create_batch(["a"])
        assert store.get_batch(batch.id) is not None
        first = store.health()[0]
        assert first.last_error is not None and "nvalidURL" not in first.last_error
    finally:
        store.close(timeout=0)  # the write the down server missed stays unreplayed: no wait for it
