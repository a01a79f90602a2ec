"""Helpers of the PostgreSQL backend tests: a backend opened through its hooks, and a direct psycopg connection."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from fallthrough.registry import Registry
from fallthrough.testing.drivers import HookDriver

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


def direct(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A plain psycopg connection to the database at ``url``, to read what the backend stored."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True)
