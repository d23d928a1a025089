"""The Docker sandbox: how containers are configured (always), and real misbehaviour in real containers.

The second part needs a running engine and the grading image (`grader image build --cpu`, or
scripts/ci-docker.sh); it is skipped, with the reason, where either is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from grader.judge.client import ContestantClient, ContestantError
from grader.sandbox.base import ContestantJob, SandboxError
from grader.spec import Limits

docker = pytest.importorskip("docker", reason="the docker package is not installed (pip install docker)")

from grader.sandbox import docker as dsbx  # noqa: E402 - needs the docker package checked first
from grader.sandbox.docker import DockerSandbox, container_limits, gpu_device_requests  # noqa: E402
from tests.sandbox_probes import COMMON  # noqa: E402

IMAGE = os.environ.get("GRADER_IMAGE", "torch-grader:cpu")

PROBES = (
    COMMON
    + """
@probe
def ident():
    def can_write(path):
        try:
            with open(path, "w") as f:
                f.write("x")
            return True
        except OSError:
            return False
    return {"cwd": os.getcwd(), "env": sorted(os.environ), "uid": os.getuid(),
            "root_fs": can_write("/etc/owned"), "tmp": can_write("/tmp/scratch")}

@probe
def nap(s):
    time.sleep(s)
    return s

@probe
def student_value():
    return student("sol").VALUE
"""
)


# ---- configuration: no engine needed ---------------------------------------------------------------


def test_gpu_device_requests_follow_cuda_visible_devices():
    (all_gpus,) = gpu_device_requests({})
    assert all_gpus["Count"] == -1 and all_gpus["Capabilities"] == [["gpu"]] and not all_gpus["DeviceIDs"]
    (two,) = gpu_device_requests({"CUDA_VISIBLE_DEVICES": "2, 3"})
    assert two["DeviceIDs"] == ["2", "3"] and two["Capabilities"] == [["gpu"]] and not two["Count"]
    (uuid,) = gpu_device_requests({"CUDA_VISIBLE_DEVICES": "GPU-8f6a1c2e,-1,4"})
    assert uuid["DeviceIDs"] == ["GPU-8f6a1c2e"]  # CUDA ignores everything after an invalid entry
    for hidden in ("", "-1"):
        with pytest.raises(SandboxError, match="hides every GPU"):
            gpu_device_requests({"CUDA_VISIBLE_DEVICES": hidden})


def test_the_judges_socket_binds_under_a_deep_temp_folder(tmp_path):
    """A Ray worker's TMPDIR can make the judge's socket path longer than a Unix socket allows (107 bytes); it
    is then bound through a descriptor of its folder, and a container's bind mount of the real path works."""
    import socket

    deep = tmp_path / ("ray-session-" + "x" * 60) / ("runtime-resources-" + "y" * 40)
    deep.mkdir(parents=True)
    assert len(str(deep / "judge.sock")) > dsbx.SUN_PATH_MAX
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        dsbx._bind(listener, deep, "judge.sock")
        listener.listen(1)
        assert (deep / "judge.sock").is_socket()
    finally:
        listener.close()


def test_container_limits_come_from_assignment_limits():
    lim = container_limits(Limits(memory_mb=1024, processes=8, file_size_mb=16, threads=2), gpu=False)
    assert lim["mem_limit"] == lim["memswap_limit"] == "1024m"
    assert lim["pids_limit"] == 8 + dsbx.PIDS_HEADROOM and lim["nano_cpus"] == 2 * 10**9
    assert {u["Name"]: u["Hard"] for u in lim["ulimits"]} == {
        "fsize": 16 << 20, "core": 0, "data": (1024 + dsbx.DATA_HEADROOM_MB) << 20,
    }  # fmt: skip
    assert lim["tmpfs"]["/tmp"].startswith("size=64m,")
    gpu = container_limits(Limits(), gpu=True)
    assert "data" not in {u["Name"] for u in gpu["ulimits"]} and ",exec" in gpu["tmpfs"]["/tmp"]


def test_no_engine_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    job = ContestantJob(submission=tmp_path, probes=tmp_path / "probes.py", limits=Limits())
    with pytest.raises(SandboxError, match=r"cannot reach the Docker engine .*start it"):
        DockerSandbox().start(job)


# ---- a real engine and image -----------------------------------------------------------------------


def _engine_skip_reason() -> str | None:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        return f"no Docker engine reachable ({exc}); scripts/ci-docker.sh starts one"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return f"no grading image {IMAGE}: build it with `python -m grader.image --cpu` or scripts/ci-docker.sh"
    return None


SKIP = _engine_skip_reason()
if SKIP is not None and os.environ.get("GRADER_REQUIRE_DOCKER") == "1":
    # CI sets this after scripts/ci-docker.sh: there, a missing engine is a failure, not a skip.
    raise RuntimeError(f"GRADER_REQUIRE_DOCKER=1 but {SKIP}")
engine = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def _ours() -> list:
    """Containers this test process started that still exist."""
    mine = {"label": f"{dsbx.LABEL}={os.getpid()}"}
    return docker.from_env().containers.list(all=True, filters=mine, ignore_removed=True)


@pytest.fixture
def client(tmp_path: Path):
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "sol.py").write_text("VALUE = 41 + 1\n")
    (tmp_path / "probes.py").write_text(PROBES)
    limits = Limits(memory_mb=1024, processes=8, output_kb=64, file_size_mb=16)
    job = ContestantJob(submission=sub, probes=tmp_path / "probes.py", limits=limits)
    c = ContestantClient(DockerSandbox(IMAGE), job)
    yield c
    c.close()
    assert _ours() == [], "a container outlived close()"


def with_budget(client: ContestantClient, seconds: float) -> None:
    client.budget_s = seconds
    client.deadline = time.monotonic() + seconds


@engine
def test_round_trip_unprivileged_read_only_root(client):
    with_budget(client, 60)
    out = client.call("echo", x=torch.arange(3.0))
    assert torch.equal(out["x"], torch.tensor([0.0, 2.0, 4.0])) and out["sum"] == 3.0
    assert client.call("student_value") == 42
    info = client.call("ident")
    assert info["uid"] == dsbx.CONTAINER_UID and info["cwd"] == "/grader/work"
    assert info["root_fs"] is False and info["tmp"] is True
    assert "HOME" in info["env"] and not any(k.startswith(("GITHUB", "AWS", "DOCKER")) for k in info["env"])
    assert client.isolation["network"] == "none" and client.isolation["file_size"].startswith("16 MiB")
    assert len(_ours()) == 1


@engine
def test_timeout_is_named_and_container_replaced(client):
    with_budget(client, 2)
    with pytest.raises(ContestantError, match=r"timed out after 2 s: `hang` did not finish") as info:
        client.call("hang")
    assert info.value.kind == "timeout"
    assert _ours() == []  # the hung container is gone already
    with_budget(client, 60)
    assert client.call("student_value") == 42
    assert client.starts == 2


@engine
def test_memory_limit_kills(client):
    with_budget(client, 60)
    with pytest.raises(ContestantError, match="killed for exceeding 1024 MiB of memory") as info:
        client.call("hog", mb=64)
    assert info.value.kind == "memory"
    with pytest.raises(ContestantError, match="ran out of memory"):
        client.call("huge")


@engine
def test_probe_outlives_the_engine_request_timeout(client, monkeypatch):
    monkeypatch.setattr(dsbx, "WAIT_SLICE_S", 1)  # the waiting thread's request times out twice
    with_budget(client, 30)
    assert client.call("nap", s=2.5) == 2.5 and client.proc.poll() is None


@engine
def test_no_network(client):
    with_budget(client, 30)
    assert client.call("connect") == "OSError: [Errno 101] Network is unreachable"


@engine
def test_output_is_capped(client):
    with_budget(client, 60)
    assert client.call("spam", mb=20) == "done"
    text = client.output()
    assert len(text) < 70 * 1024
    assert "bytes of output dropped" in text


@engine
def test_exits_are_explained(client):
    with_budget(client, 30)
    with pytest.raises(ContestantError, match=r"called sys.exit\(0\) while the check ran"):
        client.call("soft_exit")
    with pytest.raises(ContestantError, match=r"ended during `hard_exit` \(exited with code 0\).*os._exit"):
        client.call("hard_exit")
    assert client.call("student_value") == 42


@engine
def test_process_and_file_limits(client):
    with_budget(client, 60)
    with pytest.raises(ContestantError, match=r"hit the process limit") as info:
        client.call("spawn", n=30)
    assert info.value.kind == "processes"
    with pytest.raises(ContestantError, match="tried to write a file over the 16 MiB limit"):
        client.call("big_file", mb=32)


@engine
def test_submission_and_data_are_read_only(tmp_path):
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "sol.py").write_text("VALUE = 1\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.bin").write_bytes(b"dataset")
    (data / "train.bin").chmod(0o666)  # so only the read-only mount can refuse the write
    probes = tmp_path / "probes.py"
    probes.write_text(
        "import os\nfrom grader.contestant import probe\n"
        "@probe\ndef tamper():\n"
        "    out = [open('./data/train.bin').read() + open('../submission/data/train.bin').read()]\n"
        "    for path in ('../submission/sol.py', os.environ['GRADER_DATA_ROOT'] + '/train.bin'):\n"
        "        try:\n"
        "            open(path, 'a').write('x')\n"
        "            out.append('wrote')\n"
        "        except OSError as exc:\n"
        "            out.append(type(exc).__name__)\n"
        "    mounts = {l.split()[4]: l.split()[5] for l in open('/proc/self/mountinfo')}\n"
        "    return out + [mounts['/grader/submission'], mounts['/grader/data'], mounts['/grader/probes/probes.py']]\n"
    )
    job = ContestantJob(submission=sub, probes=probes, limits=Limits(), data_root=data)
    client = ContestantClient(DockerSandbox(IMAGE), job)
    try:
        with_budget(client, 60)
        content, sub_write, data_write, *mount_opts = client.call("tamper")
        # The submission copy is also mode 0444 (PermissionError); the data file is 0666, so EROFS. data, in the
    # working folder and beside the student's files (after os.chdir(os.path.dirname(__file__))), leads to the
    # datasets, as torchvision's root="./data" expects.
        assert content == "dataset" * 2 and sub_write == "PermissionError" and data_write == "OSError"
        assert all(opts.split(",")[0] == "ro" for opts in mount_opts), mount_opts
    finally:
        client.close()
    assert (data / "train.bin").read_bytes() == b"dataset" and (sub / "sol.py").read_text() == "VALUE = 1\n"


@engine
def test_exit_cleanup_removes_live_containers(tmp_path):
    """What atexit and SIGTERM run (Ctrl-C reaches close() through the judge's finally)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "probes.py").write_text(PROBES)
    proc = DockerSandbox(IMAGE).start(ContestantJob(tmp_path / "sub", tmp_path / "probes.py", Limits()))
    try:
        assert len(_ours()) == 1
        dsbx._remove_all_live()
        assert _ours() == []
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is not None
    finally:
        proc.close()  # safe after the container is gone
    assert not proc.root.exists()


@engine
def test_missing_image_says_how_to_build(tmp_path):
    job = ContestantJob(submission=tmp_path, probes=tmp_path / "probes.py", limits=Limits())
    with pytest.raises(SandboxError, match=r"torch-grader:no-such-tag is not on this machine.*grader image build"):
        DockerSandbox("torch-grader:no-such-tag").start(job)


@engine
@pytest.mark.parametrize("example", ["solution", "wrong-output-shape"])
def test_exp1_scores_match_the_local_sandbox(course, example):
    """The same submission graded in a container and in a local process: identical checks and messages."""
    from grader.grading import grade
    from grader.sandbox.local import LocalSandbox

    folder = course.examples_dir("exp1") / example
    in_docker = grade(course, "exp1", folder, sandbox=DockerSandbox(IMAGE))
    local = grade(course, "exp1", folder, sandbox=LocalSandbox())

    def comparable(result):
        return [c.model_dump(exclude={"duration_s"}) for c in result.checks]

    assert comparable(in_docker) == comparable(local)
    assert in_docker.environment.sandbox["sandbox"].startswith("docker container")


@engine
def test_hash_seed_is_fixed_and_output_before_a_kill_is_kept(client):
    """PYTHONHASHSEED and unbuffered output reach the contestant (python -I would ignore both)."""
    with_budget(client, 60)
    first = client.call("string_hash")
    with_budget(client, 3)
    with pytest.raises(ContestantError, match="timed out"):
        client.call("shout_then_hang")
    assert "about to hang" in client.output()
    with_budget(client, 60)
    assert client.call("string_hash") == first and client.starts == 2  # a fresh process, the same hash


@engine
def test_files_the_code_reads_are_found_in_the_container_too(course, tmp_path):
    """config.json opened relative to the student's folder: the container's working folder has it."""
    from grader.grading import grade
    from tests.test_exp1_e2e import EXPECTED
    from tests.test_fair_grades import reads_its_settings

    result = grade(course, "exp1", reads_its_settings(tmp_path), sandbox=DockerSandbox(IMAGE))
    assert {c.id: c.score for c in result.checks} == EXPECTED["solution"] and result.problems == []
