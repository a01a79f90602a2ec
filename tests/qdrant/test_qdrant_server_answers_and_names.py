"""Qdrant server answers the client raises on (overload, unreadable replies), API keys, and collection names."""

from __future__ import annotations

import contextlib
import http.server
import threading
import urllib.parse
from collections.abc import Iterator

import pytest

from fallthrough.errors import BackendUnavailable, InvalidInput
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.types import Document
from fallthrough_qdrant import QdrantBackend, QdrantProtocolError
from fallthrough_qdrant.schema import CollectionNames

SECRET = "review-key-never-shown"


class _CannedAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's canned status, headers and body."""

    def _answer(self) -> None:
        status, headers, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _answering(status: int, headers: dict[str, str], body: bytes) -> Iterator[int]:
    """A real HTTP server on a free port that gives one answer to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CannedAnswer)
    server.canned = (status, headers, body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


@pytest.mark.parametrize("retry_after", ["3", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_an_overloaded_server_asking_to_retry_later_is_unavailable(retry_after: str) -> None:
    """HTTP 429 with Retry-After: qdrant-client raises its own exceptions for it, not an HTTP error.

    Seconds give ``ResourceExhaustedResponse``; an HTTP date (also valid HTTP, say from a proxy) a bare
    ``QdrantException``.
    """
    body = b'{"status": {"error": "Too many requests"}, "time": 0}'
    with _answering(429, {"Retry-After": retry_after}, body) as port:
        driver = HookDriver(QdrantBackend(f"qdrant://127.0.0.1:{port}?api_key={SECRET}&timeout=2"))
        with pytest.raises(BackendUnavailable) as raised:
            driver.open()
    assert SECRET not in str(raised.value) and "429" in str(raised.value)


def test_an_answer_the_client_cannot_read_is_not_an_outage() -> None:
    """A 200 whose body is not what qdrant-client expects (another server, another version) must not fall through."""
    with _answering(200, {}, b'{"result": {"exists": "perhaps"}, "status": "ok", "time": 0}') as port:
        driver = HookDriver(QdrantBackend(f"qdrant://127.0.0.1:{port}?api_key={SECRET}&timeout=2"))
        with pytest.raises(QdrantProtocolError) as raised:
            driver.open()
    assert not isinstance(raised.value, BackendUnavailable)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("key", ["cl\u00e9-secrete", "two words", "line\nbreak", "tab\tkey"])
@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+grpc"])
def test_an_api_key_no_header_can_carry_is_invalid_input_that_never_shows_it(scheme: str, key: str) -> None:
    """Left to the drivers, such a key leaks in a UnicodeEncodeError's repr or becomes a gRPC 'outage'."""
    with pytest.raises(InvalidInput) as raised:
        QdrantBackend(f"{scheme}://127.0.0.1:9?api_key={urllib.parse.quote(key)}&timeout=1")
    assert key not in str(raised.value) and key not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__context__ is None


def test_collections_differing_in_case_get_qdrant_collections_differing_without_case(url: str) -> None:
    """Local mode and a server keep a collection in a directory of its name; macOS and Windows ignore case there."""
    names = CollectionNames("fallthrough_")
    collections = ["docs", "Docs", "DOCS", "dOcS", "d0cs", "docs-", "Docs_", "a", "A", "batches", "Batches"]
    qdrant_names = [names.batches, names.records]
    for collection in collections:
        qdrant_names += [names.plain_documents(collection), names.vector_documents(collection)]
    assert len({name.casefold() for name in qdrant_names}) == len(qdrant_names)
    # An all-lowercase name keeps its spelling: collections written before stay where they are.
    assert (names.plain_documents("docs-1_x"), names.vector_documents("docs-1_x")) == (
        "fallthrough_docs_docs-1_x",
        "fallthrough_vecs_docs-1_x",
    )
    driver = HookDriver(QdrantBackend(url), "qdrant")
    driver.open()
    for collection in collections:
        driver.call(
            "fallthrough_upsert_documents",
            collection=collection,
            documents=(Document("only", collection, vector=(1.0, float(len(collection)))),),
            version=fresh_version(),
        )
    for collection in collections:
        (document,) = driver.call("fallthrough_get_documents", collection=collection, ids=("only",))
        assert document.text == collection
    driver.close()
