"""The generated exp2 class for the similarity tests, with planted copies and what must not be flagged.

Code (exp2.py), from the released stub:
    alice    A: the reference solution, as a student would hand it in (no solution markers)
    bob      B, carol C, dave D: three independent authors (tests/similarity/authors.py)
    ivan     COPY of alice's code with local names renamed and functions reordered (plants.disguise)
    peggy    COPY of bob's code pasted into a notebook's code cells (exp2.ipynb instead of exp2.py)
    erin, frank, grace, judy, mallory, oscar: the untouched stub (everyone's given code, nothing of their own)

Models (final.pth): the bundled checkpoints, and short fine-tunings of them on the CPU with fixed seeds (SGD with
the assignment's momentum and weight decay, batches of 32 from the first 10,000 training images, the
reference's augmentation; about 0.2 s a step on 2 cores):
    alice    the bundled solution: the reference run, i.e. pretrain_model.pth + 5 epochs at LR 0.01
    bob      the bundled lr-off-by-one: resumed from pretrain_model.pth, 5 epochs of its own
    carol, dave, ivan: resumed from pretrain_model.pth with seeds 1, 2, 3 and trained 30 steps at LR 0.01
             (their "own last epochs", shortened to keep the test cheap)
    erin, frank: independent trainings from a random initialization, seeds 1 and 2, 20 steps at LR 0.1
    grace    the bundled wrong-keys weights with the keys put right: an independent 10-epoch run
    judy     COPY of bob's final.pth, byte for byte
    mallory  COPY of alice's final.pth, then fine-tuned for 50 steps (seed 7, LR 0.01)
    oscar    COPY of grace's weights with every block's hidden units permuted: the same function, other weights
    peggy    no final.pth

Predictions: the reference ResNet20 on the first 1,000 test images (the judge's model and normalization; the
batch path stores all 10,000, measured by the judge itself).
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tests.similarity.authors import AUTHORS, fill
from tests.similarity.plants import as_notebook, disguise, without_solution_markers

ROOT = Path(__file__).resolve().parents[2]
EXP2 = ROOT / "examples" / "exp2"
PRETRAIN = ROOT / "assignments" / "exp2" / "pretrain_model.pth"
TRAIN_IMAGES = 10_000
TEST_IMAGES = 1_000
BATCH = 32
RESUMED_STEPS = 30  # carol, dave, ivan: their "own last epochs", shortened to keep the test cheap
SCRATCH_STEPS = 20  # erin, frank
COPY_STEPS = 50  # mallory: the "fine-tuned for 50 steps"
HISTORY = {"train_loss": [1.0] * 10, "train_acc": [60.0] * 10, "test_acc": [70.0] * 10}

# The pairs the similarity step must flag, with the signal that must flag each; no other pair may be flagged.
EXPECTED = {
    ("alice", "ivan"): "code",
    ("bob", "peggy"): "code",
    ("bob", "judy"): "identical",
    ("alice", "mallory"): "weights",
    ("grace", "oscar"): "predictions",
}


@functools.lru_cache(maxsize=1)
def reference() -> object:
    """solutions/exp2/exp2.py: the reference model and training step (instructor code)."""
    spec = importlib.util.spec_from_file_location("exp2_reference_gen", ROOT / "solutions" / "exp2" / "exp2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_net(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = ckpt["net"] if "net" in ckpt else ckpt
    return {k.removeprefix("backbone."): v for k, v in net.items()}


def train(state: dict[str, torch.Tensor] | None, steps: int, seed: int, lr: float,
          data: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:  # fmt: skip
    """`steps` SGD steps from `state` (None: a fresh initialization from `seed`)."""
    ref = reference()
    torch.manual_seed(seed)
    model = ref.ResNet20()
    if state is not None:
        model.load_state_dict(state)
    optimizer = ref.make_optimizer(model)
    ref.set_lr(optimizer, lr)
    gen = torch.Generator().manual_seed(seed)
    for step, (xb, yb) in enumerate(ref.batches(*data, BATCH, generator=gen, train=True)):
        if step == steps:
            break
        ref.train_step(model, optimizer, xb, yb)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def permute_hidden(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Permute each BasicBlock's hidden channels (conv1's outputs, bn1, conv2's inputs): the network computes
    the same function, but its weights are no longer near the original's."""
    out = dict(state)
    gen = torch.Generator().manual_seed(seed)
    blocks = sorted({k.rsplit(".conv1.", 1)[0] for k in state if ".conv1." in k and k.startswith("layer")})
    for b in blocks:
        perm = torch.randperm(state[f"{b}.conv1.weight"].shape[0], generator=gen)
        out[f"{b}.conv1.weight"] = state[f"{b}.conv1.weight"][perm]
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{b}.bn1.{name}"] = state[f"{b}.bn1.{name}"][perm]
        out[f"{b}.conv2.weight"] = state[f"{b}.conv2.weight"][:, perm]
    return out


def predictions(state: dict[str, torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """The reference ResNet20's predicted class for each (normalized) image of `x`, as the judge computes it."""
    model = reference().ResNet20()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)]).numpy().astype(np.int16)


@dataclass
class GeneratedClass:
    folder: Path  # one folder per student
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def _save(folder: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save({"net": state, "epoch": 10, "history": HISTORY}, folder / "final.pth")


def make_class(dest: Path, data_root: Path) -> GeneratedClass:
    """Write the class under dest/<student>/ and compute every model's predictions."""
    sys.path[:0] = [str(ROOT / "assignments" / "exp2" / "checks")]
    from exp2_judge import normalize

    from grader.data import read_cifar10

    stub = (ROOT / "assignments" / "exp2" / "exp2.py").read_text()
    a = without_solution_markers((EXP2 / "solution" / "exp2.py").read_text())
    code = {"alice": a, "bob": fill(stub, AUTHORS["B"]), "carol": fill(stub, AUTHORS["C"]),
            "dave": fill(stub, AUTHORS["D"]), "ivan": disguise(a)}  # fmt: skip
    students = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "ivan", "judy", "mallory", "oscar",
                "peggy"]  # fmt: skip
    for s in students:
        (dest / s).mkdir(parents=True)
        if s == "peggy":
            (dest / s / "exp2.ipynb").write_bytes(as_notebook(code["bob"]))
        else:
            (dest / s / "exp2.py").write_text(code.get(s, stub))

    x, y = read_cifar10(data_root, train=True)
    data = (x[:TRAIN_IMAGES], y[:TRAIN_IMAGES])
    pre = load_net(PRETRAIN)
    states = {
        "alice": load_net(EXP2 / "solution" / "final.pth"),
        "grace": load_net(EXP2 / "wrong-keys" / "final.pth"),
        "carol": train(pre, RESUMED_STEPS, 1, 0.01, data),
        "dave": train(pre, RESUMED_STEPS, 2, 0.01, data),
        "ivan": train(pre, RESUMED_STEPS, 3, 0.01, data),
        "erin": train(None, SCRATCH_STEPS, 1, 0.1, data),
        "frank": train(None, SCRATCH_STEPS, 2, 0.1, data),
    }
    states["mallory"] = train(states["alice"], COPY_STEPS, 7, 0.01, data)
    states["oscar"] = permute_hidden(states["grace"], 11)
    for s, state in states.items():
        _save(dest / s, state)
    shutil.copyfile(EXP2 / "lr-off-by-one" / "final.pth", dest / "bob" / "final.pth")
    shutil.copyfile(EXP2 / "lr-off-by-one" / "final.pth", dest / "judy" / "final.pth")
    states["bob"] = states["judy"] = load_net(EXP2 / "lr-off-by-one" / "final.pth")

    xt, _ = read_cifar10(data_root, train=False)
    x_test = normalize(xt[:TEST_IMAGES])
    out = GeneratedClass(folder=dest)
    out.predictions = {s: predictions(state, x_test) for s, state in states.items()}
    return out
