"""The sandbox interface. The local sandbox implements it now; a Docker sandbox implements the same one.

A sandbox starts one contestant process for a submission and hands the judge a `SandboxProcess`.
Judge and contestant talk only through a mailbox folder (`exchange`) that both can see:

    exchange/req-0001.json (+ .safetensors)   written by the judge  (grader.wire format)
    exchange/res-0001.json (+ .safetensors)   written by the contestant
    exchange/ready                           written by the contestant once it has started

Files, not pipes, so the protocol is the same for a child process and for a container with a bind mount,
and anything the student prints can never corrupt it. What a sandbox must provide:

- its own working folder; the submission read-only; datasets read-only;
- a wall-clock limit (the judge kills the process when a request outlives its check's timeout);
- limits on resident memory, process count, file size and captured output (`grader.spec.Limits`);
- no network where the platform allows it;
- `poll()` that says why the process ended, naming the limit it hit;
- `close()` that removes the process and everything it left, whatever state it is in.
"""

from __future__ import annotations

import abc
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from grader.spec import Limits

ExitReason = Literal["exited", "timeout", "memory", "processes", "killed"]


class SandboxError(Exception):
    """The sandbox itself could not start or run: a problem of the grading machine, not of the submission."""


class ExitInfo(BaseModel):
    reason: ExitReason
    returncode: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ContestantJob:
    """Everything a sandbox needs to start a contestant for one submission."""

    submission: Path  # folder holding only the validated submitted files
    probes: Path  # the assignment's probe module (trusted code that runs next to student code)
    limits: Limits
    data_root: Path | None = None  # host folder with the datasets, mounted read-only as $GRADER_DATA_ROOT
    gpu: bool = False


def copy_read_only(src: Path, dest: Path) -> None:
    """Copy a folder with world-readable, nobody-writable modes: the contestant may run as another uid."""
    shutil.copytree(src, dest, symlinks=False)
    for p in dest.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    dest.chmod(0o555)


def remove_tree(root: Path) -> None:
    """Remove a sandbox folder, read-only parts included (a non-root owner needs the write bits back)."""
    if not root.exists():
        return
    for dirpath, _, _ in os.walk(root):
        try:
            os.chmod(dirpath, 0o755)
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)


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
    exchange: Path

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
