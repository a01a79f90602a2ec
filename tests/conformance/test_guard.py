"""The guard: a subclass cannot drop a suite test without saying why."""

from __future__ import annotations

import re

import pytest

from fallthrough.testing.suite import RecordsConformance

SUBCLASSES = """
import pytest
from fallthrough.testing.model import ReferenceBackend
from fallthrough.testing.suite import RecordsConformance, conformance_skip

class TestSilentlyDrops(RecordsConformance):
    @pytest.fixture
    def backend(self):
        return ReferenceBackend()

    def test_replayed_update_is_not_applied_again(self):
        pass

    test_progress_counts_records_by_status = None

class TestOptsOut(RecordsConformance):
    @pytest.fixture
    def backend(self):
        return ReferenceBackend()

    @conformance_skip("replays are deduplicated before they reach this store")
    def test_replayed_update_is_not_applied_again(self):
        pass
"""


def test_guard_fails_a_silent_override_and_accepts_an_explained_opt_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_subclasses=SUBCLASSES)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs", "-k", "dropped or replayed")

    # TestSilentlyDrops: the guard fails, its no-op override passes.
    # TestOptsOut: the guard passes, the opted-out test is skipped.
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*TestSilentlyDrops*test_no_conformance_test_is_dropped*",
            "*without saying why: test_progress_counts_records_by_status (replaced in TestSilentlyDrops), "
            "test_replayed_update_is_not_applied_again (replaced in TestSilentlyDrops)*",
            "SKIPPED*conformance rule opted out: replays are deduplicated before they reach this store",
        ]
    )


def test_the_guard_itself_cannot_be_overridden() -> None:
    with pytest.raises(TypeError, match="guards the whole suite"):

        class TestDisarmsTheGuard(RecordsConformance):
            def test_no_conformance_test_is_dropped(self) -> None:
                pass


def test_opting_out_needs_a_reason() -> None:
    from fallthrough.testing.suite import conformance_skip

    with pytest.raises(ValueError, match="reason"):
        conformance_skip("  ")


def test_no_two_parts_of_the_suite_share_a_test_name() -> None:
    """BackendConformance inherits every part: a name defined twice would run only one of the two tests."""
    from fallthrough.testing import suite

    parts = [
        getattr(suite, name) for name in suite.__all__ if name.endswith("Conformance") and name != "BackendConformance"
    ]
    owners: dict[str, list[str]] = {}
    for part in parts:
        for name in vars(part):
            if name.startswith("test_"):
                owners.setdefault(name, []).append(part.__name__)
    assert {name: found for name, found in owners.items() if len(found) > 1} == {}


def test_a_backend_fixture_returning_a_url_is_told_to_build_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_url_fixture="""
import pytest
from fallthrough.testing.suite import RecordsConformance

class TestGivesAUrl(RecordsConformance):
    @pytest.fixture
    def backend(self):
        return "postgresql://user:hunter2@localhost/db"

    def test_keys_round_trip_exactly(self, twin):
        pass
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "new_batch_holds_one_pending")
    result.stdout.fnmatch_lines(
        ["*returned a URL (str), not a plugin object: return fallthrough.Registry().create(url)*"]
    )
    assert "hunter2" not in result.stdout.str()


def test_a_hook_with_a_wrong_argument_name_is_reported_under_the_plugin_class(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_wrong_argument="""
import uuid
import pytest
from fallthrough.hookspecs import hookimpl
from fallthrough.testing.model import ReferenceBackend
from fallthrough.testing.suite import RecordsConformance

class MisnamedBackend(ReferenceBackend):
    @hookimpl
    def fallthrough_get_batch(self, batch_id: uuid.UUID, extra: int):
        return None

class TestMisnamed(RecordsConformance):
    @pytest.fixture
    def backend(self):
        return MisnamedBackend()
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "new_batch_holds_one_pending")
    result.stdout.fnmatch_lines(["*Plugin 'MisnamedBackend in TestMisnamed' for hook 'fallthrough_get_batch'*"])


def test_capabilities_other_than_the_backend_declares_fail_every_test_with_one_message(
    pytester: pytest.Pytester,
) -> None:
    """Not dozens of failures of hooks the backend never declared: each test says which capabilities differ."""
    pytester.makepyfile(
        test_mismatch="""
import pytest
from fallthrough import Capabilities
from fallthrough.hookspecs import hookimpl
from fallthrough.testing.model import ReferenceBackend
from fallthrough.testing.suite import BackendConformance, HostileInputConformance, RecordsConformance

class RecordsOnly(ReferenceBackend):
    capabilities = Capabilities(records=True)

class TestWhole(BackendConformance):
    capabilities = Capabilities(records=True, documents=True)

    @pytest.fixture
    def backend(self):
        return RecordsOnly()

class TestRecordsPart(RecordsConformance):
    capabilities = Capabilities(records=True, claims=True)

    @pytest.fixture
    def backend(self):
        return RecordsOnly()

class TestHostilePart(HostileInputConformance):
    capabilities = Capabilities(records=True, documents=True)

    @pytest.fixture
    def backend(self):
        return RecordsOnly()
"""
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-k", "not random and not eight_threads and not dropped", "-q"
    )
    outcomes = result.parseoutcomes()  # a fixture that fails makes an error at setup
    assert outcomes.get("errors", 0) > 100 and set(outcomes) <= {"errors", "deselected", "warnings"}, outcomes
    # Counted in the error sections only: the short summary repeats each message as far as the terminal is wide.
    sections = [line for line in result.stdout.lines if re.match(r"Test\w+ expects the backend to declare", line)]
    assert len(sections) == outcomes["errors"]
    result.stdout.fnmatch_lines(
        [
            "*TestWhole expects the backend to declare Capabilities(records=True, documents=True, *"
            "but it declares Capabilities(records=True, documents=False, *(documents: expected True, declared False)*",
            "*TestRecordsPart expects*(claims: expected True, declared False)*",
            "*TestHostilePart expects*(documents: expected True, declared False)*",
        ]
    )
