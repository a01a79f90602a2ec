"""Calling one backend plugin through its hooks, as the core does.

The conformance suite talks to a backend the way :class:`fallthrough.Store`
does, through a :class:`pluggy.PluginManager` holding the hook
specifications, so a plugin is checked with its real hook signatures, but
without the router: no fall-through or circuit breaker hides what the backend
answered.
"""

from __future__ import annotations

from typing import Any

import attrs
import pluggy

from .. import hookspecs
from ..clock import Stamper
from ..errors import InvalidInput, NotFound
from ..router import unimplemented_hooks
from ..types import Capabilities, to_micros

SPECIFIED_ERRORS: tuple[type[Exception], ...] = (NotFound, InvalidInput)
"""The errors a hook may raise by contract; any other exception is a failure of the backend."""


@attrs.frozen
class Outcome:
    """What one hook call gave: a return value, or one of the specified errors."""

    value: Any = None
    error: Exception | None = None

    def unwrap(self) -> Any:
        """The value, or the error raised again."""
        if self.error is not None:
            raise self.error
        return self.value


_VERSIONS = Stamper()


def fresh_version() -> int:
    """A document version from the wall clock, newer than every one this function gave before.

    For tests that call ``fallthrough_upsert_documents`` and
    ``fallthrough_delete_documents`` directly, in order, as the core's
    stamper would stamp them; being wall-clock based, they are newer than
    what an earlier run left in a persistent store.
    """
    return to_micros(_VERSIONS.now())


class HookDriver:
    """One backend plugin registered alone on its own plugin manager."""

    def __init__(self, plugin: object, name: str = "backend") -> None:
        self.plugin = plugin
        self.name = name
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._pm.register(plugin, name=name)
        # A misspelt hook or a wrong argument name fails here, not mid-test.
        self._pm.check_pending()

    def call(self, hook: str, **arguments: Any) -> Any:
        """Call ``hook`` with keyword arguments and return its result; errors propagate."""
        return getattr(self._pm.hook, hook)(**arguments)

    def implements(self, hook: str) -> bool:
        """Whether the plugin has an implementation of ``hook`` (some hooks are optional)."""
        return any(caller.name == hook for caller in self._pm.get_hookcallers(self.plugin) or ())

    def outcome(self, hook: str, **arguments: Any) -> Outcome:
        """Call ``hook``, catching only the errors a hook may raise by contract."""
        try:
            return Outcome(value=self.call(hook, **arguments))
        except SPECIFIED_ERRORS as error:
            return Outcome(error=error)

    def open(self) -> Capabilities:
        """Open the backend (the hook is idempotent) and return its declared capabilities."""
        self.call("fallthrough_open")
        capabilities = self.call("fallthrough_capabilities")
        if not isinstance(capabilities, Capabilities):
            raise AssertionError(
                f"{self.name}: fallthrough_capabilities returned {capabilities!r}, not a fallthrough.Capabilities"
            )
        # What a Store refuses at open, said once here rather than as a None answer in every test.
        missing = unimplemented_hooks(capabilities, self._pm.get_hookcallers(self.plugin) or ())
        if missing:
            raise AssertionError(f"{self.name}: declares {capabilities} but does not implement {', '.join(missing)}")
        return capabilities

    def close(self) -> None:
        self.call("fallthrough_close")


__all__ = ["SPECIFIED_ERRORS", "HookDriver", "Outcome", "fresh_version"]
