"""The graph runner: a separate, resource-limited process that parses, validates and runs ONNX graphs.

    python -I -m grader.graphs.runner FD          (started by GraphRunner; FD is its end of a socket pair)

Why a process of its own: the graph bytes come from student code, and parsing a protobuf is C++. The runner
has a memory limit, no core dumps, no network (its own network namespace where the kernel allows), an empty
working folder and no_new_privs, and dies with the judge; if a graph crashes or hangs it, the judge sees a
refused graph, starts a fresh runner for the next one, and nothing else is affected. It keeps prepared
sessions and the judge's test data (sent once, by key) between requests, so a batch pays for each once.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from grader import frames
from grader.graphs.policy import GraphPolicy, GraphRefused

MIB = 1 << 20
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
REQUEST_TIMEOUT_S = 600.0  # one request: preparing a graph, or running it over a test set
SESSIONS = 4  # prepared graphs kept (a batch worker measures one submission after another)


def _pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()}) if arrays else b""


def _unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    return dict(load(blob)) if blob else {}


# ---- inside the runner process -----------------------------------------------------------------------------


def _confine(memory_mb: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * MIB, memory_mb * MIB))
    flags = CLONE_NEWNET | (0 if os.geteuid() == 0 else CLONE_NEWUSER)
    return "own network namespace" if libc.unshare(flags) == 0 else "host network (unshare refused)"


class _Runner:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.sessions: OrderedDict[str, Any] = OrderedDict()
        self.data: dict[str, np.ndarray] = {}

    def handle(self, req: dict[str, Any], blob: bytes) -> tuple[dict[str, Any], bytes]:
        op = req["op"]
        if op == "prepare":
            return self.prepare(blob, GraphPolicy.model_validate(req["policy"])), b""
        if op == "put":
            self.data.update(_unpack_arrays(blob))
            return {"ok": True}, b""
        session = self.sessions.get(req["graph"])
        if session is None:
            raise GraphRefused("the graph is not prepared (the runner restarted?)")
        if op == "classify":
            x = self.data[req["data"]]
            name = session.get_inputs()[0].name
            batch = int(req["batch"])
            logits = np.concatenate([session.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])
            return {"ok": True}, _pack_arrays({"logits": logits})
        if op == "run":
            outputs = session.run(None, _unpack_arrays(blob))
            return {"ok": True}, _pack_arrays({str(i): o for i, o in enumerate(outputs)})
        raise ValueError(f"unknown request {op!r}")

    def prepare(self, data: bytes, policy: GraphPolicy) -> dict[str, Any]:
        import onnxruntime as ort

        from grader.graphs.inspect import inspect

        key = hashlib.sha256(data).hexdigest()
        info = inspect(data, policy)
        if key not in self.sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self.sessions[key] = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own refusal of a graph that passed inspection
                raise GraphRefused(f"onnxruntime cannot run the graph: {str(exc).splitlines()[0][:300]}") from None
            while len(self.sessions) > SESSIONS:
                self.sessions.popitem(last=False)
        self.sessions.move_to_end(key)
        return {"ok": True, "key": key, **info}


def serve(fd: int, threads: int, memory_mb: int) -> None:
    network = _confine(memory_mb)
    sock = socket.socket(fileno=fd)
    # Ready means warm: the judge starts us ahead, so these imports (0.6 s) overlap its other work.
    import onnx  # noqa: F401 - inspect's
    import onnxruntime  # noqa: F401

    sock.sendall(frames.pack({"ready": os.getpid(), "network": network}))
    runner = _Runner(threads)
    while True:
        try:
            req, blob = frames.read_blocking(sock)
        except EOFError:
            return
        try:
            reply, out = runner.handle(req, blob)
        except GraphRefused as exc:
            reply, out = {"ok": False, "refused": str(exc)}, b""
        except MemoryError:
            reply, out = {"ok": False, "refused": f"running the graph needed more than {memory_mb} MiB"}, b""
        except Exception as exc:  # noqa: BLE001 - e.g. onnxruntime failing on an input: the graph's problem
            reply, out = {"ok": False, "refused": f"the graph failed to run: {type(exc).__name__}: {exc}"[:600]}, b""
        sock.sendall(frames.pack(reply, out))


# ---- the judge's side ----------------------------------------------------------------------------------------


class GraphRunner:
    """A runner process, started on first use and again after it dies (a graph that crashed it is refused)."""

    def __init__(self, threads: int | None = None, memory_mb: int = 8192) -> None:
        import torch

        self.threads = threads or max(1, torch.get_num_threads())
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Any = None
        self._put: set[str] = set()
        self._ready = False
        self._lock = threading.Lock()

    def start_ahead(self) -> None:
        """Start the process now without waiting for it (onnxruntime's import overlaps the judge's other work);
        the first request waits for it to be ready."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()

    def _spawn(self) -> None:
        from grader.channel import Channel

        ours, theirs = socket.socketpair()
        self._workdir = tempfile.mkdtemp(prefix="grader-graphs-")
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "grader.graphs.runner", str(theirs.fileno()), str(self.threads),
             str(self.memory_mb)], pass_fds=(theirs.fileno(),), cwd=self._workdir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # onnxruntime leaves files in TMPDIR (a `.ses` file): keep them in the folder that close() removes
            env={**os.environ, "TMPDIR": self._workdir},
        )  # fmt: skip
        theirs.close()
        self._channel = Channel(ours, 4 << 30)
        self._put = set()
        self._ready = False

    def _alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise ChildProcessError(f"exit status {self._proc.returncode}")

    def _request_raw(self, req: dict[str, Any], blob: bytes, expect: str = "ok", timeout: float = REQUEST_TIMEOUT_S
                     ) -> tuple[dict[str, Any], bytes]:  # fmt: skip
        from grader.channel import ChannelClosed, ChannelTimeout

        deadline = time.monotonic() + timeout
        try:
            if req:
                self._channel.send(req, blob, deadline, self._alive)
            reply, out = self._channel.recv(deadline, self._alive)
        except (ChannelClosed, ChannelTimeout, ChildProcessError, frames.FrameError) as exc:
            self.close()
            why = "took too long" if isinstance(exc, ChannelTimeout) else f"ended it ({exc})"
            raise GraphRefused(f"running the model's graph {why}") from None
        if expect == "ready":
            return reply, out
        if not reply.get("ok"):
            raise GraphRefused(str(reply.get("refused", "the graph was refused")))
        return reply, out

    def _request(self, req: dict[str, Any], blob: bytes = b"") -> tuple[dict[str, Any], bytes]:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            if not self._ready:
                self._request_raw({}, b"", expect="ready", timeout=120)
                self._ready = True
            return self._request_raw(req, blob)

    def prepare(self, graph: bytes, policy: GraphPolicy) -> dict[str, Any]:
        """Validate `graph` against `policy` and prepare a session; the summary, with `key` for later calls."""
        return self._request({"op": "prepare", "policy": policy.model_dump()}, graph)[0]

    def classify(self, graph: bytes, policy: GraphPolicy, data_key: str, data: np.ndarray, batch: int) -> np.ndarray:
        """The graph's outputs for every row of `data` (sent to the runner once per `data_key`), in batches."""
        info = self.prepare(graph, policy)
        if data_key not in self._put:
            self._request({"op": "put"}, _pack_arrays({data_key: data}))
            self._put.add(data_key)
        _, out = self._request({"op": "classify", "graph": info["key"], "data": data_key, "batch": batch})
        return _unpack_arrays(out)["logits"]

    def run(self, key: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One run of a prepared graph (`key` from prepare)."""
        _, out = self._request({"op": "run", "graph": key}, _pack_arrays(feeds))
        arrays = _unpack_arrays(out)
        return [arrays[str(i)] for i in range(len(arrays))]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
            shutil.rmtree(self._workdir, ignore_errors=True)


_RUNNER: GraphRunner | None = None


def close_runner() -> None:
    """Stop this process's runner, if it started one (its process and folder go with it)."""
    global _RUNNER
    if _RUNNER is not None:
        _RUNNER.close()
        _RUNNER = None


def runner() -> GraphRunner:
    """This judge process's graph runner (one per process: a batch worker keeps it across submissions)."""
    global _RUNNER
    if _RUNNER is None:
        _RUNNER = GraphRunner()
        atexit.register(close_runner)  # a one-shot `grader check` leaves neither the process nor its folder
    return _RUNNER


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
