"""exp2's accuracy measurement: the student's trained ResNet20 on the 10,000 CIFAR-10 test images, run by the judge.

The judge measures the model the student trained (grader.judge.measured): the reference ResNet20's graph with
final.pth's weights when they fit it and the student's model computes what it computes, else the student's own
model, exported in the sandbox with those weights and checked against `[graph]` in assignment.toml. A CPU judge
runs either graph with onnxruntime (about 3x faster than eager PyTorch, the same predictions on every bundled
example: bench/RESULTS.md); a GPU judge runs the reference path in eager CUDA.

Shared by the hidden checks (one file) and by batch grading (`batch_prefetch` in assignment.toml: many files, one
pass per worker, the test set sent to the graph runner once). The prefetch measures on the reference path; a
check that finds the student's model computes otherwise measures their own graph. Both paths run fixed batches
in a fixed order, so a batch-graded submission gets the score it gets alone on the same machine.

The same measurement also gives the similarity step (`[similarity] predictions` in assignment.toml) each
submission's predicted class per test image: computed here, by the judge, never by student code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from exp2_judge import REFERENCE_STATE, UNNORMALIZED, Normalization, normalization_of, normalize

from grader.data import read_cifar10
from grader.graphs import GraphPolicy, GraphRefused, runner
from grader.graphs.policy import CNN_OPS
from grader.judge import CheckFailed, WeightsError, confusion_matrix, judge_device, load_weights, state_dict_from
from grader.judge.client import ContestantClient
from grader.judge.measured import ModelSpec, choose, fits_reference, reference_with
from grader.modules import load_module

REFERENCE = Path(__file__).resolve().parents[1] / "exp2.py"
BATCH = 1000  # images per forward pass; fixed, because batch size can change float results on some devices
# The handout's ResNet20 has 0.27M parameters; a student's variant may be wider, within reason.
POLICY = GraphPolicy(ops=CNN_OPS, max_params=2_000_000, inputs=((None, 3, 32, 32),), outputs=((None, 10),))


@dataclass(frozen=True)
class Measurement:
    accuracy: float  # percent of the 10,000 test images
    notes: tuple[str, ...]  # how the checkpoint was read, and which model measured it
    confusion: list[list[int]]  # (10, 10): [true class][predicted class]
    predicted: torch.Tensor  # (10000,) uint8: the predicted class of each test image, in the test set's order


@functools.lru_cache(maxsize=1)
def reference_model_class() -> type[torch.nn.Module]:
    """The reference ResNet20 from solutions/exp2/exp2.py (instructor code; never the student's)."""
    return load_module(REFERENCE, "exp2_reference").ResNet20


def model_spec() -> ModelSpec:
    return ModelSpec(
        name="ResNet20", reference_source=REFERENCE, build=lambda: reference_model_class()(),
        example=(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)),),  # (4, 3, 32, 32)
        input_names=["x"], output_names=["logits"], policy=POLICY,
        outputs_probe="model_outputs", export_probe="export_model",
    )  # fmt: skip


@functools.lru_cache(maxsize=3)  # the handout's normalization, the student's, and one for their Normalize
def test_set(data_root: Path, device: torch.device,
             norm: Normalization | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The normalized test images (10000, 3, 32, 32) and labels (10000,), on `device`: once per process."""
    x, y = read_cifar10(data_root, train=False)
    return normalize(x, norm).to(device), y.to(device)


def state_dict_of(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The weights in a loaded checkpoint (under 'net', or a bare state_dict), and notes on how they were found."""
    notes: list[str] = []
    try:
        return state_dict_from(obj, name, "net", notes, bare_ok=True, reference=REFERENCE_STATE), notes
    except WeightsError as exc:
        raise CheckFailed(str(exc)) from None


def _predict_graph(graph: bytes, data_root: Path, norm: Normalization | None) -> torch.Tensor:
    x, _ = test_set(data_root, torch.device("cpu"), norm)
    name = f"cifar10-test:{data_root}" + (f":{norm}" if norm else "")  # the runner keeps each input by its name
    logits = runner().classify(graph, POLICY, name, x.numpy(), BATCH)
    return torch.from_numpy(logits).argmax(dim=1)  # (10000,)


def _predict_eager(state: dict[str, torch.Tensor], data_root: Path, device: torch.device,
                   norm: Normalization | None) -> torch.Tensor:  # fmt: skip
    x, _ = test_set(data_root, device, norm)
    model = reference_model_class()().to(device)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + BATCH]).argmax(dim=1) for i in range(0, len(x), BATCH)]).cpu()


def _result(predicted: torch.Tensor, data_root: Path, notes: list[str]) -> Measurement:
    _, y = test_set(data_root, torch.device("cpu"))
    correct = int((predicted == y).sum())
    return Measurement(100.0 * correct / len(y), tuple(notes), confusion_matrix(predicted, y, 10),
                       predicted.to(device="cpu", dtype=torch.uint8))  # fmt: skip


def _reference_measurement(state: dict[str, torch.Tensor], data_root: Path, notes: list[str],
                           norm: Normalization | None = None) -> Measurement:  # fmt: skip
    device = judge_device()
    if device.type == "cuda":  # a GPU judge keeps eager CUDA for the reference
        return _result(_predict_eager(state, data_root, device, norm), data_root, notes)
    try:
        return _result(_predict_graph(reference_with(model_spec(), state), data_root, norm), data_root, notes)
    except GraphRefused as exc:  # the reference graph is the course's: its failure is never the student's
        raise RuntimeError(f"the reference ResNet20's graph failed to run: {exc}") from None


# (sha256 of the file or of the student's graph, data root, the student's own normalization if any) -> outcome.
# Both hidden checks, every submission with the same file, and the batch prefetch share one evaluation within a
# grading process.
MEASURED: dict[tuple[str, Path, Normalization | None], Measurement | str] = {}
# What the accuracy check measured for each file (its key: the file's hash), in whichever model it chose.
GRADED: dict[tuple[str, Path], Measurement | str] = {}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    try:
        return state_dict_of(load_weights(path), path.name)
    except WeightsError as exc:
        raise CheckFailed(str(exc)) from None


TREND_TOLERANCE = 1.5  # percentage points between the claimed last test accuracy and the judge's measurement
# Images a student's own loop prepares without normalize(): x.float() / 255, or that times 2 minus 1
HAND_ROLLED: tuple[tuple[Normalization, str], ...] = (
    (UNNORMALIZED, "x / 255, in [0, 1], not normalized"), (((0.5,) * 3, (0.5,) * 3), "x / 255 * 2 - 1, in [-1, 1]"))


def measure(path: Path, data_root: Path, contestant: ContestantClient | None = None,
            pipelines: Sequence[tuple[Normalization, str]] = (), claimed: float | None = None) -> Measurement:
    """The accuracy of the model the student trained, with final.pth's weights (see the module docstring). Test
    images are prepared as the student's normalize() does; where it is the handout's but exp2.py passes other
    numbers to torchvision's Normalize (`pipelines`: each with where it is), the better measurement counts. Where
    the last `claimed` test accuracy is far above that, images prepared as a hand-rolled loop does (HAND_ROLLED)
    count when the model scores the claim on them."""
    state, notes = _load(path)
    file_key = (_sha(path.read_bytes()), data_root)
    norm = normalization_of(contestant) if contestant is not None else None
    if norm:
        notes = [*notes, f"measured on test images normalized with your normalize()'s mean {norm[0]} and std "
                 f"{norm[1]}, as your model was trained, not with the handout's (this costs nothing)"]  # fmt: skip
    chosen = choose(model_spec(), state, contestant, path.name)
    outcome = _measured(chosen, state, file_key, notes, norm)
    for other, where in pipelines if norm is None and contestant is not None else ():
        how = ("scaled to [0, 1] and not normalized, as your ToTensor() with no Normalize after it"
               if other == UNNORMALIZED else f"normalized as your Normalize(mean={other[0]}, std={other[1]})")
        said = (f"measured on test images {how} ({where}) does, which scores higher than your normalize() (the "
                "handout's): your model was trained that way (this costs nothing; make normalize() the same, so that "
                "your evaluate() measures it right)")  # fmt: skip
        alt = _measured(chosen, state, file_key, notes, other)
        if not isinstance(alt, str) and (isinstance(outcome, str) or alt.accuracy > outcome.accuracy):
            outcome = replace(alt, notes=(*alt.notes, said))
    if (claimed is not None and norm is None and contestant is not None and not isinstance(outcome, str)
            and claimed - outcome.accuracy > TREND_TOLERANCE):  # fmt: skip
        outcome = _hand_rolled(chosen, state, file_key, notes, claimed, outcome)
    GRADED[file_key] = outcome
    if isinstance(outcome, str):
        raise CheckFailed(outcome)
    return outcome


def _hand_rolled(chosen: Any, state: dict[str, torch.Tensor], file_key: tuple[str, Path], notes: list[str],
                 claimed: float, outcome: Measurement) -> Measurement:  # fmt: skip
    """`outcome`, or the measurement on images prepared as a HAND_ROLLED loop does where the model scores what the
    student claims there."""
    for other, how in HAND_ROLLED:
        said = (f"measured on test images prepared as {how}: your model scores there what final.pth's history "
                f"claims ({claimed:.2f}%), and far less on images your normalize() (the handout's) prepares, so your "
                "training fed it images prepared that way (this costs nothing; make normalize() prepare them the "
                "same, so that evaluate() measures your model right)")  # fmt: skip
        alt = _measured(chosen, state, file_key, notes, other)
        if not isinstance(alt, str) and alt.accuracy > outcome.accuracy and abs(alt.accuracy - claimed) <= \
                TREND_TOLERANCE:
            return replace(alt, notes=(*alt.notes, said))
    return outcome


def _measured(chosen: Any, state: dict[str, torch.Tensor], file_key: tuple[str, Path], notes: list[str],
              norm: Normalization | None) -> Measurement | str:  # fmt: skip
    """One measurement of `chosen` (the reference path or the student's graph) on images normalized with `norm`,
    kept in MEASURED (its notes say only what the file alone decides: students may share a file); a string where
    the student's graph is refused."""
    if not chosen.own:
        if (*file_key, norm) not in MEASURED:
            MEASURED[(*file_key, norm)] = _reference_measurement(state, file_key[1], notes, norm)
        return MEASURED[(*file_key, norm)]
    graph_key = (_sha(chosen.graph), file_key[1], norm)
    if graph_key not in MEASURED:
        try:
            MEASURED[graph_key] = _result(_predict_graph(chosen.graph, file_key[1], norm), file_key[1],
                                          [*notes, chosen.note])  # fmt: skip
        except GraphRefused as exc:
            MEASURED[graph_key] = chosen.refused(exc)
    return MEASURED[graph_key]


def measure_many(folders: list[Path], data_root: Path) -> int:
    """Batch grading's prefetch: measure every folder's final.pth that fits the reference, on the reference path
    (the checks then confirm the student's model computes the same). Returns how many were new."""
    new = 0
    for folder in folders:
        path = folder / "final.pth"
        if not path.is_file() or (key := (_sha(path.read_bytes()), data_root, None)) in MEASURED:
            continue
        try:
            state, notes = _load(path)
        except CheckFailed:
            continue  # the check says why, with the same message
        if fits_reference(model_spec(), state):
            MEASURED[key] = _reference_measurement(state, data_root, notes)
            new += 1
    return new


def predictions_of(folder: Path, data_root: Path) -> torch.Tensor | None:
    """The similarity hook: final.pth's predicted class per test image (10000,), as the accuracy check measured
    it (in the reference or the student's own model), else on the reference path; None when there is no regular
    final.pth or it cannot be measured here."""
    path = folder / "final.pth"
    if path.is_symlink() or not path.is_file():
        return None
    key = (_sha(path.read_bytes()), data_root)
    outcome = GRADED.get(key) or MEASURED.get((*key, None))
    if outcome is None:
        try:
            state, notes = _load(path)
        except CheckFailed:
            return None
        if not fits_reference(model_spec(), state):
            return None  # its own model needs a contestant to export it: only the check can measure it
        outcome = MEASURED[(*key, None)] = _reference_measurement(state, data_root, notes)
    return None if isinstance(outcome, str) else outcome.predicted
