"""The warm template (a zygote): one interpreter with torch and the contestant side imported, that forks a
contestant per request instead of starting a fresh interpreter each time.

    python -s -u -P -m grader.sandbox.zygote FD many|one ROOM

Started by the judge (grader.sandbox.template) with exactly the contestant's scrubbed environment and
nothing secret on its command line: a forked child keeps reading its template's initial environment and
arguments in /proc/self/environ and /proc/self/cmdline, so the judge itself can never be the template.
What the template may and may not do is in docs/warm-template.md; in short it imports, then forks, and
never touches CUDA, never starts a thread, never opens a file it keeps, never sees student code.

Protocol on FD (a SOCK_SEQPACKET socket, one JSON message per packet): the template sends `ready` (or
`error`) once; the judge sends `{"id", "cfg"}` with two descriptors (the contestant's end of the channel and
the write end of its output pipe); the template forks a launcher (grader.sandbox.launch.confine with that
cfg, which confines and then serves in-process), answers `started` with its pid, and reports `exit` with the
wait status of each launcher it reaps. It exits when the judge's end closes.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import sys
import traceback
from typing import Any

CHANNEL_FD = 3  # where a forked contestant keeps its end of the channel
MANY, ONE = "many", "one"  # how many contestants the judge expects to fork (argv[1]): what warm_up imports
POLL_S = 0.02  # how often the template reaps its launchers between requests


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> list[int]:
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


def set_title(text: str) -> None:
    """Rewrite our command line in place (the template is started with room for it), so that `ps` and the
    leftover checks see a launcher or a contestant rather than another template."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49)
    except (OSError, ValueError, IndexError):
        return
    room = end - start
    data = text.replace(" ", "\0").encode()[: room - 1]
    ctypes.memmove(start, data + b"\0" * (room - len(data)), room)


def warm_up(dynamo: bool) -> None:
    """Everything a contestant imports before student code, so that a fork finds it loaded (torch._dynamo
    too, for a template that will fork many). Nothing here may start a thread, touch CUDA, or keep a file open
    (checked after, and again before every fork)."""
    import grader.contestant
    import grader.graphs.reference  # noqa: F401
    import grader.sandbox.launch  # noqa: F401
    import grader.wire  # noqa: F401

    grader.contestant.preload(dynamo)


def become_contestant(argv: list[str], env: dict[str, str]) -> int:
    """In a forked child, confined by launch.confine: what `execve(python -m grader.contestant ...)` would be."""
    import tempfile

    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # TMPDIR is the sandbox's now
    set_title(" ".join(argv))
    from grader import contestant

    sys.argv = ["grader.contestant", *argv[argv.index("grader.contestant") + 1 :]]
    contestant.main()
    return 0


def _child(ctrl: socket.socket, fds: list[int], cfg: dict[str, Any]) -> None:
    """The forked launcher: its descriptors in place, nothing else of the template's open, then confine."""
    code = 125
    try:
        os.setpgid(0, 0)
        chan, out = os.dup(fds[0]), os.dup(fds[1])
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(chan, CHANNEL_FD, inheritable=False)
        os.closerange(CHANNEL_FD + 1, os.sysconf("SC_OPEN_MAX"))  # the control socket and the originals too
        ctrl.detach()
        set_title(f"{sys.executable} -m grader.sandbox.launch (warm) {cfg['view']}")
        from grader.sandbox.launch import confine

        code = confine(dict(cfg, fd=CHANNEL_FD))
    except BaseException as exc:  # noqa: BLE001 - say it on the output for the judge's log
        try:
            print(f"grader template: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code)


def _send(ctrl: socket.socket, doc: dict[str, Any]) -> None:
    ctrl.send(json.dumps(doc).encode())


def serve(ctrl: socket.socket) -> int:
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([ctrl], [], [], POLL_S)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            _send(ctrl, {"exit": pid, "status": status})
        if not readable:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(ctrl, 1 << 20, 2)
        except OSError:
            return 0
        if not msg:
            return 0  # the judge is gone: our launchers follow (PR_SET_PDEATHSIG)
        req = json.loads(msg)
        threads = thread_count()
        if len(fds) != 2 or threads != 1:
            for fd in fds:
                os.close(fd)
            why = f"{threads} threads" if threads != 1 else f"{len(fds)} descriptors, not 2"
            _send(ctrl, {"refused": req.get("id"), "why": f"the template cannot fork safely ({why})"})
            continue
        pid = os.fork()
        if pid == 0:
            _child(ctrl, fds, req["cfg"])
        try:
            os.setpgid(pid, pid)  # also done by the child: whichever runs first, the judge can kill the group
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        children.add(pid)
        _send(ctrl, {"started": pid, "id": req["id"]})


def main(argv: list[str]) -> int:
    ctrl = socket.socket(fileno=int(argv[0]))
    try:
        warm_up(argv[1] == MANY)
    except BaseException:  # noqa: BLE001 - the judge reports it and starts fresh interpreters instead
        _send(ctrl, {"error": traceback.format_exc()[-4000:]})
        return 1
    threads, fds = thread_count(), open_fds()
    if threads != 1:
        _send(ctrl, {"error": f"importing torch started {threads - 1} threads; a fork would not be safe"})
        return 1
    _send(ctrl, {"ready": os.getpid(), "threads": threads, "fds": fds})
    return serve(ctrl)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
