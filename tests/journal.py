"""A journal of missed writes: the observer a real journal would build on, for tests."""

from __future__ import annotations

from typing import Any

from fallthrough import hookimpl


class Journal:
    """Records, per backend, every write it missed (the ``fallthrough_missed_write`` hook), in order."""

    def __init__(self) -> None:
        self.missed: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    @hookimpl
    def fallthrough_missed_write(self, backend_name: str, operation: str, arguments: dict[str, Any]) -> None:
        self.missed.setdefault(backend_name, []).append((operation, arguments))
