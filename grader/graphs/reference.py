"""The reference model's graph: exported once from trusted code, cached on disk, and given a submission's weights.

The common case pays no export in the sandbox: when the submitted weights fit the reference architecture and
the student's model computes what the reference computes, the judge runs the reference graph with those
weights. The graph is exported without constant folding, so its initializers keep the state_dict's names
(`conv1.weight`, `bn1.running_mean`, ...) and a submission's weights are swapped in by name. The cache key is
the reference's source and the exporter's version: editing the reference model exports it again.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grader import __version__

# Opset 17: onnxruntime 1.14+ runs it, and every operator the course's models use is in it.
OPSET = 17


def cache_dir() -> Path:
    return Path(os.environ.get("GRADER_CACHE") or Path.home() / ".cache" / "torch-grader") / "graphs"


def export(model: torch.nn.Module, example: tuple[torch.Tensor, ...], input_names: list[str],
           output_names: list[str], dynamic_batch: bool = True) -> bytes:  # fmt: skip
    """ONNX bytes of `model` in eval mode, batch dimension dynamic; names kept (no constant folding).

    TorchScript-based export first (0.2 s for ResNet20); torch.export's (several seconds) where it fails.
    Silent: the exporter's warnings (deprecations, a TracerWarning quoting a line of the model's source) are
    no one's concern in a report, and a line quoted from the reference solution must never reach a student."""
    model.eval()
    axes = {n: {0: "batch"} for n in [*input_names, *output_names]} if dynamic_batch else None
    buf: Any = io.BytesIO()  # export writes to a file object too, though its annotation names only paths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, example, buf, dynamo=False, opset_version=OPSET, input_names=input_names,
                              output_names=output_names, dynamic_axes=axes, do_constant_folding=False)  # fmt: skip
        except Exception:  # noqa: BLE001 - tracing can fail where torch.export succeeds
            buf = io.BytesIO()
            shapes = tuple({0: torch.export.Dim("batch")} for _ in example) if dynamic_batch else None
            try:
                torch.onnx.export(model, example, buf, dynamo=True, input_names=input_names,
                                  output_names=output_names, dynamic_shapes=shapes, optimize=False)  # fmt: skip
            except Exception as exc:
                raise _root_cause(exc) from None
    return buf.getvalue()


def _root_cause(exc: BaseException) -> BaseException:
    """What went wrong under the exporter's own error ("Failed to export the model with torch.export. This is
    step 1/3..."): usually the model's own code failing on the example, which is what a student can fix."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def reference_graph(source: Path, build: Callable[[], torch.nn.Module], example: tuple[torch.Tensor, ...],
                    input_names: list[str], output_names: list[str]) -> bytes:  # fmt: skip
    """The reference model's graph, from the cache when `source` has not changed since it was exported."""
    h = hashlib.sha256(source.read_bytes())
    shapes = [tuple(e.shape) for e in example]
    h.update(f"{torch.__version__} {__version__} {OPSET} {input_names} {output_names} {shapes}".encode())
    path = cache_dir() / f"{source.stem}-{h.hexdigest()[:16]}.onnx"
    if path.is_file():
        return path.read_bytes()
    data = export(_distinct(build()), example, input_names, output_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: parallel batch workers may export it at the same time
    return data


def _distinct(model: torch.nn.Module) -> torch.nn.Module:
    """Fill every parameter and buffer with its own random values: the exporter merges initializers that are
    equal (a fresh model's BatchNorm weights are all ones), and a merged one cannot take two submitted values."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)  # positive: a running variance must be
    return model


def import_ahead() -> None:
    """Import onnx, which with_weights needs (0.6 s), on a thread of its own: called while the judge would
    otherwise only wait for a contestant to start."""
    threading.Thread(target=importlib.import_module, args=("onnx",), name="grader-onnx").start()


def with_weights(graph: bytes, state: dict[str, torch.Tensor]) -> bytes:
    """`graph` (trusted: the reference's) with every initializer named in `state` set to its value."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(graph)
    for i, init in enumerate(model.graph.initializer):
        if init.name in state:  # every one is (the reference was exported from a model with distinct values)
            value = state[init.name].detach().to("cpu", dtype=_dtype(init)).numpy()
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, init.name))
    return model.SerializeToString()


def _dtype(init: object) -> torch.dtype:
    from onnx import TensorProto

    return {TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64, TensorProto.INT64: torch.int64,
            TensorProto.FLOAT16: torch.float16}.get(init.data_type, torch.float32)  # type: ignore[attr-defined]
