"""Qdrant server answers the client raises on (overload, refused keys, unreadable replies), keys, collection names."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

import fallthrough
from fallthrough.errors import BackendUnavailable, InvalidInput
from fallthrough.testing.drivers import HookDriver, fresh_version
from fallthrough.types import Document
from fallthrough_qdrant import QdrantAccessDenied, QdrantBackend, QdrantProtocolError
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


class _Refusing(grpc.GenericRpcHandler):
    """A gRPC server's handler that refuses every call with one status code, noting the API key each call sent."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        self.keys_sent: list[str | None] = []

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.keys_sent.append(dict(context.invocation_metadata()).get("api-key"))
            context.abort(self.code, self.details)

        return grpc.unary_unary_rpc_method_handler(refuse)


@contextlib.contextmanager
def _grpc_refusing(code: grpc.StatusCode, details: str = "the key is not accepted") -> Iterator[tuple[int, _Refusing]]:
    """A real gRPC server, without TLS, on a free port, that refuses every call with ``code``."""
    handler = _Refusing(code, details)
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, handler
    finally:
        server.stop(grace=None)


@contextlib.contextmanager
def _refusing(scheme: str, denial: str) -> Iterator[int]:
    """A real server on a free port that refuses every call: REST with an HTTP status, gRPC with a status code."""
    if scheme == "qdrant":
        status = {"unauthenticated": 401, "forbidden": 403}[denial]
        with _answering(status, {}, b'{"status": {"error": "Must provide an API key"}, "time": 0}') as port:
            yield port
        return
    code = {"unauthenticated": grpc.StatusCode.UNAUTHENTICATED, "forbidden": grpc.StatusCode.PERMISSION_DENIED}[denial]
    with _grpc_refusing(code) as (port, _):
        yield port


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.parametrize("denial", ["unauthenticated", "forbidden"])
@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+grpc"])
def test_a_refused_api_key_is_the_store_unavailable_and_the_next_store_serves(scheme: str, denial: str) -> None:
    """A rotated key on the Qdrant store must stop that store only, as a PostgreSQL login refused does."""
    with _refusing(scheme, denial) as port:
        url = f"{scheme}://127.0.0.1:{port}?api_key={SECRET}&timeout=2"
        with pytest.raises(QdrantAccessDenied) as raised:
            HookDriver(QdrantBackend(url)).open()
        assert isinstance(raised.value, BackendUnavailable) and isinstance(raised.value, PermissionError)
        assert SECRET not in str(raised.value)
        expected = {
            ("qdrant", "unauthenticated"): "HTTP 401",
            ("qdrant", "forbidden"): "HTTP 403",
            ("qdrant+grpc", "unauthenticated"): "gRPC UNAUTHENTICATED",
            ("qdrant+grpc", "forbidden"): "gRPC PERMISSION_DENIED",
        }[scheme, denial]
        store = fallthrough.connect(url, "sqlite://")
        try:
            batch = store.create_batch(["a"])
            assert store.get_batch(batch.id) is not None
            (qdrant, _) = store.health()
            assert qdrant.last_error is not None and expected in qdrant.last_error
            assert SECRET not in qdrant.last_error and SECRET not in repr(store)
        finally:
            store.close(timeout=0)  # the writes the refused store missed stay unreplayed: no wait for them
        with fallthrough.connect(url) as alone, pytest.raises(fallthrough.AllBackendsFailed, match=re.escape(expected)):
            alone.create_batch(["a"])


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.parametrize("key_from", ["url", "environment"])
def test_grpc_speaks_tls_as_its_scheme_says_whether_a_key_is_given_or_not(
    key_from: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qdrant-client's default turns TLS on with a key: a key in the environment changed what the URL meant."""
    with _grpc_refusing(grpc.StatusCode.UNAUTHENTICATED) as (port, handler):
        if key_from == "environment":
            monkeypatch.setenv("QDRANT_API_KEY", SECRET)
        key = f"api_key={SECRET}&" if key_from == "url" else ""
        with pytest.raises(QdrantAccessDenied, match="gRPC UNAUTHENTICATED"):
            HookDriver(QdrantBackend(f"qdrant+grpc://127.0.0.1:{port}?{key}timeout=2")).open()
        assert handler.keys_sent and set(handler.keys_sent) == {SECRET}
        sent = len(handler.keys_sent)
        with pytest.raises(BackendUnavailable) as raised:
            HookDriver(QdrantBackend(f"qdrant+grpcs://127.0.0.1:{port}?{key}timeout=2")).open()
        # A TLS handshake this server cannot answer: no call reached it.
        assert not isinstance(raised.value, QdrantAccessDenied) and len(handler.keys_sent) == sent
        assert SECRET not in str(raised.value)


STRICT_MODE_REFUSAL = (
    "Forbidden: Strict mode error: Index required but not found for 'color' of one of the following types: "
    "[keyword]. Help: Create an index for this key or use a different filter."
)


@pytest.mark.parametrize("scheme", ["qdrant", "qdrant+grpc"])
def test_a_strict_mode_refusal_sent_as_forbidden_is_invalid_input_not_a_refused_key(scheme: str) -> None:
    """Qdrant 1.13 and 1.14 sent strict-mode refusals as 403 / PERMISSION_DENIED: about the call, not the key."""
    if scheme == "qdrant":
        body = json.dumps({"status": {"error": STRICT_MODE_REFUSAL}, "time": 0}).encode()
        server = _answering(403, {}, body)
    else:
        server = _grpc_refusing(grpc.StatusCode.PERMISSION_DENIED, STRICT_MODE_REFUSAL)
    with server as answering:
        port = answering if isinstance(answering, int) else answering[0]
        with pytest.raises(InvalidInput, match="Strict mode") as raised:
            HookDriver(QdrantBackend(f"{scheme}://127.0.0.1:{port}?timeout=2")).open()
    assert not isinstance(raised.value, BackendUnavailable)


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
