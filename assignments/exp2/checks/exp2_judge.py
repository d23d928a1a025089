"""Constants shared by exp2's public and hidden checks (judge side only)."""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from typing_extensions import TypedDict

from grader.data import read_cifar10
from grader.judge import FileBytes, WeightsError, fail, state_dicts_in, weights_from_bytes

HERE = Path(__file__).resolve().parent
# Keys and shapes of the reference ResNet20's state_dict, generated from solutions/exp2 by `grader release exp2`.
REFERENCE_STATE: dict[str, list[int]] = json.loads((HERE / "reference_state_dict.json").read_text())
TARGET_PARAMS = 270_000  # "about 0.27M"; the reference has 272,474
PARAM_TOLERANCE = 0.02
SCHEDULE = [0.1] * 5 + [0.01] * 5  # LR of epochs 0-9
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def small_cnn() -> torch.nn.Module:
    """The fixed small CNN the train_step, evaluate and checkpoint checks use (the probes define the same one)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),  # (N, 16, 32, 32)
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),  # (N, 16, 4, 4)
        torch.nn.Flatten(),  # (N, 256)
        torch.nn.Linear(256, 10),  # (N, 10)
    )


def small_cnn_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in small_cnn().state_dict().items()}


def batch_loss(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of the small CNN with `state` on (x, y), in train mode (as train_step sees the batch)."""
    model = small_cnn()
    model.load_state_dict(state)
    model.train()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(x), y))


class DescribeModel(TypedDict):
    """What the describe_model probe returns: a fresh ResNet20's output, parameter count and state_dict shapes."""

    output: torch.Tensor
    num_params: int
    state: dict[str, list[int]]


class TrainSteps(TypedDict):
    """What the train_steps probe returns: the weights train_step left, and whether the optimizer it was given
    holds any state (SGD's momentum buffers appear at its first step)."""

    state: dict[str, torch.Tensor]
    stepped: bool
    signature: str | None  # train_step's, where it differs from the handout's and the judge could still call it


class CheckpointRoundtrip(TypedDict):
    """What the checkpoint_roundtrip probe returns: the saved file's bytes (uint8) and what resume() restored."""

    file: FileBytes  # type: ignore[valid-type]
    start: int
    history: dict[str, list[float | None]]
    lr: float
    max_weight_diff: float
    resume_error: str  # what resume() raised on the whole model save_checkpoint kept under 'net' ("": it read it)


def history_of(epochs: int) -> dict[str, list[float]]:
    """A made-up history of `epochs` epochs, for save_checkpoint to keep and resume() to return."""
    return {"train_loss": [2.0 - 0.1 * i for i in range(epochs)], "train_acc": [40.0 + i for i in range(epochs)],
            "test_acc": [45.0 + i for i in range(epochs)]}  # fmt: skip


def saved_checkpoint(r: CheckpointRoundtrip) -> tuple[dict[str, Any], str | None]:
    """The checkpoint save_checkpoint wrote in the checkpoint_roundtrip probe, and the key it keeps the weights
    under when that is not 'net' ({'model': ...}: read as 'net', which checkpoint_resume charges as a slip); fails
    unless it is a dict with the weights, 'epoch' and 'history' (checkpoint_resume's first point)."""
    try:
        saved = weights_from_bytes(r["file"].numpy().tobytes(), "checkpoint.pth")
    except WeightsError as exc:
        fail(f"save_checkpoint wrote a file the grader cannot read: {exc}")
    renamed = None
    if isinstance(saved, dict) and "net" not in saved and len(held := state_dicts_in(saved)) == 1:
        renamed, saved = held[0], {**saved, "net": saved[held[0]]}
    if not isinstance(saved, dict) or not {"net", "epoch", "history"} <= set(saved):
        have = sorted(map(str, saved)) if isinstance(saved, dict) else type(saved).__name__
        fail(f"save_checkpoint saved {have}; expected a dict with 'net', 'epoch' and 'history'")
    return saved, renamed


class EvaluateAccuracy(TypedDict):
    """What the evaluate_accuracy probe returns: evaluate()'s accuracy in percent, and the true one."""

    student: float
    expected: float


def cifar_test_images(data_root: Path, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n real CIFAR-10 test images (uint8) and labels, chosen with a fixed seed."""
    x, y = read_cifar10(data_root, train=False)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


# Images whose count is a whole number of batches for every usual batch size (100, 125, 200, 250, 500, 1000)
WHOLE_BATCHES = 1000


def evaluate_problem(contestant: Any, data_root: Path) -> tuple[float, str] | None:
    """What is wrong with the student's evaluate(), judged on a small CNN whose true accuracy is known (the model
    arrives in train mode, with warmed BatchNorm statistics), and the fraction of the points it keeps; None when it
    counts right. 300 images are fewer than one batch of 500: an evaluate() that is right on whole batches only
    (range(len(x) // batch_size)) keeps half, as it drops no image of the 10,000 the assignment evaluates."""
    from grader.judge import ContestantError

    x, _ = cifar_test_images(data_root, 300, seed=3)
    try:
        found = _miscounts(contestant, x)
    except ContestantError as exc:
        if not _counts_whole_batches(contestant, data_root):
            raise  # the plugin says it, and charges a slip that other checks meet once
        said = f"evaluate() on 300 images {exc.message.splitlines()[0]}"
    else:
        if found is None:
            return None
        said, problem = found
        if not _counts_whole_batches(contestant, data_root):
            return 0.0, problem
    return 0.5, (f"{said}, and counts right on {WHOLE_BATCHES} images, a whole number of batches: it leaves out a "
                 "last batch smaller than batch_size; loop over every batch, including a last smaller one (as "
                 "batches() does), and divide by the number of images")  # fmt: skip


def _counts_whole_batches(contestant: Any, data_root: Path) -> bool:
    from grader.judge import ContestantError

    try:
        return _miscounts(contestant, cifar_test_images(data_root, WHOLE_BATCHES, seed=3)[0]) is None
    except ContestantError:
        return False


def _miscounts(contestant: Any, x: torch.Tensor) -> tuple[str, str] | None:
    """How evaluate() miscounts on the images `x`: what it returned, and the whole message; None when right."""
    for flip in (0.0, 0.25):
        r = contestant.call("evaluate_accuracy", x=x, flip_fraction=flip, returns=EvaluateAccuracy)
        if math.isclose(r["student"], r["expected"], abs_tol=1e-6):
            continue
        said = f"evaluate() returned {r['student']:.4g} on {len(x)} images whose accuracy is {r['expected']:.4g}%"
        if math.isclose(100 * r["student"], r["expected"], abs_tol=1e-4):
            return said, f"{said}: a fraction, where the handout asks for a percentage; multiply it by 100"
        if r["student"] > 100:
            return said, (f"{said}: over 100, so a count of correct predictions rather than a percentage; divide it "
                          "by the number of images and multiply by 100")  # fmt: skip
        again = contestant.call("evaluate_accuracy", x=x, flip_fraction=flip, train_mode=False,
                                returns=EvaluateAccuracy)  # fmt: skip
        if math.isclose(again["student"], again["expected"], abs_tol=1e-6):
            return said, (f"{said} when the model arrives in train mode, as it does after a training epoch, and the "
                          "right accuracy when it arrives in eval mode: call model.eval() at the start of evaluate(), "
                          "so that BatchNorm uses its running statistics rather than each batch's own")  # fmt: skip
        return said, (f"{said}, whichever mode the model arrives in, so model.eval() is not what is wrong: count the "
                      "predictions of the images exactly as training prepares them (the given normalize(), as "
                      "batches() applies it), the argmax over dim=1, and every image once")  # fmt: skip
    return None


Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]  # per-channel (mean, std)


def normalize(x: torch.Tensor, norm: Normalization | None = None) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> standardized float (N, 3, 32, 32), as exp2.py's given normalize(), or with the
    student's own per-channel `norm`."""
    mean_, std_ = norm or (CIFAR_MEAN, CIFAR_STD)
    mean = torch.tensor(mean_).view(1, 3, 1, 1)
    std = torch.tensor(std_).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def _per_channel(value: Any) -> tuple[float, float, float] | None:
    """A Normalize argument as three numbers: one number for every channel, or one per channel."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * 3
    if isinstance(value, (list, tuple)) and len(value) in (1, 3) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):  # fmt: skip
        return tuple(float(v) for v in value) * (3 // len(value))  # type: ignore[return-value]
    return None


# Images as torchvision's ToTensor() leaves them, in [0, 1]: a pipeline that never normalizes
UNNORMALIZED: Normalization = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def normalizations_in(source: str) -> list[tuple[Normalization, int]]:
    """The per-channel (mean, std) that the student's code passes as numbers to torchvision's Normalize (a
    tutorial's pipeline: transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))), each with its line, other than
    the handout's; UNNORMALIZED where it uses ToTensor() and no Normalize at all. Read from the source, never run."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    found: list[tuple[Normalization, int]] = []
    calls = [(getattr(node.func, "attr", getattr(node.func, "id", "")), node) for node in ast.walk(tree)
             if isinstance(node, ast.Call)]  # fmt: skip
    if not any(name == "Normalize" for name, _ in calls):
        first = min((node.lineno for name, node in calls if name == "ToTensor"), default=None)
        return [] if first is None else [(UNNORMALIZED, first)]
    for name, node in calls:
        if name != "Normalize":
            continue
        args = {**dict(zip(("mean", "std"), node.args, strict=False)), **{k.arg: k.value for k in node.keywords}}
        try:
            mean, std = (_per_channel(ast.literal_eval(args[k])) for k in ("mean", "std"))
        except (KeyError, ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if mean is None or std is None or min(std) <= 0:
            continue
        norm = (mean, std)
        handout = all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip([*mean, *std], [*CIFAR_MEAN, *CIFAR_STD],
                                                                        strict=True))  # fmt: skip
        if not handout and norm not in [n for n, _ in found]:
            found.append((norm, node.lineno))
    return found


# Every value 0..255 in each channel: what the student's normalize() is asked to prepare. (2, 3, 32, 32) uint8
_LEVELS = torch.arange(256, dtype=torch.uint8).repeat(24).reshape(2, 32, 32, 3).permute(0, 3, 1, 2).contiguous()


def normalization_of(contestant: Any) -> Normalization | None:
    """The per-channel mean and std of the student's normalize() when they are not the handout's (the PyTorch
    tutorial's 0.5s, another repository's CIFAR std): the judge then prepares the test images the same way their
    model was trained, itself. None when normalize() is the handout's, fails, or is no per-channel
    standardization (the handout's is used)."""
    from grader.judge import ContestantError

    try:
        out = contestant.call("normalized", x=_LEVELS)
    except ContestantError:
        return None
    if not isinstance(out, torch.Tensor) or out.shape != _LEVELS.shape or not torch.isfinite(out).all():
        return None
    x, out = _LEVELS.double() / 255, out.double()
    mean, std = [], []
    for c in range(3):
        basis = torch.stack([x[:, c].reshape(-1), torch.ones(x[:, c].numel(), dtype=torch.float64)], dim=1)
        coef = torch.linalg.lstsq(basis, out[:, c].reshape(-1, 1)).solution.reshape(-1)  # out = a * x + b
        if float(coef[0]) <= 0 or float((basis @ coef - out[:, c].reshape(-1)).abs().max()) > 1e-3:
            return None  # not (x - mean) / std with std > 0
        std.append(round(1 / float(coef[0]), 6))
        mean.append(round(-float(coef[1]) * std[-1], 6))
    if all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip([*mean, *std], [*CIFAR_MEAN, *CIFAR_STD], strict=True)):
        return None
    return (mean[0], mean[1], mean[2]), (std[0], std[1], std[2])


def key_mismatch(state: dict[str, list[int]], reference: dict[str, list[int]], limit: int = 5) -> str | None:
    """None if keys and shapes agree; else the first missing, unexpected and mis-shaped keys."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shaped = [f"{k} {tuple(state[k])} (expected {tuple(reference[k])})"
              for k in reference if k in state and list(state[k]) != list(reference[k])]  # fmt: skip
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts) or None


BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def extra_layers(state: dict[str, Any], reference: dict[str, list[int]]) -> str | None:
    """What a model has beyond the handout's ResNet20 when it has all of that (every key, and its shape where
    `state` gives shapes; `state` may name parameters only, without BatchNorm's buffers): a bias in its
    convolutions, or layers the handout's has not. None otherwise."""
    params_only = not any(k.endswith(BUFFERS) for k in state)
    wanted = {k: v for k, v in reference.items() if not (params_only and k.endswith(BUFFERS))}
    if any(k not in state or isinstance(state[k], list) and list(state[k]) != list(v) for k, v in wanted.items()):
        return None
    if not (extra := [k for k in state if k not in reference]):
        return None
    listed = f"{len(extra)} unexpected: {', '.join(extra[:5])}{' and more' if len(extra) > 5 else ''}"
    if all(k.endswith(".bias") and len(reference.get(k[:-5] + ".weight", [])) == 4 for k in extra):
        return (f"a bias in its convolutions ({listed}): nn.Conv2d adds one unless bias=False, and a bias before "
                "BatchNorm does nothing (BatchNorm subtracts the mean), so the handout's convolutions have none; "
                "pass bias=False")  # fmt: skip
    return f"more ({listed}): remove the layers its forward pass does not need"


# LR schedulers whose steps the handout's schedule counts in epochs, and the argument that says after how many
EPOCH_SCHEDULERS = {"StepLR": "step_size", "MultiStepLR": "milestones"}
LOOPS = (ast.For, ast.AsyncFor, ast.While)


def scheduler_per_batch(source: str) -> tuple[int, str] | None:
    """Where exp2.py steps a StepLR or MultiStepLR that counts epochs (every step size or milestone a number of at
    most 10) once per batch: `.step()` inside a loop inside another loop, or inside the loop of a function that a
    loop calls. The line and the scheduler as written; None when it does not, or the source cannot tell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    built = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _counts_epochs(n)]
    if not built:
        return None
    called_in_loop = {c.func.id for loop in ast.walk(tree) if isinstance(loop, LOOPS) for c in ast.walk(loop)
                      if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}  # fmt: skip
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in [tree, *functions]:
        depth_needed = 1 if getattr(scope, "name", None) in called_in_loop else 2
        for line in _scheduler_steps(scope, 0, depth_needed):
            return line, ast.unparse(built[0])
    return None


def schedule_in_place(source: str) -> tuple[int, str] | None:
    """Where exp2.py follows the handout's schedule with an LR scheduler in place of lr_for_epoch, as the handout
    allows: a MultiStepLR with milestones [5] or a StepLR with step size 5, gamma 0.1 (their default), stepped
    and not once per batch. The line and the scheduler as written; None otherwise."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    stepped = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "step"
                  and "sched" in ast.unparse(n.func.value).lower() for n in ast.walk(tree))  # fmt: skip
    if not stepped or scheduler_per_batch(source) is not None:
        return None
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _counts_epochs(n)):
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        steps = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == EPOCH_SCHEDULERS[name])]
        gamma = [*call.args[2:3], *(k.value for k in call.keywords if k.arg == "gamma")]
        try:
            at = [ast.literal_eval(e) for e in steps]
            factor = [ast.literal_eval(e) for e in gamma] or [0.1]
            if at in ([5], [[5]], [(5,)]) and len(factor) == 1 and math.isclose(factor[0], 0.1):
                return call.lineno, ast.unparse(call)
        except (ValueError, TypeError):  # not literals, or not numbers
            continue
    return None


def _counts_epochs(call: ast.Call) -> bool:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name not in EPOCH_SCHEDULERS:
        return False
    position = 1  # StepLR(optimizer, step_size) and MultiStepLR(optimizer, milestones)
    given = [*call.args[position:position + 1], *(k.value for k in call.keywords if k.arg == EPOCH_SCHEDULERS[name])]
    steps = [e for g in given for e in (g.elts if isinstance(g, (ast.List, ast.Tuple)) else [g])]
    return bool(steps) and all(isinstance(e, ast.Constant) and isinstance(e.value, int) and 0 < e.value <= 10
                               for e in steps)  # fmt: skip


def _scheduler_steps(node: ast.AST, depth: int, needed: int, loop: ast.AST | None = None) -> Iterator[int]:
    """Lines of `<scheduler>.step()` calls at least `needed` loops deep in `node`, the innermost a loop over batches,
    not entering nested functions."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        inner, innermost = (depth + 1, child) if isinstance(child, LOOPS) else (depth, loop)
        if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "step"
                and "sched" in ast.unparse(child.func.value).lower() and inner >= needed
                and _over_batches(innermost)):  # fmt: skip
            yield child.lineno
        yield from _scheduler_steps(child, inner, needed, innermost)


def _over_batches(loop: ast.AST | None) -> bool:
    """A loop over batches as students write it: `for x, y in loader`, `for i, (x, y) in enumerate(...)`, or over
    something named for loading, batches or a progress bar (an outer loop over runs or LRs is none of these)."""
    if not isinstance(loop, (ast.For, ast.AsyncFor)):
        return False
    over = ast.unparse(loop.iter).lower()
    return isinstance(loop.target, ast.Tuple) or any(w in over for w in ("load", "batch", "tqdm", "pbar", "bar"))
