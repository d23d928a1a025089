"""softmax hidden checks: stability at extreme logits, and the loss's finite differences in float64."""

import torch
from softmax_judge import images, init_params, ref_loss_sum, wrong_piece

from grader.judge import (
    ContestantError,
    autograd_gradients,
    defer,
    directional_derivatives,
    expect_directional_match,
    expect_shape,
    fail,
    first_mismatch,
    gradient_dot,
    perturbed,
    random_directions,
)

FD_DIRECTIONS = 3
FD_EPS = 1e-6  # float64: truncation ~eps^2, rounding ~1e-16 * |loss| / eps ~ 1e-8 for a loss near 100


def test_softmax_stable(contestant):
    X = torch.tensor([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -1000.0],
                      [0.5, -0.5, 0.0]])  # fmt: skip
    got = contestant.call("softmax_values", X=X)
    got = expect_shape(got, (4, 3), "softmax(X) for X (4, 3)")
    broken = ~torch.isfinite(got).all(dim=1)  # (4,): rows that came out inf or NaN
    topped = X.max(dim=1).values == X.max()  # (4,): rows that hold X's largest logit
    if broken[topped].any():
        fail(f"softmax of logits of +-1000 gave {got.tolist()}: exp(1000) overflows; subtract each row's maximum "
             "first (softmax is unchanged by a constant shift)")  # fmt: skip
    if broken.any():
        rows = " and ".join(str(i + 1) for i in broken.nonzero().flatten().tolist())
        fail(f"softmax of logits of +-1000 gave {got.tolist()}: the rows whose largest logit is below X's largest "
             f"(rows {rows}) came out as 0/0, every exp in them underflowing, as when one maximum is subtracted for "
             "the whole of X; subtract each row's own, X.max(dim=1, keepdim=True)")  # fmt: skip
    # 1e-4: exp(X - logsumexp(X)), as stable as subtracting the maximum, is off by about 1000 * 6e-8 (float32's
    # spacing at 1000) in the exponent, 1.5e-5 of 0.5 here; a row maximum taken wrongly is off by far more.
    if problem := first_mismatch(got, torch.softmax(X.double(), dim=1), torch.arange(got.numel()), 1e-4, 1e-4):
        small = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)) * 3  # softmax_rows' logits (8, 10)
        plain = contestant.call("softmax_values", X=small)
        if tuple(plain.shape) == (8, 10) and ((plain.double().sum(dim=1) - 1).abs() > 1e-5).any():
            defer("softmax_rows", "softmax(X)'s rows do not sum to 1 even for small logits, so its values for "
                                  "large ones are off for the same reason")  # fmt: skip
        fail(f"softmax of logits of +-1000 differs from the reference: entry {problem.removeprefix('at x=')}")


def test_gradient_finite_differences(contestant, data_root):
    X, y = images(data_root, 32, train=True, seed=10)
    W, b = init_params(seed=11, std=0.1)
    X = X.double()
    params = {"W": W.double(), "b": b.double()}
    directions = random_directions(params, FD_DIRECTIONS, seed=12)
    points = [p for d in directions for p in perturbed(params, d, FD_EPS)]  # plus, minus, plus, minus, ...
    if wrong := wrong_piece(contestant):  # float64 precision is what this check measures, not the values
        defer(*wrong)
    try:
        values = contestant.call("loss_values", X=X, y=y, points=points, returns=list[float])
    except ContestantError as exc:
        if "dtype" not in exc.message:
            raise
        fail(f"cross_entropy(net(X), y) on float64 images and parameters {exc.message}: finite differences need "
             "float64, and your code casts to another dtype (a .float(), or a tensor made in float32 and mixed in); "
             "keep the dtype of the inputs, as torch's own functions do")  # fmt: skip
    if not isinstance(values, list) or len(values) != len(points):
        fail(f"expected {len(points)} loss values, got {values!r}")
    measured = directional_derivatives(values[0::2], values[1::2], FD_EPS)
    grad = autograd_gradients(lambda p: ref_loss_sum(X, y, p["W"], p["b"]), params)
    predicted = [gradient_dot(grad, d) for d in directions]
    expect_directional_match(measured, predicted, "cross_entropy(net(X), y).sum() for 32 images in float64 (keep "
                             "the inputs' dtype)", atol=1e-5, rtol=1e-5)  # fmt: skip
