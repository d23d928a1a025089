"""Loss-curve checks: finite values, a decreasing trend, and a final value below a bound.

A curve is a list of numbers, one per step or epoch (a training loss, a perplexity). Single steps are noisy,
so the trend compares the mean of the first `window` values with the mean of the last `window`, and the final
value is the mean of the last `window` values too. The curves graded here come from probes with fixed seeds
on one thread, so they repeat exactly; the bounds need no tolerance for noise between runs, only for the
spread between correct implementations (stated where each check sets them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grader.judge.outcome import fail


@dataclass(frozen=True)
class CurveSummary:
    """What the checks compare: the means of the first and last windows, and the least-squares slope."""

    first: float
    last: float
    slope: float
    length: int

    @property
    def ratio(self) -> float:
        """last / first: below 1 for a falling curve."""
        return self.last / self.first if self.first else math.inf


def as_curve(values: Any, what: str, min_length: int = 2) -> list[float]:
    """The values as floats; fails on anything but a list of at least `min_length` numbers."""
    if not isinstance(values, (list, tuple)) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        fail(f"{what}: expected a list of numbers, got {type(values).__name__}")
    if len(values) < min_length:
        fail(f"{what}: {len(values)} value(s); expected at least {min_length}")
    return [float(v) for v in values]


def nonfinite_at(values: Sequence[float]) -> int | None:
    """The index of the first NaN or infinite value, or None."""
    return next((i for i, v in enumerate(values) if not math.isfinite(v)), None)


def summarize(values: Sequence[float], window: int = 1) -> CurveSummary:
    """Means of the first and last `window` values, and the least-squares slope over all of them."""
    w = max(1, min(window, len(values) // 2 or 1))
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    var_x = sum((i - mean_x) ** 2 for i in range(n)) or 1.0
    slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / var_x
    return CurveSummary(first=sum(values[:w]) / w, last=sum(values[-w:]) / w, slope=slope, length=n)


def curve_problem(
    values: Sequence[float],
    *,
    window: int = 1,
    max_ratio: float = 1.0,
    final_at_most: float | None = None,
) -> str | None:
    """None if the curve is finite, its last window's mean is below `max_ratio` times its first window's (a
    strict fall for max_ratio = 1), and that final mean is at most `final_at_most`; else what went wrong."""
    if (i := nonfinite_at(values)) is not None:
        return f"value {i + 1} of {len(values)} is {values[i]} (training diverged)"
    s = summarize(values, window)
    w = min(window, len(values) // 2 or 1)
    span = f"mean of the first {w}" if w > 1 else "first value"
    end = f"mean of the last {w}" if w > 1 else "last value"
    if not s.last < max_ratio * s.first:
        want = "below it" if max_ratio == 1 else f"below {max_ratio:g} x it = {max_ratio * s.first:.4g}"
        return f"the {end} is {s.last:.4g} and the {span} {s.first:.4g}; expected the end {want}"
    if final_at_most is not None and not s.last <= final_at_most:
        return f"the {end} is {s.last:.4g}; expected at most {final_at_most:g}"
    return None


def expect_curve(
    values: Any,
    what: str,
    *,
    window: int = 1,
    max_ratio: float = 1.0,
    final_at_most: float | None = None,
    min_length: int = 2,
) -> CurveSummary:
    """Fail unless `values` is a finite, falling curve ending at most at `final_at_most` (see curve_problem)."""
    curve = as_curve(values, what, min_length)
    if problem := curve_problem(curve, window=window, max_ratio=max_ratio, final_at_most=final_at_most):
        fail(f"{what}: {problem}")
    return summarize(curve, window)
