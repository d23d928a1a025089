"""Nothing outlives its grader: a grader killed outright (SIGKILL, so no finally and no atexit runs) while
student code hangs leaves no running contestant, and the next grader's sweep removes what is left.

The grader runs in a child process here, so that the test can kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GRADER = """
import sys, time
from pathlib import Path
from grader.judge.client import ContestantClient
from grader.sandbox.base import ContestantJob
from grader.spec import Limits

kind, tmp, lifetime = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
(tmp / "sub").mkdir()
(tmp / "probes.py").write_text(
    "from grader.contestant import probe\\n@probe\\ndef hang():\\n    while True:\\n        pass\\n"
)
if kind == "docker":
    from grader.sandbox.docker import DockerSandbox
    sandbox = DockerSandbox(sys.argv[4])
else:
    from grader.sandbox.local import LocalSandbox
    sandbox = LocalSandbox()
client = ContestantClient(sandbox, ContestantJob(tmp / "sub", tmp / "probes.py", Limits(), lifetime_s=lifetime))
client.budget_s, client.deadline = 600, time.monotonic() + 600
print("calling", flush=True)
try:
    client.call("hang")
except Exception as exc:
    print("ended:", exc, flush=True)
"""


def _contestants() -> list[int]:
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if b"grader.contestant" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


def _start_grader(tmp_path: Path, kind: str, lifetime: float, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", GRADER, kind, str(tmp_path), str(lifetime), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "calling"
    return proc


def _wait(cond, seconds: float) -> bool:
    limit = time.monotonic() + seconds
    while time.monotonic() < limit:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_local_contestant_dies_with_a_killed_grader(tmp_path):
    from grader.sandbox.local import FOLDER_PREFIX, LocalSandbox

    before = set(_contestants())
    grader = _start_grader(tmp_path, "local", 3600)
    assert _wait(lambda: set(_contestants()) - before, 60), "the contestant never started"
    time.sleep(1)  # the student's loop is running
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    assert _wait(lambda: not set(_contestants()) - before, 10), "a contestant outlived its grader"
    prefix = f"{FOLDER_PREFIX}{grader.pid}."
    left = [p for p in Path(tempfile.gettempdir()).glob(f"{prefix}*")]
    assert left, "the killed grader's folder should still be there for the sweep to find"
    LocalSandbox().sweep()
    assert not any(p.exists() for p in left)


def test_an_interrupt_while_a_contestant_starts_leaves_no_folder(tmp_path, monkeypatch):
    """A batch's Ctrl-C reaches a worker as an exception raised wherever it is, here in the middle of starting
    a contestant: its folder goes with it."""
    from grader.sandbox.base import ContestantJob
    from grader.sandbox.local import FOLDER_PREFIX, LocalProcess, LocalSandbox
    from grader.spec import Limits

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(LocalProcess, "_spawn", interrupted)
    (tmp_path / "sub").mkdir()
    (tmp_path / "probes.py").write_text("")
    with pytest.raises(KeyboardInterrupt):
        LocalSandbox(warm=False).start(ContestantJob(tmp_path / "sub", tmp_path / "probes.py", Limits()))
    assert not list(tmp_path.glob(f"{FOLDER_PREFIX}*"))


def test_a_grader_on_its_way_out_sweeps_its_own_folders_and_no_live_ones(tmp_path, monkeypatch):
    from grader.sandbox.base import owner_tag
    from grader.sandbox.local import FOLDER_PREFIX, LocalSandbox

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = tmp_path / f"{FOLDER_PREFIX}{owner_tag()}-abc"
    parent = tmp_path / f"{FOLDER_PREFIX}{os.getppid()}.0-def"  # a live process's, but not this start time
    live = tmp_path / f"{FOLDER_PREFIX}{owner_tag(os.getppid())}-ghi"
    for folder in (mine, parent, live):
        (folder / "submission").mkdir(parents=True)
        (folder / "submission").chmod(0o555)
    assert LocalSandbox().sweep() == [str(parent)], "only a dead owner's folder goes while its grader works"
    assert LocalSandbox().sweep(mine=True) == [str(mine)]
    assert live.exists()


docker = pytest.importorskip("docker", reason="the docker package is not installed (pip install docker)")


def _containers(owner_pid: int) -> list:
    from grader.sandbox.docker import OWNER_LABEL

    return [c for c in docker.from_env().containers.list(all=True, filters={"label": OWNER_LABEL}, ignore_removed=True)
            if c.labels[OWNER_LABEL].split("/")[1].startswith(f"{owner_pid}.")]  # fmt: skip


@pytest.fixture
def image():
    from tests.test_sandbox_docker import IMAGE, SKIP

    if SKIP is not None:
        pytest.skip(SKIP)
    return IMAGE


def test_container_stops_when_its_grader_is_killed_and_is_swept(tmp_path, image):
    from grader.sandbox.docker import DockerSandbox

    grader = _start_grader(tmp_path, "docker", 3600, image)
    assert _wait(lambda: _containers(grader.pid), 60), "the container never started"
    time.sleep(1)
    grader.send_signal(signal.SIGKILL)
    grader.wait()

    def stopped() -> bool:
        return all(c.status == "exited" for c in _containers(grader.pid))  # list() reads each one's state

    # The contestant sees the judge's end of its socket close and exits, though student code is spinning.
    assert _wait(stopped, 20), "the container kept running after its grader died"
    assert _containers(grader.pid), "the killed grader's container should still be there for the sweep to find"
    DockerSandbox(image).sweep()
    assert _containers(grader.pid) == []


def test_container_dies_at_its_hard_deadline(tmp_path, image):
    """The engine enforces the deadline: a live judge learns the contestant was stopped, and why."""
    grader = _start_grader(tmp_path, "docker", 8, image)
    out, _ = grader.communicate(timeout=120)
    assert "reached the container's hard deadline (8 s)" in out, out
    assert _containers(grader.pid) == []


def test_sweep_skips_a_container_removed_while_it_looks(image):
    """Another grader removes its container between the engine's list and the sweep's look at it: the sweep
    (the first thing each grader does) carries on instead of failing the check it started for."""
    import socket as sock

    from grader.sandbox.base import owner_tag
    from grader.sandbox.docker import OWNER_LABEL, DockerSandbox

    engine = docker.from_env()
    alive_owner = {OWNER_LABEL: f"{sock.gethostname()}/{owner_tag()}"}  # this process: not swept for itself
    ours = engine.containers.create(image, command=["true"], labels=alive_owner)
    sandbox = DockerSandbox(image)
    sandbox._client = client = docker.from_env()
    inspect = client.api.inspect_container
    raced = []

    def removed_first(container_id):
        if container_id == ours.id and not raced:
            raced.append(container_id)
            engine.api.remove_container(container_id, force=True)  # the other grader, just in time
        return inspect(container_id)

    client.api.inspect_container = removed_first
    try:
        sandbox.sweep()
    finally:
        if not raced:
            ours.remove(force=True)
    assert raced == [ours.id], "the sweep never looked at the container"
