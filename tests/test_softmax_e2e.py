"""softmax graded end to end on the real Fashion-MNIST: the bundled examples and their messages."""

from __future__ import annotations

import pytest
import torch

from grader.grading import grade

pytestmark = pytest.mark.slow

FULL = {"softmax_rows": 10, "cross_entropy_values": 10, "accuracy_count": 5, "sgd_update": 10, "net_output": 10,
        "loss_gradient": 10, "training_epoch": 10, "test_accuracy": 15, "softmax_stable": 10,
        "gradient_finite_differences": 10}  # fmt: skip
# Per-check scores that differ from FULL. Measured, then fixed: grading is deterministic.
DIFFERS = {
    "solution": {},  # test accuracy 0.8284 after 10 epochs
    "stub": {cid: 0 for cid in FULL},
    # d2l's softmax verbatim: exp(1000) overflows; everything else, weights included (0.8284), is right.
    "unstable-softmax": {"softmax_stable": 0},
    # sgd never zeroes the gradients: they accumulate, training diverges to NaN (accuracy 0.10). The training
    # check defers to sgd_update, which charges it.
    "sgd-keeps-gradients": {"sgd_update": 0, "test_accuracy": 0},
    # cross_entropy returns the batch mean: wrong shape (charged once, by cross_entropy_values: the gradient and
    # training checks run with the reference cross_entropy, the float64 check defers); the weights the
    # student trained with it reach only 0.6594.
    "mean-loss": {"cross_entropy_values": 0, "test_accuracy": 0},
    # cross_entropy takes the softmax of net's probabilities again: charged by cross_entropy_values alone, with
    # a message naming it; the weights the student trained with it reach 0.7765 (linear credit 11.475 of 15).
    "softmax-twice": {"cross_entropy_values": 0, "test_accuracy": 11.475},
    # F.softmax, F.nll_loss and torch.optim.SGD: every value right, but the handout's from-scratch rule is
    # broken (10 points off the total, one problem naming each call and line; see test_library_shortcuts).
    "library-shortcuts": {},
}


def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", sorted(DIFFERS))
def test_bundled_example_scores(course, data_root, name):
    result = grade(course, "softmax", course.examples_dir("softmax") / name, data_root=data_root)
    expected = {**FULL, **DIFFERS[name]}
    assert {c.id: c.score for c in result.checks} == expected, {c.id: c.message for c in result.checks}
    assert result.max_score == 100 and all(c.status != "error" for c in result.checks)


def test_messages(course, data_root):
    unstable = by_id(grade(course, "softmax", course.examples_dir("softmax") / "unstable-softmax",
                           data_root=data_root, only=["softmax_stable", "test_accuracy"]))  # fmt: skip
    assert "exp(1000) overflows" in unstable["softmax_stable"].message
    assert unstable["test_accuracy"].message.endswith(
        "accuracy 0.8284 (full credit at >= 0.8, none at <= 0.7, linear between; no randomness, tolerance 0.001)")
    mean = by_id(grade(course, "softmax", course.examples_dir("softmax") / "mean-loss", data_root=data_root,
                       only=["cross_entropy_values", "gradient_finite_differences"]))  # fmt: skip
    assert mean["cross_entropy_values"].message.endswith("returned shape (); expected (32,)")
    assert mean["gradient_finite_differences"].notes == [
        "not charged here: your cross_entropy gives other values than the reference; that mistake is charged once, "
        "by cross_entropy_values"]  # fmt: skip
    sgd = by_id(grade(course, "softmax", course.examples_dir("softmax") / "sgd-keeps-gradients", data_root=data_root,
                      only=["sgd_update"]))  # fmt: skip
    assert "still holds the old gradient" in sgd["sgd_update"].message


def test_check_mode_runs_only_visible_checks(course, data_root):
    result = grade(course, "softmax", course.examples_dir("softmax") / "solution", data_root=data_root, mode="check")
    assert result.score == result.max_score == 80


def test_fashion_mnist_reader(data_root):
    from grader.data import read_fashion_mnist

    x, y = read_fashion_mnist(data_root, train=False)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [1000] * 10  # Fashion-MNIST's test set is balanced
    assert read_fashion_mnist(data_root, train=True)[0].shape == (60000, 1, 28, 28)
