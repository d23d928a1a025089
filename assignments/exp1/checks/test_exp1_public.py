"""exp1 public checks: students run these with `grader check exp1 DIR`."""

import torch
from exp1_judge import (
    GRID,
    X_MAX,
    X_MIN,
    HandoutMLP,
    TrainCurve,
    fit_of,
    grade_fit,
    model_spec,
    mse,
    reference_f,
    state_dict_for,
)

from grader.judge import expect_finite, expect_shape, fail, first_mismatch, partial

STEP_BUDGET = 300  # full-batch epochs; the reference lowers the MSE ~50x in this budget
TRAIN_LR = 0.01


def test_f_reference_values(contestant):
    x = torch.tensor([-5.0, -2.5, -1.0, 0.0, 0.5, 1.0, 2.0, 4.5])  # (8,)
    got = expect_shape(contestant.call("f_values", x=x), (8,), "f(x) for x of shape (8,)")
    if problem := first_mismatch(got, reference_f(x), x, atol=1e-4, rtol=1e-5):
        fail(f"f(x) {problem}")


def test_mlp_output_shape(contestant):
    for n in (64, 1):
        x = torch.linspace(X_MIN, X_MAX, n).reshape(n, 1)  # (n, 1)
        out = contestant.call("model_output", x=x)
        out = expect_shape(out, (n, 1), f"model(x) for x of shape ({n}, 1)")
        expect_finite(out, f"model(x) for x of shape ({n}, 1)")


def test_training_lowers_mse(contestant):
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(256, 1, generator=g) * (X_MAX - X_MIN) + X_MIN  # (256, 1)
    y = reference_f(x).float()  # (256, 1): the true f, so this check does not depend on the student's f
    start = HandoutMLP()  # the weights training starts from: the judge's, so it knows the loss before
    init = {k: v.clone() for k, v in start.state_dict().items()}
    r = contestant.call("train_curve", x=x, y=y, init_state=init, num_epochs=STEP_BUDGET, lr=TRAIN_LR, seed=0,
                        returns=TrainCurve)  # fmt: skip
    if problem := model_spec("default").build().state_dict().keys() ^ r["state"].keys():
        fail(f"after train() the model's weights have other names ({sorted(problem)[:3]}): does train() replace "
             "the model's layers?")  # fmt: skip
    before, after = mse(init, x, y), mse(r["state"], x, y)  # measured by the judge, on the weights train() left
    call = f"train(model, x, y, num_epochs={STEP_BUDGET}, lr={TRAIN_LR})"
    what = f"after {call} the MSE went from {before:.4g} to {after:.4g}"
    if not torch.isfinite(torch.tensor(after)):
        fail(f"{what}: training diverged")
    if after <= 0.5 * before:
        return
    if after < before:
        partial(0.5, f"{what}; expected at most half the starting MSE ({0.5 * before:.4g})")
    fail(f"{what}; expected it to fall to at most {0.5 * before:.4g}")


def test_model_fits_target(contestant, submission, check):
    state = state_dict_for(submission.weights("model.pth"), "default", check)
    pred = fit_of(contestant, state, "default", 'model.pth["default"]', check)
    grade_fit(pred, reference_f(GRID), 'model.pth["default"] in your model, run by the judge')
