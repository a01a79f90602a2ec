"""Driving the SQLite backend beside the reference model, through pluggy as the core does.

Every test asks the same of :class:`~fallthrough.testing.model.ReferenceBackend`;
the model's answer is the expected one. Nothing here copies an output of the
SQLite backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pluggy
from sqlalchemy.engine import make_url

import fallthrough.hookspecs
from fallthrough.filters import parse_filter
from fallthrough.testing.model import ReferenceBackend
from fallthrough.types import Hit, SearchQuery
from fallthrough.validation import check_vector
from fallthrough_sqlite import SqliteBackend

Hooks = Any  # pluggy's HookRelay: one attribute per hook


def hooks_of(plugin: object) -> Hooks:
    """The hook relay of a PluginManager holding ``plugin`` alone."""
    manager = pluggy.PluginManager(fallthrough.hookspecs.PROJECT_NAME)
    manager.add_hookspecs(fallthrough.hookspecs)
    manager.register(plugin)
    manager.check_pending()
    return manager.hook


def strictly_equal(actual: object, expected: object) -> bool:
    """Equality that keeps 1, 1.0 and True apart, at every depth, and -0.0 from 0.0."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        return list(actual) == list(expected) and all(strictly_equal(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple)
        return len(actual) == len(expected) and all(map(strictly_equal, actual, expected))
    if isinstance(expected, float):
        return repr(actual) == repr(expected)
    if attrs.has(type(expected)):
        names = [field.name for field in attrs.fields(type(expected))]  # type: ignore[arg-type]
        return all(strictly_equal(getattr(actual, name), getattr(expected, name)) for name in names)
    return actual == expected


class Twin:
    """The SQLite backend and the reference model, called side by side."""

    def __init__(self, backend: SqliteBackend) -> None:
        self.backend = backend
        self.sqlite = hooks_of(backend)
        self.model = hooks_of(ReferenceBackend())
        self.sqlite.fallthrough_open()
        self._micros = 1_790_000_000_000_000  # a plausible "now", advanced by every stamp

    def call(self, hook: str, **arguments: Any) -> Any:
        """Call ``hook`` on both; they must raise the same error class or return strictly equal values."""
        expected, expected_error = _outcome(getattr(self.model, hook), arguments)
        actual, actual_error = _outcome(getattr(self.sqlite, hook), arguments)
        if expected_error is not None:
            assert type(actual_error) is type(expected_error), (
                f"{hook}: expected {type(expected_error).__name__}, got {actual_error!r} / {actual!r}"
            )
            raise actual_error
        assert actual_error is None, f"{hook}: raised {actual_error!r}, expected {expected!r}"
        if isinstance(actual, tuple):
            actual = list(actual)
        assert strictly_equal(actual, expected), f"{hook}({arguments}):\n  sqlite {actual!r}\n  model  {expected!r}"
        return actual

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

    def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> list[Hit]:
        """Search both and hold the backend to what the spec fixes; return its hits.

        Vector and filter-only answers must equal the model's, scores
        included (the backend re-scores its top hits exactly as the model
        does). A text-only answer is ranked by the backend's own relevance:
        it must hold ``min(limit, matches)`` of the model's matches, scores
        descending and ties in id order.
        """
        query = SearchQuery(
            vector=None if vector is None else check_vector(vector),
            text=text,
            filter=parse_filter(filter),
            limit=limit,
        )
        everything = attrs.evolve(query, limit=10_000)
        expected, expected_error = _outcome(self.model.fallthrough_search, {"collection": collection, "query": query})
        actual, actual_error = _outcome(self.sqlite.fallthrough_search, {"collection": collection, "query": query})
        if expected_error is not None:
            assert type(actual_error) is type(expected_error), f"expected {expected_error!r}, got {actual_error!r}"
            raise actual_error
        assert actual_error is None, f"raised {actual_error!r}, expected {expected!r}"
        hits = list(actual)
        if query.vector is not None or query.text is None:
            assert strictly_equal(hits, expected), f"{query}:\n  sqlite {hits!r}\n  model  {expected!r}"
            return hits
        matches = {hit.id: hit for hit in self.model.fallthrough_search(collection=collection, query=everything)}
        assert len(hits) == min(limit, len(matches)), f"{query}: {hits!r}, matches {sorted(matches)}"
        for hit in hits:
            assert hit.id in matches, f"{query}: {hit.id!r} does not match"
            assert type(hit.score) is float
            assert strictly_equal((hit.text, hit.metadata), (matches[hit.id].text, matches[hit.id].metadata))
        ranking = [(-hit.score, hit.id) for hit in hits]
        assert ranking == sorted(ranking), f"{query}: not best first with ties by id: {hits!r}"
        return hits

    def all_records(self, batch_id: uuid.UUID) -> list[Any]:
        records: list[Any] = self.call(
            "fallthrough_list_records", batch_id=batch_id, status=None, after=None, limit=100_000
        )
        return records


def _outcome(hook: Any, arguments: dict[str, Any]) -> tuple[Any, BaseException | None]:
    try:
        return hook(**arguments), None
    except Exception as error:
        return None, error


def file_url(path: Path) -> str:
    return f"sqlite:///{path}"


def open_backend(url: str) -> tuple[SqliteBackend, Hooks]:
    """A backend of its own on ``url``, opened."""
    backend = SqliteBackend(make_url(url))
    hooks = hooks_of(backend)
    hooks.fallthrough_open()
    return backend, hooks
