"""The reference functions and fixed inputs shared by softmax's public and hidden checks (judge side only).

The reference is torch's own softmax and cross-entropy in float64. Inputs are drawn from fixed seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from typing_extensions import TypedDict

from grader.data import read_fashion_mnist
from grader.graphs import GraphPolicy
from grader.judge import CheckFailed, ContestantError, WeightsError, fail, first_mismatch, state_dict_from
from grader.judge.measured import ModelSpec

NUM_INPUTS, NUM_OUTPUTS = 784, 10


# One entry per tensor the sgd check sends (two: a weight and a bias), so it can zip and index them together.
_PerParam = Field(min_length=2, max_length=2)


class SgdStep(TypedDict):
    """What the sgd_step probe returns: each parameter, its .grad (None if sgd removed it) and requires_grad."""

    params: Annotated[list[torch.Tensor], _PerParam]
    grads: Annotated[list[torch.Tensor | None], _PerParam]
    requires_grad: Annotated[list[bool], _PerParam]


class LossGradient(TypedDict):
    """What the loss_gradient probe returns: the summed loss and the gradients of W and b (None: no gradient)."""

    loss: float
    W: torch.Tensor | None
    b: torch.Tensor | None


class TrainEpoch(TypedDict):
    """What the train_epoch probe returns: W and b after one epoch."""

    W: torch.Tensor
    b: torch.Tensor


def images(data_root: Path, n: int, train: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n Fashion-MNIST images as float (n, 1, 28, 28) in [0, 1], as the student's loader gives them, and labels."""
    x, y = read_fashion_mnist(data_root, train)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx].float() / 255, y[idx]


def init_params(seed: int, std: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """W (784, 10) from N(0, std^2) and a small random b (10,), from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(NUM_INPUTS, NUM_OUTPUTS, generator=g) * std, torch.randn(NUM_OUTPUTS, generator=g) * std


class SoftmaxRegression(torch.nn.Module):
    """The handout's model, softmax(X W + b), with softmax.pth's W and b as its parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.zeros(NUM_INPUTS, NUM_OUTPUTS))
        self.b = torch.nn.Parameter(torch.zeros(NUM_OUTPUTS))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(X.reshape(-1, NUM_INPUTS) @ self.W + self.b, dim=1)  # (N, 784) -> (N, 10)


# What the student's net may compile to: the linear map, the softmax by hand or built in, and casts.
POLICY = GraphPolicy(ops=("MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Exp", "Log", "ReduceSum", "ReduceMax",
                          "Softmax", "Reshape", "Flatten", "Identity", "Constant", "Cast", "Max"),
                     max_params=20_000, inputs=((None, 1, 28, 28),), outputs=((None, NUM_OUTPUTS),))  # fmt: skip
MODEL = ModelSpec(
    name="softmax regression", reference_source=Path(__file__), build=SoftmaxRegression,
    example=(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)),),  # (4, 1, 28, 28)
    input_names=["X"], output_names=["probabilities"], policy=POLICY,
    outputs_probe="model_outputs", export_probe="export_model",
)  # fmt: skip


def ref_logits(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return X.reshape(-1, W.shape[0]).double() @ W.double() + b.double()  # (N, 10)


def ref_net(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.softmax(ref_logits(X, W, b), dim=1)  # (N, 10)


def ref_loss_sum(X: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The loss the student's training sums: cross-entropy of softmax(X W + b), summed over the batch."""
    return F.cross_entropy(ref_logits(X, W, b), y, reduction="sum")


LOGITS_SPLIT = ("net returns the logits X W + b and your cross_entropy takes logits (the log-sum-exp inside the "
                "loss, as d2l 3.7 does it): together they compute the handout's loss, but the handout's net returns "
                "probabilities, softmax(X W + b), and its cross_entropy takes them; move the softmax into net and "
                "take -log(y_hat[range(len(y)), y]) in cross_entropy")  # fmt: skip


def returns_logits(contestant: Any) -> tuple[bool, bool]:
    """(net returns the logits X W + b, cross_entropy takes logits as F.cross_entropy does), on fixed data; a
    call that fails answers False."""
    g = torch.Generator().manual_seed(11)
    X, W, b = torch.rand(8, 1, 28, 28, generator=g), torch.randn(784, 10, generator=g) * 0.1, torch.zeros(10)
    y = torch.randint(0, 10, (8,), generator=g)
    logits = ref_logits(X, W, b)  # (8, 10), float64
    try:
        got = contestant.call("net_output", X=X, W=W, b=b)
        if not isinstance(got, torch.Tensor) or got.shape != logits.shape or not torch.allclose(
                got.double(), logits, rtol=1e-4, atol=1e-5):  # fmt: skip
            return False, False
        loss = contestant.call("cross_entropy_values", y_hat=logits, y=y)
    except (CheckFailed, ContestantError):
        return True, False
    want = F.cross_entropy(logits, y, reduction="none")
    takes = isinstance(loss, torch.Tensor) and loss.shape == want.shape and torch.allclose(loss.double(), want)
    return True, bool(takes)


def sgd_problem(contestant: Any) -> str | None:
    """What is wrong with the student's sgd on fixed parameters and gradients, or None."""
    g = torch.Generator().manual_seed(3)
    params = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
    grads = [torch.randn(4, 3, generator=g), torch.randn(3, generator=g)]
    lr, batch = 0.5, 8
    r = contestant.call("sgd_step", params=params, grads=grads, lr=lr, batch_size=batch, returns=SgdStep)
    for i, (p, gr, got) in enumerate(zip(params, grads, r["params"], strict=True)):
        want = p - lr * gr / batch
        if torch.equal(got, p):
            return f"sgd left params[{i}] unchanged: update each tensor in place (param -= ...) under torch.no_grad()"
        if torch.allclose(got, p - lr * gr, rtol=1e-6, atol=1e-6):
            return (f"after sgd(params, lr={lr}, batch_size={batch}) params[{i}] is param - lr * grad: the loss is "
                    "summed over the batch (l.sum().backward()), so divide the step by batch_size, as d2l's sgd "
                    "does: param -= lr * param.grad / batch_size")  # fmt: skip
        if problem := first_mismatch(got, want, torch.arange(got.numel()), 1e-6, 1e-6):
            return (f"after sgd(params, lr={lr}, batch_size={batch}) params[{i}] is not param - lr * grad / "
                    f"batch_size: entry {problem.removeprefix('at x=')}")  # fmt: skip
        after = r["grads"][i]
        if after is not None and bool(after.double().abs().max() > 0):
            return (f"after sgd, params[{i}].grad still holds the old gradient; zero it (param.grad.zero_()) so the "
                    "next backward() does not add to it")  # fmt: skip
        if not r["requires_grad"][i]:
            return f"after sgd, params[{i}] no longer requires grad; update it in place under torch.no_grad()"
    return None


def wrong_piece(contestant: Any) -> tuple[str, str] | None:
    """(owning check, what is wrong) if the student's softmax or cross_entropy gives wrong values in float64:
    checks built on them defer to the owner instead of charging the same mistake again."""
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    y = torch.arange(6) % 10
    got = contestant.call("softmax_values", X=logits)
    if not isinstance(got, torch.Tensor) or got.shape != logits.shape or not torch.allclose(
            got.double(), torch.softmax(logits, dim=1), atol=1e-6):  # fmt: skip
        return "softmax_rows", "your softmax gives other values than the reference"
    probs = torch.softmax(logits, dim=1)
    got = contestant.call("cross_entropy_values", y_hat=probs, y=y)
    if not isinstance(got, torch.Tensor) or got.numel() != 6 or not torch.allclose(
            got.double().reshape(-1), F.cross_entropy(logits, y, reduction="none"), atol=1e-6):  # fmt: skip
        if returns_logits(contestant)[1]:
            return "net_output", "your cross_entropy takes logits, as your net returns them"
        return "cross_entropy_values", "your cross_entropy gives other values than the reference"
    return None


def submitted_params(weights: Any, notes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """W (784, 10) and b (10,) out of softmax.pth = {"W": ..., "b": ...}; how the file was read goes to `notes`.
    A list [W, b] (d2l's params, saved as they are) and a dict under other names are read by their shapes."""
    if isinstance(weights, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in weights):
        what = f"a {type(weights).__name__} of {len(weights)} tensors"
        if (state := _by_shape({f"[{i}]": t for i, t in enumerate(weights)}, what, notes)) is None:
            fail(f"softmax.pth holds {what}, of shapes {[tuple(t.shape) for t in weights]}; expected W (784, 10) "
                 'and b (10,): save torch.save({"W": W.detach(), "b": b.detach()}, "softmax.pth")')  # fmt: skip
    else:
        try:
            state = state_dict_from(weights, "softmax.pth", notes=notes)
        except WeightsError as exc:
            raise CheckFailed(f'{exc}; save torch.save({{"W": W.detach(), "b": b.detach()}}, "softmax.pth")') from None
        if state.keys() != {"W", "b"}:
            state = _by_shape({f"[{k!r}]": t for k, t in state.items()}, f"the keys {sorted(state)}", notes) or state
    for name, shape in (("W", (NUM_INPUTS, NUM_OUTPUTS)), ("b", (NUM_OUTPUTS,))):
        if name not in state:
            fail(f"softmax.pth has no {name!r} (found {sorted(state)}); expected W (784, 10) and b (10,)")
        if tuple(state[name].shape) != shape:
            fail(f"softmax.pth[{name!r}] has shape {tuple(state[name].shape)}; expected {shape}")
    return state["W"].float(), state["b"].float()


def _by_shape(held: dict[str, torch.Tensor], what: str, notes: list[str]) -> dict[str, torch.Tensor] | None:
    """W and b out of two tensors found at `held`'s places (`[0]`, `['weight']`): the one of shape (784, 10), or
    (10, 784) as nn.Linear stores it (then transposed), and the one of shape (10,); with a note. None where the
    shapes do not decide."""
    w = [k for k, v in held.items() if tuple(v.shape) in ((NUM_INPUTS, NUM_OUTPUTS), (NUM_OUTPUTS, NUM_INPUTS))]
    b = [k for k, v in held.items() if tuple(v.shape) == (NUM_OUTPUTS,)]
    if len(held) != 2 or len(w) != 1 or len(b) != 1:
        return None
    W = held[w[0]]
    flipped = tuple(W.shape) == (NUM_OUTPUTS, NUM_INPUTS)
    notes.append(f"softmax.pth holds {what}, not the handout's {{'W': ..., 'b': ...}}: read W from softmax.pth{w[0]}"
                 f"{' (transposed: (10, 784) is how nn.Linear stores it)' if flipped else ''} and b from "
                 f"softmax.pth{b[0]}, by their shapes (save {{'W': W.detach(), 'b': b.detach()}} next time)")
    return {"W": W.t() if flipped else W, "b": held[b[0]]}
