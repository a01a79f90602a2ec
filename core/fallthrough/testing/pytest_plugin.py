"""The pytest plugin: ``pytest --fallthrough-url URL`` runs the conformance suite against a store.

Like SQLAlchemy's ``--dburi``: given a URL, the whole suite
(:class:`~fallthrough.testing.suite.BackendConformance`, with the plugin
that serves the URL in the default registry) runs in addition to whatever
tests were selected::

    pytest --fallthrough-url "postgresql://user@localhost/test"
    HYPOTHESIS_PROFILE=thorough pytest --fallthrough-url sqlite:///tmp/x.db -k random

It writes under fresh batch ids and collection names and deletes what it
wrote, so a persistent store that holds other data is safe to test.

pytest loads this module in every run wherever fallthrough is installed, so
it imports only pytest and the standard library, and does nothing unless
the option is given.
"""

from __future__ import annotations

import importlib.util

import pytest

_SUITE_MODULE = "fallthrough.testing.conformance"
_SUITE_NEEDS = ("hypothesis",)
"""What the suite needs beyond pytest (the ``conformance`` extra): found, never imported here."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fallthrough", "fallthrough backend conformance")
    group.addoption(
        "--fallthrough-url",
        dest="fallthrough_url",
        metavar="URL",
        default=None,
        help="run fallthrough's backend conformance suite against the store at URL "
        "(the backend plugin must be installed or registered). "
        "HYPOTHESIS_PROFILE=ci|thorough picks how hard it searches.",
    )


@pytest.hookimpl(trylast=True)  # after conftests that register a backend at runtime
def pytest_configure(config: pytest.Config) -> None:
    url = config.getoption("fallthrough_url", default=None)
    if not url:
        return
    missing = [module for module in _SUITE_NEEDS if importlib.util.find_spec(module) is None]
    if missing:
        raise pytest.UsageError(
            f"--fallthrough-url: the conformance suite needs {' and '.join(missing)}, which is not installed: "
            "pip install 'fallthrough[conformance]'"
        )
    # Imported only now: without the option this module must stay light.
    from fallthrough.errors import FallthroughError
    from fallthrough.registry import default_registry

    try:
        default_registry.create(url)  # the scheme and the plugin's URL options; no I/O
    except FallthroughError as error:
        # One clear message instead of the same error in every test.
        raise pytest.UsageError(f"--fallthrough-url: {error}") from None
    spec = importlib.util.find_spec(_SUITE_MODULE)
    if spec is None or spec.origin is None:
        raise pytest.UsageError(f"--fallthrough-url: cannot find {_SUITE_MODULE}")
    # Explicit file arguments are collected whatever python_files says; the
    # session reads config.args when collection starts, after this hook.
    if spec.origin not in config.args:
        config.args.append(spec.origin)
