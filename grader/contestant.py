"""The contestant: the only process that imports student code. It runs inside a sandbox.

    python -m grader.contestant (--fd N | --connect SOCKET) --submission DIR --probes FILE

It imports the assignment's probe module (trusted code, untrusted surroundings), then answers the judge's
requests on its channel (a socket; see grader.channel) until the judge closes it. Each request names a probe,
its keyword arguments and a seed; the answer is plain data (grader.wire) or a classified error. Nothing here
decides a grade: the worst student code can do is lie about its own outputs, which the judge then checks.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import resource
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from grader import cuda_on_cpu
from grader.modules import load_module

_PROBES: dict[str, Callable[..., Any]] = {}
_SUBMISSION: Path | None = None
_MODULES: dict[str, ModuleType] = {}
_IMPORT_FAILED: dict[str, Any] = {}  # module -> grader.loader.ImportProblem
_PLAN: dict[str, Any] = {"modules": [], "definitions_only": [], "cpu_seconds": 20.0, "wall_seconds": 60.0}


def probe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Register a function of the probe module as a probe the judge may call by name."""
    _PROBES[fn.__name__] = fn
    return fn


class StudentImportError(Exception):
    def __init__(self, kind: str, message: str, where: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.kind, self.message, self.where = kind, message, where


def module_path(submission: Path, module: str) -> Path:
    """`<module>.py`, or the notebook `<module>.ipynb` that stands in for it (the judge staged one of them)."""
    path = submission / f"{module}.py"
    notebook = path.with_suffix(".ipynb")
    return notebook if not path.is_file() and notebook.is_file() else path


def student(module: str) -> ModuleType:
    """The student's module `<module>.py` (or its notebook), as the contestant imported it at start-up."""
    if module in _MODULES:
        return _MODULES[module]
    if module not in _IMPORT_FAILED:  # not among the modules imported at start-up: import it now, once
        from grader.loader import ImportProblem, import_module

        assert _SUBMISSION is not None
        path = module_path(_SUBMISSION, module)
        if not path.is_file():
            raise StudentImportError("missing_file", f"{path.name} is not in the submission", [])
        try:
            _MODULES[module] = import_module(module, path, _PLAN["cpu_seconds"], _PLAN["wall_seconds"])
            return _MODULES[module]
        except ImportProblem as failed:
            _IMPORT_FAILED[module] = failed
    problem = _IMPORT_FAILED[module]
    kind = "syntax_error" if problem.kind == "syntax" else "import_error"
    raise StudentImportError(kind, problem.message, problem.where)


COPY_MAX_BYTES = 16 << 20  # a submitted file copied into the working folder; a bigger one is linked (read-only)


def _prepare_work_folder() -> None:
    """The working folder as the student's own folder, where relative paths look (`open("config.json")`,
    `torch.load("model.pth")`, torchvision's `root="./data"`): a writable copy of each submitted file (a read-only
    link where it is too big for the scratch space), a link to each submitted folder, and `data`, a link to the
    read-only datasets. Nothing there is replaced: a restarted contestant keeps what the code wrote."""
    assert _SUBMISSION is not None
    most = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    most = COPY_MAX_BYTES if most == resource.RLIM_INFINITY else min(COPY_MAX_BYTES, most // 2)
    for entry in sorted(_SUBMISSION.iterdir()):
        if os.path.lexists(entry.name):
            continue
        if entry.is_file() and not entry.is_symlink() and entry.stat().st_size <= most:
            Path(entry.name).write_bytes(entry.read_bytes())
        else:
            os.symlink(entry, entry.name)
    datasets = os.environ.get("GRADER_DATA_ROOT")
    if datasets and os.path.isdir(datasets) and not os.path.lexists("data"):
        os.symlink(datasets, "data")


def _import_all(sock: socket.socket, plan: dict[str, Any]) -> None:
    """Import every student module before serving, each reported to the judge as it goes.

    A module that fails its full import (past the budget, exits, no network or data, an exception) is reported
    with `restart`: this process may be in any state (threads, half-built globals), so the judge starts a fresh
    one that imports only that module's definitions."""
    from grader import frames
    from grader.loader import ImportProblem, import_definitions, import_module

    assert _SUBMISSION is not None
    # As if the student had run `python exp1.py`: argparse sees no options, not the contestant's own.
    sys.argv = [str(module_path(_SUBMISSION, plan["modules"][0]))] if plan["modules"] else ["student"]
    unloadable = dict(plan.get("unloadable", []))
    _prepare_work_folder()
    if plan.get("cuda_on_cpu") and cuda_on_cpu.available():  # an earlier import or call asked for CUDA
        cuda_on_cpu.install()
    # The student's own helper modules first, each treated as a declared one (its budget, its definitions when
    # the whole fails, its syntax errors stepped past), the last found first: a helper's own helpers before it.
    for name in [*reversed(plan.get("helpers", ())), *plan["modules"]]:
        path = module_path(_SUBMISSION, name)
        if name in unloadable:
            _IMPORT_FAILED[name] = ImportProblem("stopped", unloadable[name])
            continue
        if not path.is_file():
            continue
        sock.sendall(frames.pack({"importing": name}))
        started = time.perf_counter()
        report: dict[str, Any] = {"module": name}
        try:
            if name in plan["definitions_only"]:
                _MODULES[name], left = import_definitions(name, path, plan["cpu_seconds"])
                report |= {"mode": "definitions", "left_out": [str(x) for x in left]}
            else:
                _MODULES[name] = import_module(name, path, plan["cpu_seconds"], plan["wall_seconds"])
                report["mode"] = "full"
        except ImportProblem as problem:
            _IMPORT_FAILED[name] = problem
            report |= {"mode": "failed", "kind": problem.kind, "message": problem.message, "where": problem.where}
            # its definitions, in a fresh process; one that asked for CUDA where there is none: all of it, in a
            # fresh process that maps CUDA to the CPU (the judge decides which)
            retry = problem.kind != "syntax" or problem.recoverable
            report["restart"] = retry and name not in plan["definitions_only"]
        report["seconds"] = round(time.perf_counter() - started, 3)
        sys.stdout.flush()
        sock.sendall(frames.pack({"imported": report}))
        if report.get("restart"):
            os._exit(0)


_ANSI = None  # compiled on first use: most contestants never describe an exception


def _describe(exc: BaseException) -> str:
    """`Type: message`, without the terminal colour codes some libraries put in (torch.onnx's exporter does)."""
    global _ANSI
    import re

    _ANSI = _ANSI or re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
    text = _ANSI.sub("", str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _student_frames(exc: BaseException) -> list[dict[str, Any]]:
    """The traceback frames that lie in the submission, innermost last."""
    from grader.loader import position

    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        if _SUBMISSION is not None and Path(fs.filename).parent == _SUBMISSION:
            frames.append({**position(Path(fs.filename), fs.lineno or 0), "function": fs.name})
    return frames


def _where(frame: dict[str, Any]) -> str:
    """`exp1.py line 24` or `exp1.ipynb cell 7, line 3`."""
    if not frame.get("cell"):
        return f"{frame['file']} line {frame['line']}"
    from grader.loader import quote

    assert _SUBMISSION is not None
    text = quote(_SUBMISSION / frame["file"], frame["cell"], frame["line"])
    return f"{frame['file']} cell {frame['cell']}, line {frame['line']}" + (f": `{text}`" if text else "")


def classify(exc: BaseException) -> dict[str, Any]:
    """Turn an exception from student code into an error the judge can explain."""
    if isinstance(exc, StudentImportError):
        return {"kind": exc.kind, "message": exc.message, "where": exc.where}
    where = _student_frames(exc)
    at = f" ({_where(where[-1])}, in {where[-1]['function']})" if where else ""
    if isinstance(exc, NotImplementedError):
        kind, msg = "not_implemented", f"not implemented yet: raised {_describe(exc)}{at}"
    elif isinstance(exc, SystemExit):
        kind, msg = "system_exit", f"called sys.exit({exc.code!r}) while the check ran{at}"
    elif isinstance(exc, MemoryError):
        kind, msg = "memory", f"ran out of memory (MemoryError){at}"
    elif isinstance(exc, OSError) and exc.errno == errno.EAGAIN:
        kind, msg = "processes", f"hit the process limit ({_describe(exc)}){at}"
    elif isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] >> 20
        kind, msg = "file_size", f"tried to write a file over the {limit} MiB limit{at}"
    elif isinstance(exc, AttributeError) and (gone := _left_out(exc)):
        kind, msg = "exception", f"{exc.name} is not there: {gone}"
    elif isinstance(exc, NameError) and (gone := _left_out(exc, exact=True)):
        kind, msg = "exception", f"raised {_describe(exc)}{at}: {gone}"
    elif cuda_on_cpu.asks_for_cuda(exc):
        kind, msg = "no_cuda", (f"used CUDA, which this grading machine does not have ({cuda_on_cpu.said(exc)}){at}: "
                                f"{cuda_on_cpu.CHOOSE_DEVICE}")  # fmt: skip
    else:
        kind, msg = "exception", f"raised {_describe(exc)}{at}"
    return {"kind": kind, "message": msg, "where": where}


def _left_out(exc: AttributeError | NameError, exact: bool = False) -> str | None:
    """Why the name a check (or student code, `exact`) looked for is missing, when the loader left it out
    (grader.loader)."""
    from grader.loader import LEFT_OUT_NAMES

    return LEFT_OUT_NAMES.get(getattr(exc, "name", None) or "") or (None if exact else LEFT_OUT_NAMES.get("*"))


def uncompiled(model: Any) -> Any:
    """The module that torch.compile wrapped, else `model`: a student's build_model() may return
    torch.compile(net), whose state_dict keys carry the wrapper's `_orig_mod.`; the weights the judge sends
    load into, and are measured in, the eager module (compiling changes no result)."""
    inner = getattr(model, "_orig_mod", None)
    return inner if type(model).__name__ == "OptimizedModule" and inner is not None else model


def number(value: Any) -> float | None:
    """A plain number out of what student code returned (a loss, a learning rate), for a probe to send: a float,
    an int, or a one-element tensor or array, read detached so that a loss still holding its graph puts no
    autograd warning into the student's output; None for anything else (None, a string, many values)."""
    try:
        return float(value.detach() if hasattr(value, "detach") else value)
    except (TypeError, ValueError, RuntimeError):
        return None


def export_graph(model: Any, example: tuple[Any, ...], input_names: list[str], output_names: list[str]) -> Any:
    """The student's model as ONNX bytes (a uint8 tensor) for the judge to check and run: the judge measures
    the model the student trained itself, and never numbers the student's code returns."""
    import torch

    from grader.graphs.reference import export

    data = export(model, example, input_names, output_names)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def deterministic(torch: Any) -> None:
    """torch.use_deterministic_algorithms(True, warn_only=True) without importing inductor's config for it (3 s
    of dynamo and sympy): inductor's own switch is TORCHINDUCTOR_DETERMINISTIC=1 in the contestant's
    environment, read if student code ever compiles."""
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_probes(path: Path) -> None:
    load_module(path, "grader_probes")


def _exit_when_judge_goes(sock: socket.socket) -> None:
    """Exit as soon as the judge's end closes (the judge died): a container must not outlive its grader."""
    watcher = select.poll()
    watcher.register(sock.fileno(), select.POLLRDHUP)
    while True:
        for _, events in watcher.poll():
            if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                os._exit(0)


def _cast(value: Any, src: Any, dst: Any) -> Any:
    """`value` with every tensor of dtype `src` in it cast to `dst` (dicts, lists and tuples followed)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(dst) if value.dtype == src else value
    if isinstance(value, dict):
        return {k: _cast(v, src, dst) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, src, dst) for v in value)
    return value


def _answer(request: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """Run the requested probe. Student code that asks for CUDA where there is none is run again, from the same
    arguments and seed, with CUDA mapped to the CPU (grader.cuda_on_cpu), and the answer says where it asked."""
    try:
        return _run_probe(request, blob)
    except BaseException as exc:  # noqa: BLE001 - everything becomes data for the judge
        if not (cuda_on_cpu.asks_for_cuda(exc) and cuda_on_cpu.available() and not cuda_on_cpu.installed()):
            return {"ok": False, "error": classify(exc)}
        asked = {"kind": "no_cuda", "message": cuda_on_cpu.said(exc), "where": _student_frames(exc)}
    cuda_on_cpu.install()
    try:
        return {**_run_probe(request, blob), "cuda_on_cpu": asked}
    except BaseException as exc:  # noqa: BLE001
        return {"ok": False, "error": classify(exc), "cuda_on_cpu": asked}


def _run_probe(request: dict[str, Any], blob: bytes) -> dict[str, Any]:
    """The probe's answer, its arguments decoded afresh and every RNG seeded; student code's exceptions escape."""
    import torch

    from grader import wire

    args = wire.from_bytes(request.get("args", {}), blob)
    fn = _PROBES.get(request["probe"])
    if fn is None:
        raise LookupError(f"the probe module has no probe {request['probe']!r}")
    seed_everything(int(request.get("seed", 0)))
    # Student code may set torch's default dtype at import (set_default_dtype(torch.float64)): its models,
    # and the probes' own, are then built in it. The judge's float32 tensors are handed over in it, and what
    # comes back in it is returned as float32, as from a run that never changed it.
    default = torch.get_default_dtype()
    if default == torch.float32:
        return {"ok": True, "value": fn(**args)}
    return {"ok": True, "value": _cast(fn(**_cast(args, torch.float32, default)), default, torch.float32)}


def serve(sock: socket.socket, submission: Path, probes: Path, plan: dict[str, Any]) -> None:
    """Import the student's modules, then answer the judge's requests on `sock` until the judge closes it."""
    global _SUBMISSION
    import torch

    from grader import deferred_dynamo, frames, loggers, wire
    from grader.loader import AllowedImports

    deferred_dynamo.install()  # in a fresh contestant; a warm one's preload did
    _SUBMISSION = submission.resolve()
    sys.path.insert(0, str(_SUBMISSION))
    torch.set_num_threads(int(os.environ.get("GRADER_THREADS", "1")))
    deterministic(torch)
    try:
        _load_probes(probes)
    except BaseException:  # noqa: BLE001 - the course's own code: the judge reports it to the instructor
        sock.sendall(frames.pack({"probes_error": traceback.format_exc(limit=-8)[-6000:]}))
        os._exit(1)
    if plan.get("packages") is not None:
        own = set(plan["modules"]) | set(plan.get("helpers", ()))
        sys.meta_path.insert(0, AllowedImports(set(plan["packages"]), _SUBMISSION, lambda: own))
    loggers.install()  # ahead of the check above: a logger's import is answered, never refused
    seed_everything(0)  # what student code draws at import repeats, warm or fresh
    _import_all(sock, plan)
    server = os.getpid()
    sock.sendall(frames.pack({"ready": server}))
    threading.Thread(target=_exit_when_judge_goes, args=(sock,), daemon=True).start()
    while True:
        try:
            request, blob = frames.read_blocking(sock)
        except EOFError:
            return
        started = time.perf_counter()
        answer = _answer(request, blob)
        if os.getpid() != server:
            # A child that student code forked came back out of the probe: it must not answer or serve.
            os._exit(0)
        answer["id"] = request.get("id")
        answer["duration_s"] = time.perf_counter() - started
        sys.stdout.flush()
        try:
            tree, out = wire.to_bytes(answer)
        except wire.WireError as exc:
            tree, out = {"id": answer["id"], "ok": False, "error": {"kind": "bad_output", "message": str(exc)}}, b""
        sock.sendall(frames.pack(tree, out))


def preload(dynamo: bool) -> None:
    """Import ahead what a contestant needs before and around student code: a warm template or a pooled container
    pays for it before any submission is known. torch._dynamo (about 870 modules, 1.3 s on 2 cores), which
    every `optimizer.step()` imports, and torchvision's import, and torch.compile: imported here for a template
    that will fork many contestants (`dynamo`), and otherwise a stand-in until something needs more of it than
    eager training does (grader.deferred_dynamo), so that a one-shot grade's template is ready 0.4 s sooner."""
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import torch.onnx  # noqa: F401 - export_graph

    import grader.loader  # noqa: F401
    from grader import deferred_dynamo

    if dynamo:
        import torch._dynamo  # noqa: F401
    else:
        deferred_dynamo.install()


def _await_job(sock: socket.socket) -> dict[str, Any]:
    """Pay the imports now, say so, and wait for the submission's load plan: the judge copies the submission
    into our read-only mount before it sends the job, so no student code existed here until now."""
    import torch

    from grader import frames

    preload(dynamo=True)  # a pooled container: started ahead, so the wait costs no one
    deterministic(torch)
    sock.sendall(frames.pack({"waiting": os.getpid()}))
    try:
        doc, _ = frames.read_blocking(sock)
    except EOFError:
        os._exit(0)  # the judge let this container go unused
    return dict(doc.get("job", {}).get("loading", {}))


def main() -> None:
    ap = argparse.ArgumentParser(description="grader contestant (runs inside a sandbox)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="an inherited socket connected to the judge (local sandbox)")
    where.add_argument("--connect", type=Path, help="the judge's listening socket (Docker sandbox)")
    ap.add_argument("--submission", type=Path, required=True)
    ap.add_argument("--probes", type=Path, required=True)
    ap.add_argument("--loading", type=json.loads, default={}, help="grader.sandbox.base.LoadPlan as JSON")
    ap.add_argument("--await-job", action="store_true",
                    help="started ahead (a pooled container): import torch, then wait for the judge's job frame")
    args = ap.parse_args()
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(args.connect))
    _PLAN.update(args.loading)
    if args.await_job:
        _PLAN.update(_await_job(sock))
    serve(sock, args.submission, args.probes, _PLAN)


if __name__ == "__main__":
    # Probe modules do `from grader.contestant import probe, student`; make that the running module.
    sys.modules["grader.contestant"] = sys.modules["__main__"]
    main()
