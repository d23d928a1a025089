"""The `grader` command as a user runs it: a real subprocess, real exit codes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader import __version__

ROOT = Path(__file__).resolve().parent.parent


def grader(*args: str, cwd: Path = ROOT, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "grader.cli", *args]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", **({"TMPDIR": str(tmp)} if tmp else {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_help_and_version():
    helped = grader("--help")
    assert helped.returncode == 0
    for command in ("check", "grade", "release", "validate", "demo", "assets"):
        assert command in helped.stdout
    assert grader("--version").stdout.strip() == f"grader {__version__}"


@pytest.mark.slow
def test_student_check(tmp_path):
    ok = grader("check", "exp1", "examples/exp1/solution", tmp=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "score: 65 / 65" in ok.stdout
    assert list(tmp_path.iterdir()) == [], "the sandbox's, the judge's or the graph runner's folder was left behind"
    assert "num_train_samples_unchanged" not in ok.stdout  # hidden checks are not run for students
    bad = grader("check", "exp1", "examples/exp1/wrong-output-shape")
    assert bad.returncode == 1
    assert "returned shape (64,); expected (64, 1)" in bad.stdout


@pytest.mark.slow
def test_instructor_grade_writes_reports(tmp_path):
    out = tmp_path / "out"
    run = grader("grade", "exp1", "examples/exp1/lr-too-high", "--out", str(out))
    assert run.returncode == 0, run.stderr
    ours = json.loads((out / "results.json").read_text())
    gradescope = json.loads((out / "gradescope" / "results.json").read_text())
    assert ours["score"] == gradescope["score"] == 50
    assert len(gradescope["tests"]) == 6
    assert (out / "results.schema.json").is_file()
    assert "# exp1: 50 / 100" in (out / "report.md").read_text()


def test_bad_input_is_explained(tmp_path):
    missing = grader("check", "exp1", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "command line" in missing.stderr and "submission" in missing.stderr
    unknown = grader("check", "exp9", str(tmp_path))
    assert unknown.returncode == 2 and "unknown assignment 'exp9'" in unknown.stderr


def test_invalid_spec_names_file_and_field(tmp_path):
    course = tmp_path / "course"
    (course / "assignments" / "exp1").mkdir(parents=True)
    (course / "solutions").mkdir()
    text = (ROOT / "assignments/exp1/assignment.toml").read_text().replace("points = 25", "points = -25", 1)
    (course / "assignments/exp1/assignment.toml").write_text(text)
    run = grader("validate", "--course", str(course))
    assert run.returncode == 2  # an author's mistake
    assert "assignments/exp1/assignment.toml" in run.stderr and "checks.3.points" in run.stderr


def test_release_check_passes_on_committed_stubs():
    run = grader("release", "exp1", "--check")
    assert run.returncode == 0 and "up to date" in run.stdout

