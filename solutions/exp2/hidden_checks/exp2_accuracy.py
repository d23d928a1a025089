"""exp2's accuracy measurement: final.pth in the reference ResNet20 on the 10,000 CIFAR-10 test images.

Shared by the hidden checks (one file) and by batch grading (`batch_prefetch` in assignment.toml: many files, one
pass per worker with the test set resident on the judge's device). Both paths run the same per-model loop with
the same batches, so a batch-graded submission gets bit-for-bit the score it gets alone on the same machine.
Models are not stacked with torch.func.vmap for that reason: it changes float reduction order.

The same measurement also gives the similarity step (`[similarity] predictions` in assignment.toml) each
submission's predicted class per test image: computed here, by the judge, never by student code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from exp2_judge import REFERENCE_STATE, key_mismatch, normalize

from grader.data import read_cifar10
from grader.judge import CheckFailed, WeightsError, confusion_matrix, judge_device, load_weights

REFERENCE = Path(__file__).resolve().parents[1] / "exp2.py"
BATCH = 1000  # images per forward pass; fixed, because batch size can change float results on some devices


@dataclass(frozen=True)
class Measurement:
    accuracy: float  # percent of the 10,000 test images
    notes: tuple[str, ...]  # how the checkpoint was read
    confusion: list[list[int]]  # (10, 10): [true class][predicted class]
    predicted: torch.Tensor  # (10000,) uint8: the predicted class of each test image, in the test set's order


@functools.lru_cache(maxsize=1)
def reference_model_class() -> type[torch.nn.Module]:
    """The reference ResNet20 from solutions/exp2/exp2.py (instructor code; never the student's)."""
    spec = importlib.util.spec_from_file_location("exp2_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResNet20


@functools.lru_cache(maxsize=2)
def test_set(data_root: Path, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalized test images (10000, 3, 32, 32) and labels (10000,), on `device`: once per process."""
    x, y = read_cifar10(data_root, train=False)
    return normalize(x).to(device), y.to(device)


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
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):  # fmt: skip
        raise CheckFailed(f"{name}['net'] is not a state_dict (a dict of tensors by name)")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append(f"{name} was saved from DataParallel; removed the 'module.' prefix from its keys")
    return state, notes


def _measure(path: Path, data_root: Path) -> Measurement | str:
    """One weights file's measurement, or why it cannot be measured."""
    try:
        state, notes = state_dict_of(load_weights(path), path.name)
    except (WeightsError, CheckFailed) as exc:
        return str(exc)
    if problem := key_mismatch({k: list(v.shape) for k, v in state.items()}, REFERENCE_STATE):
        return f"{path.name} does not load into the reference ResNet20: {problem}"
    device = judge_device()
    x, y = test_set(data_root, device)
    model = reference_model_class()().to(device)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x[i : i + BATCH]).argmax(dim=1) for i in range(0, len(x), BATCH)])  # (10000,)
    correct = int((predicted == y).sum())
    return Measurement(100.0 * correct / len(x), tuple(notes), confusion_matrix(predicted, y, 10),
                       predicted.to(device="cpu", dtype=torch.uint8))  # fmt: skip


# (sha256 of the file, data root) -> outcome. Both hidden checks, every submission with the same file, and the
# batch prefetch share one evaluation within a grading process.
MEASURED: dict[tuple[str, Path], Measurement | str] = {}


def _key(path: Path, data_root: Path) -> tuple[str, Path]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), data_root


def measure(path: Path, data_root: Path) -> Measurement:
    key = _key(path, data_root)
    if key not in MEASURED:
        MEASURED[key] = _measure(path, data_root)
    outcome = MEASURED[key]
    if isinstance(outcome, str):
        raise CheckFailed(outcome)
    return outcome


def measure_many(folders: list[Path], data_root: Path) -> int:
    """Batch grading's prefetch: measure every folder's final.pth in one pass. Returns how many were new."""
    new = 0
    for folder in folders:
        path = folder / "final.pth"
        if path.is_file() and (key := _key(path, data_root)) not in MEASURED:
            MEASURED[key] = _measure(path, data_root)
            new += 1
    return new


def predictions_of(folder: Path, data_root: Path) -> torch.Tensor | None:
    """The similarity hook: final.pth's predicted class per test image (10000,), from the cache the checks and
    the prefetch filled; None when there is no regular final.pth or it cannot be measured."""
    path = folder / "final.pth"
    if path.is_symlink() or not path.is_file():
        return None
    key = _key(path, data_root)
    if key not in MEASURED:
        MEASURED[key] = _measure(path, data_root)
    outcome = MEASURED[key]
    return None if isinstance(outcome, str) else outcome.predicted
