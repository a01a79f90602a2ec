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


def print_growth_table(
    title: str, unit: str, per: str, rows: list[tuple[int, Comparison]], *, per_item: bool = False, digits: int = 2
) -> None:
    """One row per size: each side's time, their ratio, and how each side's time grew from the first size.

    :param unit: what a size counts ("records", "documents").
    :param per: what one timed call is ("claim", "read", "whole iteration").
    :param per_item: the growth of the time per counted item rather than per call.
    :param digits: decimals of the ratio.
    """
    print(f"## {title}\n")
    print(f"Machine: {machine()}\n")
    growth = f"per {unit[:-1]}, growth" if per_item else "growth"
    print(f"| {unit} | raw, {per} | fallthrough, {per} | ratio | raw {growth} | fallthrough {growth} |")
    print("|---:|---:|---:|---:|---:|---:|")
    first_size, first = rows[0]
    for size, row in rows:
        scale = size / first_size if per_item else 1
        print(
            f"| {size:,} | {format_seconds(row.baseline_seconds)} | {format_seconds(row.candidate_seconds)} | "
            f"{row.ratio:.{digits}f}× | {row.baseline_seconds / first.baseline_seconds / scale:.1f}× | "
            f"{row.candidate_seconds / first.candidate_seconds / scale:.1f}× |"
        )


def format_seconds(value: float) -> str:
    """A duration for a table: µs, ms or s, whichever reads best."""
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"
