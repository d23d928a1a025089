"""The judge's helper library: shapes, gradients (autograd and finite differences), curves, thresholds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grader.judge import (
    CheckFailed,
    Partial,
    accuracy_threshold,
    autograd_gradients,
    collapse_repeats,
    curve_problem,
    directional_derivatives,
    expect_curve,
    expect_directional_match,
    expect_gradients_match,
    expect_shape_trace,
    expect_shapes,
    finite_difference_gradients,
    gradient_dot,
    gradient_mismatch,
    perplexity_threshold,
    perturbed,
    random_directions,
    renamed_keys,
)
from grader.judge.thresholds import Threshold, accuracy, perplexity


def softmax_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return F.cross_entropy(X @ p["W"] + p["b"], y, reduction="sum")


def params() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"W": torch.randn(5, 3, generator=g) * 0.5, "b": torch.randn(3, generator=g) * 0.5}


# -- shapes -------------------------------------------------------------------------------------------------
def test_expect_shapes_names_the_first_bad_tensor():
    ok = [torch.zeros(2, 3), torch.zeros(3)]
    assert len(expect_shapes(ok, [(2, 3), (3,)], ["W", "b"], "get_params()")) == 2
    with pytest.raises(CheckFailed, match=r"get_params\(\): b returned shape \(4,\); expected \(3,\)"):
        expect_shapes([torch.zeros(2, 3), torch.zeros(4)], [(2, 3), (3,)], ["W", "b"], "get_params()")
    with pytest.raises(CheckFailed, match="returned 1 item"):
        expect_shapes([torch.zeros(2, 3)], [(2, 3), (3,)], ["W", "b"], "get_params()")


def test_shape_trace_collapses_activations_and_names_the_layer():
    trace = [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 10), (1, 10)]
    assert collapse_repeats(trace) == [(1, 6, 28, 28), (1, 6, 14, 14), (1, 10)]
    want = [(1, 6, 28, 28), (1, 6, 14, 14), (1, 10)]
    expect_shape_trace(collapse_repeats(trace), want, ["conv", "pool", "fc"], "net")
    with pytest.raises(CheckFailed, match=r"after pool the shape is \(1, 6, 12, 12\); expected \(1, 6, 14, 14\)"):
        expect_shape_trace([(1, 6, 28, 28), (1, 6, 12, 12), (1, 10)], want, ["conv", "pool", "fc"], "net")
    with pytest.raises(CheckFailed, match="2 shape changes"):
        expect_shape_trace([(1, 6, 28, 28), (1, 6, 14, 14)], want, ["conv", "pool", "fc"], "net")


# -- gradients ----------------------------------------------------------------------------------------------
def test_autograd_agrees_with_central_differences_in_float64():
    auto = autograd_gradients(softmax_loss, params())
    fd = finite_difference_gradients(softmax_loss, params())
    assert auto["W"].dtype == torch.float64
    assert gradient_mismatch(fd, auto, atol=1e-7, rtol=1e-6) is None


def test_gradient_mismatch_names_the_entry():
    want = autograd_gradients(softmax_loss, params())
    got = {k: v.clone() for k, v in want.items()}
    got["W"][2, 1] += 0.1
    problem = gradient_mismatch(got, want, atol=1e-6, rtol=1e-5)
    assert problem is not None and problem.startswith("d/dW[2, 1] is") and "1 of 15 entries" in problem
    assert "no gradient for b" in gradient_mismatch({"W": want["W"]}, want, 1e-6, 1e-5)
    assert "has shape (3, 5)" in gradient_mismatch({"W": want["W"].T, "b": want["b"]}, want, 1e-6, 1e-5)
    nan = {"W": torch.full((5, 3), math.nan, dtype=torch.float64), "b": want["b"]}
    assert gradient_mismatch(nan, want, 1.0, 1.0) is not None
    with pytest.raises(CheckFailed, match="the loss: d/dW"):
        expect_gradients_match(got, want, "the loss", atol=1e-6, rtol=1e-5)


def test_directional_differences_match_the_gradient_and_catch_a_wrong_one():
    p = params()
    dirs = random_directions(p, 3, seed=2)
    assert all(math.isclose(sum(float((t**2).sum()) for t in d.values()), 1.0) for d in dirs)
    points = [perturbed(p, d) for d in dirs]
    measured = directional_derivatives([float(softmax_loss(a)) for a, _ in points],
                                       [float(softmax_loss(b)) for _, b in points])  # fmt: skip
    grad = autograd_gradients(softmax_loss, p)
    expect_directional_match(measured, [gradient_dot(grad, d) for d in dirs], "loss")
    with pytest.raises(CheckFailed, match="along direction 1 of 3"):
        expect_directional_match(measured, [2 * gradient_dot(grad, d) for d in dirs], "loss")
    with pytest.raises(CheckFailed):
        expect_directional_match([math.nan, 0.0, 0.0], [0.0, 0.0, 0.0], "loss")


# -- curves -------------------------------------------------------------------------------------------------
def test_curves():
    falling = [2.3, 2.0, 1.9, 1.5, 1.6, 1.2]
    assert expect_curve(falling, "loss", window=2).ratio == pytest.approx(1.4 / 2.15)
    assert curve_problem(falling, final_at_most=1.0) == "the last value is 1.2; expected at most 1"
    assert "training diverged" in curve_problem([2.3, math.nan, 1.0])
    assert "expected the end below it" in curve_problem([1.0, 1.1, 1.2])
    with pytest.raises(CheckFailed, match=r"loss: the mean of the last 2 is 1.4 .* below 0.5 x it"):
        expect_curve(falling, "loss", window=2, max_ratio=0.5)
    with pytest.raises(CheckFailed, match="expected a list of numbers"):
        expect_curve("falling", "loss")
    with pytest.raises(CheckFailed, match="at least 2"):
        expect_curve([1.0], "loss")


# -- thresholds ---------------------------------------------------------------------------------------------
def test_accuracy_threshold_states_seed_and_tolerance():
    t = accuracy_threshold(full=0.80, zero=0.70, seed=None, tolerance=0.001)
    assert t.fraction(0.83) == 1.0 and t.fraction(0.7995) == 1.0  # within the tolerance
    assert t.fraction(0.75) == pytest.approx(0.5) and t.fraction(0.6) == 0.0 and t.fraction(math.nan) == 0.0
    with pytest.raises(Partial) as info:
        t.grade(0.75, "W and b")
    assert info.value.fraction == pytest.approx(0.5)
    assert info.value.message == ("W and b: accuracy 0.7500 (full credit at >= 0.8, none at <= 0.7, linear between; "
                                  "within 0.001 of full credit still earns it, since machines measure slightly "
                                  "differently)")  # fmt: skip
    plain = accuracy_threshold(0.9, 0.5).rule()
    assert "randomness" not in plain and "within" not in plain
    assert "seed 3" in accuracy_threshold(0.9, 0.5, seed=3).rule()


def test_a_partial_measurement_never_reads_as_the_full_credit_bound():
    nmse = Threshold("normalized MSE", full=1e-3, zero=1e-1, higher_is_better=False, seed=None, tolerance=0.0,
                     scale="log")  # fmt: skip
    with pytest.raises(Partial) as info:
        nmse.grade(0.0010008, "the fit")
    assert 0 < info.value.fraction < 1 and "normalized MSE 0.001001 (" in info.value.message
    assert nmse.shown(2.5e-6) == "2.5e-06" and nmse.shown(0.5) == "0.5000" and nmse.shown(1e-3) == "0.001"


def test_perplexity_threshold_is_log_linear():
    t = perplexity_threshold(full=2.0, zero=8.0, tolerance=0.01)
    assert t.fraction(2.005) == 1.0 and t.fraction(8.0) == 0.0 and t.fraction(math.inf) == 0.0
    assert t.fraction(4.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="disagree"):
        Threshold("perplexity", full=8.0, zero=2.0, higher_is_better=False, seed=None, tolerance=0.0)


def test_metrics():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    uniform = torch.zeros(10, 28)
    assert perplexity(uniform, torch.arange(10)) == pytest.approx(28.0)


def test_renamed_keys_shows_each_distinct_rename_once():
    """torchvision's names on the handout's ResNet: many `downsample` keys and two `fc` keys; both renames shown."""
    reference = {f"layer{i}.0.shortcut.{j}.weight": [i, j] for i in (2, 3) for j in range(7)}
    reference |= {"linear.weight": [10, 64], "linear.bias": [10]}
    state = {k.replace("shortcut", "downsample").replace("linear", "fc"): v for k, v in reference.items()}
    assert renamed_keys(state, reference) == (
        "layer2.0.downsample.0.weight for layer2.0.shortcut.0.weight, fc.weight for linear.weight, "
        "layer2.0.downsample.1.weight for layer2.0.shortcut.1.weight and 13 more")
    assert renamed_keys({**state, "extra": [1]}, reference) is None  # not the same network under other names
