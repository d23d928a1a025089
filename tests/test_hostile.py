"""The hostile corpus (tests/hostile/corpus.py), graded end to end in the local and the Docker sandbox, as the
user running the tests (root in CI) and, through tests/hostile/run_corpus.py, as an ordinary user.

Each attack must cost exactly the checks it touches, with a message that says what happened, and leave the
submission, the host and the next grading run untouched: no check with status `error`, no file outside the
sandbox changed, no process, folder or container left behind, the host's disk not filled.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from grader.grading import grade
from tests.hostile.corpus import CASES, Case, Host, corpus_course, problems, run_case

CASES_BY_NAME = {c.name: c for c in CASES}

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _docker_sandbox():
    try:
        from grader.sandbox.docker import DockerSandbox
        from tests.test_sandbox_docker import IMAGE, SKIP
    except ImportError as exc:
        pytest.skip(f"no docker package: {exc}")
    if SKIP is not None:
        pytest.skip(SKIP)
    return DockerSandbox(IMAGE)


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    return corpus_course(tmp_path_factory.mktemp("course"))


@pytest.fixture
def host(course_copy):
    # Under /tmp itself (not pytest's private folder), world-writable: only the sandbox can stop a write.
    folder = Path(tempfile.mkdtemp(prefix="hostile-host-", dir="/tmp"))
    h = Host(dir=folder, course=course_copy.root)
    h.prepare()
    yield h
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_submission(course_copy, tmp_path, host, case: Case, sandbox_name: str):
    from grader.sandbox.local import LocalSandbox

    sandbox = LocalSandbox() if sandbox_name == "local" else _docker_sandbox()
    outcome = run_case(case, course_copy, sandbox, tmp_path, host)
    assert problems(case, outcome) == [], json.dumps(outcome, indent=1)[:4000]
    # The next submission is graded as if nothing had happened.
    if case.name in ("fork-bomb", "memory-bomb", "monkeypatch-torch", "fill-disk", "channel-garbage"):
        clean = grade(course_copy, "exp1", ROOT / "examples/exp1/solution", sandbox=sandbox)
        assert clean.score == clean.max_score


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
def test_hostile_corpus_as_an_ordinary_user(tmp_path, sandbox_name: str):
    """The whole corpus again, with the grader run by an unprivileged user (tests/as_user.py)."""
    from tests.as_user import AsUserUnavailable, run_as_user

    if sandbox_name == "docker":
        _docker_sandbox()
    work = Path(tempfile.mkdtemp(prefix="hostile-user-", dir="/tmp"))
    try:
        try:
            proc = run_as_user(
                [sys.executable, "-m", "tests.hostile.run_corpus", "--sandbox", sandbox_name, "--work", str(work)],
                cwd=ROOT, work=work, timeout=3000,
            )  # fmt: skip
        except AsUserUnavailable as exc:
            pytest.skip(str(exc))
        report = work / "report.json"
        assert proc.returncode == 0 and report.exists(), proc.stdout[-4000:]
        outcomes = json.loads(report.read_text())
        assert outcomes["user"] not in (0, "0") and len(outcomes["cases"]) == len(CASES)
        fs = next(iter(outcomes["cases"].values()))["file_system"]
        if sandbox_name == "local" and not fs.startswith("own read-only root"):
            # The README's stated limit: no namespaces for an ordinary user on this kernel (CI requires them).
            assert os.environ.get("GRADER_REQUIRE_NAMESPACES") != "1", fs
            pytest.skip(f"this kernel gives an ordinary user no namespaces: {fs}")
        failed = {name: o["problems"] for name, o in outcomes["cases"].items() if o["problems"]}
        assert failed == {}, json.dumps(failed, indent=1)[:6000]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert os.path.exists(ROOT / "examples/exp1/solution/exp1.py")


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
def test_one_hostile_among_three_honest_in_a_batch(tmp_path, host, sandbox_name: str):
    """A batch of four: the honest three are graded exactly as when each is graded alone."""
    from grader.spec import Course
    from tests.hostile.corpus import FILL_DISK, HOST_WRITES, build_submission, inject
    from tests.test_batch import batch

    env = {"GRADER_SANDBOX": sandbox_name}
    if sandbox_name == "docker":
        env["GRADER_IMAGE"] = _docker_sandbox().image
    honest = ("solution", "lr-too-high", "wrong-output-shape")
    subs = tmp_path / "class"
    subs.mkdir()
    for name in honest:
        shutil.copytree(ROOT / "examples/exp1" / name, subs / name)
    attacks = [Case("a", "f", FILL_DISK + HOST_WRITES), Case("b", "train", "import os\nwhile True:\n    os.fork()"),
               Case("c", "custom_f", CASES_BY_NAME["channel-garbage"].code)]  # fmt: skip
    build_submission(attacks[0], tmp_path / "hostile", host)
    src = (tmp_path / "hostile" / "exp1.py").read_text()
    for attack in attacks[1:]:
        src = inject(src, attack.target, attack.code, ROOT / "solutions/exp1/hidden_checks/test_exp1_hidden.py")
    (tmp_path / "hostile" / "exp1.py").write_text(src)
    shutil.copytree(tmp_path / "hostile", subs / "zz-hostile")
    before = host.digest()
    out = tmp_path / "out"

    r = batch("exp1", str(subs), "--out", str(out), "-j", "2", "--chunk", "1", env=env)

    assert r.returncode == 0, r.stderr[-3000:]
    sandbox = None if sandbox_name == "local" else _docker_sandbox()
    for name in honest:
        in_batch = json.loads((out / "students" / name / "results.json").read_text())
        alone = grade(Course(root=ROOT), "exp1", ROOT / "examples/exp1" / name, sandbox=sandbox)
        assert [(c["id"], c["status"], c["score"], c["message"]) for c in in_batch["checks"]] == [
            (c.id, c.status, c.score, c.message) for c in alone.checks
        ], name
    hostile = json.loads((out / "students" / "zz-hostile" / "results.json").read_text())
    assert all(c["status"] != "error" for c in hostile["checks"])
    assert host.digest() == before and not (host.dir / "created.txt").exists()
