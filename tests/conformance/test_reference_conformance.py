"""The reference model passes its own conformance suite.

Most of the suite compares a backend with the model, which here compares the
model with a second copy of itself; what makes these runs meaningful is
that each test also asserts its rule outright, so the model is checked
against the written rules too.
"""

from __future__ import annotations

import pytest

from fallthrough.testing.model import ReferenceBackend
from fallthrough.testing.suite import BackendConformance
from fallthrough.types import Capabilities


class TestReferenceBackend(BackendConformance):
    capabilities = Capabilities(
        records=True, documents=True, vector_search=True, text_search=True, filter_search=True, claims=True
    )

    @pytest.fixture
    def backend(self) -> ReferenceBackend:
        return ReferenceBackend()
