"""A circuit breaker per backend.

Closed: calls go through. After ``failure_threshold`` consecutive
unavailability errors it opens: the backend is skipped, with no call to it,
for ``cooldown`` seconds. Then it is half-open: exactly one caller gets to
make a trial call, and the others keep skipping it until that call
decides. Success closes the breaker, failure opens it again.

A call ends in one of four ways, each with its own method:

* :meth:`CircuitBreaker.record_success`: the backend served;
* :meth:`CircuitBreaker.record_failure`: it was unavailable (an outage);
* :meth:`CircuitBreaker.record_answer`: it answered without serving (a domain
  error such as ``NotFound``, or ``BackendBusy``): it is reachable, so a
  half-open breaker closes, but nothing counts as a failure;
* :meth:`CircuitBreaker.abandon`: no call was made after all (the backend
  cannot do what the call needs): the trial slot is given back and the state
  stays as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from .errors import InvalidInput

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


def _positive(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen
class BreakerPolicy:
    """When a backend is taken out of rotation, and for how long.

    :param failure_threshold: consecutive unavailability errors that open the
        breaker. The default, 1, skips a dead backend at once: every call to
        it would otherwise wait for its connect timeout. A
        :class:`~fallthrough.errors.BackendBusy` (a lock wait, a full pool)
        is not counted: the store is there, only slow.
    :param cooldown: seconds an open breaker skips the backend before one
        trial call.
    :param clock: a monotonic clock in seconds; tests pass a fake one.
    """

    failure_threshold: int = attrs.field(default=1, validator=_positive)
    cooldown: float = attrs.field(default=5.0, validator=_positive)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)


class CircuitBreaker:
    """The breaker state of one backend. Thread-safe."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._cooled_down():
                return HALF_OPEN
            return self._state

    def try_acquire(self, *, early: bool = False) -> bool:
        """May the caller call the backend now? A True in half-open state is the trial.

        With ``early``, an open breaker still within its cooldown grants the
        trial now: the router does that when every backend is cooling down,
        rather than fail a call that one of them might serve.
        """
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and (early or self._cooled_down()):
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._state = CLOSED
            self._failures = 0
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._state == HALF_OPEN or self._failures >= self._policy.failure_threshold:
                self._state = OPEN
                self._opened_at = self._policy.clock()

    def record_answer(self) -> None:
        """End a call the backend answered without serving it (a domain error, a busy store)."""
        with self._lock:
            if self._state == HALF_OPEN:
                # It answered, so it is reachable.
                self._state = CLOSED
                self._failures = 0
            self._trial_running = False

    def abandon(self) -> None:
        """End an acquisition that made no call: the state stays, a half-open trial slot is freed."""
        with self._lock:
            self._trial_running = False

    def cooldown_left(self) -> float:
        """Seconds until an open breaker allows a trial; 0.0 when it is not open or has cooled down."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._policy.cooldown - (self._policy.clock() - self._opened_at))

    def _cooled_down(self) -> bool:
        return self._policy.clock() - self._opened_at >= self._policy.cooldown
