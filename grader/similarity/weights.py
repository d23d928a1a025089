"""Weights similarity: identical files, and weights near-identical once the class's shared start is removed.

Each submission's weights files are read only with grader.judge.weights.load_weights (which refuses pickled
objects and archives that lie about their sizes), flattened into one vector of learned parameters, and compared
with every other submission whose parameters have the same names and shapes.

The statistic, for submissions a and b and a checkpoint s that the class may all start from:

    ratio = ||a - b|| / min(||a - s||, ||b - s||)

how far apart the two ended, as a share of how far the nearer one travelled from s. Two students who resumed
from the same pretrain_model.pth and trained on their own end about as far from each other as each travelled
(SGD noise alone separates them): ratio 0.7 to 1.4 on exp2. A copy that was fine-tuned for a few steps ends a
small fraction of its travel away from its source: 0.1 to 0.25 after 50 steps. Flagged at 0.5 or less. The ratio
is taken for every shared start and for s = 0 (no start at all), and the largest counts: a pair is flagged only
if it is alike whichever start explains the rest. A pair whose weights equal a shared start (both handed in
pretrain_model.pth unchanged) has a ratio of infinity: nothing of their own to compare.

BatchNorm's running statistics are left out: they are not learned by gradient and follow the weights.
Keys are compared after removing any prefix all of a file's keys share (`net.`, `module.`, `backbone.`), so a
checkpoint dict, a bare state_dict and a DataParallel one line up.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader.files import UnsafeFile, read_regular
from grader.judge.weights import WeightsError, load_weights

# Flagged at or below: closer to each other than half of what the nearer one travelled. On exp2, students who
# resumed from pretrain_model.pth measure 0.7 (100 steps each) to 1.35 (5 epochs each); a copy fine-tuned for
# 50 steps 0.12 (batches of 128) to 0.24 (batches of 32).
RATIO_MAX = 0.5
SKIP = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm statistics: not learned


def flatten(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every floating-point tensor in a nested checkpoint (dicts and lists), by dotted path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not prefix.endswith(SKIP):
            out[prefix] = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


def strip_shared_prefix(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading key components that every key shares (`net.`, `module.`, `backbone.`)."""
    while tensors:
        heads = {k.split(".", 1)[0] for k in tensors}
        if len(heads) != 1 or any("." not in k for k in tensors):
            break
        tensors = {k.split(".", 1)[1]: v for k, v in tensors.items()}
    return tensors


@dataclass
class Weights:
    """One submission's learned parameters, flattened; the files' hashes for exact copies."""

    signature: tuple[tuple[str, tuple[int, ...]], ...]  # names and shapes, sorted: who can be compared
    vector: torch.Tensor  # float32, in signature order
    sha256: dict[str, str]  # file name -> hash of its bytes

    @property
    def size(self) -> int:
        return int(self.vector.numel())


def file_hash(path: Path, max_bytes: int) -> str:
    return hashlib.sha256(read_regular(path, max_bytes)).hexdigest()


def read_weights(folder: Path, names: list[str], max_bytes: dict[str, int]) -> tuple[Weights | None, dict[str, str],
                                                                                     list[str]]:  # fmt: skip
    """(the submission's weights or None, the hashes of the files that could be read, problems)."""
    problems: list[str] = []
    hashes: dict[str, str] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        path = folder / name
        if not (path.is_file() or path.is_symlink()):
            problems.append(f"no {name}")
            continue
        try:
            hashes[name] = file_hash(path, max_bytes.get(name, 1 << 30))
            flat = strip_shared_prefix(flatten(load_weights(path)))
        except (UnsafeFile, WeightsError) as exc:
            problems.append(str(exc).split(". ")[0])
            continue
        if not flat:
            problems.append(f"{name} holds no floating-point tensors")
            continue
        tensors.update({f"{name}:{k}": v for k, v in flat.items()})
    if not tensors or problems:
        return None, hashes, problems
    return vectorize(tensors, hashes), hashes, problems


def vectorize(tensors: dict[str, torch.Tensor], hashes: dict[str, str]) -> Weights:
    keys = sorted(tensors)
    signature = tuple((k, tuple(tensors[k].shape)) for k in keys)
    # numpy's concatenate: torch.cat of freshly loaded tensors measured 20 ms a file here, numpy's 1 ms
    vector = torch.from_numpy(np.concatenate([tensors[k].detach().reshape(-1).to(torch.float32).numpy()
                                              for k in keys]))  # fmt: skip
    return Weights(signature, vector, hashes)


def read_shared(paths: list[Path], names: list[str]) -> list[tuple[str, Weights]]:
    """The assignment's shared checkpoints, each flattened as if it were handed in as every weights file in turn
    (so a pretrain_model.pth lines up with a final.pth)."""
    out = []
    for path in paths:
        flat = strip_shared_prefix(flatten(load_weights(path)))
        sha = file_hash(path, 1 << 30)
        for name in names:
            out.append((path.name, vectorize({f"{name}:{k}": v for k, v in flat.items()}, {name: sha})))
    return out


@dataclass
class WeightsPair:
    ratio: float  # the statistic above; inf when a shared start explains everything
    distance: float  # ||a - b||
    travelled: float  # the nearer one's distance from the start that gave the ratio
    start: str  # that start: a shared checkpoint's file name, or "none"


def gram(vectors: torch.Tensor) -> torch.Tensor:
    """vectors @ vectors.T in float64, in column blocks (the float32 rows stay as they are). Distances come from
    it as |a|^2 + |b|^2 - 2 a.b, which float64 keeps accurate even for a copy 0.5 away from a vector of norm 30."""
    n, d = vectors.shape
    out = torch.zeros(n, n, dtype=torch.float64)
    step = max(1, (1 << 24) // max(n, 1))  # about 128 MiB of float64 per block
    for c in range(0, d, step):
        block = vectors[:, c : c + step].to(torch.float64)
        out += block @ block.T
    return out


def compare_group(members: list[Weights], starts: list[tuple[str, Weights]]) -> dict[tuple[int, int], WeightsPair]:
    """Every pair of `members` (same signature), against the starts of that signature and no start at all."""
    rows = torch.stack([m.vector for m in members] + [s.vector for _, s in starts])
    g = gram(rows)
    sq = g.diagonal()

    def dist(i: int, j: int) -> float:
        return math.sqrt(max(0.0, float(sq[i] + sq[j] - 2 * g[i, j])))

    n = len(members)
    out = {}
    for i in range(n):
        for j in range(i + 1, n):
            d = dist(i, j)
            best = WeightsPair(ratio=-1.0, distance=d, travelled=0.0, start="none")
            # Shared starts first: on a tie (a copy: 0 whatever the start) the evidence names the checkpoint.
            candidates = [(name, min(dist(i, n + k), dist(j, n + k))) for k, (name, _) in enumerate(starts)]
            candidates.append(("none", min(math.sqrt(float(sq[i])), math.sqrt(float(sq[j])))))
            for name, travelled in candidates:
                ratio = d / travelled if travelled > 0 else math.inf
                if ratio > best.ratio:
                    best = WeightsPair(ratio=ratio, distance=d, travelled=travelled, start=name)
            out[(i, j)] = best
    return out
