"""The judge: pytest checks that run in the trusted process and never import student code.

Helpers for check authors are re-exported here: `from grader.judge import fail, partial, expect_shape`.
"""

from grader.judge.client import ContestantError
from grader.judge.outcome import CheckFailed, Partial, fail, partial
from grader.judge.tensors import expect_finite, expect_shape, expect_tensor, first_mismatch, shape_str
from grader.judge.weights import WeightsError, load_weights, state_dict_from

__all__ = [
    "CheckFailed", "ContestantError", "Partial", "WeightsError", "expect_finite", "expect_shape",
    "expect_tensor", "fail", "first_mismatch", "load_weights", "partial", "shape_str", "state_dict_from",
]  # fmt: skip
