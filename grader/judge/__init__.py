"""The judge: pytest checks that run in the trusted process and never import student code.

Helpers for check authors are re-exported here: `from grader.judge import fail, partial, expect_shape`.
"""

from grader.judge.client import ContestantError
from grader.judge.curves import CurveSummary, curve_problem, expect_curve
from grader.judge.evaluation import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, confusion_matrix, judge_device
from grader.judge.gradients import (
    autograd_gradients,
    directional_derivatives,
    expect_directional_match,
    expect_gradients_match,
    finite_difference_gradients,
    gradient_dot,
    gradient_mismatch,
    perturbed,
    random_directions,
)
from grader.judge.outcome import CheckFailed, Deferred, Partial, defer, fail, partial
from grader.judge.tensors import (
    FileBytes,
    collapse_repeats,
    expect_finite,
    expect_shape,
    expect_shape_trace,
    expect_shapes,
    expect_tensor,
    first_mismatch,
    renamed_keys,
    shape_str,
    tensor,
)
from grader.judge.thresholds import Threshold, accuracy_threshold, perplexity_threshold
from grader.judge.weights import (
    PickledModel,
    WeightsError,
    load_weights,
    state_dict_from,
    state_dicts_in,
    weights_from_bytes,
)

__all__ = [
    "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "CheckFailed", "ContestantError", "CurveSummary", "Deferred",
    "FileBytes", "Partial", "PickledModel", "defer",
    "Threshold", "WeightsError", "accuracy_threshold", "confusion_matrix", "judge_device",
    "autograd_gradients", "collapse_repeats", "curve_problem", "directional_derivatives", "expect_curve",
    "expect_directional_match", "expect_finite", "expect_gradients_match", "expect_shape", "expect_shape_trace",
    "expect_shapes", "expect_tensor", "fail", "finite_difference_gradients", "first_mismatch", "gradient_dot",
    "gradient_mismatch", "load_weights", "partial", "perplexity_threshold", "perturbed", "random_directions",
    "renamed_keys", "shape_str", "state_dict_from", "state_dicts_in", "tensor", "weights_from_bytes",
]  # fmt: skip
