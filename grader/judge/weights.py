"""Loading submitted `.pth` files safely: only in the judge, only with `torch.load(weights_only=True)`."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

# A .pth is a zip archive (torch >= 1.6) or a legacy pickle stream that starts with a protocol opcode.
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80"
MAX_UNPACKED_BYTES = 4 << 30  # a zip bomb is refused before anything is unpacked


class WeightsError(AssertionError):
    """A weights file the judge will not use. The message says why and what to submit instead."""


def load_weights(path: Path, max_unpacked: int = MAX_UNPACKED_BYTES) -> Any:
    """Return the object saved in `path`, refusing anything but tensors and plain containers."""
    name = path.name
    if not path.is_file():
        raise WeightsError(f"{name} is missing: train your model, save it with torch.save, and submit {name}")
    with path.open("rb") as f:
        head = f.read(4)
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as zf:
                unpacked = sum(i.file_size for i in zf.infolist())
        except zipfile.BadZipFile as exc:
            raise WeightsError(f"{name} is a damaged archive ({exc}): save it again with torch.save") from None
        if unpacked > max_unpacked:
            raise WeightsError(f"{name} would unpack to {unpacked >> 20} MiB, over the {max_unpacked >> 20} MiB limit")
    elif not head.startswith(LEGACY_MAGIC):
        raise WeightsError(
            f"{name} is not a PyTorch weights file (it starts with {head!r}): save it with "
            "torch.save(model.state_dict(), ...)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc)) or re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"{name} holds pickled Python objects{what} that the grader will not unpickle, because unpickling "
            "can run code. Save only tensors: torch.save(model.state_dict(), ...) instead of the whole model"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure is a malformed file
        raise WeightsError(f"{name} could not be read as PyTorch weights ({type(exc).__name__}: {exc})") from None


def state_dict_from(obj: Any, name: str, key: str | None = None) -> dict[str, torch.Tensor]:
    """Pick a state_dict out of a loaded file: `obj[key]` if key is given, else obj itself."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
            raise WeightsError(f"{name} has no {key!r} entry (found {have})")
        obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{name}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")
    return dict(obj)
