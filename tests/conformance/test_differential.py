"""Every installed backend gives the same answers to the same call sequences.

Backends are discovered by name in the default registry and tested at the
URL :data:`TEST_URLS` gives for that name; a name with no known test URL is
reported as skipped. One Hypothesis state machine drives all of them at
once, and each answer is compared with the reference model's: exactly,
except that vector scores may differ within the tolerance and text
relevance may rank differently (see :mod:`fallthrough.testing.compare`).
Exact agreement with one model is agreement with each other, pairwise.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis.stateful import run_state_machine_as_test

from fallthrough.errors import BackendUnavailable
from fallthrough.registry import Registry, default_registry
from fallthrough.testing.drivers import HookDriver
from fallthrough.testing.profiles import conformance_settings
from fallthrough.testing.stateful import BackendFactory, make_differential_state_machine
from fallthrough.types import Capabilities

TEST_URLS: dict[str, tuple[str, ...]] = {
    "sqlite": ("sqlite://", "sqlite:///{tmp_path}/differential.db"),
    "reference": ("reference://",),
    "qdrant": ("qdrant+memory://", "qdrant+local:///{tmp_path}/qdrant-differential"),
    # The contrib distribution; present where it is installed (tox -e contrib, or by hand).
    "qdrant.edge": ("qdrant+edge:///{tmp_path}/edge-differential",),
}
"""Test URLs by backend name; ``{tmp_path}`` is the test's temporary directory."""

COVERED_ELSEWHERE = {
    # It needs the servers that its own test folder starts.
    "postgresql": "tests/postgresql/test_postgresql_differential.py",
}
"""Backends whose differential test lives next to the fixtures it needs."""

# The reference model takes part too (as a backend built from its URL, apart
# from the model the machine compares with), so at least two run even where
# no other backend is installed.
_REFERENCE_TARGET = "fallthrough.testing.model:ReferenceBackend"

INSTALLED = sorted(default_registry.names() | {"reference"})
UNTESTABLE = [name for name in INSTALLED if name not in TEST_URLS and name not in COVERED_ELSEWHERE]


def _registry() -> Registry:
    registry = Registry()
    if "reference" not in registry.names():
        registry.register("reference", _REFERENCE_TARGET)
    return registry


URL_TEMPLATES = [url for name in INSTALLED for url in TEST_URLS.get(name, ())]


def _urls(tmp_path: Path) -> list[str]:
    return [template.format(tmp_path=tmp_path) for template in URL_TEMPLATES]


def _open(registry: Registry, url: str) -> Capabilities | BackendUnavailable:
    """What the backend at ``url`` declares once open, or why it could not be reached."""
    driver = HookDriver(registry.create(url), url)
    try:
        return driver.open()
    except BackendUnavailable as error:
        return error
    finally:
        driver.close()


def test_installed_backends_agree_on_random_call_sequences(tmp_path: Path) -> None:
    registry = _registry()
    urls = [url for url in _urls(tmp_path) if isinstance(_open(registry, url), Capabilities)]
    factories: dict[str, BackendFactory] = {url: functools.partial(registry.create, url) for url in urls}
    assert len(factories) >= 2, f"only {list(factories)} could be opened"
    run_state_machine_as_test(make_differential_state_machine(factories), settings=conformance_settings())


@pytest.mark.parametrize("template", URL_TEMPLATES)
def test_each_test_url_opens_or_is_unavailable(template: str, tmp_path: Path) -> None:
    """An installed backend must at least open at its test URL; a server that is down is a skip, not a pass."""
    opened = _open(_registry(), template.format(tmp_path=tmp_path))
    if isinstance(opened, BackendUnavailable):
        pytest.skip(f"{template} is unreachable: {opened}")
    assert opened.records or opened.documents, f"{template} declares neither records nor documents"


if UNTESTABLE:

    @pytest.mark.parametrize("name", UNTESTABLE)
    def test_backend_has_a_test_url(name: str) -> None:
        pytest.skip(f"backend {name!r} is installed but TEST_URLS has no test URL for it; it is left out")


@pytest.mark.parametrize("name", sorted(COVERED_ELSEWHERE))
def test_a_backend_covered_elsewhere_has_its_differential_test_there(name: str) -> None:
    test_file = Path(__file__).parents[2] / COVERED_ELSEWHERE[name]
    assert "make_differential_state_machine" in test_file.read_text(encoding="utf-8")
