"""Thresholds a class sets for itself: a pair is unusual when its statistic is an outlier among the class's pairs.

The rule (the same for every signal where "higher" means "more alike"): a pair is flagged when its value is at
least an absolute floor AND its modified z-score (Iglewicz and Hoaglin) against all of the class's pairs is at
least 3.5:

    z = 0.6745 * (x - median) / MAD,     MAD = median(|x_i - median|)

Median and MAD, not mean and standard deviation, so that the copies being looked for cannot hide themselves by
inflating the spread (they stay robust until half of the pairs are copies). The floor keeps a tight class (MAD
near 0) from flagging pairs that are only a little above everyone else. Below MIN_PAIRS pairs the class's spread
says too little, and the floor alone decides.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

Z_CUTOFF = 3.5  # Iglewicz and Hoaglin's cutoff for outliers by modified z-score
MAD_SCALE = 0.6745  # the normal distribution's MAD is 0.6745 sigma: z is then in units of sigma
MIN_PAIRS = 10  # 5 students; fewer pairs give a median and MAD too noisy to set a threshold


class ClassThreshold(BaseModel):
    """Where a signal's threshold lies for one class, and why."""

    floor: float = Field(description="absolute minimum for a flag, whatever the class")
    pairs: int = Field(description="pairs compared")
    median: float | None = None
    mad: float | None = Field(None, description="median absolute deviation from the median")
    class_relative: bool = Field(False, description="whether the class had enough pairs for its own threshold")

    @property
    def threshold(self) -> float:
        """The smallest value that is flagged."""
        if not self.class_relative or self.median is None or self.mad is None:
            return self.floor
        return max(self.floor, self.median + Z_CUTOFF * self.mad / MAD_SCALE)

    def z(self, x: float) -> float | None:
        """The modified z-score of `x` against the class; None where the class has no threshold of its own."""
        if not self.class_relative or self.median is None or self.mad is None:
            return None
        if self.mad == 0:  # at least half the pairs share one value: anything above it stands out
            return math.inf if x > self.median else 0.0
        return MAD_SCALE * (x - self.median) / self.mad

    def flags(self, x: float) -> bool:
        z = self.z(x)
        return x >= self.floor and (z is None or z >= Z_CUTOFF)

    def describe(self, what: str) -> str:
        """One sentence for the reports: the rule with this class's numbers."""
        if not self.class_relative:
            return (f"{what} ≥ {self.floor:g} (the floor alone: {self.pairs} pairs are too few for the class's "
                    f"own distribution, which needs {MIN_PAIRS})")  # fmt: skip
        return (f"{what} ≥ {self.floor:g} and modified z ≥ {Z_CUTOFF:g} against the class's {self.pairs} pairs "
                f"(median {self.median:.3f}, MAD {self.mad:.3f}): {what} ≥ {self.threshold:.3f}")  # fmt: skip


def class_threshold(values: Sequence[float], floor: float) -> ClassThreshold:
    """The threshold the class's pairwise `values` set, above `floor`."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < MIN_PAIRS:
        return ClassThreshold(floor=floor, pairs=len(finite))
    med = statistics.median(finite)
    mad = statistics.median(abs(v - med) for v in finite)
    return ClassThreshold(floor=floor, pairs=len(finite), median=med, mad=mad, class_relative=True)
