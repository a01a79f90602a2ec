"""What every conformance class shares: the fixtures, capability gating and the guard."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import attrs
import pytest
from sqlalchemy.engine import URL

from ...types import Capabilities
from ..drivers import HookDriver
from ..twin import Twin

F = TypeVar("F", bound=Callable[..., Any])

_OPTED_OUT = "__conformance_skip__"
_NEEDS = "__conformance_needs__"
GUARD = "test_no_conformance_test_is_dropped"


def conformance_skip(reason: str) -> Callable[[F], F]:
    """Opt a backend out of one conformance test, saying why.

    Decorate the overriding method in your subclass::

        @conformance_skip("the store cannot hold keys longer than 255 bytes")
        def test_keys_round_trip_exactly(self) -> None: ...

    The test is reported as skipped with the reason, so the gap stays
    visible. Overriding or removing a suite test any other way fails
    :meth:`ConformanceSuite.test_no_conformance_test_is_dropped`.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("conformance_skip needs a reason, saying why the backend cannot meet this rule")

    def opt_out(test: F) -> F:
        setattr(test, _OPTED_OUT, reason)
        marked: F = pytest.mark.skip(reason=f"conformance rule opted out: {reason}")(test)
        return marked

    return opt_out


def needs(*capabilities: str) -> Callable[[F], F]:
    """Run a suite test only on backends that declare every one of ``capabilities``; skip it otherwise."""
    flags = {field.name for field in attrs.fields(Capabilities) if field.default is False}  # not parallel_calls
    unknown = set(capabilities) - flags
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}")

    def mark(test: F) -> F:
        setattr(test, _NEEDS, capabilities)
        return test

    return mark


def is_suite_class(cls: type) -> bool:
    """Whether ``cls`` is one of the suite's own classes (rather than a backend's subclass)."""
    return cls.__module__ == __package__ or cls.__module__.startswith(f"{__package__}.")


def dropped_tests(cls: type) -> list[str]:
    """The suite tests that ``cls`` overrides or removes without :func:`conformance_skip`."""
    suite_tests = {
        name for base in cls.__mro__ if is_suite_class(base) for name in base.__dict__ if name.startswith("test_")
    }
    dropped = []
    for name in sorted(suite_tests):
        owner = next(base for base in cls.__mro__ if name in base.__dict__)
        if is_suite_class(owner):
            continue
        if not getattr(owner.__dict__[name], _OPTED_OUT, None):
            dropped.append(f"{name} (replaced in {owner.__qualname__})")
    return dropped


class ConformanceSuite:
    """The base of every conformance class.

    A subclass provides a ``backend`` fixture that returns a new, unopened
    backend plugin object (the suite opens and closes it); it may point at a
    persistent store that already holds data. It may set
    :attr:`capabilities` to what the backend is expected to declare: every
    test that opens the backend then fails, with one message naming both,
    unless the backend declares exactly that, so a missing feature fails
    instead of silently skipping its tests.
    """

    capabilities: ClassVar[Capabilities | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if GUARD in cls.__dict__ and not is_suite_class(cls):
            raise TypeError(
                f"{cls.__qualname__} overrides {GUARD}, which guards the whole suite; it cannot be opted out"
            )

    @pytest.fixture
    def backend(self) -> object:
        pytest.fail(
            f"{type(self).__qualname__} must define a `backend` fixture returning a new, unopened backend plugin",
            pytrace=False,
        )

    @pytest.fixture
    def twin(self, backend: object) -> Iterator[Twin]:
        """The backend, opened, beside the reference model; what it wrote is deleted afterwards."""
        if isinstance(backend, str | URL):  # not echoed: a URL may hold a password
            pytest.fail(
                f"{type(self).__qualname__}'s `backend` fixture returned a URL ({type(backend).__name__}), "
                "not a plugin object: return fallthrough.Registry().create(url)",
                pytrace=False,
            )
        # Named after the plugin's class, which pluggy's errors (a hook's misspelt argument) then name.
        driver = HookDriver(backend, f"{type(backend).__qualname__} in {type(self).__qualname__}")
        declared = driver.open()
        try:
            self._fail_unless_declared(declared)
        except BaseException:
            driver.close()
            raise
        twin = Twin(driver, declared)
        try:
            yield twin
        finally:
            try:
                twin.clean_up()
            finally:
                driver.close()

    def _fail_unless_declared(self, declared: Capabilities) -> None:
        """Fail the test, naming both, unless the backend declares the :attr:`capabilities` the class expects."""
        expected = self.capabilities
        if expected is None or declared == expected:
            return
        differences = ", ".join(
            f"{field.name}: expected {getattr(expected, field.name)!r}, declared {getattr(declared, field.name)!r}"
            for field in attrs.fields(Capabilities)
            if getattr(expected, field.name) != getattr(declared, field.name)
        )
        pytest.fail(
            f"{type(self).__qualname__} expects the backend to declare {expected}, "
            f"but it declares {declared} ({differences}). Set `capabilities` to what the backend "
            "should declare (None takes whatever it declares), or fix its fallthrough_capabilities.",
            pytrace=False,
        )

    @pytest.fixture(autouse=True)
    def _skip_without_capability(self, request: pytest.FixtureRequest) -> None:
        needed: tuple[str, ...] = getattr(request.function, _NEEDS, ())
        if not needed:
            return
        twin: Twin = request.getfixturevalue("twin")
        missing = [capability for capability in needed if not getattr(twin.capabilities, capability)]
        if missing:
            pytest.skip(f"the backend does not declare {', '.join(missing)}")

    def test_no_conformance_test_is_dropped(self) -> None:
        """Every suite test runs, or is opted out with :func:`conformance_skip` and a reason."""
        dropped = dropped_tests(type(self))
        assert not dropped, (
            f"{type(self).__qualname__} overrides or removes conformance tests without saying why: "
            f"{', '.join(dropped)}. Decorate the override with @conformance_skip(reason=...)."
        )


__all__ = ["GUARD", "ConformanceSuite", "conformance_skip", "dropped_tests", "is_suite_class", "needs"]
