"""Helpers of the PostgreSQL backend tests: a backend opened through its hooks, and a direct psycopg connection."""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from fallthrough.filters import parse_filter
from fallthrough.registry import Registry
from fallthrough.testing.drivers import HookDriver
from fallthrough_postgresql.connection import Database
from fallthrough_postgresql.filters import compile_filter

START = datetime(2026, 1, 1, tzinfo=UTC)


class Hooks:
    """A plugin's hooks as methods, called through pluggy as the core calls them."""

    def __init__(self, plugin: object) -> None:
        self.plugin = plugin
        self.driver = HookDriver(plugin, "postgresql")

    def __getattr__(self, hook: str) -> Any:
        return functools.partial(self.driver.call, hook)


def open_backend(url: str) -> Hooks:
    """A new backend for ``url``, built through the registry and opened."""
    hooks = Hooks(Registry().create(url))
    hooks.fallthrough_open()
    return hooks


def at(micros: int) -> datetime:
    return START + timedelta(microseconds=micros)


def opened_database(url: str, search_connections: int) -> Database:
    """A ``Database`` of the test's own over ``url``, its engine built (as the backend's first call builds it)."""
    database = Database(make_url(url).update_query_dict({"search_connections": str(search_connections)}))
    database.engine()
    return database


def direct(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A plain psycopg connection to the database at ``url``, to read what the backend stored."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)


def filter_only_plan(database: str, collection: str, spec: dict[str, Any], limit: int) -> str:
    """The EXPLAIN of the filter-only search the backend runs (see search.py) for the filter ``spec``."""
    condition, parameters = compile_filter(parse_filter(spec), "metadata_jsonb")  # type: ignore[arg-type]
    statement = (
        "EXPLAIN SELECT id, text, metadata::text, 0.0::float8 FROM fallthrough_documents "
        f"WHERE collection = %(collection)s AND text IS NOT NULL AND {condition} ORDER BY id LIMIT %(limit)s"
    )
    with direct(database) as conn:
        rows = conn.execute(statement, {**parameters, "collection": collection, "limit": limit}).fetchall()
    return "\n".join(row[0] for row in rows)


class SocketOnly:
    """What the plugin reads of a psycopg connection to widen or watch its socket: ``pgconn.socket``, the descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self.pgconn = self
        self.socket = sock.fileno()


@contextmanager
def interrupted_at_call(function: str, nth_call: int = 1) -> Iterator[list[int]]:
    """Ctrl-C in the block as SIGINT is delivered (between two bytecodes), as the ``nth_call`` of ``function`` starts.

    Yields a list holding the count of calls of ``function`` seen, to check the interrupt landed where meant.
    """
    calls = [0]

    def interrupt(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == function:
            calls[0] += 1
            if calls[0] == nth_call:
                sys.settrace(None)
                raise KeyboardInterrupt

    sys.settrace(interrupt)
    try:
        yield calls
    finally:
        sys.settrace(None)
