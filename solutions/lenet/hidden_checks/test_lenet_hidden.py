"""lenet hidden checks: the judge runs the model the student trained itself (grader.judge.measured).

Accuracy: lenet.pth in the student's own LeNet (the reference's graph when it computes the same, else theirs,
exported in the sandbox and run by the judge) on the 10,000 test images, in a fixed order (no randomness). Full
credit at >= 0.75, none at <= 0.60, linear between; tolerance 0.001 (10 images) for float rounding across
machines. The reference (10 epochs, lr 0.9, seed 0) reaches 0.807; d2l reports 0.779.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch
from lenet_judge import (
    STATE_SHAPES,
    Describe,
    ignored_lr,
    images,
    layer_swaps,
    one_epoch,
    same_weights,
    shapes_differ,
    training_slip,
)

from grader.data import read_fashion_mnist
from grader.graphs import GraphPolicy
from grader.graphs.policy import CNN_OPS
from grader.judge import (
    FASHION_MNIST_CLASSES,
    CheckFailed,
    ContestantError,
    WeightsError,
    accuracy_threshold,
    confusion_matrix,
    defer,
    expect_shape,
    fail,
    first_mismatch,
    renamed_keys,
    state_dict_from,
)
from grader.judge.measured import Chosen, ModelSpec, choose, predict
from grader.judge.thresholds import accuracy
from grader.modules import load_module

REFERENCE = Path(__file__).resolve().parents[1] / "lenet.py"
TEST_ACCURACY = accuracy_threshold(full=0.75, zero=0.60, seed=None, tolerance=0.001)


@functools.lru_cache(maxsize=1)
def _reference_module():
    """solutions/lenet/lenet.py (instructor code; never the student's)."""
    return load_module(REFERENCE, "lenet_reference")


def reference_lenet() -> torch.nn.Module:
    """The reference build_lenet()."""
    return _reference_module().build_lenet()


def fixed_state(seed: int) -> dict[str, torch.Tensor]:
    """Weights drawn from a fixed seed, large enough that sigmoid and ReLU, mean and max pooling disagree."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.5 for k, shape in STATE_SHAPES.items()}


def test_forward_matches_reference(contestant, data_root):
    if problem := shapes_differ(contestant):
        defer("layer_shapes", f"d2l's weights do not fit your layers, because {problem}")
    x, _ = images(data_root, 8, train=False, seed=3)
    state = fixed_state(4)
    own = contestant.call("describe", returns=Describe)["state"]
    sent = state
    if own.keys() != state.keys() and renamed_keys(own, STATE_SHAPES):
        # d2l's layers at other indices: the same weights under the student's names (parameter_count charges those)
        sent = dict(zip(own, state.values(), strict=True))
    got = contestant.call("forward_logits", state=sent, x=x)
    got = expect_shape(got, (8, 10), "build_lenet()(x) for x (8, 1, 28, 28)")
    net = reference_lenet()
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        want = net(x)
    if problem := first_mismatch(got, want, torch.arange(got.numel()), 1e-5, 1e-4):
        if torch.allclose(got.double(), torch.softmax(want.double(), dim=1), atol=1e-5):
            fail("with fixed weights, your LeNet returns d2l's logits put through softmax (each row sums to 1): "
                 "remove the final nn.Softmax; nn.CrossEntropyLoss applies softmax itself, and twice slows training")
        swaps = layer_swaps(contestant)
        named = f": your forward uses {' and '.join(swaps)}; the assignment is d2l's LeNet as written" if swaps else ""
        fail(f"with fixed weights, your LeNet's logits differ from d2l's (sigmoid activations, average pooling): "
             f"entry {problem.removeprefix('at x=')}{named}")  # fmt: skip


POLICY = GraphPolicy(ops=CNN_OPS, max_params=500_000, inputs=((None, 1, 28, 28),), outputs=((None, 10),))
MODEL = ModelSpec(
    name="d2l LeNet", reference_source=REFERENCE, build=lambda: _reference_module().build_lenet(),
    example=(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)),),  # (4, 1, 28, 28)
    input_names=["x"], output_names=["logits"], policy=POLICY,
    outputs_probe="model_outputs", export_probe="export_model",
)  # fmt: skip


@functools.lru_cache(maxsize=64)
def _measured(graph_sha: str, chosen: Chosen, data_root: Path) -> tuple[float, list[list[int]]]:
    """Test accuracy and confusion matrix of the chosen graph; cached by the graph's content."""
    x, y = read_fashion_mnist(data_root, train=False)  # (10000, 1, 28, 28) uint8, (10000,)
    logits = predict(chosen, POLICY, f"fashion-mnist-test:{data_root}", x.float() / 255, 2500)  # (10000, 10)
    return accuracy(logits, y), confusion_matrix(logits.argmax(dim=1), y, 10)


def _likely_cause(contestant: Any, data_root: Path) -> str | None:
    """Why the student's lenet.pth may be poorly trained: a train_epoch slip the judge reproduces, or None."""
    try:
        x, y, r = one_epoch(contestant, data_root)
        if slip := training_slip(x, y, r):  # training_epoch charges it; here it explains the weights
            return f"a likely cause: {slip}; then train again and save the new lenet.pth"
        if ignored_lr(contestant, data_root, r):  # then lr 0 trains too, and tells nothing; training_epoch charges it
            return None
        _, _, still = one_epoch(contestant, data_root, lr=0.0)
    except ContestantError:  # a train_epoch that fails is training_epoch's to say
        return None
    if same_weights(still["after"], still["before"]):
        return None
    return ("a likely cause: train_epoch changed the weights of a model even with lr 0, which no SGD step does, so "
            "it re-initialises the model on every call (net.apply(init_weights) inside it?) and each epoch starts "
            "over; initialise once, before the epochs")  # fmt: skip


def test_test_accuracy(submission, data_root, check, contestant):
    said: list[str] = []
    try:
        state = state_dict_from(submission.weights("lenet.pth"), "lenet.pth", notes=said)
    except WeightsError as exc:
        raise CheckFailed(f"{exc}; save torch.save(net.state_dict(), 'lenet.pth')") from None
    for note in said:
        check.note(note)
    chosen = choose(MODEL, state, contestant, "lenet.pth")
    if chosen.own:
        check.note(chosen.note)
    acc, confusion = _measured(hashlib.sha256(chosen.graph).hexdigest(), chosen, data_root)
    check.confusion(confusion, FASHION_MNIST_CLASSES)
    if TEST_ACCURACY.fraction(acc) < 1 and (cause := _likely_cause(contestant, data_root)):
        check.note(cause)
    TEST_ACCURACY.grade(acc, "lenet.pth in " + ("your own LeNet" if chosen.own else "the reference LeNet")
                        + ", measured by the judge on the 10,000 test images")  # fmt: skip
