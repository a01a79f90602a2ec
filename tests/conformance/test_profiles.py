"""HYPOTHESIS_PROFILE picks the suite's Hypothesis settings; ci is the default."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck

from fallthrough.testing.profiles import QUICK_PROFILE, conformance_settings


@pytest.mark.parametrize(
    ("profile", "examples", "steps"),
    [
        (None, 30, 30),
        ("ci", 30, 30),
        ("thorough", 500, 100),
        ("fallthrough-noshrink", 30, 30),
    ],
)
def test_the_profile_named_in_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, profile: str | None, examples: int, steps: int
) -> None:
    if profile is None:
        monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    else:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", profile)
    chosen = conformance_settings()
    assert (chosen.max_examples, chosen.stateful_step_count, chosen.deadline) == (examples, steps, None)


def test_the_noshrink_profile_is_ci_that_reports_a_failure_as_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first thing to try when a failing run is slow: the same examples as ci, and no shrinking."""
    from hypothesis import Phase

    monkeypatch.setenv("HYPOTHESIS_PROFILE", "fallthrough-noshrink")
    noshrink = conformance_settings()
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
    ci = conformance_settings()
    assert Phase.shrink in ci.phases and Phase.shrink not in noshrink.phases
    assert set(ci.phases) - set(noshrink.phases) == {Phase.shrink}
    assert (noshrink.derandomize, noshrink.database, noshrink.max_examples) == (True, None, ci.max_examples)


def test_the_suite_tolerates_slow_stores_and_shared_base_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "default")
    suppressed = set(conformance_settings().suppress_health_check)
    assert {HealthCheck.too_slow, HealthCheck.differing_executors} <= suppressed


def test_the_thorough_profile_makes_ten_thousand_hostile_calls_per_backend() -> None:
    from hypothesis import settings

    from fallthrough.testing.profiles import hostile_calls_per_run

    assert hostile_calls_per_run(settings.get_profile("thorough")) >= 10_000
    assert hostile_calls_per_run(settings.get_profile(QUICK_PROFILE)) <= 500, "ci stays quick"


def test_importing_the_suite_leaves_the_settings_of_other_tests_alone_where_ci_is_set() -> None:
    """Hypothesis loads its own ``ci`` profile for every test when ``CI`` is set: the suite must not replace it."""
    script = (
        "from hypothesis import settings\n"
        "before = (settings().max_examples, settings().stateful_step_count)\n"
        "import fallthrough.testing.suite\n"
        "print(before == (settings().max_examples, settings().stateful_step_count), before)\n"
    )
    environment = {"CI": "true", "PATH": "", "HOME": "/nonexistent"}
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert ran.stdout.startswith("True"), ran.stdout + ran.stderr
