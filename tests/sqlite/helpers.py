"""Driving the SQLite backend beside the reference model, with the public conformance toolkit.

The plugin is tested with what any third-party plugin's author uses:
:class:`~fallthrough.testing.drivers.HookDriver`, :class:`fallthrough.testing.Twin`
and the comparisons of :mod:`fallthrough.testing.compare`. On top of those,
this plugin owes the model's answers exactly (:func:`assert_exactly`), where
the toolkit allows any plugin some room. The model's answer is the expected
one; nothing here copies an output of the SQLite backend.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from sqlalchemy.engine import make_url

from fallthrough.filters import parse_filter
from fallthrough.testing import twin as toolkit
from fallthrough.testing.compare import assert_same, assert_same_outcome
from fallthrough.testing.drivers import SPECIFIED_ERRORS, HookDriver, Outcome
from fallthrough.testing.stateful import EVERYTHING
from fallthrough.types import Hit, SearchQuery
from fallthrough.validation import check_limit, check_vector
from fallthrough_sqlite import SqliteBackend

Hooks = Any  # a Relay: one method per hook


class Relay:
    """A :class:`HookDriver`'s hooks as methods: ``relay.fallthrough_ping()`` is ``driver.call("fallthrough_ping")``."""

    def __init__(self, driver: HookDriver) -> None:
        self.driver = driver

    def __getattr__(self, hook: str) -> Any:
        return functools.partial(self.driver.call, hook)


def hooks_of(plugin: object) -> Hooks:
    """The hooks of ``plugin``, registered alone as the toolkit registers a plugin under test."""
    return Relay(HookDriver(plugin))


def assert_exactly(actual: object, expected: object, where: str = "value") -> None:
    """:func:`~fallthrough.testing.compare.assert_same`, and the same repr too.

    The toolkit compares JSON values, so it lets ``-0.0`` equal ``0.0`` and a
    dict's keys come in any order. The SQLite plugin stores JSON as text that
    loads back to the very value it was given, so here they must not.
    """
    assert_same(actual, expected, where)
    assert repr(actual) == repr(expected), f"{where}:\n  sqlite {actual!r}\n  model  {expected!r}"


def assert_same_answer(actual: Outcome, expected: Outcome, where: str) -> None:
    """:func:`~fallthrough.testing.compare.assert_same_outcome`, then exactly: the same error class or value."""
    assert_same_outcome(actual, expected, where)
    if expected.error is not None:
        assert type(actual.error) is type(expected.error), (
            f"{where}: raised {actual.error!r}, expected {expected.error!r}"
        )
    else:
        assert_exactly(_listed(actual.value), expected.value, where)


class Twin(toolkit.Twin):
    """The toolkit's :class:`~fallthrough.testing.Twin` on the SQLite backend, held to the model's exact answers."""

    def __init__(self, backend: SqliteBackend) -> None:
        driver = HookDriver(backend, "sqlite")
        super().__init__(driver, driver.open())
        self._micros = 1_790_000_000_000_000  # a plausible "now", advanced by every stamp

    def call(self, hook: str, **arguments: Any) -> Any:
        """Call ``hook`` on both: the same error class, or the same value exactly; a tuple is returned as a list."""
        expected = self.reference.outcome(hook, **arguments)
        actual = self.backend.outcome(hook, **arguments)
        assert_same_answer(actual, expected, f"sqlite: {hook}({arguments})")
        return _listed(actual.unwrap())

    def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        """Search both: the toolkit's :meth:`~fallthrough.testing.Twin.search` checks, then this plugin's own.

        Vector and filter-only answers must equal the model's exactly,
        scores included (the backend re-scores its top hits exactly as the
        model does). A text-only answer is ranked by the backend's own
        relevance, which the toolkit checks; each hit's text and metadata
        must still be exactly the model's, its score a float.
        """
        query = SearchQuery(
            None if vector is None else check_vector(vector), text, parse_filter(filter), check_limit(limit)
        )
        expected = self.reference.outcome("fallthrough_search", collection=collection, query=query)
        where = f"sqlite: fallthrough_search({collection!r}, {query!r})"
        try:
            hits = super().search(collection, text=text, vector=vector, filter=filter, limit=limit)
        except SPECIFIED_ERRORS as error:
            assert_same_answer(Outcome(error=error), expected, where)
            raise
        if query.vector is None and query.text is not None:
            every = self.reference.call(
                "fallthrough_search", collection=collection, query=attrs.evolve(query, limit=EVERYTHING)
            )
            matches = {hit.id: hit for hit in every}
            expected = Outcome([attrs.evolve(matches[hit.id], score=float(hit.score)) for hit in hits])
        assert_same_answer(Outcome(hits), expected, where)
        return hits

    def now(self) -> datetime:
        """A fresh timestamp, later than every one before."""
        self._micros += 1_000
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self._micros)

    def seq(self, count: int) -> int:
        """The first of ``count`` fresh sequence numbers."""
        self._micros += max(count, 1)
        return self._micros

    def create(
        self, keys: list[str], metadata: dict[str, Any] | None = None, batch_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        batch_id = batch_id or uuid.uuid4()
        self.call(
            "fallthrough_create_batch",
            batch_id=batch_id,
            keys=keys,
            first_seq=self.seq(len(keys)),
            metadata=metadata or {},
            created_at=self.now(),
        )
        return batch_id

    def all_records(self, batch_id: uuid.UUID) -> list[Any]:
        return self.records(batch_id, limit=100_000)


def _listed(value: Any) -> Any:
    """A hook may return any sequence where the model returns a list (a tuple, a ``kit.RecordPage``)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str | list) else value


def file_url(path: Path) -> str:
    return f"sqlite:///{path}"


def open_backend(url: str) -> tuple[SqliteBackend, Hooks]:
    """A backend of its own on ``url``, opened."""
    backend = SqliteBackend(make_url(url))
    hooks = hooks_of(backend)
    hooks.fallthrough_open()
    return backend, hooks
