"""Reference values and thresholds shared by exp1's public and hidden checks (judge side only).

Fit quality is the normalized MSE on a grid the student never trains on:
    NMSE = mean((model(x) - y)^2) / var(y),  x = 2001 evenly spaced points over [X_MIN, X_MAX]
Credit: full at NMSE <= 1e-3 (R^2 >= 0.999), none at NMSE >= 1e-1, log-linear in between
(so NMSE 1e-2 earns half). The reference solution reaches about 3e-6 (default) and 1e-6 (custom)
with seed 0, 5000 Adam epochs at lr 0.01, float32 on CPU; the evaluation itself is deterministic.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from typing_extensions import TypedDict

from grader.graphs import GraphPolicy, GraphRefused
from grader.graphs.policy import ACTIVATION_OPS
from grader.judge import (
    CheckFailed,
    ContestantError,
    PickledModel,
    Threshold,
    WeightsError,
    expect_finite,
    expect_shape,
    expect_tensor,
    fail,
    first_mismatch,
    load_weights,
    partial,
    state_dict_from,
)
from grader.judge.measured import ModelSpec, choose, predict

NUM_TRAIN_SAMPLES = 1000
X_MIN, X_MAX = -5.0, 5.0
GRID = torch.linspace(X_MIN, X_MAX, 2001).reshape(-1, 1)  # (2001, 1), float32
F_POINTS = torch.tensor([-5.0, -2.5, -1.0, 0.0, 0.5, 1.0, 2.0, 4.5])  # (8,): where f_reference_values checks f
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


# An MLP's operators, with any of torch's activations and norms. Sin, Cos, Exp and Pow only on what a layer with
# weights computed (a sin or Gaussian activation), so a forward() that computes f(x) from x itself is refused.
POLICY = GraphPolicy(ops=("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", *ACTIVATION_OPS, "BatchNormalization",
                          "LayerNormalization", "Identity", "Constant", "Reshape", "Flatten", "Dropout", "Cast",
                          "Concat"),
                     after_weights=("Sin", "Cos", "Exp", "Pow"),
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


def f_problem(got: Any) -> str | None:
    """Why f(x) at F_POINTS (the f_values probe's answer) is not the reference's, None if it is: what
    f_reference_values charges. Fails (CheckFailed) on an answer of the wrong shape, as that check does."""
    got = expect_shape(got, tuple(F_POINTS.shape), "f(x) for x of shape (8,)")
    return first_mismatch(got, reference_f(F_POINTS), F_POINTS, atol=1e-4, rtol=1e-5)


def f_charged(contestant: Any) -> bool:
    """Whether f_reference_values fails (the same probe call, the same test), so a mistake in f(x) is charged there."""
    try:
        return f_problem(contestant.call("f_values", x=F_POINTS)) is not None
    except AssertionError:  # CheckFailed, ContestantError: that check fails on the same call
        return True


class GridValues:
    """The student's f(x) and custom_f(x) on GRID (float64, (2001, 1)), each asked of the contestant at most once;
    None when the call fails or the values are of the wrong shape, not finite, or constant. Only ever compared with
    the judge's own measurement of a model: they decide which target a fit is measured against, never a score."""

    def __init__(self, contestant: Any, custom: torch.Tensor | None = None) -> None:
        self.contestant = contestant
        if custom is not None:  # already asked for and checked by the caller
            self.__dict__["custom"] = custom.double()

    def _ask(self, probe: str) -> torch.Tensor | None:
        try:
            got = self.contestant.call(probe, x=GRID)
        except ContestantError:
            return None
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(GRID.shape):
            return None
        got = got.double()
        if not torch.isfinite(got).all() or float(got.var()) < 1e-8:
            return None
        return got

    @cached_property
    def f(self) -> torch.Tensor | None:
        return self._ask("f_values")

    @cached_property
    def custom(self) -> torch.Tensor | None:
        return self._ask("custom_values")

    def f_targets(self) -> list[torch.Tensor]:
        """What "fits f" may mean: the reference f, and the student's own f (the one their model was trained on)."""
        return [reference_f(GRID)] + ([self.f] if self.f is not None else [])


def usable(pred: torch.Tensor) -> bool:
    """Predictions that can be compared: one finite value per grid point."""
    return pred.numel() == GRID.shape[0] and bool(torch.isfinite(pred).all())


def fits_custom(pred: torch.Tensor, values: GridValues) -> bool:
    """Whether the predictions are closer (normalized MSE) to the student's custom_f than to f, reference or own."""
    if values.custom is None or not usable(pred):
        return False
    return nmse(pred, values.custom) < min(nmse(pred, t) for t in values.f_targets())


def single_model(weights: Any) -> dict[str, torch.Tensor] | None:
    """model.pth's one model when it holds a bare state_dict, or a whole pickled model (read as its state_dict),
    instead of {"default": ..., "custom": ...}; None otherwise."""
    if isinstance(weights, dict) and weights and all(isinstance(v, torch.Tensor) for v in weights.values()):
        return dict(weights)
    return None


def one_model(weights: Any) -> str:
    return f"a single model ({weights.cls_name})" if isinstance(weights, PickledModel) else "a single state_dict"


OVERWRITTEN = ('model.pth holds one model, and it fits your custom_f, not f: the default model is missing (did a '
               'second torch.save overwrite the first?). Save both in one file: torch.save({"default": '
               'model.state_dict(), "custom": custom_model.state_dict()}, "model.pth")')  # fmt: skip


def state_dict_for(weights: Any, which: str, check: Any) -> dict[str, torch.Tensor]:
    """model.pth is {"default": state_dict, "custom": state_dict}; a bare state_dict counts as "default"."""
    first = which == "default"  # notes about the file are said once, where the default model is read
    if isinstance(weights, (list, tuple)) and len(weights) == 2 and all(single_model(w) for w in weights):
        if first:  # torch.save([model.state_dict(), custom_model.state_dict()]): the handout's order
            check.note(f'model.pth is a {type(weights).__name__} of two state_dicts: read them in the order saved, as '
                       '"default" and "custom"; the handout saves {"default": ..., "custom": ...}')  # fmt: skip
        weights = {"default": weights[0], "custom": weights[1]}
    if (single := single_model(weights)) is not None:
        if which == "custom":
            fail(f'model.pth holds {one_model(weights)}; save {{"default": ..., "custom": ...}} to grade the custom '
                 "task")  # fmt: skip
        if not isinstance(weights, PickledModel):  # the intake's note says how a whole model was read
            check.note('model.pth is a bare state_dict; read it as the "default" model')
        weights, which = {"default": single}, "default"
    if names := _named_otherwise(weights):
        if first:
            how = "in the order saved, " if not any("custom" in k.lower() for k in names.values()) else ""
            check.note(f"model.pth keeps its two models under {names['default']!r} and {names['custom']!r}: read "
                       f'them {how}as "default" and "custom", the names the handout saves them under')  # fmt: skip
        which = names[which]
    said: list[str] = []
    try:
        state = state_dict_from(weights, "model.pth", which, said)
    except WeightsError as exc:
        raise CheckFailed(f'{exc}; save torch.save({{"default": ..., "custom": ...}}, "model.pth")') from None
    for note in said if first else ():
        check.note(note)
    return state


CUSTOM_FILE_MAX_BYTES = 16 << 20  # an exp1 MLP is tens of KiB


def custom_file_beside(model_pth: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
    """(name, state_dict) of a second weights file beside model.pth whose name says custom (custom_model.pth), where
    the student saved the custom model apart instead of under model.pth's "custom" key; read as data, as model.pth
    is. None where there is none, or it is not a readable single model."""
    for path in sorted(model_pth.parent.iterdir()):
        if not ("custom" in path.name.lower() and path.suffix in (".pth", ".pt") and path != model_pth):
            continue
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > CUSTOM_FILE_MAX_BYTES:
                continue
            obj = load_weights(path)
            key = "custom" if isinstance(obj, dict) and "custom" in obj else None
            return path.name, state_dict_from(obj, path.name, key)
        except (WeightsError, OSError):
            continue
    return None


def _named_otherwise(weights: Any) -> dict[str, str] | None:
    """{"default": key, "custom": key} for two state_dicts saved under names of the student's own: the one whose
    name says custom is the custom model ("model", "custom_model"); where neither name says which ("f", "g"), the
    one saved first is the default model, as the handout saves them. None otherwise."""
    if not isinstance(weights, dict) or "default" in weights or "custom" in weights:
        return None
    held = [k for k, v in weights.items() if isinstance(k, str) and single_model(v) is not None]
    if len(held) != 2:
        return None
    custom = [k for k in held if "custom" in k.lower()]
    if len(custom) == 1:
        return {"custom": custom[0], "default": next(k for k in held if k != custom[0])}
    return {"default": held[0], "custom": held[1]} if not custom else None


def handout_with(state: dict[str, torch.Tensor]) -> HandoutMLP:
    """The handout MLP with `state` loaded (RuntimeError or KeyError: the weights are of another model)."""
    model = HandoutMLP()
    model.load_state_dict(state)
    return model


def handout_outputs(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The handout MLP's outputs (N, 1) on x (N, 1) with `state`, in float64, computed by the judge."""
    with torch.no_grad():
        return handout_with(state)(x).double()


def mse(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """The handout MLP's mean squared error with `state`, computed by the judge."""
    return float(((handout_outputs(state, x) - y.double()) ** 2).mean())


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def first_step_scale(init: dict[str, torch.Tensor], after: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                     lr: float) -> float | None:  # fmt: skip
    """k when one epoch of train() moved the weights by -k * lr * (the MSE's gradient at init), as plain SGD (or
    its first step with momentum) does: k = 1 on the mean squared error, len(x) on the sum. None when the step is
    not along the gradient (Adam's is not), so nothing is said about it."""
    model = handout_with(init)
    loss = ((model(x).double() - y.double()) ** 2).mean()  # computed by the judge
    grads = torch.autograd.grad(loss, list(model.parameters()))
    sgd = torch.cat([(-lr * g).reshape(-1) for g in grads]).double()
    names = [n for n, _ in model.named_parameters()]
    if after.keys() != init.keys():
        return None
    step = torch.cat([(after[n].double() - init[n].double()).reshape(-1) for n in names])
    if not torch.isfinite(step).all() or float(sgd.norm()) == 0:
        return None
    k = float(step @ sgd / (sgd @ sgd))
    return k if float((step - k * sgd).norm()) <= 1e-2 * float(step.norm()) else None


def grid_predictions(contestant: Any, state: dict[str, torch.Tensor], which: str,
                     what: str) -> tuple[torch.Tensor, str | None]:  # fmt: skip
    """The trained model's predictions on GRID, computed by the judge (grader.judge.measured), and the note to
    give when they were measured in the student's own model. Raises ContestantError or GraphRefused when the
    student's model cannot be measured with these weights."""
    chosen = choose(model_spec(which), state, contestant, what)
    return predict(chosen, POLICY, "exp1-grid", GRID, len(GRID)), (chosen.note if chosen.own else None)


def fit_of(contestant: Any, state: dict[str, torch.Tensor], which: str, what: str, check: Any) -> torch.Tensor:
    """The trained model's predictions on GRID, computed by the judge (grader.judge.measured)."""
    pred, note = grid_predictions(contestant, state, which, what)
    if note:
        check.note(note)
    return pred


UNMEASURABLE = (ContestantError, GraphRefused)  # the student's model does not take, or run, these weights


def affine_fit(source: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    """(a, b, the normalized MSE of a * source + b against target): the best scale and shift, by least squares."""
    basis = torch.cat([source.double().reshape(-1, 1), torch.ones(source.numel(), 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(basis, target.double().reshape(-1, 1)).solution  # (2, 1): a, b
    return float(coef[0]), float(coef[1]), nmse(basis @ coef, target)


RESCALED_SHARE = 0.5  # what a model that fits only once its outputs are scaled back earns of its fit


def rescaled(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, str] | None:
    """(the normalized MSE after, what to say) when predictions that miss `target` fit it once scaled and shifted
    (a * output + b): a model trained on standardized targets and saved without undoing that. None otherwise."""
    if not usable(pred) or FIT.fraction(nmse(pred, target)) >= 1:
        return None
    a, b, after = affine_fit(pred, target)
    if FIT.fraction(after) < 0.5 or nmse(pred, target) < 10 * after:
        return None
    return after, (f"once scaled and shifted (y = {a:.4g} * output {'+' if b >= 0 else '-'} {abs(b):.4g}) its outputs "
                   f"fit with normalized MSE {FIT.shown(after)}: was the model trained on standardized targets ((y - "
                   "mean) / std) and saved without undoing that? Save a model whose outputs are y itself: fold the "
                   "scaling into its last layer (weight * std, bias * std + mean), or train on y")  # fmt: skip


def default_rescaled(contestant: Any, weights: Any) -> str | None:
    """What model.pth["default"] needs scaled to fit f (the reference's or the student's own): "outputs" (scaled
    back) or "inputs" (scaled as in training), which model_fits_target charges; None when neither."""
    try:
        state = state_dict_from(weights, "model.pth", "default")
        pred, _ = grid_predictions(contestant, state, "default", "model.pth")
    except (*UNMEASURABLE, WeightsError, CheckFailed):
        return None
    targets = GridValues(contestant).f_targets()
    if any(rescaled(pred, target) for target in targets):
        return "outputs"
    return "inputs" if any(scaled_inputs(state, pred, target) for target in targets) else None


# How students scale x in [-5, 5] before training: by its largest value (or to [-1, 1]), to [0, 1], by 10, or
# standardized (x uniform over [-5, 5]: mean 0, std 10 / sqrt(12))
INPUT_SCALINGS = (("x / 5", lambda x: x / X_MAX), ("(x + 5) / 10", lambda x: (x - X_MIN) / (X_MAX - X_MIN)),
                  ("x / 10", lambda x: x / 10), ("(x - mean) / std", lambda x: x / ((X_MAX - X_MIN) / 12**0.5)))


def scaled_inputs(state: dict[str, torch.Tensor], pred: torch.Tensor, target: torch.Tensor) -> tuple[float, str] | None:
    """(the normalized MSE after, what to say) when the handout MLP with `state` misses `target` on GRID (`pred`)
    but fits it once its inputs are scaled as a usual normalization does (x / 5), its outputs maybe scaled back
    too: a model trained on scaled inputs, saved without that scaling. None otherwise, or for a model of the
    student's own (its weights do not load into the handout's)."""
    if not usable(pred) or FIT.fraction(nmse(pred, target)) >= 1:
        return None
    try:
        model = handout_with(state)
    except (RuntimeError, KeyError):
        return None
    best: tuple[float, str] | None = None
    for label, scale in INPUT_SCALINGS:
        with torch.no_grad():
            out = model(scale(GRID).float()).double()  # (2001, 1)
        if not usable(out):
            continue
        a, b, affine = affine_fit(out, target)
        direct = nmse(out, target)
        value, said = (direct, label) if FIT.fraction(direct) >= 1 or direct <= 2 * affine else (
            affine, f"{label}, and its outputs as y = {a:.4g} * output {'+' if b >= 0 else '-'} {abs(b):.4g}")
        if best is None or value < best[0]:
            best = (value, said)
    if best is None or FIT.fraction(best[0]) < 0.5 or nmse(pred, target) < 10 * best[0]:
        return None
    return best[0], (f"once its inputs are scaled as {best[1]}, it fits with normalized MSE {FIT.shown(best[0])}: was "
                     "the model trained on scaled inputs and saved without that scaling? Save a model that takes x "
                     "itself: fold the scaling into its first layer (for x / s: its weight / s), or scale x inside "
                     "forward()")  # fmt: skip


def standardized_fit(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                     before: float) -> tuple[float, float] | None:  # fmt: skip
    """(a, b) when the handout MLP with `state` misses y but a * output + b reaches at most half the MSE `before`:
    weights train() left after fitting standardized targets ((y - mean) / std, a = std, b = mean). None otherwise."""
    pred = handout_outputs(state, x)  # (N, 1)
    if not torch.isfinite(pred).all():
        return None
    a, b, _ = affine_fit(pred, y)
    fitted = float(((a * pred + b - y.double()) ** 2).mean())
    moved = abs(a - 1) > 0.2 or abs(b) > 0.2 * float(y.double().std())
    return (a, b) if moved and fitted <= 0.5 * before else None


def grade_fit(pred: Any, target: torch.Tensor, what: str, state: dict[str, torch.Tensor] | None = None) -> None:
    """Grade predictions on GRID against `target`; `state` (the weights measured) lets it tell a model trained on
    scaled inputs."""
    pred = expect_finite(expect_tensor(pred, what), what)
    if pred.numel() != target.numel():
        fail(f"{what} returned {pred.numel()} values for {target.numel()} grid points")
    measured = f"{what}, on {GRID.shape[0]} grid points over [{X_MIN:g}, {X_MAX:g}]"
    spread, scale = float(pred.std()), float(target.std())
    if spread <= 0.1 * scale and abs(float(pred.mean() - target.mean())) <= 0.1 * scale:  # NMSE ~1: no points
        fail(f"{measured}: about the targets' mean ({float(target.mean()):.4g}) at every point (spread "
             f"{spread:.3g} against the targets' {scale:.3g}), normalized MSE {FIT.shown(nmse(pred, target))}: the "
             "model learned only the average of y. The usual cause is a loss between outputs of shape (N, 1) and "
             "targets of shape (N,), which broadcasts to (N, N) and is smallest at the mean (PyTorch warns 'Using a "
             "target size ... different to the input size'): give y the model's shape (y.reshape(-1, 1), or make "
             "x of shape (N, 1) before computing y = f(x)). Hidden units that all died (ReLU after too large a "
             "step) end the same way")  # fmt: skip
    if spread <= 1e-3 * scale:  # a constant scores no points anyway: say what gives one
        fail(f"{measured}: the same value ({float(pred.mean()):.4g}) at every point, normalized MSE "
             f"{FIT.shown(nmse(pred, target))}: a network whose weights all start equal (zeros, or one constant) "
             "never tells its hidden units apart, and one that train() never updated stays as built; keep PyTorch's "
             "default initialisation (or small random values) and check that training changes the weights")
    fix, fit = rescaled(pred, target), "rescaled fit"
    if fix is None and state is not None:
        fix, fit = scaled_inputs(state, pred, target), "fit on scaled inputs"
    if fix:
        partial(RESCALED_SHARE * FIT.fraction(fix[0]), f"{measured}: normalized MSE {FIT.shown(nmse(pred, target))} "
                f"({FIT.rule()}); {fix[1]}. Such a model earns {RESCALED_SHARE:.0%} of what its {fit} would")
    FIT.grade(nmse(pred, target), measured)
