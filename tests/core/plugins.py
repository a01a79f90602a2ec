"""Deliberately faulty plugins, for the tests of how the core refuses them."""

from __future__ import annotations

from typing import Any

from fallthrough import Capabilities, hookimpl
from fallthrough.testing import ReferenceBackend


class _Lifecycle:
    def __init__(self, url: Any) -> None:
        self.url = url

    @hookimpl
    def fallthrough_open(self) -> None:
        pass

    @hookimpl
    def fallthrough_close(self) -> None:
        pass

    @hookimpl
    def fallthrough_ping(self) -> None:
        pass


class MisspeltHookBackend(_Lifecycle):
    @hookimpl
    def fallthrough_progres(self, batch_id: Any) -> None:  # the missing "s" is the point
        pass


class RecordsWithoutProgressBackend(_Lifecycle):
    @hookimpl
    def fallthrough_capabilities(self) -> Capabilities:
        return Capabilities(records=True)


class UntranslatedDriverErrorBackend(ReferenceBackend):
    """A backend whose driver error escapes untranslated, its text quoting the statement and the caller's keys."""

    def __init__(self, url: Any) -> None:
        super().__init__()

    @hookimpl
    def fallthrough_create_batch(self, batch_id: Any, keys: Any, first_seq: Any, metadata: Any, created_at: Any) -> Any:
        raise RuntimeError(
            "constraint failed\n[SQL: INSERT INTO records (key) VALUES (?)]\n"
            f"[parameters: {tuple(keys)!r}]\nDETAIL: Key (key)=({keys[0]}) already exists."
        )
