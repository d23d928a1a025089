"""`grader batch --ray` on a real two-node Ray cluster (tests/ray_cluster.py): the same grades as the local pool,
a node lost mid-batch costs nothing, Ctrl-C leaves nothing behind, and each sandbox sees the GPU Ray gave its slot.

The tests share one cluster and run in file order: the GPU test needs the second node's fake GPUs, the node-loss
test kills that node, and the Ctrl-C test runs on the head alone. Skipped without Ray unless GRADER_REQUIRE_RAY=1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_batch import GRADER, ROOT, batch, gradebook

pytestmark = pytest.mark.slow
BASES = ("solution", "stub", "wrong-output-shape", "lr-too-high")  # trains-at-import alone costs 90 s


def _ray_or_skip() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("GRADER_REQUIRE_RAY") == "1":
            pytest.fail("GRADER_REQUIRE_RAY=1 but ray is not installed (pip install -e '.[ray]')", pytrace=False)
        pytest.skip("ray is not installed (pip install -e '.[ray]')")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _ray_or_skip()
    from tests.ray_cluster import RayCluster

    c = RayCluster(tmp_path_factory.mktemp("ray") / "scratch")
    try:
        c.start_worker(cpus=2, gpus=2)  # two fake GPUs: Ray hands them out as it would real ones
        yield c
    finally:
        c.stop()


def driver_env(c, tmp_path: Path) -> dict[str, str]:
    """The driver's environment: this cluster's address, a TMPDIR of its own (the nodes' must end up empty)."""
    (tmp_path / "driver-tmp").mkdir(exist_ok=True)
    return {**c.env, "RAY_ADDRESS": c.address, "TMPDIR": str(tmp_path / "driver-tmp"), "COLUMNS": "200"}


def variants(tmp_path: Path) -> Path:
    """The bundled examples plus twelve variants as students write them: a header, prints, a helper, a pause at
    import. The pauses keep slots busy for a few seconds (a warm judge grades an exp1 submission in well under
    one), so that the node-loss and Ctrl-C tests act while submissions are in flight."""
    subs = tmp_path / "class"
    for name in BASES:
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    for i in range(12):
        base = BASES[i % len(BASES)]
        dest = subs / f"{base}-v{i}"
        shutil.copytree(ROOT / "examples" / "exp1" / base, dest)
        code = (dest / "exp1.py").read_text()
        helper = f"\n\ndef _my_debug_helper_{i}(x):\n    # left over from debugging\n    return x\n"
        (dest / "exp1.py").write_text(f"# Lab 1, student {i}: my attempt\n{code}{helper}\nprint('loaded', {i})\n"
                                      "import time\n\ntime.sleep(2)  # so I can read the printout\n")  # fmt: skip
    return subs


def judges_alive(c) -> list[str]:
    """Slots and judges on this cluster (their environment carries its TMPDIR; contestants die with their judge,
    and their folders are under that TMPDIR)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"TMPDIR={c.scratch}".encode() in env and ("multiprocessing" in cmd or "JudgeSlot" in cmd):
            found.append(cmd)
    return found


def grader_folders(c) -> set[str]:
    """The grader's folders in the nodes' TMPDIR (slots, judges, sandboxes, graph runners; not other libraries')."""
    return {p.name for p in c.scratch.iterdir() if p.name.startswith("grader-")}


def test_ray_local_starts_a_cluster_of_its_own_and_stops_it(tmp_path):
    """`--ray local` grades as the local pool does and leaves no Ray process behind."""
    _ray_or_skip()
    from tests.ray_cluster import _pids_with
    from tests.test_exp1_e2e import EXPECTED

    subs = tmp_path / "class"
    for name in ("solution", "stub", "wrong-output-shape"):
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    temp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))  # Ray's unix sockets need a short path
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp"), "RAY_TMPDIR": str(temp)}  # the grader turns Ray's usage report off itself
    try:
        r = batch("exp1", str(subs), "--out", str(tmp_path / "out"), "--ray", "local", "-j", "2", env=env)
        assert r.returncode == 0, r.stderr
        book = gradebook(tmp_path / "out")
        assert {n: float(row["auto_score"]) for n, row in book.items()} == {
            n: float(sum(EXPECTED[n].values())) for n in book}
        assert list(temp.glob("**/session_*/logs/raylet*")), "the cluster was not this batch's own"
        assert _pids_with(f"TMPDIR={tmp_path / 'tmp'}".encode()) == [], "a Ray process outlived the batch"
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def test_each_sandbox_gets_the_gpu_ray_gave_its_slot(cluster, course_copy, tmp_path):
    """--gpu-per-submission 1 on a node with two (fake) GPUs: two slots, one GPU each, and CUDA_VISIBLE_DEVICES
    reaches the contestant's process and the Docker device request the judge would make."""
    c = course_copy("exp1")
    probes = c.assignment_dir("exp1") / "probes.py"
    probes.write_text(probes.read_text() + "\n\n@probe\ndef cuda_env():\n    import os\n\n"
                      "    return os.environ.get('CUDA_VISIBLE_DEVICES', '')\n")  # fmt: skip
    hidden = c.solution_dir("exp1") / "hidden_checks" / "test_exp1_hidden.py"
    hidden.write_text(hidden.read_text().replace(
        "def test_num_train_samples_unchanged(contestant, submission):",
        "def test_num_train_samples_unchanged(contestant, submission):\n"
        "    import os\n"
        "    from grader.sandbox.docker import gpu_device_requests\n"
        "    docker = gpu_device_requests()[0]['DeviceIDs']\n"
        "    fail(f\"CUDA sandbox={contestant.call('cuda_env')} judge={os.environ['CUDA_VISIBLE_DEVICES']} \"\n"
        "         f\"docker={','.join(docker)}\")\n",
    ))  # fmt: skip
    subs = tmp_path / "class"
    for i in range(4):
        shutil.copytree(ROOT / "examples" / "exp1" / "solution", subs / f"s{i}")
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "--chunk", "1", "--ray", "auto",
              "--gpu-per-submission", "1", env=driver_env(cluster, tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr
    seen = set()
    for i in range(4):
        result = json.loads((out / "students" / f"s{i}" / "results.json").read_text())
        message = next(ch["message"] for ch in result["checks"] if ch["id"] == "num_train_samples_unchanged")
        sandbox, judge, docker = (part.split("=")[1] for part in message.split("CUDA ")[1].split()[:3])
        assert sandbox == judge == docker and sandbox in ("0", "1"), message
        seen.add(sandbox)
    assert seen == {"0", "1"}, "two slots on the GPU node, each with its own GPU"


def test_class_across_two_nodes_matches_local_and_survives_losing_one(cluster, tmp_path):
    subs = variants(tmp_path)
    names = sorted(p.name for p in subs.iterdir())
    local = tmp_path / "local"
    r = batch("exp1", str(subs), "--out", str(local), "-j", "2")
    assert r.returncode == 0, r.stderr
    want = {n: row["auto_score"] for n, row in gradebook(local).items()}
    assert {n for n, s in want.items() if float(s) > 0} and len(set(want.values())) > 2  # a class, not a stub

    out = tmp_path / "ray"
    proc = subprocess.Popen([*GRADER, "batch", "exp1", str(subs), "--out", str(out), "--ray", "auto", "--chunk", "2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=driver_env(cluster, tmp_path))  # fmt: skip
    deadline = time.monotonic() + 600
    # Mid-batch and mid-submission: some grades are in, and a judge on the second node is running a contestant.
    # (Its slots start more slowly than the head's on a loaded machine; killed while starting, they would never
    # have held work, which is another test's case.)
    while not (len(list((out / ".state").glob("*.json"))) >= 2 and cluster.worker_grading()):
        assert proc.poll() is None and time.monotonic() < deadline, "the second node never graded"
        time.sleep(0.2)
    cluster.kill_worker()
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr
    report = json.loads((out / "batch.json").read_text())
    assert any("lost a judge" in n for n in report["notes"]), report["notes"]
    assert report["graded_now"] == len(names) and report["crashed"] == 0
    book = gradebook(out)
    assert sorted(book) == names  # each once: nothing lost, nothing twice
    assert {n: row["auto_score"] for n, row in book.items()} == want
    for n in names:
        assert json.loads((out / "students" / n / "results.json").read_text())["submission"] == str(subs / n)


def test_ctrl_c_leaves_nothing_running_on_the_cluster(cluster, tmp_path):
    subs = variants(tmp_path)
    out = tmp_path / "out"
    before = grader_folders(cluster)  # a node killed earlier left its folders, as a dead machine would
    proc = subprocess.Popen([*GRADER, "batch", "exp1", str(subs), "--out", str(out), "--ray", "auto", "--chunk", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=driver_env(cluster, tmp_path))  # fmt: skip
    deadline = time.monotonic() + 600
    while not list((out / ".state").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.3)
    time.sleep(2)  # the next submission is being graded
    assert judges_alive(cluster), "a judge should be grading now"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stderr
    assert 1 <= len(list((out / ".state").glob("*.json"))) < 16
    time.sleep(2)
    assert judges_alive(cluster) == [], "a judge or contestant outlived the batch"
    assert [a for a in cluster.alive_actors() if a == "JudgeSlot"] == []
    assert grader_folders(cluster) - before == set(), "slot, judge or sandbox folders were left behind"


def test_a_check_file_that_does_not_import_stops_the_cluster_batch(cluster, course_copy, tmp_path):
    """The course's mistake meets every slot alike: the batch stops with it (exit 2), charging no one, not a lost
    node retried elsewhere."""
    c = course_copy("exp1")
    path = c.assignment_dir("exp1") / "checks" / "test_exp1_public.py"
    path.write_text(path.read_text().replace("def test_mlp_output_shape(", "def test_mlp_output_shape((", 1))
    subs = tmp_path / "class"
    for name in ("solution", "stub"):
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "--chunk", "1", "--ray", "auto",
              env=driver_env(cluster, tmp_path))  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "a mistake in the course stops the batch" in r.stderr and "SyntaxError" in r.stderr
    assert not list((out / ".state").glob("*.json")) and "lost a judge" not in r.stderr
    time.sleep(2)
    assert judges_alive(cluster) == [], "a judge outlived the batch"


def test_ray_client_address_and_a_node_without_the_dataset(cluster, course_copy, tmp_path):
    """`--ray ray://host:port` (Ray Client) grades as `auto` does. A node that lacks the assignment's dataset
    (here a second node with an empty tmpfs over the data folder) hosts no judge, and the batch says which node
    and which path; the head grades the class."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding the data from one node needs root and unshare")
    c = course_copy("exp1")
    toml = c.assignment_dir("exp1") / "assignment.toml"
    toml.write_text(toml.read_text().replace("datasets = []", 'datasets = ["fashion-mnist"]'))
    data = tmp_path / "data"
    marker = data / "FashionMNIST/raw/t10k-images-idx3-ubyte"  # all the judge looks for: exp1 reads none of it
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"")
    cluster.head_only()  # the second node was killed by an earlier test, or is still up when this runs alone
    cluster.start_worker(cpus=2, hide=data)
    subs = tmp_path / "class"
    for name in ("solution", "stub", "lr-too-high"):
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    out = tmp_path / "out"
    # --chunk 1: three chunks want three slots, more than the head has room for, so the other node is tried; its
    # refusal is said even when the head grades the class before that node's slots have failed to start
    address = f"ray://{cluster.host}:{cluster.client_port}"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "--data-root", str(data), "--chunk",
              "1", "--ray", address, env=driver_env(cluster, tmp_path))  # fmt: skip
    # The Ray Client server's logs (its own and each client's server's) say why a client's server did not start
    errs = cluster.temp.glob("session_latest/logs/ray_client_server*.err")
    logs = "".join(f"\n{f}:\n{f.read_text()[-3000:]}" for f in errs)
    assert r.returncode == 0, r.stderr + logs
    report = json.loads((out / "batch.json").read_text())
    assert any(f"has no fashion-mnist dataset at {marker}" in n for n in report["notes"]), report["notes"]
    book = gradebook(out)
    assert sorted(book) == ["lr-too-high", "solution", "stub"] and report["crashed"] == 0
    assert float(book["solution"]["auto_score"]) == 100 and float(book["stub"]["auto_score"]) == 0
    # a slot starts its judge before it checks its node: a refusing node's judge is stopped with its slot
    deadline = time.monotonic() + 15
    while judges_alive(cluster) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert judges_alive(cluster) == [], "a judge outlived its node's refusal"


def test_the_docker_sandbox_under_ray(cluster, tmp_path):
    """`--sandbox docker` with `--ray`: each slot's judge starts its contestants as containers on its node's
    engine, of the image the driver was given ($GRADER_IMAGE, which the nodes' own environment lacks), and the
    grades are the bundled examples' own."""
    import docker
    from tests.test_sandbox_docker import IMAGE, SKIP

    if SKIP is not None:
        pytest.skip(SKIP)
    engine = docker.from_env()
    tag = f"torch-grader:ray-test-{os.getpid()}"  # another name for the same image: a tag copies nothing
    engine.images.get(IMAGE).tag(tag)
    subs = tmp_path / "class"
    for name in ("solution", "stub", "lr-too-high"):
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    out = tmp_path / "out"
    try:
        r = batch("exp1", str(subs), "--out", str(out), "--sandbox", "docker", "--chunk", "1", "--ray", "auto",
                  env={**driver_env(cluster, tmp_path), "GRADER_IMAGE": tag})  # fmt: skip
    finally:
        engine.images.remove(tag)
    assert r.returncode == 0, r.stderr
    book = gradebook(out)
    assert {n: float(row["auto_score"]) for n, row in book.items()} == {"solution": 100, "stub": 0, "lr-too-high": 50}
    for name in book:
        env = json.loads((out / "students" / name / "results.json").read_text())["environment"]["sandbox"]
        assert env["sandbox"] == f"docker container ({tag})" and env["image"] == tag, env
