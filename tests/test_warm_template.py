"""The warm template (grader.sandbox.zygote): what a forked contestant inherits, against a fresh interpreter.

A contestant forked from the template must be in the state a freshly started one is in: one thread of its own
making, only its channel and standard streams open, the scrubbed environment, its own working folder, user and
namespaces, and the same isolation record apart from how it was started."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from grader.judge.client import ContestantClient
from grader.sandbox.base import ContestantJob
from grader.sandbox.local import LocalSandbox, contestant_env, prestart
from grader.sandbox.template import DESCRIPTION, template_for
from grader.spec import Limits

PROBES = """
import os, random, sys, threading
from grader.contestant import probe, student

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError as exc:
        return f"unreadable: {exc.strerror}"

@probe
def state():
    fds = []
    for fd in range(256):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "tasks": len(os.listdir("/proc/self/task")),
        "fds": fds,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "uid": os.getuid(),
        "pid": os.getpid(),
        "ns": {n: os.readlink(f"/proc/self/ns/{n}") for n in ("net", "pid", "mnt", "ipc", "uts")},
        "cmdline": _read("/proc/self/cmdline"),
        "environ": _read("/proc/self/environ"),
        "drawn_at_import": student("sol").DRAWN,
        "dynamo": type(sys.modules.get("torch._dynamo")).__name__,
        "hash": hash("seeded"),
    }
"""


def _state(tmp_path: Path, warm: bool, limits: Limits | None = None) -> tuple[dict, dict]:
    sub = tmp_path / "submission"
    sub.mkdir(exist_ok=True)
    (sub / "sol.py").write_text("import random\nDRAWN = random.random()\n")
    (tmp_path / "probes.py").write_text(PROBES)
    job = ContestantJob(submission=sub, probes=tmp_path / "probes.py", limits=limits or Limits(),
                        private=(tmp_path / "x",))  # fmt: skip
    client = ContestantClient(LocalSandbox(warm=warm), job)
    client.budget_s, client.deadline = 60, time.monotonic() + 60
    try:
        return client.call("state"), client.isolation
    finally:
        client.close()


def test_a_forked_contestant_inherits_nothing_a_fresh_one_lacks(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_TEST_SECRET", "hunter2")  # in the judge's environment: must reach no contestant
    warm, warm_iso = _state(tmp_path, warm=True)
    fresh, fresh_iso = _state(tmp_path, warm=False)
    assert warm_iso.pop("start") == DESCRIPTION and fresh_iso.pop("start") == "fresh interpreter"
    assert warm_iso == fresh_iso  # every isolation the fresh launcher applies, the forked child applies
    # One thread of the contestant's own (it watches for the judge going away), besides the main one.
    assert warm["threads"] == fresh["threads"] == ["MainThread", "Thread-1 (_exit_when_judge_goes)"]
    assert warm["tasks"] == fresh["tasks"] == 2
    # stdin, output, output and the channel (its number differs): no template socket, no pipe, no file.
    # (A fresh one's channel keeps the judge's number for it, which in a long test session may be one of 0-2.)
    assert warm["fds"] == [0, 1, 2, 3] and fresh["fds"][:3] == [0, 1, 2] and len(fresh["fds"]) <= 4
    judge_ns = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("net", "pid", "mnt", "ipc", "uts")}
    for got in (warm, fresh):
        assert "hunter2" not in repr(got)
        assert all(got["ns"][n] != judge_ns[n] for n in judge_ns), got["ns"]
        assert got["pid"] == 1 and got["cwd"] == "/grader/work"
        assert got["uid"] == (65534 if os.geteuid() == 0 else os.getuid())
        assert "grader.contestant" in got["cmdline"]  # ps (and the leftover checks) see a contestant
    # A fresh contestant imports torch's inductor itself, which then names its cache folder after the user.
    fresh["env"].pop("TORCHINDUCTOR_CACHE_DIR", None)
    assert warm["env"] == fresh["env"]
    assert set(warm["env"]) - {"GRADER_DATA_ROOT"} == {*contestant_env(Limits()), "HOME", "TMPDIR"}
    assert warm["drawn_at_import"] == fresh["drawn_at_import"]  # seeded before student code, warm or fresh
    assert warm["hash"] == fresh["hash"]  # PYTHONHASHSEED=0 in both
    # Every optimizer.step() imports torch._dynamo: both find the stand-in there (grader.deferred_dynamo).
    assert warm["dynamo"] == fresh["dynamo"] == "_Deferred"


def test_a_template_for_many_contestants_imports_dynamo_ahead(tmp_path):
    """A batch worker's or --watch's template: torchvision's import and torch.compile need the real dynamo, and
    there the template pays for it once, not every contestant."""
    limits = Limits(threads=3)  # an environment no other test's template has
    prestart(limits, many=True)
    got, iso = _state(tmp_path, warm=True, limits=limits)
    assert got["dynamo"] == "module" and iso["start"] == DESCRIPTION


@pytest.mark.parametrize("threads", [1, 2])
def test_the_template_is_one_thread_with_nothing_open(threads):
    """Whatever the assignment's thread count: exp2's 2 once made numpy's OpenBLAS start its pool at import,
    and every exp2 contestant then started as a fresh interpreter."""
    template = template_for(contestant_env(Limits(threads=threads)))
    template.wait_ready()
    assert template.ready is not None and template.ready["threads"] == 1
    # stdin, stdout, stderr (all /dev/null), its control socket, and the folder listing itself.
    assert len(template.ready["fds"]) <= 5
    pid = template.ready["ready"]
    assert not Path(f"/proc/{pid}/environ").read_bytes().count(b"GRADER_TEST_SECRET")
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
