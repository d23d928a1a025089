"""What d2l's LeNet looks like from outside, and the fixed inputs shared by lenet's checks (judge side only)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from grader.data import read_fashion_mnist

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


def images(data_root: Path, n: int, train: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n Fashion-MNIST images as float (n, 1, 28, 28) in [0, 1], as the student's loader gives them, and labels."""
    x, y = read_fashion_mnist(data_root, train)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx].float() / 255, y[idx]


def small_model_loss(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy of the probes' fixed training model (flatten, linear 784->10) with `state`."""
    logits = x.reshape(len(x), -1).double() @ state["1.weight"].double().T + state["1.bias"].double()  # (N, 10)
    return float(F.cross_entropy(logits, y))


def key_mismatch(state: dict[str, list[int]], reference: dict[str, list[int]]) -> str | None:
    """None if keys and shapes agree; else the missing, unexpected and mis-shaped keys."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shaped = [f"{k} {tuple(state[k])} (expected {tuple(reference[k])})"
              for k in reference if k in state and list(state[k]) != list(reference[k])]  # fmt: skip
    parts = [f"{label}: {', '.join(items)}" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)) if items]  # fmt: skip
    return "; ".join(parts) or None
