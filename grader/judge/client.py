"""The judge's side of the mailbox: ask the contestant to run a probe, and explain whatever goes wrong."""

from __future__ import annotations

import json
import time
from typing import Any

from grader import wire
from grader.sandbox.base import ContestantJob, ExitInfo, Sandbox, SandboxError, SandboxProcess

POLL_S = 0.005
# Starting Python and importing torch inside the sandbox; not charged to any check's timeout.
STARTUP_TIMEOUT_S = 180.0


class ContestantError(AssertionError):
    """Student code failed, hung or died while a check ran. The message is meant for the student."""

    def __init__(self, message: str, kind: str = "exception", where: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.where = message, kind, where or []


class ContestantClient:
    """Starts contestant processes on demand and runs probes in them, one request at a time.

    A process that hangs, crashes or exits is killed and forgotten; the next call starts a fresh one,
    so one bad probe costs only the check that asked for it.
    """

    def __init__(self, sandbox: Sandbox, job: ContestantJob) -> None:
        self.sandbox, self.job = sandbox, job
        self.proc: SandboxProcess | None = None
        self.deadline: float | None = None  # set by the judge for the check that is running
        self.budget_s: float | None = None
        self.isolation: dict[str, str] = {}
        self.starts = 0
        self.calls: list[dict[str, Any]] = []
        self._logs: list[str] = []  # output of processes already discarded
        self._n = 0

    def _start(self) -> SandboxProcess:
        # Recorded at once: an interrupt (batch Ctrl-C) while the contestant boots must still reach close().
        proc = self.proc = self.sandbox.start(self.job)
        self.starts += 1
        self._n = 0
        limit = time.monotonic() + STARTUP_TIMEOUT_S
        while not (proc.exchange / "ready").exists():
            exit_info = proc.poll()
            if exit_info is not None:
                out = proc.output()
                proc.close()
                self.proc = None
                raise SandboxError(f"the contestant process failed to start ({exit_info.detail}):\n{out[-2000:]}")
            if time.monotonic() > limit:
                proc.close()
                self.proc = None
                raise SandboxError(f"the contestant process did not start within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
        try:
            self.isolation = json.loads((proc.exchange / "isolation.json").read_text())
        except (OSError, ValueError):
            self.isolation = {}
        return proc

    def call(self, probe: str, *, seed: int = 0, **args: Any) -> Any:
        """Run `probe(**args)` in the contestant with every RNG seeded by `seed`; return its value."""
        if self.proc is None:
            t0 = time.monotonic()
            self.proc = self._start()
            if self.deadline is not None:  # starting Python and torch is not the student's time
                self.deadline += time.monotonic() - t0
        proc = self.proc
        self._n += 1
        wire.write_message(proc.exchange / f"req-{self._n:04d}.json", {"probe": probe, "args": args, "seed": seed})
        res_path = proc.exchange / f"res-{self._n:04d}.json"
        started = time.monotonic()
        while not res_path.exists():
            exit_info = proc.poll()
            if exit_info is not None:
                self._discard()
                raise ContestantError(self._died(probe, exit_info, proc.output()), kind=exit_info.reason)
            if self.deadline is not None and time.monotonic() > self.deadline:
                proc.kill("timeout", "")
                self._discard()
                raise ContestantError(
                    f"timed out after {self.budget_s:g} s: `{probe}` did not finish "
                    "(an infinite loop, or far more work than the check needs?)",
                    kind="timeout",
                )
            time.sleep(POLL_S)
        try:
            answer = wire.read_message(res_path)
        except wire.WireError as exc:
            raise ContestantError(f"the contestant sent an unreadable answer: {exc}", kind="bad_output") from None
        self.calls.append({"probe": probe, "seconds": round(time.monotonic() - started, 4)})
        if not isinstance(answer, dict) or "ok" not in answer:
            raise ContestantError("the contestant sent an answer of the wrong shape", kind="bad_output")
        if not answer["ok"]:
            err = answer.get("error") or {}
            if err.get("kind") in ("memory", "processes"):
                # MemoryError or EAGAIN from fork: the process is likely in a bad state; start afresh next time.
                self._discard()
            raise ContestantError(
                str(err.get("message", "failed")), str(err.get("kind", "exception")), err.get("where")
            )
        return answer.get("value")

    def _died(self, probe: str, info: ExitInfo, output: str) -> str:
        if info.reason == "exited":
            msg = f"the process running your code ended during `{probe}` ({info.detail}): "
            msg += "does your code call os._exit() or crash the interpreter?"
        else:
            msg = f"`{probe}` was stopped: {info.detail}"
        tail = output.strip().splitlines()[-5:]
        if tail:
            msg += "\nlast output:\n" + "\n".join(tail)
        return msg

    def _discard(self) -> None:
        if self.proc is not None:
            self._logs.append(self.proc.output())
            self.proc.close()
            self.proc = None

    def output(self) -> str:
        """Everything the student's code printed, across all processes, each capped."""
        parts = [*self._logs, self.proc.output() if self.proc is not None else ""]
        return "".join(p for p in parts if p)

    def close(self) -> None:
        self._discard()
