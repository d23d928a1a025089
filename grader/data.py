"""Dataset roots: where they come from, and reading them in the judge without trusting pickle.

Precedence for the root folder (torchvision layout, as `../shared/datasets/materialize.py` writes it):
    1. the CLI option --data-root
    2. the environment variable GRADER_DATA_ROOT
    3. `data_root` in assignment.toml (relative to the course root)
The root is mounted read-only into the sandbox; nothing is ever downloaded while grading.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

from grader.modules import load_module
from grader.spec import AssignmentSpec, Course, SpecError

if TYPE_CHECKING:  # the readers import torch when they read: a Ray slot checks dataset paths without it
    import torch

ENV_VAR = "GRADER_DATA_ROOT"


@dataclass(frozen=True)
class Dataset:
    """One dataset: the file under the root that shows it is there, how to read it, how to provision it.

    Built-in ones are defined below; a course declares its own in course.toml (`[datasets.<name>] reader =
    "datasets/<name>.py"`), a module with `LAYOUT` (that file's path under the root), `read(root, train)` and,
    optionally, `prepare(root)`. See docs/authoring.md, "Datasets"."""

    name: str
    layout: str
    read: Callable[..., Any]
    prepare: Callable[[Path], None] | None = None
    source: str = "built in"


class DataError(Exception):
    """A dataset root that is not set or does not hold what the assignment needs; says where it came from."""


class DataRoot(BaseModel):
    path: Path
    source: Literal["--data-root", "GRADER_DATA_ROOT", "assignment.toml"]


def resolve_data_root(spec: AssignmentSpec, cli: Path | None, course_root: Path | None = None) -> DataRoot:
    if cli is not None:
        root = DataRoot(path=cli, source="--data-root")
    elif env := os.environ.get(ENV_VAR):
        root = DataRoot(path=Path(env), source="GRADER_DATA_ROOT")
    elif spec.data_root:
        base = course_root or Path.cwd()
        root = DataRoot(path=(base / spec.data_root), source="assignment.toml")
    else:
        raise DataError(
            f"{spec.id} needs {', '.join(spec.datasets)} but no dataset root is set: pass --data-root DIR, "
            f"set {ENV_VAR}, or set data_root in assignment.toml (see `grader data prepare`)"
        )
    known = datasets(course_root)
    for name in spec.datasets:
        if name not in known:
            raise DataError(f"{spec.id} needs dataset {name!r}, which neither the tool nor course.toml defines "
                            f"(known: {', '.join(sorted(known))})")  # fmt: skip
        marker = root.path / known[name].layout
        if not marker.exists():
            raise DataError(
                f"dataset root {root.path} (from {root.source}) has no {known[name].layout}: "
                f"run `grader data prepare {name} --root {root.path}`"
            )
    return DataRoot(path=root.path.resolve(), source=root.source)


def datasets(course_root: Path | None = None) -> dict[str, Dataset]:
    """The built-in datasets, and the course's own (course.toml) where a course root is given."""
    known = dict(BUILTIN)
    if course_root is None:
        return known
    for name, decl in Course(root=course_root).config().datasets.items():
        path = course_root / decl.reader
        try:
            module = load_module(path, f"grader_dataset_{name.replace('-', '_')}")
        except Exception as exc:  # noqa: BLE001 - the course's own module: any failure is the author's to fix
            raise SpecError(f"course.toml datasets.{name}: the reader {path} does not import: "
                            f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        layout, read = getattr(module, "LAYOUT", None), getattr(module, "read", None)
        if not isinstance(layout, str) or not callable(read):
            raise SpecError(f"course.toml datasets.{name}: {path} must define LAYOUT (a path under the dataset "
                            "root) and read(root, train); see docs/authoring.md, Datasets")  # fmt: skip
        known[name] = Dataset(name, layout, read, getattr(module, "prepare", None), source=decl.reader)
    return known


def prepare(dataset: str, root: Path, course_root: Path | None = None) -> str:
    """Provision `dataset` into `root` where the network allows; otherwise raise DataError saying what to do."""
    known = datasets(course_root)
    if dataset not in known:
        raise DataError(f"unknown dataset {dataset!r}; choose from {', '.join(sorted(known))}")
    d = known[dataset]
    if (root / d.layout).exists():
        return f"{dataset}: already present under {root}"
    if d.prepare is None:
        raise DataError(f"{dataset} ({d.source}) has no prepare(): put its files under {root} ({d.layout} must exist)")
    root.mkdir(parents=True, exist_ok=True)
    try:
        d.prepare(root)
    except Exception as exc:  # noqa: BLE001 - any network failure gets the same advice
        raise DataError(
            f"could not download {dataset} ({type(exc).__name__}: {exc}).\n"
            f"Provision it by hand: put the files under {root} ({d.layout} must exist). With a copy of the "
            f"course's datasets folder, run\n    python ../shared/datasets/materialize.py {root} --only {dataset}\n"
            "Re-encoded CIFAR-10 copies fail torchvision's md5 check; the grader reads the batches itself, "
            "so that does not matter here."
        ) from None
    return f"{dataset}: prepared under {root}"


def _torchvision_download(cls_name: str) -> Callable[[Path], None]:
    def fetch(root: Path) -> None:
        import torchvision

        getattr(torchvision.datasets, cls_name)(str(root), train=True, download=True)

    return fetch


def _fetch_time_machine(root: Path) -> None:
    import urllib.request

    urllib.request.urlretrieve("https://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt", root / "timemachine.txt")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts, lists, numpy arrays) and refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a dataset file")


@functools.lru_cache(maxsize=4)
def read_cifar10(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 as uint8 images (N, 3, 32, 32) and int64 labels (N,). Read once per process (cached)."""
    import torch

    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = _NumpyOnly(f, encoding="latin1").load()
        xs.append(torch.as_tensor(np.asarray(batch["data"], dtype=np.uint8)).reshape(-1, 3, 32, 32))
        ys.append(torch.as_tensor(np.asarray(batch["labels"], dtype=np.int64)))
    return torch.cat(xs), torch.cat(ys)


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """One IDX file (the MNIST format): a big-endian header of magic and dims, then uint8 data."""
    raw = path.read_bytes()
    header = np.frombuffer(raw[: 4 * (1 + ndim)], dtype=">i4")
    if int(header[0]) != magic:
        raise DataError(f"{path} is not an IDX file of {ndim} dimension(s) (magic {int(header[0]):#x})")
    dims = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim))
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} holds {data.size} bytes of data for dimensions {dims}")
    return data.reshape(dims)


@functools.lru_cache(maxsize=4)
def read_fashion_mnist(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,), from FashionMNIST/raw. Cached."""
    import torch

    folder = root / "FashionMNIST" / "raw"
    prefix = "train" if train else "t10k"
    images = _read_idx(folder / f"{prefix}-images-idx3-ubyte", 0x803, 3)  # (N, 28, 28)
    labels = _read_idx(folder / f"{prefix}-labels-idx1-ubyte", 0x801, 1)  # (N,)
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))


@functools.lru_cache(maxsize=2)
def read_time_machine(root: Path) -> tuple[str, ...]:
    """The Time Machine with d2l's preprocessing (8.2): in every line, each run of non-letters becomes one
    space; then strip and lowercase. Blank lines are kept, as d2l keeps them. Cached."""
    text = (root / "timemachine.txt").read_text(encoding="utf-8")
    return tuple(re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in text.splitlines())


BUILTIN = {
    d.name: d
    for d in (
        Dataset("cifar10", "cifar-10-batches-py/test_batch", read_cifar10, _torchvision_download("CIFAR10")),
        Dataset("fashion-mnist", "FashionMNIST/raw/t10k-images-idx3-ubyte", read_fashion_mnist,
                _torchvision_download("FashionMNIST")),
        Dataset("timemachine", "timemachine.txt", read_time_machine, _fetch_time_machine),
    )
}  # fmt: skip
