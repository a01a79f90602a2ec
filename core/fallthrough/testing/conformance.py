"""The suite run by ``pytest --fallthrough-url URL``.

The pytest plugin (:mod:`fallthrough.testing.pytest_plugin`) adds this file
to the collection when the option is given; its name does not match
``test_*.py``, so it is never collected otherwise.
"""

from __future__ import annotations

import pytest

from ..registry import default_registry
from .suite import BackendConformance

URL_OPTION = "fallthrough_url"


class TestBackendConformance(BackendConformance):
    """The whole suite against the plugin that serves ``--fallthrough-url``, found in the default registry."""

    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest) -> object:
        url = request.config.getoption(URL_OPTION, default=None)
        if not url:
            pytest.skip("no --fallthrough-url given")
        return default_registry.create(url)
