"""`grader new ID`: scaffold a small, complete assignment that grades to full marks at once.

It is d2l's linear regression from scratch (3.2): three functions, two public checks and a hidden one, no
datasets and no weights, so `grader selftest ID` runs in seconds. The instructor edits it into their own;
docs/authoring.md explains every file.
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.release import release
from grader.spec import Course, SpecError

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")  # also the student's module name, so no hyphens

TOML = '''\
# {id}: linear regression from scratch (d2l 3.2). Scaffolded by `grader new`; edit it into your assignment.
id = "{id}"
title = "{id}: linear regression from scratch"
total = 100          # `grader validate` checks that the checks add up to this
datasets = []        # built-in or course datasets this assignment reads (see docs/authoring.md)

[limits]
threads = 1          # one thread: CPU float results repeat bit for bit

[[files]]
name = "{id}.py"
max_kb = 64

[[checks]]
id = "linreg_values"
name = "linreg(X, w, b) computes Xw + b"
points = 30
visibility = "visible"
timeout = 30
files = ["{id}.py"]
functions = ["linreg"]

[[checks]]
id = "squared_loss_values"
name = "squared_loss(y_hat, y) is (y_hat - y)^2 / 2, elementwise"
points = 30
visibility = "visible"
timeout = 30
files = ["{id}.py"]
functions = ["squared_loss"]

[[checks]]
id = "sgd_update"
name = "sgd(params, lr, batch_size) takes one minibatch step and zeroes the gradients"
points = 40
visibility = "hidden"
timeout = 30
files = ["{id}.py"]
functions = ["sgd"]
'''

SOLUTION = '''\
"""{id}: linear regression from scratch (d2l 3.2).

Fill in the three functions, then run `python {id}.py` to train on synthetic data. Submit {id}.py.
"""

import torch


def linreg(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The linear regression model: X (n, d) @ w (d, 1) + b (1,) -> (n, 1)."""
    ### BEGIN SOLUTION: return Xw + b
    return torch.matmul(X, w) + b
    ### END SOLUTION


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Half the squared error, elementwise, with y reshaped to y_hat's shape."""
    ### BEGIN SOLUTION: return (y_hat - y)^2 / 2, elementwise
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2
    ### END SOLUTION


def sgd(params: list[torch.Tensor], lr: float, batch_size: int) -> None:
    """Minibatch SGD: p -= lr * p.grad / batch_size for each parameter, then zero its gradient."""
    with torch.no_grad():
        for param in params:
            ### BEGIN SOLUTION: update param in place, then zero its gradient
            param -= lr * param.grad / batch_size
            param.grad.zero_()
            ### END SOLUTION


if __name__ == "__main__":
    torch.manual_seed(0)
    true_w, true_b = torch.tensor([[2.0], [-3.4]]), 4.2
    X = torch.normal(0, 1, (1000, 2))  # (1000, 2)
    y = X @ true_w + true_b + torch.normal(0, 0.01, (1000, 1))  # (1000, 1)
    w = torch.normal(0, 0.01, size=(2, 1), requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    for epoch in range(3):
        for i in range(0, 1000, 10):
            loss = squared_loss(linreg(X[i : i + 10], w, b), y[i : i + 10])
            loss.sum().backward()
            sgd([w, b], 0.03, 10)
        print(f"epoch {{epoch + 1}}, loss {{float(squared_loss(linreg(X, w, b), y).mean()):f}}")
'''

PROBES = '''\
"""{id} probes: run inside the sandbox, next to the student's {id}.py. They take and return plain data
(tensors, numbers, lists, dicts); the judge never imports student code."""

import torch

from grader.contestant import probe, student


@probe
def linreg_output(X, w, b):
    return student("{id}").linreg(X, w, b)


@probe
def squared_loss_output(y_hat, y):
    return student("{id}").squared_loss(y_hat, y)


@probe
def sgd_step(params, grads, lr, batch_size):
    """One sgd() call on copies of the judge's parameters with the given gradients: the parameters after it,
    and the gradients it left."""
    ps = [p.clone().requires_grad_(True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = g.clone()
    student("{id}").sgd(ps, lr, batch_size)
    return {{"params": [p.detach() for p in ps], "grads": [p.grad for p in ps]}}
'''

PUBLIC = '''\
"""{id} public checks: students run these with `grader check {id} DIR`."""

import torch

from grader.judge import expect_shape, fail, first_mismatch


def test_linreg_values(contestant):
    g = torch.Generator().manual_seed(0)
    X, w, b = torch.randn(8, 2, generator=g), torch.randn(2, 1, generator=g), torch.randn(1, generator=g)
    got = expect_shape(contestant.call("linreg_output", X=X, w=w, b=b), (8, 1), "linreg(X, w, b) for X (8, 2)")
    if problem := first_mismatch(got, X @ w + b, X, atol=1e-5, rtol=1e-5):
        fail(f"linreg(X, w, b) {{problem}}")


def test_squared_loss_values(contestant):
    y_hat, y = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([1.5, 2.0, 1.0])  # (3, 1) and (3,)
    got = expect_shape(contestant.call("squared_loss_output", y_hat=y_hat, y=y), (3, 1), "squared_loss for (3, 1)")
    if problem := first_mismatch(got, (y_hat - y.reshape(3, 1)) ** 2 / 2, y_hat, atol=1e-6, rtol=1e-6):
        fail(f"squared_loss(y_hat, y) {{problem}}")
'''

HIDDEN = '''\
"""{id} hidden checks: graded by the instructor, never shipped to students."""

import torch

from grader.judge import expect_shapes, fail, first_mismatch


def test_sgd_update(contestant):
    params = [torch.tensor([[1.0], [-2.0]]), torch.tensor([0.5])]
    grads = [torch.tensor([[4.0], [2.0]]), torch.tensor([-6.0])]
    got = contestant.call("sgd_step", params=params, grads=grads, lr=0.5, batch_size=2)
    what = "sgd(params, lr=0.5, batch_size=2)"
    after = expect_shapes(got["params"], [(2, 1), (1,)], ["w", "b"], what)
    for name, p, g, new in zip(("w", "b"), params, grads, after):
        if problem := first_mismatch(new, p - 0.5 * g / 2, p, atol=1e-6, rtol=1e-6):
            fail(f"after {{what}}, {{name}} {{problem}}")
    if any(g is None or bool(g.abs().sum() > 0) for g in got["grads"]):
        fail("sgd() left the gradients as they were: zero them (param.grad.zero_()) after each update")
'''

EXPECTED = '''\
# What `grader selftest {id}` expects each example under examples/{id}/ to score. Every check not listed
# under an example's `checks` earns its full points; add `score = N` where problems take points off.

[solution]
note = "the reference solution"

[stub]
note = "the handout as released: every TODO left"
checks = {{ linreg_values = 0, squared_loss_values = 0, sgd_update = 0 }}
'''


def scaffold(course: Course, assignment_id: str) -> list[Path]:
    """Write the new assignment's sources, then release its stub and examples. Returns the files written."""
    if not ID_PATTERN.match(assignment_id):
        raise SpecError(f"{assignment_id!r}: an assignment id is lowercase letters, digits and underscores, "
                        "starting with a letter (it is also the student's module name)")  # fmt: skip
    targets = {
        course.assignment_dir(assignment_id) / "assignment.toml": TOML,
        course.assignment_dir(assignment_id) / "probes.py": PROBES,
        course.assignment_dir(assignment_id) / "checks" / f"test_{assignment_id}_public.py": PUBLIC,
        course.solution_dir(assignment_id) / f"{assignment_id}.py": SOLUTION,
        course.solution_dir(assignment_id) / "hidden_checks" / f"test_{assignment_id}_hidden.py": HIDDEN,
        course.examples_dir(assignment_id) / "expected.toml": EXPECTED,
    }
    if existing := [p for p in targets if p.exists()]:
        raise SpecError(f"{existing[0]} exists already: `grader new` never overwrites; pick another id")
    for path, template in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(id=assignment_id), encoding="utf-8")
    return list(targets) + release(course, assignment_id)
