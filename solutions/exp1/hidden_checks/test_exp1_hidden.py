"""exp1 hidden checks: graded by instructors, never shipped to students."""

import ast

import torch
from exp1_judge import GRID, NUM_TRAIN_SAMPLES, Settings, fit_of, grade_fit, reference_f, state_dict_for

from grader.judge import expect_finite, expect_shape, fail


def _static_value(source: str, name: str):
    """The literal a top-level `name = ...` assigns in the source text, read without running it."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                return ast.unparse(node.value)
    return None


def test_num_train_samples_unchanged(contestant, submission):
    """The constant as written (read from the source text), as imported, and as make_data(f) uses it."""
    settings = contestant.call("settings", returns=Settings)
    try:
        static = _static_value(submission.text("exp1.py"), "NUM_TRAIN_SAMPLES")
    except SyntaxError:
        static = settings["NUM_TRAIN_SAMPLES"]
    for got in (static, settings["NUM_TRAIN_SAMPLES"]):
        if got != NUM_TRAIN_SAMPLES:
            fail(f"NUM_TRAIN_SAMPLES is {got!r}; expected {NUM_TRAIN_SAMPLES} (the assignment fixes it)")
    if settings["samples_made"] != NUM_TRAIN_SAMPLES:
        fail(f"make_data(f) made {settings['samples_made']} samples; expected NUM_TRAIN_SAMPLES = {NUM_TRAIN_SAMPLES}")


def test_custom_function_fits(contestant, submission, check):
    yc = contestant.call("custom_values", x=GRID)
    yc = expect_shape(yc, tuple(GRID.shape), "custom_f(x) on the grid")
    expect_finite(yc, "custom_f(x) on the grid")
    if torch.allclose(yc.double(), reference_f(GRID), atol=1e-3, rtol=1e-4):
        fail("custom_f(x) equals the default f(x) on the grid; define a function of your own")
    if float(yc.double().var()) < 1e-8:
        fail("custom_f(x) is constant on the grid; choose a function with some shape to fit")
    state = state_dict_for(submission.weights("model.pth"), "custom", check)
    pred = fit_of(contestant, state, "custom", 'model.pth["custom"]', check)
    grade_fit(pred, yc, 'model.pth["custom"] in your model, run by the judge')
