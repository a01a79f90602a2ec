"""Deliberately faulty plugins, for the tests of how the core refuses them."""

from __future__ import annotations

from typing import Any

from fallthrough import Capabilities, hookimpl


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
