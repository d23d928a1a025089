"""softmax public checks: students run these with `grader check softmax DIR --data-root DATA`."""

import torch
import torch.nn.functional as F
from softmax_judge import (
    LOGITS_SPLIT,
    MODEL,
    LossGradient,
    TrainEpoch,
    images,
    init_params,
    ref_loss_sum,
    ref_net,
    returns_logits,
    sgd_problem,
    submitted_params,
)

from grader.data import read_fashion_mnist
from grader.judge import (
    FASHION_MNIST_CLASSES,
    accuracy_threshold,
    autograd_gradients,
    confusion_matrix,
    defer,
    expect_curve,
    expect_finite,
    expect_gradients_match,
    expect_shape,
    fail,
    first_mismatch,
    partial,
)
from grader.judge.measured import choose, predict
from grader.judge.thresholds import accuracy

# d2l's 10 epochs at lr 0.1 land near 0.83 (the reference: 0.828). The whole test set in a fixed order draws
# nothing at random; 0.001 (10 images) covers float32 rounding across machines.
TEST_ACCURACY = accuracy_threshold(full=0.80, zero=0.70, seed=None, tolerance=0.001)
TRAIN_IMAGES, TRAIN_LR, TRAIN_BATCH = 4096, 0.1, 256
TRAIN_RATIO = 0.7  # one epoch (16 steps) takes the reference from 2.36 to 1.15 (ratio 0.49)


def test_softmax_rows(contestant):
    X = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)) * 3  # (8, 10)
    got = contestant.call("softmax_values", X=X)
    got = expect_finite(expect_shape(got, (8, 10), "softmax(X) for X (8, 10)"), "softmax(X)")
    sums = got.double().sum(dim=1)
    if (bad := (sums - 1).abs() > 1e-5).any():
        row = int(bad.nonzero()[0])
        cols = torch.allclose(got.double().sum(dim=0), torch.ones(10, dtype=torch.float64), atol=1e-5)
        fix = ": it normalizes each column (dim=0); sum each row, X_exp.sum(dim=1, keepdim=True)" if cols else ""
        fail(f"row {row} of softmax(X) sums to {float(sums[row]):.6g}; expected 1 (within 1e-5){fix}")
    if problem := first_mismatch(got, torch.softmax(X.double(), dim=1), torch.arange(got.numel()), 1e-6, 1e-5):
        fail(f"softmax(X) differs from the reference: entry {problem.removeprefix('at x=')}")
    if not contestant.call("softmax_keeps_graph", X=X, returns=bool):
        fail("softmax(X) breaks autograd (its result has no gradient): no .detach(), .item(), numpy or "
             "torch.no_grad() inside it, or training cannot learn")


def test_cross_entropy_values(contestant, check):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 10, generator=g, dtype=torch.float64) * 2  # (32, 10)
    y = torch.randint(0, 10, (32,), generator=g)
    got = contestant.call("cross_entropy_values", y_hat=torch.softmax(logits, dim=1), y=y)
    got = expect_shape(got, (32,), "cross_entropy(y_hat, y) for y_hat (32, 10), y (32,) (one loss per example)")
    want = F.cross_entropy(logits, y, reduction="none")  # == F.nll_loss(log_softmax(logits), y)
    if problem := first_mismatch(got, want, torch.arange(32), 1e-6, 0.0):
        if returns_logits(contestant)[1]:
            defer("net_output", "your cross_entropy takes logits, as your net returns them, and computes their loss "
                                "right")  # fmt: skip
        y_hat = torch.softmax(logits, dim=1)
        if first_mismatch(got, F.cross_entropy(y_hat, y, reduction="none"), torch.arange(32), 1e-6, 0.0) is None:
            fail("softmax applied twice: cross_entropy(y_hat, y) gets probabilities (net's output, already "
                 "softmax-ed) and takes the softmax again; take -log of y_hat at the true class directly "
                 f"(example {problem.removeprefix('at x=')})")  # fmt: skip
        if eps := _log_epsilon(got, y_hat[torch.arange(32), y]):
            check.note(f"cross_entropy takes -log(y_hat + {eps:.0e}), so its values differ from F.cross_entropy's by "
                       f"up to {float((got - want).abs().max()):.2g}: accepted, as that guard against log(0) is common "
                       "(a softmax output is never exactly 0, so it is not needed here)")  # fmt: skip
        else:
            fail(f"cross_entropy differs from F.cross_entropy (float64 inputs): example "
                 f"{problem.removeprefix('at x=')}")  # fmt: skip
    if not contestant.call("cross_entropy_keeps_graph", y_hat=torch.softmax(logits, dim=1), y=y, returns=bool):
        fail("cross_entropy breaks autograd (the loss has no gradient): no .detach(), .item(), numpy or "
             "torch.no_grad() inside it, or training cannot learn")


def _log_epsilon(got: torch.Tensor, p: torch.Tensor) -> float | None:
    """The small constant the student added inside the log, when every value is -log(p + eps) for one eps <= 1e-6
    (within float64's rounding); None otherwise."""
    eps = torch.exp(-got.double()) - p  # (32,)
    lo, hi = float(eps.min()), float(eps.max())
    return hi if 0 < lo and hi <= 1e-6 and hi - lo <= 1e-3 * hi else None


def test_accuracy_count(contestant):
    g = torch.Generator().manual_seed(2)
    y_hat = torch.softmax(torch.randn(64, 10, generator=g), dim=1)  # (64, 10)
    y = y_hat.argmax(dim=1)
    y[:27] = (y[:27] + 1) % 10  # 27 wrong, 37 right
    got = contestant.call("accuracy_value", y_hat=y_hat, y=y, returns=float)
    if got != 37:
        fail(f"accuracy(y_hat, y) returned {got!r} for 64 examples of which 37 are right; expected 37 "
             "(the number of correct predictions, as d2l's accuracy; evaluate_accuracy divides by N)")  # fmt: skip


def test_sgd_update(contestant):
    if problem := sgd_problem(contestant):
        fail(problem)


def test_net_output(contestant, data_root):
    X, _ = images(data_root, 16, train=False, seed=4)
    W, b = init_params(seed=5, std=0.1)
    got = contestant.call("net_output", X=X, W=W, b=b)
    got = expect_shape(got, (16, 10), "net(X) for X (16, 1, 28, 28)")
    if problem := first_mismatch(got, ref_net(X, W, b), torch.arange(got.numel()), 1e-6, 1e-5):
        logits, split = returns_logits(contestant)
        if split:
            fail(LOGITS_SPLIT)
        if logits:
            fail("net(X) returns the logits X W + b without the softmax: return softmax(X.reshape(-1, 784) @ W + b)")
        fail(f"net(X) differs from softmax(X.reshape(-1, 784) @ W + b): entry {problem.removeprefix('at x=')}")


def test_loss_gradient(contestant, data_root):
    X, y = images(data_root, 64, train=True, seed=6)
    W, b = init_params(seed=7, std=0.1)
    r = contestant.call("loss_gradient", X=X, y=y, W=W, b=b, returns=LossGradient)
    want = autograd_gradients(lambda p: ref_loss_sum(X, y, p["W"], p["b"]), {"W": W, "b": b})
    if returns_logits(contestant)[0]:  # the reference's loss on net's logits: what net_output charges
        try:
            expect_gradients_match({"W": r["W"], "b": r["b"]}, want, "", atol=1e-5, rtol=1e-4)
        except AssertionError:
            defer("net_output", "net returns logits, so the loss that takes probabilities has other gradients")
    expect_gradients_match({"W": r["W"], "b": r["b"]}, want, "the gradient of the summed loss through your net(X) "
                           "(with the reference softmax and cross_entropy) for 64 images", atol=1e-5, rtol=1e-4)


def test_training_epoch(contestant, data_root):
    X, y = images(data_root, TRAIN_IMAGES, train=True, seed=8)
    W, b = init_params(seed=9)
    r = contestant.call("train_epoch", X=X, y=y, W=W, b=b, lr=TRAIN_LR, batch_size=TRAIN_BATCH, seed=0,
                         returns=TrainEpoch)  # fmt: skip
    before = float(ref_loss_sum(X, y, W, b)) / len(y)
    after = float(ref_loss_sum(X, y, expect_shape(r["W"], (784, 10), "W after train_epoch"),
                               expect_shape(r["b"], (10,), "b after train_epoch"))) / len(y)  # fmt: skip
    what = (f"one epoch of train_epoch on {TRAIN_IMAGES} images (lr {TRAIN_LR}, batch {TRAIN_BATCH}) took the mean "
            f"loss from {before:.4f} to {after:.4f}")  # fmt: skip
    try:
        expect_curve([before, after], what, max_ratio=TRAIN_RATIO)
    except AssertionError:
        if problem := sgd_problem(contestant):
            defer("sgd_update", f"training uses your sgd, and {problem}")
        if after < before:
            partial(0.5, f"{what}; expected at most {TRAIN_RATIO:g} x {before:.4f} = {TRAIN_RATIO * before:.4f}")
        fail(f"{what}; expected it to fall to at most {TRAIN_RATIO * before:.4f}")


def test_test_accuracy(submission, data_root, check, contestant):
    said: list[str] = []
    W, b = submitted_params(submission.weights("softmax.pth"), said)
    for note in said:
        check.note(note)
    if not bool(torch.isfinite(W).all() and torch.isfinite(b).all()) and sgd_problem(contestant):
        fail("softmax.pth holds NaN or infinite weights: training diverged with your sgd, which sgd_update marks "
             "wrong; fix it (param -= lr * param.grad / batch_size), then train again and save the new weights")
    chosen = choose(MODEL, {"W": W.float(), "b": b.float()}, contestant, "softmax.pth")
    if chosen.own:
        check.note(chosen.note)
    x, y = read_fashion_mnist(data_root, train=False)  # (10000, 1, 28, 28) uint8, (10000,)
    probs = predict(chosen, MODEL.policy, f"fashion-mnist-test:{data_root}", x.float() / 255, 2500)  # (10000, 10)
    check.confusion(confusion_matrix(probs.argmax(dim=1), y, 10), FASHION_MNIST_CLASSES)
    TEST_ACCURACY.grade(accuracy(probs, y), "softmax.pth in " + ("your own net()" if chosen.own else
                        "softmax(X W + b)") + ", measured by the judge on the 10,000 test images")  # fmt: skip
