"""exp2 hidden checks: the judge measures final.pth's accuracy itself, with the reference ResNet20.

Accuracy credit (ACCURACY below): 100% of the points at >= 70% test accuracy, 0 at <= 50%, linear in between
(60% earns half). The measurement is deterministic on a given machine (eval mode, no augmentation, fixed batch
order); across CPU thread counts or GPUs, float reductions may move it by about 0.01 points, far inside the
1.5-point tolerance of the trend check.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from exp2_judge import REFERENCE_STATE, key_mismatch, normalize

from grader.data import read_cifar10
from grader.judge import CheckFailed, WeightsError, accuracy_threshold, fail, load_weights

REFERENCE = Path(__file__).resolve().parents[1] / "exp2.py"
# The whole test set in a fixed order: no seed. Tolerance: float reductions on another machine or thread
# count move the measurement by about 0.01 points; 0.05 covers that, in the student's favour.
ACCURACY = accuracy_threshold(full=70.0, zero=50.0, seed=None, tolerance=0.05)
TREND_TOLERANCE = 1.5  # percentage points between the claimed last test accuracy and the judge's measurement
EPOCHS = 10


@functools.lru_cache(maxsize=1)
def reference_model_class() -> type[torch.nn.Module]:
    """The reference ResNet20 from solutions/exp2/exp2.py (instructor code; never the student's)."""
    spec = importlib.util.spec_from_file_location("exp2_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResNet20


def state_dict_of(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The weights in a loaded checkpoint, and notes on how they were found."""
    notes = []
    if isinstance(obj, dict) and "net" in obj:
        state = obj["net"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
        notes.append(f"{name} is a bare state_dict; graded it as the weights (save {{'net': ..., ...}} next time)")
    else:
        have = f"a dict with keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise CheckFailed(f"{name} holds {have}; expected a checkpoint dict with the state_dict under 'net'")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckFailed(f"{name}['net'] is not a state_dict (a dict of tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append(f"{name} was saved from DataParallel; removed the 'module.' prefix from its keys")
    return state, notes


def _measure(path: Path, data_root: Path) -> tuple[float, tuple[str, ...]] | str:
    """Test accuracy of a weights file, or why it cannot be measured."""
    try:
        state, notes = state_dict_of(load_weights(path), path.name)
    except (WeightsError, CheckFailed) as exc:
        return str(exc)
    if problem := key_mismatch({k: list(v.shape) for k, v in state.items()}, REFERENCE_STATE):
        return f"{path.name} does not load into the reference ResNet20: {problem}"
    model = reference_model_class()()
    model.load_state_dict(state)
    model.eval()
    x, y = read_cifar10(data_root, train=False)  # (10000, 3, 32, 32) uint8, (10000,)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += int((model(normalize(x[i : i + 1000])).argmax(dim=1) == y[i : i + 1000]).sum())
    return 100.0 * correct / len(x), tuple(notes)


# (sha256 of the file, data root) -> outcome. Both hidden checks, and every submission with the same file,
# share one evaluation within a grading process.
MEASURED: dict[tuple[str, Path], tuple[float, tuple[str, ...]] | str] = {}


def measure(path: Path, data_root: Path) -> tuple[float, tuple[str, ...]]:
    key = (hashlib.sha256(path.read_bytes()).hexdigest(), data_root)
    if key not in MEASURED:
        MEASURED[key] = _measure(path, data_root)
    outcome = MEASURED[key]
    if isinstance(outcome, str):
        raise CheckFailed(outcome)
    return outcome


def test_accuracy(submission, data_root, check):
    acc, notes = measure(submission.path("final.pth"), data_root)
    for n in notes:
        check.note(n)
    ACCURACY.grade(acc, "final.pth in the reference ResNet20, measured by the judge on the 10,000 CIFAR-10 test images")


def test_claimed_trend(submission, data_root, check):
    ckpt = submission.weights("final.pth")
    history = ckpt.get("history") if isinstance(ckpt, dict) else None
    claimed = history.get("test_acc") if isinstance(history, dict) else None
    if not isinstance(claimed, list) or not all(isinstance(v, (int, float)) for v in claimed):
        fail("final.pth has no history['test_acc'] (a list of test accuracies, one per epoch)")
    check.plot("test_acc", claimed)
    if isinstance(history.get("train_acc"), list):
        check.plot("train_acc", history["train_acc"])
    if len(claimed) != EPOCHS:
        fail(f"history['test_acc'] has {len(claimed)} entries; expected {EPOCHS}, one per epoch")
    acc, _ = measure(submission.path("final.pth"), data_root)
    gap = abs(claimed[-1] - acc)
    if not math.isfinite(gap) or gap > TREND_TOLERANCE:
        fail(f"the last claimed test accuracy is {claimed[-1]:.2f}% but the judge measured {acc:.2f}% "
             f"(allowed gap {TREND_TOLERANCE:g} points)")  # fmt: skip


def test_rerun_writes_checkpoint(contestant, data_root):
    """GPU only, and only where assignment.toml enables it: exp2.py itself, one short epoch on a subset."""
    r = contestant.call("rerun", subset=2048)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rerun.pth"
        path.write_bytes(r.numpy().tobytes())
        state, _ = state_dict_of(load_weights(path), "the re-run's checkpoint")
    if problem := key_mismatch({k: list(v.shape) for k, v in state.items()}, REFERENCE_STATE):
        fail(f"the re-run's checkpoint does not match the reference: {problem}")
