"""The conformance suite: base test classes a backend's test module subclasses.

::

    import pytest
    from fallthrough.testing.suite import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            return fallthrough.registry.Registry().create(f"mine:///{tmp_path}/x.db")

:class:`BackendConformance` runs everything; :class:`RecordsConformance`,
:class:`DocumentsConformance`, :class:`PagingConformance`, :class:`SearchConformance`,
:class:`ExtremesConformance`, :class:`RepairConformance`,
:class:`HostileInputConformance` and :class:`ClaimsConformance` run one part.
Tests a backend's capabilities do not cover are skipped with a reason. To
opt out of one rule, override its test with :func:`conformance_skip`;
overriding a test any other way fails ``test_no_conformance_test_is_dropped``.
"""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from ...types import Capabilities, Document
from ..profiles import conformance_settings
from ..stateful import make_state_machine
from ..twin import Twin
from ._base import ConformanceSuite, conformance_skip, dropped_tests, needs
from .claims import ClaimsConformance
from .documents import DocumentsConformance
from .extremes import ExtremesConformance
from .hostile import HostileInputConformance
from .paging import PagingConformance
from .records import RecordsConformance
from .repair import RepairConformance
from .search import SearchConformance


class BackendConformance(
    RecordsConformance,
    DocumentsConformance,
    PagingConformance,
    SearchConformance,
    ExtremesConformance,
    RepairConformance,
    HostileInputConformance,
    ClaimsConformance,
):
    """The whole suite: records, documents, search, extremes, repair, claims, hostile input, random sequences."""

    def test_open_is_idempotent_and_ping_answers(self, twin: Twin) -> None:
        twin.backend.open()
        assert twin.backend.call("fallthrough_ping") is None

    def test_opening_again_keeps_what_was_written(self, twin: Twin) -> None:
        """The core opens a backend again after any outage: an open that rebuilt the store would lose it all."""
        batch_id = twin.new_batch(["a", "b"]) if twin.capabilities.records else None
        collection = twin.new_collection() if twin.capabilities.documents else None
        if collection is not None:
            twin.upsert(collection, Document("d", "kept", metadata={"n": 1}))
        twin.backend.open()
        if batch_id is not None:
            assert [record.key for record in twin.records(batch_id)] == ["a", "b"]
        if collection is not None:
            assert [
                document.id for document in twin.call("fallthrough_get_documents", collection=collection, ids=("d",))
            ] == ["d"]

    def test_declares_the_expected_capabilities(self, twin: Twin) -> None:
        declared = twin.backend.open()
        assert isinstance(declared, Capabilities)
        if self.capabilities is not None:
            assert declared == self.capabilities, (
                f"the backend declares {declared}, the test expects {self.capabilities}"
            )
        assert declared.documents or not declared.search_parts, "search flags without documents: nothing to search"

    def test_random_hook_sequences_match_the_reference_model(self, twin: Twin) -> None:
        """Hypothesis drives the backend through random call sequences; see :mod:`fallthrough.testing.stateful`.

        Each run opens the same backend again (opening is idempotent) and
        writes under fresh batch ids and collection names, so runs do not
        see each other's data.
        """
        machine = make_state_machine(
            lambda: twin.backend.plugin, capabilities=twin.capabilities, close=False, name=type(self).__qualname__
        )
        run_state_machine_as_test(machine, settings=conformance_settings())


__all__ = [
    "BackendConformance",
    "ClaimsConformance",
    "ConformanceSuite",
    "DocumentsConformance",
    "ExtremesConformance",
    "HostileInputConformance",
    "PagingConformance",
    "RecordsConformance",
    "RepairConformance",
    "SearchConformance",
    "conformance_skip",
    "dropped_tests",
    "needs",
]
