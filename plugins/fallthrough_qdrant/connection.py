"""Which Qdrant a URL names, the client, and serialising local mode.

URL spellings (the contract; see ``docs/backends/qdrant.md``):

* ``qdrant://host:6333``: REST over http;
* ``qdrant+https://host:6333``: REST over https;
* ``qdrant+grpc://host:6334``: gRPC, without TLS;
* ``qdrant+grpcs://host:6334``: gRPC over TLS;
* ``qdrant+local:///relative/dir`` or ``qdrant+local:////absolute/dir``:
  qdrant-client's embedded local mode, persisted in that directory (the
  slashes follow SQLAlchemy's ``sqlite:///`` convention);
* ``qdrant+memory://``: local mode in memory, gone when the backend closes.

Query options: ``prefix`` (collection name prefix, default ``fallthrough_``),
``timeout`` (seconds per call, default 5) and ``api_key``. The API key may
also be the URL's password, or come from ``QDRANT_API_KEY``; it is never
shown in a repr, a log line or an error.

Local mode is a pure-Python emulation and not thread-safe (qdrant-client
issue 1193), so every hook of a local-mode backend runs under one lock. That
lock also makes each hook's reads and its conditional writes one atomic step.
A remote client is thread-safe and runs unlocked.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

import attrs
from qdrant_client import QdrantClient
from sqlalchemy.engine import URL

from fallthrough.errors import InvalidInput
from fallthrough.kit import Endpoint, Opened, UrlOptions
from fallthrough.urls import mask_url

from .errors import translate_errors
from .schema import CollectionNames, ensure_records_schema

Mode = Literal["rest", "https", "grpc", "grpcs", "local", "memory"]

DEFAULT_TIMEOUT = 5.0
"""Seconds a call may take before the backend counts as unavailable (``?timeout=`` overrides)."""
DEFAULT_PREFIX = "fallthrough_"
"""The collection name prefix (``?prefix=`` overrides)."""
DEFAULT_REST_PORT = 6333
DEFAULT_GRPC_PORT = 6334
API_KEY_VARIABLE = "QDRANT_API_KEY"

_MODES: dict[str, Mode] = {
    "": "rest",
    "http": "rest",
    "https": "https",
    "grpc": "grpc",
    "grpcs": "grpcs",
    "local": "local",
    "memory": "memory",
}
_PREFIX = re.compile(r"[A-Za-z0-9_-]{0,100}")
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_KNOWN_OPTIONS = frozenset({"prefix", "timeout", "api_key"})

ClientFactory = Callable[[], QdrantClient]


@attrs.frozen
class Settings:
    """What a ``qdrant`` URL asks for. ``api_key`` is left out of the repr."""

    mode: Mode
    name: str
    host: str | None = None
    port: int | None = None
    path: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT
    api_key: str | None = attrs.field(default=None, repr=False)

    @property
    def local(self) -> bool:
        return self.mode in ("local", "memory")

    @property
    def endpoint(self) -> Endpoint:
        """Names the store in messages; its secret is the API key, from the URL or the environment."""
        return Endpoint("qdrant", self.name, (self.api_key,) if self.api_key else ())

    @classmethod
    def from_url(cls, url: URL) -> Settings:
        driver = url.get_driver_name() if "+" in url.drivername else ""
        mode = _MODES.get(driver)
        if url.get_backend_name() != "qdrant" or mode is None:
            known = ", ".join(f"qdrant+{name}" for name in _MODES if name)
            raise InvalidInput(
                f"the qdrant backend does not serve {url.drivername}://; use qdrant://, {known}"
                " (qdrant+edge:// is the qdrant-edge plugin's)"
            )
        options = UrlOptions(url, "qdrant", _KNOWN_OPTIONS)
        prefix = options.text("prefix") or DEFAULT_PREFIX
        if not _PREFIX.fullmatch(prefix):
            raise InvalidInput("the qdrant URL's prefix must be up to 100 ASCII letters, digits, '_' or '-'")
        timeout = options.number("timeout", DEFAULT_TIMEOUT, low=0, high=3600, low_open=True)
        name = mask_url(url)
        if mode in ("local", "memory"):
            if url.host or url.port or url.username or url.password or "api_key" in url.query:
                # An API key here would be ignored: local mode has no server to send it to.
                raise InvalidInput(f"{url.drivername}:// takes no host, port or credentials (no api_key)")
            path = url.database or None
            if mode == "local" and path is None:
                raise InvalidInput(
                    "qdrant+local:// needs a directory: qdrant+local:///relative or qdrant+local:////absolute"
                )
            if mode == "memory" and path is not None:
                raise InvalidInput("qdrant+memory:// takes no path; use qdrant+local:///dir to persist")
            return cls(mode, name, path=path, prefix=prefix, timeout=timeout)
        api_key = options.text("api_key") or url.password or os.environ.get(API_KEY_VARIABLE) or None
        if api_key is not None and not _HEADER_SAFE.fullmatch(api_key):
            # Checked here, without showing it: httpx would raise a UnicodeEncodeError whose repr holds
            # the key, and gRPC an INTERNAL error that reads as an outage.
            raise InvalidInput("the qdrant API key must be printable ASCII without spaces (it travels in a header)")
        port = url.port or (DEFAULT_GRPC_PORT if mode in ("grpc", "grpcs") else DEFAULT_REST_PORT)
        return cls(mode, name, host=url.host or "localhost", port=port, prefix=prefix, timeout=timeout, api_key=api_key)

    def make_client(self) -> QdrantClient:
        """A qdrant-client for these settings. Remote clients connect lazily; local ones open now.

        The version check qdrant-client makes when it is built is skipped: it is
        a round trip of its own, and with the server down it warns instead of failing.
        """
        if self.mode == "memory":
            return QdrantClient(location=":memory:")
        if self.mode == "local":
            return QdrantClient(path=self.path)
        # qdrant-client takes whole seconds; round up so a timeout never shrinks to 0 (no limit).
        timeout = max(1, int(-(-self.timeout // 1)))
        # The URL parser took an IPv6 literal's brackets off; qdrant-client puts the host before ":port" as given.
        host = f"[{self.host}]" if self.host is not None and ":" in self.host else self.host
        # TLS is the scheme's to say, always: left to qdrant-client, it follows whether an API key is
        # given (from the URL or the environment), so a key made gRPC speak TLS to a server without it.
        if self.mode in ("grpc", "grpcs"):
            return QdrantClient(
                host=host,
                grpc_port=self.port or DEFAULT_GRPC_PORT,
                prefer_grpc=True,
                https=self.mode == "grpcs",
                api_key=self.api_key,
                timeout=timeout,
                check_compatibility=False,
            )
        return QdrantClient(
            host=host,
            port=self.port,
            https=self.mode == "https",
            api_key=self.api_key,
            timeout=timeout,
            check_compatibility=False,
        )


class Database:
    """One client, built at :meth:`open`, and the lock local mode needs.

    :param settings: from the URL.
    :param client_factory: builds the client; by default :meth:`Settings.make_client`.
        Tests pass a wrapper around a real client to watch the calls made.
    """

    def __init__(self, settings: Settings, client_factory: ClientFactory | None = None) -> None:
        self.settings = settings
        self.names = CollectionNames(settings.prefix)
        self._factory = client_factory or settings.make_client
        self.endpoint = settings.endpoint
        self._client: Opened[QdrantClient] = Opened(self.endpoint)
        # Re-entrant: a hook holding it may call helpers that take it again.
        self._local_lock = threading.RLock()
        # Local mode ignores payload indexes, and warns on each process's first one (the command line shows it).
        self.index_payloads = not settings.local

    def open(self) -> None:
        """Build the client and make sure the records collections and their indexes exist."""
        self._client.open(self._open_client)

    def _open_client(self) -> QdrantClient:
        with translate_errors(self.endpoint):
            client = self._factory()
            try:
                with self._serialised():
                    ensure_records_schema(client, self.names, self.index_payloads)
            except BaseException:
                client.close()
                raise
        return client

    def close(self, forget: Callable[[], None] | None = None) -> None:
        """Close the client; ``forget`` drops what was kept about its data, before another hook can open a new one."""
        with self._client.lock, self._serialised():
            client = self._client.close()
            if forget is not None:
                forget()
        if client is not None:
            client.close()

    @contextmanager
    def read(self) -> Iterator[QdrantClient]:
        """The client for a hook that reads: locked for the whole block in local mode, errors translated."""
        with self._serialised(), translate_errors(self.endpoint):
            yield self._client.get()

    def write(self) -> AbstractContextManager[QdrantClient]:
        """The client for a hook that writes; as :meth:`read` (Qdrant has no transactions to begin)."""
        return self.read()

    def _serialised(self) -> threading.RLock | nullcontext[None]:
        return self._local_lock if self.settings.local else nullcontext()


__all__ = ["API_KEY_VARIABLE", "DEFAULT_PREFIX", "DEFAULT_TIMEOUT", "ClientFactory", "Database", "Settings"]
