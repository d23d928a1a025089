"""The judge's handle on a warm template (grader.sandbox.zygote): start it once, ask it for contestants.

One template per contestant environment (threads, visible GPUs) per judge process, shared by every
LocalSandbox in it, started at the first need or ahead (`prestart`, before the judge imports torch itself, so
the two imports overlap). It dies with the judge (it exits when the judge's end of its socket closes) and its
launchers die with it. Where it cannot start, the local sandbox starts fresh interpreters and says why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from grader.sandbox.base import SandboxError, python_flags
from grader.sandbox.zygote import MANY, ONE

READY_TIMEOUT_S = 180.0  # importing torch on a loaded machine
FORK_TIMEOUT_S = 30.0
TITLE_ROOM = 480  # bytes of command line a forked launcher or contestant may rewrite to name itself
DESCRIPTION = ("forked from a warm template (Python, torch and the contestant side imported; one thread; "
               "no student code)")


class Template:
    def __init__(self, env: dict[str, str], many: bool = False) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ctrl = ours
        try:
            self.proc = subprocess.Popen(
                [sys.executable, *python_flags(), "-m", "grader.sandbox.zygote", str(theirs.fileno()),
                 MANY if many else ONE, " " * TITLE_ROOM],  # fmt: skip
                env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        finally:
            theirs.close()
        self._cond = threading.Condition()
        self._send = threading.Lock()
        self.ready: dict[str, Any] | None = None
        self.error = ""  # why it cannot serve (it failed to start, or died)
        self.failed = False  # it never became ready: do not try again in this process
        self.started: dict[int, int | str] = {}  # request id -> launcher pid, or why it was refused
        self.exits: dict[int, int] = {}  # launcher pid -> return code (Popen's convention: -N for signal N)
        self._pids: set[int] = set()
        self._n = 0
        threading.Thread(target=self._read, daemon=True, name="grader-template").start()

    @property
    def dead(self) -> bool:
        return bool(self.error)

    def _read(self) -> None:
        while True:
            try:
                msg = self.ctrl.recv(1 << 16)
                doc = json.loads(msg) if msg else None
            except (OSError, ValueError):
                doc = None
            with self._cond:
                if not isinstance(doc, dict):
                    self.error = self.error or f"the warm template ended (exit code {self.proc.wait()})"
                    self.failed = self.ready is None
                    for pid in self._pids - set(self.exits):
                        self.exits[pid] = -signal.SIGKILL  # its launchers die with it
                    self._cond.notify_all()
                    return
                if "ready" in doc:
                    self.ready = doc
                elif "error" in doc:
                    self.error, self.failed = f"the warm template could not start: {doc['error']}", True
                elif "started" in doc:
                    self.started[int(doc["id"])] = int(doc["started"])
                    self._pids.add(int(doc["started"]))
                elif "refused" in doc:
                    self.started[int(doc["refused"])] = str(doc["why"])
                elif "exit" in doc:
                    self.exits[int(doc["exit"])] = os.waitstatus_to_exitcode(int(doc["status"]))
                self._cond.notify_all()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.ready is not None or self.dead, timeout):
                self.error, self.failed = f"the warm template was not ready within {timeout:.0f} s", True
            if self.dead:
                raise SandboxError(self.error)

    def fork(self, cfg: dict[str, Any], fds: list[int]) -> int:
        """A launcher forked from the template, confining itself with `cfg`; `fds`: the contestant's end of the
        channel and the write end of its output pipe (the caller closes its copies)."""
        self.wait_ready()
        with self._send:
            self._n += 1
            n = self._n
            try:
                socket.send_fds(self.ctrl, [json.dumps({"id": n, "cfg": cfg}).encode()], fds)
            except OSError as exc:
                raise SandboxError(f"the warm template is gone ({exc})") from None
        with self._cond:
            self._cond.wait_for(lambda: n in self.started or self.dead, FORK_TIMEOUT_S)
            got = self.started.pop(n, None)
        if not isinstance(got, int):
            raise SandboxError(f"the warm template did not fork a contestant ({got or self.error or 'no answer'})")
        return got

    def wait(self, pid: int, timeout: float | None = None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self.exits, timeout)
            return self.exits.get(pid)

    def close(self) -> None:
        self.ctrl.close()
        self.proc.kill()
        self.proc.wait()


class Forked:
    """A launcher the template forked, with what LocalProcess uses of a Popen."""

    def __init__(self, template: Template, pid: int, stdout: Any) -> None:
        self.template, self.pid, self.stdout = template, pid, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        self.returncode = self.template.exits.get(self.pid)
        return self.returncode

    def wait(self) -> int | None:
        self.returncode = self.template.wait(self.pid)
        return self.returncode

    def kill_group(self) -> None:
        # Only while the template has not reaped it: after that the pid (and group) may belong to another process.
        if self.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_TEMPLATES: dict[str, Template] = {}
_LOCK = threading.Lock()


def template_for(env: dict[str, str], many: bool = False) -> Template:
    """This process's template for contestants with environment `env`, started if need be; `many`: it will
    fork many (a batch worker, `check --watch`), so it imports more ahead (zygote.warm_up). The first start
    decides."""
    key = json.dumps(env, sort_keys=True)
    with _LOCK:
        t = _TEMPLATES.get(key)
        if t is None or (t.dead and not t.failed):
            t = _TEMPLATES[key] = Template(env, many)
        return t


def warm_enabled() -> bool:
    """$GRADER_WARM=0 starts a fresh interpreter per contestant (today's path before templates; for comparison)."""
    return os.environ.get("GRADER_WARM", "1") != "0"
