"""PostgreSQL answers as every other store does.

One Hypothesis state machine drives PostgreSQL 18 with pgvector, PostgreSQL
15 without it, SQLite and Qdrant's local mode at once, and compares each
answer with the reference model's (see ``tests/conformance/test_differential.py``,
which covers the backends that need no server). PostgreSQL 15 takes part in
everything but vector search, which it does not declare.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
from hypothesis.stateful import run_state_machine_as_test

from fallthrough.registry import Registry
from fallthrough.testing.profiles import conformance_settings
from fallthrough.testing.stateful import BackendFactory, make_differential_state_machine


def test_postgresql_agrees_with_sqlite_and_qdrant_on_random_call_sequences(
    pgvector_database: str, request: pytest.FixtureRequest
) -> None:
    urls = [pgvector_database, "sqlite://", "qdrant+memory://"]
    # Where there is no PostgreSQL 15, its own conformance tests report that skip.
    with contextlib.suppress(pytest.skip.Exception):
        urls.append(request.getfixturevalue("plain_database"))
    registry = Registry()
    factories: dict[str, BackendFactory] = {url: functools.partial(registry.create, url) for url in urls}
    run_state_machine_as_test(make_differential_state_machine(factories), settings=conformance_settings())
