"""`grader gradescope build`: the zip, results.json against Gradescope's published format, and the zip run for
real in a container laid out as Gradescope lays it out (/autograder/source, submission, results).

The container tests need the Docker engine and the locally built base image (scripts/ci-docker.sh); they skip
with the reason otherwise, and fail instead where GRADER_REQUIRE_DOCKER=1 (CI). setup.sh runs against the
package registries reachable here, helped by a wheelhouse of the pinned wheels (pip download, which reads this
machine's own configuration and indexes; deleted once installed). torch: the host for the CPU build's index is
not reachable here, so the containers install the CUDA build from PyPI (setup.sh's TORCH_INDEX_URL="", the
documented CUDA option); it runs on the CPU all the same.

Disk: that venv is 6 GB. It lives in one Docker volume that every setup installs into and every autograder
container mounts read-only (fresh per submission all the same), rather than in committed images: committing
it would hold two copies while the commit runs, and CI's disk is shared and small.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from grader.gradescope import BundleConfig
from grader.gradescope.build import build_bundle
from grader.gradescope.markdown import md_lines, md_text
from grader.gradescope.run import main as run_main
from grader.gradescope.run import to_results
from grader.report.gradescope import to_gradescope
from grader.results import CheckResult, Environment, GradeResult, Problem

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())
BASE_IMAGE = os.environ.get("BASE_IMAGE", "grader-base:bookworm")
LATE_METADATA = {
    "id": 1, "created_at": "2026-10-13T10:00:00+08:00", "submission_method": "upload",
    "assignment": {"due_date": "2026-10-11T23:59:00+08:00", "late_due_date": None, "title": "exp1", "id": 7,
                   "total_points": "100.0", "release_date": "2026-10-01T00:00:00+08:00", "course_id": 1},
    "users": [{"email": "student@example.com", "id": 1, "name": "A Student"}], "previous_submissions": [],
}  # fmt: skip


def valid(results: dict) -> dict:
    jsonschema.validate(results, SCHEMA)
    return results


@pytest.fixture(scope="session")
def grader_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True)
    return next(out.glob("torch_grader-*.whl"))


# ---- the zip and results.json, no engine needed ------------------------------------------------------------


def test_zip_layout(course, grader_wheel, tmp_path):
    built = build_bundle(course, "exp1", tmp_path / "exp1.zip", wheel=grader_wheel)
    with zipfile.ZipFile(built.zip) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        lock = zf.read("requirements.lock.txt").decode().split()
        cfg = BundleConfig.model_validate_json(zf.read("bundle.json"))
    assert {"setup.sh", "run_autograder", "bundle.json", f"wheels/{grader_wheel.name}"} <= names
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111  # Gradescope runs them as they are
    assert "course/solutions/exp1/hidden_checks/test_exp1_hidden.py" in names
    assert not any(n.startswith(("examples", "course/assignments/exp2")) or "__pycache__" in n for n in names)
    assert any(p.startswith("torch==") for p in lock) and not any(p.startswith("nvidia") for p in lock)
    assert "/whl/cpu" in setup and cfg.torch == "cpu" and cfg.data_root is None  # the CPU build by default
    cuda = build_bundle(course, "exp1", tmp_path / "cuda.zip", torch="cuda", wheel=grader_wheel)
    with zipfile.ZipFile(cuda.zip) as zf:
        assert "/whl/cpu" not in zf.read("setup.sh").decode()


def test_markdown_renders_text_as_written():
    assert md_text("<img src=x> **bold** 1. item") == r"\<img src=x\> \*\*bold\*\* 1\. item"
    block = md_lines(["first line", "```\nstill text"])
    assert block.startswith("first line\n\n````text\n") and block.endswith("\n````")


def test_broken_submission_and_broken_grader_give_valid_json(course, tmp_path):
    """Graded here with the local sandbox: a submission that breaks everything, then a bundle that cannot run."""
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "exp1.py").write_text("def f(x):\n    return x **\n")  # a SyntaxError, and no model.pth
    meta = tmp_path / "submission_metadata.json"
    meta.write_text(json.dumps(LATE_METADATA))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(BundleConfig(assignment="exp1", grader_version="test", python="3", torch="cpu",
                                   course=course.root).model_dump_json())  # fmt: skip
    out = tmp_path / "results" / "results.json"
    run_main(["--bundle", str(bundle), "--submission", str(sub), "--results", str(out), "--metadata", str(meta)])
    res = valid(json.loads(out.read_text()))
    spec = course.spec("exp1")
    assert res["score"] == 0 and res["output_format"] == "md" and res["stdout_visibility"] == "hidden"
    checks = res["tests"][: len(spec.checks)]  # then the deduction for the definitions-only import, and lateness
    assert [t["visibility"] for t in checks] == [c.visibility for c in spec.checks]
    assert "invalid syntax" in " ".join(t["output"] for t in res["tests"])
    assert "2 days late" in res["output"]  # the late policy read Gradescope's created_at and due date
    bundle.write_text(BundleConfig(assignment="exp1", grader_version="test", python="3", torch="cpu",
                                   course=tmp_path / "no-course").model_dump_json())  # fmt: skip
    run_main(["--bundle", str(bundle), "--submission", str(sub), "--results", str(out), "--metadata", str(meta)])
    res = valid(json.loads(out.read_text()))
    assert res["score"] == 0 and "could not be graded" in res["output"]


def _errored_result() -> GradeResult:
    """A check passed, one visible and one hidden check the grader could not run, and a deduction."""
    def chk(cid: str, score: float, status: str, vis: str, msg: str = "") -> CheckResult:
        return CheckResult(id=cid, name=f"check {cid}", max_score=10 if cid != "c" else 20, score=score,
                           status=status, visibility=vis, message=msg)  # fmt: skip

    return GradeResult(
        assignment="exp1", submission="s", mode="grade", score=7, max_score=40,
        checks=[chk("a", 10, "passed", "visible"),
                chk("b", 0, "error", "visible", "check file exp1_judge.py does not import: NameError"),
                chk("c", 0, "error", "hidden", "the sandbox would not start")],
        files=[], problems=[Problem(id="rule:no_print", message="prints at import", points=3)],
        started_at=datetime(2026, 1, 1, tzinfo=timezone.utc), duration_s=1.0,
        environment=Environment(grader_version="0", python="3.11", torch="2", device="cpu", platform="Linux"),
    )  # fmt: skip


def test_checks_the_grader_could_not_run_cost_the_student_nothing():
    """Status error is the course's or the machine's fault: its test is worth 0 of 0 and says so, the top message
    says the score is not final and to have the submission rerun, in results.json and in our gradescope.json."""
    result = _errored_result()
    res = valid(to_results(result, None, board=False))
    local = valid(to_gradescope(result))
    for out in (res, local):
        a, b, c, deduction = out["tests"]
        assert (a["score"], a["max_score"], a["status"]) == (10, 10, "passed")
        for errored, vis in ((b, "visible"), (c, "hidden")):
            assert (errored["score"], errored["max_score"], errored["status"]) == (0, 0, "failed")
            assert errored["visibility"] == vis and errored["output"].startswith("Not graded: the autograder could")
            assert "not of your submission" in errored["output"]
        assert "NameError" in b["output"]  # the reason stays, after the sentence that it is not the student's
        assert deduction["score"] == -3  # the student's own slip still costs what it costs
        assert out["score"] == 7 == sum(t["score"] for t in out["tests"])
        assert "autograder itself failed: 2 check(s) worth 30 points" in out["output"].replace("\\", "")
        assert "not final" in out["output"] and "rerun" in out["output"]
    fine = result.model_copy(update={"checks": result.checks[:1]})
    assert "autograder itself failed" not in to_results(fine, None, board=False)["output"]


def test_run_exits_2_but_writes_results_when_checks_could_not_run(monkeypatch, tmp_path):
    """As `grader grade` and the batch: results.json is written for Gradescope, and the exit status flags it."""
    import grader.gradescope.run as gs_run

    data = to_results(_errored_result(), None, board=False)
    monkeypatch.setattr(gs_run, "grade_bundle", lambda cfg, sub, meta: (data, ["b", "c"]))
    bundle = tmp_path / "bundle.json"
    bundle.write_text(BundleConfig(assignment="exp1", grader_version="test", python="3", torch="cpu",
                                   course=tmp_path).model_dump_json())  # fmt: skip
    out = tmp_path / "results" / "results.json"
    assert run_main(["--bundle", str(bundle), "--results", str(out)]) == 2
    assert valid(json.loads(out.read_text())) == data
    monkeypatch.setattr(gs_run, "grade_bundle", lambda cfg, sub, meta: (data, []))
    assert run_main(["--bundle", str(bundle), "--results", str(out)]) == 0


# ---- the zip in a container laid out as Gradescope lays it out ----------------------------------------------


def _engine_skip_reason() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command; scripts/ci-docker.sh installs the engine"
    done = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, text=True)
    if done.returncode != 0:
        return f"no Docker engine or no base image {BASE_IMAGE} ({done.stderr.strip()[:200]}): run scripts/ci-docker.sh"
    return None


SKIP = _engine_skip_reason()
if SKIP is not None and os.environ.get("GRADER_REQUIRE_DOCKER") == "1":
    raise RuntimeError(f"GRADER_REQUIRE_DOCKER=1 but {SKIP}")
engine = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
VENV = "/opt/torch-grader/venv"  # setup.sh's venv ({dest}/venv in grader/gradescope/build.py)
CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
# Gradescope's default machine, and the one docs/gradescope.md recommends for exp2 (measured there).
DEFAULT_LIMITS = ["--memory", "768m", "--cpus", "0.5"]
EXP2_LIMITS = ["--memory", "3g", "--cpus", "2"]
# What docs/gradescope.md recommends for the other three, as measured: Fashion-MNIST does not fit in 768 MB
# beside two copies of torch (softmax and LeNet were killed there at 745 and 762 MiB); the RNN does.
SMALL = {"softmax": ["--memory", "1536m", "--cpus", "1"], "lenet": ["--memory", "1536m", "--cpus", "1"],
         "rnn": DEFAULT_LIMITS}  # fmt: skip


def docker(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args[:3])}... failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _unzip(zip_path: Path, dest: Path) -> Path:
    """Unpack as Gradescope does, file modes included."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            if mode := info.external_attr >> 16 & 0o777:
                (dest / info.filename).chmod(mode)
    return dest


def _wheelhouse(pins: Path, dest: Path) -> Path:
    """The pinned wheels (pip's own configuration and indexes): setup.sh's pip needs no network for them."""
    dest.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(dest),
                    "-r", str(pins)], check=True, timeout=1800)  # fmt: skip
    return dest


def _setup(zip_path: Path, from_image: str, tag: str, house: Path, tmp: Path, venv: str) -> str:
    """setup.sh in a container from `from_image`, the zip unpacked at /autograder/source and the venv in the
    volume `venv`; committed as `tag` (without the venv: a few hundred MB)."""
    src = _unzip(zip_path, tmp / f"{tag.replace(':', '-')}-source")
    name = f"grader-gs-setup-{os.getpid()}-{tag.replace(':', '-')}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    mounts = ["-v", f"{src}:/zip:ro", "-v", f"{house}:/wheelhouse:ro", "-v", f"{venv}:{VENV}"]
    env = ["-e", "PIP_FIND_LINKS=/wheelhouse", "-e", "TORCH_INDEX_URL="]
    if Path(CA).is_file():
        mounts += ["-v", f"{CA}:/ca.crt:ro"]
        env += ["-e", "PIP_CERT=/ca.crt"]
    script = ("rm -rf /autograder/source && mkdir -p /autograder/source && cp -a /zip/. /autograder/source/ "
              "&& cp /autograder/source/run_autograder /autograder/run_autograder "
              "&& cd /autograder/source && bash ./setup.sh")  # fmt: skip
    try:
        done = docker("run", "--name", name, *mounts, *env, from_image, "bash", "-c", script, timeout=1800)
        print(done.stdout[-2000:])
        docker("commit", name, tag)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return tag


@dataclass(frozen=True)
class Images:
    tags: dict[str, str]  # assignment -> its autograder image
    venv: str  # the volume that holds setup.sh's venv


# Samples the container's anonymous memory (what the processes hold; the cgroup's own peak counts the page
# cache too, which the kernel reclaims before it kills): cgroup v2's memory.stat `anon`, v1's `total_rss`.
RSS_SAMPLER = r"""
( peak=0; while :; do
    for f in /sys/fs/cgroup/memory.stat /sys/fs/cgroup/memory/memory.stat; do
      [ -r "$f" ] && while read -r k v; do
        case $k in anon|total_rss) [ "$v" -gt "$peak" ] && peak=$v && echo "$peak" > /out/rss.peak;; esac
      done < "$f"
    done; sleep 0.2
  done ) &
"""


def run_autograder(images: Images, aid: str, submission: Path, limits: list[str], tmp: Path,
                   metadata: dict) -> tuple[dict, dict]:  # fmt: skip
    """A fresh container per submission, as on Gradescope. Returns results.json and what else we saw: the
    autograder's stdout, peak memory and what the student code left in /tmp."""
    out = tmp / f"out-{submission.name}"
    out.mkdir()
    (out / "submission_metadata.json").write_text(json.dumps(metadata))
    script = RSS_SAMPLER + (
        "mkdir -p /autograder/submission /autograder/results && cp -r /sub/. /autograder/submission/ "
        "&& cp /out/submission_metadata.json /autograder/ && /autograder/run_autograder > /out/stdout 2>&1; "
        "cp /autograder/results/results.json /out/; cp /tmp/hostile-report.txt /out/ 2>/dev/null; true"
    )  # fmt: skip
    mounts = ["-v", f"{submission}:/sub:ro", "-v", f"{out}:/out", "-v", f"{images.venv}:{VENV}:ro"]
    docker("run", "--rm", *limits, *mounts, images.tags[aid], "bash", "-c", script)
    results = json.loads((out / "results.json").read_text())
    hostile = out / "hostile-report.txt"
    seen = {
        "stdout": (out / "stdout").read_text(),
        "peak_mib": int((out / "rss.peak").read_text()) / 2**20 if (out / "rss.peak").exists() else -1,
        "hostile": hostile.read_text() if hostile.exists() else None,
    }
    print(f"{submission.name}: score {results['score']}, {results.get('execution_time')} s, "
          f"peak {seen['peak_mib']:.0f} MiB anonymous memory")  # recorded in docs/gradescope.md
    return results, seen


@pytest.fixture(scope="module")
def images(course, grader_wheel, tmp_path_factory):
    """Every bundled assignment's autograder image. exp1's setup.sh runs on the bare base image (the
    from-scratch install); the others run on exp1's image with the same venv (setup.sh is rerunnable: pip
    installs only the zip's grader wheel)."""
    if SKIP:
        pytest.skip(SKIP)
    tmp = tmp_path_factory.mktemp("gradescope")
    data = ROOT / "data"
    if not (data / "cifar-10-batches-py" / "test_batch").exists():
        subprocess.run([sys.executable, str(ROOT.parent / "shared/datasets/materialize.py"), str(data)], check=True)
    zips = {aid: build_bundle(course, aid, tmp / f"{aid}.zip", wheel=grader_wheel,
                              data_root=data if course.spec(aid).datasets else None).zip
            for aid in ("exp1", "exp2", *SMALL)}  # fmt: skip
    pins = tmp / "pins.txt"
    with zipfile.ZipFile(zips["exp1"]) as zf:
        pins.write_bytes(zf.read("requirements.lock.txt"))
    pid = os.getpid()
    built = Images({aid: f"torch-grader-gradescope-{aid}:{pid}" for aid in zips}, f"grader-gs-venv-{pid}")
    try:
        house = _wheelhouse(pins, tmp / "wheelhouse")
        _setup(zips["exp1"], BASE_IMAGE, built.tags["exp1"], house, tmp, built.venv)
        for aid in zips.keys() - {"exp1"}:
            _setup(zips[aid], built.tags["exp1"], built.tags[aid], house, tmp, built.venv)
        shutil.rmtree(house)
        yield built
    finally:
        for tag in built.tags.values():
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", built.venv], capture_output=True)


HOSTILE = '''

def f(x):
    """The attack: runs inside the sandbox when the judge asks for f."""
    report = []
    targets = {
        "read hidden checks": lambda: open("/opt/torch-grader/course/solutions/exp1/hidden_checks/"
                                           "test_exp1_hidden.py").read(),
        "list the course": lambda: __import__("os").listdir("/opt/torch-grader/course"),
        "read the zip's copy": lambda: open("/autograder/source/course/solutions/exp1/hidden_checks/"
                                            "test_exp1_hidden.py").read(),
        "read the metadata": lambda: open("/autograder/submission_metadata.json").read(),
        "write results.json": lambda: open("/autograder/results/results.json", "w").write('{"score": 1000}'),
        "create results.json beside": lambda: open("/autograder/results/forged.json", "w").write("{}"),
    }
    for what, attempt in targets.items():
        try:
            attempt()
            report.append(what + ": ALLOWED")
        except Exception as exc:
            report.append(what + ": denied (" + type(exc).__name__ + ")")
    with open("/tmp/hostile-report.txt", "w") as out:
        out.write("\\n".join(report) + "\\n")
    return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5
'''


@engine
def test_exp1_in_gradescope_layout(images, example, tmp_path):
    """The solution, a submission that breaks everything and a hostile one, under Gradescope's default limits."""
    solution, seen = run_autograder(images, "exp1", example("exp1", "solution"), DEFAULT_LIMITS, tmp_path,
                                    LATE_METADATA)  # fmt: skip
    valid(solution)
    assert all(t["status"] == "passed" for t in solution["tests"] if t["max_score"] > 0), seen["stdout"][-3000:]
    assert '"user": "nobody"' in seen["stdout"]  # student code ran unprivileged
    assert solution["score"] == 80  # 100 points, 2 days late at 10% a day

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "exp1.py").write_text("import torch\n\ndef f(x:\n    return x\n")  # a SyntaxError
    (broken / "model.pth").write_bytes(b"\x80\x04not a checkpoint")
    res = valid(run_autograder(images, "exp1", broken, DEFAULT_LIMITS, tmp_path, LATE_METADATA)[0])
    assert res["score"] == 0 and res["tests"] and "syntax error" in json.dumps(res["tests"])

    hostile = example("exp1", "solution")
    source = (hostile / "exp1.py").read_text()
    (hostile / "exp1.py").write_text(source + HOSTILE)  # this f() replaces the one above it
    res, seen = run_autograder(images, "exp1", hostile, DEFAULT_LIMITS, tmp_path, LATE_METADATA)
    valid(res)
    report = seen["hostile"]
    assert report is not None, seen["stdout"][-3000:]
    assert "ALLOWED" not in report and report.count("denied") == 6, report
    assert res["score"] == 80 and res["score"] != 1000  # the judge's results.json, not the forged one


@engine
def test_exp2_in_gradescope_layout(images, example, tmp_path):
    """The solution under the limits docs/gradescope.md recommends; the leaderboard holds the judge's accuracy."""
    on_time = dict(LATE_METADATA, created_at="2026-10-10T10:00:00+08:00")
    res, seen = run_autograder(images, "exp2", example("exp2", "solution"), EXP2_LIMITS, tmp_path, on_time)
    valid(res)
    by_tag = {t["tags"][0]: t for t in res["tests"]}
    assert by_tag["accuracy"]["visibility"] == "hidden" and by_tag["accuracy"]["status"] == "passed", seen["stdout"]
    [entry] = res["leaderboard"]
    assert entry["name"] == "Test accuracy (%)" and entry["order"] == "desc" and 70 <= entry["value"] <= 100


@engine
@pytest.mark.parametrize("aid", SMALL)
def test_small_assignments_under_the_recommended_settings(images, example, aid, tmp_path):
    """softmax, LeNet and the RNN under the limits docs/gradescope.md recommends for them: the solution earns
    every point, and the classifiers' leaderboard holds the accuracy measured."""
    on_time = dict(LATE_METADATA, created_at="2026-10-10T10:00:00+08:00")
    res, seen = run_autograder(images, aid, example(aid, "solution"), SMALL[aid], tmp_path, on_time)
    valid(res)
    assert all(t["status"] == "passed" for t in res["tests"] if t["max_score"] > 0), seen["stdout"][-3000:]
    if aid != "rnn":
        [entry] = res["leaderboard"]
        assert entry["name"] == "Test accuracy (%)" and 50 <= entry["value"] <= 100
