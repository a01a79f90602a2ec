"""Finding the plugin that serves a URL.

Lookup order, as in SQLAlchemy's dialect loader: names registered at
runtime with :meth:`Registry.register` first, then the ``fallthrough.backends``
entry points. For ``name+driver://`` the entry point ``name.driver`` is
tried before ``name``.

Entry points are imported only when their scheme is used (or when
:meth:`Registry.available` is asked to report on them), one at a time, so a
plugin that fails to import breaks nothing but its own scheme: using it
gives a :class:`~fallthrough.errors.UnknownBackend` naming the plugin and
the import error, and a :class:`PluginLoadWarning`.

There is one default registry per process, :data:`default_registry`, which
:func:`register` and :func:`fallthrough.connect` use; it plays the part that
the entry point table itself plays. Tests and applications that want
isolation build their own :class:`Registry` and pass it to ``connect``.
"""

from __future__ import annotations

import functools
import importlib
import threading
import warnings
from collections.abc import Callable, Collection
from importlib import metadata

from sqlalchemy.engine import URL

from .errors import PluginError, UnknownBackend, scrubbed
from .types import BackendInfo
from .urls import parse_url, plugin_names, redact_factory_text

ENTRY_POINT_GROUP = "fallthrough.backends"

BackendFactory = Callable[[URL], object]
"""Builds a backend plugin object for one URL. Must not do I/O."""


class PluginLoadWarning(UserWarning):
    """An installed backend plugin could not be imported."""


def _import_target(target: str) -> BackendFactory:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"target must look like 'package.module:attribute', got {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def checked_secret_keys(name: str, url: URL, declare: Callable[[], object]) -> frozenset[str]:
    """What ``declare`` (a plugin's ``fallthrough_secret_url_keys``) answers, checked; None is no option.

    :param name: the backend's name, for the message.
    :param url: its URL; the message shows its scheme only.
    :raises PluginError: ``declare`` raised, or answered anything but a
        collection of str. Which options are secret is then unknown, and an
        error's text may quote one: the message names the scheme and the
        error's type only, and chains nothing.
    """
    raised: str | None = None
    try:
        declared = declare()
    except Exception as error:
        raised = type(error).__name__
    if raised is not None:  # raised outside the except block, so that the error is not chained as its context
        raise PluginError(f"backend {name!r} ({url.drivername}://): fallthrough_secret_url_keys raised {raised}")
    if declared is None:
        return frozenset()
    # Not an iterator either: checking its names would use them up, and then none would be masked.
    if (
        isinstance(declared, str)
        or not isinstance(declared, Collection)
        or not all(isinstance(key, str) for key in declared)
    ):
        raise PluginError(
            f"backend {name!r} ({url.drivername}://): fallthrough_secret_url_keys must return a collection of str"
        )
    return frozenset(declared)


class Registry:
    """Maps backend names to plugin factories. Thread-safe."""

    def __init__(self, *, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        """``entry_point_group=None`` gives a registry that sees only :meth:`register`."""
        self._group = entry_point_group
        self._lock = threading.Lock()
        self._registered: dict[str, str] = {}
        self._loaded: dict[str, BackendFactory] = {}

    def register(self, name: str, target: str) -> None:
        """Serve ``name`` (``"qdrant"`` or ``"qdrant.edge"``) with the factory at ``target``.

        ``target`` is ``"package.module:attribute"``. It is imported when the
        name is first used. A registration overrides any entry point of the
        same name.
        """
        if not name or "://" in name:
            raise ValueError(f"register() takes a backend name like 'sqlite' or 'qdrant.edge', got {name!r}")
        with self._lock:
            self._registered[name] = target
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget a runtime registration; entry points of the name show again."""
        with self._lock:
            self._registered.pop(name, None)
            self._loaded.pop(name, None)

    def load(self, url: str | URL) -> BackendFactory:
        """Return the factory that serves ``url``.

        :raises UnknownBackend: no plugin serves the scheme (the message
            lists the ones that are installed), or its plugin fails to import.
        """
        parsed = parse_url(url)
        for name in plugin_names(parsed):
            factory = self._load_name(name)
            if factory is not None:
                return factory
        installed = ", ".join(sorted(self.names())) or "none"
        if self is default_registry:
            register = "register one with fallthrough.registry.register()"
        else:
            # fallthrough.registry.register() would not help: it registers on the default registry, not this one.
            register = (
                "register one with register() on this Registry "
                "(fallthrough.registry.register() registers on the default registry only)"
            )
        raise UnknownBackend(
            f"no backend plugin serves {parsed.drivername!r}:// (installed: {installed}); "
            f"install the plugin that provides it, or {register}"
        )

    def create(self, url: str | URL) -> object:
        """Build the plugin object for ``url`` (no I/O happens yet).

        :raises UnknownBackend: as :meth:`load`.
        :raises FallthroughError: what the factory raised for a URL it cannot
            use (``InvalidInput`` as a rule), rebuilt as the Store rebuilds a
            hook's error, with its text masked: the URL's known secrets, and
            every URL it quotes without its password and option values, since
            the plugin could not declare its secret options yet
            (:func:`~fallthrough.urls.redact_factory_text`). Anything else the
            factory raised is a :class:`~fallthrough.errors.PluginError`,
            masked the same way.
        """
        parsed = parse_url(url)
        factory = self.load(parsed)
        try:
            return factory(parsed)
        except Exception as error:
            failure = scrubbed(error, functools.partial(redact_factory_text, url=parsed))
        # Raised here, not in the except block, which would chain the unmasked error as its context.
        raise failure

    def declared_secret_keys(self, url: str | URL) -> frozenset[str]:
        """The secret URL options ``url``'s plugin declares (``fallthrough_secret_url_keys``), checked.

        The plugin is built to ask (no I/O happens), and not opened. For a
        tool that must tell, without a Store, whether a URL holds a secret
        (an integration that serialises its URLs).

        :raises UnknownBackend: as :meth:`load`.
        :raises FallthroughError: as :meth:`create`, or a
            :class:`~fallthrough.errors.PluginError` as
            :func:`checked_secret_keys`.
        """
        parsed = parse_url(url)
        plugin = self.create(parsed)
        declare = getattr(plugin, "fallthrough_secret_url_keys", None)
        return checked_secret_keys(parsed.drivername, parsed, declare if callable(declare) else lambda: None)

    def names(self) -> set[str]:
        """Every backend name this registry can serve, without importing anything."""
        names = set(self._registered)
        names.update(entry_point.name for entry_point in self._entry_points())
        return names

    def available(self) -> list[BackendInfo]:
        """Describe every backend name, importing each to report whether it works."""
        infos = []
        with self._lock:
            registered = dict(self._registered)
        for name, target in sorted(registered.items()):
            infos.append(BackendInfo(name, target, None, None, self._probe(name)))
        for entry_point in sorted(self._entry_points(), key=lambda ep: ep.name):
            if entry_point.name in registered:
                continue
            dist = entry_point.dist
            infos.append(
                BackendInfo(
                    entry_point.name,
                    entry_point.value,
                    dist.name if dist else None,
                    dist.version if dist else None,
                    self._probe(entry_point.name),
                )
            )
        return infos

    def _probe(self, name: str) -> str | None:
        try:
            self._load_name(name)
        except UnknownBackend as error:
            return str(error)
        return None

    def _entry_points(self) -> list[metadata.EntryPoint]:
        if self._group is None:
            return []
        return list(metadata.entry_points(group=self._group))

    def _load_name(self, name: str) -> BackendFactory | None:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            target = self._registered.get(name)
        if target is not None:
            source = f"registered plugin {name!r} ({target})"
            loader: Callable[[], object] = functools.partial(_import_target, target)
        else:
            entry_point = next((ep for ep in self._entry_points() if ep.name == name), None)
            if entry_point is None:
                return None
            dist = entry_point.dist
            source = f"plugin {name!r} ({entry_point.value}" + (f", from {dist.name} {dist.version})" if dist else ")")
            loader = entry_point.load
        try:
            factory = loader()
        except Exception as error:
            message = f"{source} failed to import: {type(error).__name__}: {error}"
            warnings.warn(message, PluginLoadWarning, stacklevel=3)
            raise UnknownBackend(message) from error
        if not callable(factory):
            raise UnknownBackend(f"{source} is not callable; it must be a factory taking a URL")
        with self._lock:
            self._loaded[name] = factory
        return factory


default_registry = Registry()
"""The process-wide registry used by :func:`register` and :func:`fallthrough.connect`."""


def register(name: str, target: str) -> None:
    """Register a backend plugin at runtime on the default registry; see :meth:`Registry.register`."""
    default_registry.register(name, target)


def available_backends() -> list[BackendInfo]:
    """Installed and registered backends, with distribution, version and any import error."""
    return default_registry.available()


__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendFactory",
    "PluginLoadWarning",
    "Registry",
    "available_backends",
    "default_registry",
    "register",
]
