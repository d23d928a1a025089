"""CUDA mapped to the CPU, in a contestant on a grading machine without a GPU (contestant side).

Students train on the lab's GPU and often write `model.cuda()` or `device = torch.device("cuda")` without a
fallback. On a grading machine with a GPU that code runs; without one, every check that reaches it would fail. A
grade must not depend on which machine graded it, so once student code asks for CUDA here, the contestant puts a
torch function mode in place that runs every CUDA request on the CPU (`.cuda()`, `.to("cuda")`, `device="cuda"`,
`torch.load` of a file saved on a GPU), and the judge says so once, at no cost. It is never installed where CUDA
works, nor before student code has asked for it.
"""

from __future__ import annotations

from typing import Any

# What torch says when code asks for CUDA on a machine without it (no driver, a CPU build, no device visible).
NO_CUDA = ("Found no NVIDIA driver", "Torch not compiled with CUDA enabled", "No CUDA GPUs are available",
           "no CUDA-capable device", "CUDA driver initialization failed",
           "Attempting to deserialize object on a CUDA device")  # fmt: skip

CHOOSE_DEVICE = ("choose the device with device = 'cuda' if torch.cuda.is_available() else 'cpu', and move models "
                 "and tensors with .to(device)")
_installed: list[Any] = []


def asks_for_cuda(exc: BaseException) -> bool:
    """Whether `exc` is torch refusing a CUDA request on a machine without CUDA."""
    return any(sign in str(exc) for sign in NO_CUDA)


def said(exc: BaseException) -> str:
    """`RuntimeError: Found no NVIDIA driver on your system`: torch's first sentence, not its advice."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0].split('. ')[0].rstrip('.')[:120]}"


def _cpu(value: Any) -> Any:
    import torch

    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    if isinstance(value, str) and (value == "cuda" or value.startswith("cuda:")):
        return "cpu"
    return value


def available() -> bool:
    """Whether mapping can apply: CUDA is missing here (a GPU machine runs CUDA code as it is)."""
    import torch

    return not torch.cuda.is_available()


def installed() -> bool:
    return bool(_installed)


def install() -> None:
    """From now on, in this process (its main thread), run CUDA requests on the CPU."""
    if _installed:
        return
    import torch
    from torch.overrides import TorchFunctionMode

    class CudaOnCpu(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if getattr(func, "__name__", "") == "cuda":  # Tensor.cuda (Module.cuda calls it per tensor)
                return args[0].cpu()
            return func(*(_cpu(a) for a in args), **{k: _cpu(v) for k, v in kwargs.items()})

    mode = CudaOnCpu()
    mode.__enter__()  # for the rest of the process: the mode stack is per thread, and the server has one
    load: Any = torch.load

    def load_on_cpu(*args: Any, map_location: Any = None, **kwargs: Any) -> Any:
        # a file saved from the GPU restores its tensors there unless told otherwise
        return load(*args, map_location=_cpu(map_location) if map_location is not None else "cpu", **kwargs)

    torch.load = load_on_cpu
    # What scripts call around training, for timing or a print, answered as for one device that is the CPU;
    # what has no CPU meaning (get_device_properties, events, streams) still fails
    torch.cuda.synchronize = lambda device=None: None
    torch.cuda.set_device = lambda device: None
    torch.cuda.current_device = lambda: 0
    torch.cuda.get_device_name = lambda device=None: "cpu (no GPU on the grading machine)"
    torch.cuda.reset_peak_memory_stats = lambda device=None: None
    _installed.append(mode)
