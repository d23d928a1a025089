"""The local sandbox against real misbehaviour: each limit stops the process and the message names it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from grader.judge.client import ContestantClient, ContestantError
from grader.sandbox.base import CappedOutput, ContestantJob
from grader.sandbox.local import LocalSandbox
from grader.spec import Limits
from tests.sandbox_probes import COMMON

PROBES = (
    COMMON
    + """
@probe
def ident():
    return {"cwd": os.getcwd(), "env": sorted(os.environ)}

@probe
def student_value():
    return student("sol").VALUE
"""
)


@pytest.fixture
def client(tmp_path: Path):
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "sol.py").write_text("VALUE = 41 + 1\n")
    (tmp_path / "probes.py").write_text(PROBES)
    limits = Limits(memory_mb=1024, processes=8, output_kb=64, file_size_mb=16)
    c = ContestantClient(LocalSandbox(), ContestantJob(submission=sub, probes=tmp_path / "probes.py", limits=limits))
    yield c
    c.close()


def with_budget(client: ContestantClient, seconds: float) -> None:
    client.budget_s = seconds
    client.deadline = time.monotonic() + seconds


def test_round_trip_and_student_import(client):
    with_budget(client, 60)
    out = client.call("echo", x=torch.arange(3.0))
    assert torch.equal(out["x"], torch.tensor([0.0, 2.0, 4.0])) and out["sum"] == 3.0
    assert client.call("student_value") == 42
    info = client.call("ident")
    assert "HOME" in info["env"] and not any(k.startswith(("GITHUB", "AWS")) for k in info["env"])
    assert client.isolation["file_size"].startswith("16 MiB")


def test_timeout_is_named_and_process_replaced(client):
    with_budget(client, 2)
    with pytest.raises(ContestantError, match=r"timed out after 2 s: `hang` did not finish") as info:
        client.call("hang")
    assert info.value.kind == "timeout"
    with_budget(client, 60)
    assert client.call("student_value") == 42
    assert client.starts == 2


def test_memory_limit_kills(client):
    with_budget(client, 60)
    with pytest.raises(ContestantError, match="killed for exceeding 1024 MiB of memory"):
        client.call("hog", mb=64)
    with pytest.raises(ContestantError, match="ran out of memory"):
        client.call("huge")


def test_no_network(client):
    with_budget(client, 30)
    result = client.call("connect")
    if client.isolation.get("network", "").startswith("host"):
        pytest.skip("this machine does not allow a network namespace")
    assert result == "OSError: [Errno 101] Network is unreachable"


def test_output_is_capped(client):
    with_budget(client, 60)
    assert client.call("spam", mb=20) == "done"
    text = client.output()
    assert len(text) < 70 * 1024
    assert "bytes of output dropped" in text


def test_exits_are_explained(client):
    with_budget(client, 30)
    with pytest.raises(ContestantError, match=r"called sys.exit\(0\) while the check ran"):
        client.call("soft_exit")
    with pytest.raises(ContestantError, match=r"ended during `hard_exit` \(exited with code 0\).*os._exit"):
        client.call("hard_exit")
    assert client.call("student_value") == 42


def test_process_and_file_limits(client):
    with_budget(client, 60)
    with pytest.raises(ContestantError, match=r"hit the process limit") as info:
        client.call("spawn", n=30)
    assert info.value.kind == "processes"
    with pytest.raises(ContestantError, match="tried to write a file over the 16 MiB limit"):
        client.call("big_file", mb=32)


def test_capped_output_keeps_head_and_tail():
    cap = CappedOutput(100)
    for i in range(1000):
        cap.feed(f"{i:04d}\n".encode())
    text = cap.text()
    assert text.startswith("0000\n") and text.rstrip().endswith("0999")
    assert "4900 bytes of output dropped" in text


def test_submission_and_data_are_read_only(tmp_path):
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "sol.py").write_text("VALUE = 1\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.bin").write_bytes(b"dataset")
    probes = tmp_path / "probes.py"
    probes.write_text(
        "import os\nfrom grader.contestant import probe\n"
        "@probe\ndef tamper():\n"
        "    out = [open('data/train.bin').read() + open('../submission/data/train.bin').read()]\n"
        "    for path in ('../submission/sol.py', os.environ['GRADER_DATA_ROOT'] + '/train.bin', 'data/train.bin'):\n"
        "        try:\n"
        "            open(path, 'a').write('x')\n"
        "            out.append('wrote')\n"
        "        except OSError as exc:\n"
        "            out.append(type(exc).__name__)\n"
        "    return out\n"
    )
    job = ContestantJob(submission=sub, probes=probes, limits=Limits(), data_root=data)
    client = ContestantClient(LocalSandbox(), job)
    try:
        with_budget(client, 60)
        result = client.call("tamper")
        if not client.isolation.get("read_only_mounts", "").startswith("yes"):
            pytest.skip(f"no read-only mounts here: {client.isolation.get('read_only_mounts')}")
        # data, in the working folder and beside the student's files, leads to the datasets
        assert result in (["dataset" * 2, *["OSError"] * 3], ["dataset" * 2, *["PermissionError"] * 3])
    finally:
        client.close()
    assert (data / "train.bin").read_bytes() == b"dataset"


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
