"""Containers started ahead (DockerSandbox(pool=N)): each used once, the next one's start overlapping the current
submission, and none left behind on any exit path (close, Ctrl-C, SIGTERM). Against the real engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.judge.client import ContestantClient
from grader.sandbox.base import ContestantJob
from grader.spec import Limits

docker = pytest.importorskip("docker", reason="the docker package is not installed (pip install docker)")

from grader.sandbox import docker as dsbx  # noqa: E402
from tests.test_sandbox_docker import IMAGE, SKIP  # noqa: E402

pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
ROOT = Path(__file__).resolve().parent.parent
PROBES = "from grader.contestant import probe, student\n@probe\ndef value():\n    return student('sol').VALUE\n"


def _containers(pid: int) -> list:
    return docker.from_env().containers.list(all=True, filters={"label": f"{dsbx.LABEL}={pid}"}, ignore_removed=True)


def _job(tmp_path: Path, name: str, value: int) -> ContestantJob:
    sub = tmp_path / name
    sub.mkdir()
    (sub / "sol.py").write_text(f"VALUE = {value}\n")
    (tmp_path / "probes.py").write_text(PROBES)
    return ContestantJob(submission=sub, probes=tmp_path / "probes.py", limits=Limits())


def _value(sandbox: dsbx.DockerSandbox, job: ContestantJob) -> tuple[int, str]:
    client = ContestantClient(sandbox, job)
    client.budget_s, client.deadline = 120, time.monotonic() + 120
    try:
        value = client.call("value")
        assert client.proc is not None
        return value, client.proc.container.id  # type: ignore[attr-defined]
    finally:
        client.close()


def _pool_ready(sandbox: dsbx.DockerSandbox, n: int) -> list[str]:
    deadline = time.monotonic() + 120
    while len(sandbox._pool) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return [proc.container.id for _, proc in sandbox._pool]


def test_each_container_is_started_ahead_and_used_once(tmp_path):
    sandbox = dsbx.DockerSandbox(IMAGE, pool=1)
    try:
        first, first_id = _value(sandbox, _job(tmp_path, "alice", 1))
        (ahead,) = _pool_ready(sandbox, 1)  # started while alice was graded
        second, second_id = _value(sandbox, _job(tmp_path, "bob", 2))
        assert (first, second) == (1, 2)  # bob's container saw bob's code only
        assert second_id == ahead and first_id != second_id
        assert first_id not in [c.id for c in _containers(os.getpid())]  # used once, then removed
        _pool_ready(sandbox, 1)
    finally:
        sandbox.close()
    assert _containers(os.getpid()) == [], "close() left a container"


GRADER = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from tests.test_docker_pool import _job, _pool_ready, _value
from grader.sandbox.docker import DockerSandbox
sandbox = DockerSandbox({IMAGE!r}, pool=2)
tmp = Path(sys.argv[1])
_value(sandbox, _job(tmp, "alice", 1))
_pool_ready(sandbox, 2)
print("pooled", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_no_container_outlives_an_interrupted_grader(tmp_path, sig):
    scratch = tmp_path / "tmp"  # the containers' folders go here
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", GRADER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "pooled"
        assert len(_containers(proc.pid)) == 2 and len(list(scratch.iterdir())) == 2
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        proc.kill()
    assert _containers(proc.pid) == [], f"containers outlived a grader stopped by {sig.name}"
    assert list(scratch.iterdir()) == [], f"the pooled containers' folders outlived a grader stopped by {sig.name}"
