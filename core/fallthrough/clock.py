"""Stamps for writes: timestamps and sequence numbers, made by the core.

Backends store these values as given, so the same write leaves the same
state on every store. Within one Store, timestamps are strictly increasing
even when the wall clock stalls or steps back, so two updates made one
after the other are always ordered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from .types import from_micros


class Stamper:
    """Hands out increasing microsecond timestamps and ranges of ``seq``. Thread-safe."""

    def __init__(self, wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._wall_clock_ns = wall_clock_ns
        self._lock = threading.Lock()
        self._last_micros = 0
        self._next_seq = 0

    def now(self) -> datetime:
        """A UTC timestamp later than every one this Stamper gave before."""
        with self._lock:
            micros = max(self._wall_clock_ns() // 1000, self._last_micros + 1)
            self._last_micros = micros
        return from_micros(micros)

    def reserve_seq(self, count: int) -> int:
        """The first of ``count`` fresh consecutive sequence numbers.

        Sequence numbers follow the microsecond clock (about 1.8e15 today,
        well below 2**53, so every store and JSON reader holds them exactly)
        and never repeat within this Stamper: a call for 100k keys takes the
        next 100k.
        """
        with self._lock:
            first = max(self._wall_clock_ns() // 1000, self._next_seq)
            self._next_seq = first + max(count, 1)
        return first
