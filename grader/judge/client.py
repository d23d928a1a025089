"""The judge's side of the channel: ask the contestant to run a probe, and explain whatever goes wrong.

Everything that arrives from the contestant is hostile data: frames are read under the check's deadline and
a size cap (grader.channel), then validated with pydantic (`Answer`, and the probe's `returns` type when the
check names one). Anything malformed is the student's failed check with a message, never a crash of the judge.
"""

from __future__ import annotations

import ast
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from grader import wire
from grader.channel import Channel, ChannelClosed, ChannelTimeout
from grader.frames import FrameError
from grader.judge.outcome import JudgeConfigError
from grader.loader import GUARD, NOTEBOOK_GUARD
from grader.results import Location
from grader.sandbox.base import ContestantJob, ExitInfo, Sandbox, SandboxError, SandboxProcess

# Starting Python and importing torch inside the sandbox; not charged to any check's timeout.
STARTUP_TIMEOUT_S = 180.0
# Beyond a module's wall-clock import budget, how long the judge waits for the contestant's own budget to stop
# the import before it kills the process itself (student code may block the interruption, e.g. in C code).
IMPORT_SLACK_S = 30.0

T = TypeVar("T")
ErrorKind = Literal[
    "exception", "not_implemented", "system_exit", "memory", "processes", "file_size",
    "missing_file", "syntax_error", "import_error", "bad_output", "no_cuda",
]  # fmt: skip


class ContestantError(AssertionError):
    """Student code failed, hung or died while a check ran. The message is meant for the student."""

    def __init__(self, message: str, kind: str = "exception", where: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message, self.kind, self.where = message, kind, where or []


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ProbeFailure(_Frozen):
    kind: ErrorKind
    message: str = Field(max_length=16_000)
    where: list[Location] = Field(default_factory=list, max_length=64)


class Answer(_Frozen):
    """One answer frame, after its tensors were decoded."""

    id: StrictInt
    ok: StrictBool
    value: Any = None
    error: ProbeFailure | None = None
    duration_s: float = Field(0.0, ge=0)
    cuda_on_cpu: ProbeFailure | None = None  # student code asked for CUDA here, and ran again with it on the CPU

    @model_validator(mode="after")
    def _error_iff_failed(self) -> Answer:
        if self.ok == (self.error is not None):
            raise ValueError("an answer carries an error exactly when ok is false")
        return self


class _Returned(_Frozen, Generic[T]):
    """What a probe returned, validated against the type the check named (nested TypedDicts included)."""

    value: T


class ImportReport(_Frozen):
    """How one student module was imported (grader.loader), as the contestant reports it."""

    module: str = Field(max_length=200)
    mode: Literal["full", "definitions", "failed"]
    kind: str = Field("", max_length=40)  # why the full import failed: budget, exit, network, ...
    message: str = Field("", max_length=16_000)
    where: list[Location] = Field(default_factory=list, max_length=64)
    left_out: list[str] = Field(default_factory=list, max_length=10_000)
    restart: bool = False
    seconds: float = 0.0


class Ready(_Frozen):
    """Start-up frames, in order: the local launcher's isolation report; then, per student module, `importing`
    and `imported`; then `ready`. `probes_error` or `refused` end the start-up with an instructor's message."""

    isolation: dict[str, str] | None = Field(None, max_length=64)
    refused: str | None = None  # the launcher will not run student code here, and says why
    probes_error: str | None = None  # the course's probe module failed to import
    importing: str | None = None
    imported: ImportReport | None = None
    ready: StrictInt | None = None


class ModuleImport(_Frozen):
    """What the judge keeps of a module's import across contestant starts: the first problem, then how it loads."""

    module: str
    problem: ImportReport | None = None  # the full import's failure, when it failed
    mode: Literal["full", "definitions", "failed"] = "full"
    left_out: list[str] = Field(default_factory=list)
    seconds: float = 0.0


class _Died(Exception):
    def __init__(self, info: ExitInfo) -> None:
        self.info = info


def _alive(proc: SandboxProcess) -> Any:
    def check() -> None:
        info = proc.poll()
        if info is not None:
            raise _Died(info)

    return check


def probe_names(path: Path) -> set[str]:
    """The functions the probe module registers with @probe, read from its source (never imported here).
    Raises JudgeConfigError at once for a probe module that cannot be parsed (no sandbox needs to start)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8-sig"), str(path))
    except SyntaxError as exc:
        where = f"{path.name} line {exc.lineno}"
        raise JudgeConfigError(f"{where}: {exc.msg} (a syntax error in the probe module)") from None
    except OSError as exc:
        raise JudgeConfigError(f"the probe module {path} cannot be read ({exc.strerror})") from None
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and any(
        (d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")) == "probe" for d in node.decorator_list)}


def _exit_soon(proc: SandboxProcess, within_s: float = 2.0) -> ExitInfo | None:
    """Why the process ended, if it does within `within_s`."""
    limit = time.monotonic() + within_s
    while (info := proc.poll()) is None and time.monotonic() < limit:
        time.sleep(0.01)
    return info


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = err["loc"][1:] if err["loc"][:1] == ("value",) else err["loc"]
    where = ".".join(str(p) for p in loc) or "the value"
    return f"{where}: {err['msg']}"


class ContestantClient:
    """Starts contestant processes on demand and runs probes in them, one request at a time.

    A process that hangs, crashes, exits or sends anything malformed is killed and forgotten; the next call
    starts a fresh one, so one bad probe costs only the check that asked for it.
    """

    def __init__(self, sandbox: Sandbox, job: ContestantJob) -> None:
        self.sandbox, self.job = sandbox, job
        self.proc: SandboxProcess | None = None
        self.channel: Channel | None = None
        self.deadline: float | None = None  # set by the judge for the check that is running
        self.budget_s: float | None = None
        self.isolation: dict[str, str] = {}
        self.starts = 0
        self.calls: list[dict[str, Any]] = []
        self._logs: list[str] = []  # output of processes already discarded
        self._n = 0
        self.imports: dict[str, ModuleImport] = {}  # how each student module was imported
        self.definitions_only: set[str] = set()
        self.unloadable: dict[str, str] = {}  # modules not even their definitions import: why, for every check
        # Where student code first asked for CUDA on this machine without it; every later start maps CUDA to the
        # CPU (grader.cuda_on_cpu), so that the grade is the one a machine with a GPU gives
        self.cuda_on_cpu: list[Location] | None = None
        self._import_deadline = 0.0
        self._probe_names: set[str] | None = None

    def start(self) -> None:
        """Start a contestant now, if none is running (the first call() would otherwise)."""
        if self.proc is None:
            self._start()

    def _start(self) -> None:
        """Start a contestant and see it through its imports. A module whose full import fails is retried in a
        fresh process, definitions only (each module at most once)."""
        while not self._start_once():
            pass

    def _start_once(self) -> bool:
        """One start; False when it must be redone with more modules imported definitions-only."""
        loading = replace(self.job.loading, definitions_only=tuple(sorted(self.definitions_only)),
                          unloadable=tuple(sorted(self.unloadable.items())),
                          cuda_on_cpu=self.cuda_on_cpu is not None)  # fmt: skip
        # Recorded at once: an interrupt (batch Ctrl-C) while the contestant boots must still reach close().
        proc = self.proc = self.sandbox.start(replace(self.job, loading=loading))
        self.starts += 1
        self._n = 0
        limit = time.monotonic() + STARTUP_TIMEOUT_S
        importing: str | None = None
        isolation = dict(proc.isolation)
        try:
            channel = self.channel = proc.open_channel(limit)
            while True:
                deadline = limit if importing is None else self._import_deadline
                try:
                    hello = Ready.model_validate(channel.recv(deadline, _alive(proc))[0])
                except (ChannelTimeout, _Died, ChannelClosed, FrameError, ValidationError) as exc:
                    if importing is None:
                        raise
                    return self._import_went_wrong(importing, exc, proc)
                if hello.refused:
                    raise SandboxError(hello.refused)
                if hello.probes_error:
                    raise JudgeConfigError(f"the probe module {self.job.probes.name} failed to import:\n"
                                           f"{hello.probes_error}")  # fmt: skip
                if hello.isolation is not None and importing is None:
                    isolation.update(hello.isolation)
                elif hello.importing is not None and importing is None and hello.importing in (
                        *self.job.loading.modules, *self.job.loading.helpers):  # fmt: skip
                    importing = hello.importing
                    self._import_deadline = time.monotonic() + self.job.loading.wall_seconds + IMPORT_SLACK_S
                elif hello.imported is not None and hello.imported.module == importing:
                    importing = None
                    if not self._imported(hello.imported):
                        self._discard()
                        return False
                elif hello.ready is not None and importing is None:
                    break
                elif importing is not None:
                    return self._import_went_wrong(importing, FrameError("an unexpected frame"), proc)
                else:
                    raise FrameError(f"an unexpected start-up frame {hello.model_dump(exclude_none=True)}")
        except _Died as died:
            out = proc.output()
            self._discard(keep_output=False)
            raise SandboxError(f"the contestant process failed to start ({died.info.detail}):\n{out[-2000:]}") from None
        except ChannelTimeout:
            self._discard(keep_output=False)
            raise SandboxError(f"the contestant process did not start within {STARTUP_TIMEOUT_S:.0f} s") from None
        except (ChannelClosed, FrameError, ValidationError, SandboxError, JudgeConfigError) as exc:
            out = proc.output()
            self._discard(keep_output=False)
            if isinstance(exc, (SandboxError, JudgeConfigError)):
                raise
            raise SandboxError(f"the contestant process failed to start ({exc}):\n{out[-2000:]}") from None
        self.isolation = isolation
        return True

    def _imported(self, report: ImportReport) -> bool:
        """Record a module's import; False when the contestant must restart with it definitions-only."""
        name = report.module
        if report.mode == "failed" and report.kind == "no_cuda" and self.cuda_on_cpu is None:
            self.cuda_on_cpu = report.where  # not a problem of the import: again, whole, with CUDA on the CPU
            return False
        record = self.imports.get(name) or ModuleImport(module=name)
        if report.mode == "failed" and record.problem is None:
            record = record.model_copy(update={"problem": report})
        record = record.model_copy(update={"mode": report.mode, "left_out": report.left_out,
                                           "seconds": record.seconds + report.seconds})  # fmt: skip
        self.imports[name] = record
        if report.restart and name not in self.definitions_only:
            self.definitions_only.add(name)
            return False
        return True

    def _import_went_wrong(self, name: str, exc: BaseException, proc: SandboxProcess) -> bool:
        """The contestant hung, died or wrote garbage while a student module was being imported: that module's
        problem, not the machine's. Restart with it definitions-only, or, if it was already, give up on it."""
        if isinstance(exc, ChannelTimeout):
            what = (f"runs code when imported (still running after {self.job.loading.wall_seconds:g} s, and it could "
                    "not be interrupted)")  # fmt: skip
        elif isinstance(exc, _Died):
            what = f"ends the process when imported ({exc.info.detail})"
        else:
            what = "writes to the grader's channel when imported"
        notebook = (self.job.submission / f"{name}.ipynb").is_file()  # staged by the judge itself
        message = f"{name}.ipynb {what}: {NOTEBOOK_GUARD}" if notebook else f"{name}.py {what}: {GUARD}"
        proc.kill("killed", "import stopped by the judge")
        self._discard()
        again = name in self.definitions_only  # even its definitions misbehave: it cannot be imported at all
        self._imported(ImportReport(module=name, mode="failed", kind="stopped", message=message, restart=not again))
        if again:
            self.unloadable[name] = message
        return False

    def call(self, probe: str, *, seed: int = 0, returns: Any = None, **args: Any) -> Any:
        """Run `probe(**args)` in the contestant with every RNG seeded by `seed`; return its value.

        `returns`: the type the probe returns (e.g. `torch.Tensor`, `dict[str, float]`, a TypedDict); the
        answer is validated against it, so a check never sees a forged value of another shape."""
        if self._probe_names is None:
            self._probe_names = probe_names(self.job.probes)
        if probe not in self._probe_names:
            known = ", ".join(sorted(self._probe_names)) or "none"
            raise JudgeConfigError(f"the check calls probe {probe!r}, which {self.job.probes.name} does not define "
                                   f"(it defines: {known})")  # fmt: skip
        if self.proc is not None and self.proc.poll() is not None:
            self._discard()  # died while idle (its hard deadline, say): a fresh one, at no cost to the student
        if self.proc is None:
            t0 = time.monotonic()
            self._start()
            if self.deadline is not None:  # starting Python and torch is not the student's time
                self.deadline += time.monotonic() - t0
        proc, channel = self.proc, self.channel
        assert proc is not None and channel is not None
        self._n += 1
        tree, blob = wire.to_bytes(args)
        started = time.monotonic()
        try:
            channel.send({"id": self._n, "probe": probe, "seed": seed, "args": tree}, blob, self.deadline, _alive(proc))
            doc, blob = channel.recv(self.deadline, _alive(proc))
        except _Died as died:
            self._discard()
            raise ContestantError(self._died(probe, died.info, proc.output()), kind=died.info.reason) from None
        except ChannelTimeout:
            proc.kill("timeout", "")
            self._discard()
            raise ContestantError(
                f"timed out after {self.budget_s:g} s: `{probe}` did not finish "
                "(an infinite loop, or far more work than the check needs?)",
                kind="timeout",
            ) from None
        except ChannelClosed as exc:
            info = _exit_soon(proc)  # usually the process ended and closed its end on the way out
            self._discard()
            if info is not None:
                raise ContestantError(self._died(probe, info, proc.output()), kind=info.reason) from None
            raise ContestantError(self._bad(probe, str(exc)), kind="bad_output") from None
        except FrameError as exc:
            self._discard()
            raise ContestantError(self._bad(probe, str(exc)), kind="bad_output") from None
        try:
            answer = Answer.model_validate(wire.from_bytes(doc, blob))
        except wire.WireError as exc:
            self._discard()
            raise ContestantError(self._bad(probe, str(exc)), kind="bad_output") from None
        except ValidationError as exc:
            self._discard()
            raise ContestantError(self._bad(probe, _first_error(exc)), kind="bad_output") from None
        if answer.id != self._n:
            self._discard()
            raise ContestantError(self._bad(probe, f"an answer to request {answer.id}, not {self._n}"), "bad_output")
        self.calls.append({"probe": probe, "seconds": round(time.monotonic() - started, 4)})
        if answer.cuda_on_cpu is not None and self.cuda_on_cpu is None:
            self.cuda_on_cpu = answer.cuda_on_cpu.where
        if answer.error is not None:
            err = answer.error
            if err.kind in ("memory", "processes"):
                # MemoryError or EAGAIN from fork: the process is likely in a bad state; start afresh next time.
                self._discard()
            raise ContestantError(err.message, err.kind, [w.model_dump() for w in err.where])
        if returns is None:
            return answer.value
        try:
            return _Returned[returns].model_validate({"value": answer.value}).value
        except ValidationError as exc:
            raise ContestantError(
                f"`{probe}` returned a value of the wrong shape ({_first_error(exc)}): does your code replace "
                "the grader's functions or write to its channel?",
                kind="bad_output",
            ) from None

    @staticmethod
    def _bad(probe: str, what: str) -> str:
        return (
            f"the process running your code sent the grader a malformed answer to `{probe}` ({what}); "
            "only the grader's own code may write to its channel"
        )

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

    def _discard(self, keep_output: bool = True) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            if keep_output:
                self._logs.append(self.proc.output())
            self.proc.close()
            self.proc = None

    def output(self) -> str:
        """Everything the student's code printed, across all processes, each capped."""
        parts = [*self._logs, self.proc.output() if self.proc is not None else ""]
        return "".join(p for p in parts if p)

    def close(self) -> None:
        self._discard()
