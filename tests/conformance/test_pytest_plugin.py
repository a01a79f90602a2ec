"""``pytest --fallthrough-url URL`` runs the suite; without it the plugin stays out of the way."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fallthrough.testing.suite import BackendConformance

REGISTER_REFERENCE = """
import fallthrough.registry
from hypothesis import settings

# A tiny profile, chosen below through HYPOTHESIS_PROFILE as a user would:
# this run is about the plumbing, and the state machine has its own tests.
settings.register_profile("plugin-smoke", max_examples=3, stateful_step_count=5)

def pytest_configure(config):
    fallthrough.registry.register("reference", "fallthrough.testing.model:ReferenceBackend")

def pytest_unconfigure(config):
    # The in-process run shares the default registry with this session.
    fallthrough.registry.default_registry.unregister("reference")
"""


def test_fallthrough_url_runs_the_whole_suite_against_that_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(REGISTER_REFERENCE)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "plugin-smoke")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-v", "--fallthrough-url", "reference://")
    suite_tests = [name for name in dir(BackendConformance) if name.startswith("test_")]
    outcomes = result.parseoutcomes()
    # The reference backend declares every capability, so nothing is skipped; some tests are parametrised.
    assert outcomes.get("passed", 0) >= len(suite_tests)
    result.assert_outcomes(passed=outcomes["passed"])
    passed = "\n".join(line for line in result.outlines if line.rstrip().endswith("%]") and "PASSED" in line)
    assert [name for name in suite_tests if f"::{name}" not in passed] == []


def test_an_unknown_url_scheme_is_one_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fallthrough-url", "nosuchbackend://")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fallthrough-url: no backend plugin serves 'nosuchbackend'*installed:*"])


def test_an_unknown_url_option_is_one_usage_error_naming_it(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fallthrough-url", "sqlite://?tiemout=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--fallthrough-url:*tiemout*"])


def test_without_hypothesis_the_option_is_one_usage_error_naming_the_extra(pytester: pytest.Pytester) -> None:
    # In a subprocess: hypothesis is hidden from that process only.
    pytester.makeconftest("import sys\nsys.modules['hypothesis'] = None  # as if it were not installed\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fallthrough-url", "sqlite://")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--fallthrough-url: the conformance suite needs hypothesis*pip install 'fallthrough[[]conformance]'*"]
    )


def test_without_the_option_nothing_is_added(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_option_is_documented_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["*--fallthrough-url=URL*"])


def test_loading_the_plugin_does_not_import_hypothesis() -> None:
    code = "import sys, fallthrough.testing.pytest_plugin; print('hypothesis' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
