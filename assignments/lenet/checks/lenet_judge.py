"""What d2l's LeNet looks like from outside, and the fixed inputs shared by lenet's checks (judge side only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from typing_extensions import TypedDict

from grader.data import read_fashion_mnist
from grader.judge import collapse_repeats, tensor
from grader.judge.tensors import shape_trace_mismatch

NUM_PARAMS = 61_706
# The output of every layer that changes the shape, for a (1, 1, 28, 28) input (activations keep the shape).
LAYER_SHAPES = [(1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 5, 5), (1, 400), (1, 120), (1, 84), (1, 10)]
LAYER_NAMES = ["conv1 (5x5, padding 2)", "pool1", "conv2 (5x5)", "pool2", "flatten", "linear1", "linear2", "linear3"]
# d2l's nn.Sequential: indices 0, 3 are the convolutions; 7, 9, 11 the linear layers.
STATE_SHAPES = {
    "0.weight": [6, 1, 5, 5], "0.bias": [6], "3.weight": [16, 6, 5, 5], "3.bias": [16],
    "7.weight": [120, 400], "7.bias": [120], "9.weight": [84, 120], "9.bias": [84],
    "11.weight": [10, 84], "11.bias": [10],
}  # fmt: skip


class LayerShapes(TypedDict):
    """What the layer_shapes probe returns: every torch operation's output shape and name, and the output's."""

    shapes: list[list[int]]
    names: list[str]
    output: list[int]


class Describe(TypedDict):
    """What the describe probe returns: build_lenet()'s parameter count and state_dict shapes."""

    num_params: int
    state: dict[str, list[int]]


class EvaluateKnown(TypedDict):
    """What the evaluate_known probe returns: evaluate_accuracy's fraction, and the true one."""

    student: float
    expected: float


# The state_dict of the probes' fixed training model: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).
# The probes' fixed training model is flatten + Linear(784, 10): its state has exactly these shapes.
SmallState = TypedDict("SmallState", {"1.weight": tensor(shape=(10, 784)), "1.bias": tensor(shape=(10,))})


class TrainSmall(TypedDict):
    """What the train_small probe returns: the fixed small model's weights before and after one epoch."""

    before: SmallState
    after: SmallState


def images(data_root: Path, n: int, train: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n Fashion-MNIST images as float (n, 1, 28, 28) in [0, 1], as the student's loader gives them, and labels."""
    x, y = read_fashion_mnist(data_root, train)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx].float() / 255, y[idx]


def sgd_epoch(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int,
              keep_gradients: bool = False, softmax_first: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
    """The probes' fixed training model after one epoch of plain minibatch SGD in order, in float64, from `state`;
    `keep_gradients`: as a train_epoch that never zeroes them does (each step adds every earlier batch's);
    `softmax_first`: as one that hands CrossEntropyLoss probabilities instead of the logits."""
    W = state["1.weight"].double().clone().requires_grad_(True)  # (10, 784)
    b = state["1.bias"].double().clone().requires_grad_(True)  # (10,)
    kept = [torch.zeros_like(W), torch.zeros_like(b)]
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].reshape(-1, 784).double(), y[i : i + batch_size]  # (B, 784), (B,)
        logits = xb @ W.T + b  # (B, 10)
        grads = torch.autograd.grad(F.cross_entropy(logits.softmax(dim=1) if softmax_first else logits, yb), (W, b))
        kept = [k + g for k, g in zip(kept, grads, strict=True)] if keep_gradients else list(grads)
        with torch.no_grad():
            W -= lr * kept[0]
            b -= lr * kept[1]
    return {"1.weight": W.detach(), "1.bias": b.detach()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal up to float32 rounding over one epoch."""
    return all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-4, atol=1e-5) for k in b)


def small_model_loss(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy of the probes' fixed training model (flatten, linear 784->10) with `state`."""
    logits = x.reshape(len(x), -1).double() @ state["1.weight"].double().T + state["1.bias"].double()  # (N, 10)
    return float(F.cross_entropy(logits, y))


TRAIN_IMAGES, TRAIN_LR, TRAIN_BATCH = 2048, 0.1, 256  # training_epoch's epoch: 8 steps of the fixed model


def one_epoch(contestant: Any, data_root: Path, lr: float = TRAIN_LR) -> tuple[torch.Tensor, torch.Tensor, TrainSmall]:
    """The student's train_epoch, one epoch of the probes' fixed model on TRAIN_IMAGES training images."""
    x, y = images(data_root, TRAIN_IMAGES, train=True, seed=2)  # (2048, 1, 28, 28), (2048,)
    r = contestant.call("train_small", x=x, y=y, lr=lr, batch_size=TRAIN_BATCH, seed=0, returns=TrainSmall)
    return x, y, r


def training_slip(x: torch.Tensor, y: torch.Tensor, r: TrainSmall) -> str | None:
    """The known slip whose every step one epoch of train_epoch (`one_epoch`) reproduces, and its fix; or None."""
    if same_weights(r["after"], sgd_epoch(r["before"], x, y, TRAIN_LR, TRAIN_BATCH, keep_gradients=True)):
        return ("train_epoch never resets the gradients: every step also applies all earlier batches' gradients, as "
                "if with momentum; call optimizer.zero_grad() before loss.backward() in every step")  # fmt: skip
    if same_weights(r["after"], sgd_epoch(r["before"], x, y, TRAIN_LR, TRAIN_BATCH, softmax_first=True)):
        return ("train_epoch hands the loss probabilities: a softmax before CrossEntropyLoss, which applies "
                "log-softmax itself, flattens the gradients; pass the net's raw outputs (logits) to the loss")
    return None


def ignored_lr(contestant: Any, data_root: Path, r: TrainSmall) -> str | None:
    """The slip of a train_epoch that trains at a learning rate of its own (the module's LR) whatever `lr` it is
    given, seen as one epoch at a tenth of `r`'s lr leaving exactly `r`'s weights; or None."""
    _, _, other = one_epoch(contestant, data_root, lr=TRAIN_LR / 10)
    if same_weights(r["after"], r["before"]) or not same_weights(other["after"], r["after"]):
        return None
    return (f"train_epoch ignores its lr argument: one epoch at lr {TRAIN_LR:g} and one at lr {TRAIN_LR / 10:g} left "
            "exactly the same weights, so it trains at a learning rate of its own (the module's LR?); create the "
            "optimizer with lr=lr")  # fmt: skip


SHAPE_INPUT = torch.zeros(1, 1, 28, 28)  # what layer_shapes runs build_lenet() on


def shape_trace(contestant: Any) -> list[list[int]]:
    """The shapes build_lenet()'s operations produce on SHAPE_INPUT, each change once; a layer that keeps the
    input's shape (an activation, old d2l's Reshape in front) changes nothing, so it is not in the trace."""
    r = contestant.call("layer_shapes", x=SHAPE_INPUT, returns=LayerShapes)
    return collapse_repeats([list(SHAPE_INPUT.shape), *r["shapes"]])[1:]


ACTIVATIONS = ("relu", "tanh", "gelu", "leaky_relu", "elu", "silu", "hardtanh", "softplus", "mish", "selu")


def layer_swaps(contestant: Any) -> list[str]:
    """Where build_lenet()'s forward uses another activation or pooling than d2l's (from the torch operations it
    runs, module or functional alike): e.g. ["relu where d2l has sigmoid"]."""
    names = set(contestant.call("layer_shapes", x=SHAPE_INPUT, returns=LayerShapes)["names"])
    swaps = []
    if "sigmoid" not in names and (acts := [a for a in ACTIVATIONS if a in names]):
        swaps.append(f"{acts[0]} where d2l has sigmoid")
    if "avg_pool2d" not in names and "max_pool2d" in names:
        swaps.append("max_pool2d where d2l has avg_pool2d")
    return swaps


def shapes_differ(contestant: Any) -> str | None:
    """What layer_shapes charges, if the architecture's shapes are wrong: checks built on them defer to it."""
    return shape_trace_mismatch(shape_trace(contestant), LAYER_SHAPES, LAYER_NAMES)


def key_mismatch(state: dict[str, list[int]], reference: dict[str, list[int]]) -> str | None:
    """None if keys and shapes agree; else the missing, unexpected and mis-shaped keys."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shaped = [f"{k} {tuple(state[k])} (expected {tuple(reference[k])})"
              for k in reference if k in state and list(state[k]) != list(reference[k])]  # fmt: skip
    parts = [f"{label}: {', '.join(items)}" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)) if items]  # fmt: skip
    return "; ".join(parts) or None
