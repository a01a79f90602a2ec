"""Side-by-side timing: a baseline and a candidate, interleaved, reported as a ratio.

These machines are noisy, so absolute times drift; the two sides run
alternately in the same process, round after round, and the ratio of their
medians is what the benchmarks report and what the goals are stated in.
"""

from __future__ import annotations

import gc
import platform
import statistics
import time
from collections.abc import Callable

import attrs


@attrs.frozen
class Comparison:
    operation: str
    baseline: str
    baseline_seconds: float
    candidate_seconds: float
    goal: float | None = None

    @property
    def ratio(self) -> float:
        return self.candidate_seconds / self.baseline_seconds

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        return "meets goal" if self.ratio <= self.goal else "misses goal"


def compare(
    operation: str,
    baseline_name: str,
    baseline: Callable[[], object],
    candidate: Callable[[], object],
    *,
    rounds: int = 15,
    number: int = 200,
    goal: float | None = None,
) -> Comparison:
    """Median seconds per call of each side over ``rounds`` interleaved rounds of ``number`` calls."""
    baseline_times: list[float] = []
    candidate_times: list[float] = []
    for side in (baseline, candidate):  # warm caches and lazy opens on both sides
        side()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(rounds):
            order = [(baseline, baseline_times), (candidate, candidate_times)]
            if round_index % 2:
                order.reverse()
            for function, times in order:
                start = time.perf_counter()
                for _ in range(number):
                    function()
                times.append((time.perf_counter() - start) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Comparison(
        operation, baseline_name, statistics.median(baseline_times), statistics.median(candidate_times), goal
    )


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, {platform.system()}"


def print_table(title: str, rows: list[Comparison]) -> None:
    print(f"## {title}\n")
    print(f"Machine: {machine()}\n")
    print("| operation | raw baseline | baseline | fallthrough | ratio | goal | |")
    print("|---|---|---:|---:|---:|---:|---|")
    for row in rows:
        goal = f"≤ {row.goal:.2f}×" if row.goal is not None else ""
        print(
            f"| {row.operation} | {row.baseline} | {format_seconds(row.baseline_seconds)} | "
            f"{format_seconds(row.candidate_seconds)} | {row.ratio:.2f}× | {goal} | {row.verdict} |"
        )
    print()


def format_seconds(value: float) -> str:
    """A duration for a table: µs, ms or s, whichever reads best."""
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"
