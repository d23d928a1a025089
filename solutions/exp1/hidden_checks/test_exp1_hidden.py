"""exp1 hidden checks: graded by instructors, never shipped to students."""

import ast
import math

import torch
from exp1_judge import (
    GRID,
    NUM_TRAIN_SAMPLES,
    UNMEASURABLE,
    GridValues,
    Settings,
    affine_fit,
    custom_file_beside,
    default_rescaled,
    fit_of,
    fits_custom,
    grade_fit,
    grid_predictions,
    one_model,
    reference_f,
    rescaled,
    scaled_inputs,
    single_model,
    state_dict_for,
)

from grader.judge import (
    ContestantError,
    Partial,
    defer,
    expect_finite,
    expect_shape,
    fail,
    partial,
)


def _static_value(source: str, name: str):
    """The number a top-level `name = ...` assigns in the source text, read without running it; None when it is
    not written as one (`int(1e3)`, `args.samples`: the imported value shows what it is)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return None
    return None


def _fewer_samples(source: str) -> str | None:
    """A call of make_data(...) where the experiments run (main(), or the top level and its main guard) that asks
    for another number of samples, written as a number (`make_data(fn, 500)`, `make_data(f, num_samples=200)`):
    the line and the call; None when there is none. A helper of the student's own that looks at 10 samples is
    not training."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    running = [n for n in ast.parse(source).body if not isinstance(n, defs) or n.name == "main"]
    for node in (inner for top in running for inner in ast.walk(top)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "make_data"):
            continue
        asked = [*node.args[1:2], *(k.value for k in node.keywords if k.arg in ("num_samples", "n", "num"))]
        for arg in asked:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int) and arg.value != NUM_TRAIN_SAMPLES:
                return f"line {node.lineno}: `{ast.unparse(node)}`"
    return None


def test_num_train_samples_unchanged(contestant, submission):
    """The constant as written (read from the source text), as imported, and as make_data(f) uses it."""
    settings = contestant.call("settings", returns=Settings)
    try:
        static = _static_value(submission.text("exp1.py"), "NUM_TRAIN_SAMPLES")
    except SyntaxError:
        static = settings["NUM_TRAIN_SAMPLES"]
    # None: not written in exp1.py, or not a name of it (kept in the student's own config.py, say): then
    # make_data(f), below, is what shows the number.
    for got in (v for v in (static, settings["NUM_TRAIN_SAMPLES"]) if v is not None):
        if got != NUM_TRAIN_SAMPLES:
            fail(f"NUM_TRAIN_SAMPLES is {got!r}; expected {NUM_TRAIN_SAMPLES} (the assignment fixes it)")
    if settings["samples_made"] != NUM_TRAIN_SAMPLES:
        fail(f"make_data(f) made {settings['samples_made']} samples; expected NUM_TRAIN_SAMPLES = {NUM_TRAIN_SAMPLES}")
    try:
        fewer = _fewer_samples(submission.text("exp1.py"))
    except SyntaxError:
        fewer = None
    if fewer:
        fail(f"exp1.py trains on another number of samples ({fewer}); the assignment fixes it at "
             f"NUM_TRAIN_SAMPLES = {NUM_TRAIN_SAMPLES}: call make_data(fn) without a number")


def test_custom_function_fits(contestant, submission, check):
    yc = contestant.call("custom_values", x=GRID)
    yc = expect_shape(yc, tuple(GRID.shape), "custom_f(x) on the grid")
    expect_finite(yc, "custom_f(x) on the grid")
    if (noise := _noise(contestant)) > 0:
        check.note(f"custom_f adds random noise (std about {noise:.3g} between calls): graded against its mean over "
                   "64 draws, the function your model learns from noisy data (to keep the target exact, add the "
                   "noise in make_data instead)")  # fmt: skip
    if torch.allclose(yc.double(), reference_f(GRID), atol=1e-3, rtol=1e-4):
        fail("custom_f(x) equals the default f(x) on the grid; define a function of your own")
    if float(yc.double().var()) < 1e-8:
        fail("custom_f(x) is constant on the grid; choose a function with some shape to fit")
    shifted = _shifted_f(yc.double())
    weights = submission.weights("model.pth")
    if (single := single_model(weights)) is not None and (got := _single_as_custom(contestant, single, yc)):
        pred, note = got
        check.note(f"model.pth holds {one_model(weights)}, and it fits your custom_f better than f, so it was graded "
                   "as the custom model")  # fmt: skip
        if note:
            check.note(note)
        _grade_custom(pred, yc, "model.pth in your custom model, run by the judge", shifted)
    label = 'model.pth["custom"]'
    if single is not None and (beside := custom_file_beside(submission.path("model.pth"))) is not None:
        label, state = beside
        check.note(f"model.pth holds {one_model(weights)}, and {label} another: graded {label} as the custom model "
                   '(the handout saves both in model.pth: torch.save({"default": ..., "custom": ...}, "model.pth"))')
    else:
        state = state_dict_for(weights, "custom", check)  # a single model that fits f: says how to save both
    pred = fit_of(contestant, state, "custom", label, check)
    own = "outputs" if rescaled(pred, yc.double()) else "inputs" if scaled_inputs(state, pred, yc.double()) else None
    if own and default_rescaled(contestant, weights) == own:
        defer("model_fits_target", f"your custom model too fits only once its {own} are scaled as in training, the "
              "same slip")  # fmt: skip
    _grade_custom(pred, yc, f"{label} in your model, run by the judge", shifted, state)


def _noise(contestant) -> float:
    """How much custom_f's values vary between calls at the same points (0.0: not at all, or it cannot say)."""
    try:
        noise = contestant.call("custom_noise", x=GRID, returns=float)
    except ContestantError:
        return 0.0
    return noise if math.isfinite(noise) else 0.0


SHIFTED_SHARE = 0.4  # what fitting f shifted or scaled earns of this check: the network is f's, the work f's


def _shifted_f(yc: torch.Tensor) -> str | None:
    """What custom_f is, when it is a * f + b on the grid (f shifted or scaled, such as f(x) + 1); else None."""
    a, b, residual = affine_fit(reference_f(GRID), yc)
    if residual > 1e-6:
        return None
    scaled = "f(x)" if abs(a - 1) < 1e-4 else "-f(x)" if abs(a + 1) < 1e-4 else f"{a:.4g} f(x)"
    shift = "" if abs(b) < 1e-4 else f" {'+' if b >= 0 else '-'} {abs(b):.4g}"
    return f"custom_f(x) is {scaled}{shift}"


def _grade_custom(pred: torch.Tensor, yc: torch.Tensor, what: str, shifted: str | None,
                  state: dict[str, torch.Tensor] | None = None) -> None:  # fmt: skip
    if shifted is None:
        grade_fit(pred, yc, what, state)
    try:
        grade_fit(pred, yc, what, state)
    except Partial as exc:
        earned, said = exc.fraction, exc.message
    partial(SHIFTED_SHARE * earned, f"{shifted}: the assignment's f, shifted or scaled, which the same network fits "
            "as it fits f; the task asks for a function of your own shape (such as 3 sin(2x) + 0.5 x), so the fit "
            f"earns {SHIFTED_SHARE:.0%} of this check. {said}")  # fmt: skip


def _single_as_custom(contestant, state, yc):
    """The grid predictions of model.pth's only model in build_custom_model(), if it fits custom_f better than f (a
    second torch.save overwrote the default model with the custom one); else None."""
    try:
        pred, note = grid_predictions(contestant, state, "custom", "model.pth")
    except UNMEASURABLE:
        return None
    return (pred, note) if fits_custom(pred, GridValues(contestant, custom=yc)) else None
