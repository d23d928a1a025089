"""Plain data across the trust line: JSON plus tensors in safetensors, never pickle.

A message is a JSON document in which each tensor is replaced by `{"__tensor__": key}`; the tensors
themselves travel in a safetensors file beside it. Both sides use these functions, so what the
contestant can send the judge is limited to JSON values and numeric tensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

TENSOR_TAG = "__tensor__"


class WireError(Exception):
    """A message that is not plain data, or a file that is not a valid message."""


def encode(value: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split `value` into a JSON-able tree and a flat dict of tensors."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            key = f"t{len(tensors)}"
            # safetensors needs dense, contiguous, unshared CPU storage.
            tensors[key] = v.detach().to("cpu").contiguous().clone()
            return {TENSOR_TAG: key}
        if isinstance(v, dict):
            if TENSOR_TAG in v:
                raise WireError(f"dict keys may not include {TENSOR_TAG!r}")
            return {str(k): walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if hasattr(v, "item") and hasattr(v, "dtype"):  # numpy scalars
            return v.item()
        if hasattr(v, "__array__"):  # numpy arrays
            return walk(torch.as_tensor(v))
        raise WireError(f"cannot send a {type(v).__name__}: only JSON values and tensors cross the trust line")

    return walk(value), tensors


def decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {TENSOR_TAG}:
            key = tree[TENSOR_TAG]
            if key not in tensors:
                raise WireError(f"message names tensor {key!r} but carries no such tensor")
            return tensors[key]
        return {k: decode(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    return tree


def write_message(path: Path, value: Any) -> None:
    """Write `path` (JSON) and `path.with_suffix('.safetensors')`; the JSON lands last, atomically,
    so a reader that sees it also sees the tensors."""
    tree, tensors = encode(value)
    tensor_path = path.with_suffix(".safetensors")
    if tensors:
        tmp = tensor_path.with_name(tensor_path.name + ".tmp")
        save_file(tensors, str(tmp))
        os.chmod(tmp, 0o644)  # safetensors writes 0600; the other side may run as another uid (Docker sandbox)
        os.replace(tmp, tensor_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"value": tree, "has_tensors": bool(tensors)}), encoding="utf-8")
    os.replace(tmp, path)


def read_message(path: Path, max_bytes: int = 1 << 30) -> Any:
    tensor_path = path.with_suffix(".safetensors")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        tensors: dict[str, torch.Tensor] = {}
        if doc.get("has_tensors"):
            if tensor_path.stat().st_size > max_bytes:
                raise WireError(f"{tensor_path.name} is larger than {max_bytes} bytes")
            tensors = load_file(str(tensor_path))
        return decode(doc["value"], tensors)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed message is the sender's fault
        raise WireError(f"unreadable message {path.name}: {type(exc).__name__}: {exc}") from None
