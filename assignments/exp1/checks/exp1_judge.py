"""Reference values and thresholds shared by exp1's public and hidden checks (judge side only).

Fit quality is the normalized MSE on a grid the student never trains on:
    NMSE = mean((model(x) - y)^2) / var(y),  x = 2001 evenly spaced points over [X_MIN, X_MAX]
Credit: full at NMSE <= 1e-3 (R^2 >= 0.999), none at NMSE >= 1e-1, log-linear in between
(so NMSE 1e-2 earns half). The reference solution reaches about 3e-6 (default) and 1e-6 (custom)
with seed 0, 5000 Adam epochs at lr 0.01, float32 on CPU; the evaluation itself is deterministic.
"""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import TypedDict

from grader.judge import CheckFailed, Threshold, WeightsError, expect_finite, expect_tensor, fail, state_dict_from

NUM_TRAIN_SAMPLES = 1000
X_MIN, X_MAX = -5.0, 5.0
GRID = torch.linspace(X_MIN, X_MAX, 2001).reshape(-1, 1)  # (2001, 1), float32
# Deterministic evaluation of fixed weights on a fixed grid: no seed, and no tolerance needed.
FIT = Threshold("normalized MSE", full=1e-3, zero=1e-1, higher_is_better=False, seed=None, tolerance=0.0, scale="log")


class TrainCurve(TypedDict):
    """What the train_curve probe returns: the MSE before and after train(), and train()'s losses if a list."""

    before: float
    after: float
    losses: list[float] | None


# A module constant as the settings probe sends it: its own value if a plain scalar or None, else its repr.
Setting = bool | int | float | str | None


class Settings(TypedDict):
    """What the settings probe returns: exp1.py's constants, and how many samples make_data(f) made."""

    NUM_TRAIN_SAMPLES: Setting
    NUM_TRAIN_EPOCHS: Setting
    LEARNING_RATE: Setting
    X_MIN: Setting
    X_MAX: Setting
    samples_made: int


def reference_f(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x^2 + 2 sin(x) + cos(x - 1) - 5, computed in float64."""
    x = x.double()
    return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5


def nmse(pred: torch.Tensor, target: torch.Tensor) -> float:
    pred, target = pred.double().reshape(-1), target.double().reshape(-1)
    return float(((pred - target) ** 2).mean() / target.var())


def state_dict_for(weights: Any, which: str, check: Any) -> dict[str, torch.Tensor]:
    """model.pth is {"default": state_dict, "custom": state_dict}; a bare state_dict counts as "default"."""
    if isinstance(weights, dict) and weights and all(isinstance(v, torch.Tensor) for v in weights.values()):
        if which == "custom":
            fail('model.pth holds a single state_dict; save {"default": ..., "custom": ...} to grade the custom task')
        check.note('model.pth is a bare state_dict; read it as the "default" model')
        return dict(weights)
    try:
        return state_dict_from(weights, "model.pth", which)
    except WeightsError as exc:
        raise CheckFailed(f'{exc}; save torch.save({{"default": ..., "custom": ...}}, "model.pth")') from None


def grade_fit(pred: Any, target: torch.Tensor, what: str) -> None:
    pred = expect_finite(expect_tensor(pred, what), what)
    if pred.numel() != target.numel():
        fail(f"{what} returned {pred.numel()} values for {target.numel()} grid points")
    FIT.grade(nmse(pred, target), f"{what}, on {GRID.shape[0]} grid points over [{X_MIN:g}, {X_MAX:g}]")
