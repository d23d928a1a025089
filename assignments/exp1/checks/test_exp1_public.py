"""exp1 public checks: students run these with `grader check exp1 DIR`."""

import math

import torch
from exp1_judge import (
    F_POINTS,
    GRID,
    OVERWRITTEN,
    UNMEASURABLE,
    X_MAX,
    X_MIN,
    GridValues,
    HandoutMLP,
    TrainCurve,
    default_rescaled,
    f_charged,
    f_problem,
    first_step_scale,
    fits_custom,
    grade_fit,
    grid_predictions,
    model_spec,
    mse,
    nmse,
    reference_f,
    same_weights,
    single_model,
    standardized_fit,
    state_dict_for,
    usable,
)

from grader.judge import ContestantError, WeightsError, defer, expect_finite, expect_shape, fail, partial

STEP_BUDGET = 300  # full-batch epochs; the reference lowers the MSE ~50x in this budget
TRAIN_LR = 0.01
IGNORED_EPOCHS = 10  # a train() that leaves the same weights after 10 epochs as after 300 ignores num_epochs


def test_f_reference_values(contestant):
    if problem := f_problem(contestant.call("f_values", x=F_POINTS)):  # eight points over [-5, 5]
        fail(f"f(x) {problem}")


def test_mlp_output_shape(contestant):
    for n in (64, 1):
        x = torch.linspace(X_MIN, X_MAX, n).reshape(n, 1)  # (n, 1)
        out = contestant.call("model_output", x=x)
        out = expect_shape(out, (n, 1), f"model(x) for x of shape ({n}, 1)")
        expect_finite(out, f"model(x) for x of shape ({n}, 1)")


def test_training_lowers_mse(contestant, submission):
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(256, 1, generator=g) * (X_MAX - X_MIN) + X_MIN  # (256, 1)
    y = reference_f(x).float()  # (256, 1): the true f, so this check does not depend on the student's f
    with torch.random.fork_rng(devices=[]):  # the same start whatever the judge drew before (batch workers)
        torch.manual_seed(0)
        start = HandoutMLP()  # the weights training starts from: the judge's, so it knows the loss before
    init = {k: v.clone() for k, v in start.state_dict().items()}

    def trained(num_epochs: int, lr: float) -> dict[str, torch.Tensor]:
        """The weights the student's train() leaves from `init` (seed 0, so the same call leaves the same)."""
        return contestant.call("train_curve", x=x, y=y, init_state=init, num_epochs=num_epochs, lr=lr, seed=0,
                               returns=TrainCurve)["state"]  # fmt: skip

    def probed(num_epochs: int, lr: float) -> dict[str, torch.Tensor] | None:
        """trained(), for a call only asked to tell something: None where the student's train() fails on it (a
        print every num_epochs // 100 epochs divides by zero at 10 epochs), which then tells nothing."""
        try:
            return trained(num_epochs, lr)
        except ContestantError:
            return None

    state = trained(STEP_BUDGET, TRAIN_LR)
    if problem := model_spec("default").build().state_dict().keys() ^ state.keys():
        fail(f"after train() the model's weights have other names ({sorted(problem)[:3]}): does train() replace "
             "the model's layers?")  # fmt: skip
    before, after = mse(init, x, y), mse(state, x, y)  # measured by the judge, on the weights train() left
    call = f"train(model, x, y, num_epochs={STEP_BUDGET}, lr={TRAIN_LR})"
    what = f"after {call} the MSE went from {before:.4g} to {after:.4g}"
    others = {"num_epochs": probed(IGNORED_EPOCHS, TRAIN_LR), "lr": probed(STEP_BUDGET, TRAIN_LR / 10)}
    ignored = [arg for arg, other in others.items() if other is not None and same_weights(other, state)]
    if ignored and not same_weights(state, init):  # one that changes nothing at all is charged below
        # the grader's calls (and the report's epochs x lr table) need train() to obey them
        partial(0.5, f"train() ignores its {' and '.join(ignored)} argument{'s' if len(ignored) > 1 else ''}: called "
                f"with num_epochs={IGNORED_EPOCHS if 'num_epochs' in ignored else STEP_BUDGET} and lr="
                f"{TRAIN_LR / 10 if 'lr' in ignored else TRAIN_LR:g} it left exactly the weights of {call}. Use "
                "the arguments inside train() (range(num_epochs), lr=lr), not the module's NUM_TRAIN_EPOCHS or "
                "LEARNING_RATE")  # fmt: skip
    if math.isfinite(after) and after <= 0.5 * before:
        return
    grew = ("the loss grew: a train() that does not reset the gradients each step (optimizer.zero_grad() before "
            "loss.backward()), or that takes too large a step, diverges like this")  # fmt: skip
    one = probed(1, TRAIN_LR)
    if one and (scale := first_step_scale(init, one, x, y, TRAIN_LR)) and abs(scale / len(x) - 1) < 0.01:
        # Liu Er's lectures sum the squared errors (MSELoss(size_average=False)): every step is len(x) times larger
        summed = f"{what}: train()'s first step is {len(x)} times plain SGD's on the mean squared error, so its loss " \
                 f"is summed over the {len(x)} samples (nn.MSELoss(reduction='sum'), or size_average=False as in " \
                 "the lectures); the handout's train() minimizes the MEAN squared error: use nn.MSELoss()"
        if (scaled := probed(STEP_BUDGET, TRAIN_LR / len(x))) and mse(scaled, x, y) <= 0.5 * before:
            partial(0.5, f"{summed} (with lr {TRAIN_LR:g}/{len(x)} it trains as it should)")
        fail(summed)
    if fix := standardized_fit(state, x, y, before):
        said = (f"{what}, but once scaled and shifted (y = {fix[0]:.4g} * output {'+' if fix[1] >= 0 else '-'} "
                f"{abs(fix[1]):.4g}) its outputs fit y: train() fits standardized targets ((y - mean) / std)")
        try:
            saved = default_rescaled(contestant, submission.weights("model.pth"))
        except WeightsError:  # no readable model.pth: model_fits_target says so, and the slip is charged here
            saved = None
        if saved == "outputs":
            defer("model_fits_target", f"{said}, and model.pth's default model has the same outputs")
        partial(0.5, f"{said}; the model train() leaves must predict y itself: train on y, or fold the scaling into "
                "the last layer before train() returns (weight * std, bias * std + mean)")  # fmt: skip
    if not math.isfinite(after):
        fail(f"{what}: training diverged; {grew}")
    if after < before:
        partial(0.5, f"{what}; expected at most half the starting MSE ({0.5 * before:.4g})")
    fail(f"{what}; expected it to fall to at most {0.5 * before:.4g}. {grew[0].upper()}{grew[1:]}")


def test_model_fits_target(contestant, submission, check):
    weights = submission.weights("model.pth")
    single = single_model(weights)  # a bare state_dict or a whole model: the default one, unless it fits custom_f
    values = GridValues(contestant)  # the student's f and custom_f on the grid, asked only when needed
    what = 'model.pth["default"]'
    state = single if single is not None else state_dict_for(weights, "default", check)
    try:
        pred, note = grid_predictions(contestant, state, "default", what)
    except UNMEASURABLE:
        if single is not None and _is_custom_model(contestant, single, values):
            fail(OVERWRITTEN)
        raise
    if single is not None:
        if fits_custom(pred, values):
            fail(OVERWRITTEN)
        state_dict_for(weights, "default", check)  # its note on how a bare state_dict was read
    if note:
        check.note(note)
    what = f"{what} in your model, run by the judge"
    ref = reference_f(GRID)
    own = values.f  # the student's f(x): a model trained on a mistyped f fits it, and that mistake is charged once
    if own is not None and usable(pred) and nmse(pred, own) < nmse(pred, ref) and f_charged(contestant):
        check.note("the fit is measured against your own f(x), not the assignment's: your f(x) differs from it, "
                   "and that mistake is charged once, by f_reference_values")  # fmt: skip
        grade_fit(pred, own, f"{what}, against your own f(x)", state)
    grade_fit(pred, ref, what, state)


def _is_custom_model(contestant, state, values: GridValues) -> bool:
    """A single model that the student's build_model() cannot measure: the custom model, if build_custom_model()
    can and it fits custom_f."""
    try:
        pred, _ = grid_predictions(contestant, state, "custom", "model.pth")
    except UNMEASURABLE:
        return False
    return fits_custom(pred, values)
