from __future__ import annotations

from collections.abc import Iterator

import pytest

import fallthrough
from fallthrough.breaker import BreakerPolicy


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def registry() -> fallthrough.Registry:
    """A registry of its own: entry points plus the test backends, nothing global."""
    registry = fallthrough.Registry()
    registry.register("flaky", "fallthrough.testing.faults:FaultInjectingBackend")
    registry.register("reference", "fallthrough.testing.model:ReferenceBackend")
    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> BreakerPolicy:
    return BreakerPolicy(failure_threshold=1, cooldown=30.0, clock=clock)


@pytest.fixture
def pair(registry: fallthrough.Registry, breaker: BreakerPolicy) -> Iterator[fallthrough.Store]:
    """A primary that can fail, in front of a healthy secondary."""
    store = fallthrough.connect(primary="flaky://", secondary="flaky://", registry=registry, breaker=breaker)
    yield store
    store.close()
