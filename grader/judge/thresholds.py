"""Metric thresholds (accuracy, perplexity) with their seed and tolerance stated, and the metrics themselves.

A `Threshold` maps a measured value to a fraction of a check's points: full credit at `full` or better, none at
`zero` or worse, linear in between (log-linear for perplexity, where 2 -> 4 matters as much as 4 -> 8). Every
threshold states the seed of its evaluation (None when the evaluation draws nothing at random, e.g. a whole
test set in a fixed order) and its tolerance: how far the same weights may measure differently on another
machine or thread count (float reductions in another order). The tolerance counts in the student's favour:
a value within it of `full` gets full credit. Messages quote all of it, so a student reads the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NoReturn

import torch

from grader.judge.outcome import partial


@dataclass(frozen=True)
class Threshold:
    metric: str  # e.g. "test accuracy"
    full: float  # full credit at this value or better
    zero: float  # no credit at this value or worse
    higher_is_better: bool
    seed: int | None  # the evaluation's seed; None: it draws nothing at random
    tolerance: float  # measurement spread across machines; counts in the student's favour
    scale: Literal["linear", "log"] = "linear"

    def __post_init__(self) -> None:
        if (self.full > self.zero) != self.higher_is_better or self.full == self.zero:
            raise ValueError(f"{self.metric}: full={self.full} and zero={self.zero} disagree with the direction")
        if self.scale == "log" and min(self.full, self.zero) <= 0:
            raise ValueError(f"{self.metric}: a log scale needs positive bounds")

    def fraction(self, value: float) -> float:
        """The fraction of the points `value` earns."""
        if not math.isfinite(value):
            return 0.0
        sign = 1.0 if self.higher_is_better else -1.0
        if sign * (value - self.full) >= -self.tolerance:
            return 1.0
        if sign * (value - self.zero) <= 0:
            return 0.0
        if self.scale == "log":
            v, full, zero = math.log(value), math.log(self.full), math.log(self.zero)
        else:
            v, full, zero = value, self.full, self.zero
        return min(1.0, max(0.0, (v - zero) / (full - zero)))

    def rule(self) -> str:
        """The grading rule in words: the bounds, the seed where the evaluation draws at random, the tolerance
        where there is one."""
        at, no = (">=", "<=") if self.higher_is_better else ("<=", ">=")
        between = "log-linear" if self.scale == "log" else "linear"
        text = f"full credit at {at} {self.full:g}, none at {no} {self.zero:g}, {between} between"
        if self.seed is not None:
            text += f"; evaluated with seed {self.seed}"
        if self.tolerance:
            text += (f"; within {self.tolerance:g} of full credit still earns it, since machines measure slightly "
                     "differently")
        return text

    def shown(self, value: float) -> str:
        """`value` with enough digits that it never reads as a bound it is not (0.0010008 is not 0.001)."""
        for digits in range(4, 10):
            text = f"{value:.{digits}f}" if abs(value) >= 0.01 or value == 0 else f"{value:.{digits - 1}g}"
            if all(float(text) != bound or value == bound for bound in (self.full, self.zero)):
                return text
        return repr(value)

    def grade(self, value: float, what: str) -> NoReturn:
        """Award the fraction `value` earns, with a message quoting the measurement and the rule."""
        shown = self.shown(value) if math.isfinite(value) else str(value)  # NMSE 2.5e-06, not 0.0000
        measured = {self.metric: float(value)} if math.isfinite(value) else {}  # NaN is not JSON
        if self.metric == "accuracy" and measured:  # thresholds in [0, 1] are fractions
            measured["accuracy_percent"] = round(float(value) * (1 if self.full > 1 else 100), 4)
        partial(self.fraction(value), f"{what}: {self.metric} {shown} ({self.rule()})", measured)


def accuracy_threshold(full: float, zero: float, seed: int | None = None, tolerance: float = 0.0) -> Threshold:
    """An accuracy in [0, 1] (or percent): higher is better, linear credit."""
    return Threshold("accuracy", full, zero, higher_is_better=True, seed=seed, tolerance=tolerance)


def perplexity_threshold(full: float, zero: float, seed: int | None = None, tolerance: float = 0.0) -> Threshold:
    """A perplexity (>= 1): lower is better, log-linear credit."""
    return Threshold("perplexity", full, zero, higher_is_better=False, seed=seed, tolerance=tolerance, scale="log")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows of logits (N, C) whose argmax equals labels (N,)."""
    return float((logits.argmax(dim=1) == labels).double().mean())


def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean cross-entropy) of logits (N, V) against targets (N,), accumulated in float64."""
    nll = torch.nn.functional.cross_entropy(logits.double(), targets, reduction="mean")
    return float(torch.exp(nll))
