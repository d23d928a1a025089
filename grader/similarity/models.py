"""The similarity report (OUT/similarity.json): every compared pair, the flagged ones first, with the evidence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.similarity.stats import ClassThreshold

Signal = Literal["code", "identical", "weights", "predictions"]
SIGNALS: tuple[Signal, ...] = ("code", "identical", "weights", "predictions")


class SignalReport(BaseModel):
    """One kind of evidence over the whole class: what it measures and where this class put its threshold."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    signal: Signal
    statistic: str = Field(description="what is measured, in a sentence")
    rule: str = Field(description="when a pair is flagged, with this class's numbers")
    threshold: float | None = None
    direction: Literal["at least", "at most", "equal"] = "at least"
    class_threshold: ClassThreshold | None = None
    compared: int = Field(0, description="pairs compared")
    values: list[float] = Field(default_factory=list, description="every compared pair's value (finite ones)")
    not_compared: list[str] = Field(default_factory=list, description="students left out, and why")
    seconds: float = 0.0


class Pair(BaseModel):
    """Two students (a < b) and every statistic that compared them."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    a: str
    b: str
    code: float | None = Field(None, description="the larger share of either's own code found in the other")
    code_shares: tuple[float, float] | None = Field(None, description="share of a's own code in b, of b's in a")
    code_overlap: int | None = Field(None, description="characters of filtered code in matching runs")
    code_z: float | None = None
    identical: list[str] = Field(default_factory=list, description="weights files with identical bytes")
    weights_ratio: float | None = Field(None, description="||a-b|| / min(||a-s||, ||b-s||); inf: explained by s")
    weights_distance: float | None = None
    weights_travelled: float | None = None
    weights_start: str | None = None
    agreement: float | None = Field(None, description="share of test images with the same predicted class")
    agreement_z: float | None = None
    flags: list[Signal] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    view: str | None = Field(None, description="the side-by-side page, relative to OUT")

    @property
    def key(self) -> tuple[str, str]:
        return self.a, self.b


class SimilarityReport(BaseModel):
    """What `grader similarity` found. Nothing in it changes a grade."""

    assignment: str
    students: list[str]
    signals: list[SignalReport]
    pairs: list[Pair] = Field(description="compared pairs: flagged first, then the most alike")
    notes: list[str] = Field(default_factory=list)
    inputs: dict[str, str] = Field(default_factory=dict, description="student -> submission hash compared")
    duration_s: float = 0.0

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.flags]

    def signal(self, name: Signal) -> SignalReport | None:
        return next((s for s in self.signals if s.signal == name), None)
