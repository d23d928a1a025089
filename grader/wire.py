"""Plain data across the trust line: JSON plus tensors in safetensors, never pickle.

A message is a JSON document in which each tensor is replaced by `{"__tensor__": key}`; the tensors
themselves travel as safetensors bytes in the same frame (grader.frames). Both sides use these functions,
so what the contestant can send the judge is limited to JSON values and numeric tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load, save

TENSOR_TAG = "__tensor__"


class WireError(Exception):
    """A value that is not plain data, or bytes that are not a valid message."""


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


# What may cross: real numbers, integers and booleans. The exotic dtypes (float8, complex, unsigned wider than
# 8 bits) no course sends, and many judge-side operations would raise on them.
DTYPES = {torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool}  # fmt: skip


def decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {TENSOR_TAG}:
            key = tree[TENSOR_TAG]
            if not isinstance(key, str) or key not in tensors:
                raise WireError(f"message names tensor {key!r} but carries no such tensor")
            if tensors[key].dtype not in DTYPES:
                raise WireError(f"tensor {key!r} has dtype {tensors[key].dtype}, which does not cross the trust line")
            return tensors[key]
        return {k: decode(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    return tree


def to_bytes(value: Any) -> tuple[Any, bytes]:
    """A JSON-able tree and the safetensors bytes of its tensors (empty when there are none)."""
    tree, tensors = encode(value)
    return tree, (save(tensors) if tensors else b"")


def from_bytes(tree: Any, blob: bytes) -> Any:
    """The inverse of `to_bytes`. Raises WireError for anything malformed (the sender may be hostile)."""
    try:
        tensors: dict[str, torch.Tensor] = load(blob) if blob else {}
        return decode(tree, tensors)
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed message is the sender's fault
        raise WireError(f"unreadable tensors or message ({type(exc).__name__}: {exc})") from None
