"""The sandbox interface, implemented by the local sandbox (local.py) and the Docker sandbox (docker.py).

A sandbox starts one contestant process for a submission and hands the judge a `SandboxProcess`.
Judge and contestant talk over one connected stream socket (`open_channel`; framing in grader.frames):
an inherited socket for a child process, a socket bind-mounted into a container. Not a folder: the judge
never opens a path the contestant could have replaced with a link, a FIFO or a device, and nothing the
contestant sends lands on the host's disk. Anything the student prints goes to stdout, never the channel.
What a sandbox must provide:

- its own working folder on size-capped scratch; the submission, probes and datasets read-only; nothing
  else of the host writable, and the course's private folders (`ContestantJob.private`) out of sight;
- a wall-clock limit (the judge kills the process when a request outlives its check's timeout);
- limits on resident memory, process count, file size and captured output (`grader.spec.Limits`);
- no network where the platform allows it;
- `poll()` that says why the process ended, naming the limit it hit;
- `close()` that removes the process and everything it left, whatever state it is in;
- nothing that outlives the grader: a process dies with its judge, a container at its hard deadline, and
  `sweep()` removes what a grader killed outright left behind.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from grader.spec import Limits

if TYPE_CHECKING:
    from grader.channel import Channel

ExitReason = Literal["exited", "timeout", "memory", "processes", "killed"]


class SandboxError(Exception):
    """The sandbox itself could not start or run: a problem of the grading machine, not of the submission."""


class ExitInfo(BaseModel):
    reason: ExitReason
    returncode: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class LoadPlan:
    """How the contestant imports the student's modules (grader.loader): each under a budget, or, once a
    module is known to run code at import, its definitions only."""

    modules: tuple[str, ...] = ()
    definitions_only: tuple[str, ...] = ()
    cpu_seconds: float = 20.0
    wall_seconds: float = 60.0
    packages: tuple[str, ...] | None = None  # what student code may import besides the stdlib; None: anything
    unloadable: tuple[tuple[str, str], ...] = ()  # (module, why): not imported at all; its checks fail with why
    helpers: tuple[str, ...] = ()  # the student's own modules staged beside them, which they may import
    cuda_on_cpu: bool = False  # student code asked for CUDA, which this machine lacks: map it to the CPU ahead

    def args(self) -> list[str]:
        return ["--loading", json.dumps(dataclasses.asdict(self))]


def python_flags(version: tuple[int, int] = sys.version_info[:2]) -> list[str]:
    """The contestant's interpreter flags. Not -I: it would ignore PYTHONHASHSEED (string hashing would differ
    on every start) and PYTHONUNBUFFERED (what student code printed before a kill would be lost). The
    environment is the sandbox's own anyway; -s skips user site-packages and -P (3.11+) keeps the scratch
    working folder off sys.path."""
    return ["-s", "-u", *(["-P"] if version >= (3, 11) else [])]


@dataclass(frozen=True)
class ContestantJob:
    """Everything a sandbox needs to start a contestant for one submission."""

    submission: Path  # folder holding only the validated submitted files
    probes: Path  # the assignment's probe module (trusted code that runs next to student code)
    limits: Limits
    data_root: Path | None = None  # host folder with the datasets, mounted read-only as $GRADER_DATA_ROOT
    gpu: bool = False
    # Folders student code must never see (the course: hidden checks, solutions); a sandbox that cannot hide
    # them refuses to start rather than show them.
    private: tuple[Path, ...] = ()
    # Hard deadline of one contestant, enforced inside the engine (Docker), so a container dies even when its
    # judge was killed outright. The judge replaces a contestant that reached it between checks.
    lifetime_s: float = 3600.0
    loading: LoadPlan = LoadPlan()


def common_env(limits: Limits) -> dict[str, str]:
    """What every sandbox sets in the contestant's environment, whatever its paths: fixed hashing, the
    assignment's thread count, deterministic kernels and a plotting backend that needs no display."""
    return {
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(limits.threads),
        "MKL_NUM_THREADS": str(limits.threads),
        # numpy's OpenBLAS starts its pool when numpy is imported (torch's pools start lazily): with more than
        # one thread the warm template could never fork safely. Student code's time is in torch, not numpy.
        "OPENBLAS_NUM_THREADS": "1",
        # OpenMP threads sleep rather than spin while they wait: a contestant shares the cores with judges
        # (nice +10 beside them in the local sandbox), and spinning threads then wait on a thread that is not
        # running. bench/RESULTS.md: 10 ResNet20 steps on 2 threads at nice +10 beside one busy core took about
        # 32 s spinning and under 4 s sleeping; about 2.2 s either way on idle cores.
        "OMP_WAIT_POLICY": "PASSIVE",
        "GRADER_THREADS": str(limits.threads),
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS
        "TORCHINDUCTOR_DETERMINISTIC": "1",  # for torch.compile, as use_deterministic_algorithms would set it
        # torch.compile runs the code eagerly: compiling changes no result, costs 20 s or more a call on these
        # CPUs, and inductor's 158 MB precompiled header is over the sandbox's file-size limit anyway.
        "TORCH_COMPILE_DISABLE": "1",
        # torch.jit.script and torch.jit.trace return the module as written (as for compile, no result changes):
        # the probes look inside a student's model by its layers and torch calls, which a ScriptModule hides.
        "PYTORCH_JIT": "0",
        "MPLBACKEND": "Agg",  # plotting works and never needs a display
    }


def scratch_mb(limits: Limits) -> int:
    """Size of each tmpfs scratch folder: room for a few files at the file-size limit, never the host's disk."""
    return max(64, 2 * limits.file_size_mb)


def link_datasets(submission: Path, job: ContestantJob) -> None:
    """`data` beside the student's files, a link to `../data`, where every sandbox puts the datasets: code that
    runs os.chdir(os.path.dirname(__file__)) and then reads torchvision's root="./data" finds them, as in the
    student's folder. A folder of the student's own named data is left as it is."""
    if job.data_root is not None and not os.path.lexists(submission / "data"):
        mode = submission.stat().st_mode
        submission.chmod(0o755)
        (submission / "data").symlink_to("../data")
        submission.chmod(mode)


def copy_read_only(src: Path, dest: Path) -> None:
    """Copy a folder with world-readable, nobody-writable modes: the contestant may run as another uid."""
    shutil.copytree(src, dest, symlinks=False)
    for p in dest.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    dest.chmod(0o555)


def remove_tree(root: Path) -> None:
    """Remove a sandbox folder, read-only parts included (a non-root owner needs the write bits back).

    Never follows a link: each folder is opened with O_NOFOLLOW and chmod-ed through its descriptor."""
    if not root.exists():
        return
    for dirpath, _, _ in os.walk(root):
        try:
            fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            os.fchmod(fd, 0o755)
        except OSError:
            pass
        finally:
            os.close(fd)
    shutil.rmtree(root, ignore_errors=True)


def owner_tag(pid: int | None = None) -> str:
    """This process (or `pid`) as `pid.starttime`: a leftover folder or container names its owner, and a sweep
    can tell a dead owner from a live one even after the pid is reused."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            start = f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        start = "0"
    return f"{pid}.{start}"


def owner_alive(tag: str) -> bool:
    pid, _, start = tag.partition(".")
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode() == start
    except (OSError, ValueError, IndexError):
        return False


def sweep_folders(prefix: str, mine: bool = False) -> list[str]:
    """Remove sandbox folders `<prefix><owner>-*` in the temp folder whose owner is gone (a grader killed
    outright has no chance to clean up), and with `mine` this process's own too."""
    removed, me = [], owner_tag()
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        tag = folder.name[len(prefix) :].rsplit("-", 1)[0]
        if folder.is_dir() and not folder.is_symlink() and (not owner_alive(tag) or (mine and tag == me)):
            remove_tree(folder)
            removed.append(str(folder))
    return removed


class CappedOutput:
    """Keeps the head and tail of a stream and counts what it dropped (a student may print 100 MB)."""

    def __init__(self, limit_bytes: int) -> None:
        self.head_limit = limit_bytes * 3 // 4
        self.tail_limit = limit_bytes - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.lost = ""  # why some output never reached us (e.g. the engine's own log cap), if it did not

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - self.tail_limit)]

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        out = self.head.decode("utf-8", "replace")
        if self.total > kept:
            out += f"\n[... {self.total - kept} bytes of output dropped ...]\n"
        if self.lost:
            out += f"\n[... an unknown number of bytes of output dropped: {self.lost} ...]\n"
        return out + self.tail.decode("utf-8", "replace")


class SandboxProcess(abc.ABC):
    # What the sandbox applied, as far as the judge knows it; the local launcher adds its own report
    # on the channel before the contestant starts.
    isolation: dict[str, str] = {}

    @abc.abstractmethod
    def open_channel(self, deadline: float) -> Channel:
        """The judge's end of the socket to the contestant (waits until `deadline` for a container to connect)."""

    @abc.abstractmethod
    def poll(self) -> ExitInfo | None:
        """None while running; otherwise why it stopped."""

    @abc.abstractmethod
    def kill(self, reason: ExitReason, detail: str = "") -> None:
        """Stop the process tree now and remember why."""

    @abc.abstractmethod
    def output(self) -> str:
        """Captured stdout and stderr, capped."""

    @abc.abstractmethod
    def close(self) -> None:
        """Kill if needed and remove every trace (folders, containers). Safe to call twice."""


class Sandbox(abc.ABC):
    name: str

    @abc.abstractmethod
    def start(self, job: ContestantJob) -> SandboxProcess: ...

    @abc.abstractmethod
    def describe(self) -> dict[str, str]:
        """The isolation this sandbox applies on this machine, for the report's environment section."""

    def sweep(self, mine: bool = False) -> list[str]:
        """Remove what sandboxes of graders that died outright left behind; returns what was removed. With
        `mine`, also what this process started: for a grading process on its way out (a batch worker that was
        interrupted anywhere, even between creating a folder and recording it), when none of it is in use."""
        return []
