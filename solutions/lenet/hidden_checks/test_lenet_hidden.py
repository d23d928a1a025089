"""lenet hidden checks: the judge runs the reference LeNet itself (sigmoid, average pooling).

Accuracy: lenet.pth in the reference LeNet on the 10,000 test images, in a fixed order (no randomness). Full
credit at >= 0.75, none at <= 0.60, linear between; tolerance 0.001 (10 images) for float rounding across
machines. The reference (10 epochs, lr 0.9, seed 0) reaches 0.807; d2l reports 0.779.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import torch
from lenet_judge import STATE_SHAPES, images, key_mismatch, shapes_differ

from grader.data import read_fashion_mnist
from grader.judge import (
    FASHION_MNIST_CLASSES,
    CheckFailed,
    WeightsError,
    accuracy_threshold,
    confusion_matrix,
    defer,
    expect_shape,
    fail,
    first_mismatch,
    load_weights,
    state_dict_from,
)
from grader.judge.thresholds import accuracy

REFERENCE = Path(__file__).resolve().parents[1] / "lenet.py"
TEST_ACCURACY = accuracy_threshold(full=0.75, zero=0.60, seed=None, tolerance=0.001)


@functools.lru_cache(maxsize=1)
def reference_lenet() -> torch.nn.Module:
    """The reference build_lenet() from solutions/lenet/lenet.py (instructor code; never the student's)."""
    spec = importlib.util.spec_from_file_location("lenet_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_lenet()


def fixed_state(seed: int) -> dict[str, torch.Tensor]:
    """Weights drawn from a fixed seed, large enough that sigmoid and ReLU, mean and max pooling disagree."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.5 for k, shape in STATE_SHAPES.items()}


def test_forward_matches_reference(contestant, data_root):
    if problem := shapes_differ(contestant):
        defer("layer_shapes", f"d2l's weights do not fit your layers, because {problem}")
    x, _ = images(data_root, 8, train=False, seed=3)
    state = fixed_state(4)
    got = contestant.call("forward_logits", state=state, x=x)
    got = expect_shape(got, (8, 10), "build_lenet()(x) for x (8, 1, 28, 28)")
    net = reference_lenet()
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        want = net(x)
    if problem := first_mismatch(got, want, torch.arange(got.numel()), 1e-5, 1e-4):
        fail(f"with fixed weights, your LeNet's logits differ from d2l's (sigmoid activations, average pooling): "
             f"entry {problem.removeprefix('at x=')}")  # fmt: skip


@functools.lru_cache(maxsize=64)
def _measure(sha256: str, path: str, data_root: Path) -> tuple[float, list[list[int]]] | str:
    """Test accuracy and confusion matrix of a weights file, or why it cannot be measured; cached by content."""
    try:
        state = state_dict_from(load_weights(Path(path)), "lenet.pth")
    except WeightsError as exc:
        return f"{exc}; save torch.save(net.state_dict(), 'lenet.pth')"
    if problem := key_mismatch({k: list(v.shape) for k, v in state.items()}, STATE_SHAPES):
        return f"lenet.pth does not load into d2l's LeNet: {problem}"
    net = reference_lenet()
    net.load_state_dict(state)
    net.eval()
    x, y = read_fashion_mnist(data_root, train=False)  # (10000, 1, 28, 28) uint8, (10000,)
    with torch.no_grad():
        logits = torch.cat([net(x[i : i + 2500].float() / 255) for i in range(0, len(x), 2500)])  # (10000, 10)
    return accuracy(logits, y), confusion_matrix(logits.argmax(dim=1), y, 10)


def test_test_accuracy(submission, data_root, check):
    path = submission.path("lenet.pth")
    outcome = _measure(hashlib.sha256(path.read_bytes()).hexdigest(), str(path), data_root)
    if isinstance(outcome, str):
        raise CheckFailed(outcome)
    acc, confusion = outcome
    check.confusion(confusion, FASHION_MNIST_CLASSES)
    TEST_ACCURACY.grade(acc, "lenet.pth in the reference LeNet on the 10,000 test images")
