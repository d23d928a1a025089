"""The hostile corpus (tests/hostile/corpus.py), graded end to end in the local and the Docker sandbox.

Each attack must cost exactly the checks it touches, with a message that says what happened, and leave the
submission, the host and the next grading run untouched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest

from grader.grading import grade
from tests.hostile.corpus import CASES, CODE_CHECKS, TIMEOUT_S, Case, inject

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
def corpus_course(tmp_path_factory):
    """exp1 with every check's timeout cut to TIMEOUT_S, so the hanging cases end quickly."""
    from grader.spec import Course

    root = tmp_path_factory.mktemp("course")
    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part / "exp1", root / part / "exp1")
    toml = root / "assignments/exp1/assignment.toml"
    toml.write_text(re.sub(r"(?m)^timeout = \d+", f"timeout = {TIMEOUT_S}", toml.read_text()))
    return Course(root=root)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_submission(corpus_course, tmp_path, case: Case, sandbox_name: str):
    from grader.sandbox.local import LocalSandbox

    if sandbox_name == "local" and not case.local_ok:
        pytest.skip("the local sandbox leaves the file system readable (README); the Docker sandbox does not")
    sandbox = LocalSandbox() if sandbox_name == "local" else _docker_sandbox()
    folder = tmp_path / "submission"
    shutil.copytree(ROOT / "examples/exp1/solution", folder)
    if case.target:
        src = (folder / "exp1.py").read_text()
        hidden = ROOT / "solutions/exp1/hidden_checks/test_exp1_hidden.py"
        (folder / "exp1.py").write_text(inject(src, case.target, case.code, hidden))
    if case.weights:
        case.weights(folder)
    before = _digest(folder)

    result = grade(corpus_course, "exp1", folder, sandbox=sandbox)

    checks = {c.id: c for c in result.checks}
    for cid in CODE_CHECKS:
        check = checks[cid]
        if cid in case.fails:
            assert check.score == 0 and check.status == "failed", (cid, check.message)
            assert re.search(case.fails[cid], check.message), (cid, check.message)
        else:
            assert check.status == "passed", (cid, check.message)
    assert _digest(folder) == before, "the submission changed while it was graded"
    assert not (tmp_path / "PWNED").exists()
    if case.name == "print-100mb":
        assert "bytes of output dropped" in result.contestant_output
        assert len(result.contestant_output) < 300 * 1024
    # The next submission is graded as if nothing had happened.
    if case.name in ("fork-bomb", "memory-bomb", "monkeypatch-torch"):
        clean = grade(corpus_course, "exp1", ROOT / "examples/exp1/solution", sandbox=sandbox)
        assert clean.score == clean.max_score
    assert os.path.exists(ROOT / "examples/exp1/solution/exp1.py")
