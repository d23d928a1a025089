"""softmax graded end to end on the real Fashion-MNIST: the bundled examples and their messages."""

from __future__ import annotations

import pytest
import torch

from grader.grading import grade
from grader.selftest import run_example
from tests.conftest import example_names

pytestmark = pytest.mark.slow



def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", example_names("softmax"))
def test_bundled_example_scores(course, data_root, name):
    """Each example scores what examples/softmax/expected.toml says: the same comparison as `grader selftest`."""
    outcome = run_example(course, "softmax", name, data_root)
    assert outcome.diffs == [], "\n".join(outcome.diffs)


def test_messages(course, data_root):
    unstable = by_id(grade(course, "softmax", course.examples_dir("softmax") / "unstable-softmax",
                           data_root=data_root, only=["softmax_stable", "test_accuracy"]))  # fmt: skip
    assert "exp(1000) overflows" in unstable["softmax_stable"].message
    assert unstable["test_accuracy"].message.endswith(
        "accuracy 0.8284 (full credit at >= 0.8, none at <= 0.7, linear between; within 0.001 of full credit still "
        "earns it, since machines measure slightly differently)")
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


SOFTMAX_BODY = ("    X_exp = torch.exp(X - X.max(dim=1, keepdim=True).values)  # (N, q), every entry in (0, 1]\n"
                "    return X_exp / X_exp.sum(dim=1, keepdim=True)  # (N, q)\n")  # fmt: skip


def _softmax_checks(course, data_root, example, body: str) -> dict:
    """softmax_rows and softmax_stable for the solution with softmax()'s body replaced by `body`."""
    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    assert SOFTMAX_BODY in src
    (folder / "softmax.py").write_text(src.replace(SOFTMAX_BODY, body))
    return by_id(grade(course, "softmax", folder, data_root=data_root, only=["softmax_rows", "softmax_stable"]))


def test_a_softmax_over_the_wrong_dimension_is_charged_once(course, data_root, example):
    checks = _softmax_checks(course, data_root, example, (
        "    X_exp = torch.exp(X - X.max(dim=1, keepdim=True).values)\n"
        "    return X_exp / X_exp.sum(dim=0, keepdim=True)  # 按列求和\n"))  # fmt: skip
    assert checks["softmax_rows"].status == "failed" and checks["softmax_rows"].message.endswith(
        ": it normalizes each column (dim=0); sum each row, X_exp.sum(dim=1, keepdim=True)")
    assert checks["softmax_stable"].status == "passed" and "softmax_rows" in checks["softmax_stable"].notes[0]


def test_softmax_through_logsumexp_is_as_stable_as_subtracting_the_maximum(course, data_root, example):
    """exp(X - logsumexp(X)) never overflows; in float32 it is off by 1.5e-5 at logits of 1000, which is
    float32, not instability."""
    checks = _softmax_checks(course, data_root, example, (
        "    # log-sum-exp trick (cs231n): softmax = exp(x - logsumexp(x))\n"
        "    return torch.exp(X - torch.logsumexp(X, dim=1, keepdim=True))  # (N, q)\n"))  # fmt: skip
    assert checks["softmax_rows"].status == checks["softmax_stable"].status == "passed"


def test_an_in_place_shift_of_the_logits_is_correct(course, data_root, example):
    """`X -= X.max(...)` changes the caller's tensor, but on net(X)'s output, as in training, it keeps the graph."""
    checks = _softmax_checks(course, data_root, example, (
        "    X -= X.max(dim=1, keepdim=True).values  # 原地减去最大值, 省内存\n"
        "    X_exp = torch.exp(X)\n"
        "    return X_exp / X_exp.sum(dim=1, keepdim=True)\n"))  # fmt: skip
    assert checks["softmax_rows"].status == checks["softmax_stable"].status == "passed", checks["softmax_rows"].message


def test_one_maximum_for_the_whole_batch_is_named_not_called_an_overflow(course, data_root, example):
    """X - X.max(): nothing overflows, but rows far below the batch's largest logit underflow to 0/0."""
    checks = _softmax_checks(course, data_root, example, (
        "    X_exp = torch.exp(X - X.max())  # 减去最大值防止溢出\n"
        "    return X_exp / X_exp.sum(dim=1, keepdim=True)\n"))  # fmt: skip
    assert checks["softmax_rows"].status == "passed"
    assert checks["softmax_stable"].message.endswith(
        ": the rows whose largest logit is below X's largest (rows 3 and 4) came out as 0/0, every exp in them "
        "underflowing, as when one maximum is subtracted for the whole of X; subtract each row's own, "
        "X.max(dim=1, keepdim=True)")


def test_an_sgd_without_the_batch_size_is_named_and_its_diverged_weights_point_at_it(course, data_root, example):
    """`param -= lr * param.grad`, as for a mean loss: sgd_update names the missing / batch_size, and softmax.pth,
    which that sgd trained to NaN at lr 0.1 on summed losses, points at sgd rather than at the learning rate."""
    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    old = "            param -= lr * param.grad / batch_size\n"
    assert old in src
    (folder / "softmax.py").write_text(src.replace(old, "            param -= lr * param.grad  # 梯度下降\n"))
    torch.save({"W": torch.full((784, 10), float("nan")), "b": torch.zeros(10)}, folder / "softmax.pth")
    checks = by_id(grade(course, "softmax", folder, data_root=data_root, only=["sgd_update", "test_accuracy"]))
    assert checks["sgd_update"].message.startswith("after sgd(params, lr=0.5, batch_size=8) params[0] is param - lr "
                                                   "* grad: the loss is summed over the batch")  # fmt: skip
    assert checks["test_accuracy"].message.startswith("softmax.pth holds NaN or infinite weights: training diverged "
                                                      "with your sgd, which sgd_update marks wrong")  # fmt: skip


@pytest.mark.parametrize("eps, passes", [(1e-9, True), (1e-3, False)])
def test_an_epsilon_inside_the_log_is_accepted_with_a_note(course, data_root, example, eps, passes):
    """-log(p + 1e-9), a common guard against log(0), moves a loss by eps / p: accepted with a note. 1e-3 is not
    a guard any more, and is charged."""
    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    old = "    return -torch.log(y_hat.gather(1, y.reshape(-1, 1)).squeeze(1))  # (N,)\n"
    assert old in src
    (folder / "softmax.py").write_text(src.replace(old, (
        f"    # 加一个很小的数, 防止 log(0)\n    return -torch.log(y_hat[range(len(y_hat)), y] + {eps})\n")))
    check = by_id(grade(course, "softmax", folder, data_root=data_root,
                        only=["cross_entropy_values"]))["cross_entropy_values"]  # fmt: skip
    assert (check.status == "passed") == passes, check.message
    if passes:
        assert check.notes[0].startswith("cross_entropy takes -log(y_hat + 1e-09), so its values differ")


def test_a_cast_to_float32_is_told_why_float64_matters(course, data_root, example):
    """net() casts its input with .float(): the hidden finite-difference check runs in float64, and says so."""
    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    old = "    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)  # (N, 10)\n"
    assert old in src
    (folder / "softmax.py").write_text(src.replace(old, (
        "    X = X.reshape((-1, W.shape[0])).float()  # 转成 float\n    return softmax(torch.matmul(X, W) + b)\n")))
    check = by_id(grade(course, "softmax", folder, data_root=data_root,
                        only=["gradient_finite_differences"]))["gradient_finite_differences"]  # fmt: skip
    assert check.score == 0 and check.message.startswith(
        "cross_entropy(net(X), y) on float64 images and parameters raised RuntimeError"), check.message
    assert "finite differences need float64, and your code casts to another dtype" in check.message


def test_a_wrong_value_points_at_the_function_it_came_from(course, data_root, example):
    """accuracy() that returns the fraction correct raises nothing, so there is no traceback line to show: the
    failure points at accuracy's definition, in the report and in the GitHub annotation."""
    from grader.ci.annotations import for_check
    from grader.report.markdown import to_markdown
    from grader.results import Location

    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    src = src.replace("    return float(cmp.type(y.dtype).sum())\n",
                      "    return float(cmp.type(torch.float32).mean())  # accuracy as a fraction\n")  # fmt: skip
    (folder / "softmax.py").write_text(src)
    line = next(n for n, text in enumerate(src.splitlines(), 1) if text.startswith("def accuracy("))
    result = grade(course, "softmax", folder, data_root=data_root, only=["accuracy_count"])
    (check,) = result.checks
    assert check.status == "failed" and "returned 0.578125 for 64 examples" in check.message
    assert check.locations == [Location(file="softmax.py", line=line, function="accuracy", defined=True)]
    assert f"tests `accuracy`, defined at `softmax.py line {line}`" in to_markdown(result)
    annotation = for_check(check, folder, folder)
    assert (annotation.path, annotation.line) == ("softmax.py", line)


def test_logits_from_net_and_a_loss_that_takes_them_are_one_deviation(course, data_root, example):
    """d2l 3.7's split: net returns X W + b and cross_entropy does the log-sum-exp itself. Together they compute the
    handout's loss, so only net_output charges the changed interface; cross_entropy_values, loss_gradient and
    gradient_finite_differences say so and take nothing (they charged 30 before, one as "softmax applied twice")."""
    folder = example("softmax", "solution")
    src = (folder / "softmax.py").read_text()
    for old, new in (
        ("    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)  # (N, 10)\n",
         "    return torch.matmul(X.reshape((-1, W.shape[0])), W) + b  # logits, softmax 放到损失里 (d2l 3.7)\n"),
        ("    return -torch.log(y_hat.gather(1, y.reshape(-1, 1)).squeeze(1))  # (N,)\n",
         "    m = y_hat.max(dim=1, keepdim=True).values  # y_hat 是 logits\n"
         "    lse = m.squeeze(1) + torch.log(torch.exp(y_hat - m).sum(dim=1))\n"
         "    return lse - y_hat.gather(1, y.reshape(-1, 1)).squeeze(1)\n"),
    ):  # fmt: skip
        assert old in src
        src = src.replace(old, new)
    (folder / "softmax.py").write_text(src)
    checks = by_id(grade(course, "softmax", folder, data_root=data_root, only=[
        "net_output", "cross_entropy_values", "loss_gradient", "gradient_finite_differences", "training_epoch"]))
    assert checks["net_output"].status == "failed"
    assert checks["net_output"].message.startswith("net returns the logits X W + b and your cross_entropy takes logits")
    for cid in ("cross_entropy_values", "loss_gradient", "gradient_finite_differences"):
        assert checks[cid].status == "passed" and checks[cid].notes[0].endswith("charged once, by net_output"), cid
    assert checks["training_epoch"].status == "passed"


@pytest.mark.parametrize("save, says", [
    (lambda W, b: [W, b], "a list of 2 tensors, not the handout's {'W': ..., 'b': ...}: read W from softmax.pth[0] "
                          "and b from softmax.pth[1], by their shapes"),
    (lambda W, b: (b, W), "a tuple of 2 tensors, not the handout's {'W': ..., 'b': ...}: read W from softmax.pth[1] "
                          "and b from softmax.pth[0], by their shapes"),
    (lambda W, b: {"weight": W.t().contiguous(), "bias": b},
     "the keys ['bias', 'weight'], not the handout's {'W': ..., 'b': ...}: read W from softmax.pth['weight'] "
     "(transposed: (10, 784) is how nn.Linear stores it) and b from softmax.pth['bias'], by their shapes"),
])  # fmt: skip
def test_weights_saved_as_a_list_or_under_other_names_are_read_by_shape(course, data_root, example, save, says):
    """d2l keeps [W, b] in a list and students save it as it is, or name them as nn.Linear does: the two shapes
    decide which is which, so the trained weights are graded in full, with a note that says how to save them."""
    folder = example("softmax", "solution")
    saved = torch.load(folder / "softmax.pth")
    torch.save(save(saved["W"].requires_grad_(), saved["b"]), folder / "softmax.pth")  # not detached, as they do
    check = by_id(grade(course, "softmax", folder, data_root=data_root, only=["test_accuracy"]))["test_accuracy"]
    assert check.status == "passed" and check.notes[0] == f"softmax.pth holds {says} (save {{'W': W.detach(), " \
                                                           "'b': b.detach()} next time)", check.notes


def test_weights_whose_shapes_do_not_decide_say_what_they_hold(course, data_root, example):
    folder = example("softmax", "solution")
    saved = torch.load(folder / "softmax.pth")
    torch.save([saved["W"], saved["b"], saved["b"]], folder / "softmax.pth")
    check = by_id(grade(course, "softmax", folder, data_root=data_root, only=["test_accuracy"]))["test_accuracy"]
    assert check.status == "failed" and check.message == (
        "softmax.pth holds a list of 3 tensors, of shapes [(784, 10), (10,), (10,)]; expected W (784, 10) and b (10,): "
        'save torch.save({"W": W.detach(), "b": b.detach()}, "softmax.pth")')
