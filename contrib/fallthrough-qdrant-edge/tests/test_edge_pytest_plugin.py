"""``pytest --fallthrough-url qdrant+edge:///...`` runs the whole suite against the plugin its entry point names."""

from __future__ import annotations

from pathlib import Path

import pytest
from fallthrough.testing.suite import BackendConformance

SMALL_PROFILE = """
from hypothesis import settings

# This run is about the plumbing; test_edge_conformance.py runs the ci profile.
settings.register_profile("edge-plugin-smoke", max_examples=3, stateful_step_count=10)
"""


def test_fallthrough_url_runs_the_whole_suite_against_a_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, store_dir: Path
) -> None:
    pytester.makeconftest(SMALL_PROFILE)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "edge-plugin-smoke")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--fallthrough-url", f"qdrant+edge:///{store_dir}/suite"
    )
    suite_tests = [name for name in dir(BackendConformance) if name.startswith("test_")]
    outcomes = result.parseoutcomes()
    # The plugin declares every capability, so nothing may be skipped; parametrised tests run more than once.
    assert set(outcomes) - {"warnings"} == {"passed"}, outcomes
    assert outcomes["passed"] >= len(suite_tests)
    assert (store_dir / "suite" / "records").is_dir()
