"""Reference values and thresholds shared by exp1's public and hidden checks (judge side only).

Fit quality is the normalized MSE on a grid the student never trains on:
    NMSE = mean((model(x) - y)^2) / var(y),  x = 2001 evenly spaced points over [X_MIN, X_MAX]
Credit: full at NMSE <= 1e-3 (R^2 >= 0.999), none at NMSE >= 1e-1, log-linear in between
(so NMSE 1e-2 earns half). The reference solution reaches about 3e-6 (default) and 1e-6 (custom)
with seed 0, 5000 Adam epochs at lr 0.01, float32 on CPU; the evaluation itself is deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from typing_extensions import TypedDict

from grader.graphs import GraphPolicy
from grader.judge import CheckFailed, Threshold, WeightsError, expect_finite, expect_tensor, fail, state_dict_from
from grader.judge.measured import ModelSpec, choose, predict

NUM_TRAIN_SAMPLES = 1000
X_MIN, X_MAX = -5.0, 5.0
GRID = torch.linspace(X_MIN, X_MAX, 2001).reshape(-1, 1)  # (2001, 1), float32
# Deterministic evaluation of fixed weights on a fixed grid: no seed, and no tolerance needed.
FIT = Threshold("normalized MSE", full=1e-3, zero=1e-1, higher_is_better=False, seed=None, tolerance=0.0, scale="log")


class HandoutMLP(torch.nn.Module):
    """The handout's MLP (1 -> 64 -> 64 -> 1, tanh): the reference model of the fit checks, and the model the
    training check trains with the student's train() (the probes define the same one)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(1, 64), torch.nn.Tanh(),  # (N, 1) -> (N, 64)
            torch.nn.Linear(64, 64), torch.nn.Tanh(),  # (N, 64) -> (N, 64)
            torch.nn.Linear(64, 1),  # (N, 64) -> (N, 1)
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# An MLP's operators: no Sin, Cos, Pow or Exp, so a forward() that computes f(x) itself has nothing to run on.
POLICY = GraphPolicy(ops=("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Tanh", "Relu", "Sigmoid", "LeakyRelu",
                          "Elu", "Selu", "Softplus", "Clip", "Identity", "Constant", "Reshape", "Flatten", "Dropout",
                          "Cast", "Concat"),
                     max_params=1_000_000, inputs=((None, 1),), outputs=((None, 1),))  # fmt: skip


def model_spec(which: str) -> ModelSpec:
    """The default or custom model: the handout's MLP as reference, the student's build_model() (or
    build_custom_model()) otherwise."""
    return ModelSpec(
        name="MLP of the handout", reference_source=Path(__file__), build=HandoutMLP,
        example=(torch.linspace(X_MIN, X_MAX, 16).reshape(16, 1),), input_names=["x"], output_names=["y"],
        policy=POLICY, outputs_probe="model_outputs", export_probe="export_model", extra={"which": which},
    )  # fmt: skip


class TrainCurve(TypedDict):
    """What the train_curve probe returns: the model's weights after train(), and train()'s losses if a list."""

    state: dict[str, torch.Tensor]
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


def mse(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """The handout MLP's mean squared error with `state`, computed by the judge."""
    model = HandoutMLP()
    model.load_state_dict(state)
    with torch.no_grad():
        return float(((model(x).double() - y.double()) ** 2).mean())


def fit_of(contestant: Any, state: dict[str, torch.Tensor], which: str, what: str, check: Any) -> torch.Tensor:
    """The trained model's predictions on GRID, computed by the judge (grader.judge.measured)."""
    chosen = choose(model_spec(which), state, contestant, what)
    if chosen.own:
        check.note(chosen.note)
    return predict(chosen, POLICY, "exp1-grid", GRID, len(GRID))


def grade_fit(pred: Any, target: torch.Tensor, what: str) -> None:
    pred = expect_finite(expect_tensor(pred, what), what)
    if pred.numel() != target.numel():
        fail(f"{what} returned {pred.numel()} values for {target.numel()} grid points")
    FIT.grade(nmse(pred, target), f"{what}, on {GRID.shape[0]} grid points over [{X_MIN:g}, {X_MAX:g}]")
