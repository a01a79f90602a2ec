"""Hypothesis settings for the conformance suite.

Three profiles are registered when the suite is imported:

``ci`` (the default)
    ``max_examples=30``, ``stateful_step_count=30``: a quick pass, meant for
    every commit; the whole suite runs in seconds against an in-memory
    store. It extends Hypothesis's built-in ``ci`` profile (derandomized, no
    example database) under a name of its own, ``fallthrough-ci``, which
    ``HYPOTHESIS_PROFILE=ci`` names here: Hypothesis loads its ``ci``
    profile for every test of a process where ``CI`` is set, so replacing
    it would change the project's other tests too.

``thorough``
    ``max_examples=500``, ``stateful_step_count=100``: a long, randomized
    search for rare sequences, for nightly runs or before a release.

``fallthrough-noshrink``
    ``ci`` without Hypothesis's shrink phase: the same examples, so the same
    failures, reported as found rather than made minimal. Shrinking a
    failure of the random-sequence test replays sequences against the store
    until Hypothesis's own limits stop it (500 shrinks or five minutes, not
    a setting), so under ``ci`` a failing run can take minutes where a
    passing one takes seconds; this profile is the first thing to try then.

The hostile-input suite (:mod:`fallthrough.testing.suite.hostile`) makes
:func:`hostile_calls_per_example` calls in each example: a fifth of
``stateful_step_count``, so 6 under ``ci`` and 20 under ``thorough``, whose
500 examples make 10,000 hostile calls per backend.

All set ``deadline=None`` (a store's latency varies, and a slow call is not
wrong) and suppress the ``too_slow`` health check.

The environment variable ``HYPOTHESIS_PROFILE`` picks the profile, for
example ``HYPOTHESIS_PROFILE=thorough pytest --fallthrough-url sqlite://``;
any registered profile name works, a project's own (registered with
``hypothesis.settings.register_profile`` in a ``conftest.py``) too, on top
of which the suite sets ``deadline=None`` and adds its health-check
suppressions. The suite applies the chosen profile to its own property
tests and state machines only, through :func:`conformance_settings`; it
never loads a profile, so the settings of the project's other tests stay
as they were.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"
QUICK_PROFILE = "fallthrough-ci"
"""The registered name of the suite's ``ci``."""
NO_SHRINK_PROFILE = "fallthrough-noshrink"
"""The suite's ``ci`` without shrinking: a failure is reported as soon as it is found."""

# The suite's base classes are inherited by one test class per backend, so
# the same test runs with several ``self``s; that is intended here.
_SUPPRESSED = (HealthCheck.too_slow, HealthCheck.differing_executors)


def register_profiles() -> None:
    """Register the suite's ``ci`` (as :data:`QUICK_PROFILE`, on Hypothesis's ``ci``), ``thorough``, ``noshrink``."""
    settings.register_profile(
        QUICK_PROFILE,
        settings.get_profile("ci"),
        max_examples=30,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=_SUPPRESSED,
    )
    quick = settings.get_profile(QUICK_PROFILE)
    settings.register_profile(
        NO_SHRINK_PROFILE, quick, phases=[phase for phase in quick.phases if phase is not Phase.shrink]
    )
    settings.register_profile(
        "thorough", max_examples=500, stateful_step_count=100, deadline=None, suppress_health_check=_SUPPRESSED
    )


def conformance_settings() -> settings:
    """The settings the suite runs with: the profile named by ``HYPOTHESIS_PROFILE``, ``ci`` by default.

    The suite's own health-check suppressions are added to whatever that
    profile suppresses.
    """
    name = os.environ.get(PROFILE_VARIABLE, DEFAULT_PROFILE)
    profile = settings.get_profile(QUICK_PROFILE if name == "ci" else name)
    suppressed = set(profile.suppress_health_check) | set(_SUPPRESSED)
    return settings(profile, deadline=None, suppress_health_check=sorted(suppressed, key=lambda check: check.name))


def hostile_calls_per_example(chosen: settings) -> int:
    """How many calls the hostile-input suite makes in one example under ``chosen`` settings."""
    return max(1, chosen.stateful_step_count // 5)


def hostile_calls_per_run(chosen: settings) -> int:
    """How many calls the hostile-input suite makes per backend under ``chosen`` settings (if no call fails)."""
    return chosen.max_examples * hostile_calls_per_example(chosen)


register_profiles()

__all__ = [
    "DEFAULT_PROFILE",
    "NO_SHRINK_PROFILE",
    "PROFILE_VARIABLE",
    "QUICK_PROFILE",
    "conformance_settings",
    "hostile_calls_per_example",
    "hostile_calls_per_run",
    "register_profiles",
]
